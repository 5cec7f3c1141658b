//! The seam between the pure stages and the runtime: GitHub (any HTTP), Workers KV and the clock.
//!
//! The worker implements it with `worker::Fetch`, the `REGISTRY` KV namespace, `Date` and `Delay`; the
//! native tests implement it with a scripted fake world, so the whole delivery path runs under `cargo
//! test` without workerd.

/// An outbound HTTP request, already fully decided (URL, headers, body) by a pure function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// The `Retry-After` header, which GitHub sends with 429 and secondary rate limits.
    pub retry_after: Option<String>,
    pub body: String,
}

// Every implementation runs on a single thread (a Workers isolate, or a test's executor), so the
// futures need no `Send` bound and `async fn` in the trait is what we want.
#[allow(async_fn_in_trait)]
pub trait Platform {
    /// Sends a request; `Err` is a network-level failure (no HTTP status), described for the log.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, String>;
    async fn kv_get(&self, key: &str) -> Result<Option<String>, String>;
    /// Writes a value; with `ttl_seconds`, KV forgets it after that long (at least 60, KV's minimum).
    async fn kv_put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), String>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    async fn sleep(&self, ms: u64);
}

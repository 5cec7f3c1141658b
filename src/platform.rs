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

    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWT `RS256`) of `message` with an RSA key given as PKCS#8 DER:
    /// the GitHub App's JWT. WebCrypto is part of every Workers isolate, so on wasm32 the default signs
    /// with it; natively there is nothing to sign with, and test platforms bring their own.
    async fn sign_rs256(&self, pkcs8_der: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::glue::scheduled::sign_rs256(pkcs8_der, message).await;
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (pkcs8_der, message);
            Err("RS256 signing needs WebCrypto (the Workers runtime)".into())
        }
    }

    /// Like `send`, and also returns the response's `Link` header, which carries GitHub's cursor
    /// pagination. Platforms that serve the sweeper override it; the default has no header to give, so
    /// a caller sees one page.
    async fn send_for_page(
        &self,
        request: HttpRequest,
    ) -> Result<(HttpResponse, Option<String>), String> {
        self.send(request).await.map(|response| (response, None))
    }
}

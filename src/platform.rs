//! The seam between the pure stages and the runtime: GitHub (any HTTP), Workers KV, the clock and the
//! HMAC comparison.
//!
//! The worker implements it with `fetch` (each with an abort timeout), the `REGISTRY` KV namespace,
//! `Date`, `setTimeout` and WebCrypto; the native tests implement it with a scripted fake world, so the
//! whole delivery path runs under `cargo test` without workerd.

use crate::verify::{self, Digest, SignatureError, WebhookSecrets};

/// An outbound HTTP request, already fully decided (URL, headers, body) by a pure function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
    /// The request (and reading its response) is abandoned after this long: what is left of the
    /// delivery's deadline (`deadline::DEADLINE_MS`).
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// The `Retry-After` header, which GitHub sends with 429 and secondary rate limits.
    pub retry_after: Option<String>,
    pub body: String,
}

/// Why a request got no HTTP answer. The runtime's own text goes to the log line's notes only: a
/// response body ends up on GitHub's Recent Deliveries page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The abort timeout fired.
    TimedOut { after_ms: u64 },
    /// Anything else without a status (DNS, TLS, reset), with the runtime's description.
    Network(String),
    /// The GitHub App's installation token could not be had (`app_auth`), with why.
    Auth(String),
}

impl SendError {
    /// What a response may say.
    pub fn public(&self) -> String {
        match self {
            SendError::TimedOut { after_ms } => format!("no answer within {after_ms} ms"),
            SendError::Network(_) => "network error".to_string(),
            // Our own words about GitHub's answer (status and message), never the runtime's text:
            // the person reading Recent Deliveries needs them to fix the App's setup.
            SendError::Auth(detail) => detail.clone(),
        }
    }

    /// What the log line's notes say.
    pub fn detail(&self) -> String {
        match self {
            SendError::TimedOut { after_ms } => format!("no answer within {after_ms} ms"),
            SendError::Network(detail) => format!("network error: {detail}"),
            SendError::Auth(detail) => detail.clone(),
        }
    }
}

// Every implementation runs on a single thread (a Workers isolate, or a test's executor), so the
// futures need no `Send` bound and `async fn` in the trait is what we want.
#[allow(async_fn_in_trait)]
pub trait Platform {
    /// Sends a request, giving up after `request.timeout_ms`; also returns the response's `Link`
    /// header, which carries GitHub's cursor pagination (the sweeper pages by it).
    async fn send_for_page(
        &self,
        request: HttpRequest,
    ) -> Result<(HttpResponse, Option<String>), SendError>;

    /// `send_for_page` for the callers that read one answer and no `Link` header.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, SendError> {
        self.send_for_page(request)
            .await
            .map(|(response, _)| response)
    }
    async fn kv_get(&self, key: &str) -> Result<Option<String>, String>;
    /// Writes a value; with `ttl_seconds`, KV forgets it after that long (at least 60, KV's minimum).
    async fn kv_put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), String>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    async fn sleep(&self, ms: u64);

    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWT `RS256`) of `message` with an RSA key given as PKCS#8 DER:
    /// the GitHub App's JWT. No default: the only signer at hand differs by runtime (the worker signs
    /// with WebCrypto in its glue, the native tests with the `rsa` crate), and a default here would
    /// make the seam under every stage name the glue above them all.
    async fn sign_rs256(&self, pkcs8_der: &[u8], message: &[u8]) -> Result<Vec<u8>, String>;

    /// Does `digest` match the body's HMAC-SHA256 under any secret? The native comparison
    /// (`verify::verify_digest`) unless the runtime has a faster one with the same contract.
    async fn verify_digest(
        &self,
        secrets: &WebhookSecrets,
        digest: &Digest,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        verify::verify_digest(secrets, digest, body)
    }
}

//! Test support: the one scripted fake world of the native tests (delivery, sweeper, App auth): GitHub
//! by method and URL (with `Link` headers, latency, stalls and timeouts), KV (with a read log and an
//! outage switch), a clock that sleeping advances, and RS256 signing with the `rsa` crate in place of
//! WebCrypto. Every request is recorded; a request nobody scripted fails the test.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;

use crate::platform::{HttpRequest, HttpResponse, Platform, SendError};

pub const API: &str = "https://github.test";

/// The test-only App key (tests/fixtures/app-auth/README.md).
pub fn test_key_pem(form: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/app-auth/test-only-app-key.{form}.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub link: Option<String>,
    pub retry_after: Option<String>,
}

pub fn answer(status: u16, body: &str) -> Result<Answer, String> {
    Ok(Answer {
        status,
        body: body.to_string(),
        link: None,
        retry_after: None,
    })
}

/// An answer with a `Retry-After` header, as GitHub sends with 429 and secondary rate limits.
pub fn answer_retry_after(status: u16, retry_after: &str, body: &str) -> Result<Answer, String> {
    Ok(Answer {
        retry_after: Some(retry_after.to_string()),
        ..answer(status, body)?
    })
}

pub fn page(body: &str, next: Option<&str>) -> Result<Answer, String> {
    Ok(Answer {
        status: 200,
        body: body.to_string(),
        link: next.map(|path| format!(r#"<{API}{path}>; rel="next""#)),
        retry_after: None,
    })
}

/// Scripted answers by (method, URL).
type Scripts = HashMap<(String, String), VecDeque<Result<Answer, String>>>;

pub struct World {
    pub now: Cell<u64>,
    pub kv: RefCell<HashMap<String, String>>,
    pub ttls: RefCell<HashMap<String, Option<u64>>>,
    /// KV reads fail (an outage) while set.
    pub kv_down: Cell<bool>,
    /// Every KV key read, in order: "touches nothing" must be checkable.
    pub kv_reads: RefCell<Vec<String>>,
    scripts: RefCell<Scripts>,
    pub sent: RefCell<Vec<HttpRequest>>,
    pub signatures: Cell<u32>,
    /// Every sleep, in order.
    pub slept: RefCell<Vec<u64>>,
    /// Time each GitHub request takes.
    pub latency_ms: Cell<u64>,
    /// Per-(method, URL) time before GitHub answers; past the request's timeout the request times out.
    stalls: RefCell<HashMap<(String, String), u64>>,
    /// Makes every `send` yield to the executor once, so two deliveries can interleave.
    pub yield_on_send: Cell<bool>,
    /// KV reads and GitHub answers in the order they happened: `kv:<key>`, `answered:<url>`.
    pub events: RefCell<Vec<String>>,
}

/// Yields once: pending the first time it is polled (waking itself), ready the second.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

impl World {
    pub fn new() -> World {
        World {
            now: Cell::new(1_800_000_000_000),
            kv: RefCell::default(),
            ttls: RefCell::default(),
            kv_down: Cell::new(false),
            kv_reads: RefCell::default(),
            scripts: RefCell::default(),
            sent: RefCell::default(),
            signatures: Cell::new(0),
            slept: RefCell::default(),
            latency_ms: Cell::new(0),
            stalls: RefCell::default(),
            yield_on_send: Cell::new(false),
            events: RefCell::default(),
        }
    }

    /// Answers for `method path` (path under API), in order; the last one repeats.
    pub fn script(&self, method: &str, path: &str, answers: Vec<Result<Answer, String>>) {
        self.scripts
            .borrow_mut()
            .insert((method.to_string(), format!("{API}{path}")), answers.into());
    }

    /// GitHub takes `ms` to answer `method path` (instead of `latency_ms`).
    pub fn stall(&self, method: &str, path: &str, ms: u64) {
        self.stalls
            .borrow_mut()
            .insert((method.to_string(), format!("{API}{path}")), ms);
    }

    pub fn sent_to(&self, method: &str, path: &str) -> Vec<HttpRequest> {
        let url = format!("{API}{path}");
        self.sent
            .borrow()
            .iter()
            .filter(|r| r.method == method && r.url == url)
            .cloned()
            .collect()
    }

    pub fn calls(&self) -> usize {
        self.sent.borrow().len()
    }

    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Platform for World {
    async fn send_for_page(
        &self,
        request: HttpRequest,
    ) -> Result<(HttpResponse, Option<String>), SendError> {
        assert!(request.timeout_ms > 0, "every request has a timeout");
        if self.yield_on_send.get() {
            YieldOnce(false).await;
        }
        let key = (request.method.to_string(), request.url.clone());
        let takes = self
            .stalls
            .borrow()
            .get(&key)
            .copied()
            .unwrap_or(self.latency_ms.get());
        let timeout = request.timeout_ms;
        self.sent.borrow_mut().push(request);
        if takes > timeout {
            self.advance(timeout);
            return Err(SendError::TimedOut { after_ms: timeout });
        }
        self.advance(takes);
        let mut scripts = self.scripts.borrow_mut();
        let script = scripts
            .get_mut(&key)
            .unwrap_or_else(|| panic!("unexpected request: {} {}", key.0, key.1));
        let next = if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().expect("a script has an answer")
        };
        self.events.borrow_mut().push(format!("answered:{}", key.1));
        next.map_err(SendError::Network).map(|a| {
            (
                HttpResponse {
                    status: a.status,
                    retry_after: a.retry_after,
                    body: a.body,
                },
                a.link,
            )
        })
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        self.kv_reads.borrow_mut().push(key.to_string());
        self.events.borrow_mut().push(format!("kv:{key}"));
        if self.kv_down.get() {
            return Err("KV unavailable".into());
        }
        Ok(self.kv.borrow().get(key).cloned())
    }

    async fn kv_put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), String> {
        self.kv
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        self.ttls.borrow_mut().insert(key.to_string(), ttl_seconds);
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    async fn sleep(&self, ms: u64) {
        self.slept.borrow_mut().push(ms);
        self.advance(ms);
    }

    async fn sign_rs256(&self, pkcs8_der: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
        self.signatures.set(self.signatures.get() + 1);
        // Importing our PKCS#8 the way WebCrypto does is part of the test: a bad wrapper fails here.
        let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_der).map_err(|e| e.to_string())?;
        Ok(SigningKey::<Sha256>::new(key).sign(message).to_vec())
    }
}

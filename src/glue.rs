//! The Workers runtime glue: converts `worker::` / JS types to the stages' plain types and back. No
//! decision is made here; everything below `Relay` is plain Rust tested natively.
//!
//! What the glue does differently from a straightforward port, for speed (benches/workerd_latency.mjs
//! measures it against the original JavaScript worker):
//! - the body is read with one `arrayBuffer()` when `Content-Length` is declared and copied into wasm
//!   memory once, at its exact size; only a chunked body is streamed (to enforce the 25 MB cap), its
//!   chunks kept as they are and copied once at the end;
//! - the HMAC is computed by the runtime's WebCrypto (`crypto.subtle.verify`, native code) with keys
//!   imported once per isolate, not by `sha2` compiled to wasm;
//! - the log line and the dedup records are written after the response (`ctx.waitUntil`), the records
//!   side by side;
//! - the handler takes and returns the runtime's own `Request`/`Response` (no `request.cf`), calls the
//!   KV binding's methods directly, and reads the clock with the static `Date.now()`.

use std::cell::RefCell;
use std::time::Duration;

use js_sys::{futures::JsFuture, Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{console_log, event, Context, Delay, Env};

use crate::config::Config;
use crate::delivery::{admit, refuse, Admitted, Relay, RequestHead};
use crate::isolate::IsolateMemory;
use crate::platform::{HttpRequest, HttpResponse, Platform, SendError};
use crate::read;
use crate::respond::{self, DeliveryFacts, KvWrite, Reply, Stop};
use crate::verify::{self, Digest, SignatureError, WebhookSecrets};

// The cron trigger (the sweeper) and WebCrypto signing; a child module so it can use WorkerPlatform.
#[path = "glue_scheduled.rs"]
pub(crate) mod scheduled;

/// The KV namespace binding (wrangler.toml) that caches the registry and holds the dedup records.
const KV_BINDING: &str = "REGISTRY";

/// The secrets the keys were imported for, and the keys.
type HmacKeys = (Vec<Vec<u8>>, Vec<JsValue>);

thread_local! {
    // An isolate runs one thread and lives for many requests: a leaked cell is its memory.
    static MEMORY: &'static IsolateMemory = Box::leak(Box::default());
    static CONFIG: std::cell::OnceCell<&'static Config> = const { std::cell::OnceCell::new() };
    // WebCrypto HMAC keys for the configured secrets, imported once per isolate (and again only if
    // WEBHOOK_SECRET changes).
    static HMAC_KEYS: RefCell<Option<HmacKeys>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn subtle_import_key(
        format: &str,
        key: &Uint8Array,
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &str,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding, called directly: `Env::kv` looks up the binding and five of its methods
    /// (six `Reflect.get`s) on every use, where one property read is enough.
    type KvNamespace;

    #[wasm_bindgen(method, js_name = get, catch)]
    fn get_text(this: &KvNamespace, key: &str, kind: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, js_name = put, catch)]
    fn put_text(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &JsValue,
    ) -> Result<Promise, JsValue>;
}

/// The handler takes the runtime's own `Request` and returns its own `Response`: converting to
/// `worker::Request` reads `request.cf`, an object workerd builds on access, which the relay never
/// looks at.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    console_error_panic_hook::set_once();
    let mut reply = match handle(&req, &env).await {
        Ok(reply) => reply,
        // Only runtime failures (a binding that is missing, a header that cannot be set) get here: the
        // sender sees a generic 500, the operator the cause.
        Err(err) => {
            let stop = Stop::misconfigured("internal error");
            let facts = DeliveryFacts::default();
            let note = vec![format!("runtime error: {err}")];
            Reply {
                status: stop.status,
                body: respond::response_body(&stop, &facts),
                log: Some(respond::log_line(&stop, &facts, 0, &note, false)),
                headers: Vec::new(),
                after_response: Vec::new(),
            }
        }
    };
    let log = reply.log.take();
    let writes = std::mem::take(&mut reply.after_response);
    if log.is_some() || !writes.is_empty() {
        let env = env.clone();
        ctx.wait_until(async move { after_response(&env, log, writes).await });
    }
    let headers = web_sys::Headers::new()?;
    headers.set("Content-Type", "application/json; charset=utf-8")?;
    for (name, value) in &reply.headers {
        headers.set(name, value)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_str_and_init(
        Some(&reply.body),
        &init,
    )?)
}

/// The delivery's log line and its dedup records, once the response has gone out. The line is written
/// first, so a record that fails to be written is logged after the delivery it belongs to. Both run in
/// the request's `waitUntil`, so they belong to the same invocation in `wrangler tail` and Workers Logs.
async fn after_response(env: &Env, log: Option<String>, writes: Vec<KvWrite>) {
    // A pause first, so this work starts once the response has gone out: started at once, it delays
    // the response (measured in Miniflare: about 3 ms per KV put, and 0.2 ms for the one console.log
    // line, which workerd serialises for its structured log before returning). 5 ms, not 1: locally
    // the response still crosses Miniflare's entry worker in the same process, and puts started 1 ms
    // after it made the median publishing delivery 0.4-4 ms slower on a loaded 2-core machine
    // (benches/workerd_latency.mjs). The records land a few ms later; a copy of the delivery meanwhile
    // meets this isolate's memory of the dispatch.
    Delay::from(Duration::from_millis(5)).await;
    if let Some(line) = log {
        console_log!("{line}");
    }
    // The records are independent (each names the delivery): written side by side, not one after the
    // other.
    let platform = &WorkerPlatform::new(env);
    futures_util::future::join_all(writes.into_iter().map(|write| async move {
        if let Err(why) = platform
            .kv_put(&write.key, &write.value, write.ttl_seconds)
            .await
        {
            // Its own line (not a second "delivery" line): the dispatch went out, only its record is
            // missing, so a redelivery of it would dispatch again (the publisher then skips it).
            let line = serde_json::json!({
                "level": "error",
                "msg": "dedup record not written",
                "key": write.key,
                "why": why,
            });
            console_log!("{line}");
        }
    }))
    .await;
}

async fn handle(req: &web_sys::Request, env: &Env) -> worker::Result<Reply> {
    let method = req.method();
    let url = req.url();
    let path = read::url_path(&url);
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let (content_type, content_length) = (header("Content-Type"), header("Content-Length"));
    let (signature, event, delivery, authorization) = (
        header("X-Hub-Signature-256"),
        header("X-GitHub-Event"),
        header("X-GitHub-Delivery"),
        header("Authorization"),
    );
    let head = RequestHead {
        method: &method,
        path,
        content_type: content_type.as_deref(),
        content_length: content_length.as_deref(),
        signature: signature.as_deref(),
        event: event.as_deref(),
        delivery: delivery.as_deref(),
        authorization: authorization.as_deref(),
    };
    let config = config(env);
    let platform = WorkerPlatform::new(env);
    let memory = MEMORY.with(|memory| *memory);
    let relay = Relay::new(config, &platform, memory);
    Ok(match admit(&head) {
        Err(stop) => refuse(&head, stop),
        Ok(Admitted::Health) => relay.health(head.authorization),
        Ok(Admitted::Webhook {
            kind,
            digest,
            length,
        }) => match read_body(req, length, &platform).await {
            Ok(body) => relay.deliver(&head, kind, &digest, &body).await,
            Err(stop) => refuse(&head, stop),
        },
    })
}

/// The configuration, read from the bindings once per isolate: an isolate's bindings never change (a new
/// deployment or `wrangler secret put` starts new isolates), and reading ~13 of them per request was a
/// measurable part of a small delivery's time.
fn config(env: &Env) -> &'static Config {
    CONFIG.with(|cached| {
        *cached.get_or_init(|| {
            Box::leak(Box::new(Config::from_lookup(|name| {
                env.secret(name)
                    .map(|s| s.to_string())
                    .or_else(|_| env.var(name).map(|v| v.to_string()))
                    .ok()
            })))
        })
    })
}

/// A body that could not be read is the client's fault (it closed the connection before sending what
/// its Content-Length promised, or the stream broke): a 400 naming the delivery, not our 500.
fn unreadable(err: JsValue) -> Stop {
    let _ = err;
    Stop::bad_request("the request body could not be read in full (connection closed early?)")
}

/// Reads the body into wasm memory once. With a declared length: one `arrayBuffer()` (the runtime holds
/// the client to its Content-Length) and one copy of exactly that size. Without one (chunked): the
/// chunks as they come, stopping at GitHub's 25 MB cap, then one copy.
async fn read_body(
    inner: &web_sys::Request,
    length: Option<u64>,
    platform: &WorkerPlatform<'_>,
) -> Result<Vec<u8>, Stop> {
    let Some(stream) = inner.body() else {
        return Ok(Vec::new());
    };
    if length.is_some() {
        let promise = inner.array_buffer().map_err(unreadable)?;
        let buffer = JsFuture::from(promise).await.map_err(unreadable)?;
        let bytes = Uint8Array::new(&buffer);
        read::check_length(u64::from(bytes.length()))?;
        let body = bytes.to_vec();
        // WebCrypto verifies these very bytes: no copy back out of wasm memory.
        *platform.body_in_js.borrow_mut() = Some(bytes);
        return Ok(body);
    }
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut chunks: Vec<Uint8Array> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let step: Object = JsFuture::from(reader.read())
            .await
            .map_err(unreadable)?
            .unchecked_into();
        let done = Reflect::get(&step, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let chunk: Uint8Array = Reflect::get(&step, &JsValue::from_str("value"))
            .map_err(unreadable)?
            .unchecked_into();
        total += u64::from(chunk.length());
        if let Err(stop) = read::check_length(total) {
            // Stop the upload: nothing more of it will be read.
            let _ = reader.cancel();
            return Err(stop);
        }
        chunks.push(chunk);
    }
    let mut body = vec![0u8; total as usize];
    let mut at = 0;
    for chunk in chunks {
        let end = at + chunk.length() as usize;
        chunk.copy_to(&mut body[at..end]);
        at = end;
    }
    Ok(body)
}

fn js_text(err: JsValue) -> String {
    js_error_text(&err)
}

fn js_error_text(err: &JsValue) -> String {
    if let Some(error) = err.dyn_ref::<js_sys::Error>() {
        String::from(error.message())
    } else {
        err.as_string()
            .unwrap_or_else(|| "unknown runtime error".into())
    }
}

struct WorkerPlatform<'a> {
    env: &'a Env,
    /// The body as the runtime handed it over (when read in one piece), for `verify_digest`.
    body_in_js: RefCell<Option<Uint8Array>>,
}

impl<'a> WorkerPlatform<'a> {
    pub(crate) fn new(env: &'a Env) -> Self {
        WorkerPlatform {
            env,
            body_in_js: RefCell::new(None),
        }
    }

    /// The KV binding, looked up once per use (one property read).
    fn kv(&self) -> Result<KvNamespace, String> {
        let binding = Reflect::get(self.env, &JsValue::from_str(KV_BINDING)).map_err(js_text)?;
        if binding.is_undefined() {
            return Err(format!(
                "the KV binding {KV_BINDING} is missing (wrangler.toml)"
            ));
        }
        Ok(binding.unchecked_into())
    }

    async fn hmac_keys(&self, secrets: &WebhookSecrets) -> Result<Vec<JsValue>, JsValue> {
        let cached = HMAC_KEYS.with(|keys| {
            keys.borrow()
                .as_ref()
                .filter(|(for_secrets, _)| for_secrets.iter().map(Vec::as_slice).eq(secrets.iter()))
                .map(|(_, keys)| keys.clone())
        });
        if let Some(keys) = cached {
            return Ok(keys);
        }
        let wanted: Vec<Vec<u8>> = secrets.iter().map(<[u8]>::to_vec).collect();
        let algorithm = Object::new();
        Reflect::set(&algorithm, &"name".into(), &"HMAC".into())?;
        Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())?;
        let usages = Array::of1(&"verify".into());
        let mut keys = Vec::with_capacity(wanted.len());
        for secret in &wanted {
            let promise = subtle_import_key(
                "raw",
                &Uint8Array::from(secret.as_slice()),
                &algorithm,
                false,
                &usages,
            )?;
            keys.push(JsFuture::from(promise).await?);
        }
        HMAC_KEYS.with(|cache| *cache.borrow_mut() = Some((wanted, keys.clone())));
        Ok(keys)
    }
}

impl Platform for WorkerPlatform<'_> {
    /// One fetch for every GitHub request, with the `Link` header the sweeper pages by.
    async fn send_for_page(
        &self,
        request: HttpRequest,
    ) -> Result<(HttpResponse, Option<String>), SendError> {
        let timeout_ms = request.timeout_ms;
        let network = |err: JsValue| SendError::Network(js_error_text(&err));
        let headers = web_sys::Headers::new().map_err(network)?;
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(network)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(request.method);
        init.set_headers(&headers);
        if let Some(body) = &request.body {
            init.set_body(&JsValue::from_str(body));
        }
        // One signal for the request and for reading its response: a GitHub that stalls mid-body is
        // cut off at the deadline too. (github::request never leaves the timeout unset; a zero would
        // abort at once, which is what "no time left" means.)
        let signal = web_sys::AbortSignal::timeout_with_u32(timeout_ms.min(u32::MAX.into()) as u32);
        init.set_signal(Some(&signal));
        let timed_out = |err: JsValue| {
            if signal.aborted() {
                SendError::TimedOut {
                    after_ms: timeout_ms,
                }
            } else {
                network(err)
            }
        };
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let response: web_sys::Response =
            JsFuture::from(global.fetch_with_str_and_init(&request.url, &init))
                .await
                .map_err(timed_out)?
                .unchecked_into();
        let status = response.status();
        let retry_after = response.headers().get("Retry-After").ok().flatten();
        let link = response.headers().get("Link").ok().flatten();
        // A 204 (GitHub's answer to an accepted dispatch) has no body to wait for.
        let body = if status == 204 {
            String::new()
        } else {
            JsFuture::from(response.text().map_err(timed_out)?)
                .await
                .map_err(timed_out)?
                .as_string()
                .unwrap_or_default()
        };
        Ok((
            HttpResponse {
                status,
                retry_after,
                body,
            },
            link,
        ))
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        let value = JsFuture::from(self.kv()?.get_text(key, "text").map_err(js_text)?)
            .await
            .map_err(js_text)?;
        Ok(value.as_string())
    }

    async fn kv_put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), String> {
        let options = Object::new();
        if let Some(ttl) = ttl_seconds {
            Reflect::set(&options, &"expirationTtl".into(), &(ttl as f64).into())
                .map_err(js_text)?;
        }
        let put = self.kv()?.put_text(key, value, &options).map_err(js_text)?;
        JsFuture::from(put).await.map_err(js_text)?;
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        // The static `Date.now()`: `worker::Date::now()` builds a `Date` object to read it.
        js_sys::Date::now() as u64
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }

    /// WebCrypto, part of every Workers isolate (`scheduled::sign_rs256`).
    async fn sign_rs256(&self, pkcs8_der: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
        scheduled::sign_rs256(pkcs8_der, message).await
    }

    /// WebCrypto's HMAC verify: the same contract as `verify::verify_digest` (any secret may match;
    /// the comparison is BoringSSL's constant-time one), checked against the same vectors in workerd.
    /// Should the runtime refuse the keys, the native comparison answers instead.
    async fn verify_digest(
        &self,
        secrets: &WebhookSecrets,
        digest: &Digest,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        if secrets.is_empty() {
            return Err(SignatureError::NoSecretConfigured);
        }
        let Ok(keys) = self.hmac_keys(secrets).await else {
            return verify::verify_digest(secrets, digest, body);
        };
        let signature = Uint8Array::from(&digest[..]);
        // The runtime's own copy of the body if we have it (the same bytes: `body` was copied from
        // it); else a copy in JS memory, never a view of wasm memory, which another request may grow
        // (and so detach) while the promise is pending.
        let data = self
            .body_in_js
            .borrow()
            .clone()
            .filter(|js| js.length() as usize == body.len())
            .unwrap_or_else(|| Uint8Array::from(body));
        for key in &keys {
            let verified = match subtle_verify("HMAC", key, &signature, &data) {
                Ok(promise) => JsFuture::from(promise).await,
                Err(err) => Err(err),
            };
            match verified {
                Ok(value) if value.as_bool() == Some(true) => return Ok(()),
                Ok(_) => {}
                Err(_) => return verify::verify_digest(secrets, digest, body),
            }
        }
        Err(SignatureError::Mismatch)
    }
}

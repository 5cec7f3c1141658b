//! The Workers runtime glue for the cron trigger and for WebCrypto: converts runtime types and calls
//! `scheduled::sweep`; no decision is made here. A child module of `glue`, so it shares the fetch
//! handler's `WorkerPlatform` (KV, clock) without widening its visibility.

use std::cell::Cell;

use worker::js_sys::{self, Array, Object, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Crypto, CryptoKey};
use worker::{
    console_log, event, Env, Fetch, Headers, Method, Request, RequestInit, ScheduleContext,
    ScheduledEvent,
};

use super::WorkerPlatform;
use crate::config::Config;
use crate::platform::{HttpRequest, HttpResponse, Platform};
use crate::scheduled;

thread_local! {
    // "The sweeper is off" is logged once per isolate, not on every cron tick.
    static OFF_LOGGED: Cell<bool> = const { Cell::new(false) };
}

#[event(scheduled)]
async fn cron(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let config = Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    });
    let platform = SweepPlatform(WorkerPlatform { env: &env });
    let report = scheduled::sweep(&config, &platform).await;
    if report.outcome == "off" && OFF_LOGGED.with(|logged| logged.replace(true)) {
        return;
    }
    console_log!("{}", report.log_line());
}

/// The fetch handler's platform, plus the `Link` header the deliveries listing pages with.
struct SweepPlatform<'a>(WorkerPlatform<'a>);

impl Platform for SweepPlatform<'_> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        self.send_for_page(request)
            .await
            .map(|(response, _)| response)
    }

    async fn send_for_page(
        &self,
        request: HttpRequest,
    ) -> Result<(HttpResponse, Option<String>), String> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(|e| e.to_string())?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(request.method.to_string()))
            .with_headers(headers);
        if let Some(body) = &request.body {
            init.with_body(Some(JsValue::from_str(body)));
        }
        let outbound = Request::new_with_init(&request.url, &init).map_err(|e| e.to_string())?;
        let mut response = Fetch::Request(outbound)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let header = |name: &str| response.headers().get(name).ok().flatten();
        let (retry_after, link) = (header("Retry-After"), header("Link"));
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((
            HttpResponse {
                status: response.status_code(),
                retry_after,
                body,
            },
            link,
        ))
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        self.0.kv_get(key).await
    }

    async fn kv_put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), String> {
        self.0.kv_put(key, value, ttl_seconds).await
    }

    fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }

    async fn sleep(&self, ms: u64) {
        self.0.sleep(ms).await
    }
}

/// RS256 with the runtime's WebCrypto: `importKey("pkcs8", …, RSASSA-PKCS1-v1_5 / SHA-256)` then
/// `sign`. Errors describe the step, never the key.
pub(crate) async fn sign_rs256(pkcs8_der: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    let describe = |step: &str| {
        let step = step.to_string();
        // DOMException and Error both carry `message`.
        move |err: JsValue| {
            let what = Reflect::get(&err, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_else(|| "unknown error".into());
            format!("WebCrypto {step}: {what}")
        }
    };
    let crypto: Crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(describe("lookup"))?
        .unchecked_into();
    let subtle = crypto.subtle();
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"RSASSA-PKCS1-v1_5".into())
        .map_err(describe("algorithm"))?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into()).map_err(describe("algorithm"))?;
    let key_data = Uint8Array::from(pkcs8_der);
    let usages = Array::of1(&JsValue::from_str("sign"));
    let import = subtle
        .import_key_with_object("pkcs8", &key_data, &algorithm, false, &usages)
        .map_err(describe("importKey"))?;
    let key: CryptoKey = JsFuture::from(import)
        .await
        .map_err(describe("importKey"))?
        .unchecked_into();
    let sign = subtle
        .sign_with_object_and_u8_array(&algorithm, &key, message)
        .map_err(describe("sign"))?;
    let signature = JsFuture::from(sign).await.map_err(describe("sign"))?;
    Ok(Uint8Array::new(&signature).to_vec())
}

//! The Workers runtime glue for the cron trigger and for WebCrypto: converts runtime types and calls
//! `scheduled::sweep` then `scheduled::watchdog`; no decision is made here. A child module of `glue`, so it shares the fetch
//! handler's `WorkerPlatform` (fetch, KV, clock) without widening its visibility.

use std::cell::Cell;

use worker::js_sys::{self, Array, Object, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Crypto, CryptoKey};
use worker::{console_log, event, Env, ScheduleContext, ScheduledEvent};

use super::WorkerPlatform;
use crate::config::Config;
use crate::scheduled;

thread_local! {
    // "The sweeper is off" and "the watchdog is off" are logged once per isolate, not on every tick.
    static OFF_LOGGED: Cell<bool> = const { Cell::new(false) };
    static WATCHDOG_OFF_LOGGED: Cell<bool> = const { Cell::new(false) };
}

#[event(scheduled)]
async fn cron(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let config = Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    });
    // The fetch handler's platform: the same fetch (with its abort timeout), KV and clock.
    let platform = WorkerPlatform::new(&env);
    let report = scheduled::sweep(&config, &platform).await;
    if !(report.outcome == "off" && OFF_LOGGED.with(|logged| logged.replace(true))) {
        console_log!("{}", report.log_line());
    }
    // The tick's own time is the watchdog's clock: "queued for 10 minutes" is measured from the
    // moment the cron fired, and a test can fire a tick at any moment it names.
    let now_ms = event.schedule().max(0.0) as u64;
    let report = scheduled::watchdog(&config, &platform, now_ms).await;
    if report.outcome == "off" && WATCHDOG_OFF_LOGGED.with(|logged| logged.replace(true)) {
        return;
    }
    console_log!("{}", report.log_line());
}

/// RS256 with the runtime's WebCrypto: `importKey("pkcs8", …, RSASSA-PKCS1-v1_5 / SHA-256)` then
/// `sign`, for `WorkerPlatform`'s `Platform::sign_rs256`. Errors describe the step, never the key.
pub(super) async fn sign_rs256(pkcs8_der: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
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

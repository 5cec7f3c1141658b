//! The Workers runtime glue: converts `worker::` types to the stages' plain types and back. No decision
//! is made here; everything below `Relay` is plain Rust tested natively.

use std::time::Duration;

use futures_util::StreamExt;

use worker::{
    console_log, event, wasm_bindgen::JsValue, Context, Date, Delay, Env, Fetch, Headers, Method,
    Request, RequestInit, Response,
};

use crate::config::Config;
use crate::delivery::{admit, refuse, Admitted, RegistryMemory, Relay, Reply, RequestHead};
use crate::platform::{HttpRequest, HttpResponse, Platform};
use crate::read;
use crate::respond::{self, DeliveryFacts, Stop};

// The cron trigger (the sweeper) and WebCrypto signing; a child module so it can use WorkerPlatform.
#[path = "glue_scheduled.rs"]
pub(crate) mod scheduled;

/// The KV namespace binding (wrangler.toml) that caches the registry.
const KV_BINDING: &str = "REGISTRY";

thread_local! {
    // An isolate runs one thread and lives for many requests: a leaked cell is its memory tier.
    static MEMORY: &'static RegistryMemory = Box::leak(Box::default());
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    let reply = match handle(&mut req, &env).await {
        Ok(reply) => reply,
        // Only runtime failures (a body that cannot be read, a binding that is missing) get here: the
        // sender sees a generic 500, the operator the cause.
        Err(err) => {
            let stop = Stop::misconfigured("internal error");
            let facts = DeliveryFacts::default();
            let note = vec![format!("runtime error: {err}")];
            Reply {
                status: stop.status,
                body: respond::response_body(&stop, &facts),
                log: Some(respond::log_line(&stop, &facts, 0, &note)),
                headers: Vec::new(),
            }
        }
    };
    if let Some(line) = &reply.log {
        console_log!("{line}");
    }
    let mut response = Response::builder()
        .with_status(reply.status)
        .with_header("Content-Type", "application/json; charset=utf-8")?;
    for (name, value) in &reply.headers {
        response = response.with_header(name, value)?;
    }
    Ok(response.fixed(reply.body.into_bytes()))
}

async fn handle(req: &mut Request, env: &Env) -> worker::Result<Reply> {
    let method = req.method().to_string();
    let path = req.path();
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let (content_type, content_length) = (header("Content-Type"), header("Content-Length"));
    let (signature, event, delivery) = (
        header("X-Hub-Signature-256"),
        header("X-GitHub-Event"),
        header("X-GitHub-Delivery"),
    );
    let head = RequestHead {
        method: &method,
        path: &path,
        content_type: content_type.as_deref(),
        content_length: content_length.as_deref(),
        signature: signature.as_deref(),
        event: event.as_deref(),
        delivery: delivery.as_deref(),
    };
    let config = Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    });
    let platform = WorkerPlatform { env };
    let memory = MEMORY.with(|memory| *memory);
    let relay = Relay::new(&config, &platform, memory);
    Ok(match admit(&head) {
        Err(stop) => refuse(&head, stop),
        Ok(Admitted::Health) => relay.health().await,
        Ok(Admitted::Webhook(kind)) => match read_body(req).await? {
            Ok(body) => relay.deliver(&head, kind, &body).await,
            Err(stop) => refuse(&head, stop),
        },
    })
}

/// Reads the body chunk by chunk and stops at GitHub's 25 MB cap, so a chunked upload without a
/// Content-Length cannot make the isolate buffer more than that.
async fn read_body(req: &mut Request) -> worker::Result<Result<Vec<u8>, Stop>> {
    if req.inner().body().is_none() {
        return Ok(Ok(Vec::new()));
    }
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Err(stop) = read::check_length((body.len() + chunk.len()) as u64) {
            return Ok(Err(stop));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

struct WorkerPlatform<'a> {
    env: &'a Env,
}

impl Platform for WorkerPlatform<'_> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, String> {
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
        let retry_after = response.headers().get("Retry-After").ok().flatten();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok(HttpResponse {
            status: response.status_code(),
            retry_after,
            body,
        })
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
        let kv = self.env.kv(KV_BINDING).map_err(|e| e.to_string())?;
        kv.get(key).text().await.map_err(|e| e.to_string())
    }

    async fn kv_put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), String> {
        let kv = self.env.kv(KV_BINDING).map_err(|e| e.to_string())?;
        let mut put = kv.put(key, value).map_err(|e| e.to_string())?;
        if let Some(ttl) = ttl_seconds {
            put = put.expiration_ttl(ttl);
        }
        put.execute().await.map_err(|e| e.to_string())
    }

    fn now_ms(&self) -> u64 {
        Date::now().as_millis()
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

//! The whole delivery path, natively, against a scripted fake world (GitHub, KV, clock).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use serde_json::{json, Value};

use super::*;
use crate::fixtures::{fixture, push_json_touching};
use crate::platform::{HttpRequest, HttpResponse};
use crate::verify::sign;

const SECRET: &str = "It's a Secret to Everybody";
const CENTRAL: &str = "Studio/upm-auto-publisher";
const REGISTRY_URL: &str =
    "http://github.test/repos/Studio/upm-auto-publisher/contents/config/repositories.json";
const DISPATCH_URL: &str = "http://github.test/repos/Studio/upm-auto-publisher/dispatches";
const REGISTRY_FILE: &str = r#"{"repositories": [
    {"url": "https://github.com/Codertocat/Hello-World", "status": "active"},
    {"url": "https://github.com/Studio/Retired", "status": "disabled"},
    {"url": "https://github.com/Studio/Release-Train", "status": "active", "branch": "release"}
]}"#;

/// A fake GitHub, KV and clock. GitHub answers from per-URL scripts (the last answer repeats); every
/// request is recorded. Sleeping advances the clock instead of waiting.
struct World {
    now: Cell<u64>,
    kv: RefCell<HashMap<String, String>>,
    ttls: RefCell<HashMap<String, Option<u64>>>,
    scripts: RefCell<HashMap<String, VecDeque<Result<HttpResponse, String>>>>,
    sent: RefCell<Vec<HttpRequest>>,
    slept: RefCell<Vec<u64>>,
    /// Time each GitHub request takes.
    latency_ms: u64,
}

fn ok(status: u16, body: &str) -> Result<HttpResponse, String> {
    Ok(HttpResponse {
        status,
        retry_after: None,
        body: body.to_string(),
    })
}

impl World {
    fn new() -> World {
        let world = World {
            now: Cell::new(1_800_000_000_000),
            kv: RefCell::default(),
            ttls: RefCell::default(),
            scripts: RefCell::default(),
            sent: RefCell::default(),
            slept: RefCell::default(),
            latency_ms: 20,
        };
        world.script(REGISTRY_URL, vec![ok(200, REGISTRY_FILE)]);
        world.script(DISPATCH_URL, vec![ok(204, "")]);
        world
    }

    fn script(&self, url: &str, answers: Vec<Result<HttpResponse, String>>) {
        self.scripts
            .borrow_mut()
            .insert(url.to_string(), answers.into());
    }

    fn sent_to(&self, url: &str) -> Vec<HttpRequest> {
        self.sent
            .borrow()
            .iter()
            .filter(|r| r.url == url)
            .cloned()
            .collect()
    }

    fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Platform for World {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        self.advance(self.latency_ms);
        let url = request.url.clone();
        self.sent.borrow_mut().push(request);
        let mut scripts = self.scripts.borrow_mut();
        let script = scripts
            .get_mut(&url)
            .unwrap_or_else(|| panic!("the worker requested an unexpected URL: {url}"));
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script
                .front()
                .cloned()
                .expect("a script has at least one answer")
        }
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>, String> {
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
}

fn config_with(extra: &[(&str, &str)]) -> Config {
    // Two secrets, as during a rotation.
    let secrets = format!("old-secret,{SECRET}");
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("WEBHOOK_SECRET", secrets.as_str()),
        ("GITHUB_TOKEN", "ghs_token_value"),
        ("DISPATCH_REPO", CENTRAL),
        ("GITHUB_API", "http://github.test"),
    ]);
    for (k, v) in extra {
        vars.insert(k, v);
    }
    Config::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
}

/// Every delivery gets its own GUID, as from GitHub; sending one `Delivery` twice is a redelivery.
fn next_delivery_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "72d3162e-cc78-11e3-81ab-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A delivery as GitHub sends it: signed JSON body with the event and delivery headers.
struct Delivery {
    event: String,
    body: Vec<u8>,
    content_type: &'static str,
    signature: Option<String>,
    id: Option<String>,
}

impl Delivery {
    fn new(event: &str, body: Vec<u8>) -> Delivery {
        let signature = Some(sign(SECRET.as_bytes(), &body));
        Delivery {
            event: event.to_string(),
            body,
            content_type: "application/json",
            signature,
            id: Some(next_delivery_id()),
        }
    }

    fn push(value: &Value) -> Delivery {
        Delivery::new("push", serde_json::to_vec(value).unwrap())
    }

    fn form(mut self) -> Delivery {
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&self.body).unwrap())
            .finish();
        self.body = encoded.into_bytes();
        self.content_type = "application/x-www-form-urlencoded";
        self.signature = Some(sign(SECRET.as_bytes(), &self.body));
        self
    }
}

struct Outcome {
    status: u16,
    body: Value,
    log: Value,
}

fn deliver(
    world: &World,
    config: &Config,
    memory: &RegistryMemory,
    delivery: &Delivery,
) -> Outcome {
    let length = delivery.body.len().to_string();
    let head = RequestHead {
        method: "POST",
        path: "/",
        content_type: Some(delivery.content_type),
        content_length: Some(&length),
        signature: delivery.signature.as_deref(),
        event: Some(&delivery.event),
        delivery: delivery.id.as_deref(),
    };
    let reply = match admit(&head) {
        Ok(Admitted::Webhook(kind)) => pollster::block_on(
            Relay::new(config, world, memory).deliver(&head, kind, &delivery.body),
        ),
        Ok(Admitted::Health) => panic!("POST / is not health"),
        Err(stop) => refuse(&head, stop),
    };
    let log = reply.log.as_deref().expect("every delivery logs one line");
    assert!(!log.contains('\n'), "one line: {log}");
    for secret in [SECRET, "old-secret", "ghs_token_value"] {
        assert!(
            !log.contains(secret) && !reply.body.contains(secret),
            "a secret leaked: {log}"
        );
    }
    Outcome {
        status: reply.status,
        body: serde_json::from_str(&reply.body).expect("body is JSON"),
        log: serde_json::from_str(log).expect("log line is JSON"),
    }
}

fn run(delivery: &Delivery) -> (World, Outcome) {
    let world = World::new();
    let outcome = deliver_in(&world, delivery);
    (world, outcome)
}

/// A delivery in a prepared world, with the default configuration and a new isolate.
fn deliver_in(world: &World, delivery: &Delivery) -> Outcome {
    deliver(
        world,
        &config_with(&[]),
        &RegistryMemory::default(),
        delivery,
    )
}

fn package_push() -> Value {
    push_json_touching(&["Packages/com.codertocat.hello/package.json"])
}

#[test]
fn a_package_json_push_is_dispatched() {
    let (world, out) = run(&Delivery::push(&package_push()));
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body["outcome"], "dispatched");
    let id = out.body["delivery"].as_str().unwrap();
    assert!(id.starts_with("72d3162e-cc78-11e3-81ab-"), "{id}");
    assert_eq!(out.body["package_path"], "Packages/com.codertocat.hello");
    assert_eq!(out.body["attempts"], 1);

    let dispatches = world.sent_to(DISPATCH_URL);
    assert_eq!(dispatches.len(), 1);
    let request = &dispatches[0];
    assert_eq!(request.method, "POST");
    assert!(request
        .headers
        .contains(&("Authorization", "Bearer ghs_token_value".into())));
    let sent: Value = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["event_type"], "package_publish");
    assert_eq!(
        sent["client_payload"],
        json!({
            "repository": "Codertocat/Hello-World",
            "commit_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "commit_message": "feat: bump package version",
            "commit_author": "Codertocat",
            "branch": "master",
            "package_path": "Packages/com.codertocat.hello",
            "delivery": id,
        })
    );

    assert_eq!(out.log["level"], "info");
    assert_eq!(out.log["outcome"], "dispatched");
    assert_eq!(out.log["event"], "push");
    assert_eq!(out.log["repository"], "Codertocat/Hello-World");
    assert_eq!(
        out.log["elapsed_ms"], 40,
        "registry fetch + dispatch at 20 ms each"
    );
}

#[test]
fn form_encoded_deliveries_are_read() {
    let (world, out) = run(&Delivery::push(&package_push()).form());
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    assert_eq!(world.sent_to(DISPATCH_URL).len(), 1);
}

#[test]
fn unicode_commit_messages_travel_intact() {
    let mut push = package_push();
    push["head_commit"]["message"] = json!("feat(ui): 🎮 ジョイスティック対応 — ünïcödé");
    push["head_commit"]["author"]["name"] = json!("Zoë Ångström");
    let (world, out) = run(&Delivery::push(&push));
    assert_eq!(out.body["outcome"], "dispatched");
    let sent: Value =
        serde_json::from_str(world.sent_to(DISPATCH_URL)[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        sent["client_payload"]["commit_message"],
        "feat(ui): 🎮 ジョイスティック対応 — ünïcödé"
    );
    assert_eq!(sent["client_payload"]["commit_author"], "Zoë Ångström");
}

#[test]
fn signatures_are_checked_before_anything_else() {
    let mut unsigned = Delivery::push(&package_push());
    unsigned.signature = None;
    let mut wrong = Delivery::push(&package_push());
    wrong.signature = Some(sign(b"not-our-secret", &wrong.body));
    let mut garbage = Delivery::push(&package_push());
    garbage.signature = Some("sha256=💥".into());
    for delivery in [unsigned, wrong, garbage] {
        let (world, out) = run(&delivery);
        assert_eq!(out.status, 401);
        assert_eq!(out.body["outcome"], "rejected");
        assert!(
            world.sent.borrow().is_empty(),
            "nothing is fetched for an unsigned delivery"
        );
    }
}

#[test]
fn the_previous_secret_still_verifies_during_rotation() {
    let mut delivery = Delivery::push(&package_push());
    delivery.signature = Some(sign(b"old-secret", &delivery.body));
    assert_eq!(run(&delivery).1.body["outcome"], "dispatched");
}

#[test]
fn ping_is_pong_and_other_events_are_ignored() {
    let (world, out) = run(&Delivery::new("ping", fixture("ping/payload.json")));
    assert_eq!(
        (out.status, out.body["reason"].as_str()),
        (200, Some("pong"))
    );
    assert!(world.sent.borrow().is_empty());

    let (_, out) = run(&Delivery::new(
        "issues",
        fixture("issues/opened.payload.json"),
    ));
    assert_eq!(out.status, 200);
    assert_eq!(out.body["outcome"], "ignored");
    assert_eq!(
        out.body["reason"],
        "issues events are not acted on: only push publishes"
    );
}

#[test]
fn malformed_deliveries_are_400() {
    let mut no_event = Delivery::push(&package_push());
    no_event.event = String::new();
    let mut no_id = Delivery::push(&package_push());
    no_id.id = None;
    let mut odd_id = Delivery::push(&package_push());
    odd_id.id = Some("../../etc/passwd".into());
    let not_json = Delivery::new("push", b"{\"ref\": ".to_vec());
    let wrong_shape = Delivery::new("push", br#"{"ref": 7, "after": "x"}"#.to_vec());
    for (delivery, expected) in [
        (no_event, "missing X-GitHub-Event header"),
        (no_id, "missing X-GitHub-Delivery header"),
        (odd_id, "malformed X-GitHub-Delivery header"),
        (not_json, "payload is not valid JSON"),
        (wrong_shape, "payload field ref"),
    ] {
        let (_, out) = run(&delivery);
        assert_eq!(out.status, 400, "{expected}");
        let reason = out.body["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(expected),
            "{reason} should start with {expected}"
        );
    }
}

#[test]
fn pushes_that_do_not_publish_are_ignored_with_their_reason() {
    let mut other_branch = package_push();
    other_branch["ref"] = json!("refs/heads/feature/x");
    let mut unregistered = package_push();
    unregistered["repository"]["full_name"] = json!("Somebody/Else");
    let mut disabled = package_push();
    disabled["repository"]["full_name"] = json!("studio/retired");
    let mut release_train = package_push();
    release_train["repository"]["full_name"] = json!("Studio/Release-Train");
    let cases = [
        (
            fixture_value("push/payload.json"),
            "tag push (simple-tag): only branch pushes publish",
        ),
        (
            fixture_value("push/with-new-branch.payload.json"),
            "no package.json added or modified",
        ),
        (
            push_json_touching(&["Packages/a/my-package.json"]),
            "no package.json added or modified",
        ),
        (
            other_branch,
            "push to feature/x, but Codertocat/Hello-World publishes from master",
        ),
        (
            unregistered,
            "Somebody/Else is not in the registry (config/repositories.json)",
        ),
        (disabled, "studio/retired is disabled in the registry"),
        (
            release_train,
            "push to master, but Studio/Release-Train publishes from release",
        ),
    ];
    for (push, reason) in cases {
        let (world, out) = run(&Delivery::push(&push));
        assert_eq!(out.status, 200, "{reason}");
        assert_eq!(out.body["outcome"], "ignored");
        assert_eq!(out.body["reason"], reason);
        assert!(world.sent_to(DISPATCH_URL).is_empty(), "{reason}");
    }
}

fn fixture_value(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

#[test]
fn payload_only_checks_do_not_touch_the_registry() {
    let (world, _) = run(&Delivery::push(&fixture_value(
        "push/with-new-branch.payload.json",
    )));
    assert!(world.sent.borrow().is_empty());
}

#[test]
fn dispatch_is_retried_then_succeeds() {
    let world = World::new();
    world.script(
        DISPATCH_URL,
        vec![
            ok(502, "bad gateway"),
            Err("connection reset".into()),
            ok(204, ""),
        ],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 200);
    assert_eq!(out.body["outcome"], "dispatched");
    assert_eq!(out.body["attempts"], 3);
    assert_eq!(*world.slept.borrow(), vec![250, 500]);
    assert_eq!(out.log["level"], "warn", "retries are worth a look");
    assert_eq!(out.log["notes"].as_array().unwrap().len(), 2);
}

#[test]
fn github_refusing_the_dispatch_is_502() {
    let world = World::new();
    world.script(
        DISPATCH_URL,
        vec![ok(500, r#"{"message":"Internal Server Error"}"#)],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert_eq!(out.body["outcome"], "failed");
    assert_eq!(world.sent_to(DISPATCH_URL).len(), 3);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("GitHub answered 500: Internal Server Error"));
    assert_eq!(out.log["level"], "error");

    let world = World::new();
    world.script(
        DISPATCH_URL,
        vec![ok(401, r#"{"message":"Bad credentials"}"#)],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert_eq!(world.sent_to(DISPATCH_URL).len(), 1, "a 401 is not retried");
}

#[test]
fn dry_run_logs_the_dispatch_instead_of_sending_it() {
    let world = World::new();
    let config = config_with(&[("DRY_RUN", "true"), ("GITHUB_TOKEN", "")]);
    let out = deliver(
        &world,
        &config,
        &RegistryMemory::default(),
        &Delivery::push(&package_push()),
    );
    assert_eq!(out.status, 200);
    assert_eq!(out.body["outcome"], "dispatched");
    assert_eq!(out.body["dry_run"], true);
    assert!(world.sent_to(DISPATCH_URL).is_empty());
    assert_eq!(out.log["level"], "info");
    for would in [&out.log["would_dispatch"], &out.body["would_dispatch"]] {
        assert_eq!(would["url"], DISPATCH_URL);
        assert_eq!(would["body"]["event_type"], "package_publish");
        assert_eq!(
            would["body"]["client_payload"]["package_path"],
            "Packages/com.codertocat.hello"
        );
    }
}

#[test]
fn registry_is_fetched_once_then_served_from_memory_and_kv() {
    let world = World::new();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    for _ in 0..3 {
        assert_eq!(
            deliver(&world, &config, &memory, &Delivery::push(&package_push())).body["outcome"],
            "dispatched"
        );
    }
    assert_eq!(
        world.sent_to(REGISTRY_URL).len(),
        1,
        "memory tier serves the rest"
    );
    // A new isolate (empty memory) finds the copy in KV.
    let fresh_isolate = RegistryMemory::default();
    deliver(
        &world,
        &config,
        &fresh_isolate,
        &Delivery::push(&package_push()),
    );
    assert_eq!(
        world.sent_to(REGISTRY_URL).len(),
        1,
        "KV tier serves a new isolate"
    );
    // After the TTL, GitHub is asked again.
    world.advance(61_000);
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(world.sent_to(REGISTRY_URL).len(), 2);
}

#[test]
fn a_stale_registry_beats_a_github_outage() {
    let world = World::new();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.advance(10 * 60_000);
    world.script(REGISTRY_URL, vec![ok(503, "unavailable")]);
    let out = deliver(
        &world,
        &config,
        &RegistryMemory::default(),
        &Delivery::push(&package_push()),
    );
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    let note = out.log["notes"][0].as_str().unwrap();
    assert!(
        note.contains("GitHub answered 503") && note.contains("600 s ago"),
        "{note}"
    );
}

#[test]
fn no_registry_anywhere_is_502_so_github_can_redeliver() {
    let world = World::new();
    world.script(REGISTRY_URL, vec![ok(404, r#"{"message":"Not Found"}"#)]);
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert_eq!(out.body["outcome"], "failed");
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("GitHub answered 404: Not Found"));

    world.script(
        REGISTRY_URL,
        vec![ok(
            200,
            r#"{"repositories": [{"url": "x", "status": "active"}]}"#,
        )],
    );
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("repositories[0].url"));
}

#[test]
fn a_push_that_edits_the_registry_refreshes_it_at_once() {
    let world = World::new();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.script(REGISTRY_URL, vec![ok(200, r#"{"repositories": []}"#)]);

    let mut edit = push_json_touching(&["config/repositories.json"]);
    edit["repository"]["full_name"] = json!(CENTRAL);
    let out = deliver(&world, &config, &memory, &Delivery::push(&edit));
    assert_eq!(out.body["reason"], "no package.json added or modified");
    assert_eq!(
        out.log["notes"][0],
        "registry: refreshed because this push changed it"
    );

    // Within the TTL, yet the repository is gone: the edit took effect immediately.
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(
        out.body["reason"],
        "Codertocat/Hello-World is not in the registry (config/repositories.json)"
    );
}

#[test]
fn misconfiguration_is_a_500_for_authenticated_senders_only() {
    let world = World::new();
    let config = config_with(&[("DISPATCH_REPO", "")]);
    let memory = RegistryMemory::default();
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(out.status, 500);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("DISPATCH_REPO is not set"));

    let mut unsigned = Delivery::push(&package_push());
    unsigned.signature = None;
    assert_eq!(deliver(&world, &config, &memory, &unsigned).status, 401);

    let no_secret = config_with(&[("WEBHOOK_SECRET", "")]);
    let out = deliver(
        &world,
        &no_secret,
        &memory,
        &Delivery::push(&package_push()),
    );
    assert_eq!(out.status, 500);
    assert!(world.sent.borrow().is_empty());
}

#[test]
fn admission_refuses_before_the_body_is_read() {
    let refused = |method, path, content_type: Option<&str>, length: Option<&str>| {
        let head = RequestHead {
            method,
            path,
            content_type,
            content_length: length,
            ..RequestHead::default()
        };
        let stop = admit(&head).unwrap_err();
        let reply = refuse(&head, stop);
        assert!(reply.log.is_some());
        reply.status
    };
    assert_eq!(refused("GET", "/", None, None), 405);
    assert_eq!(refused("POST", "/nope", None, None), 404);
    assert_eq!(refused("POST", "/", Some("text/plain"), None), 415);
    assert_eq!(
        refused("POST", "/", Some("application/json"), Some("99999999999")),
        413
    );
    let health = RequestHead {
        method: "GET",
        path: "/health",
        ..RequestHead::default()
    };
    assert_eq!(admit(&health), Ok(Admitted::Health));
}

#[test]
fn an_oversized_body_without_a_declared_length_is_413() {
    let world = World::new();
    let big = vec![b' '; (read::MAX_BODY_BYTES + 1) as usize];
    let mut delivery = Delivery::new("push", big);
    delivery.signature = Some(sign(SECRET.as_bytes(), &delivery.body));
    let head = RequestHead {
        method: "POST",
        path: "/",
        content_type: Some("application/json"),
        signature: delivery.signature.as_deref(),
        event: Some("push"),
        delivery: delivery.id.as_deref(),
        ..RequestHead::default()
    };
    let reply = pollster::block_on(
        Relay::new(&config_with(&[]), &world, &RegistryMemory::default()).deliver(
            &head,
            BodyKind::Json,
            &delivery.body,
        ),
    );
    assert_eq!(reply.status, 413);
}

#[test]
fn health_reports_configuration_and_registry_without_secrets() {
    let world = World::new();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    let health = |memory: &RegistryMemory| {
        let reply = pollster::block_on(Relay::new(&config, &world, memory).health());
        assert_eq!(reply.status, 200);
        assert!(!reply.body.contains("ghs_token_value") && !reply.body.contains(SECRET));
        serde_json::from_str::<Value>(&reply.body).unwrap()
    };
    let before = health(&memory);
    assert_eq!(before["status"], "ok");
    assert_eq!(before["dispatch_repo"], CENTRAL);
    assert_eq!(before["registry"], Value::Null);

    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.advance(5_000);
    let after = health(&memory);
    assert_eq!(
        after["registry"],
        json!({"entries": 3, "age_seconds": 5, "tier": "memory"})
    );
    assert_eq!(health(&RegistryMemory::default())["registry"]["tier"], "kv");

    let broken = config_with(&[("GITHUB_TOKEN", "")]);
    let reply = pollster::block_on(Relay::new(&broken, &world, &memory).health());
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["status"], "misconfigured");
    assert_eq!(
        body["problems"][0],
        "GITHUB_TOKEN is not set (or set DRY_RUN=true)"
    );
}

#[test]
fn a_redelivery_of_a_dispatched_delivery_is_a_duplicate() {
    let world = World::new();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let delivery = Delivery::push(&package_push());
    assert_eq!(
        deliver(&world, &config, &memory, &delivery).body["outcome"],
        "dispatched"
    );
    let key = format!("delivery:{}", delivery.id.as_deref().unwrap());
    assert_eq!(world.ttls.borrow()[&key], Some(dedup::TTL_SECONDS));

    world.advance(30_000);
    let again = deliver(&world, &config, &memory, &delivery);
    assert_eq!(again.status, 200);
    assert_eq!(again.body["outcome"], "duplicate");
    assert_eq!(
        again.body["reason"],
        "already dispatched Codertocat/Hello-World@6113728f27ae 30 s ago; this is a redelivery"
    );
    assert_eq!(world.sent_to(DISPATCH_URL).len(), 1, "no second dispatch");
}

#[test]
fn a_failed_or_dry_run_dispatch_leaves_the_delivery_redeliverable() {
    let world = World::new();
    world.script(
        DISPATCH_URL,
        vec![ok(500, "{}"), ok(500, "{}"), ok(500, "{}"), ok(204, "")],
    );
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let delivery = Delivery::push(&package_push());
    assert_eq!(deliver(&world, &config, &memory, &delivery).status, 502);
    assert!(world
        .kv
        .borrow()
        .keys()
        .all(|k| !k.starts_with("delivery:")));
    // GitHub's "Redeliver" of the failed delivery goes through.
    assert_eq!(
        deliver(&world, &config, &memory, &delivery).body["outcome"],
        "dispatched"
    );

    let world = World::new();
    let dry = config_with(&[("DRY_RUN", "true")]);
    deliver(&world, &dry, &memory, &delivery);
    assert_eq!(
        deliver(&world, &dry, &memory, &delivery).body["outcome"],
        "dispatched"
    );
}

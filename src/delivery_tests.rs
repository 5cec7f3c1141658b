//! The whole delivery path, natively, against a scripted fake world (GitHub, KV, clock).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::deadline::DEADLINE_MS;
use crate::fake_world::{answer, answer_retry_after, World, API};
use crate::fixtures::{fixture, push_json_touching};
use crate::isolate::{RecentDispatches, RegistryMemory, RECENT_DISPATCHES};
use crate::registry::CachedRegistry;
use crate::registry_tiers::REFRESH_FAILURE_HOLD_MS;
use crate::verify::sign;

const SECRET: &str = "It's a Secret to Everybody";
const CENTRAL: &str = "Studio/upm-auto-publisher";
const REGISTRY: &str = "/repos/Studio/upm-auto-publisher/contents/config/repositories.json";
const DISPATCH: &str = "/repos/Studio/upm-auto-publisher/dispatches";
const REGISTRY_FILE: &str = r#"{"repositories": [
    {"url": "https://github.com/Codertocat/Hello-World", "status": "active"},
    {"url": "https://github.com/Studio/Retired", "status": "disabled"},
    {"url": "https://github.com/Studio/Release-Train", "status": "active", "branch": "release"}
]}"#;

/// The fake world with what every delivery needs: the registry file and a dispatch endpoint that
/// accepts, each answering after 20 ms.
fn relay_world() -> World {
    let world = World::new();
    world.latency_ms.set(20);
    world.script("GET", REGISTRY, vec![answer(200, REGISTRY_FILE)]);
    world.script("POST", DISPATCH, vec![answer(204, "")]);
    world
}

fn config_with(extra: &[(&str, &str)]) -> Config {
    // Two secrets, as during a rotation.
    let secrets = format!("old-secret,{SECRET}");
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("WEBHOOK_SECRET", secrets.as_str()),
        ("GITHUB_TOKEN", "ghs_token_value"),
        ("DISPATCH_REPO", CENTRAL),
        ("GITHUB_API", API),
        ("HEALTH_TOKEN", "health-token-value"),
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

    /// The request head GitHub sends with it, declaring `length` bytes.
    fn head<'a>(&'a self, length: &'a str) -> RequestHead<'a> {
        RequestHead {
            method: "POST",
            path: "/",
            content_type: Some(self.content_type),
            content_length: Some(length),
            signature: self.signature.as_deref(),
            event: Some(&self.event),
            delivery: self.id.as_deref(),
            authorization: None,
        }
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
    let head = delivery.head(&length);
    let reply = match admit(&head) {
        Ok(Admitted::Webhook { kind, digest, .. }) => pollster::block_on(
            Relay::new(config, world, memory).deliver(&head, kind, &digest, &delivery.body),
        ),
        Ok(Admitted::Health) => panic!("POST / is not health"),
        Err(stop) => refuse(&head, stop),
    };
    // The worker makes these writes after responding (ctx.waitUntil); here, right away.
    for write in &reply.after_response {
        pollster::block_on(world.kv_put(&write.key, &write.value, write.ttl_seconds)).unwrap();
    }
    let log = reply.log.as_deref().expect("every delivery logs one line");
    assert!(!log.contains('\n'), "one line: {log}");
    for secret in [
        SECRET,
        "old-secret",
        "ghs_token_value",
        "health-token-value",
    ] {
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
    let world = relay_world();
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

/// A publishing push. Every call is a different push (its own `after` sha, with the fixture's first 12
/// characters), as dedup by (repository, sha) would otherwise answer the second one `duplicate`.
fn package_push() -> Value {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut push = push_json_touching(&["Packages/com.codertocat.hello/package.json"]);
    push["after"] = json!(format!(
        "6113728f27ae{:028x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    push
}

#[test]
fn a_package_json_push_is_dispatched() {
    let push = package_push();
    let (world, out) = run(&Delivery::push(&push));
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body["outcome"], "dispatched");
    let id = out.body["delivery"].as_str().unwrap();
    assert!(id.starts_with("72d3162e-cc78-11e3-81ab-"), "{id}");
    assert_eq!(out.body["package_path"], "Packages/com.codertocat.hello");
    assert_eq!(out.body["attempts"], 1);

    let dispatches = world.sent_to("POST", DISPATCH);
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
            "commit_sha": push["after"],
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
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
}

#[test]
fn unicode_commit_messages_travel_intact() {
    let mut push = package_push();
    push["head_commit"]["message"] = json!("feat(ui): 🎮 ジョイスティック対応 — ünïcödé");
    push["head_commit"]["author"]["name"] = json!("Zoë Ångström");
    let (world, out) = run(&Delivery::push(&push));
    assert_eq!(out.body["outcome"], "dispatched");
    let sent: Value =
        serde_json::from_str(world.sent_to("POST", DISPATCH)[0].body.as_deref().unwrap()).unwrap();
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
        assert!(
            world.kv_reads.borrow().is_empty(),
            "nothing is read from KV for an unsigned delivery"
        );
        assert!(world.kv.borrow().is_empty(), "nothing is written");
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
        assert!(world.sent_to("POST", DISPATCH).is_empty(), "{reason}");
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
    let world = relay_world();
    world.script(
        "POST",
        DISPATCH,
        vec![
            answer(502, "bad gateway"),
            Err("connection reset by peer 10.0.0.7".into()),
            answer(204, ""),
        ],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 200);
    assert_eq!(out.body["outcome"], "dispatched");
    assert_eq!(out.body["attempts"], 3);
    assert_eq!(*world.slept.borrow(), vec![250, 500]);
    assert_eq!(out.log["level"], "warn", "retries are worth a look");
    let notes = out.log["notes"].to_string();
    assert_eq!(out.log["notes"].as_array().unwrap().len(), 3, "{notes}");
    assert!(
        notes.contains("connection reset by peer 10.0.0.7"),
        "the log keeps the runtime's text: {notes}"
    );
}

#[test]
fn github_refusing_the_dispatch_is_502() {
    let world = relay_world();
    world.script(
        "POST",
        DISPATCH,
        vec![answer(500, r#"{"message":"Internal Server Error"}"#)],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert_eq!(out.body["outcome"], "failed");
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 3);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("GitHub answered 500: Internal Server Error"));
    assert_eq!(out.log["level"], "error");

    let world = relay_world();
    world.script(
        "POST",
        DISPATCH,
        vec![answer(401, r#"{"message":"Bad credentials"}"#)],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert_eq!(
        world.sent_to("POST", DISPATCH).len(),
        1,
        "a 401 is not retried"
    );
}

#[test]
fn dry_run_logs_the_dispatch_instead_of_sending_it() {
    let world = relay_world();
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
    assert!(world.sent_to("POST", DISPATCH).is_empty());
    assert_eq!(out.log["level"], "info");
    for would in [&out.log["would_dispatch"], &out.body["would_dispatch"]] {
        assert_eq!(would["url"], format!("{API}{DISPATCH}"));
        assert_eq!(would["body"]["event_type"], "package_publish");
        assert_eq!(
            would["body"]["client_payload"]["package_path"],
            "Packages/com.codertocat.hello"
        );
    }
}

#[test]
fn registry_is_fetched_once_then_served_from_memory_and_kv() {
    let world = relay_world();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    for _ in 0..3 {
        assert_eq!(
            deliver(&world, &config, &memory, &Delivery::push(&package_push())).body["outcome"],
            "dispatched"
        );
    }
    assert_eq!(
        world.sent_to("GET", REGISTRY).len(),
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
        world.sent_to("GET", REGISTRY).len(),
        1,
        "KV tier serves a new isolate"
    );
    // After the TTL, GitHub is asked again.
    world.advance(61_000);
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(world.sent_to("GET", REGISTRY).len(), 2);
}

#[test]
fn a_stale_registry_beats_a_github_outage() {
    let world = relay_world();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.advance(10 * 60_000);
    world.script("GET", REGISTRY, vec![answer(503, "unavailable")]);
    let out = deliver(
        &world,
        &config,
        &RegistryMemory::default(),
        &Delivery::push(&package_push()),
    );
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    let notes = out.log["notes"].to_string();
    assert!(
        notes.contains("GitHub answered 503") && notes.contains("600 s ago"),
        "{notes}"
    );
    assert_eq!(out.log["level"], "warn", "younger than the maximum age");
}

#[test]
fn no_registry_anywhere_is_502_so_github_can_redeliver() {
    let world = relay_world();
    world.script(
        "GET",
        REGISTRY,
        vec![answer(503, r#"{"message":"Unavailable"}"#)],
    );
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert_eq!(out.body["outcome"], "failed");
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("GitHub answered 503: Unavailable"));
}

#[test]
fn a_registry_github_refuses_to_serve_is_a_configuration_error() {
    for status in [401, 403, 404] {
        let world = relay_world();
        world.script(
            "GET",
            REGISTRY,
            vec![answer(status, r#"{"message":"Not Found"}"#)],
        );
        let (config, memory) = (config_with(&[]), RegistryMemory::default());
        let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
        assert_eq!(out.status, 500, "{status}: not an outage");
        assert_eq!(out.log["level"], "error");
        assert!(out.body["reason"]
            .as_str()
            .unwrap()
            .contains("check DISPATCH_REPO, REGISTRY_PATH"));
    }
    // With a copy at hand it is used, and the line is an error all the same.
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.advance(120_000);
    world.script(
        "GET",
        REGISTRY,
        vec![answer(404, r#"{"message":"Not Found"}"#)],
    );
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(out.body["outcome"], "dispatched");
    assert_eq!(out.log["level"], "error");
}

#[test]
fn an_invalid_registry_file_is_a_configuration_error() {
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    world.script(
        "GET",
        REGISTRY,
        vec![answer(
            200,
            r#"{"repositories": [{"url": "x", "status": "active"}]}"#,
        )],
    );
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(out.status, 500);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("repositories[0].url"));
    // A merge-conflict marker after valid JSON.
    let world = relay_world();
    world.script(
        "GET",
        REGISTRY,
        vec![answer(200, &format!("{REGISTRY_FILE}\n<<<<<<< HEAD\n"))],
    );
    let out = deliver(
        &world,
        &config,
        &RegistryMemory::default(),
        &Delivery::push(&package_push()),
    );
    assert_eq!(out.status, 500);
    assert!(
        out.body["reason"]
            .as_str()
            .unwrap()
            .contains("data after the JSON document"),
        "{}",
        out.body
    );
}

#[test]
fn a_push_that_edits_the_registry_refreshes_it_at_once() {
    let world = relay_world();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.script(
        "GET",
        REGISTRY,
        vec![answer(200, r#"{"repositories": []}"#)],
    );

    let mut edit = push_json_touching(&["config/repositories.json"]);
    edit["repository"]["full_name"] = json!(CENTRAL);
    let after = edit["after"].as_str().unwrap().to_string();
    let at_commit = format!("{REGISTRY}?ref={after}");
    world.script(
        "GET",
        &at_commit,
        vec![answer(200, r#"{"repositories": []}"#)],
    );
    let out = deliver(&world, &config, &memory, &Delivery::push(&edit));
    assert_eq!(out.body["reason"], "no package.json added or modified");
    assert_eq!(
        out.log["notes"][0],
        "registry: refreshed because this push changed it"
    );
    assert_eq!(
        world.sent_to("GET", &at_commit).len(),
        1,
        "read as of the pushed commit"
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
    let world = relay_world();
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
    let world = relay_world();
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
    let digest = parse_signature(head.signature).unwrap();
    let reply = pollster::block_on(
        Relay::new(&config_with(&[]), &world, &RegistryMemory::default()).deliver(
            &head,
            BodyKind::Json,
            &digest,
            &delivery.body,
        ),
    );
    assert_eq!(reply.status, 413);
}

#[test]
fn health_reports_configuration_and_registry_without_secrets() {
    let world = relay_world();
    let config = config_with(&[]);
    let memory = RegistryMemory::default();
    let health = |config: &Config, memory: &RegistryMemory, authorization: Option<&str>| {
        let reply = Relay::new(config, &world, memory).health(authorization);
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.headers,
            vec![("Cache-Control", "no-store".to_string())]
        );
        assert!(!reply.body.contains("ghs_token_value") && !reply.body.contains(SECRET));
        assert!(!reply.body.contains("health-token-value"));
        serde_json::from_str::<Value>(&reply.body).unwrap()
    };
    let token = Some("Bearer health-token-value");
    // Anyone: status and version, nothing else.
    for authorization in [None, Some("Bearer wrong"), Some("health-token-value")] {
        let anonymous = health(&config, &memory, authorization);
        assert_eq!(
            anonymous,
            json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
        );
    }
    let before = health(&config, &memory, token);
    assert_eq!(before["status"], "ok");
    assert_eq!(before["dispatch_repo"], CENTRAL);
    assert_eq!(before["registry"], Value::Null);

    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.advance(5_000);
    let reads = world.kv_reads.borrow().len();
    let after = health(&config, &memory, token);
    assert_eq!(
        after["registry"],
        json!({"entries": 3, "age_seconds": 5, "tier": "memory"})
    );
    // From memory only: a new isolate knows nothing yet, and no request reads KV.
    assert_eq!(
        health(&config, &RegistryMemory::default(), token)["registry"],
        Value::Null
    );
    assert_eq!(
        world.kv_reads.borrow().len(),
        reads,
        "/health never reads KV"
    );

    let broken = config_with(&[("GITHUB_TOKEN", "")]);
    let body = health(&broken, &memory, token);
    assert_eq!(body["status"], "misconfigured");
    assert_eq!(
        body["problems"][0],
        "GITHUB_TOKEN is not set (or set DRY_RUN=true)"
    );
    // Without HEALTH_TOKEN configured, nobody gets the details.
    let no_token = config_with(&[("HEALTH_TOKEN", "")]);
    assert_eq!(
        health(&no_token, &memory, Some("Bearer ")),
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
}

#[test]
fn a_registry_copy_past_its_maximum_age_is_an_alarm() {
    let world = relay_world();
    let config = config_with(&[("REGISTRY_MAX_STALE_SECONDS", "3600")]);
    let memory = RegistryMemory::default();
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.script("GET", REGISTRY, vec![answer(503, "unavailable")]);
    world.advance(2 * 3_600_000);
    let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(
        out.body["outcome"], "dispatched",
        "a stale copy still serves"
    );
    assert_eq!(out.log["level"], "error");
    assert!(out.log["notes"]
        .to_string()
        .contains("older than REGISTRY_MAX_STALE_SECONDS"));
    let health = Relay::new(&config, &world, &memory).health(None);
    assert_eq!(
        serde_json::from_str::<Value>(&health.body).unwrap()["status"],
        "stale"
    );
}

#[test]
fn a_failed_refresh_is_not_retried_for_30_seconds() {
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    world.advance(61_000);
    world.script("GET", REGISTRY, vec![answer(503, "unavailable")]);
    for _ in 0..5 {
        let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
        assert_eq!(out.body["outcome"], "dispatched");
        world.advance(5_000);
    }
    assert_eq!(
        world.sent_to("GET", REGISTRY).len(),
        2,
        "one fetch at start, one for the outage's first 25 s"
    );
    world.advance(10_000);
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    assert_eq!(
        world.sent_to("GET", REGISTRY).len(),
        3,
        "asked again after 30 s"
    );

    // Without any copy, the held failure answers 502 at once.
    let world = relay_world();
    world.script("GET", REGISTRY, vec![answer(503, "unavailable")]);
    let memory = RegistryMemory::default();
    for _ in 0..3 {
        let out = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
        assert_eq!(out.status, 502);
    }
    assert_eq!(world.sent_to("GET", REGISTRY).len(), 1);
}

#[test]
fn a_registry_copy_dated_in_the_future_is_not_fresh_forever() {
    let world = relay_world();
    let config = config_with(&[]);
    let key = registry::kv_key(
        &RepoName::parse(CENTRAL).unwrap(),
        "config/repositories.json",
    );
    let year_ahead = world.now_ms() + 365 * 24 * 3_600_000;
    world.kv.borrow_mut().insert(
        key,
        CachedRegistry::to_kv(r#"{"repositories": []}"#, year_ahead),
    );
    let out = deliver(
        &world,
        &config,
        &RegistryMemory::default(),
        &Delivery::push(&package_push()),
    );
    assert_eq!(out.body["outcome"], "dispatched", "GitHub's copy was read");
    assert_eq!(world.sent_to("GET", REGISTRY).len(), 1);
}

#[test]
fn one_deadline_bounds_the_registry_read_and_the_dispatch() {
    let world = relay_world();
    // A slow registry read eats most of the deadline; the dispatch then fails.
    world.stall("GET", REGISTRY, 6_800);
    world.script("POST", DISPATCH, vec![answer(502, "{}")]);
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    let elapsed = out.log["elapsed_ms"].as_u64().unwrap();
    assert!(elapsed <= DEADLINE_MS, "answered after {elapsed} ms");
    assert!(
        out.body["reason"].as_str().unwrap().contains("deadline"),
        "{}",
        out.body
    );
    // 6.8 s + one attempt leaves 1.18 s: no room for a retry (250 ms backoff + 1 s for the attempt).
    // A budget counted from the first dispatch would have retried past the deadline.
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
}

#[test]
fn a_stalled_dispatch_is_cut_off_at_the_deadline() {
    let world = relay_world();
    world.stall("POST", DISPATCH, 20_000);
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502, "{}", out.body);
    let elapsed = out.log["elapsed_ms"].as_u64().unwrap();
    assert_eq!(
        elapsed, DEADLINE_MS,
        "cut off at the deadline, not after 20 s"
    );
    let dispatches = world.sent_to("POST", DISPATCH);
    assert_eq!(dispatches.len(), 1);
    assert_eq!(
        dispatches[0].timeout_ms,
        DEADLINE_MS - 20,
        "bounded by what was left"
    );
    assert!(world.kv.borrow().keys().all(|k| !k.starts_with("push:")));
}

#[test]
fn an_overflowing_retry_after_gives_up_without_waiting() {
    let world = relay_world();
    world.script(
        "POST",
        DISPATCH,
        vec![answer_retry_after(
            429,
            "99999999999999999",
            r#"{"message":"slow down"}"#,
        )],
    );
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert!(world.slept.borrow().is_empty());
}

#[test]
fn the_502_body_never_carries_the_runtimes_error_text() {
    let world = relay_world();
    let raw = "TypeError: Network connection lost. (internal ref 7f3a)";
    world.script("POST", DISPATCH, vec![Err(raw.into())]);
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert!(!out.body.to_string().contains("7f3a"), "{}", out.body);
    assert!(
        out.log["notes"].to_string().contains("7f3a"),
        "the log keeps it"
    );

    let world = relay_world();
    world.script("GET", REGISTRY, vec![Err(raw.into())]);
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.status, 502);
    assert!(!out.body.to_string().contains("7f3a"), "{}", out.body);
}

#[test]
fn one_push_delivered_twice_under_two_ids_is_dispatched_once() {
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let push = package_push();
    let org_hook = Delivery::push(&push);
    let repo_hook = Delivery::push(&push);
    assert_ne!(org_hook.id, repo_hook.id);
    assert_eq!(
        deliver(&world, &config, &memory, &org_hook).body["outcome"],
        "dispatched"
    );
    // In another isolate, so only KV can know.
    let again = deliver(&world, &config, &RegistryMemory::default(), &repo_hook);
    assert_eq!(again.status, 200);
    assert_eq!(again.body["outcome"], "duplicate");
    assert!(
        again.body["reason"]
            .as_str()
            .unwrap()
            .contains("the same push arrived twice"),
        "{}",
        again.body
    );
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
}

#[test]
fn the_dedup_records_are_written_after_the_response_and_the_isolate_remembers_at_once() {
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let delivery = Delivery::push(&package_push());
    let length = delivery.body.len().to_string();
    let head = delivery.head(&length);
    let Ok(Admitted::Webhook { kind, digest, .. }) = admit(&head) else {
        panic!("admitted")
    };
    let relay = Relay::new(&config, &world, &memory);
    let reply = pollster::block_on(relay.deliver(&head, kind, &digest, &delivery.body));
    assert_eq!(reply.status, 200);
    let keys: Vec<&str> = reply
        .after_response
        .iter()
        .map(|w| w.key.as_str())
        .collect();
    // The registry copy for other isolates, and the dedup record under the delivery id (what the
    // sweeper looks up) and under the push.
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys[0].starts_with("registry:"));
    assert!(keys[1].starts_with("delivery:") && keys[2].starts_with("push:"));
    for write in &reply.after_response[1..] {
        let record: Value = serde_json::from_str(&write.value).unwrap();
        assert_eq!(record["delivery"], delivery.id.as_deref().unwrap());
        assert_eq!(write.ttl_seconds, Some(dedup::TTL_SECONDS));
    }
    assert!(
        world.kv.borrow().is_empty(),
        "nothing written before the response"
    );
    // The KV write has not happened yet; the same isolate still answers duplicate.
    let again = pollster::block_on(Relay::new(&config, &world, &memory).deliver(
        &head,
        kind,
        &digest,
        &delivery.body,
    ));
    assert_eq!(
        serde_json::from_str::<Value>(&again.body).unwrap()["outcome"],
        "duplicate"
    );
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
}

#[test]
fn two_copies_in_flight_at_once_dispatch_once() {
    let world = relay_world();
    world.yield_on_send.set(true);
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    // Warm the registry so both copies go straight to dedup.
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    let delivery = Delivery::push(&package_push());
    let length = delivery.body.len().to_string();
    let head = delivery.head(&length);
    let Ok(Admitted::Webhook { kind, digest, .. }) = admit(&head) else {
        panic!("admitted")
    };
    let (one, two) = (
        Relay::new(&config, &world, &memory),
        Relay::new(&config, &world, &memory),
    );
    let (a, b) = pollster::block_on(join(
        one.deliver(&head, kind, &digest, &delivery.body),
        two.deliver(&head, kind, &digest, &delivery.body),
    ));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.body, b.body);
    assert_eq!(
        world.sent_to("POST", DISPATCH).len(),
        2,
        "the warm-up and one"
    );
    assert!(
        memory.in_flight.borrow().is_empty(),
        "the in-flight set is emptied"
    );
}

#[test]
fn a_cold_isolate_reads_the_dedup_records_while_the_registry_is_fetched() {
    let world = relay_world();
    world.yield_on_send.set(true);
    let out = deliver_in(&world, &Delivery::push(&package_push()));
    assert_eq!(out.body["outcome"], "dispatched");
    let events = world.events.borrow().clone();
    let at = |prefix: &str| {
        events
            .iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {events:?}"))
    };
    assert!(
        at("kv:push:") < at(&format!("answered:{API}{REGISTRY}")),
        "the dedup read went out before GitHub answered the registry read: {events:?}"
    );
    // A warm isolate reads them only for a push that publishes: none for an unregistered one.
    let memory = RegistryMemory::default();
    let config = config_with(&[]);
    deliver(&world, &config, &memory, &Delivery::push(&package_push()));
    let reads = world.kv_reads.borrow().len();
    let mut elsewhere = package_push();
    elsewhere["repository"]["full_name"] = json!("Somebody/Else");
    deliver(&world, &config, &memory, &Delivery::push(&elsewhere));
    assert_eq!(world.kv_reads.borrow().len(), reads);
}

#[test]
fn a_missing_or_malformed_signature_is_refused_before_the_body() {
    for signature in [None, Some("sha1=abc"), Some("sha256=zz")] {
        let head = RequestHead {
            method: "POST",
            path: "/",
            content_type: Some("application/json"),
            content_length: Some("26214400"),
            signature,
            event: Some("push"),
            delivery: Some("d-1"),
            ..RequestHead::default()
        };
        let stop = admit(&head).unwrap_err();
        assert_eq!(stop.status, 401, "{signature:?}");
        let reply = refuse(&head, stop);
        assert!(reply.body.contains("\"delivery\":\"d-1\""));
    }
}

#[test]
fn a_redelivery_of_a_dispatched_delivery_is_a_duplicate() {
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let delivery = Delivery::push(&package_push());
    assert_eq!(
        deliver(&world, &config, &memory, &delivery).body["outcome"],
        "dispatched"
    );
    let key = format!("push:codertocat/hello-world:{}", push_after(&delivery));
    assert_eq!(world.ttls.borrow()[&key], Some(dedup::TTL_SECONDS));

    world.advance(30_000);
    // Another isolate: KV's record answers, not the isolate's memory.
    let again = deliver(&world, &config, &RegistryMemory::default(), &delivery);
    assert_eq!(again.status, 200);
    assert_eq!(again.body["outcome"], "duplicate");
    assert_eq!(
        again.body["reason"],
        "already dispatched Codertocat/Hello-World@6113728f27ae 30 s ago; this is a redelivery"
    );
    assert_eq!(
        world.sent_to("POST", DISPATCH).len(),
        1,
        "no second dispatch"
    );
}

fn push_after(delivery: &Delivery) -> String {
    let value: Value = serde_json::from_slice(&delivery.body).unwrap();
    value["after"].as_str().unwrap().to_string()
}

#[test]
fn the_dispatch_path_reads_only_the_push_record() {
    // Records are written under both keys; a redelivery is the same push, so the push key alone
    // decides. A record under the delivery id alone (the format before the push key) is the sweeper's
    // to read, not the dispatch path's: one KV read per publishing delivery.
    let world = relay_world();
    let delivery = Delivery::push(&package_push());
    world.kv.borrow_mut().insert(
        format!("delivery:{}", delivery.id.as_deref().unwrap()),
        r#"{"dispatched_at_ms":1799999990000,"repository":"Codertocat/Hello-World","commit_sha":"6113728f27ae"}"#
            .into(),
    );
    let out = deliver_in(&world, &delivery);
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
    // Its redelivery finds the record under the push.
    let again = deliver_in(&world, &delivery);
    assert_eq!(again.body["outcome"], "duplicate", "{}", again.body);
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
}

#[test]
fn a_failed_or_dry_run_dispatch_leaves_the_delivery_redeliverable() {
    let world = relay_world();
    world.script(
        "POST",
        DISPATCH,
        vec![
            answer(500, "{}"),
            answer(500, "{}"),
            answer(500, "{}"),
            answer(204, ""),
        ],
    );
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let delivery = Delivery::push(&package_push());
    assert_eq!(deliver(&world, &config, &memory, &delivery).status, 502);
    assert!(world
        .kv
        .borrow()
        .keys()
        .all(|k| !k.starts_with("delivery:") && !k.starts_with("push:")));
    // GitHub's "Redeliver" of the failed delivery goes through.
    assert_eq!(
        deliver(&world, &config, &memory, &delivery).body["outcome"],
        "dispatched"
    );

    let world = relay_world();
    let dry = config_with(&[("DRY_RUN", "true")]);
    let memory = RegistryMemory::default();
    deliver(&world, &dry, &memory, &delivery);
    assert_eq!(
        deliver(&world, &dry, &memory, &delivery).body["outcome"],
        "dispatched"
    );
}

// ---------------------------------------------------------------------------------------------------
// The hostile catalogue: requests an attacker, a broken proxy or a confused client could send, each with
// the status the contract documents. For every one: nothing is dispatched, no secret is in the response
// or the log line (checked by `deliver`-like `send_hostile`), no dedup record is written, and the next
// valid delivery in the same isolate still dispatches. tests/workerd/hostile.test.mjs sends a
// representative subset to the built worker.

/// One hostile request. `None` leaves a header out; the body is sent as it is.
struct Hostile {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    /// `None`: the body's real length; `Some(None)`: no Content-Length (chunked).
    content_length: Option<Option<String>>,
    /// `Sign`: signed with the webhook secret; otherwise the header as given.
    signature: Signature,
    event: Option<&'static str>,
    delivery: Option<String>,
    body: Vec<u8>,
    /// How GitHub answers while this request is handled (the registry is warm unless scripted here).
    upstream: Upstream,
    status: u16,
}

#[derive(Clone)]
enum Signature {
    Sign,
    SignWith(&'static str),
    Header(String),
    Absent,
}

#[derive(Clone, Copy)]
enum Upstream {
    Healthy,
    RegistryDown,
    RegistryMissing,
    RegistryGarbage,
    DispatchRefused,
    DispatchDown,
    DispatchReset,
}

impl Hostile {
    fn push(name: &'static str, body: Vec<u8>, status: u16) -> Hostile {
        Hostile {
            name,
            method: "POST",
            path: "/",
            content_type: Some("application/json"),
            content_length: None,
            signature: Signature::Sign,
            event: Some("push"),
            delivery: Some(next_delivery_id()),
            body,
            upstream: Upstream::Healthy,
            status,
        }
    }

    fn json(name: &'static str, value: Value, status: u16) -> Hostile {
        Hostile::push(name, serde_json::to_vec(&value).unwrap(), status)
    }

    fn with(mut self, change: impl FnOnce(&mut Hostile)) -> Hostile {
        change(&mut self);
        self
    }
}

fn valid_push_bytes() -> Vec<u8> {
    serde_json::to_vec(&package_push()).unwrap()
}

fn push_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut push = package_push();
    change(&mut push);
    push
}

fn form_body(payload: &[u8]) -> Vec<u8> {
    let mut body = b"payload=".to_vec();
    body.extend_from_slice(payload);
    body
}

fn hostile_catalogue() -> Vec<Hostile> {
    let sig = |s: &str| Signature::Header(s.to_string());
    let valid = valid_push_bytes;
    let mut invalid_utf8_skipped = valid();
    let at = find(&invalid_utf8_skipped, b"\"compare\":\"") + 11;
    invalid_utf8_skipped[at] = 0xFF;
    let mut invalid_utf8_read = valid();
    let at = find(&invalid_utf8_read, b"feat: bump");
    invalid_utf8_read[at] = 0xC3;
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(valid());
    let deep = format!(
        "{{\"ref\":\"refs/heads/master\",\"x\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let long_id = "a".repeat(101);
    vec![
        // --- signature (401) ---
        Hostile::push("no signature", valid(), 401).with(|h| h.signature = Signature::Absent),
        Hostile::push("empty signature", valid(), 401).with(|h| h.signature = sig("")),
        Hostile::push("sha1 signature", valid(), 401)
            .with(|h| h.signature = sig("sha1=0123456789abcdef0123456789abcdef01234567")),
        Hostile::push("upper-case prefix", valid(), 401)
            .with(|h| h.signature = sig(&format!("SHA256={}", "0".repeat(64)))),
        Hostile::push("short digest", valid(), 401).with(|h| h.signature = sig("sha256=abc")),
        Hostile::push("digest too long", valid(), 401)
            .with(|h| h.signature = sig(&format!("sha256={}", "0".repeat(66)))),
        Hostile::push("non-hex digest", valid(), 401)
            .with(|h| h.signature = sig(&format!("sha256={}", "zz".repeat(32)))),
        Hostile::push("non-ASCII digest", valid(), 401)
            .with(|h| h.signature = sig(&format!("sha256={}", "é".repeat(32)))),
        Hostile::push("10 KB signature header", valid(), 401)
            .with(|h| h.signature = sig(&format!("sha256={}", "a".repeat(10_000)))),
        Hostile::push("two signatures in one header", valid(), 401).with(|h| {
            let one = sign(SECRET.as_bytes(), &h.body);
            h.signature = Signature::Header(format!("{one},{one}"));
        }),
        Hostile::push("signed with another secret", valid(), 401)
            .with(|h| h.signature = Signature::SignWith("not-our-secret")),
        Hostile::push("signed with an empty secret", valid(), 401)
            .with(|h| h.signature = Signature::SignWith("")),
        Hostile::push("signature of a different body", valid(), 401).with(|h| {
            h.signature = Signature::Header(sign(SECRET.as_bytes(), b"{}"));
        }),
        Hostile::push("zero digest", valid(), 401)
            .with(|h| h.signature = sig(&format!("sha256={}", "0".repeat(64)))),
        // --- headers (400 / 413) ---
        Hostile::push("no X-GitHub-Event", valid(), 400).with(|h| h.event = None),
        Hostile::push("blank X-GitHub-Event", valid(), 400).with(|h| h.event = Some("  ")),
        Hostile::push("no X-GitHub-Delivery", valid(), 400).with(|h| h.delivery = None),
        Hostile::push("path traversal in X-GitHub-Delivery", valid(), 400)
            .with(|h| h.delivery = Some("../../etc/passwd".into())),
        Hostile::push("101-character X-GitHub-Delivery", valid(), 400)
            .with(|h| h.delivery = Some(long_id.clone())),
        Hostile::push("non-ASCII X-GitHub-Delivery", valid(), 400)
            .with(|h| h.delivery = Some("délivery".into())),
        Hostile::push("KV-key separator in X-GitHub-Delivery", valid(), 400)
            .with(|h| h.delivery = Some("a:b".into())),
        Hostile::push("negative Content-Length", valid(), 400)
            .with(|h| h.content_length = Some(Some("-1".into()))),
        Hostile::push("non-numeric Content-Length", valid(), 400)
            .with(|h| h.content_length = Some(Some("lots".into()))),
        Hostile::push("Content-Length over 25 MiB", valid(), 413)
            .with(|h| h.content_length = Some(Some("26214401".into()))),
        Hostile::push("Content-Length beyond u64", valid(), 400)
            .with(|h| h.content_length = Some(Some("99999999999999999999999".into()))),
        Hostile::push(
            "chunked body over 25 MiB",
            vec![b' '; (read::MAX_BODY_BYTES + 1) as usize],
            413,
        )
        .with(|h| h.content_length = Some(None)),
        // --- content type (415) ---
        Hostile::push("no Content-Type", valid(), 415).with(|h| h.content_type = None),
        Hostile::push("text/plain", valid(), 415).with(|h| h.content_type = Some("text/plain")),
        Hostile::push("multipart", valid(), 415)
            .with(|h| h.content_type = Some("multipart/form-data; boundary=x")),
        Hostile::push("application/jsonx", valid(), 415)
            .with(|h| h.content_type = Some("application/jsonx")),
        // --- methods and paths (404 / 405) ---
        Hostile::push("GET /", valid(), 405).with(|h| h.method = "GET"),
        Hostile::push("PUT /webhook", valid(), 405).with(|h| {
            h.method = "PUT";
            h.path = "/webhook";
        }),
        Hostile::push("DELETE /", valid(), 405).with(|h| h.method = "DELETE"),
        Hostile::push("POST /health", valid(), 405).with(|h| h.path = "/health"),
        Hostile::push("POST /.env", valid(), 404).with(|h| h.path = "/.env"),
        Hostile::push("POST /webhook/extra", valid(), 404).with(|h| h.path = "/webhook/extra"),
        Hostile::push("POST //webhook/../admin", valid(), 404)
            .with(|h| h.path = "//webhook/../admin"),
        // --- body encodings (400) ---
        Hostile::push(
            "invalid UTF-8 in a field no stage reads",
            invalid_utf8_skipped,
            400,
        ),
        Hostile::push(
            "invalid UTF-8 in the commit message",
            invalid_utf8_read,
            400,
        ),
        Hostile::push("a UTF-8 byte-order mark", bom, 400),
        Hostile::push("an empty body", Vec::new(), 400),
        Hostile::push("whitespace only", b" \n\t ".to_vec(), 400),
        Hostile::push("NUL bytes", vec![0; 64], 400),
        Hostile::push("gzip bytes", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], 400),
        // --- JSON shapes (400, or 200 ignored when the shape is valid but names nothing) ---
        Hostile::push(
            "a push as a JSON array",
            br#"["refs/heads/master","abc",false,{"full_name":"Codertocat/Hello-World"}]"#.to_vec(),
            400,
        ),
        Hostile::push("null", b"null".to_vec(), 400),
        Hostile::push("a number", b"42".to_vec(), 400),
        Hostile::push("a string", b"\"push\"".to_vec(), 400),
        Hostile::push(
            "trailing data after the payload",
            [valid(), b"\n<<<<<<< HEAD".to_vec()].concat(),
            400,
        ),
        Hostile::push("two payloads", [valid(), valid()].concat(), 400),
        Hostile::push("10,000 nested arrays", deep.into_bytes(), 400),
        Hostile::push("truncated JSON", valid()[..200].to_vec(), 400),
        Hostile::json(
            "no repository",
            push_with(|p| {
                p.as_object_mut().unwrap().remove("repository");
            }),
            400,
        ),
        Hostile::json(
            "repository.full_name is a number",
            push_with(|p| p["repository"]["full_name"] = json!(42)),
            400,
        ),
        Hostile::json(
            "repository.full_name with three segments",
            push_with(|p| p["repository"]["full_name"] = json!("a/b/c")),
            400,
        ),
        Hostile::json(
            "no after",
            push_with(|p| {
                p.as_object_mut().unwrap().remove("after");
            }),
            400,
        ),
        Hostile::json(
            "commits is an object",
            push_with(|p| p["commits"] = json!({"added": []})),
            400,
        ),
        Hostile::json(
            "a commit's added list is a string",
            push_with(|p| p["commits"][0]["added"] = json!("package.json")),
            400,
        ),
        Hostile::json(
            "a path that is a number",
            push_with(|p| p["commits"][0]["modified"] = json!([7])),
            400,
        ),
        Hostile::json(
            "ref refs/heads/ and an empty default branch",
            push_with(|p| {
                p["ref"] = json!("refs/heads/");
                p["repository"]["default_branch"] = json!("");
            }),
            400,
        ),
        Hostile::json(
            "after is not a commit sha",
            push_with(|p| p["after"] = json!("HEAD~1; rm -rf /")),
            400,
        ),
        Hostile::json(
            "a 300-byte branch name",
            push_with(|p| {
                let long = "b".repeat(300);
                p["ref"] = json!(format!("refs/heads/{long}"));
                p["repository"]["default_branch"] = json!(long);
            }),
            400,
        ),
        Hostile::push(
            "a duplicated field",
            {
                let text = String::from_utf8(valid()).unwrap();
                text.replacen("{", "{\"after\":\"0000\",", 1).into_bytes()
            },
            400,
        ),
        Hostile::json(
            "../../package.json",
            push_with(|p| p["commits"][0]["modified"] = json!(["../../package.json"])),
            200,
        ),
        Hostile::json(
            "an absolute /package.json",
            push_with(|p| p["commits"][0]["modified"] = json!(["/package.json"])),
            200,
        ),
        Hostile::json(
            "a backslash path",
            push_with(|p| p["commits"][0]["modified"] = json!(["Packages\\a\\package.json"])),
            200,
        ),
        Hostile::json(
            "a tag named like the branch",
            push_with(|p| p["ref"] = json!("refs/tags/master")),
            200,
        ),
        // --- form encoding (400) ---
        Hostile::push("form without payload", b"other=1".to_vec(), 400)
            .with(|h| h.content_type = Some("application/x-www-form-urlencoded")),
        Hostile::push(
            "form payload with %FF",
            form_body(b"%7B%22a%22%3A%22%FF%22%7D"),
            400,
        )
        .with(|h| h.content_type = Some("application/x-www-form-urlencoded")),
        Hostile::push("form payload with a cut escape %C3", form_body(b"%C3"), 400)
            .with(|h| h.content_type = Some("application/x-www-form-urlencoded")),
        Hostile::push("form payload empty", form_body(b""), 400)
            .with(|h| h.content_type = Some("application/x-www-form-urlencoded")),
        Hostile::push(
            "form payload that is a JSON array",
            form_body(b"%5B1%2C2%5D"),
            400,
        )
        .with(|h| h.content_type = Some("application/x-www-form-urlencoded")),
        // --- upstream faults (5xx, nothing recorded) ---
        Hostile::push("registry: GitHub 503, no copy", valid(), 502)
            .with(|h| h.upstream = Upstream::RegistryDown),
        Hostile::push("registry: GitHub 404, no copy", valid(), 500)
            .with(|h| h.upstream = Upstream::RegistryMissing),
        Hostile::push("registry: a garbage file, no copy", valid(), 500)
            .with(|h| h.upstream = Upstream::RegistryGarbage),
        Hostile::push("dispatch: GitHub 401", valid(), 502)
            .with(|h| h.upstream = Upstream::DispatchRefused),
        Hostile::push("dispatch: GitHub 500 three times", valid(), 502)
            .with(|h| h.upstream = Upstream::DispatchDown),
        Hostile::push("dispatch: connection reset three times", valid(), 502)
            .with(|h| h.upstream = Upstream::DispatchReset),
    ]
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

/// Sends one hostile request the way the glue would (admit, then deliver or refuse).
fn send_hostile(world: &World, config: &Config, memory: &RegistryMemory, h: &Hostile) -> Outcome {
    let signature = match &h.signature {
        Signature::Sign => Some(sign(SECRET.as_bytes(), &h.body)),
        Signature::SignWith(secret) => Some(sign(secret.as_bytes(), &h.body)),
        Signature::Header(value) => Some(value.clone()),
        Signature::Absent => None,
    };
    let length = match &h.content_length {
        None => Some(h.body.len().to_string()),
        Some(declared) => declared.clone(),
    };
    let head = RequestHead {
        method: h.method,
        path: h.path,
        content_type: h.content_type,
        content_length: length.as_deref(),
        signature: signature.as_deref(),
        event: h.event,
        delivery: h.delivery.as_deref(),
        authorization: None,
    };
    let reply = match admit(&head) {
        Ok(Admitted::Webhook { kind, digest, .. }) => pollster::block_on(
            Relay::new(config, world, memory).deliver(&head, kind, &digest, &h.body),
        ),
        Ok(Admitted::Health) => Relay::new(config, world, memory).health(None),
        Err(stop) => refuse(&head, stop),
    };
    for write in &reply.after_response {
        pollster::block_on(world.kv_put(&write.key, &write.value, write.ttl_seconds)).unwrap();
    }
    let log = reply.log.clone().unwrap_or_default();
    for secret in [
        SECRET,
        "old-secret",
        "ghs_token_value",
        "health-token-value",
    ] {
        assert!(
            !log.contains(secret) && !reply.body.contains(secret),
            "{}: a secret leaked",
            h.name
        );
    }
    assert!(!log.contains('\n'), "{}: one log line", h.name);
    Outcome {
        status: reply.status,
        body: serde_json::from_str(&reply.body).expect("body is JSON"),
        log: serde_json::from_str(&log).unwrap_or(Value::Null),
    }
}

fn script_upstream(world: &World, upstream: Upstream) {
    let (registry, dispatch) = match upstream {
        Upstream::Healthy => (answer(200, REGISTRY_FILE), answer(204, "")),
        Upstream::RegistryDown => (answer(503, "{}"), answer(204, "")),
        Upstream::RegistryMissing => (answer(404, r#"{"message":"Not Found"}"#), answer(204, "")),
        Upstream::RegistryGarbage => (answer(200, "<<<<<<< HEAD"), answer(204, "")),
        Upstream::DispatchRefused => (
            answer(200, REGISTRY_FILE),
            answer(401, r#"{"message":"Bad credentials"}"#),
        ),
        Upstream::DispatchDown => (answer(200, REGISTRY_FILE), answer(500, "{}")),
        Upstream::DispatchReset => (answer(200, REGISTRY_FILE), Err("connection reset".into())),
    };
    world.script("GET", REGISTRY, vec![registry]);
    world.script("POST", DISPATCH, vec![dispatch]);
}

#[test]
fn the_hostile_catalogue() {
    let catalogue = hostile_catalogue();
    assert!(catalogue.len() >= 60, "{} requests", catalogue.len());
    let config = config_with(&[]);
    for h in &catalogue {
        let world = relay_world();
        // Upstream faults meet a new isolate with no registry copy; the rest a warm one.
        let memory = RegistryMemory::default();
        if matches!(h.upstream, Upstream::Healthy) {
            deliver(&world, &config, &memory, &Delivery::push(&package_push()));
        }
        script_upstream(&world, h.upstream);
        let dispatches_before = world.sent_to("POST", DISPATCH).len();
        let kv_before = world.kv.borrow().len();
        let out = send_hostile(&world, &config, &memory, h);
        assert_eq!(out.status, h.status, "{}: {}", h.name, out.body);
        assert_ne!(out.body["outcome"], "dispatched", "{}", h.name);
        // A dispatch GitHub refused may have been attempted; any other request reaches no dispatch.
        if !matches!(
            h.upstream,
            Upstream::DispatchRefused | Upstream::DispatchDown | Upstream::DispatchReset
        ) {
            assert_eq!(
                world.sent_to("POST", DISPATCH).len(),
                dispatches_before,
                "{}: nothing dispatched",
                h.name
            );
        }
        assert!(
            world
                .kv
                .borrow()
                .keys()
                .filter(|k| k.starts_with("push:") || k.starts_with("delivery:"))
                .count()
                <= kv_before,
            "{}: no dedup record",
            h.name
        );
        // The next valid delivery still goes through (once GitHub is back; a failed registry read is
        // not retried for REFRESH_FAILURE_HOLD_MS).
        script_upstream(&world, Upstream::Healthy);
        world.advance(REFRESH_FAILURE_HOLD_MS);
        let next = deliver(&world, &config, &memory, &Delivery::push(&package_push()));
        assert_eq!(
            next.body["outcome"], "dispatched",
            "after {}: {}",
            h.name, next.body
        );
    }
}

#[test]
fn recent_dispatches_are_found_by_either_key_and_forgotten_oldest_first() {
    let mut recent = RecentDispatches::default();
    let keys = |i: usize| {
        [
            format!("delivery:{i}"),
            format!("push:studio/core:{i:040x}"),
        ]
    };
    for i in 0..RECENT_DISPATCHES / 2 + 10 {
        recent.remember(&keys(i), &format!("record {i}"));
    }
    assert_eq!(recent.len(), RECENT_DISPATCHES, "bounded");
    // The first ten dispatches (twenty keys) were forgotten, oldest first; the next one is still known.
    assert_eq!(recent.record_for(&keys(9)), None);
    assert_eq!(recent.record_for(&keys(10)).as_deref(), Some("record 10"));
    // Either key finds the record: a copy under another delivery id is the same push.
    let newest = RECENT_DISPATCHES / 2 + 9;
    let by_push = [String::from("delivery:other"), keys(newest)[1].clone()];
    assert_eq!(
        recent.record_for(&by_push).as_deref(),
        Some(&*format!("record {newest}"))
    );
    // Remembering a key again replaces its record without taking a second place in the order.
    recent.remember(&keys(newest), "again");
    assert_eq!(recent.len(), RECENT_DISPATCHES);
    assert_eq!(recent.record_for(&keys(newest)).as_deref(), Some("again"));
}

/// The pull request deliveries: `preview` decides, the rest is the push's path.
#[path = "delivery_preview_tests.rs"]
mod preview_deliveries;

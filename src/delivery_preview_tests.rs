//! `pull_request` deliveries through the whole path, natively, against the scripted fake world.

use serde_json::{json, Value};

use super::*;
use crate::fixtures::fixture_json;

/// A real `pull_request` payload with `action`, and every call a different head (as dedup by head
/// would otherwise answer the second one `duplicate`).
fn pull_request(action: &str) -> Value {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut pr = fixture_json("pull_request/opened.payload.json");
    pr["action"] = json!(action);
    pr["pull_request"]["head"]["sha"] = json!(format!(
        "ec26c3e57ca3{:028x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    pr
}

fn delivery(pr: &Value) -> Delivery {
    Delivery::new("pull_request", serde_json::to_vec(pr).unwrap())
}

#[test]
fn an_opened_pull_request_into_the_publishing_branch_dispatches_its_preview() {
    let pr = pull_request("opened");
    let (world, out) = run(&delivery(&pr));
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    let head = pr["pull_request"]["head"]["sha"].as_str().unwrap();
    assert_eq!(
        out.body["reason"],
        format!(
            "dispatched the preview of Codertocat/Hello-World#2 at {}",
            &head[..12]
        )
    );
    let dispatches = world.sent_to("POST", DISPATCH);
    assert_eq!(dispatches.len(), 1);
    let sent: Value = serde_json::from_str(dispatches[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"event_type": "package_preview", "client_payload": {
            "repository": "Codertocat/Hello-World",
            "pull_request": 2,
            "head_sha": head,
            "base_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
            "base_branch": "master",
            "fork": false,
            "delivery": out.body["delivery"],
        }})
    );
    // One log line, naming the pull request, its base and its head.
    assert_eq!(out.log["event"], "pull_request");
    assert_eq!(out.log["outcome"], "dispatched");
    assert_eq!(out.log["pull_request"], 2);
    assert_eq!(out.log["branch"], "master");
    assert_eq!(out.log["commit_sha"], head);
    assert_eq!(out.log["attempts"], 1);
}

#[test]
fn every_previewing_action_dispatches_and_the_others_are_ignored_with_a_reason() {
    for action in ["opened", "synchronize", "reopened", "ready_for_review"] {
        let (world, out) = run(&delivery(&pull_request(action)));
        assert_eq!(out.body["outcome"], "dispatched", "{action}: {}", out.body);
        assert_eq!(world.sent_to("POST", DISPATCH).len(), 1, "{action}");
    }
    for action in [
        "closed",
        "labeled",
        "edited",
        "converted_to_draft",
        "assigned",
    ] {
        let (world, out) = run(&delivery(&pull_request(action)));
        assert_eq!(out.status, 200, "{action}");
        assert_eq!(out.body["outcome"], "ignored", "{action}");
        assert!(
            out.body["reason"].as_str().unwrap().contains(action),
            "{action}: {}",
            out.body
        );
        assert_eq!(world.calls(), 0, "{action}: decided on the payload alone");
    }
}

#[test]
fn a_draft_is_skipped_then_previewed_when_marked_ready() {
    let mut draft = pull_request("opened");
    draft["pull_request"]["draft"] = json!(true);
    let (world, out) = run(&delivery(&draft));
    assert_eq!(out.body["outcome"], "ignored");
    assert_eq!(
        out.body["reason"],
        "pull request #2 is a draft: previewed once it is marked ready for review"
    );
    assert!(world.sent_to("POST", DISPATCH).is_empty());
    // The same head, marked ready: previewed.
    let mut ready = draft.clone();
    ready["action"] = json!("ready_for_review");
    ready["pull_request"]["draft"] = json!(false);
    let out = deliver_in(&world, &delivery(&ready));
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
}

#[test]
fn other_bases_and_repositories_are_ignored_exactly_like_pushes() {
    let mut other_base = pull_request("opened");
    other_base["pull_request"]["base"]["ref"] = json!("develop");
    let (_, out) = run(&delivery(&other_base));
    assert_eq!(out.status, 200);
    assert_eq!(out.body["outcome"], "ignored");
    assert_eq!(
        out.body["reason"],
        "pull request #2 into develop, but Codertocat/Hello-World publishes from master"
    );

    // The same reasons as a push's for the registry.
    for (repo, reason) in [
        (
            "Studio/Unknown",
            "Studio/Unknown is not in the registry (config/repositories.json)",
        ),
        (
            "Studio/Retired",
            "Studio/Retired is disabled in the registry",
        ),
    ] {
        let mut pr = pull_request("opened");
        pr["repository"]["full_name"] = json!(repo);
        let (world, out) = run(&delivery(&pr));
        assert_eq!(out.body["outcome"], "ignored", "{repo}");
        assert_eq!(out.body["reason"], reason);
        assert!(world.sent_to("POST", DISPATCH).is_empty());
        let mut push = package_push();
        push["repository"]["full_name"] = json!(repo);
        let (_, pushed) = run(&Delivery::push(&push));
        assert_eq!(pushed.body["reason"], reason, "a push says the same");
    }

    // The registry's branch override is the publishing branch of a pull request too.
    let mut release = pull_request("opened");
    release["repository"]["full_name"] = json!("Studio/Release-Train");
    let (_, out) = run(&delivery(&release));
    assert_eq!(
        out.body["reason"],
        "pull request #2 into master, but Studio/Release-Train publishes from release"
    );
    release["pull_request"]["base"]["ref"] = json!("release");
    let (_, out) = run(&delivery(&release));
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
}

#[test]
fn a_fork_pull_request_is_previewed_and_marked_as_a_fork() {
    let mut pr = pull_request("opened");
    pr["pull_request"]["head"]["repo"]["full_name"] = json!("Outsider/Hello-World");
    let (world, out) = run(&delivery(&pr));
    assert_eq!(out.body["outcome"], "dispatched", "{}", out.body);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .ends_with("(from a fork)"));
    let sent: Value =
        serde_json::from_str(world.sent_to("POST", DISPATCH)[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["client_payload"]["fork"], true);
}

#[test]
fn a_redelivery_or_a_reopen_of_the_same_head_is_a_duplicate_a_new_head_is_not() {
    let world = relay_world();
    let (config, memory) = (config_with(&[]), RegistryMemory::default());
    let opened = pull_request("opened");
    let first = delivery(&opened);
    assert_eq!(
        deliver(&world, &config, &memory, &first).body["outcome"],
        "dispatched"
    );
    // GitHub's "Redeliver", in another isolate: only KV knows.
    let again = deliver(&world, &config, &RegistryMemory::default(), &first);
    assert_eq!(again.body["outcome"], "duplicate", "{}", again.body);
    // Closed and reopened without a new commit: the check run on that head stands.
    let mut reopened = opened.clone();
    reopened["action"] = json!("reopened");
    let out = deliver(&world, &config, &memory, &delivery(&reopened));
    assert_eq!(out.body["outcome"], "duplicate");
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 1);
    // A new head: a new preview.
    let mut pushed = opened.clone();
    pushed["action"] = json!("synchronize");
    pushed["pull_request"]["head"]["sha"] = json!("d".repeat(40));
    let out = deliver(&world, &config, &memory, &delivery(&pushed));
    assert_eq!(out.body["outcome"], "dispatched");
    // The base moved (another pull request merged) and it was reopened: previewed again.
    let mut rebased = pushed.clone();
    rebased["action"] = json!("reopened");
    rebased["pull_request"]["base"]["sha"] = json!("e".repeat(40));
    let out = deliver(&world, &config, &memory, &delivery(&rebased));
    assert_eq!(out.body["outcome"], "dispatched");
    assert_eq!(world.sent_to("POST", DISPATCH).len(), 3);
}

#[test]
fn a_refused_preview_dispatch_is_502_so_github_can_redeliver() {
    let world = World::new();
    world.script("GET", REGISTRY, vec![answer(200, REGISTRY_FILE)]);
    world.script(
        "POST",
        DISPATCH,
        vec![answer(500, "{}"), answer(500, "{}"), answer(500, "{}")],
    );
    let out = deliver_in(&world, &delivery(&pull_request("synchronize")));
    assert_eq!(out.status, 502, "{}", out.body);
    assert_eq!(out.body["outcome"], "failed");
    assert_eq!(out.body["retryable"], true);
    // Nothing remembered: the redelivery dispatches.
    world.script("POST", DISPATCH, vec![answer(204, "")]);
    let out = deliver_in(&world, &delivery(&pull_request("synchronize")));
    assert_eq!(out.body["outcome"], "dispatched");
}

#[test]
fn dry_run_shows_the_preview_dispatch_instead_of_sending_it() {
    let world = relay_world();
    let out = deliver(
        &world,
        &config_with(&[("DRY_RUN", "true")]),
        &RegistryMemory::default(),
        &delivery(&pull_request("opened")),
    );
    assert_eq!(out.body["outcome"], "dispatched");
    assert_eq!(out.body["dry_run"], true);
    assert_eq!(
        out.body["would_dispatch"]["body"]["event_type"],
        "package_preview"
    );
    assert!(world.sent_to("POST", DISPATCH).is_empty());
}

#[test]
fn malformed_pull_request_payloads_are_400_with_the_field_named() {
    let mut pr = pull_request("opened");
    pr["pull_request"]["head"]["sha"] = json!("not-a-sha");
    let (_, out) = run(&delivery(&pr));
    assert_eq!(out.status, 400);
    assert!(out.body["reason"]
        .as_str()
        .unwrap()
        .contains("pull_request.head.sha"));
    let mut pr = pull_request("opened");
    pr["pull_request"]["base"] = json!("master");
    let (_, out) = run(&delivery(&pr));
    assert_eq!(out.status, 400);
    assert!(
        out.body["reason"]
            .as_str()
            .unwrap()
            .contains("pull_request.base"),
        "{}",
        out.body
    );
}

//! The sweep, natively, against a scripted GitHub and KV (src/fake_world.rs).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::fake_world::{answer, page, test_key_pem, World, API};

const HOOK: &str = "/orgs/Studio/hooks/42/deliveries";

fn first_page() -> String {
    format!("{HOOK}?per_page=100")
}

fn config(pairs: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("WEBHOOK_SECRET", "s3cret"),
        ("DISPATCH_REPO", "Studio/Central"),
        ("GITHUB_API", API),
        ("GITHUB_TOKEN", "ghp_pat"),
        ("GITHUB_ORG", "Studio"),
        ("HOOK_ID", "42"),
    ]);
    for (k, v) in pairs {
        vars.insert(k, v);
    }
    Config::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
}

/// One line of GitHub's listing, `secs_ago` before the world's clock.
fn item(world: &World, id: u64, guid: &str, secs_ago: i64, code: u16) -> Value {
    let at = (world.now_ms() / 1000) as i64 - secs_ago;
    json!({
        "id": id, "guid": guid,
        "delivered_at": upm_github::deliveries::format_rfc3339_utc(at),
        "redelivery": false, "duration": 0.3,
        "status": if code == 200 { "OK".to_string() } else { format!("Invalid HTTP Response: {code}") },
        "status_code": code, "event": "push", "action": null,
        "installation_id": null, "repository_id": 7, "throttled_at": null
    })
}

fn listing(items: &[Value]) -> String {
    Value::Array(items.to_vec()).to_string()
}

/// GitHub's record of one attempt, with our answer's body as it kept it.
fn detail(id: u64, our_body: &str) -> String {
    json!({"id": id, "guid": "g", "status_code": 502,
        "request": {"headers": {}, "payload": {}},
        "response": {"headers": {}, "payload": our_body}})
    .to_string()
}

fn run(world: &World, config: &Config) -> SweepReport {
    let report = pollster::block_on(sweep(config, world));
    let line = report.log_line();
    assert!(!line.contains('\n'));
    for secret in ["ghp_pat", "s3cret", "ghs_app"] {
        assert!(!line.contains(secret), "a secret leaked: {line}");
    }
    report
}

fn attempts(id: u64) -> String {
    format!("{HOOK}/{id}/attempts")
}

fn redeliveries(world: &World, id: u64) -> usize {
    world.sent_to("POST", &attempts(id)).len()
}

/// GitHub lists `items` on one page.
fn list(world: &World, items: &[Value]) {
    world.script("GET", &first_page(), vec![page(&listing(items), None)]);
}

/// GitHub's record of delivery `id` keeps `our_body` as our answer.
fn keep_our_answer(world: &World, id: u64, our_body: &str) {
    world.script(
        "GET",
        &format!("{HOOK}/{id}"),
        vec![answer(200, &detail(id, our_body))],
    );
}

/// GitHub accepts a redelivery of `id`.
fn accept_redelivery(world: &World, id: u64) {
    world.script("POST", &attempts(id), vec![answer(202, "{}")]);
}

#[test]
fn off_unless_configured_and_no_github_call() {
    let world = World::new();
    let report = run(&world, &config(&[("GITHUB_ORG", ""), ("HOOK_ID", "")]));
    assert_eq!(report.outcome, "off");
    assert!(report.reason.unwrap().contains("GITHUB_ORG and HOOK_ID"));
    let report = run(&world, &config(&[("HOOK_ID", "")]));
    assert_eq!(report.outcome, "invalid");
    let report = run(
        &world,
        &config(&[("GITHUB_TOKEN", ""), ("DRY_RUN", "true")]),
    );
    assert_eq!(report.outcome, "invalid");
    assert!(report.reason.unwrap().contains("no GitHub credential"));
    let report = run(&world, &config(&[("WEBHOOK_SECRET", "")]));
    assert_eq!(report.outcome, "invalid");
    assert!(report.reason.unwrap().contains("WEBHOOK_SECRET is not set"));
    assert_eq!(world.calls(), 0);
}

#[test]
fn a_failed_push_is_redelivered_once_and_remembered() {
    let world = World::new();
    list(
        &world,
        &[
            item(&world, 11, "guid-a", 600, 502),
            item(&world, 10, "guid-ok", 700, 200),
        ],
    );
    keep_our_answer(
        &world,
        11,
        r#"{"outcome":"failed","reason":"x","retryable":true}"#,
    );
    accept_redelivery(&world, 11);
    let report = run(&world, &config(&[]));
    assert_eq!(report.outcome, "done");
    assert_eq!(
        (
            report.listed,
            report.failed,
            report.redelivered,
            report.pages
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(
        report.github_calls, 3,
        "listing, our answer, the redelivery"
    );
    assert_eq!(redeliveries(&world, 11), 1);
    let post = &world.sent_to("POST", &attempts(11))[0];
    assert!(post
        .headers
        .contains(&("Authorization", "Bearer ghp_pat".into())));
    let record = SweepRecord::from_kv(&world.kv.borrow()["sweep:v1:guid-a"]);
    assert_eq!((record.redeliveries, record.answer_checked), (1, true));
    assert_eq!(
        world.ttls.borrow()["sweep:v1:guid-a"],
        Some(crate::dedup::TTL_SECONDS)
    );
    let line: Value = serde_json::from_str(&report.log_line()).unwrap();
    assert_eq!(
        (line["msg"].as_str(), line["level"].as_str()),
        (Some("sweep"), Some("info"))
    );

    // The next tick: the redelivery failed again, but GitHub has not listed it yet. Too soon.
    world.advance(60_000);
    let soon = run(&world, &config(&[]));
    assert_eq!((soon.waiting, soon.redelivered), (1, 0));
    // Nine minutes after the first: again, without reading our answer a second time.
    world.advance(8 * 60_000);
    assert_eq!(run(&world, &config(&[])).redelivered, 1);
    assert_eq!(world.sent_to("GET", &format!("{HOOK}/11")).len(), 1);
    assert_eq!(redeliveries(&world, 11), 2);
}

#[test]
fn the_sweeper_s_own_count_caps_redeliveries_across_runs() {
    let world = World::new();
    list(&world, &[item(&world, 11, "guid-a", 600, 500)]);
    accept_redelivery(&world, 11);
    let config = config(&[("SWEEP_MAX_REDELIVERIES", "2")]);
    for _ in 0..5 {
        world.advance(60 * 60_000);
        run(&world, &config);
    }
    assert_eq!(redeliveries(&world, 11), 2);
    let last = run(&world, &config);
    assert_eq!((last.redelivered, last.attempts_exhausted), (0, 1));
}

#[test]
fn a_dispatched_delivery_is_not_redelivered() {
    let world = World::new();
    list(&world, &[item(&world, 11, "guid-a", 600, 0)]);
    world
        .kv
        .borrow_mut()
        .insert("delivery:guid-a".into(), "{}".into());
    let report = run(&world, &config(&[]));
    assert_eq!(
        (report.failed, report.already_dispatched, report.redelivered),
        (1, 1, 0)
    );
    assert_eq!(world.calls(), 1);
}

#[test]
fn permanent_failures_are_not_redelivered() {
    let world = World::new();
    list(
        &world,
        &[
            item(&world, 11, "refused", 600, 502),
            item(&world, 12, "unsigned", 650, 401),
        ],
    );
    keep_our_answer(
        &world,
        11,
        r#"{"outcome":"failed","reason":"GitHub answered 422","retryable":false}"#,
    );
    let report = run(&world, &config(&[]));
    assert_eq!(
        (report.failed, report.permanent, report.redelivered),
        (2, 2, 0)
    );
    assert_eq!(redeliveries(&world, 11) + redeliveries(&world, 12), 0);
    assert!(SweepRecord::from_kv(&world.kv.borrow()["sweep:v1:refused"])
        .permanent
        .is_some());
    // Remembered: the next run asks GitHub for nothing but the listing.
    let before = world.calls();
    let report = run(&world, &config(&[]));
    assert_eq!((report.permanent, world.calls() - before), (2, 1));
}

#[test]
fn a_502_that_is_not_ours_counts_as_retryable() {
    let world = World::new();
    list(&world, &[item(&world, 11, "g", 60, 502)]);
    keep_our_answer(&world, 11, "<html>502 Bad Gateway</html>");
    accept_redelivery(&world, 11);
    assert_eq!(run(&world, &config(&[])).redelivered, 1);
}

#[test]
fn pages_are_followed_within_the_window_and_the_page_cap() {
    let world = World::new();
    let second = format!("{HOOK}?per_page=100&cursor=v1_abc");
    let third = format!("{HOOK}?per_page=100&cursor=v1_def");
    world.script(
        "GET",
        &first_page(),
        vec![page(
            &listing(&[item(&world, 13, "c", 60, 200)]),
            Some(&second),
        )],
    );
    world.script(
        "GET",
        &second,
        vec![page(
            &listing(&[item(&world, 12, "b", 120, 503)]),
            Some(&third),
        )],
    );
    world.script(
        "GET",
        &third,
        vec![page(&listing(&[item(&world, 11, "a", 200, 200)]), None)],
    );
    accept_redelivery(&world, 12);
    let report = run(&world, &config(&[]));
    assert_eq!(
        (
            report.pages,
            report.listed,
            report.truncated,
            report.redelivered
        ),
        (3, 3, false, 1)
    );

    let capped = run(&world, &config(&[("SWEEP_MAX_PAGES", "2")]));
    assert_eq!((capped.pages, capped.truncated), (2, true));
    assert!(capped.log_line().contains(r#""level":"warn""#));

    // A page that reaches past the 3-day window ends the listing even with a next link.
    let world = World::new();
    world.script(
        "GET",
        &first_page(),
        vec![page(
            &listing(&[
                item(&world, 12, "b", 60, 200),
                item(&world, 11, "old", 4 * 86_400, 502),
            ]),
            Some(&second),
        )],
    );
    let report = run(&world, &config(&[]));
    assert_eq!(
        (report.pages, report.outside_window, report.redelivered),
        (1, 1, 0)
    );
    assert_eq!(world.calls(), 1);
}

#[test]
fn the_per_run_budget_takes_the_oldest_first() {
    let world = World::new();
    let items: Vec<Value> = (0..5)
        .map(|i| item(&world, 20 + i, &format!("g{i}"), 100 * (i as i64 + 1), 500))
        .collect();
    list(&world, &items);
    for i in 0..5 {
        accept_redelivery(&world, 20 + i);
    }
    let report = run(&world, &config(&[("SWEEP_MAX_PER_RUN", "2")]));
    assert_eq!((report.redelivered, report.over_budget), (2, 3));
    assert_eq!((redeliveries(&world, 24), redeliveries(&world, 23)), (1, 1));
}

#[test]
fn github_refusing_or_failing_a_redelivery() {
    let world = World::new();
    list(
        &world,
        &[
            item(&world, 11, "too-old", 600, 500),
            item(&world, 12, "outage", 500, 500),
        ],
    );
    world.script(
        "POST",
        &attempts(11),
        vec![answer(422, r#"{"message":"Validation Failed"}"#)],
    );
    world.script(
        "POST",
        &attempts(12),
        vec![answer(503, "{}"), answer(202, "{}")],
    );
    let report = run(&world, &config(&[]));
    assert_eq!(
        (report.permanent, report.errors, report.redelivered),
        (1, 1, 0)
    );
    assert!(report.log_line().contains(r#""level":"warn""#));
    let report = run(&world, &config(&[]));
    assert_eq!(
        (report.permanent, report.errors, report.redelivered),
        (1, 0, 1)
    );
    assert_eq!(redeliveries(&world, 11), 1, "a refusal is final");
}

#[test]
fn an_unreadable_listing_fails_the_run_visibly() {
    let world = World::new();
    world.script(
        "GET",
        &first_page(),
        vec![answer(404, r#"{"message":"Not Found"}"#)],
    );
    let report = run(&world, &config(&[]));
    assert_eq!(report.outcome, "failed");
    assert_eq!(
        report.reason.as_deref(),
        Some("listing deliveries: GitHub answered 404: Not Found")
    );
    assert!(report.log_line().contains(r#""level":"error""#));
    world.script("GET", &first_page(), vec![Err("connection reset".into())]);
    assert_eq!(run(&world, &config(&[])).outcome, "failed");
}

#[test]
fn a_kv_outage_redelivers_rather_than_loses() {
    let world = World::new();
    list(&world, &[item(&world, 11, "g", 60, 500)]);
    accept_redelivery(&world, 11);
    world.kv_down.set(true);
    let report = run(&world, &config(&[]));
    assert_eq!(report.redelivered, 1);
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("dispatch record unreadable")));
}

#[test]
fn dry_run_redelivers_nothing() {
    let world = World::new();
    list(&world, &[item(&world, 11, "g", 60, 500)]);
    let report = run(&world, &config(&[("DRY_RUN", "true")]));
    assert_eq!(report.redelivered, 1);
    assert_eq!(redeliveries(&world, 11), 0);
    assert!(report.notes[0].contains("dry run"));
}

#[test]
fn the_same_app_serves_the_sweeper() {
    let world = World::new();
    let pem = test_key_pem("pkcs1");
    let config = config(&[
        ("GITHUB_TOKEN", ""),
        ("GITHUB_APP_ID", "4242"),
        ("GITHUB_APP_PRIVATE_KEY", &pem),
        ("GITHUB_APP_INSTALLATION_ID", "77"),
    ]);
    let expires = upm_github::deliveries::format_rfc3339_utc((world.now_ms() / 1000) as i64 + 3600);
    world.script(
        "POST",
        "/app/installations/77/access_tokens",
        vec![answer(
            201,
            &format!(r#"{{"token":"ghs_app","expires_at":"{expires}"}}"#),
        )],
    );
    list(&world, &[item(&world, 11, "g", 60, 500)]);
    accept_redelivery(&world, 11);
    let report = run(&world, &config);
    assert_eq!(report.redelivered, 1);
    assert_eq!(report.github_calls, 2, "the token is not counted");
    for path in [first_page(), attempts(11)] {
        let sent = world
            .sent
            .borrow()
            .iter()
            .find(|r| r.url == format!("{API}{path}"))
            .cloned()
            .unwrap();
        assert!(
            sent.headers
                .contains(&("Authorization", "Bearer ghs_app".into())),
            "{path}"
        );
    }
    assert_eq!(
        world
            .sent_to("POST", "/app/installations/77/access_tokens")
            .len(),
        1
    );
}

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
            item(&world, 11, "gone", 600, 500),
            item(&world, 12, "spammed", 500, 500),
        ],
    );
    world.script(
        "POST",
        &attempts(11),
        vec![answer(404, r#"{"message":"Not Found"}"#)],
    );
    // GitHub's 422 for this endpoint is also "the endpoint has been spammed": it passes.
    world.script(
        "POST",
        &attempts(12),
        vec![
            answer(
                422,
                r#"{"message":"Validation failed, or the endpoint has been spammed."}"#,
            ),
            answer(202, "{}"),
        ],
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

// The watchdog's tick, against the same scripted GitHub and KV.
mod watchdog_tick {
    use super::*;
    use crate::watchdog::{FailoverState, FAILOVER_KEY};

    const SHA: &str = "8f1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5";
    const HEAD: &str = "cccccccccccccccccccccccccccccccccccccccc";
    const QUEUED: &str = "/repos/Studio/Central/actions/workflows/handle-publish-request.yml/runs?status=queued&per_page=100";
    const DISCORD: &str = "/discord-hook?wait=true";
    const MINUTE: u64 = 60_000;

    fn watchdog_config(pairs: &[(&str, &str)]) -> Config {
        let discord = format!("{API}/discord-hook");
        let mut all = vec![
            ("WATCHDOG", "on"),
            ("DISCORD_WEBHOOK_URL", discord.as_str()),
        ];
        all.extend_from_slice(pairs);
        config(&all)
    }

    fn at(world: &World, ms_ago: u64) -> String {
        upm_github::deliveries::format_rfc3339_utc(((world.now_ms() - ms_ago) / 1000) as i64)
    }

    fn runs(items: &[Value]) -> String {
        json!({ "total_count": items.len(), "workflow_runs": items }).to_string()
    }

    fn publish_run(world: &World, id: u64, ms_ago: u64) -> Value {
        json!({ "id": id, "display_title": format!("publish Studio/game @ {SHA} (delivery d-{id})"),
            "status": "queued", "conclusion": null, "event": "repository_dispatch",
            "created_at": at(world, ms_ago), "head_sha": HEAD })
    }

    fn runners(status: &str) -> String {
        json!({ "total_count": 1, "runners": [{ "id": 1, "name": "studio-1", "os": "linux", "status": status,
            "busy": false, "labels": [{ "id": 1, "name": "self-hosted", "type": "read-only" },
                                      { "id": 2, "name": "linux", "type": "read-only" }] }] })
        .to_string()
    }

    /// The nets, healthy: workflows active, reconcile ran 20 minutes ago, the head has its binary.
    fn healthy_nets(world: &World) {
        world.script(
            "GET",
            "/repos/Studio/Central/actions/workflows?per_page=100",
            vec![answer(
                200,
                &json!({ "total_count": 1, "workflows": [{ "id": 11, "name": "Reconcile",
                "path": ".github/workflows/reconcile.yml", "state": "active" }] })
                .to_string(),
            )],
        );
        let reconcile = json!({ "id": 5, "status": "completed", "conclusion": "success",
            "event": "schedule", "created_at": at(world, 20 * MINUTE) });
        world.script(
            "GET",
            "/repos/Studio/Central/actions/workflows/reconcile.yml/runs?per_page=1",
            vec![answer(200, &runs(&[reconcile]))],
        );
        world.script(
            "GET",
            "/repos/Studio/Central",
            vec![answer(200, r#"{"default_branch": "main"}"#)],
        );
        world.script(
            "GET",
            "/repos/Studio/Central/branches/main",
            vec![answer(
                200,
                &json!({ "name": "main", "commit": { "sha": HEAD } }).to_string(),
            )],
        );
        let build = json!({ "id": 6, "status": "completed", "conclusion": "success", "event": "push",
            "created_at": at(world, 60 * MINUTE), "head_sha": HEAD });
        world.script(
            "GET",
            &format!("/repos/Studio/Central/actions/workflows/publisher-binary.yml/runs?head_sha={HEAD}&per_page=20"),
            vec![answer(200, &runs(&[build]))],
        );
    }

    fn tick(world: &World, config: &Config) -> WatchdogReport {
        let report = pollster::block_on(watchdog(config, world, world.now_ms()));
        let line = report.log_line();
        for secret in ["ghp_pat", "s3cret", "discord-hook"] {
            assert!(!line.contains(secret), "a secret leaked: {line}");
        }
        report
    }

    fn discord_titles(world: &World) -> Vec<String> {
        world
            .sent_to("POST", DISCORD)
            .iter()
            .map(|r| {
                assert!(
                    r.headers.iter().all(|(name, _)| *name != "Authorization"),
                    "GitHub's token went to Discord"
                );
                let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
                body["embeds"][0]["title"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn off_by_default_and_it_touches_nothing() {
        let world = World::new();
        let report = tick(&world, &config(&[]));
        assert_eq!(report.outcome, "off");
        assert_eq!(world.calls(), 0);
        assert!(world.kv_reads.borrow().is_empty());
    }

    #[test]
    fn a_quiet_tick_costs_one_request_and_the_nets_five_once_an_hour() {
        let world = World::new();
        let config = watchdog_config(&[]);
        world.script("GET", QUEUED, vec![answer(200, &runs(&[]))]);
        healthy_nets(&world);
        let first = tick(&world, &config);
        assert_eq!(
            (first.outcome, first.nets_checked, first.github_calls),
            ("done", true, 6)
        );
        assert!(first.alerts.is_empty(), "{first:?}");
        world.advance(10 * MINUTE);
        let quiet = tick(&world, &config);
        assert_eq!(
            (quiet.nets_checked, quiet.github_calls),
            (false, 1),
            "{quiet:?}"
        );
        world.advance(51 * MINUTE);
        assert!(
            tick(&world, &config).nets_checked,
            "an hour later the nets are checked again"
        );
    }

    #[test]
    fn a_run_stuck_on_a_dead_pool_moves_to_github_hosted_runners_with_one_alert_then_one_on_recovery(
    ) {
        let world = World::new();
        let config = watchdog_config(&[]);
        healthy_nets(&world);
        world.script(
            "GET",
            QUEUED,
            vec![
                answer(
                    200,
                    &runs(&[
                        publish_run(&world, 7, 11 * MINUTE),
                        publish_run(&world, 8, 2 * MINUTE),
                    ]),
                ),
                answer(200, &runs(&[])),
            ],
        );
        let job = json!({ "total_count": 1, "jobs": [{ "id": 70, "run_id": 7, "status": "queued",
            "labels": ["self-hosted", "linux"], "runner_name": null }] });
        world.script(
            "GET",
            "/repos/Studio/Central/actions/runs/7/jobs",
            vec![answer(200, &job.to_string())],
        );
        world.script(
            "GET",
            "/repos/Studio/Central/actions/runners?per_page=100",
            vec![
                answer(200, &runners("offline")),
                answer(200, &runners("offline")),
                answer(200, &runners("online")),
            ],
        );
        // The central repository's owner is an organization with no runners of its own.
        world.script(
            "GET",
            "/orgs/Studio/actions/runners?per_page=100",
            vec![answer(200, r#"{"total_count": 0, "runners": []}"#)],
        );
        world.script(
            "POST",
            "/repos/Studio/Central/actions/runs/7/cancel",
            vec![answer(202, "{}")],
        );
        world.script(
            "POST",
            "/repos/Studio/Central/dispatches",
            vec![answer(204, "")],
        );
        world.script("POST", DISCORD, vec![answer(200, "{}")]);

        let report = tick(&world, &config);
        assert_eq!(
            (report.queued, report.stuck, report.moved),
            (2, 1, 1),
            "{report:?}"
        );
        assert_eq!(report.alerts, vec!["failover-started"]);
        let dispatched = world.sent_to("POST", "/repos/Studio/Central/dispatches");
        let body: Value = serde_json::from_str(dispatched[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(body["event_type"], "package_publish");
        assert_eq!(body["client_payload"]["repository"], "Studio/game");
        assert_eq!(body["client_payload"]["commit_sha"], SHA);
        assert_eq!(body["client_payload"]["delivery"], "d-7");
        assert_eq!(body["client_payload"]["package_path"], "*");
        assert_eq!(body["client_payload"]["runner"], "github-hosted");
        let events = world.events.borrow().clone();
        let position = |suffix: &str| events.iter().position(|e| e.ends_with(suffix)).unwrap();
        assert!(
            position("/runs/7/cancel") < position("/Central/dispatches"),
            "cancel first: {events:?}"
        );
        let state = FailoverState::from_kv(&world.kv.borrow()[FAILOVER_KEY]).unwrap();
        assert_eq!((state.labels.len(), state.moved), (2, 1));
        // 1 listing + 1 jobs + 2 runners + cancel + dispatch, + the hourly nets' 5.
        assert_eq!(report.github_calls, 6 + 5);

        // Still dead: no second alert.
        world.advance(10 * MINUTE);
        let ongoing = tick(&world, &config);
        assert!(
            ongoing.failover_active && ongoing.alerts.is_empty(),
            "{ongoing:?}"
        );
        assert_eq!(ongoing.github_calls, 3, "listing + the two runner listings");

        // A runner with the labels is online again: one recovery alert, and the failover ends.
        world.advance(10 * MINUTE);
        let back = tick(&world, &config);
        assert_eq!(back.alerts, vec!["failover-ended"], "{back:?}");
        assert!(!back.failover_active);
        assert_eq!(
            discord_titles(&world),
            vec![
                "Self-hosted runners are not picking up publish runs",
                "Self-hosted runners are back"
            ]
        );
        world.advance(10 * MINUTE);
        assert!(
            tick(&world, &config).alerts.is_empty(),
            "nothing more to say"
        );
    }

    #[test]
    fn a_run_that_cannot_be_cancelled_is_not_dispatched_twice_and_unlisted_runners_move_nothing() {
        let world = World::new();
        let config = watchdog_config(&[]);
        healthy_nets(&world);
        world.script(
            "GET",
            QUEUED,
            vec![answer(200, &runs(&[publish_run(&world, 7, 30 * MINUTE)]))],
        );
        let job = json!({ "jobs": [{ "status": "queued", "labels": ["self-hosted"], "runner_name": null }] });
        world.script(
            "GET",
            "/repos/Studio/Central/actions/runs/7/jobs",
            vec![answer(200, &job.to_string())],
        );
        world.script(
            "GET",
            "/repos/Studio/Central/actions/runners?per_page=100",
            vec![
                answer(
                    403,
                    r#"{"message": "Resource not accessible by integration"}"#,
                ),
                answer(200, &runners("offline")),
            ],
        );
        world.script(
            "GET",
            "/orgs/Studio/actions/runners?per_page=100",
            vec![answer(404, r#"{"message": "Not Found"}"#)],
        );
        let blind = tick(&world, &config);
        assert_eq!((blind.moved, blind.errors), (0, 1), "{blind:?}");
        assert!(
            blind
                .notes
                .iter()
                .any(|n| n.contains("Administration: read")),
            "{:?}",
            blind.notes
        );
        assert!(world
            .sent_to("POST", "/repos/Studio/Central/actions/runs/7/cancel")
            .is_empty());

        world.script(
            "POST",
            "/repos/Studio/Central/actions/runs/7/cancel",
            vec![answer(
                409,
                r#"{"message": "Cannot cancel a workflow run that is completed."}"#,
            )],
        );
        world.advance(10 * MINUTE);
        let refused = tick(&world, &config);
        assert_eq!(refused.moved, 0, "{refused:?}");
        assert!(world
            .sent_to("POST", "/repos/Studio/Central/dispatches")
            .is_empty());
        assert!(refused.alerts.is_empty());
    }

    #[test]
    fn stopped_nets_are_restarted_and_reported() {
        let world = World::new();
        let config = watchdog_config(&[]);
        world.script("GET", QUEUED, vec![answer(200, &runs(&[]))]);
        healthy_nets(&world);
        world.script(
            "GET",
            "/repos/Studio/Central/actions/workflows?per_page=100",
            vec![answer(200, &json!({ "workflows": [
                { "id": 11, "path": ".github/workflows/reconcile.yml", "state": "disabled_inactivity" },
                { "id": 12, "path": ".github/workflows/deploy.yml", "state": "disabled_manually" }] }).to_string())],
        );
        let old = json!({ "id": 5, "status": "completed", "conclusion": "success", "event": "schedule",
            "created_at": at(&world, 3 * 60 * MINUTE) });
        world.script(
            "GET",
            "/repos/Studio/Central/actions/workflows/reconcile.yml/runs?per_page=1",
            vec![answer(200, &runs(&[old]))],
        );
        world.script(
            "GET",
            &format!("/repos/Studio/Central/actions/workflows/publisher-binary.yml/runs?head_sha={HEAD}&per_page=20"),
            vec![answer(200, &runs(&[]))],
        );
        world.script(
            "PUT",
            "/repos/Studio/Central/actions/workflows/11/enable",
            vec![answer(204, "")],
        );
        world.script(
            "POST",
            "/repos/Studio/Central/actions/workflows/reconcile.yml/dispatches",
            vec![answer(204, "")],
        );
        world.script("POST", DISCORD, vec![answer(204, "")]);
        let report = tick(&world, &config);
        assert_eq!(
            report.alerts,
            vec!["workflow-enabled", "reconcile-dispatched", "no-binary"],
            "{report:?}"
        );
        assert_eq!(
            (report.workflows_enabled, report.reconcile_dispatched),
            (1, true)
        );
        let sent = world.sent_to(
            "POST",
            "/repos/Studio/Central/actions/workflows/reconcile.yml/dispatches",
        );
        assert_eq!(sent[0].body.as_deref(), Some(r#"{"ref":"main"}"#));
        assert!(report
            .notes
            .iter()
            .any(|n| n.contains("deploy.yml is disabled by a person")));
        assert!(world
            .sent_to("PUT", "/repos/Studio/Central/actions/workflows/12/enable")
            .is_empty());
        // The same head an hour later: the missing binary is not alerted again the same day.
        world.advance(61 * MINUTE);
        let later = tick(&world, &config);
        assert!(!later.alerts.contains(&"no-binary"), "{later:?}");
    }

    #[test]
    fn a_dry_run_decides_but_changes_nothing() {
        let world = World::new();
        let config = watchdog_config(&[("DRY_RUN", "true")]);
        healthy_nets(&world);
        world.script(
            "GET",
            QUEUED,
            vec![answer(200, &runs(&[publish_run(&world, 7, 30 * MINUTE)]))],
        );
        let job = json!({ "jobs": [{ "status": "queued", "labels": ["self-hosted"], "runner_name": null }] });
        world.script(
            "GET",
            "/repos/Studio/Central/actions/runs/7/jobs",
            vec![answer(200, &job.to_string())],
        );
        world.script(
            "GET",
            "/repos/Studio/Central/actions/runners?per_page=100",
            vec![answer(200, &runners("offline"))],
        );
        world.script(
            "GET",
            "/orgs/Studio/actions/runners?per_page=100",
            vec![answer(200, r#"{"runners": []}"#)],
        );
        let report = tick(&world, &config);
        assert_eq!(report.moved, 0);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.starts_with("dry run: would move run 7")),
            "{:?}",
            report.notes
        );
        assert!(world.sent.borrow().iter().all(|r| r.method == "GET"));
    }
}

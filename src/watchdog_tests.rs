//! The watchdog's decisions, natively, on GitHub's documented response shapes.

use serde_json::json;

use super::*;

const SHA: &str = "8f1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5";
const NOW: u64 = 1_800_000_000_000;

fn at(ms_ago: u64) -> String {
    upm_github::deliveries::format_rfc3339_utc(((NOW - ms_ago) / 1000) as i64)
}

fn run(id: u64, status: &str, ms_ago: u64) -> Run {
    Run {
        id,
        display_title: format!("publish Studio/game @ {SHA} (delivery d-{id})"),
        status: Some(status.into()),
        conclusion: None,
        event: "repository_dispatch".into(),
        created_at: at(ms_ago),
        head_sha: "c".repeat(40),
    }
}

fn job(status: &str, labels: &[&str], runner: Option<&str>) -> Job {
    Job {
        status: status.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        runner_name: runner.map(str::to_string),
    }
}

fn runner(status: &str, labels: &[&str]) -> Runner {
    Runner {
        name: "studio-1".into(),
        status: status.into(),
        busy: false,
        labels: labels
            .iter()
            .map(|l| RunnerLabel {
                name: l.to_string(),
            })
            .collect(),
    }
}

const MINUTE: u64 = 60_000;

#[test]
fn a_run_is_stuck_once_queued_past_the_threshold_oldest_first_and_bounded() {
    let runs = vec![
        run(1, "queued", 9 * MINUTE),
        run(2, "queued", 30 * MINUTE),
        run(3, "queued", 10 * MINUTE),
        run(4, "in_progress", 60 * MINUTE),
        run(5, "queued", 20 * MINUTE),
    ];
    let ids = |max| {
        stuck_runs(&runs, NOW, 10 * MINUTE, max)
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(10), vec![2, 5, 3]);
    assert_eq!(ids(2), vec![2, 5], "the per-tick bound keeps the oldest");
    let unreadable = Run {
        created_at: "yesterday".into(),
        ..run(6, "queued", 0)
    };
    assert!(stuck_runs(&[unreadable], NOW, 0, 10).is_empty());
}

#[test]
fn the_listings_read_githubs_documented_shapes() {
    // Trimmed from GitHub's examples for the four listings (REST "Workflow runs", "Workflow jobs",
    // "Self-hosted runners", "Workflows").
    let runs = json!({"total_count": 1, "workflow_runs": [{"id": 30433642, "name": "Handle publish request",
        "display_title": format!("publish Studio/game @ {SHA} (delivery d-1)"), "head_branch": "main",
        "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d", "run_number": 562, "event": "repository_dispatch",
        "status": "queued", "conclusion": null, "workflow_id": 159038, "created_at": "2020-01-22T19:33:08Z"}]});
    let runs = parse_runs(&runs.to_string()).unwrap();
    assert_eq!(
        (runs[0].id, runs[0].status.as_deref()),
        (30433642, Some("queued"))
    );
    let jobs = json!({"total_count": 1, "jobs": [{"id": 399444496, "run_id": 29679449, "status": "queued",
        "conclusion": null, "labels": ["self-hosted", "linux", "x64"], "runner_id": null, "runner_name": null}]});
    assert_eq!(
        parse_jobs(&jobs.to_string()).unwrap(),
        vec![job("queued", &["self-hosted", "linux", "x64"], None)]
    );
    let runners = json!({"total_count": 1, "runners": [{"id": 23, "name": "MBP", "os": "macos", "status": "online",
        "busy": true, "labels": [{"id": 5, "name": "self-hosted", "type": "read-only"}]}]});
    let runners = parse_runners(&runners.to_string()).unwrap();
    assert_eq!(
        (runners[0].status.as_str(), runners[0].busy),
        ("online", true)
    );
    let workflows = json!({"total_count": 1, "workflows": [{"id": 161335, "node_id": "MDg6V29ya2Zsb3cxNjEzMzU=",
        "name": "Reconcile", "path": ".github/workflows/reconcile.yml", "state": "disabled_inactivity"}]});
    assert_eq!(
        parse_workflows(&workflows.to_string()).unwrap()[0].state,
        "disabled_inactivity"
    );
    let err = parse_runners(r#"{"runners": [{"name": 1}]}"#).unwrap_err();
    assert!(err.contains("runners[0].name"), "{err}");
}

#[test]
fn the_publish_run_is_read_back_from_its_title() {
    let read = publish_run(&format!(
        "publish Studio/game @ {SHA} (delivery 72d3162e-cc78-11e3)"
    ));
    assert_eq!(
        read,
        Some(PublishRun {
            repository: RepoName::parse("Studio/game").unwrap(),
            commit_sha: SHA.into(),
            delivery: "72d3162e-cc78-11e3".into(),
        })
    );
    assert_eq!(
        publish_run(&format!("publish Studio/game @ {SHA} (delivery manual)")).map(|r| r.delivery),
        Some("manual".into())
    );
    for bad in [
        "Reconcile".to_string(),
        format!("publish not-a-repo @ {SHA} (delivery x)"),
        "publish Studio/game @ abc (delivery x)".to_string(),
        format!("publish Studio/game @ {SHA} (delivery $(boom))"),
        format!("publish Studio/game @ {SHA} (delivery )"),
    ] {
        assert_eq!(publish_run(&bad), None, "{bad}");
    }
}

#[test]
fn only_a_queued_job_on_self_hosted_labels_without_an_online_runner_moves() {
    let stuck = run(7, "queued", 30 * MINUTE);
    let pool = ["self-hosted", "linux", "x64"];
    let waiting = [job("queued", &pool, None)];
    let moved = match stuck_verdict(&stuck, &waiting, Some(&[runner("offline", &pool)])) {
        StuckVerdict::Move(payload) => payload,
        other => panic!("{other:?}"),
    };
    assert_eq!(moved.runner.as_deref(), Some(GITHUB_HOSTED));
    assert_eq!(
        (moved.package_path.as_str(), moved.delivery.as_str()),
        ("*", "d-7")
    );
    let body: serde_json::Value = serde_json::from_str(&crate::dispatch::body(&moved)).unwrap();
    let properties = body["client_payload"].as_object().unwrap().len();
    assert!(
        properties <= 10,
        "GitHub allows 10 client_payload properties, not {properties}"
    );
    assert_eq!(body["client_payload"]["runner"], "github-hosted");

    // Labels compare without case; a runner must have every one of them; busy still counts as alive.
    let online = [runner("online", &["Self-Hosted", "Linux", "X64", "gpu"])];
    assert_eq!(
        stuck_verdict(&stuck, &waiting, Some(&online)),
        StuckVerdict::PoolOnline
    );
    let other_pool = [runner("online", &["self-hosted", "windows"])];
    assert!(matches!(
        stuck_verdict(&stuck, &waiting, Some(&other_pool)),
        StuckVerdict::Move(_)
    ));
    assert_eq!(
        stuck_verdict(&stuck, &waiting, None),
        StuckVerdict::RunnersUnknown
    );
    // Already fallen back, or already on a runner: not the watchdog's.
    let hosted = [job("queued", &["ubuntu-latest"], None)];
    assert_eq!(
        stuck_verdict(&stuck, &hosted, None),
        StuckVerdict::NotSelfHosted
    );
    let started = [job("in_progress", &pool, Some("studio-1"))];
    assert_eq!(
        stuck_verdict(&stuck, &started, None),
        StuckVerdict::NotSelfHosted
    );
    let foreign = Run {
        display_title: "something else".into(),
        ..stuck
    };
    assert_eq!(
        stuck_verdict(&foreign, &waiting, Some(&[])),
        StuckVerdict::Unreadable
    );
}

#[test]
fn one_alert_when_failover_starts_and_one_when_the_pool_is_back() {
    let labels = vec!["self-hosted".to_string(), "linux".to_string()];
    assert_eq!(failover(None, None, 0, false, None, NOW), Failover::Quiet);
    let started = match failover(None, Some(&labels), 2, false, None, NOW) {
        Failover::Started(state) => state,
        other => panic!("{other:?}"),
    };
    assert_eq!((started.since_ms, started.moved), (NOW, 2));
    // Later ticks: more runs moved, or the pool still dead, or unknown → ongoing, no alert.
    let more = failover(
        Some(started.clone()),
        Some(&labels),
        1,
        false,
        Some(false),
        NOW,
    );
    assert!(
        matches!(more, Failover::Ongoing(ref s) if s.moved == 3),
        "{more:?}"
    );
    for alive in [Some(false), None] {
        assert!(matches!(
            failover(Some(started.clone()), None, 0, false, alive, NOW),
            Failover::Ongoing(_)
        ));
    }
    // Online but a run is still stuck on it: not back yet.
    assert!(matches!(
        failover(Some(started.clone()), None, 0, true, Some(true), NOW),
        Failover::Ongoing(_)
    ));
    assert_eq!(
        failover(Some(started.clone()), None, 0, false, Some(true), NOW),
        Failover::Recovered(started.clone())
    );
    assert_eq!(FailoverState::from_kv(&started.to_kv()), Some(started));
    assert_eq!(FailoverState::from_kv(FAILOVER_ENDED), None);
}

#[test]
fn a_stopped_net_is_noticed() {
    let reconcile = |ms_ago| Run {
        event: "schedule".into(),
        ..run(1, "completed", ms_ago)
    };
    let two_hours = 120 * MINUTE;
    assert!(!reconcile_silent(
        Some(&reconcile(30 * MINUTE)),
        NOW,
        two_hours
    ));
    assert!(reconcile_silent(
        Some(&reconcile(two_hours + MINUTE)),
        NOW,
        two_hours
    ));
    assert!(reconcile_silent(None, NOW, two_hours), "never ran");

    let workflows = [
        Workflow {
            id: 1,
            path: ".github/workflows/reconcile.yml".into(),
            state: "disabled_inactivity".into(),
        },
        Workflow {
            id: 2,
            path: ".github/workflows/ci.yml".into(),
            state: "active".into(),
        },
        Workflow {
            id: 3,
            path: ".github/workflows/x.yml".into(),
            state: "disabled_manually".into(),
        },
    ];
    let ids: Vec<u64> = disabled_for_inactivity(&workflows)
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec![1], "a person's choice is left alone");

    let build = |event: &str, status: &str, conclusion: Option<&str>, ms_ago: u64| Run {
        event: event.into(),
        conclusion: conclusion.map(str::to_string),
        ..run(9, status, ms_ago)
    };
    assert_eq!(
        binary(&[build("push", "completed", Some("success"), MINUTE)], NOW),
        Binary::Usable
    );
    assert_eq!(
        binary(&[build("push", "in_progress", None, MINUTE)], NOW),
        Binary::Building
    );
    assert!(matches!(binary(&[], NOW), Binary::Missing(why) if why.contains("never built")));
    assert!(matches!(
        binary(&[build("push", "completed", Some("failure"), MINUTE)], NOW),
        Binary::Missing(_)
    ));
    let expired = build("push", "completed", Some("success"), 90 * 24 * 60 * MINUTE);
    assert!(
        matches!(binary(&[expired], NOW), Binary::Missing(_)),
        "artifacts live 90 days"
    );
    // A pull request's build of the same commit is not what fetch-publisher.sh accepts.
    assert!(matches!(
        binary(
            &[build("pull_request", "completed", Some("success"), MINUTE)],
            NOW
        ),
        Binary::Missing(_)
    ));

    assert!(nets_due(None, NOW));
    assert!(!nets_due(Some(&(NOW - 59 * MINUTE).to_string()), NOW));
    assert!(nets_due(Some(&(NOW - 60 * MINUTE).to_string()), NOW));
    assert!(nets_due(Some("garbage"), NOW));
}

#[test]
fn alerts_never_ping_and_the_log_line_is_one_object() {
    let alert = Alert::FailoverStarted {
        labels: vec!["self-hosted".into()],
        moved: vec!["Studio/game@8f1d2c3b4a59".into()],
    };
    let body: serde_json::Value = serde_json::from_str(&alert.discord_body()).unwrap();
    assert_eq!(body["allowed_mentions"]["parse"], json!([]));
    assert!(body["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .contains("Studio/game@8f1d2c3b4a59"));
    let request = discord_request("https://discord.com/api/webhooks/1/t", &alert);
    assert_eq!(
        request.url,
        "https://discord.com/api/webhooks/1/t?wait=true"
    );
    assert!(request
        .headers
        .iter()
        .all(|(name, _)| *name != "Authorization"));
    assert!(request.timeout_ms > 0);
    let report = WatchdogReport {
        outcome: "done",
        alerts: vec!["failover-started"],
        ..WatchdogReport::default()
    };
    let line: serde_json::Value = serde_json::from_str(&report.log_line()).unwrap();
    assert_eq!(
        (line["msg"].as_str(), line["level"].as_str()),
        (Some("watchdog"), Some("warn"))
    );
}

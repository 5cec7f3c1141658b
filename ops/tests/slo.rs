//! `upm slo` end to end: the real binary against the fake GitHub, a real Verdaccio and a fake Discord.
//! Figures are checked against values worked out from the scripted records (the registry's own
//! publish times read back); the alert is sent once per breach and once on recovery.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::Verdaccio;
use upm_fake_github::state::{Delivery, WorkflowRun};
use upm_fake_github::{FakeGitHub, State};
use upm_github::deliveries::format_rfc3339_utc as at;

const TOKEN: &str = "ghp_slo_test_token";

fn now() -> i64 {
    upm_github::client::now_unix()
}

/// A Discord stand-in on loopback that records each message body; stops with the test.
struct Discord {
    url: String,
    messages: Arc<Mutex<Vec<Value>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl Discord {
    fn start() -> Discord {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/webhook", server.server_addr().to_ip().unwrap());
        let messages = Arc::new(Mutex::new(Vec::new()));
        let recorded = messages.clone();
        let thread = std::thread::spawn(move || {
            // Bounded: the test sends a handful of messages; idle 60 s ends the loop.
            while let Ok(Some(mut request)) = server.recv_timeout(Duration::from_secs(60)) {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                recorded
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                let _ = request.respond(tiny_http::Response::empty(204));
            }
        });
        Discord {
            url,
            messages,
            _thread: thread,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn delivery(
    id: u64,
    guid: &str,
    repo_id: u64,
    sha: &str,
    branch: &str,
    path: &str,
    when: i64,
    code: u16,
    redelivery: bool,
) -> Delivery {
    Delivery {
        id,
        guid: guid.into(),
        delivered_at: at(when),
        redelivery,
        duration: 0.2,
        status: Delivery::status_text(code),
        status_code: code,
        event: "push".into(),
        repository_id: Some(repo_id),
        payload: json!({ "ref": format!("refs/heads/{branch}"), "after": sha,
                         "commits": [{ "added": [path], "modified": [] }] }),
        ..Delivery::default()
    }
}

fn manifest(name: &str, version: &str) -> Vec<u8> {
    format!("{{\"name\":\"{name}\",\"version\":\"{version}\",\"unity\":\"2022.3\"}}").into_bytes()
}

#[test]
fn figures_from_records_and_an_alert_once_per_breach_and_recovery() {
    let registry = Verdaccio::shared();
    let discord = Discord::start();
    let t = now();
    let mut state = State {
        tokens: vec![TOKEN.into()],
        ..State::default()
    };
    let mut sha = BTreeShas::default();
    for (repo, packages) in [
        ("Studio/A", ["slo.a1", "slo.a2"]),
        ("Studio/B", ["slo.b1", "slo.b2"]),
    ] {
        let r = state.add_repo(repo, "main");
        for p in packages {
            let commit = r
                .commit(
                    "main",
                    &[(&format!("{p}/package.json"), Some(&manifest(p, "1.0.0")))],
                    p,
                )
                .unwrap();
            sha.0.push((p.to_string(), commit));
        }
    }
    let central = state.add_repo("Studio/Central", "main");
    let run = |id: u64, guid: &str, created: i64| WorkflowRun {
        id,
        workflow: "handle-publish-request.yml".into(),
        display_title: format!("publish x @ y (delivery {guid})"),
        status: "completed".into(),
        conclusion: Some("success".into()),
        created_at: at(created),
        ..WorkflowRun::default()
    };
    central.workflow_runs = vec![
        run(1, "a1", t - 7200 + 3),
        run(2, "a2", t - 5000 + 400),
        run(3, "b1", t - 3000 + 5),
    ];
    let (a, b) = (
        state.repo("Studio/A").unwrap().id,
        state.repo("Studio/B").unwrap().id,
    );
    let hook = state.hook_mut("Studio", 42);
    hook.deliveries = vec![
        delivery(
            1,
            "a1",
            a,
            sha.of("slo.a1"),
            "main",
            "slo.a1/package.json",
            t - 7200,
            200,
            false,
        ),
        delivery(
            2,
            "a2",
            a,
            sha.of("slo.a2"),
            "main",
            "slo.a2/package.json",
            t - 5000,
            502,
            false,
        ),
        delivery(
            3,
            "b3",
            b,
            sha.of("slo.b1"),
            "dev",
            "slo.b1/package.json",
            t - 4000,
            200,
            false,
        ),
        delivery(
            4,
            "b1",
            b,
            sha.of("slo.b1"),
            "main",
            "slo.b1/package.json",
            t - 3000,
            200,
            false,
        ),
        delivery(
            5,
            "a2",
            a,
            sha.of("slo.a2"),
            "main",
            "slo.a2/package.json",
            t - 2000,
            200,
            true,
        ),
        delivery(
            6,
            "b2",
            b,
            sha.of("slo.b2"),
            "main",
            "slo.b2/package.json",
            t - 300,
            200,
            false,
        ),
    ];
    let fake = FakeGitHub::start(state).unwrap();
    registry.publish_good("slo.a1", "1.0.0");
    registry.publish_good("slo.b1", "1.0.0");
    let (a1, b1) = (
        registry.published_at("slo.a1", "1.0.0"),
        registry.published_at("slo.b1", "1.0.0"),
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("repositories.json"),
        r#"{"repositories": [{"url": "Studio/A", "status": "active"}, {"url": "Studio/B", "status": "active"}]}"#,
    )
    .unwrap();
    // What an earlier run saw five days ago (GitHub's log no longer holds it).
    let history = dir.path().join("history.json");
    std::fs::write(
        &history,
        json!({ "records": [{ "guid": "a0", "repository": "Studio/A", "sha": "0".repeat(40),
            "pushed_at": t - 5 * 86_400, "first_ok": true, "run_created_at": t - 5 * 86_400 + 2,
            "bumps": [{ "package": "slo.a0@1.0.0", "published_at": t - 5 * 86_400 + 100 }] }] })
        .to_string(),
    )
    .unwrap();
    let alert_state = dir.path().join("alert.json");
    let summary = dir.path().join("summary.md");
    let upm = |extra: &[&str]| {
        let mut args = vec![
            "slo",
            "--since",
            "7d",
            "--history",
            history.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let output = Command::new(env!("CARGO_BIN_EXE_upm"))
            .args(&args)
            .current_dir(dir.path())
            .env_remove("GITHUB_APP_ID")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("NPM_TOKEN")
            .env("GITHUB_API", fake.url())
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_ORG", "Studio")
            .env("HOOK_ID", "42")
            .env("DISPATCH_REPO", "Studio/Central")
            .env("UPM_REGISTRY", &registry.url)
            .env("UPM_REGISTRY_FILE", dir.path().join("repositories.json"))
            .env("DISCORD_WEBHOOK_URL", &discord.url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        println!(
            "$ upm {}\n{stdout}{stderr}(exit {:?})\n",
            args.join(" "),
            output.status.code()
        );
        (output.status.code().unwrap_or(-1), stdout)
    };

    let (code, out) = upm(&["--json"]);
    assert_eq!(code, 0, "no --alert: the report alone");
    let report: Value = serde_json::from_str(&out).unwrap();
    let o = &report["overall"];
    // a0 (history), a1, a2, b3 (another branch: webhook only), b1, b2 — a2's first attempt failed.
    assert_eq!(
        (o["pushes"].as_u64(), o["first_attempt_ok"].as_u64()),
        (Some(6), Some(5))
    );
    assert_eq!(o["webhook_success_pct"].as_f64().unwrap(), 500.0 / 6.0);
    // Start: a0 2, a1 3, b1 5, a2 400 → p50 (2nd) 3, p95 (4th) 400.
    assert_eq!(
        o["push_to_start"],
        json!({ "count": 4, "p50": 3, "p95": 400, "max": 400 })
    );
    // Published: a0 100, a1 and b1 when Verdaccio says; a2 missing (83 min), b2 pending (5 min).
    let mut published = [100, a1 - (t - 7200), b1 - (t - 3000)];
    published.sort();
    assert_eq!(o["push_to_published"]["count"], 3);
    assert_eq!(o["push_to_published"]["p50"], published[1]);
    assert_eq!(o["push_to_published"]["max"], published[2]);
    assert_eq!(report["missing"].as_array().unwrap().len(), 1);
    assert_eq!(report["missing"][0]["package"], "slo.a2@1.0.0");
    assert_eq!(report["repositories"]["Studio/B"]["pushes"], 3);
    assert!(report["github_requests"].as_u64().unwrap() > 0);

    // The alert: one message for the breaches, none the next hour, one for the recovery.
    let (code, out) = upm(&[
        "--alert",
        "--alert-state",
        alert_state.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "a target is missed");
    assert!(out.contains("alert (last 24h): sent"), "{out}");
    let messages = discord.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 1);
    let text = messages[0]["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!("`upm trace Studio/A {}`", sha.of("slo.a2"))),
        "{text}"
    );
    assert!(text.contains("webhook first-attempt success"), "{text}");
    let chart = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(chart.matches("```mermaid").count(), 2, "{chart}");

    let (_, out) = upm(&["--alert", "--alert-state", alert_state.to_str().unwrap()]);
    assert!(out.contains("nothing new to announce"), "{out}");
    assert_eq!(discord.messages.lock().unwrap().len(), 1);

    registry.publish_good("slo.a2", "1.0.0");
    let (_, out) = upm(&["--alert", "--alert-state", alert_state.to_str().unwrap()]);
    assert!(out.contains("1 recovered"), "{out}");
    let messages = discord.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 2);
    let recovery = messages[1]["embeds"][0]["description"].as_str().unwrap();
    assert!(
        recovery.contains("slo.a2@1.0.0 from Studio/A is on the registry"),
        "{recovery}"
    );

    // Cost: the same report with the ETag cache sends as many requests, every one answered 304.
    let cache = dir.path().join("etags.json");
    let cache = cache.to_str().unwrap();
    // As of one instant, so both reports make the same requests whatever second they start in.
    let as_of = at(now());
    let (_, cold) = upm(&["--json", "--etag-cache", cache, "--as-of", &as_of]);
    let cold: Value = serde_json::from_str(&cold).unwrap();
    let (_, warm) = upm(&["--json", "--etag-cache", cache, "--as-of", &as_of]);
    let warm: Value = serde_json::from_str(&warm).unwrap();
    println!(
        "requests per SLO report: {} without the ETag cache; {} with it, {} of them 304",
        cold["github_requests"], warm["github_requests"], warm["github_not_modified"]
    );
    assert_eq!(cold["github_not_modified"], 0);
    assert_eq!(warm["github_requests"], cold["github_requests"]);
    assert_eq!(warm["github_not_modified"], warm["github_requests"]);
}

#[derive(Default)]
struct BTreeShas(Vec<(String, String)>);

impl BTreeShas {
    fn of(&self, package: &str) -> &str {
        &self.0.iter().find(|(p, _)| p == package).unwrap().1
    }
}

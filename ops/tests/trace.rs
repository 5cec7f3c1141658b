//! `upm trace` end to end: the real binary against the fake GitHub and a real Verdaccio on loopback.
//! Five bumps, each stopping (or not) at its own stage: published normally, a failed delivery then
//! redelivered, a lost dispatch caught up by reconcile, a run stuck in the queue, a push that bumped
//! nothing. `cargo test -p upm-ops --test trace -- --nocapture` prints every trace.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::Verdaccio;
use upm_fake_github::state::{Artifact, Delivery, Job, Step, WorkflowRun};
use upm_fake_github::{FakeGitHub, State};
use upm_github::deliveries::format_rfc3339_utc;

const TOKEN: &str = "ghp_trace_test_token_never_printed";
const REPO: &str = "Studio/Core";
const CENTRAL: &str = "Studio/Central";

fn now() -> i64 {
    upm_github::client::now_unix()
}

fn at(t: i64) -> String {
    format_rfc3339_utc(t)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct World {
    fake: FakeGitHub,
    dir: tempfile::TempDir,
    api: String,
}

impl World {
    fn new() -> World {
        let mut state = State {
            tokens: vec![TOKEN.into()],
            ..State::default()
        };
        state.add_repo(REPO, "main");
        state.add_repo(CENTRAL, "main");
        state.hook_mut("Studio", 42);
        let fake = FakeGitHub::start(state).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("repositories.json"),
            r#"{"repositories": [{"url": "https://github.com/Studio/Core", "status": "active"}]}"#,
        )
        .unwrap();
        let api = fake.url().to_string();
        World { fake, dir, api }
    }

    fn upm(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_upm"));
        for name in [
            "GITHUB_APP_ID",
            "GITHUB_APP_PRIVATE_KEY",
            "DISCORD_WEBHOOK_URL",
            "NPM_TOKEN",
            "UPM_ETAG_CACHE",
        ] {
            command.env_remove(name);
        }
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .env("GITHUB_API", &self.api)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_ORG", "Studio")
            .env("HOOK_ID", "42")
            .env("DISPATCH_REPO", CENTRAL)
            .env("UPM_REGISTRY", &Verdaccio::shared().url)
            .env(
                "UPM_REGISTRY_FILE",
                self.dir.path().join("repositories.json"),
            )
            .output()
            .unwrap();
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        println!(
            "$ upm {}\n{}{}(exit {})\n",
            args.join(" "),
            run.stdout,
            run.stderr
                .lines()
                .filter(|l| l.starts_with("upm:") || l.starts_with("GitHub requests"))
                .map(|l| format!("stderr: {l}\n"))
                .collect::<String>(),
            run.code
        );
        assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
        run
    }

    fn trace_json(&self, target: &str) -> (i32, Value) {
        let run = self.upm(&["trace", REPO, target, "--json"]);
        let value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr));
        (run.code, value)
    }

    /// A commit on main that sets `dir`'s package to `version` (and `extra` into its manifest).
    fn commit(&self, dir: &str, name: &str, version: &str, extra: &str, date: i64) -> String {
        let manifest = format!(
            "{{\"name\":\"{name}\",\"version\":\"{version}\",\"displayName\":\"{name}\",\"unity\":\"2022.3\"{extra}}}"
        );
        let mut state = self.fake.state();
        let repo = state.repo_mut(REPO).unwrap();
        repo.commit_at(
            "main",
            &[(&format!("{dir}/package.json"), Some(manifest.as_bytes()))],
            &format!("{name} {version}"),
            &at(date),
        )
        .unwrap()
    }

    /// A push delivery (first attempt or redelivery) answered `code` with the worker's body.
    #[allow(clippy::too_many_arguments)]
    fn delivery(
        &self,
        id: u64,
        guid: &str,
        sha: &str,
        dir: &str,
        when: i64,
        code: u16,
        redelivery: bool,
        outcome: &str,
    ) {
        let mut state = self.fake.state();
        let repo_id = state.repo(REPO).unwrap().id;
        state.hook_mut("Studio", 42).deliveries.push(Delivery {
            id,
            guid: guid.into(),
            delivered_at: at(when),
            redelivery,
            duration: if code == 502 { 9.5 } else { 0.21 },
            status: Delivery::status_text(code),
            status_code: code,
            event: "push".into(),
            repository_id: Some(repo_id),
            payload: json!({
                "ref": "refs/heads/main", "after": sha,
                "commits": [{ "added": [], "modified": [format!("{dir}/package.json")] }],
                "repository": { "full_name": REPO, "pushed_at": when - 1 },
            }),
            response: Some(
                json!({ "outcome": outcome, "reason": format!("{outcome} {REPO}@{}", &sha[..12]), "delivery": guid })
                    .to_string(),
            ),
            ..Delivery::default()
        });
    }

    /// A run of the central publish workflow for `sha`, as the run-name names it.
    fn run(&self, run: WorkflowRun) {
        let mut state = self.fake.state();
        state.repo_mut(CENTRAL).unwrap().workflow_runs.push(run);
    }

    fn changelog_commit(&self, sha: &str, dir: &str, date: i64) {
        let mut state = self.fake.state();
        let repo = state.repo_mut(REPO).unwrap();
        repo.commit_at(
            "main",
            &[(&format!("{dir}/CHANGELOG.md"), Some(b"## changes\n".as_slice()))],
            &format!(
                "chore(changelog): {dir} [skip ci]\n\nWritten by upm-publisher for the versions it published from {}.",
                &sha[..12]
            ),
            &at(date),
        )
        .unwrap();
    }
}

fn publish_run(
    id: u64,
    sha: &str,
    delivery: &str,
    created: i64,
    outcome: &str,
    audit: Option<Value>,
) -> WorkflowRun {
    let completed = outcome != "queued";
    let job = Job {
        id: id * 10,
        name: "Publish UPM packages".into(),
        status: if completed { "completed" } else { "queued" }.into(),
        conclusion: completed.then(|| outcome.to_string()),
        created_at: at(created),
        started_at: completed.then(|| at(created + 6)),
        completed_at: completed.then(|| at(created + 40)),
        runner_name: completed.then(|| "GitHub Actions 12".to_string()),
        labels: if completed {
            vec!["ubuntu-latest".into()]
        } else {
            vec!["self-hosted".into(), "arc-publish".into()]
        },
        steps: if completed {
            vec![Step {
                name: "Publish".into(),
                number: 6,
                status: "completed".into(),
                conclusion: Some(outcome.to_string()),
                started_at: Some(at(created + 20)),
                completed_at: Some(at(created + 35)),
            }]
        } else {
            Vec::new()
        },
    };
    WorkflowRun {
        id,
        workflow: "handle-publish-request.yml".into(),
        display_title: format!("publish {REPO} @ {sha} (delivery {delivery})"),
        event: "repository_dispatch".into(),
        status: if completed { "completed" } else { "queued" }.into(),
        conclusion: completed.then(|| outcome.to_string()),
        created_at: at(created),
        jobs: vec![job],
        artifacts: audit
            .map(|audit| {
                vec![Artifact {
                    id: id * 100,
                    name: format!("upm-publish-audit-{id}-1"),
                    created_at: at(created + 41),
                    files: [("upm-publish-audit.json".to_string(), audit.to_string())]
                        .into_iter()
                        .collect(),
                    ..Artifact::default()
                }]
            })
            .unwrap_or_default(),
        ..WorkflowRun::default()
    }
}

/// The audit file the publisher writes (publisher/src/summary.rs `Audit`, with its timings).
fn audit(name: &str, version: &str, delivery: &str, started: i64) -> Value {
    json!({
        "timestamp": at(started + 34), "ok": true, "dry_run": false, "registry": "r",
        "source": { "repository": REPO, "delivery": delivery },
        "published": [{ "name": name, "version": version, "path": "x" }],
        "skipped": [], "failed": [], "notification": "sent", "delivery": delivery,
        "timings": { "started_at": at(started), "published_at": { format!("{name}@{version}"): at(started + 30) },
                     "notified_at": at(started + 33), "finished_at": at(started + 34) },
    })
}

fn stages(trace: &Value) -> Vec<String> {
    trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_bump_names_the_stage_where_it_stopped_and_the_next_step() {
    let registry = Verdaccio::shared();
    let world = World::new();
    let t0 = now() - 1200;

    // 1. Published normally: delivery → run → registry → changelog → Discord.
    let normal = world.commit("Packages/core", "com.studio.core", "1.4.0", "", t0);
    world.delivery(
        101,
        "guid-normal",
        &normal,
        "Packages/core",
        t0 + 2,
        200,
        false,
        "dispatched",
    );
    registry.publish_good("com.studio.core", "1.4.0");
    let published = registry.published_at("com.studio.core", "1.4.0");
    world.run(publish_run(
        9001,
        &normal,
        "guid-normal",
        t0 + 4,
        "success",
        Some(audit("com.studio.core", "1.4.0", "guid-normal", t0 + 12)),
    ));
    world.changelog_commit(&normal, "Packages/core", t0 + 50);
    let (code, report) = world.trace_json(&normal);
    let trace = &report["traces"][0];
    assert_eq!(code, 0);
    assert_eq!(trace["verdict"], "published");
    assert_eq!(trace["stopped_at"], Value::Null);
    assert_eq!(trace["next_step"], "nothing to do");
    assert_eq!(trace["bumps"][0]["previous"], Value::Null);
    for stage in [
        "push",
        "delivery",
        "dispatch",
        "queue",
        "job",
        "registry",
        "changelog",
        "discord",
    ] {
        assert!(
            stages(trace).contains(&stage.to_string()),
            "{stage} missing: {trace}"
        );
    }
    // Push at t0+1 (the payload's pushed_at), run created at t0+4; published when Verdaccio says.
    assert_eq!(trace["push_to_run_secs"], 3);
    assert_eq!(trace["push_to_published_secs"], published - (t0 + 1));
    assert_eq!(trace["notes"], json!([]));
    // The same bump by package@version finds the same commit.
    let (_, by_version) = world.trace_json("com.studio.core@1.4.0");
    assert_eq!(by_version["traces"][0]["sha"], normal.as_str());

    // 2. The delivery failed (502 twice): stopped at the delivery, "redeliver"; then redelivered,
    //    dispatched and published: the timeline shows every attempt.
    let flaky = world.commit("Packages/net", "com.studio.net", "2.0.0", "", t0 + 100);
    world.delivery(
        201,
        "guid-flaky",
        &flaky,
        "Packages/net",
        t0 + 102,
        502,
        false,
        "failed",
    );
    world.delivery(
        202,
        "guid-flaky",
        &flaky,
        "Packages/net",
        t0 + 160,
        502,
        true,
        "failed",
    );
    let (code, report) = world.trace_json(&flaky);
    let trace = &report["traces"][0];
    assert_eq!(code, 3);
    assert_eq!(trace["stopped_at"], "delivery");
    assert!(trace["why"]
        .as_str()
        .unwrap()
        .contains("2 attempt(s), last answered 502"));
    assert!(trace["next_step"]
        .as_str()
        .unwrap()
        .starts_with("redeliver it"));
    world.delivery(
        203,
        "guid-flaky",
        &flaky,
        "Packages/net",
        t0 + 400,
        200,
        true,
        "dispatched",
    );
    registry.publish_good("com.studio.net", "2.0.0");
    world.run(publish_run(
        9002,
        &flaky,
        "guid-flaky",
        t0 + 402,
        "success",
        Some(audit("com.studio.net", "2.0.0", "guid-flaky", t0 + 410)),
    ));
    world.changelog_commit(&flaky, "Packages/net", t0 + 450);
    let (code, report) = world.trace_json(&flaky);
    let trace = &report["traces"][0];
    assert_eq!((code, trace["verdict"].as_str()), (0, Some("published")));
    let attempts: Vec<&Value> = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == "delivery")
        .collect();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["ok"], false);
    assert_eq!(attempts[2]["ok"], true);
    assert_eq!(attempts[1]["after_secs"], 58);

    // 3. Dispatched, but no run ever named the delivery: stopped at the dispatch, "reconcile will
    //    catch it up at HH:MM"; then reconcile's catch-up run publishes it.
    let lost = world.commit("Packages/ui", "com.studio.ui", "0.3.0", "", t0 + 500);
    world.delivery(
        301,
        "guid-lost",
        &lost,
        "Packages/ui",
        t0 + 502,
        200,
        false,
        "dispatched",
    );
    let (code, report) = world.trace_json(&lost);
    let trace = &report["traces"][0];
    assert_eq!(code, 3);
    assert_eq!(trace["stopped_at"], "dispatch");
    let next = upm_ops::trace::hh_mm(upm_ops::trace::next_reconcile(now()));
    assert!(
        trace["next_step"]
            .as_str()
            .unwrap()
            .ends_with(&format!("reconcile will catch it up at {next}")),
        "{}",
        trace["next_step"]
    );
    registry.publish_good("com.studio.ui", "0.3.0");
    world.run(publish_run(
        9003,
        &lost,
        "reconcile-77",
        t0 + 900,
        "success",
        Some(audit("com.studio.ui", "0.3.0", "reconcile-77", t0 + 905)),
    ));
    world.changelog_commit(&lost, "Packages/ui", t0 + 950);
    let (code, report) = world.trace_json(&lost);
    let trace = &report["traces"][0];
    assert_eq!((code, trace["verdict"].as_str()), (0, Some("caught_up")));
    assert_eq!(trace["push_to_run_secs"], Value::Null);

    // 4. A run stuck in the queue: no runner has the labels.
    let queued = world.commit("Packages/fx", "com.studio.fx", "1.0.1", "", t0 + 1000);
    world.delivery(
        401,
        "guid-queued",
        &queued,
        "Packages/fx",
        t0 + 1002,
        200,
        false,
        "dispatched",
    );
    world.run(publish_run(
        9004,
        &queued,
        "guid-queued",
        t0 + 1003,
        "queued",
        None,
    ));
    let (code, report) = world.trace_json(&queued);
    let trace = &report["traces"][0];
    assert_eq!(code, 3);
    assert_eq!(trace["stopped_at"], "queue");
    assert!(
        trace["why"]
            .as_str()
            .unwrap()
            .contains("[self-hosted, arc-publish]"),
        "{}",
        trace["why"]
    );
    assert!(trace["next_step"]
        .as_str()
        .unwrap()
        .contains("gh run cancel 9004 -R Studio/Central"));

    // 5. A push that changed package.json but not its version.
    let same = world.commit(
        "Packages/core",
        "com.studio.core",
        "1.4.0",
        ",\"description\":\"d\"",
        t0 + 1100,
    );
    world.delivery(
        501,
        "guid-same",
        &same,
        "Packages/core",
        t0 + 1102,
        200,
        false,
        "dispatched",
    );
    let (code, report) = world.trace_json(&same);
    let trace = &report["traces"][0];
    assert_eq!(code, 0);
    assert_eq!(trace["verdict"], "not_bumped");
    assert_eq!(trace["stopped_at"], "bump");
    assert!(trace["next_step"]
        .as_str()
        .unwrap()
        .starts_with("version not bumped"));

    // `upm trace <repo>`: the recent pushes that touched a package.json, newest first.
    let all = world.upm(&["trace", REPO]);
    assert_eq!(all.code, 3, "one bump is still stuck");
    let table: Vec<&str> = all.stdout.lines().take(6).collect();
    assert!(
        table[1].contains(&same[..12]) && table[1].contains("not a bump"),
        "{table:?}"
    );
    assert!(
        table[2].contains(&queued[..12]) && table[2].contains("STOPPED at queue"),
        "{table:?}"
    );
    assert!(table[3].contains("caught up"), "{table:?}");
    assert!(
        table[4].contains(&flaky[..12]) && table[4].contains("published"),
        "{table:?}"
    );
    assert!(
        table[5].contains(&normal[..12]) && table[5].contains("published"),
        "{table:?}"
    );
}

#[test]
fn requests_per_trace_with_and_without_the_etag_cache() {
    let registry = Verdaccio::shared();
    let world = World::new();
    let t0 = now() - 600;
    let sha = world.commit("Packages/cost", "com.studio.cost", "3.1.0", "", t0);
    world.delivery(
        601,
        "guid-cost",
        &sha,
        "Packages/cost",
        t0 + 2,
        200,
        false,
        "dispatched",
    );
    registry.publish_good("com.studio.cost", "3.1.0");
    world.run(publish_run(
        9101,
        &sha,
        "guid-cost",
        t0 + 3,
        "success",
        Some(audit("com.studio.cost", "3.1.0", "guid-cost", t0 + 10)),
    ));
    let cache = world.dir.path().join("etags.json");
    let cache = cache.to_str().unwrap();
    let before = world.fake.requests().len();
    let (_, cold) = world.trace_json(&sha);
    let sent = world.fake.requests().len() - before;
    assert_eq!(cold["github_requests"].as_u64().unwrap() as usize, sent);
    // As of one instant, so both traces make the same requests whatever second they start in.
    let as_of = upm_github::deliveries::format_rfc3339_utc(now());
    world.upm(&[
        "trace",
        REPO,
        &sha,
        "--etag-cache",
        cache,
        "--as-of",
        &as_of,
    ]);
    let warm = world.upm(&[
        "trace",
        REPO,
        &sha,
        "--etag-cache",
        cache,
        "--json",
        "--as-of",
        &as_of,
    ]);
    let warm: Value = serde_json::from_str(&warm.stdout).unwrap();
    let requests = warm["github_requests"].as_u64().unwrap();
    let not_modified = warm["github_not_modified"].as_u64().unwrap();
    println!(
        "requests per trace: {sent} without the ETag cache; {requests} with it, {not_modified} of them 304 (not counted by GitHub's rate limit)"
    );
    // Everything but the artifact download (a redirect, never cached) is answered 304.
    assert_eq!(requests, cold["github_requests"].as_u64().unwrap());
    assert_eq!(not_modified, requests - 1);
}

#[test]
fn bad_input_and_an_unreachable_github_are_one_clear_message() {
    let world = World::new();
    let bad = world.upm(&["trace", REPO, "not-a-sha"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("neither a commit sha"),
        "{}",
        bad.stderr
    );
    let bad_repo = world.upm(&["trace", "nope", "0123456"]);
    assert_eq!(bad_repo.code, 2);
    let unknown = world.upm(&["trace", REPO, "0123456789abcdef0123456789abcdef01234567"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("has no commit"),
        "{}",
        unknown.stderr
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut offline = World::new();
    offline.api = format!("http://127.0.0.1:{port}");
    let run = offline.upm(&["trace", REPO, "0123456"]);
    assert_eq!(run.code, 1);
    let messages: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("upm:"))
        .collect();
    assert_eq!(messages.len(), 1, "{}", run.stderr);
    assert!(messages[0].contains("is unreachable"), "{}", run.stderr);
}

//! `upm` end to end: the real binary against the fake GitHub (and a fake Discord / npm registry) on
//! loopback. Each test prints the command's output, so `cargo test -p upm-ops --test cli -- --nocapture`
//! shows a real sample of every subcommand.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use upm_fake_github::state::{Delivery, Pull, WorkflowRun};
use upm_fake_github::{FakeGitHub, Fault, State};
use upm_github::deliveries::format_rfc3339_utc;

const TOKEN: &str = "ghp_cli_test_token_never_printed";
const DISPATCHER: &str = ".github/workflows/upm-publish-dispatcher.yml";
const OLD_DISPATCHER: &str = ".github/workflows/publish-upm.yml";

fn now() -> i64 {
    upm_github::client::now_unix()
}

struct World {
    fake: FakeGitHub,
    dir: tempfile::TempDir,
    registry: PathBuf,
    env: Vec<(String, String)>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl World {
    fn new(state: State, registry_text: &str) -> World {
        let fake = FakeGitHub::start(State {
            tokens: vec![TOKEN.into()],
            ..state
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("repositories.json");
        std::fs::write(&registry, registry_text).unwrap();
        World {
            fake,
            dir,
            registry,
            env: Vec::new(),
        }
    }

    fn upm(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_upm"));
        for name in [
            "GITHUB_APP_ID",
            "GITHUB_APP_PRIVATE_KEY",
            "GITHUB_APP_INSTALLATION_ID",
            "DISCORD_WEBHOOK_URL",
            "UPM_REGISTRY",
            "NPM_TOKEN",
        ] {
            command.env_remove(name);
        }
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("GITHUB_API", self.fake.url())
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_ORG", "Studio")
            .env("HOOK_ID", "42")
            .env("DISPATCH_REPO", "Studio/Central")
            .env("UPM_REGISTRY_FILE", &self.registry);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let error = match (run.code, run.stderr.lines().last()) {
            (0, _) | (_, None) => String::new(),
            (_, Some(line)) => format!("stderr: {line}\n"),
        };
        println!(
            "$ upm {}\n{}{error}(exit {})\n",
            args.join(" "),
            run.stdout,
            run.code
        );
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "a token was printed"
        );
        run
    }

    fn registry_text(&self) -> String {
        std::fs::read_to_string(&self.registry).unwrap()
    }
}

/// The output with runs of spaces squashed, so assertions do not depend on column widths.
fn flat(text: &str) -> String {
    text.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fails, showing the whole text, when `needle` is not in it.
#[track_caller]
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

const REGISTRY: &str = include_str!("fixtures/registry-multi-line.json");

// ---- registry ------------------------------------------------------------------------------------

fn registry_state() -> State {
    let mut state = State::default();
    state.add_repo("Studio/Zeta", "main");
    state
        .add_repo("Studio/Alpha", "main")
        .commit("release", &[("x", Some(b"x".as_slice()))], "release branch")
        .unwrap();
    state.add_repo("Studio/New", "develop");
    state
}

#[test]
fn registry_list_add_enable_disable_round_trip() {
    let world = World::new(registry_state(), REGISTRY);
    let list = world.upm(&["registry", "list"]);
    assert_eq!(list.code, 0);
    assert_has(&flat(&list.stdout), "Studio/Alpha active release");
    assert_has(
        &list.stdout,
        "3 repositories: 2 active, 1 disabled, 0 pending",
    );

    // Dry run: the plan, the file untouched.
    let plan = world.upm(&[
        "registry",
        "add",
        "https://github.com/studio/new",
        "--note",
        "new game",
        "--pending",
    ]);
    assert_eq!(plan.code, 0);
    assert_has(&plan.stdout, "would change (dry run");
    assert!(
        plan.stdout
            .contains(r#"+      "url": "https://github.com/Studio/New","#),
        "GitHub's spelling: {}",
        plan.stdout
    );
    assert_eq!(world.registry_text(), REGISTRY);

    let applied = world.upm(&[
        "registry",
        "add",
        "studio/new",
        "--note",
        "new game",
        "--pending",
        "--apply",
    ]);
    assert_eq!(applied.code, 0);
    let after_add = world.registry_text();
    assert!(after_add.starts_with(&REGISTRY[..REGISTRY.len() - 10]));
    assert_has(&after_add, "\"note\": \"new game\"");
    let again = world.upm(&["registry", "add", "studio/new", "--apply"]);
    assert_eq!(again.code, 1);
    assert_has(&again.stderr, "already registered (pending)");
    assert_eq!(world.registry_text(), after_add, "a re-run changes nothing");

    let pending = world.upm(&["registry", "pending"]);
    assert_has(&pending.stdout, "Studio/New");
    assert_has(&pending.stdout, "1 pending");

    // Disable then enable: byte for byte the file we had.
    assert_eq!(
        world
            .upm(&["registry", "disable", "Studio/Zeta", "--apply"])
            .code,
        0
    );
    assert_has(
        &world.registry_text(),
        "\"url\": \"https://github.com/Studio/Zeta\",\n      \"status\": \"disabled\"",
    );
    let twice = world.upm(&["registry", "disable", "Studio/Zeta", "--apply"]);
    assert_has(&twice.stdout, "nothing to change");
    assert_eq!(
        world
            .upm(&["registry", "enable", "studio/zeta", "--apply"])
            .code,
        0
    );
    assert_eq!(world.registry_text(), after_add);

    // A repository GitHub does not know cannot be added.
    let missing = world.upm(&["registry", "add", "Studio/Ghost", "--apply"]);
    assert_eq!(missing.code, 1);
    assert_has(&missing.stderr, "404");
    let unknown = world.upm(&["registry", "enable", "Studio/Ghost"]);
    assert_has(&unknown.stderr, "not registered");
}

#[test]
fn registry_validate_reports_per_line() {
    let world = World::new(registry_state(), REGISTRY);
    let run = world.upm(&["registry", "validate"]);
    assert_eq!(run.code, 1, "Studio/Legacy does not exist");
    assert_has(
        &flat(&run.stdout),
        "Studio/Alpha active ok reachable, branch release",
    );
    assert_has(
        &flat(&run.stdout),
        "Studio/Legacy disabled FAIL not found, or not readable",
    );
    assert_has(&run.stdout, "2 of 3 reachable");
    let report = json(&world.upm(&["registry", "validate", "--json"]));
    assert_eq!(
        report
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["ok"] == false)
            .count(),
        1
    );

    std::fs::write(
        &world.registry,
        r#"{"repositories": [{"url": "Studio/A", "status": "enabled"}]}"#,
    )
    .unwrap();
    let broken = world.upm(&["registry", "validate"]);
    assert_eq!(broken.code, 1);
    assert_has(&broken.stdout, "repositories[0].status");
}

#[test]
fn an_etag_cache_file_makes_unchanged_answers_304() {
    let world = World::new(registry_state(), REGISTRY);
    let cache = world.dir.path().join("etags.json");
    let cache = cache.to_str().unwrap();
    world.upm(&["registry", "validate", "--etag-cache", cache]);
    let first = world.fake.requests().len();
    world.upm(&["registry", "validate", "--etag-cache", cache]);
    let second: Vec<u16> = world.fake.requests()[first..]
        .iter()
        .map(|r| r.status)
        .collect();
    // Zeta, Alpha and their branches unchanged: 304; Legacy is still a 404 (not cached).
    assert_eq!(second, [304, 304, 304, 304, 404]);
}

#[test]
fn registry_add_can_open_the_pull_request() {
    let mut state = registry_state();
    state
        .add_repo("Studio/Central", "main")
        .commit(
            "main",
            &[("config/repositories.json", Some(REGISTRY.as_bytes()))],
            "registry",
        )
        .unwrap();
    let world = World::new(state, REGISTRY);
    let mut args = vec![
        "--registry-file",
        "config/repositories.json",
        "registry",
        "add",
        "Studio/New",
        "--open-pr",
    ];
    let plan = world.upm(&args);
    assert_has(&plan.stdout, "would change");
    assert!(pulls(&world, "Studio/Central").is_empty());
    args.push("--apply");
    let run = world.upm(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_has(
        &run.stdout,
        "pull request: https://github.com/Studio/Central/pull/1",
    );
    assert_has(
        &file_on(
            &world,
            "Studio/Central",
            "upm/register-studio-new",
            "config/repositories.json",
        ),
        "https://github.com/Studio/New",
    );
    assert_eq!(pulls(&world, "Studio/Central").len(), 1);
    let rerun = world.upm(&args);
    assert_eq!(rerun.code, 0);
    assert_has(
        &rerun.stdout,
        "pull request already open: https://github.com/Studio/Central/pull/1",
    );
    assert_eq!(pulls(&world, "Studio/Central").len(), 1, "no second PR");
    assert_eq!(
        world.registry_text(),
        REGISTRY,
        "the local file is not touched"
    );
}

// ---- deliveries ----------------------------------------------------------------------------------

/// A successful run of the central publish workflow, `ago` seconds ago.
fn central_run(id: u64, title: &str, ago: i64) -> WorkflowRun {
    WorkflowRun {
        id,
        workflow: "handle-publish-request.yml".into(),
        display_title: title.into(),
        event: "repository_dispatch".into(),
        status: "completed".into(),
        conclusion: Some("success".into()),
        created_at: format_rfc3339_utc(now() - ago),
        ..WorkflowRun::default()
    }
}

/// A push delivery of the organization hook `ago` seconds ago, answered `code` in `secs` seconds.
fn push_delivery(
    id: u64,
    guid: &str,
    ago: i64,
    code: u16,
    repo: u64,
    redelivery: bool,
    secs: f64,
) -> Delivery {
    Delivery {
        id,
        guid: guid.into(),
        delivered_at: format_rfc3339_utc(now() - ago),
        redelivery,
        duration: secs,
        status: Delivery::status_text(code),
        status_code: code,
        event: "push".into(),
        repository_id: Some(repo),
        ..Delivery::default()
    }
}

/// Zeta (id 1001) and Alpha (id 1002) deliveries over the last day; page size 3 so the listing is
/// read through several cursor pages.
fn deliveries_state() -> State {
    let mut state = registry_state();
    state
        .add_repo("Studio/Central", "main")
        .workflow_runs
        .push(central_run(
            1,
            "Publish Studio/Zeta@1a2b3c4 (delivery dispatched-502)",
            129_500,
        ));
    state.page_size_cap = Some(3);
    let zeta = state.repo("Studio/Zeta").unwrap().id;
    let alpha = state.repo("Studio/Alpha").unwrap().id;
    let hook = state.hook_mut("Studio", 42);
    let mut push = |id, guid, ago, code, repo, redelivery, secs| {
        hook.deliveries
            .push(push_delivery(id, guid, ago, code, repo, redelivery, secs))
    };
    // Ids grow with time, as at GitHub.
    // At the edge of GitHub's 3-day window (inside the safety margin): too old to redeliver.
    push(10, "expired", 3 * 86_400 - 1800, 502, zeta, false, 10.0);
    // A timeout (no HTTP answer), 2 days ago: outside --since 24h, inside the 3-day window.
    push(20, "timeout-old", 2 * 86_400, 0, zeta, false, 10.0);
    // Answered 502 a day and a half ago, but the dispatch went out (the central workflow ran for it):
    // not redelivered.
    push(25, "dispatched-502", 129_600, 502, zeta, false, 10.0);
    push(30, "ok-1", 7200, 200, zeta, false, 0.12);
    push(40, "ok-2", 7000, 200, alpha, false, 0.10);
    push(50, "ok-3", 6000, 202, alpha, false, 0.30);
    // Failed, then redelivered successfully: recovered.
    push(60, "recovered", 5000, 502, zeta, false, 9.8);
    push(70, "recovered", 4000, 200, zeta, true, 0.2);
    // Failed twice, transient: should be redelivered.
    push(80, "lost-502", 3000, 502, alpha, false, 10.0);
    push(90, "lost-502", 2000, 503, alpha, true, 10.0);
    // Permanent: a bad signature.
    push(100, "bad-signature", 1000, 401, zeta, false, 0.01);
    state
}

#[test]
fn deliveries_statistics_from_cursor_pages() {
    let world = World::new(deliveries_state(), REGISTRY);
    let run = world.upm(&["deliveries", "--since", "24h"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_has(
        &run.stdout,
        "6 deliveries, 2 redeliveries · first-attempt success 50.0%",
    );
    assert_has(&run.stdout, "recovered 1 · still failed 2");
    let report = json(&world.upm(&["deliveries", "--since", "24h", "--json"]));
    let stats = &report["stats"];
    assert_eq!(stats["deliveries"], 6);
    assert_eq!(stats["success_rate"], 50.0);
    assert_eq!(stats["failures"][0]["status_code"], 502);
    assert_eq!(stats["failures"][0]["attempts"], 2);
    let alpha = stats["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == "Studio/Alpha")
        .unwrap();
    assert_eq!(
        (alpha["deliveries"].as_u64(), alpha["still_failed"].as_u64()),
        (Some(3), Some(1))
    );
    // The 24 h listing stops at the first page holding an older delivery: not every page is read.
    let pages = world
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/deliveries"))
        .count();
    assert_eq!(
        pages, 6,
        "3 pages per run (2 runs), the old deliveries' last page never read"
    );
}

/// (path, body) of each request a recorder received.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server that records request bodies and answers `answer(path)` (status, body); it stops
/// when the test drops the log.
fn recorder(answer: fn(&str) -> (u16, &'static str)) -> (String, Requests) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}",
        server.server_addr().to_ip().unwrap().port()
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let weak = Arc::downgrade(&log);
    std::thread::spawn(move || {
        // Stops when the test drops its handle.
        while let Some(log) = weak.upgrade() {
            if let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) {
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut body);
                let (code, reply) = answer(request.url());
                log.lock().unwrap().push((request.url().to_string(), body));
                let _ =
                    request.respond(tiny_http::Response::from_string(reply).with_status_code(code));
            }
        }
    });
    (url, log)
}

#[test]
fn the_alert_fires_below_the_threshold_only() {
    let (discord, posts) = recorder(|_| (204, ""));
    let mut world = World::new(deliveries_state(), REGISTRY);
    world.env.push((
        "DISCORD_WEBHOOK_URL".into(),
        format!("{discord}/api/webhooks/1/secret-token"),
    ));
    let run = world.upm(&["deliveries", "--since", "24h", "--alert-below", "99"]);
    assert_eq!(
        run.code, 1,
        "below the threshold fails the scheduled job too"
    );
    assert_has(&run.stdout, "alert below 99%: BELOW, sent");
    assert!(!run.stdout.contains("secret-token"));
    {
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 1);
        assert_has(
            &posts[0].1,
            "Webhook deliveries below 99% (Studio, last 24h)",
        );
        assert_has(&posts[0].1, "50.0% of push deliveries");
    }
    let fine = world.upm(&["deliveries", "--since", "24h", "--alert-below", "40"]);
    assert_eq!(fine.code, 0);
    assert_has(&fine.stdout, "alert below 40%: not needed");
    assert_eq!(posts.lock().unwrap().len(), 1, "no second post");
    // Without a Discord URL the alert is not silently dropped: it says so and fails.
    world.env.clear();
    let unsent = world.upm(&["deliveries", "--alert-below", "99"]);
    assert_eq!(unsent.code, 1);
    assert_has(&unsent.stdout, "DISCORD_WEBHOOK_URL is not set");
}

#[test]
fn redelivers_exactly_the_right_ones_and_is_safe_to_rerun() {
    let world = World::new(deliveries_state(), REGISTRY);
    let plan = world.upm(&["deliveries", "--redeliver-failed"]);
    assert_eq!(plan.code, 0);
    assert_has(&plan.stdout, "redelivery: 2 would redeliver (dry run");
    assert!(
        world.fake.state().redeliveries.is_empty(),
        "a dry run asks nothing"
    );

    let run = world.upm(&["deliveries", "--redeliver-failed", "--apply", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run);
    let skipped: Vec<(String, String)> = report["redelivery"]["plan"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["guid"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        skipped.contains(&("bad-signature".into(), "permanent".into())),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&("expired".into(), "outside_window".into())),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&("dispatched-502".into(), "already_dispatched".into())),
        "the central run names the delivery: {skipped:?}"
    );
    let asked: Vec<(String, u64)> = world
        .fake
        .state()
        .redeliveries
        .iter()
        .map(|r| (r.guid.clone(), r.delivery_id))
        .collect();
    // Oldest first; the latest attempt of each guid.
    assert_eq!(
        asked,
        [
            ("timeout-old".to_string(), 20),
            ("lost-502".to_string(), 90)
        ]
    );

    // GitHub delivered them (the fake records 200 attempts): nothing left to redeliver.
    let again = world.upm(&["deliveries", "--redeliver-failed", "--apply"]);
    assert_has(&again.stdout, "redelivery: 0 redelivered");
    assert_eq!(world.fake.state().redeliveries.len(), 2);
}

#[test]
fn a_rate_limit_with_retry_after_is_waited_out() {
    let world = World::new(deliveries_state(), REGISTRY);
    world.fake.fault(Fault {
        path_contains: Some("/deliveries".into()),
        status: Some(429),
        retry_after: Some(1),
        times: 1,
        ..Fault::default()
    });
    let started = std::time::Instant::now();
    let run = world.upm(&["deliveries", "--since", "24h"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_has(&run.stdout, "6 deliveries");
    let statuses: Vec<u16> = world
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/deliveries"))
        .map(|r| r.status)
        .collect();
    assert_eq!(&statuses[..2], [429, 200]);

    // A wait longer than the bound is an error naming it, not a hang.
    world.fake.fault(Fault {
        path_contains: Some("/deliveries".into()),
        status: Some(403),
        retry_after: Some(3600),
        times: 1,
        ..Fault::default()
    });
    let refused = world.upm(&["deliveries", "--max-rate-limit-wait", "5"]);
    assert_eq!(refused.code, 1);
    assert_has(&refused.stderr, "rate limited by GitHub (retry in 3600 s)");
}

// ---- migration -----------------------------------------------------------------------------------

const MIGRATION_REGISTRY: &str = r#"{
  "repositories": [
    {"url": "https://github.com/Studio/Ready", "status": "active"},
    {"url": "https://github.com/Studio/NoRun", "status": "active"},
    {"url": "https://github.com/Studio/NoAutoMerge", "status": "active"},
    {"url": "https://github.com/Studio/HasPr", "status": "active"},
    {"url": "https://github.com/Studio/Flaky", "status": "active"},
    {"url": "https://github.com/Studio/Last", "status": "active"},
    {"url": "https://github.com/Studio/Off", "status": "disabled"}
  ]
}
"#;

/// Every repository has a dispatcher (Ready also the old one), a recent successful push delivery and
/// a central run — except NoRun, which never had a central run. HasPr already has the removal PR open.
fn migration_state() -> State {
    let mut state = State::default();
    state.add_repo("Studio/Central", "main");
    let mut ids = Vec::new();
    for name in [
        "Ready",
        "NoRun",
        "NoAutoMerge",
        "HasPr",
        "Flaky",
        "Last",
        "Off",
    ] {
        let full = format!("Studio/{name}");
        let repo = state.add_repo(&full, "main");
        let mut files: Vec<(&str, Option<&[u8]>)> =
            vec![(DISPATCHER, Some(b"on: push\n".as_slice()))];
        if name == "Ready" {
            files.push((OLD_DISPATCHER, Some(b"on: push\n".as_slice())));
        }
        repo.commit("main", &files, "dispatcher").unwrap();
        if name == "NoAutoMerge" {
            repo.allow_auto_merge = false;
        }
        if name == "HasPr" {
            let head = repo.branches["main"].clone();
            repo.branches.insert("upm/remove-dispatchers".into(), head);
            repo.pulls.push(Pull {
                number: 7,
                node_id: "PR_existing".into(),
                state: "open".into(),
                title: "Remove the UPM dispatcher workflow".into(),
                head: "upm/remove-dispatchers".into(),
                base: "main".into(),
                ..Pull::default()
            });
        }
        ids.push((full, repo.id));
    }
    let central_runs: Vec<WorkflowRun> = ids
        .iter()
        .filter(|(full, _)| full != "Studio/NoRun")
        .enumerate()
        .map(|(i, (full, _))| {
            central_run(
                500 + i as u64,
                &format!("Publish {full}@abc1234 (delivery 1)"),
                3600,
            )
        })
        .collect();
    state.repo_mut("Studio/Central").unwrap().workflow_runs = central_runs;
    let hook = state.hook_mut("Studio", 42);
    for (i, (_, id)) in ids.iter().enumerate() {
        hook.deliveries.push(push_delivery(
            100 + i as u64,
            &format!("g{i}"),
            3700,
            200,
            *id,
            false,
            0.0,
        ));
    }
    state
}

#[test]
fn migrate_check_per_repository() {
    let world = World::new(migration_state(), MIGRATION_REGISTRY);
    let run = world.upm(&[
        "migrate",
        "check",
        "Studio/Ready",
        "Studio/NoRun",
        "Studio/Off",
        "Studio/Unknown",
    ]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[1].starts_with("Studio/Ready") && lines[1].ends_with("PASS"),
        "{}",
        run.stdout
    );
    assert_has(lines[1], "upm-publish-dispatcher.yml, publish-upm.yml");
    assert_has(lines[2], "FAIL: no central publish run");
    assert_has(lines[3], "FAIL: registered but disabled");
    assert_has(lines[4], "not registered");
    assert_has(lines[4], "404");
    assert_has(&run.stdout, "1 of 4 ready");
}

fn pulls(world: &World, repo: &str) -> Vec<Pull> {
    world.fake.state().repo(repo).unwrap().pulls.clone()
}

fn files_on(world: &World, repo: &str, branch: &str) -> Vec<String> {
    let state = world.fake.state();
    let repo = state.repo(repo).unwrap();
    repo.branches
        .get(branch)
        .map(|sha| repo.commits[sha].files.keys().cloned().collect())
        .unwrap_or_default()
}

/// The text of `path` at the tip of `branch` in the fake.
fn file_on(world: &World, repo: &str, branch: &str, path: &str) -> String {
    let state = world.fake.state();
    let repo = state.repo(repo).unwrap();
    let blob = repo.file_blob(&repo.branches[branch], path).unwrap();
    String::from_utf8(repo.blob_bytes(blob).unwrap()).unwrap()
}

#[test]
fn remove_dispatchers_in_batches_with_a_5xx_and_a_resume() {
    let world = World::new(migration_state(), MIGRATION_REGISTRY);
    // Dry run: a plan, nothing created.
    let plan = world.upm(&["migrate", "remove-dispatchers", "--batch", "3"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_has(&plan.stdout, "dry run");
    assert_has(&flat(&plan.stdout), "Studio/Ready planned");
    assert!(pulls(&world, "Studio/Ready").is_empty());

    // The first batch of 3: a 502 hits Flaky half-way (its branch is created, the delete fails).
    world.fake.fault(Fault {
        method: Some("DELETE".into()),
        path_contains: Some("/repos/Studio/Flaky/contents/".into()),
        status: Some(502),
        times: 1,
        ..Fault::default()
    });
    let first = world.upm(&[
        "migrate",
        "remove-dispatchers",
        "--batch",
        "3",
        "--apply",
        "--set-note",
    ]);
    assert_eq!(first.code, 1, "a repository failed");
    let report = |run: &Run, repo: &str| {
        flat(
            run.stdout
                .lines()
                .find(|l| l.starts_with(&format!("{repo} ")))
                .unwrap_or_else(|| panic!("{repo} missing: {}", run.stdout)),
        )
    };
    assert_has(&report(&first, "Studio/Ready"), "changed");
    assert_has(
        &report(&first, "Studio/NoRun"),
        "skipped check failed: no central publish run",
    );
    assert_has(
        &report(&first, "Studio/NoAutoMerge"),
        "auto-merge refused: Pull request Auto merge is not allowed",
    );
    assert_has(
        &report(&first, "Studio/HasPr"),
        "done pull request already open: https://github.com/Studio/HasPr/pull/7",
    );
    assert_has(&report(&first, "Studio/Flaky"), "error");
    assert_has(&report(&first, "Studio/Flaky"), "502");
    assert_has(&report(&first, "Studio/Last"), "next-batch");
    assert!(
        !first.stdout.contains("Studio/Off"),
        "disabled repositories are not migrated"
    );

    let ready = pulls(&world, "Studio/Ready");
    assert_eq!(ready.len(), 1);
    assert!(ready[0].auto_merge);
    assert_has(&ready[0].body, "## How to test");
    assert_has(&ready[0].body, "publish-upm.yml");
    assert_eq!(
        files_on(&world, "Studio/Ready", "upm/remove-dispatchers"),
        ["README.md"]
    );
    assert_eq!(
        files_on(&world, "Studio/Ready", "main").len(),
        3,
        "main is untouched: the PR does it"
    );
    assert!(!pulls(&world, "Studio/NoAutoMerge")[0].auto_merge);
    assert!(world
        .fake
        .state()
        .repo("Studio/Flaky")
        .unwrap()
        .branches
        .contains_key("upm/remove-dispatchers"));
    assert!(pulls(&world, "Studio/Flaky").is_empty());
    assert_has(
        &world.registry_text(),
        "\"note\": \"dispatcher removal: https://github.com/Studio/Ready/pull/1\"",
    );

    // The second run continues: Flaky from its existing branch, then Last; the rest are done.
    let second = world.upm(&["migrate", "remove-dispatchers", "--batch", "3", "--apply"]);
    assert_eq!(second.code, 0, "{}", second.stdout);
    assert_has(&report(&second, "Studio/Ready"), "done");
    assert_has(&report(&second, "Studio/Flaky"), "changed");
    assert_has(&report(&second, "Studio/Last"), "changed");
    assert_eq!(pulls(&world, "Studio/Flaky").len(), 1);
    assert_eq!(pulls(&world, "Studio/Ready").len(), 1, "never a second PR");
    assert_eq!(
        files_on(&world, "Studio/Flaky", "upm/remove-dispatchers"),
        ["README.md"]
    );

    // A third run has nothing left to do.
    let third = world.upm(&["migrate", "remove-dispatchers", "--apply", "--json"]);
    let results: Vec<String> = json(&third)
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results, ["done", "skipped", "done", "done", "done", "done"]);
}

#[test]
fn an_interrupted_removal_resumes_from_the_pull_requests_themselves() {
    // A run that stopped after deleting the files but before opening the PR (killed, or the PR
    // creation failed): the next run opens the PR from the branch it finds.
    let world = World::new(migration_state(), MIGRATION_REGISTRY);
    world.fake.fault(Fault {
        method: Some("POST".into()),
        path_contains: Some("/repos/Studio/Ready/pulls".into()),
        status: Some(500),
        times: 1,
        ..Fault::default()
    });
    let args = [
        "migrate",
        "remove-dispatchers",
        "--only",
        "Studio/Ready",
        "--apply",
    ];
    let first = world.upm(&args);
    assert_eq!(first.code, 1);
    assert_eq!(
        files_on(&world, "Studio/Ready", "upm/remove-dispatchers"),
        ["README.md"]
    );
    assert!(pulls(&world, "Studio/Ready").is_empty());
    let deletes = |world: &World| {
        world
            .fake
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
    };
    assert_eq!(deletes(&world), 2);
    let second = world.upm(&args);
    assert_eq!(second.code, 0, "{}", second.stdout);
    assert_eq!(pulls(&world, "Studio/Ready").len(), 1);
    assert_eq!(deletes(&world), 2, "nothing deleted twice");
}

#[test]
fn restore_dispatchers_by_pull_request_and_directly() {
    let mut state = migration_state();
    // Ready already has exactly the dispatcher the template renders.
    let rendered = upm_ops::migration::render_dispatcher("Studio/Central", "main");
    state
        .repo_mut("Studio/Ready")
        .unwrap()
        .commit(
            "main",
            &[(DISPATCHER, Some(rendered.as_bytes()))],
            "restored",
        )
        .unwrap();
    let world = World::new(state, MIGRATION_REGISTRY);
    let only = ["--only", "Studio/Ready", "Studio/Last"];
    let mut args = vec!["migrate", "restore-dispatchers"];
    args.extend(only);
    let plan = world.upm(&args);
    assert_has(&flat(&plan.stdout), "Studio/Ready done");
    assert_has(&flat(&plan.stdout), "Studio/Last planned");
    args.push("--apply");
    let run = world.upm(&args);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let last = pulls(&world, "Studio/Last");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].head, "upm/restore-dispatcher");
    let text = file_on(&world, "Studio/Last", "upm/restore-dispatcher", DISPATCHER);
    assert_eq!(text, rendered);
    assert_has(&text, "CENTRAL_REPOSITORY: Studio/Central");
    assert_has(&text, "package_path: \"*\"");
    let rerun = world.upm(&args);
    assert_has(
        &flat(&rerun.stdout),
        "Studio/Last done pull request already open",
    );
    assert_eq!(pulls(&world, "Studio/Last").len(), 1);

    // --direct: straight onto the publishing branch, no PR.
    let direct_args = [
        "migrate",
        "restore-dispatchers",
        "--only",
        "Studio/Flaky",
        "--direct",
        "--apply",
    ];
    let direct = world.upm(&direct_args);
    assert_eq!(direct.code, 0, "{}", direct.stdout);
    assert_has(
        &direct.stdout,
        "committed .github/workflows/upm-publish-dispatcher.yml to main",
    );
    assert!(pulls(&world, "Studio/Flaky").is_empty());
    let again = world.upm(&direct_args);
    assert_has(&again.stdout, "is in place on main");
}

// ---- status ----------------------------------------------------------------------------------------

#[test]
fn status_shows_unpublished_bumps_and_dispatchers() {
    let mut state = migration_state();
    state
        .repo_mut("Studio/Ready")
        .unwrap()
        .commit(
            "main",
            &[
                (
                    "Packages/core/package.json",
                    Some(
                        br#"{"name":"com.studio.core","version":"1.2.0","unity":"2022.3"}"#
                            .as_slice(),
                    ),
                ),
                (
                    "Packages/ui/package.json",
                    Some(
                        br#"{"name":"com.studio.ui","version":"2.0.0","displayName":"UI"}"#
                            .as_slice(),
                    ),
                ),
                (
                    "package.json",
                    Some(
                        br#"{"name":"tooling","version":"0.0.1","devDependencies":{}}"#.as_slice(),
                    ),
                ),
                (
                    "Packages/core/node_modules/x/package.json",
                    Some(br#"{"name":"x","version":"1.0.0","unity":"x"}"#.as_slice()),
                ),
            ],
            "packages",
        )
        .unwrap();
    // The npm registry has com.studio.core 1.1.0 and 1.2.0, and com.studio.ui up to 1.9.0.
    let (npm, _requests) = recorder(|path| match path {
        "/com.studio.core" => (
            200,
            r#"{"name":"com.studio.core","versions":{"1.1.0":{},"1.2.0":{}},"dist-tags":{"latest":"1.2.0"}}"#,
        ),
        "/com.studio.ui" => (
            200,
            r#"{"name":"com.studio.ui","versions":{"1.9.0":{}},"dist-tags":{"latest":"1.9.0"}}"#,
        ),
        _ => (404, r#"{"error":"not found"}"#),
    });
    let world = World::new(state, MIGRATION_REGISTRY);
    let run = world.upm(&["status", "--registry", &npm, "--only-for-test-never-exists"]);
    assert_eq!(run.code, 2, "unknown flags are usage errors");
    let run = world.upm(&["status", "--registry", &npm]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = |pkg: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(pkg))
            .unwrap_or_else(|| panic!("{pkg}: {}", run.stdout))
            .to_string()
    };
    assert_has(
        &flat(&line("com.studio.core")),
        "com.studio.core 1.2.0 1.2.0 yes",
    );
    assert_has(
        &flat(&line("com.studio.ui")),
        "com.studio.ui 2.0.0 1.9.0 NO",
    );
    assert_has(
        &line("com.studio.ui"),
        "upm-publish-dispatcher.yml, publish-upm.yml",
    );
    assert!(
        line("com.studio.ui").contains("200 "),
        "last delivery: {}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("tooling") && !run.stdout.contains(" x "),
        "{}",
        run.stdout
    );
    assert_has(&line("Studio/Off"), "(no UPM package)");
    assert_has(
        &run.stdout,
        "1 version(s) on a publishing branch are not on the registry",
    );
}

// ---- credentials -----------------------------------------------------------------------------------

#[test]
fn a_github_app_from_the_environment() {
    let key = include_str!("../../crates/github/tests/keys/app-pkcs1.pem");
    let mut state = registry_state();
    state.app = Some(upm_fake_github::state::App::new("4242", key, "studio", 77));
    let mut world = World::new(state, REGISTRY);
    world.fake.state().tokens.clear();
    world.env.push(("GITHUB_APP_ID".into(), "4242".into()));
    // One line with `\n` escapes, as secrets are often stored.
    world
        .env
        .push(("GITHUB_APP_PRIVATE_KEY".into(), key.replace('\n', "\\n")));
    let run = world.upm(&["registry", "validate"]);
    assert_eq!(run.code, 1, "Legacy is missing; the others are reachable");
    assert_has(&flat(&run.stdout), "2 of 3 reachable");
    let minted = world.fake.state().app.as_ref().unwrap().minted.clone();
    assert_eq!(minted.len(), 1, "one installation token for the whole run");
    let requests = world.fake.requests();
    assert_eq!(requests[0].path, "/orgs/Studio/installation");
    assert!(requests
        .iter()
        .filter(|r| r.path.starts_with("/repos/"))
        .all(|r| r.token.as_deref() == Some(minted[0].0.as_str())));
    assert!(!run.stdout.contains(&minted[0].0) && !run.stderr.contains(&minted[0].0));
    // A broken key is named, never printed.
    world.env.pop();
    world.env.push((
        "GITHUB_APP_PRIVATE_KEY".into(),
        "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----".into(),
    ));
    let broken = world.upm(&["registry", "list"]);
    assert_eq!(broken.code, 2);
    assert_has(
        &broken.stderr,
        "not an RSA private key in PEM (PKCS#1 or PKCS#8)",
    );
    assert!(!broken.stderr.contains("nope"));
}

/// A loopback URL where nothing listens: connections are refused at once.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn status_offline_says_once_that_github_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("repositories.json");
    let many: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"url": "https://github.com/Studio/Repo{i}", "status": "active"}}"#))
        .collect();
    std::fs::write(
        &registry,
        format!("{{\"repositories\": [{}]}}\n", many.join(",\n")),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_upm"))
        .arg("status")
        .current_dir(dir.path())
        .env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_APP_PRIVATE_KEY")
        .env("GITHUB_API", closed_port_url())
        .env("GITHUB_TOKEN", "ghp_offline")
        .env("GITHUB_ORG", "Studio")
        .env("HOOK_ID", "42")
        .env("UPM_REGISTRY_FILE", &registry)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("$ upm status (offline)\n{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(1), "offline is not a success");
    let said = format!("{stdout}{stderr}");
    assert_eq!(
        said.matches("GitHub cannot be reached").count(),
        1,
        "{said}"
    );
    assert!(!said.contains("uncategorized"), "{said}");
    assert!(
        !stdout.contains("Studio/Repo"),
        "no table of errors: {stdout}"
    );
}

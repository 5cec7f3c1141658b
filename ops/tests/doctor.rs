//! `upm doctor` end to end: the fake GitHub (with the App), a loopback worker and Discord, a real
//! Verdaccio. A healthy deployment passes; then each broken condition, one at a time, fails its own line
//! (and the exit status). Also: the secrets and variables table in `doctor::READS` is the workflows'
//! own (read from the files). `cargo test -p upm-ops --test doctor -- --nocapture` prints real tables.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::{upm, Server, Verdaccio};
use upm_fake_github::state::{
    App, Delivery, Environment, HookConfig, RunnerGroup, SelfHostedRunner, State, Workflow,
    WorkflowRun,
};
use upm_fake_github::FakeGitHub;
use upm_github::deliveries::format_rfc3339_utc;
use upm_ops::doctor::{Kind, PERMISSIONS, READS, WORKFLOWS};

const CENTRAL: &str = "Studio/UPMAutoPublisher";
const KEY: &str = include_str!("../../crates/github/tests/keys/app-pkcs1.pem");
const REGISTRY_FILE: &str = r#"{ "repositories": [
  { "url": "https://github.com/Studio/Alpha", "status": "active" },
  { "url": "https://github.com/Studio/Beta", "status": "active" },
  { "url": "https://github.com/Studio/Old", "status": "disabled" }
] }"#;

fn now() -> i64 {
    upm_github::client::now_unix()
}

fn run(workflow: &str, event: &str, age_secs: i64, head_sha: &str, id: u64) -> WorkflowRun {
    WorkflowRun {
        id,
        workflow: workflow.into(),
        event: event.into(),
        status: "completed".into(),
        conclusion: Some("success".into()),
        created_at: format_rfc3339_utc(now() - age_secs),
        head_sha: head_sha.into(),
        head_branch: "master".into(),
        ..WorkflowRun::default()
    }
}

/// A deployment as README's "Deploying" leaves it, on a default branch that is not `main`.
fn healthy(worker: &str) -> State {
    let mut state = State {
        app: Some(App {
            permissions: PERMISSIONS
                .iter()
                .map(|p| (p.name.to_string(), p.level.to_string()))
                .collect(),
            ..App::new("4242", KEY, "Studio", 77)
        }),
        ..State::default()
    };
    for name in ["Studio/Alpha", "Studio/Beta"] {
        state.add_repo(name, "main");
    }
    let central = state.add_repo(CENTRAL, "master");
    let head = central
        .commit_at(
            "master",
            &[("config/repositories.json", Some(REGISTRY_FILE.as_bytes()))],
            "register",
            &format_rfc3339_utc(now() - 3 * 86_400),
        )
        .unwrap();
    central.workflows = WORKFLOWS
        .iter()
        .enumerate()
        .map(|(i, (file, _))| Workflow {
            id: 100 + i as u64,
            name: file.to_string(),
            path: format!(".github/workflows/{file}"),
            state: "active".into(),
        })
        .collect();
    central.workflow_runs = vec![
        run("publisher-binary.yml", "push", 3600, &head, 1),
        run("reconcile.yml", "schedule", 600, &head, 2),
        run("deliveries-watch.yml", "schedule", 1200, &head, 3),
        run("health.yml", "schedule", 2 * 86_400, &head, 4),
    ];
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    central.variables = [
        ("UPM_REGISTRY", "http://registry.invalid"),
        ("UPM_APP_ID", "4242"),
        ("GITHUB_ORG", "Studio"),
        ("HOOK_ID", "42"),
        ("PUBLISH_RUNNER", r#"["self-hosted","linux"]"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    central.secrets = names(&["UPM_APP_PRIVATE_KEY", "DISCORD_WEBHOOK_URL"]);
    central.environments = BTreeMap::from([
        (
            "upm-publish".to_string(),
            Environment {
                secrets: names(&["NPM_TOKEN"]),
                variables: BTreeMap::new(),
            },
        ),
        (
            "production".to_string(),
            Environment {
                secrets: names(&[
                    "CLOUDFLARE_API_TOKEN",
                    "CLOUDFLARE_ACCOUNT_ID",
                    "WEBHOOK_SECRET",
                ]),
                variables: BTreeMap::new(),
            },
        ),
    ]);
    state.runners = vec![SelfHostedRunner {
        id: 1,
        name: "studio-linux-1".into(),
        os: "linux".into(),
        status: "online".into(),
        labels: names(&["self-hosted", "linux", "x64"]),
        org: Some("Studio".into()),
        runner_group_id: Some(7),
        ..SelfHostedRunner::default()
    }];
    // The central repository is public: its runners' group must allow public repositories (GitHub's
    // default group does not).
    state.runner_groups = vec![RunnerGroup {
        id: 7,
        org: "Studio".into(),
        name: "Studio builders".into(),
        visibility: "all".into(),
        allows_public_repositories: true,
        ..RunnerGroup::default()
    }];
    let hook = state.hook_mut("Studio", 42);
    hook.config = HookConfig {
        url: worker.to_string(),
        events: names(&["push", "pull_request"]),
        ..HookConfig::default()
    };
    for id in 1..=3 {
        hook.deliveries.push(Delivery {
            id,
            guid: format!("guid-{id}"),
            delivered_at: format_rfc3339_utc(now() - 600 * id as i64),
            status_code: 200,
            status: "OK".into(),
            event: "push".into(),
            ..Delivery::default()
        });
    }
    state
}

struct World {
    fake: FakeGitHub,
    worker: Server,
    discord: Server,
    registry: &'static Verdaccio,
    dir: tempfile::TempDir,
    health: std::sync::Arc<std::sync::Mutex<Value>>,
}

impl World {
    fn new() -> World {
        let health = std::sync::Arc::new(std::sync::Mutex::new(json!({
            "status": "ok", "version": "1.4.0", "dry_run": false, "registry": { "entries": 3 }
        })));
        let answer = health.clone();
        let worker = Server::start(move |request| {
            if request.url == "/health"
                && request.authorization.as_deref() == Some("Bearer health-token")
            {
                let body = answer.lock().unwrap().to_string();
                (200, "application/json".into(), body.into_bytes())
            } else {
                (404, "text/plain".into(), b"not found".to_vec())
            }
        });
        let discord = Server::start(|request| {
            if request.url.contains("/api/webhooks/1/") {
                (
                    200,
                    "application/json".into(),
                    br#"{"type":1,"id":"1"}"#.to_vec(),
                )
            } else {
                (
                    401,
                    "application/json".into(),
                    br#"{"message":"Invalid Webhook Token"}"#.to_vec(),
                )
            }
        });
        let fake = FakeGitHub::start(healthy(&worker.url)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("repositories.json"), REGISTRY_FILE).unwrap();
        World {
            fake,
            worker,
            discord,
            registry: Verdaccio::shared(),
            dir,
            health,
        }
    }

    fn doctor_with(&self, extra: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
        let registry_file = self.dir.path().join("repositories.json");
        let discord = format!("{}/api/webhooks/1/webhook-token", self.discord.url);
        let mut env: Vec<(&str, &str)> = vec![
            ("GITHUB_API", self.fake.url()),
            ("DISPATCH_REPO", CENTRAL),
            ("GITHUB_ORG", "Studio"),
            ("HOOK_ID", "42"),
            ("UPM_REGISTRY_FILE", registry_file.to_str().unwrap()),
            ("GITHUB_APP_ID", "4242"),
            ("GITHUB_APP_PRIVATE_KEY", KEY),
            ("WORKER_URL", &self.worker.url),
            ("HEALTH_TOKEN", "health-token"),
            ("UPM_REGISTRY", &self.registry.url),
            ("NPM_TOKEN", &self.registry.token),
            ("DISCORD_WEBHOOK_URL", &discord),
        ];
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key, value));
        }
        let table = upm(&["doctor"], &env);
        let json = upm(&["doctor", "--json"], &env);
        assert_eq!(table.code, json.code, "the table and --json agree");
        for secret in [
            "health-token",
            "webhook-token",
            self.registry.token.as_str(),
        ] {
            assert!(
                !table.stdout.contains(secret) && !json.stdout.contains(secret),
                "a secret was printed"
            );
        }
        let report: Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
        let checks = report["checks"].as_array().cloned().unwrap_or_default();
        (json.code, checks, table.stdout)
    }

    fn doctor(&self) -> (i32, Vec<Value>, String) {
        self.doctor_with(&[])
    }

    fn central(&self) -> std::sync::MutexGuard<'_, State> {
        self.fake.state()
    }
}

/// The level of the first check whose name starts with `name` and whose detail contains `detail`.
#[track_caller]
fn level(checks: &[Value], name: &str, detail: &str) -> String {
    checks
        .iter()
        .find(|c| {
            c["check"].as_str().unwrap_or("").starts_with(name)
                && c["detail"].as_str().unwrap_or("").contains(detail)
        })
        .map(|c| c["level"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no check {name:?} with {detail:?} in {checks:#?}"))
}

#[track_caller]
fn fails_alone(world: &World, name: &str, detail: &str) {
    let (code, checks, _) = world.doctor();
    assert_eq!(code, 1, "a FAIL exits 1");
    assert_eq!(level(&checks, name, detail), "fail");
    let failing: Vec<&str> = checks
        .iter()
        .filter(|c| c["level"] == "fail")
        .map(|c| c["check"].as_str().unwrap_or(""))
        .collect();
    assert!(
        failing.iter().all(|c| c.starts_with(name)),
        "only {name} fails: {failing:?}"
    );
}

#[test]
fn a_healthy_deployment_passes_and_each_broken_condition_fails_its_own_line() {
    let world = World::new();
    let (code, checks, table) = world.doctor();
    assert_eq!(code, 0, "healthy:\n{table}");
    assert!(
        checks.iter().all(|c| c["level"] == "ok"),
        "every line ok:\n{table}"
    );
    assert_eq!(
        level(&checks, "default branch", "Studio/UPMAutoPublisher: master"),
        "ok",
        "a default branch that is not main"
    );
    assert!(table.contains("GitHub requests"), "{table}");

    // The worker is misconfigured.
    *world.health.lock().unwrap() = json!({ "status": "misconfigured", "version": "1.4.0", "problems": ["WEBHOOK_SECRET is not set"] });
    fails_alone(&world, "worker /health", "WEBHOOK_SECRET is not set");
    *world.health.lock().unwrap() = json!({ "status": "ok", "version": "1.4.0", "dry_run": false });

    // The webhook points elsewhere and sends form-encoded bodies.
    let saved = world.central().hooks[0].config.clone();
    world.central().hooks[0].config.url = "https://old-relay.example.com/".into();
    fails_alone(&world, "webhook URL", "old-relay");
    world.central().hooks[0].config = HookConfig {
        content_type: "form".into(),
        ..saved.clone()
    };
    fails_alone(&world, "webhook content type", "415");
    world.central().hooks[0].config = saved;

    // The App lost a repository, then a permission.
    world.central().app.as_mut().unwrap().repositories =
        Some(vec![CENTRAL.into(), "Studio/Alpha".into()]);
    fails_alone(&world, "App installed", "Studio/Beta");
    world.central().app.as_mut().unwrap().repositories = None;
    let contents = |level: &str| {
        let mut state = world.central();
        let app = state.app.as_mut().unwrap();
        app.permissions.insert("contents".into(), level.into());
    };
    contents("read");
    fails_alone(&world, "App permissions", "contents: write missing");
    contents("write");

    // GitHub disabled reconcile after 60 quiet days; its last run is 3 hours old.
    let reconcile = |state: &mut State| {
        let central = state.repo_mut(CENTRAL).unwrap();
        let index = central
            .workflows
            .iter()
            .position(|w| w.path.ends_with("reconcile.yml"))
            .unwrap();
        index
    };
    {
        let mut state = world.central();
        let index = reconcile(&mut state);
        state.repo_mut(CENTRAL).unwrap().workflows[index].state = "disabled_inactivity".into();
    }
    fails_alone(&world, "workflow reconcile.yml", "60 days");
    {
        let mut state = world.central();
        let index = reconcile(&mut state);
        let central = state.repo_mut(CENTRAL).unwrap();
        central.workflows[index].state = "active".into();
        central.workflow_runs[1].created_at = format_rfc3339_utc(now() - 3 * 3600);
    }
    fails_alone(&world, "schedule reconcile.yml", "3 h ago");
    world.central().repo_mut(CENTRAL).unwrap().workflow_runs[1].created_at =
        format_rfc3339_utc(now() - 600);

    // The binary build of the head failed.
    world.central().repo_mut(CENTRAL).unwrap().workflow_runs[0].conclusion = Some("failure".into());
    fails_alone(&world, "publisher binary", "Fetch the publisher");
    world.central().repo_mut(CENTRAL).unwrap().workflow_runs[0].conclusion = Some("success".into());

    // The self-hosted pool is dead.
    world.central().runners[0].status = "offline".into();
    fails_alone(&world, "runners", "24 h");
    world.central().runners[0].status = "online".into();
    // Online, but in GitHub's default group, which does not serve public repositories; then in a
    // group whose repository access leaves the central repository out.
    world.central().runners[0].runner_group_id = None;
    fails_alone(
        &world,
        "runner group",
        "\"Default\" does not allow public repositories",
    );
    world.central().runners[0].runner_group_id = Some(7);
    world.central().runner_groups[0].visibility = "selected".into();
    fails_alone(&world, "runner group", "no runner group");
    world.central().runner_groups[0].visibility = "all".into();

    // The App's key kept only in the publish environment: reconcile and the delivery watch cannot see it.
    {
        let mut state = world.central();
        let central = state.repo_mut(CENTRAL).unwrap();
        central.secrets.retain(|s| s != "UPM_APP_PRIVATE_KEY");
        central
            .environments
            .get_mut("upm-publish")
            .unwrap()
            .secrets
            .push("UPM_APP_PRIVATE_KEY".into());
    }
    // Every job without the environment loses it: reconcile, the preview, the health check.
    fails_alone(&world, "settings for", "only in environment upm-publish");
    let (_, checks, _) = world.doctor();
    for workflow in [
        "reconcile.yml",
        "preview.yml",
        "health.yml",
        "deliveries-watch.yml",
    ] {
        let expected = if workflow == "deliveries-watch.yml" {
            "warn"
        } else {
            "fail"
        };
        assert_eq!(
            level(&checks, &format!("settings for {workflow}"), "upm-publish"),
            expected,
            "{workflow}"
        );
    }
    assert_eq!(
        level(&checks, "settings for handle-publish-request.yml", ""),
        "ok"
    );
    {
        let mut state = world.central();
        let central = state.repo_mut(CENTRAL).unwrap();
        central.secrets.push("UPM_APP_PRIVATE_KEY".into());
    }

    // A publish token the registry refuses; a Discord webhook that was deleted.
    fails_alone_with(
        &world,
        &[("NPM_TOKEN", "not-a-token")],
        "publish token",
        "refused",
    );
    let deleted = format!("{}/api/webhooks/2/gone", world.discord.url);
    fails_alone_with(
        &world,
        &[("DISCORD_WEBHOOK_URL", &deleted)],
        "Discord webhook",
        "401",
    );

    // A dispatcher workflow left in a repository the webhook already serves: a warning, exit 0.
    world
        .central()
        .repo_mut("Studio/Beta")
        .unwrap()
        .commit(
            "main",
            &[(
                ".github/workflows/upm-publish-dispatcher.yml",
                Some(b"on: push\n"),
            )],
            "old",
        )
        .unwrap();
    let (code, checks, _) = world.doctor();
    assert_eq!(code, 0, "a warning alone does not fail");
    assert_eq!(level(&checks, "dispatchers left", "Studio/Beta"), "warn");
}

#[track_caller]
fn fails_alone_with(world: &World, env: &[(&str, &str)], name: &str, detail: &str) {
    let (code, checks, _) = world.doctor_with(env);
    assert_eq!(code, 1);
    assert_eq!(level(&checks, name, detail), "fail");
    assert_eq!(
        checks.iter().filter(|c| c["level"] == "fail").count(),
        1,
        "only {name} fails: {checks:#?}"
    );
}

#[test]
fn offline_it_says_once_that_github_cannot_be_reached() {
    let world = World::new();
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let (code, checks, table) = world.doctor_with(&[("GITHUB_API", &closed)]);
    assert_eq!(code, 1);
    let github: Vec<&Value> = checks
        .iter()
        .filter(|c| {
            c["detail"]
                .as_str()
                .unwrap_or("")
                .contains("cannot be reached")
        })
        .collect();
    assert_eq!(github.len(), 1, "one line for GitHub:\n{table}");
    assert_eq!(
        table.matches("cannot be reached").count(),
        1,
        "said once, not once per check:\n{table}"
    );
    // What does not need GitHub is still checked.
    assert_eq!(level(&checks, "worker /health", ""), "ok");
    assert_eq!(level(&checks, "publish token", ""), "ok");
}

/// Every `secrets.X` / `vars.X` a workflow reads is in `doctor::READS` for that workflow, and nothing
/// else is; every workflow file is in `READS` and `WORKFLOWS`, and every scheduled one in `SCHEDULES`:
/// the pre-flight checks what the files really are.
#[test]
fn the_settings_table_is_the_workflows_own() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<String> = std::fs::read_dir(root.join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yml"))
        .collect();
    files.sort();
    let sorted = |mut names: Vec<String>| {
        names.sort();
        names
    };
    assert_eq!(
        files,
        sorted(READS.iter().map(|r| r.workflow.to_string()).collect()),
        "READS"
    );
    assert_eq!(
        files,
        sorted(WORKFLOWS.iter().map(|(f, _)| f.to_string()).collect()),
        "WORKFLOWS"
    );
    let scheduled: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(root.join(".github/workflows").join(f))
                .unwrap()
                .lines()
                .any(|l| l.trim_start().starts_with("- cron:"))
        })
        .cloned()
        .collect();
    assert_eq!(
        scheduled,
        sorted(
            upm_ops::doctor::SCHEDULES
                .iter()
                .map(|(f, _)| f.to_string())
                .collect()
        ),
        "SCHEDULES"
    );
    for reads in READS {
        let text =
            std::fs::read_to_string(root.join(".github/workflows").join(reads.workflow)).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let mut found = std::collections::BTreeSet::new();
        for (prefix, kind) in [("secrets.", "secret"), ("vars.", "variable")] {
            for (i, _) in code.match_indices(prefix) {
                let name: String = code[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // Upper-case names only: `worker-secrets.json` in a script is not a secret.
                let upper = name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !name.is_empty() && upper && name != "GITHUB_TOKEN" {
                    found.insert((kind, name));
                }
            }
        }
        let table: std::collections::BTreeSet<(&str, String)> = reads
            .items
            .iter()
            .map(|(kind, name, _)| {
                let kind = match kind {
                    Kind::Secret => "secret",
                    Kind::Variable => "variable",
                };
                (kind, name.to_string())
            })
            .collect();
        assert_eq!(
            found, table,
            "{}: the files and doctor::READS disagree",
            reads.workflow
        );
        let environment = code
            .lines()
            .find_map(|l| l.trim().strip_prefix("environment:"))
            .map(|e| e.trim().to_string());
        assert_eq!(
            environment.as_deref(),
            reads.environment,
            "{}: the job's environment",
            reads.workflow
        );
    }
}

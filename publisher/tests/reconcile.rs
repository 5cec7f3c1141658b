//! `upm-publisher reconcile` against the shared fake GitHub (`upm-fake-github`, on loopback) and a real
//! Verdaccio: what a sweep costs with and without changes, a missing version caught up, a broken
//! repository or a registry outage failing its own line only, and the budget.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Cli, FakeServer, Repo, Run, Verdaccio};
use upm_fake_github::{FakeGitHub, Fault, State as World};

const READ_TOKEN: &str = "fake-read-token";
const DISPATCH_TOKEN: &str = "fake-dispatch-token";
const CENTRAL: &str = "studio/upm-central";

fn manifest(name: &str, version: &str) -> Vec<u8> {
    format!(
        "{{\n  \"name\": \"{name}\",\n  \"version\": \"{version}\",\n  \"displayName\": \"Test {name}\",\n  \"unity\": \"2022.3\"\n}}\n"
    )
    .into_bytes()
}

/// The world the sweeps look at:
/// - `studio/alpha` (default branch `main`): a tooling package.json at the root, `com.test.rec-alpha`
///   1.1.0 in `Packages/a`, and a package under `Library/` that is never ours;
/// - `studio/beta` (registry `branch: release`): `com.test.rec-beta` 2.0.0 at the root;
/// - `studio/gone`: registered, but GitHub does not know it (a renamed or deleted repository);
/// - `studio/off`: disabled in the registry.
fn world(prefix: &str) -> World {
    let mut world = World {
        tokens: vec![READ_TOKEN.into(), DISPATCH_TOKEN.into()],
        ..World::default()
    };
    let alpha = world.add_repo("studio/alpha", "main");
    let (a, lib) = (
        manifest(&format!("com.test.{prefix}-alpha"), "1.1.0"),
        manifest("com.unity.cached", "9.9.9"),
    );
    alpha
        .commit(
            "main",
            &[
                (
                    "package.json",
                    Some(br#"{"name":"project","private":true}"#.as_slice()),
                ),
                ("Packages/a/package.json", Some(a.as_slice())),
                ("Packages/a/Runtime/A.cs", Some(b"class A {}".as_slice())),
                ("Library/PackageCache/x/package.json", Some(lib.as_slice())),
            ],
            "feat: alpha 1.1.0",
        )
        .unwrap();
    let beta = world.add_repo("studio/beta", "main");
    let b = manifest(&format!("com.test.{prefix}-beta"), "2.0.0");
    beta.commit(
        "release",
        &[("package.json", Some(b.as_slice()))],
        "feat: beta 2.0.0",
    )
    .unwrap();
    world.add_repo(CENTRAL, "main");
    world
}

fn registry_file(dir: &Path) -> PathBuf {
    let path = dir.join("repositories.json");
    std::fs::write(
        &path,
        r#"{"repositories": [
            {"url": "https://github.com/studio/alpha", "status": "active"},
            {"url": "https://github.com/studio/beta", "status": "active", "branch": "release"},
            {"url": "https://github.com/studio/gone", "status": "active"},
            {"url": "https://github.com/studio/off", "status": "disabled"}
        ]}"#,
    )
    .unwrap();
    path
}

/// Publishes `name@version` from a local repository, as the publish workflow would.
fn publish(registry: &Verdaccio, name: &str, version: &str) {
    let repo = Repo::new();
    repo.package("p", name, version);
    let sha = repo.commit("feat: publish");
    let run = Cli::publish(registry, &repo, &sha).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// What a sweep's audit file says.
trait Sweep {
    fn line(&self, repository: &str) -> &Value;
    fn requests(&self) -> u64;
}

impl Sweep for Run {
    fn line(&self, repository: &str) -> &Value {
        self.audit["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["repository"] == repository)
            .unwrap_or_else(|| panic!("no line for {repository}: {}", self.audit))
    }

    fn requests(&self) -> u64 {
        self.audit["github_requests"].as_u64().unwrap()
    }
}

struct Reconcile<'a> {
    github: &'a FakeGitHub,
    registry_url: String,
    registry_file: PathBuf,
    state_dir: PathBuf,
    budget: u64,
    discord: Option<&'a FakeServer>,
}

impl<'a> Reconcile<'a> {
    /// Sweeps of [`world`]'s registry file, with their state in `dir`, a budget they do not reach and no
    /// Discord.
    fn new(github: &'a FakeGitHub, registry_url: &str, dir: &Path) -> Self {
        Reconcile {
            github,
            registry_url: registry_url.to_string(),
            registry_file: registry_file(dir),
            state_dir: dir.join("state"),
            budget: 500,
            discord: None,
        }
    }

    fn run(&self) -> Run {
        let mut cli = Cli::command("reconcile", &self.registry_url)
            .arg("--registry-file")
            .arg(&self.registry_file.to_string_lossy())
            .args(&[
                "--github-api",
                self.github.url(),
                "--dispatch-repo",
                CENTRAL,
            ])
            .arg("--state-dir")
            .arg(&self.state_dir.to_string_lossy())
            .args(&["--budget", &self.budget.to_string()])
            .args(&["--attempts", "2", "--timeout", "10"])
            .env("GITHUB_TOKEN", READ_TOKEN)
            .env("UPM_DISPATCH_TOKEN", DISPATCH_TOKEN)
            .env("GITHUB_RUN_ID", "4242");
        if let Some(discord) = self.discord {
            cli = cli.discord(discord);
        }
        cli.run()
    }
}

/// Requests the fake recorded since `from`, for one repository.
fn requests_for(github: &FakeGitHub, from: usize, repository: &str) -> Vec<(String, u16)> {
    github.requests()[from..]
        .iter()
        .filter(|r| r.path.contains(&format!("/repos/{repository}")))
        .map(|r| (format!("{} {}", r.method, r.path), r.status))
        .collect()
}

#[test]
fn a_sweep_catches_up_what_is_missing_and_a_quiet_sweep_costs_one_request_per_repository() {
    let registry = Verdaccio::shared();
    let github = FakeGitHub::start(world("rec")).unwrap();
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    // alpha's 1.0.0 and beta's 2.0.0 are on the registry; alpha's 1.1.0 was lost upstream.
    publish(registry, "com.test.rec-alpha", "1.0.0");
    publish(registry, "com.test.rec-beta", "2.0.0");
    let reconcile = Reconcile {
        discord: Some(&discord),
        ..Reconcile::new(&github, &registry.url, dir.path())
    };

    // Cold sweep: everything is read once.
    let cold = reconcile.run();
    assert_eq!(cold.code, 1, "studio/gone fails its line: {}", cold.stderr);
    let alpha = cold.line("studio/alpha");
    assert_eq!(alpha["result"], "catch_up", "{alpha}");
    assert_eq!(alpha["dispatch"], "sent");
    assert_eq!(alpha["missing"][0]["name"], "com.test.rec-alpha");
    assert_eq!(
        alpha["missing"].as_array().unwrap().len(),
        1,
        "not Library/"
    );
    assert_eq!(cold.line("studio/beta")["result"], "up_to_date");
    assert_eq!(cold.line("studio/gone")["result"], "failed");
    assert!(cold.audit["lines"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["repository"] != "studio/off"));
    let dispatches = github.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(dispatches[0].repository, CENTRAL);
    assert_eq!(dispatches[0].event_type, "package_publish");
    let payload = &dispatches[0].client_payload;
    assert_eq!(payload["repository"], "studio/alpha");
    assert_eq!(payload["package_path"], "Packages/a");
    assert_eq!(payload["branch"], "main");
    assert_eq!(payload["delivery"], "reconcile-4242");
    let head = github.state().repo("studio/alpha").unwrap().branches["main"].clone();
    assert_eq!(payload["commit_sha"], head.as_str());
    let dispatch_request = github
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/dispatches"))
        .unwrap();
    assert_eq!(dispatch_request.token.as_deref(), Some(DISPATCH_TOKEN));
    // The alert names the catch-up and the broken repository.
    let alerts = discord.requests();
    assert_eq!(alerts.len(), 1);
    let alert = alerts[0].json();
    let fields = alert["embeds"][0]["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["name"] == "studio/alpha"
        && f["value"]
            .as_str()
            .unwrap()
            .contains("com.test.rec-alpha@1.1.0")));
    assert!(fields.iter().any(|f| f["name"] == "studio/gone"));
    assert!(cold.summary.contains("caught up"), "{}", cold.summary);

    // The publish workflow runs for the dispatch.
    publish(registry, "com.test.rec-alpha", "1.1.0");

    // Quiet sweep: one conditional request per repository, answered 304; nothing dispatched again.
    let before = github.requests().len();
    let quiet = reconcile.run();
    assert_eq!(quiet.line("studio/alpha")["result"], "up_to_date");
    assert_eq!(quiet.line("studio/beta")["result"], "up_to_date");
    assert_eq!(
        requests_for(&github, before, "studio/alpha"),
        [("GET /repos/studio/alpha/branches/main".to_string(), 304)]
    );
    assert_eq!(
        requests_for(&github, before, "studio/beta"),
        [("GET /repos/studio/beta/branches/release".to_string(), 304)]
    );
    assert_eq!(github.dispatches().len(), 1);
    assert_eq!(quiet.audit["not_modified"], 2);

    // beta moves: its head, its tree and the one new blob are read, and 2.1.0 is caught up.
    let b = manifest("com.test.rec-beta", "2.1.0");
    github
        .state()
        .repo_mut("studio/beta")
        .unwrap()
        .commit(
            "release",
            &[("package.json", Some(b.as_slice()))],
            "feat: beta 2.1.0",
        )
        .unwrap();
    let before = github.requests().len();
    let moved = reconcile.run();
    assert_eq!(moved.line("studio/beta")["result"], "catch_up");
    assert_eq!(moved.line("studio/alpha")["result"], "up_to_date");
    let beta_requests = requests_for(&github, before, "studio/beta");
    assert_eq!(beta_requests.len(), 3, "{beta_requests:?}");
    assert_eq!(github.dispatches().len(), 2);

    // The same catch-up is not dispatched again by the next sweep (its run may still be queued).
    let again = reconcile.run();
    assert!(again.line("studio/beta")["dispatch"]
        .as_str()
        .unwrap()
        .starts_with("already_sent"));
    assert_eq!(github.dispatches().len(), 2);

    println!(
        "reconcile GitHub requests per sweep (3 active repositories, one of them unknown to GitHub): \
         cold {}, quiet {} ({} answered 304), one head moved + catch-up {}",
        cold.requests(),
        quiet.requests(),
        quiet.audit["not_modified"],
        moved.requests()
    );
}

#[test]
fn a_registry_outage_or_a_broken_repository_fails_its_line_only() {
    let registry = Verdaccio::shared();
    let github = FakeGitHub::start(world("outage")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // beta's tree answers 500 (more times than the client retries).
    github.fault(Fault {
        method: Some("GET".into()),
        path_contains: Some("/repos/studio/beta/git/trees/".into()),
        times: 10,
        status: Some(500),
        ..Fault::default()
    });
    let mut reconcile = Reconcile::new(&github, &registry.url, dir.path());
    let sweep = reconcile.run();
    assert_eq!(sweep.code, 1);
    assert_eq!(sweep.line("studio/beta")["result"], "failed");
    assert!(sweep.line("studio/beta")["reason"]
        .as_str()
        .unwrap()
        .contains("500"));
    // alpha is still examined and caught up.
    assert_eq!(sweep.line("studio/alpha")["result"], "catch_up");
    assert_eq!(github.dispatches().len(), 1);

    // The registry is down: every line fails, the sweep still finishes and saves its state.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    reconcile.registry_url = format!("http://127.0.0.1:{port}");
    let outage = reconcile.run();
    assert_eq!(outage.code, 1);
    for repository in ["studio/alpha", "studio/beta", "studio/gone"] {
        assert_eq!(outage.line(repository)["result"], "failed", "{repository}");
    }
    assert!(dir.path().join("state/repositories.json").exists());
    assert_eq!(github.dispatches().len(), 1, "nothing dispatched blindly");
}

/// A registry that answers 500: after three repositories in a row whose lookups failed, the rest of
/// the sweep stops asking it (each lookup would otherwise wait through its retries) and fails their
/// lines at once.
#[test]
fn after_three_registry_failures_in_a_row_the_sweep_stops_asking_the_registry() {
    let broken_registry = FakeServer::start(|_| (500, br#"{"error":"down"}"#.to_vec()));
    let mut world = World {
        tokens: vec![READ_TOKEN.into(), DISPATCH_TOKEN.into()],
        ..World::default()
    };
    let mut entries = Vec::new();
    for name in ["r1", "r2", "r3", "r4"] {
        let text = manifest(&format!("com.test.down-{name}"), "1.0.0");
        world
            .add_repo(&format!("studio/{name}"), "main")
            .commit("main", &[("package.json", Some(text.as_slice()))], "feat")
            .unwrap();
        entries.push(format!(
            r#"{{"url": "https://github.com/studio/{name}", "status": "active"}}"#
        ));
    }
    let github = FakeGitHub::start(world).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reconcile = Reconcile::new(&github, &broken_registry.url, dir.path());
    // This world's repositories instead of `world`'s.
    std::fs::write(
        &reconcile.registry_file,
        format!(r#"{{"repositories": [{}]}}"#, entries.join(",")),
    )
    .unwrap();

    let sweep = reconcile.run();

    assert_eq!(sweep.code, 1);
    for name in ["r1", "r2", "r3", "r4"] {
        let line = sweep.line(&format!("studio/{name}"));
        assert_eq!(line["result"], "failed", "{line}");
    }
    let asked: Vec<String> = broken_registry
        .requests()
        .iter()
        .map(|r| r.url.clone())
        .collect();
    // --attempts 2: two requests for each of the first three, none for the fourth.
    assert_eq!(asked.len(), 6, "{asked:?}");
    assert!(!asked.iter().any(|u| u.contains("down-r4")), "{asked:?}");
    assert!(github.dispatches().is_empty());
}

#[test]
fn the_budget_defers_what_it_cannot_reach_and_those_go_first_next_time() {
    let registry = Verdaccio::shared();
    let github = FakeGitHub::start(world("budget")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut reconcile = Reconcile {
        // alpha, cold: its repository, branch, tree, two package.json blobs and the dispatch.
        budget: 6,
        ..Reconcile::new(&github, &registry.url, dir.path())
    };
    let first = reconcile.run();
    assert!(first.requests() <= 6, "{}", first.audit);
    assert_eq!(first.line("studio/alpha")["result"], "catch_up");
    assert_eq!(first.code, 0, "deferred is not a failure: {}", first.stderr);
    let deferred: Vec<&str> = first.audit["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["result"] == "deferred")
        .map(|l| l["repository"].as_str().unwrap())
        .collect();
    assert_eq!(deferred, ["studio/beta", "studio/gone"], "{}", first.audit);
    assert_eq!(github.requests().len() as u64, first.requests());

    // The next sweep starts with what the first could not reach.
    reconcile.budget = 500;
    let second = reconcile.run();
    let order: Vec<&str> = second.audit["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["repository"].as_str().unwrap())
        .collect();
    assert_eq!(order[0], deferred[0], "{order:?}");
}

#[test]
fn a_rate_limit_longer_than_the_clients_bound_defers_the_rest_of_the_sweep() {
    let registry = Verdaccio::shared();
    let github = FakeGitHub::start(world("ratelimit")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // GitHub's primary limit is spent for the next hour: the client does not wait that long.
    github.fault(Fault {
        method: Some("GET".into()),
        path_contains: Some("/repos/studio/alpha".into()),
        times: 1,
        status: Some(403),
        message: Some("API rate limit exceeded".into()),
        rate_limit_remaining: Some(0),
        rate_limit_reset_in: Some(3600),
        ..Fault::default()
    });
    let reconcile = Reconcile::new(&github, &registry.url, dir.path());
    let sweep = reconcile.run();
    assert_eq!(sweep.code, 0, "deferred, not failed: {}", sweep.stderr);
    for repository in ["studio/alpha", "studio/beta", "studio/gone"] {
        assert_eq!(sweep.line(repository)["result"], "deferred", "{repository}");
    }
    assert!(sweep.line("studio/alpha")["reason"]
        .as_str()
        .unwrap()
        .contains("rate limit"));
    assert_eq!(
        github.requests().len(),
        1,
        "no request after the rate limit"
    );
    assert!(github.dispatches().is_empty());
}

//! The safety nets of the publish workflow, end to end against a real Verdaccio: what must hold for
//! `handle-publish-request.yml` to run without a per-repository concurrency group (quick pushes of one
//! repository run side by side), and the legacy empty `package_path`.

mod support;

use support::{Cli, Repo, Run, Verdaccio};

/// Every version a run published is on the registry with the bytes the run sent.
fn assert_published_and_verified(registry: &Verdaccio, run: &Run) {
    for published in run.audit["published"].as_array().unwrap() {
        let name = published["name"].as_str().unwrap();
        let version = published["version"].as_str().unwrap();
        let (shasum, _) = registry.stored(name, version);
        assert_eq!(published["shasum"], shasum.as_str(), "{name}@{version}");
    }
}

/// Three pushes of one repository in quick succession, each dispatch naming only the directories its
/// push changed. GitHub keeps one pending run per concurrency group and cancels the rest, so the
/// workflow has no per-repository group: the three runs start together. All three must publish, and
/// every version must end up on the registry, verified. Three rounds, because the interleaving differs.
#[test]
fn three_quick_dispatches_for_one_repository_all_publish() {
    let registry = Verdaccio::shared();
    for round in 0..3 {
        let a = format!("com.test.quick{round}-a");
        let b = format!("com.test.quick{round}-b");
        let repo = Repo::new();
        repo.package("Packages/a", &a, "1.0.0");
        repo.package("Packages/b", &b, "1.0.0");
        let first = repo.commit("feat: a and b");
        repo.set_version("Packages/a", &a, "1.1.0");
        let second = repo.commit("feat(a): 1.1.0");
        repo.set_version("Packages/a", &a, "1.2.0");
        repo.set_version("Packages/b", &b, "2.0.0");
        let third = repo.commit("feat!: a 1.2.0, b 2.0.0");
        let (_bare, url) = repo.bare();

        let dispatches = [
            (&first, "Packages/a,Packages/b"),
            (&second, "Packages/a"),
            (&third, "Packages/a,Packages/b"),
        ];
        let running: Vec<_> = dispatches
            .iter()
            .map(|(sha, paths)| {
                Cli::new(&registry.url)
                    .token(&registry.token)
                    .clone_at(&url, sha)
                    .env("UPM_REPOSITORY", "studio/quick")
                    .env("UPM_PACKAGE_PATHS", paths)
                    .spawn()
            })
            .collect();
        let runs: Vec<Run> = running.into_iter().map(|r| r.finish()).collect();

        for run in &runs {
            assert_eq!(run.code, 0, "{}", run.stderr);
            assert_eq!(run.count("failed"), 0, "{}", run.audit);
            assert_published_and_verified(registry, run);
        }
        let mut published: Vec<String> = runs.iter().flat_map(|r| r.names("published")).collect();
        published.sort();
        let mut expected = vec![
            format!("{a}@1.0.0"),
            format!("{a}@1.1.0"),
            format!("{a}@1.2.0"),
            format!("{b}@1.0.0"),
            format!("{b}@2.0.0"),
        ];
        expected.sort();
        assert_eq!(published, expected, "round {round}");
        for (name, version) in [
            (&a, "1.0.0"),
            (&a, "1.1.0"),
            (&a, "1.2.0"),
            (&b, "1.0.0"),
            (&b, "2.0.0"),
        ] {
            assert_eq!(
                registry.version_status(name, version),
                200,
                "{name}@{version}"
            );
        }
        // Whatever order the runs finished in, `latest` is the highest version (never moved back).
        assert_eq!(registry.packument(&a)["dist-tags"]["latest"], "1.2.0");
        assert_eq!(registry.packument(&b)["dist-tags"]["latest"], "2.0.0");
    }
}

/// The legacy per-repository dispatchers and the original worker send `package_path: ""`. That means
/// "every package": reading only the repository root would find nothing and lose the bump.
#[test]
fn an_empty_package_path_publishes_every_package() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.write("package.json", r#"{"name":"unity-project","private":true}"#);
    repo.package("Packages/com.test.legacy-a", "com.test.legacy-a", "1.0.0");
    repo.package("Assets/Plugins/legacy-b", "com.test.legacy-b", "3.1.0");
    let sha = repo.commit("feat: two packages");

    let run = Cli::publish(registry, &repo, &sha)
        .env("UPM_PACKAGE_PATHS", "")
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut published = run.names("published");
    published.sort();
    assert_eq!(
        published,
        ["com.test.legacy-a@1.0.0", "com.test.legacy-b@3.1.0"]
    );
    assert_published_and_verified(registry, &run);
}

// ---------------------------------------------------------------------------------------------------
// Committing the changelogs back (scripts/commit-changelogs.sh, run by the workflow after `publish`)

use std::path::Path;
use std::process::Command;
use support::{git, repo_root};

const CHANGELOG: &str = "# Changelog\n\n## [1.0.0] - 2026-01-01\n\n- first\n";

/// A package repository on a bare "origin", and a checkout of it detached at the published commit (what
/// actions/checkout leaves), whose changelog the publisher has just extended.
struct Origin {
    _dir: tempfile::TempDir,
    bare: std::path::PathBuf,
    checkout: std::path::PathBuf,
    published: String,
}

impl Origin {
    fn new() -> Origin {
        let repo = Repo::new();
        repo.package("p", "com.test.changelog", "1.1.0");
        repo.write("p/CHANGELOG.md", CHANGELOG);
        let published = repo.commit("feat: 1.1.0");
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("origin.git");
        git(
            repo.path(),
            &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
        );
        let checkout = dir.path().join("checkout");
        git(
            dir.path(),
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                checkout.to_str().unwrap(),
            ],
        );
        git(&checkout, &["checkout", "-q", "--detach", &published]);
        Origin {
            _dir: dir,
            bare,
            checkout,
            published,
        }
    }

    /// Another clone pushes `file` with `text` to main (a later push, or another run's changelog).
    fn push_elsewhere(&self, file: &str, text: &str) -> String {
        let other = tempfile::tempdir().unwrap();
        git(
            other.path(),
            &["clone", "-q", self.bare.to_str().unwrap(), "."],
        );
        for (k, v) in [("user.name", "Other"), ("user.email", "o@example.com")] {
            git(other.path(), &["config", k, v]);
        }
        std::fs::write(other.path().join(file), text).unwrap();
        git(other.path(), &["commit", "-qam", "another push"]);
        git(other.path(), &["push", "-q", "origin", "HEAD:main"]);
        git(other.path(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    fn commit_back(&self, attempts: &str) -> (i32, String) {
        self.commit_back_to("main", attempts)
    }

    fn commit_back_to(&self, branch: &str, attempts: &str) -> (i32, String) {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/commit-changelogs.sh"))
            .env("UPM_WORKSPACE", &self.checkout)
            .env("UPM_BRANCH", branch)
            .env("UPM_PUSH_ATTEMPTS", attempts)
            .env("UPM_COMMIT_NAME", "upm-app[bot]")
            .env("UPM_COMMIT_EMAIL", "upm-app[bot]@users.noreply.github.com")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!("--- commit-changelogs ---\n{stderr}");
        (out.status.code().unwrap_or(-1), stderr)
    }

    /// The publisher's 1.1.0 section, in the checkout's changelog (what commit-changelogs.sh pushes).
    fn publisher_wrote_changelog(&self) {
        std::fs::write(
            self.checkout.join("p/CHANGELOG.md"),
            with_section("1.1.0", "ours"),
        )
        .unwrap();
    }

    /// The origin's main.
    fn head(&self) -> String {
        git(&self.bare, &["rev-parse", "main"]).trim().to_string()
    }

    fn origin_file(&self, path: &str) -> String {
        git(&self.bare, &["show", &format!("main:{path}")])
    }

    fn origin_log(&self) -> Vec<String> {
        git(&self.bare, &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn with_section(version: &str, line: &str) -> String {
    CHANGELOG.replacen(
        "## [1.0.0]",
        &format!("## [{version}] - 2026-02-02\n\n- {line}\n\n## [1.0.0]"),
        1,
    )
}

fn hook(bare: &Path, script: &str) {
    let path = bare.join("hooks/pre-receive");
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn changelogs_are_committed_back_with_skip_ci_and_nothing_else() {
    let origin = Origin::new();
    origin.publisher_wrote_changelog();
    // Something else the run left in the checkout is never committed.
    std::fs::write(origin.checkout.join("p/Runtime/Build.log"), "noise").unwrap();

    let (code, stderr) = origin.commit_back("3");

    assert_eq!(code, 0, "{stderr}");
    let log = origin.origin_log();
    assert!(log[0].contains("[skip ci]"), "{log:?}");
    assert_eq!(log[0], "chore(changelog): p [skip ci]");
    assert_eq!(
        origin.origin_file("p/CHANGELOG.md"),
        with_section("1.1.0", "ours")
    );
    let files = git(&origin.bare, &["show", "--name-only", "--format=", "main"]);
    assert_eq!(files.trim(), "p/CHANGELOG.md");
    let author = git(&origin.bare, &["log", "-1", "--format=%an <%ae>", "main"]);
    assert_eq!(
        author.trim(),
        "upm-app[bot] <upm-app[bot]@users.noreply.github.com>"
    );
    let parent = git(&origin.bare, &["rev-parse", "main^"]);
    assert_eq!(parent.trim(), origin.published);
}

/// The branch moved after the published commit: a later push changed another file, and another run
/// committed its own changelog section at the same place. The commit is rebased and both sections kept.
#[test]
fn a_moved_branch_is_rebased_and_both_changelog_sections_kept() {
    let origin = Origin::new();
    origin.publisher_wrote_changelog();
    let theirs = origin.push_elsewhere("p/CHANGELOG.md", &with_section("1.2.0", "theirs"));

    let (code, stderr) = origin.commit_back("3");

    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("rebasing"), "{stderr}");
    let parent = git(&origin.bare, &["rev-parse", "main^"]);
    assert_eq!(parent.trim(), theirs, "pushed on top of the moved branch");
    let text = origin.origin_file("p/CHANGELOG.md");
    assert!(
        text.contains("## [1.1.0]") && text.contains("- ours"),
        "{text}"
    );
    assert!(
        text.contains("## [1.2.0]") && text.contains("- theirs"),
        "{text}"
    );
    assert_eq!(text.matches("## [1.0.0]").count(), 1, "{text}");
}

/// The branch moves while the push is in flight (between the script's fetch and GitHub's ref update):
/// the origin's hook advances main during the first push, so that push is refused; the retry wins.
#[test]
fn a_branch_that_moves_between_attempts_is_retried() {
    let origin = Origin::new();
    // The commit the hook will move main to, stored under another ref beforehand.
    let moved = origin.push_elsewhere("p/Runtime/Thing.cs", "class Moved {}\n");
    git(&origin.bare, &["update-ref", "refs/heads/later", &moved]);
    git(
        &origin.bare,
        &["update-ref", "refs/heads/main", &origin.published],
    );
    hook(
        &origin.bare,
        r#"count_file="$PWD/push-count"; n=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$count_file"
if [ "$n" -eq 1 ]; then env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main refs/heads/later; fi
exit 0"#,
    );
    origin.publisher_wrote_changelog();

    let (code, stderr) = origin.commit_back("3");

    assert_eq!(code, 0, "{stderr}");
    let pushes = std::fs::read_to_string(origin.bare.join("push-count")).unwrap();
    assert_eq!(pushes.trim(), "2", "one refused push, one retry");
    assert_eq!(git(&origin.bare, &["rev-parse", "main^"]).trim(), moved);
    assert_eq!(origin.origin_file("p/Runtime/Thing.cs"), "class Moved {}\n");
    assert!(origin.origin_file("p/CHANGELOG.md").contains("- ours"));
}

#[test]
fn a_push_refused_every_time_gives_up_after_the_attempts() {
    let origin = Origin::new();
    hook(
        &origin.bare,
        r#"n=$(( $(cat "$PWD/push-count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$PWD/push-count"; exit 1"#,
    );
    origin.publisher_wrote_changelog();

    let (code, stderr) = origin.commit_back("2");

    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("gave up after 2 pushes"), "{stderr}");
    let pushes = std::fs::read_to_string(origin.bare.join("push-count")).unwrap();
    assert_eq!(pushes.trim(), "2");
    assert_eq!(origin.head(), origin.published, "nothing pushed");
}

#[test]
fn a_replay_without_a_branch_commits_nothing_and_is_not_an_error() {
    let origin = Origin::new();
    origin.publisher_wrote_changelog();
    let (code, stderr) = origin.commit_back_to("", "1");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no branch given"), "{stderr}");
    assert_eq!(origin.head(), origin.published, "nothing pushed");
}

#[test]
fn nothing_to_commit_is_not_an_error() {
    let origin = Origin::new();
    let (code, stderr) = origin.commit_back("1");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no changelog"), "{stderr}");
    assert_eq!(origin.head(), origin.published, "nothing pushed");
}

// ---------------------------------------------------------------------------------------------------
// The workflow's own failure report ("Report a failed run" in handle-publish-request.yml), run as the
// workflow would run it: the `run:` block read from the workflow file, its inputs in the environment.

use support::FakeServer;

/// The `run: |` block of the step named `step` (a YAML block scalar: the lines indented deeper than
/// `run:`).
fn workflow_step_script(workflow: &str, step: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(workflow)).unwrap();
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != format!("- name: {step}"));
    assert!(lines.next().is_some(), "no step {step:?} in {workflow}");
    let run = lines
        .by_ref()
        .find(|l| l.trim() == "run: |")
        .expect("a `run: |` block");
    let indent = run.len() - run.trim_start().len();
    let mut script = String::new();
    for line in lines {
        if !line.trim().is_empty() && line.len() - line.trim_start().len() <= indent {
            break;
        }
        script.push_str(line.get(indent + 2..).unwrap_or(""));
        script.push('\n');
    }
    script
}

fn report_failed_run(steps_json: &str, audit: &Path, discord: &FakeServer) -> (i32, String) {
    let script = workflow_step_script(
        ".github/workflows/handle-publish-request.yml",
        "Report a failed run",
    );
    let summary = audit.with_file_name("summary.md");
    let out = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &script])
        .env("DISCORD_WEBHOOK_URL", discord.webhook_url())
        .env("DISCORD_THREAD_ID", "777")
        .env(
            "RUN_URL",
            "https://github.com/studio/central/actions/runs/1",
        )
        .env("STEPS_JSON", steps_json)
        .env("UPM_AUDIT_FILE", audit)
        .env("GITHUB_STEP_SUMMARY", &summary)
        // Untrusted payload text: must arrive as data, never run.
        .env("UPM_REPOSITORY", "studio/game")
        .env("UPM_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("UPM_BRANCH", "main\"; touch /tmp/upm-injected; echo \"")
        .env("UPM_DELIVERY", "$(touch /tmp/upm-injected)")
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_failed_checkout_posts_the_failure_and_leaves_an_audit_file() {
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.json");
    let steps = r#"{"target":{"outcome":"success","conclusion":"success","outputs":{}},
                    "scripts":{"outcome":"success","conclusion":"success","outputs":{}},
                    "fetch":{"outcome":"success","conclusion":"success","outputs":{}},
                    "checkout":{"outcome":"failure","conclusion":"failure","outputs":{}}}"#;

    let (code, output) = report_failed_run(steps, &audit, &discord);

    assert_eq!(code, 0, "{output}");
    let posts = discord.requests();
    assert_eq!(posts.len(), 1, "{output}");
    assert!(posts[0].url.contains("thread_id=777"), "{}", posts[0].url);
    let message = posts[0].json();
    let embed = &message["embeds"][0];
    assert_eq!(embed["title"], "Publish run failed");
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .contains("`checkout`"));
    assert_eq!(
        embed["fields"][0]["value"].as_str().unwrap().get(..24),
        Some("studio/game@0123456789ab")
    );
    assert_eq!(message["allowed_mentions"]["parse"], serde_json::json!([]));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&audit).unwrap()).unwrap();
    assert_eq!(written["ok"], false);
    assert_eq!(written["failed"][0]["step"], "checkout");
    assert_eq!(written["source"]["delivery"], "$(touch /tmp/upm-injected)");
    assert!(
        !Path::new("/tmp/upm-injected").exists(),
        "payload text was executed"
    );
}

#[test]
fn a_failure_the_publisher_reported_itself_is_not_posted_twice() {
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.json");
    std::fs::write(&audit, r#"{"ok":false,"failed":[{"stage":"validate"}]}"#).unwrap();
    let steps = r#"{"target":{"outcome":"success"},"publish":{"outcome":"failure"}}"#;

    let (code, output) = report_failed_run(steps, &audit, &discord);

    assert_eq!(code, 0, "{output}");
    assert!(discord.requests().is_empty(), "{output}");
    assert!(std::fs::read_to_string(&audit)
        .unwrap()
        .contains("validate"));
}

/// A step cut by its timeout (the fetch waiting for a binary) shows as "cancelled", and a job past its
/// own timeout is cancelled as a whole: the report runs then too (`failure() || cancelled()`) and names
/// the step.
#[test]
fn a_step_cut_by_its_timeout_is_reported_like_a_failure() {
    let workflow =
        std::fs::read_to_string(repo_root().join(".github/workflows/handle-publish-request.yml"))
            .unwrap();
    assert!(
        workflow.contains("if: ${{ failure() || cancelled() }}"),
        "the report step must also run for a cancelled (timed-out) job"
    );
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.json");
    let steps = r#"{"runner":{"outcome":"success"},"target":{"outcome":"success"},
                    "scripts":{"outcome":"success"},"fetch":{"outcome":"cancelled"}}"#;

    let (code, output) = report_failed_run(steps, &audit, &discord);

    assert_eq!(code, 0, "{output}");
    let posts = discord.requests();
    assert_eq!(posts.len(), 1, "{output}");
    let description = posts[0].json()["embeds"][0]["description"].to_string();
    assert!(description.contains("`fetch`"), "{description}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&audit).unwrap()).unwrap();
    assert_eq!(written["failed"][0]["step"], "fetch");
}

#[test]
fn a_failed_commit_back_after_a_partly_failed_publish_is_still_posted() {
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.json");
    std::fs::write(&audit, r#"{"ok":false,"failed":[{"stage":"validate"}]}"#).unwrap();
    let steps = r#"{"publish":{"outcome":"failure"},"commit-back":{"outcome":"failure"}}"#;

    let (code, output) = report_failed_run(steps, &audit, &discord);

    assert_eq!(code, 0, "{output}");
    let posts = discord.requests();
    assert_eq!(posts.len(), 1, "{output}");
    let description = posts[0].json()["embeds"][0]["description"].to_string();
    assert!(
        description.contains("`commit-back`") && !description.contains("publish"),
        "{description}"
    );
}

#[test]
fn a_failed_commit_back_after_a_good_publish_is_posted() {
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.json");
    std::fs::write(&audit, r#"{"ok":true,"published":[{"name":"com.s.a"}]}"#).unwrap();
    let steps = r#"{"publish":{"outcome":"success"},"commit-back":{"outcome":"failure"}}"#;

    let (code, output) = report_failed_run(steps, &audit, &discord);

    assert_eq!(code, 0, "{output}");
    let posts = discord.requests();
    assert_eq!(posts.len(), 1, "{output}");
    assert!(posts[0].json()["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .contains("`commit-back`"));
    // The publisher's own audit is kept as it is.
    assert!(std::fs::read_to_string(&audit).unwrap().contains("com.s.a"));
}

// ---------------------------------------------------------------------------------------------------
// Fetching the CI-built binary (scripts/fetch-publisher.sh), with a stand-in `gh` on PATH: it answers
// `gh api` by running the script's own `--jq` filter over canned workflow runs, serves artifacts from
// directories, and accepts or refuses `gh attestation verify`.

const FAKE_GH: &str = r#"#!/usr/bin/env bash
echo "$*" >> "$FAKE_GH_LOG"
case "$1" in
  api) jq -r "$4" "$FAKE_GH_RUNS" ;;
  run)
    id="$3"; dir=""
    while [ $# -gt 0 ]; do [ "$1" = "--dir" ] && dir="$2"; shift; done
    [ -d "$FAKE_GH_ARTIFACTS/$id" ] || { echo "no artifact in run $id" >&2; exit 1; }
    cp "$FAKE_GH_ARTIFACTS/$id"/* "$dir"/ ;;
  attestation) [ "${FAKE_GH_ATTESTATION:-ok}" = ok ] || { echo "attestation refused" >&2; exit 1; } ;;
  *) exit 2 ;;
esac
"#;

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

struct FetchWorld {
    dir: tempfile::TempDir,
}

impl FetchWorld {
    /// Runs of publisher-binary.yml for SHA, newest first: a pull request's (its own binary), a fork's
    /// push, and the default branch's push. Each has an artifact; only the last is ours.
    fn new() -> FetchWorld {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("gh"), FAKE_GH).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("gh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let runs = serde_json::json!({"workflow_runs": [
            {"id": 30, "event": "pull_request", "status": "completed", "conclusion": "success",
             "head_repository": {"full_name": "studio/upm-central"}},
            {"id": 20, "event": "push", "status": "completed", "conclusion": "success",
             "head_repository": {"full_name": "someone/upm-central"}},
            {"id": 10, "event": "push", "status": "completed", "conclusion": "success",
             "head_repository": {"full_name": "studio/upm-central"}}
        ]});
        std::fs::write(dir.path().join("runs.json"), runs.to_string()).unwrap();
        let world = FetchWorld { dir };
        world.artifact(30, "echo pull-request-binary", true);
        world.artifact(20, "echo fork-binary", true);
        world.artifact(10, "echo upm-publisher 0.1.0", true);
        world
    }

    /// An artifact: an executable script and its sha256 file (of other bytes when `honest` is false).
    fn artifact(&self, run: u32, body: &str, honest: bool) {
        let dir = self.dir.path().join(format!("artifacts/{run}"));
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!("#!/bin/sh\n{body}\n");
        std::fs::write(dir.join("upm-publisher"), &script).unwrap();
        let hashed = if honest {
            script
        } else {
            "other bytes".to_string()
        };
        use sha2::Digest;
        let digest = hex_digest(&sha2::Sha256::digest(hashed.as_bytes()));
        std::fs::write(
            dir.join("upm-publisher.sha256"),
            format!("{digest}  upm-publisher\n"),
        )
        .unwrap();
    }

    fn fetch(&self, envs: &[(&str, &str)]) -> (i32, String, std::path::PathBuf) {
        let out = self.dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("scripts/fetch-publisher.sh"))
            .env("PATH", path)
            .env("GITHUB_REPOSITORY", "studio/upm-central")
            .env("GITHUB_SHA", SHA)
            .env("UPM_PUBLISHER_DIR", &out)
            .env("UPM_PUBLISHER_WAIT", "0")
            .env("FAKE_GH_LOG", self.dir.path().join("gh.log"))
            .env("FAKE_GH_RUNS", self.dir.path().join("runs.json"))
            .env("FAKE_GH_ARTIFACTS", self.dir.path().join("artifacts"))
            .env_remove("UPM_ATTESTATION")
            .env_remove("UPM_DEFAULT_BRANCH")
            .env_remove("GITHUB_REF")
            .env_remove("FAKE_GH_ATTESTATION");
        for (k, v) in envs {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        eprintln!("--- fetch-publisher ---\n{text}");
        (output.status.code().unwrap_or(-1), text, out)
    }

    /// Replaces the canned runs of publisher-binary.yml.
    fn runs(&self, runs: serde_json::Value) {
        let doc = serde_json::json!({ "workflow_runs": runs });
        std::fs::write(self.dir.path().join("runs.json"), doc.to_string()).unwrap();
    }

    fn gh_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gh.log")).unwrap_or_default()
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_binary_comes_from_the_default_branchs_own_ci_run_and_is_verified() {
    let world = FetchWorld::new();
    let (code, output, out) = world.fetch(&[]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("upm-publisher 0.1.0"),
        "ran the fetched binary: {output}"
    );
    let fetched = std::fs::read_to_string(out.join("upm-publisher")).unwrap();
    assert!(fetched.contains("upm-publisher 0.1.0"), "{fetched}");
    let log = world.gh_log();
    assert!(
        log.contains(&format!(
            "actions/workflows/publisher-binary.yml/runs?head_sha={SHA}"
        )),
        "{log}"
    );
    // Neither the pull request's nor the fork's artifact was even downloaded.
    assert!(
        !log.contains("run download 30") && !log.contains("run download 20"),
        "{log}"
    );
    assert!(log.contains(&format!(
        "attestation verify upm-publisher --repo studio/upm-central --signer-workflow studio/upm-central/.github/workflows/publisher-binary.yml --source-digest {SHA}"
    )), "{log}");
}

#[test]
fn a_tampered_or_unattested_binary_is_refused() {
    let world = FetchWorld::new();
    world.artifact(10, "echo tampered", false);
    let (code, output, _) = world.fetch(&[]);
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("FAILED"),
        "sha256sum reports the mismatch: {output}"
    );
    assert!(
        !world.gh_log().contains("attestation"),
        "nothing runs after the checksum"
    );

    let world = FetchWorld::new();
    let (code, output, _) = world.fetch(&[("FAKE_GH_ATTESTATION", "refuse")]);
    assert_ne!(code, 0, "{output}");
    assert!(!output.contains("upm-publisher 0.1.0"), "not run: {output}");

    // Where build provenance is unavailable, UPM_ATTESTATION=off keeps the other checks.
    let (code, output, _) = world.fetch(&[
        ("FAKE_GH_ATTESTATION", "refuse"),
        ("UPM_ATTESTATION", "off"),
    ]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("not checked"), "{output}");
}

#[test]
fn no_build_for_the_commit_fails_once_the_wait_is_over() {
    let world = FetchWorld::new();
    world.runs(serde_json::json!([]));
    let (code, output, _) = world.fetch(&[]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("publisher-binary.yml has no upm-publisher-linux-x64"),
        "{output}"
    );
}

#[test]
fn a_build_still_running_is_waited_for_and_never_downloaded_from() {
    let world = FetchWorld::new();
    world.runs(serde_json::json!([
        {"id": 10, "event": "push", "status": "in_progress", "conclusion": null,
         "head_repository": {"full_name": "studio/upm-central"}}
    ]));
    let (code, output, _) = world.fetch(&[]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("has no upm-publisher-linux-x64"),
        "{output}"
    );
    assert!(
        !world.gh_log().contains("run download"),
        "{}",
        world.gh_log()
    );
}

/// A build that failed (or was cancelled) will not produce a binary however long the job waits: the
/// fetch says so at once instead of waiting 15 minutes.
#[test]
fn a_failed_build_fails_at_once() {
    let world = FetchWorld::new();
    world.runs(serde_json::json!([
        {"id": 10, "event": "push", "status": "completed", "conclusion": "failure",
         "head_repository": {"full_name": "studio/upm-central"}}
    ]));
    let (code, output, _) = world.fetch(&[("UPM_PUBLISHER_WAIT", "900")]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("built no upm-publisher-linux-x64")
            && output.contains("10 completed failure"),
        "{output}"
    );
    assert!(!output.contains("waiting"), "{output}");
}

/// publisher-binary.yml builds the default branch only: a manual replay started from another branch
/// is told so at once, before any request.
#[test]
fn a_run_on_another_branch_fails_at_once_naming_the_default_branch() {
    let world = FetchWorld::new();
    let (code, output, _) = world.fetch(&[
        ("GITHUB_REF", "refs/heads/feature"),
        ("UPM_DEFAULT_BRANCH", "master"),
        ("UPM_PUBLISHER_WAIT", "900"),
    ]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("refs/heads/feature") && output.contains("start the workflow from master"),
        "{output}"
    );
    assert_eq!(world.gh_log(), "", "no request was made");
    // On the default branch itself the fetch goes ahead.
    let (code, output, _) = world.fetch(&[
        ("GITHUB_REF", "refs/heads/master"),
        ("UPM_DEFAULT_BRANCH", "master"),
    ]);
    assert_eq!(code, 0, "{output}");
}

/// The two workflow lines the guarantees above rest on: no concurrency group (GitHub would cancel all
/// but one pending run of a repository) and an empty `package_path` read as `*`.
#[test]
fn the_publish_workflow_neither_groups_runs_nor_narrows_an_empty_package_path() {
    let text =
        std::fs::read_to_string(repo_root().join(".github/workflows/handle-publish-request.yml"))
            .unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("concurrency:")),
        "a concurrency group cancels pending runs"
    );
    let mapping = text
        .lines()
        .find(|l| l.trim_start().starts_with("UPM_PACKAGE_PATHS:"))
        .expect("the package_path mapping");
    assert!(mapping.trim_end().ends_with("|| '*' }}"), "{mapping}");
}

/// Runs a workflow step's `run: |` script with bash (as Actions does: `-e -o pipefail`) in `cwd`, with
/// `GITHUB_OUTPUT` pointing at a file; returns the exit code, the output and what the step wrote there.
fn run_step(
    workflow: &str,
    step: &str,
    cwd: &Path,
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    let script = workflow_step_script(workflow, step);
    let outputs = cwd.join("github-output");
    let _ = std::fs::remove_file(&outputs);
    let mut command = Command::new("bash");
    command
        .args(["-e", "-o", "pipefail", "-c", &script])
        .current_dir(cwd)
        .env("GITHUB_OUTPUT", &outputs);
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        text,
        std::fs::read_to_string(&outputs).unwrap_or_default(),
    )
}

#[test]
fn the_publish_request_is_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = ".github/workflows/handle-publish-request.yml";
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let (code, text, outputs) = run_step(
        workflow,
        "Check the request",
        dir.path(),
        &[
            ("UPM_REPOSITORY", "Studio/Game-Client"),
            ("UPM_COMMIT_SHA", sha),
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(outputs, "owner=Studio\nname=Game-Client\n");
    for (repository, commit) in [
        ("studio/a/b", sha),
        ("studio", sha),
        ("studio/$(touch x)", sha),
        ("studio/..", sha),
        ("studio/game", "main"),
        ("studio/game", "0123"),
    ] {
        let (code, text, outputs) = run_step(
            workflow,
            "Check the request",
            dir.path(),
            &[("UPM_REPOSITORY", repository), ("UPM_COMMIT_SHA", commit)],
        );
        assert_eq!(code, 1, "{repository} {commit}: {text}");
        assert!(outputs.is_empty());
    }
    assert!(!dir.path().join("x").exists());
}

/// Reconcile mints one token itself: the dispatch token, for the central repository alone.
#[test]
fn reconciles_dispatch_token_names_this_repository_even_on_a_schedule() {
    // On a schedule `github.event.repository` is empty, and an empty `repositories` input would mint a
    // token for every repository of the owner: the name comes from GITHUB_REPOSITORY instead.
    let dir = tempfile::tempdir().unwrap();
    let workflow = ".github/workflows/reconcile.yml";
    let (code, text, outputs) = run_step(
        workflow,
        "Name this repository",
        dir.path(),
        &[("GITHUB_REPOSITORY", "Studio/upm-central")],
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(outputs, "name=upm-central\n");
}

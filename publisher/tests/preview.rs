//! `upm-publisher preview` end to end: a git repository whose pull request bumps one package, changes
//! another without a bump and adds a file without its `.meta` to a third, against a real Verdaccio
//! holding the base's versions, with the check run posted to the fake GitHub. The publisher's token is
//! in the environment: the preview must not use it.

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::{meta, Repo, Verdaccio};
use upm_fake_github::{FakeGitHub, State};

const GITHUB_TOKEN: &str = "ghs_preview_app_installation_token";

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    json: Value,
}

fn preview(
    registry: &Verdaccio,
    repo: &Repo,
    base: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Ran {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("preview.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_upm-publisher"));
    command
        .args([
            "preview",
            "--registry",
            &registry.url,
            "--base",
            base,
            "--workspace",
        ])
        .arg(repo.path())
        .arg("--json")
        .arg(&json)
        .args(extra)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("UPM_") || key.starts_with("GITHUB_") || key == "NPM_TOKEN" {
            command.env_remove(key);
        }
    }
    // The publisher's write token, as a misconfigured job might hand it over: it must not be used.
    command.env("NPM_TOKEN", &registry.token);
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        json: std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
    }
}

fn by_name<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {json}"))
}

#[test]
fn a_pull_request_is_previewed_package_by_package_and_nothing_is_published() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.write("package.json", r#"{"name":"unity-project","private":true}"#);
    repo.package("Packages/a", "com.preview.a", "1.3.0");
    repo.package("Packages/b", "com.preview.b", "2.0.0");
    repo.package("Packages/c", "com.preview.c", "1.0.0");
    repo.write(
        "Packages/untouched/package.json",
        r#"{"name":"com.preview.untouched","version":"1.0.0","unity":"2022.3"}"#,
    );
    let base = repo.commit("feat: three packages");
    let published = support::Cli::publish(registry, &repo, &base)
        .args(&["--package-paths", "Packages/a,Packages/b,Packages/c"])
        .run();
    assert_eq!(published.code, 0, "{}", published.stderr);
    // The workflow commits the changelogs back: that commit is the pull request's base.
    let base = repo.commit("chore: changelogs [skip ci]");

    // The pull request: a minor bump with a new script (and its .meta), a change without a bump, and a
    // bump whose new script has no .meta.
    support::git(repo.path(), &["checkout", "-q", "-b", "feature"]);
    repo.set_version("Packages/a", "com.preview.a", "1.4.0");
    repo.write("Packages/a/Runtime/New.cs", "class New {}\n");
    repo.write(
        "Packages/a/Runtime/New.cs.meta",
        &meta("com.preview.a", "Runtime/New.cs"),
    );
    repo.write(
        "Packages/b/Runtime/Thing.cs",
        "// changed\nclass Thing {}\n",
    );
    repo.set_version("Packages/c", "com.preview.c", "1.1.0");
    repo.write("Packages/c/Runtime/Bad.cs", "class Bad {}\n");
    let head = repo.commit("feat(a): New; fix(b): Thing; feat(c): Bad");

    let fake = FakeGitHub::start(State {
        tokens: vec![GITHUB_TOKEN.into()],
        ..State::default()
    })
    .unwrap();
    fake.state().add_repo("Studio/Tools", "main");
    let ran = preview(
        registry,
        &repo,
        &base,
        &[
            "--check-run",
            "--repository",
            "Studio/Tools",
            "--head-sha",
            &head,
            "--pull-request",
            "7",
        ],
        &[
            ("GITHUB_TOKEN", GITHUB_TOKEN),
            ("GITHUB_API_URL", fake.url()),
        ],
    );
    println!("{}", ran.stdout);
    eprintln!("{}", ran.stderr);
    assert_eq!(
        ran.code, 0,
        "the check run carries the verdict: {}",
        ran.stderr
    );

    let a = by_name(&ran.json, "com.preview.a");
    assert_eq!(a["verdict"], "publish");
    assert_eq!(
        (
            a["from"].as_str(),
            a["change"].as_str(),
            a["dist_tag"].as_str()
        ),
        (Some("1.3.0"), Some("minor"), Some("latest"))
    );
    assert_eq!(a["files"]["against"], "1.3.0");
    let added: Vec<&str> = a["files"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // 1.3.0 was packed before its changelog was written; 1.4.0 carries it.
    assert_eq!(
        added,
        [
            "CHANGELOG.md",
            "CHANGELOG.md.meta",
            "Runtime/New.cs",
            "Runtime/New.cs.meta"
        ]
    );
    assert!(a["changelog"].as_str().unwrap().contains("New"), "{a}");
    assert_eq!(by_name(&ran.json, "com.preview.b")["verdict"], "not_bumped");
    let c = by_name(&ran.json, "com.preview.c");
    assert_eq!(c["verdict"], "fail");
    assert!(
        ran.stdout
            .contains("com.preview.a  1.3.0 → 1.4.0 (minor), dist-tag latest"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("version not bumped: nothing will publish"),
        "{}",
        ran.stdout
    );
    assert!(
        !ran.stdout.contains("com.preview.untouched"),
        "an untouched package is not previewed"
    );

    // The check run: failure (c would fail), annotated on the script without its .meta.
    let runs = fake.state().check_runs.clone();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.name.as_str(), run.head_sha.as_str()),
        ("UPM publish preview", head.as_str())
    );
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.external_id.as_deref(), Some("pull-request-7"));
    let paths: Vec<&str> = run
        .annotations
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["Packages/c/Runtime/Bad.cs"]);
    let summary = run.summary.clone().unwrap();
    assert!(
        summary.contains(
            "| `com.preview.a` | `Packages/a` | 1.3.0 → 1.4.0 (minor), dist-tag latest |"
        ),
        "{summary}"
    );
    println!("--- check run summary ---\n{summary}");
    assert_eq!(
        fake.requests().len(),
        2,
        "one create, one completing update"
    );

    // Nothing reached the registry, though a write token was in the environment.
    assert_eq!(registry.version_status("com.preview.a", "1.4.0"), 404);
    assert_eq!(registry.version_status("com.preview.c", "1.1.0"), 404);
}

#[test]
fn locally_the_table_is_printed_and_a_failure_exits_1_and_a_plain_change_is_neutral() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.package("Packages/d", "com.preview.d", "1.0.0");
    let base = repo.commit("feat: d");
    let published = support::Cli::publish(registry, &repo, &base).run();
    assert_eq!(published.code, 0, "{}", published.stderr);
    let base = repo.commit("chore: changelog [skip ci]");
    repo.write("README.md", "outside every package\n");
    repo.commit("docs");
    let ran = preview(registry, &repo, &base, &[], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("(no UPM package changed)"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("conclusion: neutral"), "{}", ran.stdout);
    // The same version, published with other bytes: bump again.
    repo.write(
        "Packages/d/Runtime/Thing.cs",
        "// other bytes\nclass Thing {}\n",
    );
    repo.commit("fix: other bytes, version kept");
    let ran = preview(registry, &repo, &base, &[], &[]);
    assert!(
        ran.stdout
            .contains("version not bumped: nothing will publish"),
        "{}",
        ran.stdout
    );
    // A base that is not a commit: exit 1 with the reason.
    let ran = preview(registry, &repo, "no-such-ref", &[], &[]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("no-such-ref"), "{}", ran.stderr);
}

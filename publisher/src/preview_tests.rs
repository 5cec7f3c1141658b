//! The preview's decisions, and the proof that a preview cannot write to the registry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::model::Skipped;
use crate::registry::{RetryPolicy, READ_ONLY};

fn dirs(list: &[&str]) -> Vec<PackagePath> {
    list.iter().map(|d| PackagePath::new(*d)).collect()
}

fn files(list: &[&str]) -> Vec<String> {
    list.iter().map(|f| f.to_string()).collect()
}

fn sizes(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(p, s)| (p.to_string(), *s)).collect()
}

fn package(path: &str, version: &str, verdict: Verdict) -> PackagePreview {
    PackagePreview {
        path: path.into(),
        name: Some(format!("com.studio.{}", path.rsplit('/').next().unwrap())),
        version: Some(version.into()),
        verdict,
    }
}

fn publish(from: Option<&str>, change: ChangeKind) -> Verdict {
    Verdict::Publish {
        from: from.map(str::to_string),
        previous: from.map(str::to_string),
        change,
        dist_tag: Some("latest".into()),
        files: FileDiff::default(),
        changelog: String::new(),
    }
}

#[test]
fn a_changed_file_belongs_to_the_deepest_package_holding_it() {
    let packages = dirs(&["Packages/a", "Packages/a/Samples~/inner", "Packages/b"]);
    let touched = touched_packages(
        &files(&[
            "Packages/a/Runtime/A.cs",
            "Packages/a/Samples~/inner/X.cs",
            "Packages/ab/Other.cs",
            "README.md",
        ]),
        &packages,
    );
    assert_eq!(touched, dirs(&["Packages/a", "Packages/a/Samples~/inner"]));
    // A root package owns what no deeper package does.
    let with_root = dirs(&[".", "Packages/b"]);
    assert_eq!(
        touched_packages(
            &files(&["README.md", "Packages/b/package.json"]),
            &with_root
        ),
        dirs(&[".", "Packages/b"])
    );
    assert!(touched_packages(&files(&["docs/x.md"]), &dirs(&["Packages/a"])).is_empty());
}

#[test]
fn the_file_list_is_compared_by_path_and_size() {
    let before = sizes(&[("package.json", 100), ("Runtime/A.cs", 50), ("Old.cs", 10)]);
    let after = sizes(&[("package.json", 101), ("Runtime/A.cs", 50), ("New.cs", 7)]);
    let diff = file_diff(Some("1.3.0".into()), &before, &after);
    assert_eq!(diff.added, ["New.cs"]);
    assert_eq!(diff.removed, ["Old.cs"]);
    assert_eq!(diff.resized, [("package.json".to_string(), 100, 101)]);
    assert_eq!(
        (diff.bytes_before, diff.bytes_after, diff.files),
        (160, 158, 3)
    );
    assert_eq!(
        files_line(&diff),
        "3 files against 1.3.0: 1 added, 1 removed, 1 resized, -2 B"
    );
}

#[test]
fn the_conclusion_fails_on_any_failure_is_neutral_when_nothing_publishes() {
    let bump = package(
        "Packages/a",
        "1.4.0",
        publish(Some("1.3.0"), ChangeKind::Minor),
    );
    let not_bumped = package("Packages/b", "2.0.0", Verdict::NotBumped);
    let fail = package(
        "Packages/c",
        "1.0.0",
        Verdict::Fail {
            stage: "validate".into(),
            reason: "x".into(),
            problems: Vec::new(),
        },
    );
    let different = package("Packages/d", "1.0.0", Verdict::PublishedDifferently);
    assert_eq!(conclusion(std::slice::from_ref(&bump)), Conclusion::Success);
    assert_eq!(
        conclusion(&[bump.clone(), not_bumped.clone()]),
        Conclusion::Success
    );
    assert_eq!(
        conclusion(std::slice::from_ref(&not_bumped)),
        Conclusion::Neutral
    );
    assert_eq!(conclusion(&[]), Conclusion::Neutral);
    assert_eq!(conclusion(&[bump.clone(), fail]), Conclusion::Failure);
    assert_eq!(conclusion(&[different]), Conclusion::Failure);
    assert_eq!(
        title(&[not_bumped]),
        "1 package(s) changed without a version bump: nothing will publish"
    );
    assert_eq!(title(&[]), "No UPM package changed: nothing will publish");
    assert_eq!(title(&[bump]), "1 package(s) will publish");
}

#[test]
fn each_verdict_reads_as_the_issue_spells_it() {
    assert_eq!(
        what(&package(
            "Packages/a",
            "1.4.0",
            publish(Some("1.3.0"), ChangeKind::Minor)
        )),
        "1.3.0 → 1.4.0 (minor), dist-tag latest"
    );
    assert!(what(&package("Packages/a", "1.3.0", Verdict::NotBumped))
        .starts_with("version not bumped: nothing will publish"));
    assert_eq!(
        what(&package(
            "Packages/a",
            "1.4.0",
            Verdict::PublishedDifferently
        )),
        "1.4.0 is already published with different content: bump again"
    );
    assert_eq!(
        what(&package(
            "Packages/a",
            "1.0.0",
            publish(None, ChangeKind::Initial)
        )),
        "1.0.0 (new package), dist-tag latest"
    );
}

#[test]
fn problems_are_annotated_on_their_files_and_manifest_fields_on_the_package_json() {
    assert_eq!(
        problem_path("Packages/a", "Runtime/New.cs"),
        "Packages/a/Runtime/New.cs"
    );
    assert_eq!(problem_path("Packages/a", "Editor/"), "Packages/a/Editor");
    assert_eq!(
        problem_path("Packages/a", "README.md"),
        "Packages/a/README.md"
    );
    assert_eq!(
        problem_path("Packages/a", "version"),
        "Packages/a/package.json"
    );
    assert_eq!(
        problem_path("Packages/a", "dependencies.com.studio.b"),
        "Packages/a/package.json"
    );
    assert_eq!(problem_path(".", "Runtime/A.cs"), "Runtime/A.cs");
    assert_eq!(problem_path(".", "name"), "package.json");
    let preview = Preview {
        base: "b".repeat(40),
        head: "h".repeat(40),
        changed_files: 2,
        packages: vec![package(
            "Packages/a",
            "1.4.0",
            Verdict::Fail {
                stage: "validate".into(),
                reason: "…".into(),
                problems: vec![Problem {
                    field: "Runtime/New.cs".into(),
                    reason: "has no Runtime/New.cs.meta in the package: Unity ignores it".into(),
                }],
            },
        )],
    };
    let notes = annotations(&preview);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].path, "Packages/a/Runtime/New.cs");
    assert!(notes[0].message.contains("has no Runtime/New.cs.meta"));
    let md = markdown(&preview);
    assert!(
        md.contains("| `com.studio.a` | `Packages/a` | would fail (validate)"),
        "{md}"
    );
}

/// A registry that records every request and answers 404 to reads and 201 to writes: were a write to
/// leave the preview, it would be recorded here.
struct RecordingRegistry {
    url: String,
    requests: Arc<Mutex<Vec<(String, String, bool)>>>,
    _server: std::thread::JoinHandle<()>,
}

fn recording_registry() -> RecordingRegistry {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let handle = std::thread::spawn(move || {
        // Bounded: the test makes a handful of requests; the server ends with the test process.
        for _ in 0..200 {
            let Ok(Some(request)) = server.recv_timeout(Duration::from_secs(20)) else {
                return;
            };
            let authorized = request
                .headers()
                .iter()
                .any(|h| h.field.equiv("Authorization"));
            let method = request.method().to_string();
            seen.lock()
                .unwrap()
                .push((method.clone(), request.url().to_string(), authorized));
            let status = if method == "GET" { 404 } else { 201 };
            let _ =
                request.respond(tiny_http::Response::from_string("{}").with_status_code(status));
        }
    });
    RecordingRegistry {
        url,
        requests,
        _server: handle,
    }
}

#[test]
fn a_preview_cannot_upload_even_when_asked_to() {
    let registry = recording_registry();
    // The client reads no token, whatever the environment holds (the CLI test sets NPM_TOKEN).
    let client = Registry::read_only(
        &registry.url,
        RetryPolicy::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(!client.has_token());
    // Asked directly to write: refused before anything is sent.
    let name = crate::model::PackageName::new_unchecked("com.studio.a".into());
    assert_eq!(client.put(&name, b"{}").unwrap_err(), READ_ONLY);
    assert_eq!(
        client
            .set_dist_tag(&name, "latest", &Version::new(1, 0, 0))
            .unwrap_err(),
        READ_ONLY
    );
    // Asked to run the publish path for real (not a dry run) on a package the registry lacks.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"com.studio.a","version":"1.0.0","displayName":"A","unity":"2022.3"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("package.json.meta"), "").ok();
    let published_at = Mutex::new(BTreeMap::new());
    let settings = run::Settings {
        registry: &client,
        jobs: 2,
        dry_run: false,
        guid_cache: None,
        prebuilt: None,
        require_signed: false,
        published_at: &published_at,
    };
    let outcomes = run::run(dir.path(), &Request::Scan, &settings);
    assert!(
        outcomes.iter().all(|o| !matches!(o, Outcome::Published(_))),
        "nothing may be published"
    );
    let requests = registry.requests.lock().unwrap().clone();
    assert!(!requests.is_empty(), "the run did ask the registry");
    assert!(
        requests.iter().all(|(method, _, _)| method == "GET"),
        "only reads left the preview: {requests:?}"
    );
    assert!(
        requests.iter().all(|(_, _, authorized)| !authorized),
        "no token travelled: {requests:?}"
    );
    // And `preview` refuses a client that could write.
    let writer = Registry::new(
        &registry.url,
        None,
        RetryPolicy::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    let settings = Settings {
        registry: &writer,
        jobs: 1,
        guid_cache: None,
    };
    assert!(preview(dir.path(), "HEAD", &settings)
        .unwrap_err()
        .contains("read-only"));
}

#[test]
fn the_dry_run_reasons_the_preview_reads_are_the_ones_the_run_writes() {
    // The preview tells "would publish" from "already published" by these reasons: a change to either
    // must change both.
    let skipped = Skipped {
        path: PackagePath::new("a"),
        name: None,
        version: None,
        reason: run::ALREADY_PUBLISHED.into(),
    };
    assert_eq!(skipped.reason, "already published");
    assert!(publish::DRY_RUN_PUBLISH.starts_with("dry run"));
}

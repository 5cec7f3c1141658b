//! Check runs: the client's create/complete against the fake GitHub, and the fake holding GitHub's
//! documented limits (App tokens only, 50 annotations per request, 65535-character summary, a
//! conclusion for a completed run).

use std::time::Duration;

use serde_json::json;
use upm_fake_github::state::App;
use upm_fake_github::{FakeGitHub, State};
use upm_github::auth::{AppCredentials, Installation};
use upm_github::checks::{Annotation, AnnotationLevel, Conclusion};
use upm_github::{ClientConfig, Credentials, Error, GitHub, Secret};

const KEY_PKCS1: &str = include_str!("keys/app-pkcs1.pem");
const KEY_PKCS8: &str = include_str!("keys/app-pkcs8.pem");
const PAT: &str = "ghp_personal_token_not_an_app";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn fake() -> FakeGitHub {
    let mut state = State {
        tokens: vec![PAT.into()],
        app: Some(App::new("4242", KEY_PKCS8, "studio", 77)),
        ..State::default()
    };
    state.add_repo("Studio/Core", "main");
    FakeGitHub::start(state).unwrap()
}

fn config(fake: &FakeGitHub) -> ClientConfig {
    ClientConfig {
        retry_backoff: Duration::from_millis(5),
        ..ClientConfig::new(fake.url())
    }
}

fn app(fake: &FakeGitHub) -> GitHub {
    let app = AppCredentials::new("4242", &Secret::new(KEY_PKCS1), Installation::Id(77)).unwrap();
    GitHub::new(config(fake), Credentials::App(Box::new(app))).unwrap()
}

fn annotations(n: usize) -> Vec<Annotation> {
    (0..n)
        .map(|i| Annotation {
            path: format!("Packages/a/Runtime/F{i}.cs"),
            start_line: 1,
            end_line: 1,
            annotation_level: AnnotationLevel::Failure,
            message: "has no .meta".into(),
            title: Some("missing .meta".into()),
        })
        .collect()
}

#[test]
fn a_check_run_is_started_then_completed_with_every_annotation_in_batches_of_fifty() {
    let fake = fake();
    let github = app(&fake);
    let run = github
        .start_check_run(
            "Studio/Core",
            "UPM publish preview",
            SHA,
            None,
            Some("pr-7"),
        )
        .unwrap();
    assert_eq!(run.status, "in_progress");
    let requests = github
        .complete_check_run(
            "Studio/Core",
            run.id,
            Conclusion::Failure,
            "1 package would fail",
            "| package | |\n|---|---|\n",
            &annotations(120),
        )
        .unwrap();
    assert_eq!(requests, 3, "120 annotations: 50 + 50 + 20");
    let listed = github
        .check_runs_for("Studio/Core", SHA, "UPM publish preview")
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "completed");
    assert_eq!(listed[0].conclusion, Some(Conclusion::Failure));
    let stored = fake.state().check_runs[0].clone();
    assert_eq!(stored.annotations.len(), 120, "appended across updates");
    assert_eq!(stored.writes, 4);
    assert_eq!(stored.external_id.as_deref(), Some("pr-7"));
}

#[test]
fn the_fake_holds_githubs_limits() {
    let fake = fake();
    let github = app(&fake);
    let run = github
        .start_check_run("Studio/Core", "UPM publish preview", SHA, None, None)
        .unwrap();
    let path = format!("/repos/Studio/Core/check-runs/{}", run.id);
    let refused = |body: serde_json::Value| match github.patch::<_, serde_json::Value>(&path, &body)
    {
        Err(Error::Status { status, .. }) => status,
        other => panic!("{body}: {other:?}"),
    };
    let output = |annotations: usize, summary: usize| {
        json!({"title": "t", "summary": "s".repeat(summary),
               "annotations": serde_json::to_value(annotations_of(annotations)).unwrap()})
    };
    fn annotations_of(n: usize) -> Vec<Annotation> {
        annotations(n)
    }
    assert_eq!(
        refused(json!({"conclusion": "success", "output": output(51, 10)})),
        422
    );
    assert_eq!(
        refused(json!({"conclusion": "success", "output": output(1, 65536)})),
        422
    );
    assert_eq!(
        refused(json!({"status": "completed"})),
        422,
        "no conclusion"
    );
    assert_eq!(refused(json!({"conclusion": "maybe"})), 422);
    // The limits themselves pass.
    github
        .patch::<_, serde_json::Value>(
            &path,
            &json!({"conclusion": "success", "output": output(50, 65535)}),
        )
        .unwrap();
    // Only an App writes checks: a personal token is refused, though it may read.
    let pat = GitHub::new(config(&fake), Credentials::Token(Secret::new(PAT))).unwrap();
    match pat.start_check_run("Studio/Core", "UPM publish preview", SHA, None, None) {
        Err(Error::Status { status: 403, .. }) => {}
        other => panic!("a personal token wrote a check run: {other:?}"),
    }
    assert_eq!(
        pat.check_runs_for("Studio/Core", SHA, "UPM publish preview")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn only_a_token_with_checks_write_writes_a_check_run() {
    let fake = fake();
    let narrowed = |spec: &str| {
        let app = AppCredentials::new("4242", &Secret::new(KEY_PKCS1), Installation::Id(77))
            .unwrap()
            .with_permissions(spec)
            .unwrap();
        GitHub::new(config(&fake), Credentials::App(Box::new(app))).unwrap()
    };
    // What preview.yml's token step asks for.
    let preview = narrowed("checks:write,contents:read");
    preview
        .start_check_run("Studio/Core", "UPM publish preview", SHA, None, None)
        .unwrap();
    // A token narrowed without it is the App's, yet refused, as GitHub refuses it.
    match narrowed("contents:read").start_check_run(
        "Studio/Core",
        "UPM publish preview",
        SHA,
        None,
        None,
    ) {
        Err(Error::Status { status: 403, .. }) => {}
        other => panic!("a token without checks:write wrote a check run: {other:?}"),
    }
    // Asked for nothing, a token has the installation's permissions.
    fake.state()
        .app
        .as_mut()
        .unwrap()
        .permissions
        .insert("checks".into(), "read".into());
    match app(&fake).start_check_run("Studio/Core", "UPM publish preview", SHA, None, None) {
        Err(Error::Status { status: 403, .. }) => {}
        other => panic!("an installation with checks:read wrote a check run: {other:?}"),
    }
    assert_eq!(fake.state().check_runs.len(), 1);
}

//! `upm deliveries --redeliver-failed --apply` when GitHub answers the redelivery with 422 ("Validation
//! failed, or the endpoint has been spammed"): deferred to the next run, not a permanent refusal.

use std::process::Command;

use upm_fake_github::state::Delivery;
use upm_fake_github::{FakeGitHub, Fault, State};
use upm_github::deliveries::format_rfc3339_utc;

const TOKEN: &str = "ghp_redelivery_test";

fn upm(fake: &FakeGitHub, dir: &std::path::Path) -> (i32, String) {
    let registry = dir.join("repositories.json");
    std::fs::write(
        &registry,
        r#"{"repositories": [{"url": "https://github.com/Studio/Game", "status": "active"}]}"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_upm"))
        .args(["deliveries", "--redeliver-failed", "--apply"])
        .current_dir(dir)
        .env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_APP_PRIVATE_KEY")
        .env("GITHUB_API", fake.url())
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_ORG", "Studio")
        .env("HOOK_ID", "42")
        .env("DISPATCH_REPO", "Studio/Central")
        .env("UPM_REGISTRY_FILE", &registry)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), stdout)
}

#[test]
fn a_spammed_redelivery_is_deferred_and_asked_again() {
    let mut state = State {
        tokens: vec![TOKEN.into()],
        ..State::default()
    };
    state.add_repo("Studio/Central", "main");
    let game = state.add_repo("Studio/Game", "main").id;
    state.hook_mut("Studio", 42).deliveries.push(Delivery {
        id: 7,
        guid: "lost".into(),
        delivered_at: format_rfc3339_utc(upm_github::client::now_unix() - 600),
        status: Delivery::status_text(502),
        status_code: 502,
        event: "push".into(),
        repository_id: Some(game),
        ..Delivery::default()
    });
    let fake = FakeGitHub::start(state).unwrap();
    fake.fault(Fault {
        method: Some("POST".into()),
        path_contains: Some("/attempts".into()),
        status: Some(422),
        message: Some("Validation failed, or the endpoint has been spammed.".into()),
        times: 1,
        ..Fault::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout) = upm(&fake, dir.path());
    assert_eq!(code, 0, "GitHub's \"later\" is not a failure of the run");
    assert!(stdout.contains("deferred"), "{stdout}");
    assert!(!stdout.contains("error:"), "{stdout}");
    assert!(fake.state().redeliveries.is_empty());
    // The next run asks again, and GitHub takes it.
    let (code, stdout) = upm(&fake, dir.path());
    assert_eq!(code, 0);
    assert!(stdout.contains("asked"), "{stdout}");
    assert_eq!(fake.state().redeliveries.len(), 1);
}

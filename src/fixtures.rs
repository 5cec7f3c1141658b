//! Test support: the real GitHub payloads in `tests/fixtures/github-webhooks/` and variants built from
//! them. Variants change the JSON tree of a real payload, so every other field stays as GitHub sends it.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::classify::PushEvent;

/// Where the real payloads are: `UPM_FIXTURES_DIR`, else the copy in `tests/fixtures/github-webhooks`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("UPM_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github-webhooks")
        })
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixtures are JSON")
}

pub fn push_event(name: &str) -> PushEvent {
    serde_json::from_slice(&fixture(name)).expect("fixture is a push")
}

/// The real new-branch push on `master` (the default branch), changed so its one commit modifies `files`.
pub fn push_json_touching(files: &[&str]) -> Value {
    let mut push = fixture_json("push/with-new-branch.payload.json");
    push["created"] = json!(false);
    push["commits"][0]["added"] = json!([]);
    push["commits"][0]["modified"] = json!(files);
    push["head_commit"]["modified"] = json!(files);
    push["head_commit"]["message"] = json!("feat: bump package version");
    push
}

pub fn push_touching(files: &[&str]) -> PushEvent {
    serde_json::from_value(push_json_touching(files)).expect("variant is a push")
}

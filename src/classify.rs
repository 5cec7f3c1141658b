//! classify: which GitHub event is this, and for a push, the few fields we read.
//!
//! This is the one place raw JSON becomes typed data; nothing downstream sees the payload. The structs
//! keep only the fields the stages read, so unrelated payload changes on GitHub's side cannot break us,
//! and `serde_path_to_error` names the JSON path when a field we do read has changed.

use serde::Deserialize;

use crate::read::truncate_for_message;
use crate::respond::Stop;

#[derive(Debug)]
pub enum Event {
    Ping,
    Push(PushEvent),
    /// Any other event the organization webhook sends (issues, releases, …): acknowledged, not acted on.
    Other(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    pub repository: PushRepository,
    /// GitHub lists at most 2048 commits here (the push event docs); see `filter` for what that means.
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    pub head_commit: Option<HeadCommit>,
    pub sender: Option<Account>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushRepository {
    pub full_name: String,
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HeadCommit {
    #[serde(default)]
    pub message: String,
    pub author: Option<Person>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    #[serde(default)]
    pub name: String,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub login: String,
}

/// Reads `X-GitHub-Event` and, for the events we act on, the payload.
pub fn classify(event_header: Option<&str>, payload: &[u8]) -> Result<Event, Stop> {
    let event = event_header
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Stop::bad_request("missing X-GitHub-Event header"))?;
    match event {
        // The ping payload carries nothing we need; it only has to be JSON.
        "ping" => parse::<serde::de::IgnoredAny>(payload).map(|_| Event::Ping),
        "push" => parse::<PushEvent>(payload).map(Event::Push),
        other => Ok(Event::Other(truncate_for_message(other))),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, Stop> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Stop::bad_request(format!("payload is not valid JSON: {inner}"))
        } else if path == "." {
            Stop::bad_request(format!("payload: {inner}"))
        } else {
            Stop::bad_request(format!("payload field {path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;

    #[test]
    fn every_real_push_payload_parses() {
        for name in [
            "push/payload.json",
            "push/1.payload.json",
            "push/with-installation.payload.json",
            "push/with-organization.payload.json",
            "push/with-new-branch.payload.json",
            "push/with-no-username-committer.payload.json",
        ] {
            let Event::Push(push) = classify(Some("push"), &fixture(name)).unwrap() else {
                panic!("{name} is a push");
            };
            assert_eq!(
                push.repository.full_name, "Codertocat/Hello-World",
                "{name}"
            );
            assert_eq!(push.repository.default_branch.as_deref(), Some("master"));
        }
    }

    #[test]
    fn new_branch_push_has_its_commit_and_files() {
        let Event::Push(push) =
            classify(Some("push"), &fixture("push/with-new-branch.payload.json")).unwrap()
        else {
            panic!("a push");
        };
        assert_eq!(push.git_ref, "refs/heads/master");
        assert!(!push.deleted);
        assert_eq!(push.commits.len(), 1);
        assert_eq!(push.commits[0].added, vec!["README.md".to_string()]);
        assert_eq!(push.head_commit.unwrap().message, "Initial commit");
        assert_eq!(push.sender.unwrap().login, "Codertocat");
    }

    #[test]
    fn tag_deletion_payload_has_no_head_commit() {
        let Event::Push(push) = classify(Some("push"), &fixture("push/payload.json")).unwrap()
        else {
            panic!("a push");
        };
        assert!(push.deleted);
        assert!(push.head_commit.is_none());
        assert!(push.commits.is_empty());
    }

    #[test]
    fn ping_and_other_events() {
        assert!(matches!(
            classify(Some("ping"), &fixture("ping/payload.json")),
            Ok(Event::Ping)
        ));
        for (event, file) in [
            ("issues", "issues/opened.payload.json"),
            ("release", "release/published.payload.json"),
            ("create", "create/payload.json"),
            ("workflow_run", "workflow_run/completed.payload.json"),
        ] {
            match classify(Some(event), &fixture(file)) {
                Ok(Event::Other(name)) => assert_eq!(name, event),
                other => panic!("{event}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_event_header_is_400() {
        for header in [None, Some(""), Some("  ")] {
            assert_eq!(classify(header, b"{}").unwrap_err().status, 400);
        }
    }

    #[test]
    fn malformed_payloads_name_what_is_wrong() {
        let err = classify(Some("push"), b"{not json").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.reason.starts_with("payload is not valid JSON"),
            "{}",
            err.reason
        );

        let err = classify(
            Some("push"),
            br#"{"ref": "refs/heads/main", "after": "abc", "repository": {"full_name": 42}}"#,
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.reason.contains("repository.full_name"),
            "{}",
            err.reason
        );

        let err = classify(Some("push"), br#"{"ref": "refs/heads/main"}"#).unwrap_err();
        assert!(err.reason.contains("after"), "{}", err.reason);

        assert_eq!(classify(Some("ping"), b"").unwrap_err().status, 400);
    }
}

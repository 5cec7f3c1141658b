//! classify: which GitHub event is this, and for a push, the few fields we read.
//!
//! This is the one place raw JSON becomes typed data; nothing downstream sees the payload. The structs
//! keep only the fields the stages read, so unrelated payload changes on GitHub's side cannot break us,
//! and `serde_path_to_error` names the JSON path when a field we do read has changed.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use crate::read::truncate_for_message;
use crate::respond::Stop;

#[derive(Debug)]
pub enum Event {
    Ping,
    Push(PushEvent),
    /// A pull request event: whether it previews is `preview`'s to decide.
    PullRequest(PullRequestEvent),
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

/// One commit's changed files, keeping only the paths a stage can act on (`JsonPaths`). `removed`
/// is kept because `filter` replays the commits in order: a package.json added and then removed
/// within one push is not published.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub added: JsonPaths,
    #[serde(default)]
    pub modified: JsonPaths,
    #[serde(default)]
    pub removed: JsonPaths,
}

/// The paths of a commit's file list whose name ends in `.json`: every `package.json`, and the registry
/// file (`REGISTRY_PATH` must end in `.json`, `config`). A 1 MB push lists tens of thousands of paths;
/// reading each into its own `String` was most of the worker's parse time, so the others are looked
/// at in place and dropped.
/// The second field counts every path GitHub listed, kept or not: a list at GitHub's cap may have lost
/// a `package.json` (src/filter.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPaths(pub Vec<String>, pub usize);

impl JsonPaths {
    /// How many paths GitHub listed (every one, not only the `.json` ones kept).
    pub fn listed(&self) -> usize {
        self.1
    }
}

impl std::ops::Deref for JsonPaths {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        &self.0
    }
}

impl From<Vec<String>> for JsonPaths {
    fn from(paths: Vec<String>) -> JsonPaths {
        let listed = paths.len();
        JsonPaths(paths, listed)
    }
}

/// Keeps a path only if it ends in `.json`; reads it in place (no allocation) otherwise.
struct KeptPath(Option<String>);

impl<'de> Deserialize<'de> for KeptPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathVisitor;
        impl Visitor<'_> for PathVisitor {
            type Value = KeptPath;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file path")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<KeptPath, E> {
                Ok(KeptPath(path.ends_with(".json").then(|| path.to_string())))
            }
        }
        deserializer.deserialize_str(PathVisitor)
    }
}

impl<'de> Deserialize<'de> for JsonPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = JsonPaths;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of file paths")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonPaths, A::Error> {
                let mut kept = Vec::new();
                let mut listed = 0;
                while let Some(KeptPath(path)) = seq.next_element()? {
                    listed += 1;
                    kept.extend(path);
                }
                Ok(JsonPaths(kept, listed))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

/// A `pull_request` delivery, keeping only what `preview` reads (GitHub's webhook payload for the
/// `pull_request` event: `action`, `number`, `pull_request.{draft, head, base}`, `repository`).
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub number: u64,
    pub pull_request: PullRequest,
    pub repository: PushRepository,
    pub sender: Option<Account>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    /// Absent in payloads older than draft pull requests: not a draft.
    #[serde(default)]
    pub draft: bool,
    pub head: PullBranch,
    pub base: PullBranch,
}

/// `pull_request.head` / `.base`: the branch, the commit, and the repository it lives in. `repo` is
/// `null` when a fork's repository was deleted (GitHub's schema marks it nullable).
#[derive(Debug, Clone, Deserialize)]
pub struct PullBranch {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub repo: Option<PullRepository>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRepository {
    pub full_name: String,
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
        // The ping payload carries nothing we need; it only has to be a JSON object.
        "ping" => parse::<IgnoredAny>(payload).map(|_| Event::Ping),
        "push" => parse::<PushEvent>(payload).map(Event::Push),
        "pull_request" => parse::<PullRequestEvent>(payload).map(Event::PullRequest),
        other => Ok(Event::Other(truncate_for_message(other))),
    }
}

/// Parses a payload strictly: all of it valid UTF-8 (serde_json does not look inside strings it skips,
/// so a field we never read could otherwise carry bytes that are not text), one JSON object (serde
/// reads a struct from an array too), nothing after it. The fast parse runs first; only a payload it
/// refuses is parsed again with `serde_path_to_error`, to name the JSON path in the reason.
fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, Stop> {
    let text = std::str::from_utf8(payload).map_err(|err| {
        Stop::bad_request(format!(
            "payload is not valid UTF-8 (at byte {})",
            err.valid_up_to()
        ))
    })?;
    match text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .as_bytes()
        .first()
    {
        Some(b'{') => {}
        None => return Err(Stop::bad_request("payload is empty")),
        Some(_) => return Err(Stop::bad_request("payload is not a JSON object")),
    }
    serde_json::from_str(text).map_err(|_| explain::<T>(text))
}

/// The slow path: why a payload was refused, with the JSON path of the field.
fn explain<T: for<'de> Deserialize<'de>>(text: &str) -> Stop {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let (path, inner) = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(err) => (err.path().to_string(), err.into_inner()),
        Ok(_) => {
            return match deserializer.end() {
                Err(inner) => {
                    Stop::bad_request(format!("payload has data after its JSON object: {inner}"))
                }
                // Not reached: the fast parse refused the same text.
                Ok(()) => Stop::bad_request("payload is not valid JSON"),
            };
        }
    };
    if inner.is_syntax() || inner.is_eof() {
        Stop::bad_request(format!("payload is not valid JSON: {inner}"))
    } else if path == "." {
        Stop::bad_request(format!("payload: {inner}"))
    } else {
        Stop::bad_request(format!("payload field {path}: {inner}"))
    }
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
        assert!(
            push.commits[0].added.is_empty(),
            "README.md is not a path any stage acts on"
        );
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
    fn every_real_pull_request_payload_parses() {
        for (name, action, draft) in [
            ("pull_request/opened.payload.json", "opened", false),
            (
                "pull_request/synchronize.payload.json",
                "synchronize",
                false,
            ),
            ("pull_request/reopened.payload.json", "reopened", false),
            (
                "pull_request/ready_for_review.payload.json",
                "ready_for_review",
                false,
            ),
            ("pull_request/closed.payload.json", "closed", false),
            ("pull_request/labeled.payload.json", "labeled", false),
            (
                "pull_request/converted_to_draft.payload.json",
                "converted_to_draft",
                true,
            ),
        ] {
            let Event::PullRequest(pr) = classify(Some("pull_request"), &fixture(name)).unwrap()
            else {
                panic!("{name} is a pull request");
            };
            assert_eq!(pr.action, action, "{name}");
            assert_eq!(pr.number, 2, "{name}");
            assert_eq!(pr.pull_request.draft, draft, "{name}");
            assert_eq!(pr.repository.full_name, "Codertocat/Hello-World");
            assert_eq!(pr.pull_request.base.git_ref, "master");
            assert_eq!(
                pr.pull_request.head.sha,
                "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
            );
            assert_eq!(
                pr.pull_request.base.sha,
                "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
            );
            assert_eq!(
                pr.pull_request.head.repo.unwrap().full_name,
                "Codertocat/Hello-World"
            );
        }
    }

    #[test]
    fn a_pull_request_whose_fork_was_deleted_still_parses() {
        let mut pr = crate::fixtures::fixture_json("pull_request/opened.payload.json");
        pr["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        pr["pull_request"].as_object_mut().unwrap().remove("draft");
        let Event::PullRequest(pr) =
            classify(Some("pull_request"), pr.to_string().as_bytes()).unwrap()
        else {
            panic!("a pull request");
        };
        assert!(pr.pull_request.head.repo.is_none());
        assert!(!pr.pull_request.draft);
        let stop = classify(
            Some("pull_request"),
            br#"{"action": "opened", "number": "2"}"#,
        )
        .unwrap_err();
        assert_eq!(stop.status, 400);
        assert!(stop.reason.contains("number"), "{}", stop.reason);
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

    /// Found by fuzzing (fuzz/fuzz_targets/classify.rs): a number GitHub never sends, in a field no
    /// stage reads, is skipped without being evaluated; the push is still read. Refusing it would need
    /// every skipped number parsed, for nothing the worker uses.
    #[test]
    fn numbers_in_skipped_fields_are_not_evaluated() {
        let push = String::from_utf8(fixture("push/with-new-branch.payload.json")).unwrap();
        let at = push.find("\"id\": ").unwrap();
        let end = at + push[at..].find(',').unwrap();
        let huge = format!("{}\"id\": 18E853002{}", &push[..at], &push[end..]);
        assert!(serde_json::from_str::<serde_json::Value>(&huge).is_err());
        let Event::Push(parsed) = classify(Some("push"), huge.as_bytes()).unwrap() else {
            panic!("a push")
        };
        assert_eq!(parsed.repository.full_name, "Codertocat/Hello-World");
    }

    #[test]
    fn only_json_paths_are_kept() {
        let payload = br#"{"ref": "refs/heads/main", "after": "abc", "repository": {"full_name": "a/b"},
            "commits": [{"added": ["README.md", "Packages/a/package.json", "config/repositories.json"],
                         "modified": ["x.cs", "esc\u0061ped/package.json"], "removed": ["old/package.json"]}]}"#;
        let Event::Push(push) = classify(Some("push"), payload).unwrap() else {
            panic!("a push")
        };
        let commit = &push.commits[0];
        assert_eq!(
            commit.added.0,
            vec!["Packages/a/package.json", "config/repositories.json"]
        );
        assert_eq!(commit.modified.0, vec!["escaped/package.json"]);
        assert_eq!(commit.removed.0, vec!["old/package.json"]);
    }

    #[test]
    fn strict_json_hostile_shapes_are_400() {
        let push = String::from_utf8(fixture("push/with-new-branch.payload.json")).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // serde reads a struct from a sequence of its fields: an array must not pass as a push.
            (
                br#"["refs/heads/master", "abc", false, {"full_name": "a/b"}]"#.to_vec(),
                "not a JSON object",
            ),
            (
                format!("{push}\n<<<<<<< HEAD").into_bytes(),
                "after its JSON object",
            ),
            (
                format!("{push}{push}").into_bytes(),
                "after its JSON object",
            ),
            (b"   ".to_vec(), "empty"),
            (b"null".to_vec(), "not a JSON object"),
        ];
        for (payload, expected) in cases {
            let stop = classify(Some("push"), &payload).unwrap_err();
            assert_eq!(stop.status, 400);
            assert!(stop.reason.contains(expected), "{}", stop.reason);
        }
        // Invalid UTF-8 in a field no stage reads (`compare`), in a push and in a ping.
        let mut invalid = push.clone().into_bytes();
        let at = push.find("\"compare\": \"").unwrap() + 12;
        invalid[at] = 0xFF;
        let stop = classify(Some("push"), &invalid).unwrap_err();
        assert!(stop.reason.contains("not valid UTF-8"), "{}", stop.reason);
        assert_eq!(classify(Some("ping"), &invalid).unwrap_err().status, 400);
    }
}

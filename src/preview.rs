//! preview: does this pull request get a publish preview?
//!
//! A pull request into a repository's publishing branch is previewed: the central workflow runs
//! `upm-publisher preview` on its head and answers with a check run saying what the merge will publish.
//! Like `filter`, split in two so the registry is consulted only for a pull request that could preview:
//! `candidate` needs only the payload, `on_base` the registry's branch override.
//!
//! **Where the changed files are judged: in the workflow, not here.** Whether the pull request touches
//! a package needs two things the payload lacks: its changed files (the pull request files API, 30 per
//! page by default and 100 at most, listing at most 3000 files: up to 30 requests) and where the UPM
//! packages of the repository are (a `package.json` can sit anywhere, so any changed file may belong to
//! one: a recursive tree read and a blob per manifest). That is a dozen or more GitHub requests inside
//! the delivery's 8 s deadline (`deadline`), and a 3000-file pull request still could not be judged. In
//! the workflow, the checkout already holds both commits: `git diff` lists every changed file for free,
//! with no cap. The price is a workflow run for a pull request of a registered repository that touches no
//! package; it answers `neutral` within seconds, which a branch protection rule requiring the check needs
//! anyway (a required check that never reports blocks the merge).

use crate::classify::PullRequestEvent;
use crate::model::RepoName;
use crate::read::truncate_for_message;
use crate::respond::Stop;

/// The actions that put a new head (or a newly reviewable one) in front of reviewers (GitHub's
/// `pull_request` webhook: `opened`, `synchronize` = new commits pushed, `reopened`, `ready_for_review`
/// = a draft marked ready). The others (`closed`, `labeled`, `edited`, `converted_to_draft`, …) change
/// nothing a preview reads.
pub const PREVIEW_ACTIONS: [&str; 4] = ["opened", "synchronize", "reopened", "ready_for_review"];

const MAX_BRANCH_BYTES: usize = 255;

/// A pull request that may preview, pending the registry and base-branch checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub repository: RepoName,
    pub number: u64,
    pub base_branch: String,
    pub default_branch: Option<String>,
    pub head_sha: String,
    pub base_sha: String,
    pub fork: bool,
}

/// A pull request that previews: a `package_preview` dispatch will be sent for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub repository: RepoName,
    pub number: u64,
    pub base_branch: String,
    pub head_sha: String,
    pub base_sha: String,
    /// The head lives in another repository (a fork, or a fork since deleted): its code is untrusted,
    /// and GitHub gives a fork's pull request no secrets. The workflow reads it only as data.
    pub fork: bool,
}

fn is_commit_sha(sha: &str) -> bool {
    // 40 hex digits (SHA-1), or 64 in a SHA-256 repository.
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The checks that need only the payload: a previewing action, not a draft, well-formed shas.
pub fn candidate(event: &PullRequestEvent) -> Result<Candidate, Stop> {
    let repository = RepoName::parse(&event.repository.full_name).ok_or_else(|| {
        Stop::bad_request("payload field repository.full_name is not an owner/name")
    })?;
    let number = event.number;
    if !PREVIEW_ACTIONS.contains(&event.action.as_str()) {
        return Err(Stop::ignored(format!(
            "pull request #{number} {}: only {} preview",
            truncate_for_message(&event.action),
            PREVIEW_ACTIONS.join(", ")
        )));
    }
    let pr = &event.pull_request;
    // A draft says "not ready": its preview waits for `ready_for_review`, which GitHub sends when the
    // draft is marked ready (and which is previewed like a new head).
    if pr.draft {
        return Err(Stop::ignored(format!(
            "pull request #{number} is a draft: previewed once it is marked ready for review"
        )));
    }
    if !is_commit_sha(&pr.head.sha) {
        return Err(Stop::bad_request(
            "payload field pull_request.head.sha is not a commit sha",
        ));
    }
    if !is_commit_sha(&pr.base.sha) {
        return Err(Stop::bad_request(
            "payload field pull_request.base.sha is not a commit sha",
        ));
    }
    let base_branch = pr.base.git_ref.as_str();
    if base_branch.is_empty() || base_branch.len() > MAX_BRANCH_BYTES {
        return Err(Stop::bad_request(
            "payload field pull_request.base.ref is not a branch name",
        ));
    }
    // A head whose repository is gone (a deleted fork: `repo` is null) is a fork too.
    let fork = match &pr.head.repo {
        Some(head) => !head
            .full_name
            .eq_ignore_ascii_case(&event.repository.full_name),
        None => true,
    };
    Ok(Candidate {
        repository,
        number,
        base_branch: base_branch.to_string(),
        default_branch: event
            .repository
            .default_branch
            .clone()
            .filter(|b| !b.is_empty()),
        head_sha: pr.head.sha.to_ascii_lowercase(),
        base_sha: pr.base.sha.to_ascii_lowercase(),
        fork,
    })
}

/// The base check: the pull request must merge into the branch its repository publishes from (the
/// registry's override, else the default branch), as a push must be to it.
pub fn on_base(candidate: Candidate, branch_override: Option<&str>) -> Result<Preview, Stop> {
    let Some(publishing_branch) = branch_override.or(candidate.default_branch.as_deref()) else {
        return Err(Stop::ignored(
            "the payload names no default branch and the registry sets none",
        ));
    };
    if candidate.base_branch != publishing_branch {
        return Err(Stop::ignored(format!(
            "pull request #{} into {}, but {} publishes from {publishing_branch}",
            candidate.number,
            truncate_for_message(&candidate.base_branch),
            candidate.repository
        )));
    }
    Ok(Preview {
        repository: candidate.repository,
        number: candidate.number,
        base_branch: candidate.base_branch,
        head_sha: candidate.head_sha,
        base_sha: candidate.base_sha,
        fork: candidate.fork,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{classify, Event};
    use crate::fixtures::fixture_json;
    use serde_json::{json, Value};

    fn event(value: &Value) -> PullRequestEvent {
        match classify(Some("pull_request"), value.to_string().as_bytes()).unwrap() {
            Event::PullRequest(pr) => pr,
            other => panic!("{other:?}"),
        }
    }

    fn real(name: &str) -> PullRequestEvent {
        event(&fixture_json(&format!("pull_request/{name}.payload.json")))
    }

    #[test]
    fn the_previewing_actions_of_real_payloads_preview() {
        for name in ["opened", "synchronize", "reopened", "ready_for_review"] {
            let candidate = candidate(&real(name)).unwrap();
            let preview = on_base(candidate, None).unwrap();
            assert_eq!(preview.repository.as_str(), "Codertocat/Hello-World");
            assert_eq!(preview.number, 2);
            assert_eq!(preview.base_branch, "master");
            assert_eq!(preview.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
            assert_eq!(preview.base_sha, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
            assert!(!preview.fork, "{name}: head and base are one repository");
        }
    }

    #[test]
    fn other_actions_are_ignored_with_the_action_named() {
        for name in ["closed", "labeled", "converted_to_draft"] {
            let stop = candidate(&real(name)).unwrap_err();
            assert_eq!(stop.status, 200, "{name}");
            assert_eq!(
                stop.reason,
                format!(
                    "pull request #2 {name}: only opened, synchronize, reopened, ready_for_review preview"
                )
            );
        }
    }

    #[test]
    fn a_draft_is_skipped_until_it_is_ready() {
        let mut opened = fixture_json("pull_request/opened.payload.json");
        opened["pull_request"]["draft"] = json!(true);
        let stop = candidate(&event(&opened)).unwrap_err();
        assert_eq!(
            (stop.status, stop.reason.as_str()),
            (
                200,
                "pull request #2 is a draft: previewed once it is marked ready for review"
            )
        );
        // A push to the draft (synchronize) waits too; marking it ready previews.
        opened["action"] = json!("synchronize");
        assert!(candidate(&event(&opened)).is_err());
        let ready = real("ready_for_review");
        assert!(!ready.pull_request.draft);
        assert!(candidate(&ready).is_ok());
    }

    #[test]
    fn the_base_must_be_the_publishing_branch() {
        let mut other = fixture_json("pull_request/opened.payload.json");
        other["pull_request"]["base"]["ref"] = json!("develop");
        let stop = on_base(candidate(&event(&other)).unwrap(), None).unwrap_err();
        assert_eq!(
            (stop.status, stop.reason.as_str()),
            (
                200,
                "pull request #2 into develop, but Codertocat/Hello-World publishes from master"
            )
        );
        // The registry's override wins over the default branch, both ways.
        assert!(on_base(candidate(&event(&other)).unwrap(), Some("develop")).is_ok());
        let stop = on_base(candidate(&real("opened")).unwrap(), Some("release")).unwrap_err();
        assert!(
            stop.reason.ends_with("publishes from release"),
            "{}",
            stop.reason
        );
        // No default branch and no override: nothing to compare with.
        let mut bare = fixture_json("pull_request/opened.payload.json");
        bare["repository"]["default_branch"] = json!("");
        let stop = on_base(candidate(&event(&bare)).unwrap(), None).unwrap_err();
        assert_eq!(stop.status, 200);
        assert!(stop.reason.contains("no default branch"), "{}", stop.reason);
    }

    #[test]
    fn a_head_in_another_repository_is_a_fork() {
        let mut fork = fixture_json("pull_request/opened.payload.json");
        fork["pull_request"]["head"]["repo"]["full_name"] = json!("Someone/Hello-World");
        assert!(candidate(&event(&fork)).unwrap().fork);
        fork["pull_request"]["head"]["repo"] = Value::Null;
        assert!(candidate(&event(&fork)).unwrap().fork, "a deleted fork");
        // GitHub compares names case-insensitively.
        let mut same = fixture_json("pull_request/opened.payload.json");
        same["pull_request"]["head"]["repo"]["full_name"] = json!("codertocat/hello-world");
        assert!(!candidate(&event(&same)).unwrap().fork);
    }

    #[test]
    fn malformed_shas_and_branches_are_400() {
        for (pointer, value, field) in [
            (
                "/pull_request/head/sha",
                json!("abc"),
                "pull_request.head.sha",
            ),
            (
                "/pull_request/base/sha",
                json!("z".repeat(40)),
                "pull_request.base.sha",
            ),
            ("/pull_request/base/ref", json!(""), "pull_request.base.ref"),
            (
                "/pull_request/base/ref",
                json!("b".repeat(256)),
                "pull_request.base.ref",
            ),
            (
                "/repository/full_name",
                json!("no-slash"),
                "repository.full_name",
            ),
        ] {
            let mut pr = fixture_json("pull_request/opened.payload.json");
            *pr.pointer_mut(pointer).unwrap() = value;
            let stop = candidate(&event(&pr)).unwrap_err();
            assert_eq!(stop.status, 400, "{pointer}");
            assert!(stop.reason.contains(field), "{pointer}: {}", stop.reason);
        }
    }

    #[test]
    fn shas_are_lower_cased_for_the_dedup_key_and_the_checkout() {
        let mut pr = fixture_json("pull_request/opened.payload.json");
        pr["pull_request"]["head"]["sha"] = json!("EC26C3E57CA3A959CA5AAD62DE7213C562F8C821");
        let c = candidate(&event(&pr)).unwrap();
        assert_eq!(c.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    }
}

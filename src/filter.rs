//! filter: does this push publish anything?
//!
//! Split in two so the registry (which may cost a KV read or a GitHub request) is consulted only for
//! pushes that could publish: `candidate` runs the checks that need nothing but the payload, `on_branch`
//! the branch check, which needs the registry's per-repository override.

use std::collections::HashMap;

use crate::classify::PushEvent;
use crate::model::RepoName;
use crate::respond::Stop;

/// GitHub lists at most this many commits in a push payload; a push with more may have touched a
/// package.json we cannot see (GitHub's push event documentation).
pub const GITHUB_COMMIT_LIST_CAP: usize = 2048;

/// GitHub lists at most this many changed files per commit in a push payload (push event schema,
/// `commits[].added`: "A maximum of 3000 changed files will be reported per commit."). A commit listing
/// that many may have changed a package.json that fell off its lists.
pub const GITHUB_FILE_LIST_CAP: usize = 3000;

const MAX_BRANCH_BYTES: usize = 255;

/// Directories whose package.json files are never UPM packages of the repository (Unity's generated
/// folders and vendored npm dependencies). The publisher skips the same ones.
const IGNORED_DIRS: [&str; 4] = ["node_modules", "Library", "Temp", ".git"];

/// Commit-message markers that GitHub itself honours to skip workflows; the publisher's own commits
/// carry one, so they can never trigger another publish (a loop guard).
const SKIP_MARKERS: [&str; 6] = [
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip actions]",
    "[actions skip]",
    "[skip publish]",
];

/// What the loop guard needs to know beyond the payload.
#[derive(Debug, Clone, Default)]
pub struct LoopGuard {
    /// Logins whose pushes never publish (the publisher's bot account), lower-cased.
    pub ignored_senders: Vec<String>,
}

impl LoopGuard {
    pub fn parse(ignored_senders: &str) -> LoopGuard {
        LoopGuard {
            ignored_senders: ignored_senders
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// A push that may publish, pending the registry and branch checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub repository: RepoName,
    /// The branch name (the ref without `refs/heads/`).
    pub branch: String,
    pub default_branch: Option<String>,
    pub commit_sha: String,
    pub packages: ChangedPackages,
}

/// Which package directories the push touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedPackages {
    /// Directories of the changed package.json files, relative to the repository root (`.` for the root),
    /// in first-seen order.
    Paths(Vec<String>),
    /// GitHub truncated the commit list: we cannot know every changed file, so the publisher scans the
    /// whole repository (it skips versions already published, so scanning costs little and loses nothing).
    Unknown,
}

/// A push that publishes: a dispatch will be sent for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub repository: RepoName,
    pub branch: String,
    pub commit_sha: String,
    pub packages: ChangedPackages,
}

/// The checks that need only the payload: not a tag, not a deletion, not our own commit, and some
/// package.json added or modified.
pub fn candidate(push: &PushEvent, guard: &LoopGuard) -> Result<Candidate, Stop> {
    let repository = RepoName::parse(&push.repository.full_name).ok_or_else(|| {
        Stop::bad_request("payload field repository.full_name is not an owner/name")
    })?;
    if let Some(tag) = push.git_ref.strip_prefix("refs/tags/") {
        return Err(Stop::ignored(format!(
            "tag push ({tag}): only branch pushes publish"
        )));
    }
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Err(Stop::ignored(format!(
            "ref {} is not a branch",
            crate::read::truncate_for_message(&push.git_ref)
        )));
    };
    // Git refuses an empty branch name, so GitHub never sends one: the payload is malformed. GitHub
    // caps ref names at 255 bytes; a longer one would only bloat the dispatch.
    if branch.is_empty() {
        return Err(Stop::bad_request("payload field ref names no branch"));
    }
    if branch.len() > MAX_BRANCH_BYTES {
        return Err(Stop::bad_request(format!(
            "payload field ref is longer than {MAX_BRANCH_BYTES} bytes"
        )));
    }
    // A commit id: 40 hex digits (SHA-1), or 64 in a SHA-256 repository.
    if !matches!(push.after.len(), 40 | 64) || !push.after.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Stop::bad_request("payload field after is not a commit sha"));
    }
    if push.deleted {
        return Err(Stop::ignored(format!("branch {branch} was deleted")));
    }
    if let Some(login) = push.sender.as_ref().map(|s| s.login.to_ascii_lowercase()) {
        if guard.ignored_senders.contains(&login) {
            return Err(Stop::ignored(format!(
                "pushed by {login}, the publisher's own account (loop guard)"
            )));
        }
    }
    if let Some(marker) = push
        .head_commit
        .as_ref()
        .and_then(|c| skip_marker(&c.message))
    {
        return Err(Stop::ignored(format!(
            "head commit message contains {marker} (loop guard)"
        )));
    }
    let packages = changed_packages(push);
    if packages == ChangedPackages::Paths(Vec::new()) {
        return Err(Stop::ignored("no package.json added or modified"));
    }
    Ok(Candidate {
        repository,
        branch: branch.to_string(),
        // An empty default branch is no default branch (it would match nothing real).
        default_branch: push
            .repository
            .default_branch
            .clone()
            .filter(|b| !b.is_empty()),
        commit_sha: push.after.clone(),
        packages,
    })
}

/// The branch check: the registry's override if the entry has one, else the repository's default branch.
pub fn on_branch(candidate: Candidate, branch_override: Option<&str>) -> Result<Publish, Stop> {
    let Some(publishing_branch) = branch_override.or(candidate.default_branch.as_deref()) else {
        return Err(Stop::ignored(
            "the payload names no default branch and the registry sets none",
        ));
    };
    if candidate.branch != publishing_branch {
        return Err(Stop::ignored(format!(
            "push to {}, but {} publishes from {publishing_branch}",
            candidate.branch, candidate.repository
        )));
    }
    Ok(Publish {
        repository: candidate.repository,
        branch: candidate.branch,
        commit_sha: candidate.commit_sha,
        packages: candidate.packages,
    })
}

fn skip_marker(message: &str) -> Option<&'static str> {
    let lower = message.to_ascii_lowercase();
    SKIP_MARKERS
        .into_iter()
        .find(|marker| lower.contains(marker))
}

/// Walks the commits in order, so a package.json added and later removed within one push is not
/// published, and one removed and re-added is. Linear in the number of paths: a directory's position
/// is found through a map, not by scanning the list (a hostile push may list 100,000 of them).
pub fn changed_packages(push: &PushEvent) -> ChangedPackages {
    if push.commits.len() >= GITHUB_COMMIT_LIST_CAP {
        return ChangedPackages::Unknown;
    }
    let at_file_cap = |c: &crate::classify::PushCommit| {
        c.added.listed() + c.modified.listed() + c.removed.listed() >= GITHUB_FILE_LIST_CAP
    };
    if push.commits.iter().any(at_file_cap) {
        return ChangedPackages::Unknown;
    }
    // First-seen order; a removed directory leaves a hole rather than shifting the rest.
    let mut order: Vec<Option<&str>> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for commit in &push.commits {
        for path in commit.added.iter().chain(commit.modified.iter()) {
            if let Some(dir) = package_dir(path) {
                position.entry(dir).or_insert_with(|| {
                    order.push(Some(dir));
                    order.len() - 1
                });
            }
        }
        for path in commit.removed.iter() {
            if let Some(index) = package_dir(path).and_then(|dir| position.remove(dir)) {
                order[index] = None;
            }
        }
    }
    ChangedPackages::Paths(order.into_iter().flatten().map(str::to_string).collect())
}

/// The directory of a UPM manifest, `.` for the repository root: the basename must be exactly
/// `package.json` (not `my-package.json`, not `Package.json`: Unity only reads the exact name). A path
/// that does not stay inside the repository (`..`, `.`, empty segments, a leading `/`, a backslash) is
/// not one GitHub lists; it names no package and is skipped.
fn package_dir(path: &str) -> Option<&str> {
    let (dir, file) = match path.rsplit_once('/') {
        Some((dir, file)) => (dir, file),
        None => ("", path),
    };
    if file != "package.json" || path.contains('\\') {
        return None;
    }
    if dir.is_empty() {
        return (!path.starts_with('/')).then_some(".");
    }
    let clean = dir.split('/').all(|segment| {
        !segment.is_empty() && segment != "." && segment != ".." && !IGNORED_DIRS.contains(&segment)
    });
    clean.then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Account, HeadCommit, PushCommit};
    use crate::fixtures::{push_event, push_touching};

    fn paths(dirs: &[&str]) -> ChangedPackages {
        ChangedPackages::Paths(dirs.iter().map(|d| d.to_string()).collect())
    }

    fn commit(added: &[&str], modified: &[&str], removed: &[&str]) -> PushCommit {
        let own = |list: &[&str]| {
            list.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into()
        };
        PushCommit {
            added: own(added),
            modified: own(modified),
            removed: own(removed),
        }
    }

    #[test]
    fn a_package_json_push_on_the_default_branch_publishes() {
        let push = push_touching(&["Packages/com.studio.core/package.json"]);
        let candidate = candidate(&push, &LoopGuard::default()).unwrap();
        assert_eq!(candidate.packages, paths(&["Packages/com.studio.core"]));
        let publish = on_branch(candidate, None).unwrap();
        assert_eq!(publish.repository.as_str(), "Codertocat/Hello-World");
        assert_eq!(publish.branch, "master");
        assert_eq!(publish.commit_sha, push.after);
    }

    #[test]
    fn real_payloads_without_package_json_are_ignored() {
        for name in [
            "push/with-new-branch.payload.json",
            "push/with-no-username-committer.payload.json",
        ] {
            let push = push_event(name);
            let stop = candidate(&push, &LoopGuard::default()).unwrap_err();
            assert_eq!(
                (stop.status, stop.reason.as_str()),
                (200, "no package.json added or modified")
            );
        }
    }

    #[test]
    fn real_tag_deletion_is_ignored_as_a_tag() {
        let stop = candidate(&push_event("push/payload.json"), &LoopGuard::default()).unwrap_err();
        assert_eq!(stop.status, 200);
        assert!(
            stop.reason.starts_with("tag push (simple-tag)"),
            "{}",
            stop.reason
        );
    }

    #[test]
    fn only_the_exact_basename_counts() {
        let mut push = push_touching(&[]);
        push.commits = vec![commit(
            &[
                "my-package.json",
                "Packages/a/Package.json",
                "package.json.meta",
                "docs/package.jsonc",
            ],
            &["Packages/b/package.json5"],
            &[],
        )];
        assert_eq!(changed_packages(&push), paths(&[]));
        assert!(candidate(&push, &LoopGuard::default()).is_err());
    }

    #[test]
    fn removed_only_does_not_publish() {
        let mut push = push_touching(&[]);
        push.commits = vec![commit(&[], &[], &["Packages/a/package.json"])];
        let stop = candidate(&push, &LoopGuard::default()).unwrap_err();
        assert_eq!(stop.reason, "no package.json added or modified");
    }

    #[test]
    fn commits_are_replayed_in_order() {
        let mut push = push_touching(&[]);
        push.commits = vec![
            commit(&["Packages/a/package.json", "package.json"], &[], &[]),
            commit(
                &[],
                &["Packages/b/package.json", "Packages/a/package.json"],
                &[],
            ),
            commit(&[], &[], &["Packages/a/package.json"]),
            commit(
                &["Packages/c/package.json"],
                &["Packages/b/package.json"],
                &[],
            ),
        ];
        assert_eq!(
            changed_packages(&push),
            paths(&[".", "Packages/b", "Packages/c"])
        );
    }

    #[test]
    fn generated_and_vendored_folders_are_skipped() {
        let mut push = push_touching(&[]);
        push.commits = vec![commit(
            &[
                "Packages/a/node_modules/left-pad/package.json",
                "Library/PackageCache/x/package.json",
            ],
            &["Temp/y/package.json", "Packages/LibraryTools/package.json"],
            &[],
        )];
        assert_eq!(changed_packages(&push), paths(&["Packages/LibraryTools"]));
    }

    #[test]
    fn a_truncated_commit_list_scans_everything() {
        let mut push = push_touching(&[]);
        push.commits = vec![commit(&[], &["README.md"], &[]); GITHUB_COMMIT_LIST_CAP];
        assert_eq!(changed_packages(&push), ChangedPackages::Unknown);
        assert!(candidate(&push, &LoopGuard::default()).is_ok());
    }

    #[test]
    fn a_commit_at_githubs_file_list_cap_scans_everything() {
        // Parsed as the worker parses it: only `.json` paths are kept, but every listed path counts.
        let listing = |n: usize| {
            let files: Vec<String> = (0..n).map(|i| format!("\"Assets/f{i}.cs\"")).collect();
            format!(
                r#"{{"added": [{}], "modified": [], "removed": []}}"#,
                files.join(",")
            )
        };
        let mut push = push_touching(&[]);
        push.commits = vec![serde_json::from_str(&listing(GITHUB_FILE_LIST_CAP)).unwrap()];
        assert_eq!(push.commits[0].added.len(), 0, "no path kept");
        assert_eq!(changed_packages(&push), ChangedPackages::Unknown);
        assert!(candidate(&push, &LoopGuard::default()).is_ok());
        // Spread over the three lists, it is the same cap.
        let third = GITHUB_FILE_LIST_CAP / 3;
        let spread: Vec<String> = (0..third).map(|i| format!("f{i}.cs")).collect();
        push.commits = vec![commit(
            &spread.iter().map(String::as_str).collect::<Vec<_>>(),
            &spread.iter().map(String::as_str).collect::<Vec<_>>(),
            &spread.iter().map(String::as_str).collect::<Vec<_>>(),
        )];
        assert_eq!(changed_packages(&push), ChangedPackages::Unknown);
        // One file fewer is a complete listing: nothing to publish.
        push.commits = vec![serde_json::from_str(&listing(GITHUB_FILE_LIST_CAP - 1)).unwrap()];
        assert_eq!(changed_packages(&push), paths(&[]));
        assert!(candidate(&push, &LoopGuard::default()).is_err());
    }

    #[test]
    fn deleted_branch_is_ignored() {
        let mut push = push_touching(&["package.json"]);
        push.deleted = true;
        let stop = candidate(&push, &LoopGuard::default()).unwrap_err();
        assert_eq!(stop.reason, "branch master was deleted");
    }

    #[test]
    fn other_refs_are_ignored() {
        let mut push = push_touching(&["package.json"]);
        push.git_ref = "refs/tags/v1.0.0".into();
        assert!(candidate(&push, &LoopGuard::default())
            .unwrap_err()
            .reason
            .starts_with("tag push (v1.0.0)"));
        push.git_ref = "refs/notes/commits".into();
        assert!(candidate(&push, &LoopGuard::default())
            .unwrap_err()
            .reason
            .contains("not a branch"));
    }

    #[test]
    fn other_branch_is_ignored_unless_the_registry_says_so() {
        let mut push = push_touching(&["package.json"]);
        push.git_ref = "refs/heads/develop".into();
        let found = candidate(&push, &LoopGuard::default()).unwrap();
        let stop = on_branch(found.clone(), None).unwrap_err();
        assert_eq!(
            stop.reason,
            "push to develop, but Codertocat/Hello-World publishes from master"
        );
        assert!(on_branch(found.clone(), Some("develop")).is_ok());
        // An override also stops the default branch from publishing.
        push.git_ref = "refs/heads/master".into();
        let found = candidate(&push, &LoopGuard::default()).unwrap();
        assert!(on_branch(found, Some("release")).is_err());
    }

    #[test]
    fn branch_names_with_slashes() {
        let mut push = push_touching(&["package.json"]);
        push.git_ref = "refs/heads/release/2026".into();
        let found = candidate(&push, &LoopGuard::default()).unwrap();
        assert_eq!(
            on_branch(found, Some("release/2026")).unwrap().branch,
            "release/2026"
        );
    }

    #[test]
    fn loop_guard_skips_the_publishers_own_commits() {
        let mut push = push_touching(&["package.json"]);
        push.head_commit = Some(HeadCommit {
            message: "chore: update CHANGELOG [Skip CI]".into(),
            author: None,
        });
        let stop = candidate(&push, &LoopGuard::default()).unwrap_err();
        assert_eq!(
            stop.reason,
            "head commit message contains [skip ci] (loop guard)"
        );

        let mut push = push_touching(&["package.json"]);
        push.sender = Some(Account {
            login: "UPM-Publisher[bot]".into(),
        });
        let guard = LoopGuard::parse("someone, upm-publisher[bot] ,");
        assert_eq!(guard.ignored_senders.len(), 2);
        assert!(candidate(&push, &guard)
            .unwrap_err()
            .reason
            .contains("loop guard"));
        assert!(candidate(&push, &LoopGuard::default()).is_ok());
    }

    #[test]
    fn paths_outside_the_repository_name_no_package() {
        let mut push = push_touching(&[]);
        push.commits = vec![commit(
            &[
                "../../package.json",
                "Packages/../package.json",
                "./package.json",
                "/package.json",
                "Packages//a/package.json",
                "Packages\\b\\package.json",
                "Packages/ok/package.json",
            ],
            &[],
            &[],
        )];
        assert_eq!(changed_packages(&push), paths(&["Packages/ok"]));
        push.commits = vec![commit(&["../../package.json"], &[], &[])];
        assert_eq!(
            candidate(&push, &LoopGuard::default()).unwrap_err().reason,
            "no package.json added or modified"
        );
    }

    #[test]
    fn an_empty_branch_name_is_malformed() {
        let mut push = push_touching(&["package.json"]);
        push.git_ref = "refs/heads/".into();
        push.repository.default_branch = Some(String::new());
        let stop = candidate(&push, &LoopGuard::default()).unwrap_err();
        assert_eq!(stop.status, 400, "{}", stop.reason);
        // An empty default branch is no default branch: nothing can match it.
        push.git_ref = "refs/heads/master".into();
        let found = candidate(&push, &LoopGuard::default()).unwrap();
        assert!(on_branch(found, None)
            .unwrap_err()
            .reason
            .contains("no default branch"));
    }

    #[test]
    fn many_distinct_packages_are_linear() {
        let mut push = push_touching(&[]);
        let many: Vec<String> = (0..100_000)
            .map(|i| format!("Packages/p{i}/package.json"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        // Commits under GitHub's 3,000-file listing cap (a commit at the cap means "scan everything").
        push.commits = refs
            .chunks(1000)
            .map(|chunk| commit(chunk, chunk, &[]))
            .chain(
                refs[..50_000]
                    .chunks(1000)
                    .map(|chunk| commit(&[], &[], chunk)),
            )
            .collect();
        let ChangedPackages::Paths(dirs) = changed_packages(&push) else {
            panic!("paths")
        };
        assert_eq!(dirs.len(), 50_000);
        assert_eq!(dirs[0], "Packages/p50000");
    }

    #[test]
    fn no_default_branch_anywhere_is_ignored_with_a_reason() {
        let mut push = push_touching(&["package.json"]);
        push.repository.default_branch = None;
        let found = candidate(&push, &LoopGuard::default()).unwrap();
        assert!(on_branch(found, None)
            .unwrap_err()
            .reason
            .contains("no default branch"));
    }
}

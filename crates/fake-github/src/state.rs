//! The fake's world: repositories with real git-style objects, the organization hook's deliveries,
//! recorded dispatches and redeliveries, the GitHub App, and scripted faults. All of it loads from and
//! dumps to JSON, so a Node or shell test can seed it and read it back.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Tokens accepted as `Authorization: Bearer|token …`. Empty (and no App) = no check.
    pub tokens: Vec<String>,
    pub app: Option<App>,
    pub repos: Vec<Repo>,
    pub hooks: Vec<Hook>,
    /// Caps `per_page` on listings, so tests see several pages from few items.
    pub page_size_cap: Option<usize>,
    /// The status code a redelivery attempt records (default 200: the worker took it).
    pub redelivery_status_code: Option<u16>,
    pub faults: Vec<Fault>,
    /// Recorded: every `POST /repos/{repo}/dispatches` accepted.
    pub dispatches: Vec<Dispatch>,
    /// Recorded: every redelivery asked for.
    pub redeliveries: Vec<RedeliveryRequest>,
    /// Recorded: every request, in order.
    pub requests: Vec<RecordedRequest>,
    /// Self-hosted runners, of an organization or of one repository.
    pub runners: Vec<SelfHostedRunner>,
    /// Recorded: every `POST …/actions/workflows/{workflow}/dispatches` accepted.
    pub workflow_dispatches: Vec<WorkflowDispatch>,
    /// Seconds added to the real clock: a test moves GitHub's "now" (run creation times, token
    /// lifetimes) forward without waiting.
    pub clock_offset_secs: i64,
    /// Counter for ids (repositories, pulls, deliveries, runs).
    pub next_id: u64,
    /// Organization-level Actions secrets and variables.
    pub orgs: Vec<Org>,
    /// Organization runner groups; an organization without any here has GitHub's default group only
    /// (id 1, "Default", every repository, public ones not allowed).
    pub runner_groups: Vec<RunnerGroup>,
    /// Check runs created through the Checks API (`checks`).
    pub check_runs: Vec<crate::checks::CheckRun>,
}

/// An organization's Actions secrets (names only, as GitHub lists them) and variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Org {
    pub login: String,
    pub secrets: Vec<OrgItem>,
    pub variables: Vec<OrgItem>,
}

/// An organization secret or variable and which repositories may use it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgItem {
    pub name: String,
    /// A variable's value (secrets have none).
    pub value: String,
    /// `all`, `private` (private and internal repositories) or `selected`.
    pub visibility: String,
    /// For `selected`: the repositories (`owner/name`) that may use it.
    pub selected: Vec<String>,
}

/// A repository's deployment environment, with its own secrets and variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    pub secrets: Vec<String>,
    pub variables: BTreeMap<String, String>,
}

/// The organization webhook's settings, as `GET /orgs/{org}/hooks/{hook_id}` answers them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HookConfig {
    pub active: bool,
    pub events: Vec<String>,
    pub url: String,
    /// `json` or `form`.
    pub content_type: String,
    /// `"0"` verifies TLS, `"1"` does not.
    pub insecure_ssl: String,
}

impl Default for HookConfig {
    fn default() -> HookConfig {
        HookConfig {
            active: true,
            events: vec!["push".into()],
            url: String::new(),
            content_type: "json".into(),
            insecure_ssl: "0".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub app_id: String,
    /// PEM (PKCS#1 or PKCS#8 public key, or the private key itself) used to verify the App's JWTs.
    pub key_pem: String,
    /// Installation id per organization (lower-case login).
    pub installations: BTreeMap<String, u64>,
    /// Lifetime of minted installation tokens (GitHub: 1 hour).
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: i64,
    /// Recorded: installation tokens minted (`token`, `expires_at` Unix seconds).
    #[serde(default)]
    pub minted: Vec<(String, i64)>,
    /// Recorded: the `permissions` each token request asked for (`{}` when it asked for none), in order.
    #[serde(default)]
    pub minted_permissions: Vec<serde_json::Value>,
    /// The installation's permissions (`{"contents": "write", …}`), as its installation object lists
    /// them.
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
    /// `None`: installed on all repositories; else only on these (`owner/name`), as "Only select
    /// repositories" does.
    #[serde(default)]
    pub repositories: Option<Vec<String>>,
}

impl App {
    /// An App installed on `org` (installation `installation_id`, all repositories), whose tokens live
    /// an hour, with no permissions listed.
    pub fn new(app_id: &str, key_pem: &str, org: &str, installation_id: u64) -> App {
        App {
            app_id: app_id.to_string(),
            key_pem: key_pem.to_string(),
            installations: [(org.to_ascii_lowercase(), installation_id)].into(),
            token_ttl_secs: default_token_ttl(),
            minted: Vec::new(),
            minted_permissions: Vec::new(),
            permissions: BTreeMap::new(),
            repositories: None,
        }
    }

    /// Whether the installation reaches `full_name`.
    pub fn reaches(&self, full_name: &str) -> bool {
        self.repositories.as_ref().is_none_or(|list| {
            list.iter()
                .any(|repository| repository.eq_ignore_ascii_case(full_name))
        })
    }
}

fn default_token_ttl() -> i64 {
    3600
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Repo {
    pub full_name: String,
    pub id: u64,
    pub default_branch: String,
    pub private: bool,
    pub archived: bool,
    pub allow_auto_merge: bool,
    /// When set, enabling auto-merge is refused with this message even where allowed (e.g.
    /// "Pull request is in clean status").
    pub auto_merge_refusal: Option<String>,
    pub branches: BTreeMap<String, String>,
    pub commits: BTreeMap<String, Commit>,
    /// Tree sha → its direct children.
    pub trees: BTreeMap<String, Vec<TreeItem>>,
    /// Blob sha → base64 content.
    pub blobs: BTreeMap<String, String>,
    pub pulls: Vec<Pull>,
    pub workflow_runs: Vec<WorkflowRun>,
    /// The repository's workflows (`GET …/actions/workflows`), with GitHub's `state`.
    pub workflows: Vec<Workflow>,
    /// Actions variables (`vars.NAME`) of the repository.
    pub variables: BTreeMap<String, String>,
    /// Names of the repository's Actions secrets.
    pub secrets: Vec<String>,
    /// Deployment environments by name.
    pub environments: BTreeMap<String, Environment>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Workflow {
    pub id: u64,
    pub name: String,
    /// `.github/workflows/<file>`.
    pub path: String,
    /// `active`, `disabled_inactivity`, `disabled_manually`, …
    pub state: String,
}

impl Workflow {
    /// GitHub takes a workflow's id or its file name wherever it takes a `workflow_id`.
    pub fn is(&self, id_or_file: &str) -> bool {
        self.id.to_string() == id_or_file || self.path.rsplit('/').next() == Some(id_or_file)
    }
}

/// A self-hosted runner as GitHub lists it; `org` or `repo` says where it is registered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SelfHostedRunner {
    pub id: u64,
    pub name: String,
    pub os: String,
    /// `online` or `offline`.
    pub status: String,
    pub busy: bool,
    pub labels: Vec<String>,
    pub org: Option<String>,
    pub repo: Option<String>,
    /// An organization runner's group (`None`: the organization's default group, as GitHub puts a
    /// runner registered without one).
    pub runner_group_id: Option<u64>,
}

/// An organization's self-hosted runner group ("Managing access to self-hosted runners using
/// groups"), as `GET /orgs/{org}/actions/runner-groups` lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunnerGroup {
    pub id: u64,
    pub org: String,
    pub name: String,
    pub default: bool,
    /// `all`, `selected` or `private`.
    pub visibility: String,
    /// For `selected`: the repositories (`owner/name`) that may use it.
    pub selected: Vec<String>,
    /// GitHub's default is `false`: a group serves public repositories only when allowed.
    pub allows_public_repositories: bool,
    pub restricted_to_workflows: bool,
    /// `owner/repo/.github/workflows/file.yml@ref` entries.
    pub selected_workflows: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WorkflowDispatch {
    pub repository: String,
    /// The workflow's file name.
    pub workflow: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub inputs: serde_json::Value,
    /// The run GitHub created for it.
    pub run_id: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Commit {
    pub tree: String,
    pub parents: Vec<String>,
    pub message: String,
    /// Every file of the commit: path → blob sha (the flattened tree).
    pub files: BTreeMap<String, String>,
    /// Author and committer date (RFC 3339 UTC), when a test set one (`Repo::commit_at`).
    #[serde(default)]
    pub date: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeItem {
    pub name: String,
    /// `blob` or `tree`.
    pub kind: String,
    pub sha: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pull {
    pub number: u64,
    pub node_id: String,
    pub state: String,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub auto_merge: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowRun {
    pub id: u64,
    /// The workflow file, e.g. `handle-publish-request.yml`.
    pub workflow: String,
    pub display_title: String,
    pub event: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: String,
    /// When the latest attempt started (GitHub sets it when the run is created or re-run).
    pub run_started_at: Option<String>,
    pub updated_at: Option<String>,
    pub run_attempt: Option<u64>,
    /// The commit the run's workflow file was read from (the central repository's, for a dispatch).
    pub head_sha: String,
    pub head_branch: String,
    /// The one job's `runs-on` labels (its `labels` in "List jobs for a workflow run").
    pub labels: Vec<String>,
    /// The runner that took the job, once one did.
    pub runner_name: Option<String>,
    pub jobs: Vec<Job>,
    pub artifacts: Vec<Artifact>,
}

/// A job of a run, as `GET …/actions/runs/{id}/jobs` lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed`, `waiting`, `requested` or `pending`.
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub runner_name: Option<String>,
    pub labels: Vec<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    pub name: String,
    pub number: u64,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// An artifact of a run: its files, served zipped by `GET …/actions/artifacts/{id}/zip` (a redirect
/// to a short-lived download URL, as GitHub answers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Artifact {
    pub id: u64,
    pub name: String,
    pub expired: bool,
    pub created_at: String,
    /// File name → content.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hook {
    pub org: String,
    pub id: u64,
    pub deliveries: Vec<Delivery>,
    pub config: HookConfig,
}

/// A delivery as GitHub lists it, plus the payload `…/deliveries/{id}` returns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Delivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: String,
    pub redelivery: bool,
    pub duration: f64,
    pub status: String,
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
    pub repository_id: Option<u64>,
    pub payload: serde_json::Value,
    /// The body our worker answered with, which `…/deliveries/{id}` returns as `response.payload`.
    pub response: Option<String>,
    /// How many more first-page listings leave this attempt out: a redelivery is answered 202
    /// before GitHub lists its attempt.
    pub unlisted_for: u32,
}

impl Delivery {
    /// GitHub's text for an attempt's outcome (the `status` field): `OK` for a 2xx answer, else
    /// `Invalid HTTP Response: <code>`.
    pub fn status_text(status_code: u16) -> String {
        if (200..300).contains(&status_code) {
            "OK".into()
        } else {
            format!("Invalid HTTP Response: {status_code}")
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dispatch {
    pub repository: String,
    pub event_type: String,
    pub client_payload: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RedeliveryRequest {
    pub org: String,
    pub hook_id: u64,
    pub delivery_id: u64,
    pub guid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The bearer credential sent, if any (fake tokens only ever reach the fake).
    pub token: Option<String>,
    pub body: Option<serde_json::Value>,
}

/// A scripted failure: the next `times` requests matching `method` and `path_contains` (after
/// `skip` matching ones pass) get `status` (or, without a status, are served normally) with the given
/// headers and after `delay_ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    pub method: Option<String>,
    pub path_contains: Option<String>,
    pub skip: u32,
    pub times: u32,
    pub status: Option<u16>,
    pub message: Option<String>,
    pub retry_after: Option<u64>,
    pub rate_limit_remaining: Option<u64>,
    /// `x-ratelimit-reset` as seconds from now.
    pub rate_limit_reset_in: Option<i64>,
    pub delay_ms: u64,
}

/// A change to one file in a commit: `Some(bytes)` writes, `None` deletes.
pub type Change<'a> = (&'a str, Option<&'a [u8]>);

pub fn git_hash(kind: &str, bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("{kind} {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl State {
    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn repo(&self, full_name: &str) -> Option<&Repo> {
        self.repos
            .iter()
            .find(|r| r.full_name.eq_ignore_ascii_case(full_name))
    }

    pub fn repo_mut(&mut self, full_name: &str) -> Option<&mut Repo> {
        self.repos
            .iter_mut()
            .find(|r| r.full_name.eq_ignore_ascii_case(full_name))
    }

    /// Adds a repository with one empty-ish initial commit on `default_branch` (a README, so the
    /// branch exists as on GitHub).
    pub fn add_repo(&mut self, full_name: &str, default_branch: &str) -> &mut Repo {
        let id = 1000 + self.fresh_id();
        let mut repo = Repo {
            full_name: full_name.to_string(),
            id,
            default_branch: default_branch.to_string(),
            allow_auto_merge: true,
            ..Repo::default()
        };
        repo.commit(
            default_branch,
            &[("README.md", Some(b"# fixture\n".as_slice()))],
            "initial commit",
        )
        .expect("the first commit");
        self.repos.push(repo);
        self.repos.last_mut().expect("just pushed")
    }

    pub fn hook_mut(&mut self, org: &str, hook_id: u64) -> &mut Hook {
        if let Some(index) = self
            .hooks
            .iter()
            .position(|h| h.org.eq_ignore_ascii_case(org) && h.id == hook_id)
        {
            return &mut self.hooks[index];
        }
        self.hooks.push(Hook {
            org: org.to_string(),
            id: hook_id,
            deliveries: Vec::new(),
            config: HookConfig::default(),
        });
        self.hooks.last_mut().expect("just pushed")
    }
}

impl Repo {
    pub fn file_blob(&self, commit: &str, path: &str) -> Option<&String> {
        self.commits.get(commit)?.files.get(path)
    }

    pub fn blob_bytes(&self, sha: &str) -> Option<Vec<u8>> {
        STANDARD.decode(self.blobs.get(sha)?).ok()
    }

    /// Resolves a branch name or a commit sha to a commit sha.
    pub fn resolve(&self, reference: &str) -> Option<String> {
        let reference = reference.strip_prefix("refs/heads/").unwrap_or(reference);
        if let Some(sha) = self.branches.get(reference) {
            return Some(sha.clone());
        }
        self.commits
            .contains_key(reference)
            .then(|| reference.to_string())
    }

    /// [`Repo::commit`] with an author/committer date (RFC 3339 UTC), which the commits API returns.
    pub fn commit_at(
        &mut self,
        branch: &str,
        changes: &[Change<'_>],
        message: &str,
        date: &str,
    ) -> Result<String, String> {
        let sha = self.commit(branch, changes, message)?;
        if let Some(commit) = self.commits.get_mut(&sha) {
            commit.date = Some(date.to_string());
        }
        Ok(sha)
    }

    /// Commits `changes` on top of `branch` (created from nothing if absent) and moves the branch.
    /// Returns the new commit's sha.
    pub fn commit(
        &mut self,
        branch: &str,
        changes: &[Change<'_>],
        message: &str,
    ) -> Result<String, String> {
        let parent = self.branches.get(branch).cloned();
        let mut files = parent
            .as_ref()
            .and_then(|p| self.commits.get(p))
            .map(|c| c.files.clone())
            .unwrap_or_default();
        for (path, content) in changes {
            match content {
                Some(bytes) => {
                    let sha = git_hash("blob", bytes);
                    self.blobs.insert(sha.clone(), STANDARD.encode(bytes));
                    files.insert(path.to_string(), sha);
                }
                None => {
                    if files.remove(*path).is_none() {
                        return Err(format!("{path} does not exist"));
                    }
                }
            }
        }
        let tree = self.write_tree(&files, "");
        let body = format!(
            "tree {tree}\n{}\n{message}\n{}",
            parent.clone().unwrap_or_default(),
            self.commits.len()
        );
        let sha = git_hash("commit", body.as_bytes());
        self.commits.insert(
            sha.clone(),
            Commit {
                tree,
                parents: parent.into_iter().collect(),
                message: message.to_string(),
                files,
                date: None,
            },
        );
        self.branches.insert(branch.to_string(), sha.clone());
        Ok(sha)
    }

    /// Stores the tree for the directory `prefix` (and its subtrees) and returns its sha.
    pub(crate) fn write_tree(&mut self, files: &BTreeMap<String, String>, prefix: &str) -> String {
        let mut children: BTreeMap<String, TreeItem> = BTreeMap::new();
        let mut subdirs: Vec<String> = Vec::new();
        for (path, blob) in files {
            let Some(rest) = path.strip_prefix(prefix) else {
                continue;
            };
            match rest.split_once('/') {
                None => {
                    children.insert(
                        rest.to_string(),
                        TreeItem {
                            name: rest.to_string(),
                            kind: "blob".into(),
                            sha: blob.clone(),
                        },
                    );
                }
                Some((dir, _)) => {
                    if !subdirs.iter().any(|d| d == dir) {
                        subdirs.push(dir.to_string());
                    }
                }
            }
        }
        for dir in subdirs {
            let sha = self.write_tree(files, &format!("{prefix}{dir}/"));
            children.insert(
                dir.clone(),
                TreeItem {
                    name: dir,
                    kind: "tree".into(),
                    sha,
                },
            );
        }
        let items: Vec<TreeItem> = children.into_values().collect();
        let body: String = items
            .iter()
            .map(|i| format!("{} {} {}\n", i.kind, i.name, i.sha))
            .collect();
        let sha = git_hash("tree", body.as_bytes());
        self.trees.insert(sha.clone(), items);
        sha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_have_gits_object_ids() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_hash("blob", b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn commits_build_nested_trees_and_move_the_branch() {
        let mut state = State::default();
        let repo = state.add_repo("Studio/A", "main");
        let first = repo.branches["main"].clone();
        let sha = repo
            .commit(
                "main",
                &[
                    ("Packages/a/package.json", Some(b"{}")),
                    ("Packages/b/package.json", Some(b"{\"x\":1}")),
                ],
                "two packages",
            )
            .unwrap();
        assert_eq!(repo.branches["main"], sha);
        assert_eq!(repo.commits[&sha].parents, vec![first]);
        let root = &repo.trees[&repo.commits[&sha].tree];
        assert_eq!(
            root.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["Packages", "README.md"]
        );
        let packages = &repo.trees[&root[0].sha];
        assert_eq!(packages.len(), 2);
        assert!(repo.commit("main", &[("missing", None)], "x").is_err());
    }
}

//! api: the GitHub endpoints the tools use, typed. Serde structs keep only the fields we read.

use std::ops::ControlFlow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::client::{file_path, segment, Fetched, GitHub};
use crate::deliveries::HookDelivery;
use crate::error::{Error, Result};

/// `owner/name` → `owner/name` with each part percent-encoded, for paths.
pub(crate) fn repo_path(full_name: &str) -> String {
    match full_name.split_once('/') {
        Some((owner, name)) => format!("{}/{}", segment(owner), segment(name)),
        None => segment(full_name),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Repository {
    pub id: u64,
    pub full_name: String,
    pub default_branch: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub archived: bool,
    /// Present only for callers with admin access; `None` = unknown.
    #[serde(default)]
    pub allow_auto_merge: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Branch {
    pub name: String,
    pub commit: CommitRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitRef {
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tree {
    pub sha: String,
    #[serde(default)]
    pub truncated: bool,
    pub tree: Vec<TreeEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TreeEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sha: String,
    /// A blob's size in bytes (GitHub lists it for blobs only).
    #[serde(default)]
    pub size: Option<u64>,
}

/// A file read through the contents API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    /// The blob sha: what a later update or delete must name.
    pub sha: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
    /// GraphQL id, for enabling auto-merge.
    #[serde(default)]
    pub node_id: String,
    pub state: String,
    pub title: String,
    /// `null` when the pull request has no description.
    #[serde(default)]
    pub body: Option<String>,
    pub head: PullBranch,
    pub base: PullBranch,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PullBranch {
    #[serde(rename = "ref")]
    pub ref_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPullRequest<'a> {
    pub title: &'a str,
    pub head: &'a str,
    pub base: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkflowRun {
    pub id: u64,
    #[serde(default)]
    pub display_title: String,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub html_url: String,
    /// When the latest attempt started (a re-run moves it).
    #[serde(default)]
    pub run_started_at: Option<String>,
    /// The last change of status; for a completed run, about when it ended.
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<u64>,
}

/// A job of a workflow run (`GET …/actions/runs/{id}/jobs`). Only the fields we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Job {
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed`, `waiting`, `requested`, `pending`.
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    pub created_at: String,
    /// When a runner took the job; until then the job is queued.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub runner_name: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub steps: Vec<JobStep>,
    #[serde(default)]
    pub html_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct JobStep {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
}

/// An artifact of a workflow run. Only the fields we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Artifact {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub expired: bool,
}

/// One commit of `GET /repos/{repo}/commits`. Only the fields we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitListItem {
    pub sha: String,
    pub commit: CommitDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitDetail {
    pub message: String,
    #[serde(default)]
    pub committer: Option<CommitPerson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitPerson {
    #[serde(default)]
    pub date: Option<String>,
}

/// A listing of runs and whether GitHub's 1,000-result cap may have cut it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunListing {
    pub runs: Vec<WorkflowRun>,
    /// GitHub: "This endpoint will return up to 1,000 results for each search when using the
    /// following parameters: … `created` …". A listing that reached 1,000 is treated as cut.
    pub capped: bool,
}

/// The most results GitHub returns for one `created` search of workflow runs.
pub const RUN_SEARCH_CAP: usize = 1_000;

/// One delivery with the request GitHub sent (for the repository a push came from).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HookDeliveryDetail {
    #[serde(flatten)]
    pub delivery: HookDelivery,
    pub request: DeliveryRequest,
    /// What our endpoint answered (GitHub keeps the body as text).
    #[serde(default)]
    pub response: Option<DeliveryResponse>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeliveryResponse {
    /// The answer body; GitHub sends `null` when there was none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub payload: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeliveryRequest {
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// What `auto-merge` did for a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum AutoMerge {
    Enabled,
    /// GitHub refused (not allowed in the repository, the PR is already mergeable, no permission…).
    Refused(String),
}

impl GitHub {
    pub fn repository(&self, full_name: &str) -> Result<Repository> {
        self.get(&format!("/repos/{}", repo_path(full_name)))
    }

    pub fn branch(&self, full_name: &str, branch: &str) -> Result<Option<Branch>> {
        self.get_optional(&format!(
            "/repos/{}/branches/{}",
            repo_path(full_name),
            segment(branch)
        ))
    }

    /// A branch's head, saying whether it is unchanged since the last read (one 304 request): what a
    /// sweep over many repositories uses to skip the ones nobody pushed to.
    pub fn branch_fetched(&self, full_name: &str, branch: &str) -> Result<Option<Fetched<Branch>>> {
        let path = format!(
            "/repos/{}/branches/{}",
            repo_path(full_name),
            segment(branch)
        );
        match self.get_fetched(&path) {
            Ok(fetched) => Ok(Some(fetched)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `tree_ish` is a tree sha, a commit sha or a branch name; `recursive` lists every file at once.
    pub fn tree(&self, full_name: &str, tree_ish: &str, recursive: bool) -> Result<Tree> {
        let query = if recursive { "?recursive=1" } else { "" };
        self.get(&format!(
            "/repos/{}/git/trees/{}{query}",
            repo_path(full_name),
            segment(tree_ish)
        ))
    }

    pub fn blob(&self, full_name: &str, sha: &str) -> Result<Vec<u8>> {
        #[derive(Deserialize)]
        struct Blob {
            content: String,
            encoding: String,
        }
        let path = format!("/repos/{}/git/blobs/{}", repo_path(full_name), segment(sha));
        let blob: Blob = self.get(&path)?;
        decode_content(&path, &blob.content, &blob.encoding)
    }

    /// A file on `reference` (branch, tag or sha), `None` if it does not exist.
    pub fn file(
        &self,
        full_name: &str,
        path: &str,
        reference: Option<&str>,
    ) -> Result<Option<File>> {
        #[derive(Deserialize)]
        struct Contents {
            path: String,
            sha: String,
            #[serde(default)]
            content: String,
            #[serde(default)]
            encoding: String,
        }
        let query = reference
            .map(|r| format!("?ref={}", segment(r)))
            .unwrap_or_default();
        let url = format!(
            "/repos/{}/contents/{}{query}",
            repo_path(full_name),
            file_path(path)
        );
        let Some(contents) = self.get_optional::<Contents>(&url)? else {
            return Ok(None);
        };
        Ok(Some(File {
            content: decode_content(&url, &contents.content, &contents.encoding)?,
            path: contents.path,
            sha: contents.sha,
        }))
    }

    /// Creates or updates a file by a commit on `branch`; `sha` is the blob being replaced (None to
    /// create). Returns the new commit's sha.
    pub fn put_file(
        &self,
        full_name: &str,
        path: &str,
        branch: &str,
        message: &str,
        content: &[u8],
        sha: Option<&str>,
    ) -> Result<String> {
        #[derive(Deserialize)]
        struct Written {
            commit: CommitRef,
        }
        let mut body = serde_json::json!({
            "message": message,
            "content": STANDARD.encode(content),
            "branch": branch,
        });
        if let Some(sha) = sha {
            body["sha"] = sha.into();
        }
        let written: Written = self.put(
            &format!(
                "/repos/{}/contents/{}",
                repo_path(full_name),
                file_path(path)
            ),
            &body,
        )?;
        Ok(written.commit.sha)
    }

    /// Deletes a file by a commit on `branch`.
    pub fn delete_file(
        &self,
        full_name: &str,
        path: &str,
        branch: &str,
        message: &str,
        sha: &str,
    ) -> Result<()> {
        let body = serde_json::json!({ "message": message, "sha": sha, "branch": branch });
        self.delete(
            &format!(
                "/repos/{}/contents/{}",
                repo_path(full_name),
                file_path(path)
            ),
            Some(&body),
        )
    }

    /// Creates `refs/heads/{branch}` at `sha`.
    pub fn create_branch(&self, full_name: &str, branch: &str, sha: &str) -> Result<()> {
        let body = serde_json::json!({ "ref": format!("refs/heads/{branch}"), "sha": sha });
        self.post::<_, serde_json::Value>(
            &format!("/repos/{}/git/refs", repo_path(full_name)),
            &body,
        )
        .map(drop)
    }

    /// Open pull requests whose head is `owner:branch`.
    pub fn open_pulls_from(&self, full_name: &str, head: &str) -> Result<Vec<PullRequest>> {
        self.get_all(
            &format!(
                "/repos/{}/pulls?state=open&head={}&per_page=100",
                repo_path(full_name),
                segment(head)
            ),
            None,
            1000,
        )
    }

    pub fn create_pull(&self, full_name: &str, pull: &NewPullRequest<'_>) -> Result<PullRequest> {
        self.post(&format!("/repos/{}/pulls", repo_path(full_name)), pull)
    }

    /// Enables auto-merge with GraphQL's `enablePullRequestAutoMerge` (REST has no endpoint for it).
    /// GitHub refuses when the repository does not allow auto-merge, or when the pull request can be
    /// merged right now ("clean status"): both come back as [`AutoMerge::Refused`], not an error.
    pub fn enable_auto_merge(&self, pull_node_id: &str, merge_method: &str) -> Result<AutoMerge> {
        const MUTATION: &str = "mutation($id: ID!, $method: PullRequestMergeMethod) { \
            enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) { \
            pullRequest { number } } }";
        let variables = serde_json::json!({ "id": pull_node_id, "method": merge_method });
        match self.graphql::<serde_json::Value>(MUTATION, variables) {
            Ok(_) => Ok(AutoMerge::Enabled),
            Err(Error::GraphQl { messages }) => Ok(AutoMerge::Refused(messages.join("; "))),
            Err(e) => Err(e),
        }
    }

    /// `POST /repos/{repo}/dispatches`.
    pub fn dispatch(
        &self,
        full_name: &str,
        event_type: &str,
        client_payload: &serde_json::Value,
    ) -> Result<()> {
        let body =
            serde_json::json!({ "event_type": event_type, "client_payload": client_payload });
        self.post_no_content(
            &format!("/repos/{}/dispatches", repo_path(full_name)),
            &body,
        )
    }

    /// The organization hook's deliveries, newest first, following the cursor until one older than
    /// `since_unix` (exclusive) is seen or `limit` are read.
    pub fn hook_deliveries(
        &self,
        org: &str,
        hook_id: u64,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<HookDelivery>> {
        let mut all = Vec::new();
        let path = format!(
            "/orgs/{}/hooks/{hook_id}/deliveries?per_page=100",
            segment(org)
        );
        self.for_each_page(&path, None, |page: Vec<HookDelivery>| {
            let mut older_seen = false;
            for delivery in page {
                match delivery.delivered_at_unix() {
                    Some(at) if at < since_unix => older_seen = true,
                    _ => all.push(delivery),
                }
            }
            if older_seen || all.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        all.truncate(limit);
        Ok(all)
    }

    pub fn hook_delivery(
        &self,
        org: &str,
        hook_id: u64,
        delivery_id: u64,
    ) -> Result<HookDeliveryDetail> {
        self.get(&format!(
            "/orgs/{}/hooks/{hook_id}/deliveries/{delivery_id}",
            segment(org)
        ))
    }

    /// Asks GitHub to redeliver one delivery (202).
    pub fn redeliver(&self, org: &str, hook_id: u64, delivery_id: u64) -> Result<()> {
        self.post_no_content(
            &format!(
                "/orgs/{}/hooks/{hook_id}/deliveries/{delivery_id}/attempts",
                segment(org)
            ),
            &serde_json::json!({}),
        )
    }

    /// Runs of one workflow file created at or after `since` (`YYYY-MM-DDTHH:MM:SSZ`), newest first, at
    /// most `limit`.
    ///
    /// GitHub ("List workflow runs for a workflow"): "This endpoint will return up to 1,000 results for
    /// each search when using the following parameters: … `created` …". A window holding 1,000 runs or
    /// more is halved until each half fits, so no run inside it is silently cut.
    pub fn workflow_runs(
        &self,
        full_name: &str,
        workflow_file: &str,
        since: &str,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>> {
        let from = crate::deliveries::parse_rfc3339_utc(since).ok_or_else(|| Error::Decode {
            method: "GET".into(),
            path: "workflow runs".into(),
            detail: format!("since {since:?} is not a date-time"),
        })?;
        // A day ahead: runs created while we page, and clock skew, stay inside the window.
        let to = crate::client::now_unix() + 86_400;
        let mut all = Vec::new();
        self.runs_between(full_name, workflow_file, from, to, limit, &mut all)?;
        Ok(all)
    }

    fn runs_between(
        &self,
        full_name: &str,
        workflow_file: &str,
        from: i64,
        to: i64,
        limit: usize,
        all: &mut Vec<WorkflowRun>,
    ) -> Result<()> {
        const SEARCH_CAP: u64 = 1000;
        if all.len() >= limit || from > to {
            return Ok(());
        }
        let path = |per_page: u32| {
            format!(
                "/repos/{}/actions/workflows/{}/runs?per_page={per_page}&created={}",
                repo_path(full_name),
                segment(workflow_file),
                segment(&format!(
                    "{}..{}",
                    crate::deliveries::format_rfc3339_utc(from),
                    crate::deliveries::format_rfc3339_utc(to)
                ))
            )
        };
        #[derive(Deserialize)]
        struct Count {
            total_count: u64,
        }
        let count: Count = self.get(&path(1))?;
        if count.total_count >= SEARCH_CAP && to > from {
            // Newest half first: the listing is newest first.
            let mid = from + (to - from) / 2;
            self.runs_between(full_name, workflow_file, mid + 1, to, limit, all)?;
            return self.runs_between(full_name, workflow_file, from, mid, limit, all);
        }
        let room = limit - all.len();
        all.extend(self.get_all::<WorkflowRun>(&path(100), Some("workflow_runs"), room)?);
        Ok(())
    }
}

impl GitHub {
    /// Runs of one workflow file created in `[from, to]` (`YYYY-MM-DDTHH:MM:SSZ`, GitHub's
    /// `created=A..B`), newest first, with whether the 1,000-result cap may have cut the listing (then
    /// the caller asks again with a narrower window).
    pub fn workflow_runs_between(
        &self,
        full_name: &str,
        workflow_file: &str,
        from: &str,
        to: &str,
    ) -> Result<RunListing> {
        let path = format!(
            "/repos/{}/actions/workflows/{}/runs?per_page=100&created={}..{}",
            repo_path(full_name),
            segment(workflow_file),
            segment(from),
            segment(to)
        );
        let runs: Vec<WorkflowRun> = self.get_all(&path, Some("workflow_runs"), RUN_SEARCH_CAP)?;
        Ok(RunListing {
            capped: runs.len() >= RUN_SEARCH_CAP,
            runs,
        })
    }

    /// The jobs of a run's latest attempt (GitHub's default `filter=latest`).
    pub fn run_jobs(&self, full_name: &str, run_id: u64) -> Result<Vec<Job>> {
        self.get_all(
            &format!(
                "/repos/{}/actions/runs/{run_id}/jobs?per_page=100",
                repo_path(full_name)
            ),
            Some("jobs"),
            1_000,
        )
    }

    pub fn run_artifacts(&self, full_name: &str, run_id: u64) -> Result<Vec<Artifact>> {
        self.get_all(
            &format!(
                "/repos/{}/actions/runs/{run_id}/artifacts?per_page=100",
                repo_path(full_name)
            ),
            Some("artifacts"),
            1_000,
        )
    }

    /// An artifact's zip. GitHub answers with a redirect to a short-lived URL on its storage; the
    /// HTTP agent follows it without our token (ureq drops authorization headers on redirects).
    pub fn artifact_zip(&self, full_name: &str, artifact_id: u64) -> Result<Vec<u8>> {
        self.get_bytes(&format!(
            "/repos/{}/actions/artifacts/{artifact_id}/zip",
            repo_path(full_name)
        ))
    }

    /// Commits reachable from `reference` (newest first), optionally only those that changed `path`
    /// and those committed in `[since, until]`.
    pub fn commits(
        &self,
        full_name: &str,
        reference: &str,
        path: Option<&str>,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CommitListItem>> {
        let mut url = format!(
            "/repos/{}/commits?per_page=100&sha={}",
            repo_path(full_name),
            segment(reference)
        );
        if let Some(path) = path {
            url.push_str(&format!("&path={}", segment(path)));
        }
        if let Some(since) = since {
            url.push_str(&format!("&since={}", segment(since)));
        }
        self.get_all(&url, None, limit)
    }
}

fn decode_content(path: &str, content: &str, encoding: &str) -> Result<Vec<u8>> {
    let error = |detail: String| Error::Decode {
        method: "GET".into(),
        path: path.into(),
        detail,
    };
    match encoding {
        // GitHub wraps base64 at 60 columns.
        "base64" => {
            let compact: String = content
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            STANDARD
                .decode(compact)
                .map_err(|e| error(format!("content: {e}")))
        }
        "utf-8" | "" => Ok(content.as_bytes().to_vec()),
        other => Err(error(format!("content encoding {other:?}"))),
    }
}

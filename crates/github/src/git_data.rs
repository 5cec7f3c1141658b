//! git_data: commits written through GitHub's git data API, without a clone ("Git database" in the
//! REST reference: "Create a tree", "Create a commit", "Update a reference"), and pull request
//! updates ("Update a pull request"). A tree entry may carry its `content` directly, so a commit of N
//! text files costs one tree and one commit request, not N blob requests.

use serde::{Deserialize, Serialize};

use crate::api::{repo_path, PullRequest};
use crate::client::{segment, GitHub};
use crate::error::Result;

/// One file of a new tree: its text, or `None` to delete the path from the base tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    pub path: String,
    pub content: Option<String>,
}

#[derive(Serialize)]
struct TreeItem<'a> {
    path: &'a str,
    /// A regular file (git's `100644`; the reference lists the other modes).
    mode: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    /// GitHub deletes the path when `sha` is `null`: serialised only for deletions.
    #[serde(skip_serializing_if = "is_present")]
    sha: Option<()>,
}

fn is_present(sha: &Option<()>) -> bool {
    sha.is_some()
}

#[derive(Deserialize)]
struct Created {
    sha: String,
}

impl GitHub {
    /// "Create a tree" on top of `base_tree`: returns the new tree's sha.
    pub fn create_tree(
        &self,
        full_name: &str,
        base_tree: &str,
        changes: &[TreeChange],
    ) -> Result<String> {
        let items: Vec<TreeItem> = changes
            .iter()
            .map(|c| TreeItem {
                path: &c.path,
                mode: "100644",
                kind: "blob",
                content: c.content.as_deref(),
                sha: if c.content.is_some() { Some(()) } else { None },
            })
            .collect();
        let body = serde_json::json!({ "base_tree": base_tree, "tree": items });
        let created: Created =
            self.post(&format!("/repos/{}/git/trees", repo_path(full_name)), &body)?;
        Ok(created.sha)
    }

    /// "Create a commit" of `tree` with `parents`: returns the commit's sha. Authored by whoever the
    /// credentials are (an App's installation token commits as the App's bot).
    pub fn create_commit(
        &self,
        full_name: &str,
        message: &str,
        tree: &str,
        parents: &[&str],
    ) -> Result<String> {
        let body = serde_json::json!({ "message": message, "tree": tree, "parents": parents });
        let created: Created = self.post(
            &format!("/repos/{}/git/commits", repo_path(full_name)),
            &body,
        )?;
        Ok(created.sha)
    }

    /// "Update a reference": points `refs/heads/{branch}` at `sha`; `force` allows a move that is not
    /// a fast-forward (GitHub answers 422 "Update is not a fast forward" otherwise).
    pub fn update_branch(
        &self,
        full_name: &str,
        branch: &str,
        sha: &str,
        force: bool,
    ) -> Result<()> {
        let body = serde_json::json!({ "sha": sha, "force": force });
        self.patch::<_, serde_json::Value>(
            &format!(
                "/repos/{}/git/refs/heads/{}",
                repo_path(full_name),
                segment(branch)
            ),
            &body,
        )
        .map(drop)
    }

    /// "Update a pull request": its title and body.
    pub fn update_pull(
        &self,
        full_name: &str,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest> {
        let body = serde_json::json!({ "title": title, "body": body });
        self.patch(
            &format!("/repos/{}/pulls/{number}", repo_path(full_name)),
            &body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deletion_sends_a_null_sha_and_a_write_sends_content_only() {
        let write = TreeItem {
            path: "a.meta",
            mode: "100644",
            kind: "blob",
            content: Some("guid: 1"),
            sha: Some(()),
        };
        assert_eq!(
            serde_json::to_value(&write).unwrap(),
            serde_json::json!({ "path": "a.meta", "mode": "100644", "type": "blob", "content": "guid: 1" })
        );
        let delete = TreeItem {
            path: "b",
            mode: "100644",
            kind: "blob",
            content: None,
            sha: None,
        };
        assert_eq!(
            serde_json::to_value(&delete).unwrap(),
            serde_json::json!({ "path": "b", "mode": "100644", "type": "blob", "sha": null })
        );
    }
}

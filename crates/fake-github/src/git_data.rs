//! GitHub's git data API (writing blobs, trees and commits without a clone) and pull request updates,
//! as the REST reference describes them ("Git database": "Create a blob", "Create a tree", "Create a
//! commit"; "Pulls": "Update a pull request"). The publisher's `health` command builds its fix
//! commits with these.
//!
//! Limits kept from the reference: a tree entry gives either `sha` or `content`, never both; `mode` is
//! one of git's file modes; `sha: null` deletes the path from `base_tree`; a commit's tree and parents
//! must exist. Answers are 201 with the object's `sha` (200 for the pull request update).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::routes::{pull_json, Response};
use crate::state::{git_hash, Commit, Repo};

/// The endpoints of this module, or `None` for the other routes.
pub fn route(repo: &mut Repo, method: &str, rest: &[&str], body: &Value) -> Option<Response> {
    Some(match (method, rest) {
        ("POST", ["git", "blobs"]) => create_blob(repo, body),
        ("POST", ["git", "trees"]) => create_tree(repo, body),
        ("POST", ["git", "commits"]) => create_commit(repo, body),
        ("PATCH", ["pulls", number]) => update_pull(repo, number, body),
        _ => return None,
    })
}

fn invalid(message: &str) -> Response {
    Response::error(422, &format!("Invalid request.\n\n{message}"))
}

/// "Create a blob": `content` with `encoding` `utf-8` (default) or `base64`.
fn create_blob(repo: &mut Repo, body: &Value) -> Response {
    let Some(content) = body["content"].as_str() else {
        return invalid("\"content\" wasn't supplied.");
    };
    let bytes = match body["encoding"].as_str().unwrap_or("utf-8") {
        "utf-8" => content.as_bytes().to_vec(),
        "base64" => match STANDARD.decode(content) {
            Ok(bytes) => bytes,
            Err(_) => return invalid("content is not valid base64"),
        },
        other => return invalid(&format!("encoding {other:?} is not utf-8 or base64")),
    };
    let sha = store_blob(repo, &bytes);
    Response::json(
        201,
        json!({ "sha": sha, "url": format!("/repos/{}/git/blobs/{sha}", repo.full_name) }),
    )
}

fn store_blob(repo: &mut Repo, bytes: &[u8]) -> String {
    let sha = git_hash("blob", bytes);
    repo.blobs.insert(sha.clone(), STANDARD.encode(bytes));
    sha
}

/// Every file below `tree` (path → blob sha), walking the stored trees.
fn flatten(
    repo: &Repo,
    tree: &str,
    prefix: &str,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    for item in repo.trees.get(tree).into_iter().flatten() {
        let path = format!("{prefix}{}", item.name);
        if item.kind == "tree" {
            flatten(repo, &item.sha, &format!("{path}/"), out);
        } else {
            out.insert(path, item.sha.clone());
        }
    }
}

/// "Create a tree": `base_tree` (optional) plus entries; each entry has `path`, `mode`, `type` and
/// either `sha` (an existing blob; `null` deletes the path) or `content` (a new blob).
fn create_tree(repo: &mut Repo, body: &Value) -> Response {
    let Some(entries) = body["tree"].as_array() else {
        return invalid("\"tree\" wasn't supplied.");
    };
    let mut files = std::collections::BTreeMap::new();
    if let Some(base) = body["base_tree"].as_str() {
        if !repo.trees.contains_key(base) {
            return invalid(&format!("base_tree {base} is not a tree"));
        }
        flatten(repo, base, "", &mut files);
    }
    for entry in entries {
        let Some(path) = entry["path"].as_str().filter(|p| !p.is_empty()) else {
            return invalid("tree.path wasn't supplied.");
        };
        if !matches!(
            entry["mode"].as_str(),
            Some("100644" | "100755" | "040000" | "160000" | "120000")
        ) {
            return invalid(&format!("tree.mode of {path} is not a git file mode"));
        }
        if entry["type"].as_str() != Some("blob") {
            return invalid(&format!("tree.type of {path}: this fake writes blobs only"));
        }
        let has_sha = entry.get("sha").is_some();
        match (entry.get("content").and_then(Value::as_str), has_sha) {
            (Some(_), true) => {
                return invalid(&format!("tree entry {path} gives both sha and content"))
            }
            (Some(content), false) => {
                let sha = store_blob(repo, content.as_bytes());
                files.insert(path.to_string(), sha);
            }
            (None, true) => match entry["sha"].as_str() {
                None => {
                    files.remove(path);
                }
                Some(sha) if repo.blobs.contains_key(sha) => {
                    files.insert(path.to_string(), sha.to_string());
                }
                Some(sha) => return invalid(&format!("tree.sha {sha} is not a valid blob")),
            },
            (None, false) => return invalid(&format!("tree entry {path} needs sha or content")),
        }
    }
    let sha = repo.write_tree(&files, "");
    let listed: Vec<Value> = files
        .iter()
        .map(|(path, blob)| json!({ "path": path, "mode": "100644", "type": "blob", "sha": blob }))
        .collect();
    Response::json(
        201,
        json!({ "sha": sha, "url": format!("/repos/{}/git/trees/{sha}", repo.full_name), "tree": listed, "truncated": false }),
    )
}

/// "Create a commit": `message`, `tree` and `parents` (existing commits).
fn create_commit(repo: &mut Repo, body: &Value) -> Response {
    let (Some(message), Some(tree)) = (body["message"].as_str(), body["tree"].as_str()) else {
        return invalid("\"message\" and \"tree\" are required.");
    };
    if !repo.trees.contains_key(tree) {
        return invalid(&format!("Tree SHA does not exist: {tree}"));
    }
    let parents: Vec<String> = body["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(missing) = parents.iter().find(|p| !repo.commits.contains_key(*p)) {
        return invalid(&format!(
            "Parent SHA does not exist or is not a commit object: {missing}"
        ));
    }
    let mut files = std::collections::BTreeMap::new();
    flatten(repo, tree, "", &mut files);
    let text = format!(
        "tree {tree}\n{}\n{message}\n{}",
        parents.join(" "),
        repo.commits.len()
    );
    let sha = git_hash("commit", text.as_bytes());
    repo.commits.insert(
        sha.clone(),
        Commit {
            tree: tree.to_string(),
            parents: parents.clone(),
            message: message.to_string(),
            files,
            date: None,
        },
    );
    let parents: Vec<Value> = parents.iter().map(|p| json!({ "sha": p })).collect();
    Response::json(
        201,
        json!({ "sha": sha, "message": message, "tree": { "sha": tree }, "parents": parents }),
    )
}

/// "Update a pull request": `title`, `body`, `state` (`open`/`closed`), `base`.
fn update_pull(repo: &mut Repo, number: &str, body: &Value) -> Response {
    let Some(index) = repo
        .pulls
        .iter()
        .position(|p| p.number.to_string() == number)
    else {
        return Response::error(404, "Not Found");
    };
    if let Some(state) = body.get("state") {
        match state.as_str() {
            Some(s @ ("open" | "closed")) => repo.pulls[index].state = s.to_string(),
            _ => return invalid("state must be open or closed"),
        }
    }
    if let Some(title) = body["title"].as_str() {
        repo.pulls[index].title = title.to_string();
    }
    if let Some(text) = body["body"].as_str() {
        repo.pulls[index].body = text.to_string();
    }
    if let Some(base) = body["base"].as_str() {
        if !repo.branches.contains_key(base) {
            return invalid(&format!("base {base} does not exist"));
        }
        repo.pulls[index].base = base.to_string();
    }
    let pull = repo.pulls[index].clone();
    Response::json(200, pull_json(repo, &pull))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn a_commit_from_a_tree_on_a_base_tree_changes_only_its_entries() {
        let mut state = State::default();
        let repo = state.add_repo("Studio/A", "main");
        let head = repo.branches["main"].clone();
        let base = repo.commits[&head].tree.clone();
        let tree = create_tree(
            repo,
            &json!({ "base_tree": base, "tree": [
                { "path": "Packages/a/Runtime.meta", "mode": "100644", "type": "blob", "content": "guid: x\n" }
            ]}),
        );
        assert_eq!(tree.status, 201);
        let tree: Value = serde_json::from_slice(&tree.body).unwrap();
        let commit = create_commit(
            repo,
            &json!({ "message": "fix", "tree": tree["sha"], "parents": [head] }),
        );
        assert_eq!(commit.status, 201);
        let commit: Value = serde_json::from_slice(&commit.body).unwrap();
        let files = &repo.commits[commit["sha"].as_str().unwrap()].files;
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["Packages/a/Runtime.meta", "README.md"]
        );
        // Both sha and content, an unknown parent, a bad mode: refused as GitHub does.
        let both = json!({ "tree": [{ "path": "x", "mode": "100644", "type": "blob", "sha": "a", "content": "b" }] });
        assert_eq!(create_tree(repo, &both).status, 422);
        let bad_mode =
            json!({ "tree": [{ "path": "x", "mode": "644", "type": "blob", "content": "b" }] });
        assert_eq!(create_tree(repo, &bad_mode).status, 422);
        let orphan = json!({ "message": "m", "tree": tree["sha"], "parents": ["0".repeat(40)] });
        assert_eq!(create_commit(repo, &orphan).status, 422);
    }
}

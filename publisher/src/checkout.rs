//! The working tree to publish from: a checkout the workflow made, or a clone the CLI makes itself.
//! Either way it must be at the dispatched commit, with history (the changelog reads it).

use std::fs;
use std::path::{Path, PathBuf};

use crate::git::{git, CommitSha};

/// Where the packages are read from; keeps a temporary clone alive until it is dropped.
pub struct Workspace {
    pub root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Uses an existing checkout. When a sha is given, the checkout must be at it: publishing another
/// commit's packages under this dispatch's name would be silently wrong.
pub fn existing(dir: &Path, sha: Option<&CommitSha>) -> Result<Workspace, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("workspace {}: {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("workspace {} is not a directory", dir.display()));
    }
    if let Some(sha) = sha {
        let head = git(&root, &["rev-parse", "HEAD"])?;
        if head.trim() != sha.as_str() {
            return Err(format!(
                "workspace {} is at {}, not at the requested commit {}",
                dir.display(),
                head.trim(),
                sha.as_str()
            ));
        }
    }
    Ok(Workspace { root, _temp: None })
}

/// Clones `source` (a URL or a local path) into `into` (or a temporary directory) and checks out `sha`
/// detached, with full history.
pub fn clone(source: &str, sha: &CommitSha, into: Option<&Path>) -> Result<Workspace, String> {
    let (root, temp) = match into {
        Some(dir) => {
            if dir.exists()
                && fs::read_dir(dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                return Err(format!(
                    "clone target {} exists and is not empty",
                    dir.display()
                ));
            }
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            (dir.to_path_buf(), None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("upm-publisher-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            (temp.path().join("repo"), Some(temp))
        }
    };
    let parent = root.parent().unwrap_or(Path::new("."));
    let target = root.to_string_lossy().into_owned();
    // `--` keeps a source starting with `-` from being read as an option.
    git(
        parent,
        &["clone", "--quiet", "--no-checkout", "--", source, &target],
    )?;
    // The sha may not be on any branch the clone fetched (a force-push, a PR ref): ask for it by id.
    if git(
        &root,
        &["cat-file", "-e", &format!("{}^{{commit}}", sha.as_str())],
    )
    .is_err()
    {
        git(&root, &["fetch", "--quiet", "origin", sha.as_str()])?;
    }
    git(
        &root,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            sha.as_str(),
        ],
    )?;
    let root = root
        .canonicalize()
        .map_err(|e| format!("clone {}: {e}", root.display()))?;
    Ok(Workspace { root, _temp: temp })
}

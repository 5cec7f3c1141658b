//! health_run: the exchanges of one `health` run, over the shared GitHub client (`upm-github`) and the
//! publisher's registry client. Every decision is `health`'s or the publish path's own checks'; this
//! module asks, lays the package files out for those checks, and records.
//!
//! Reads follow reconcile's path, without a clone. Cost of one repository, in GitHub requests:
//! - head unchanged since the last run: 1 (`GET …/branches/{b}`, answered 304 from the saved ETag),
//!   plus 1 for the fix pull request listing when the repository has fixes (304 too when unchanged);
//! - head moved: + 1 tree (`?recursive=1`) + 1 per blob a check reads that was not read before
//!   (manifests, ignore files, `.meta` files, files small enough to be LFS pointers; blobs are kept by
//!   sha between runs);
//! - a new or changed fix set: + 1 tree + 1 commit + 1 ref + 1 pull request (open or update).
//!
//! Content is compared with the registry by git blob sha, so no other file is ever downloaded.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use upm_github::api::NewPullRequest;
use upm_github::git_data::TreeChange;
use upm_github::{Credentials, Error as GitHubError, GitHub, Secret as GitHubSecret};

use crate::assets;
use crate::discover::{classify, Shape};
use crate::guid_index;
use crate::health::{
    self, FileFix, PackageHealth, PullOutcome, Registered, RepositoryHealth, TreeFile,
};
use crate::job::{self, Notification};
use crate::model::{PackageName, PackagePath, Problem};
use crate::order;
use crate::pack;
use crate::reconcile::{manifest_blobs, Target};
use crate::registry::{self, Registry};
use crate::sweep;
use crate::validate::{self, Validated};

/// What a run remembers of a repository: its default branch, the head it read and the files of its
/// packages there, and the GUIDs it proposed for new `.meta` files (so an update keeps them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub root_tree: Option<String>,
    #[serde(default)]
    pub packages: Vec<Snapshot>,
    #[serde(default)]
    pub guids: BTreeMap<String, String>,
}

/// One package of a head: its directory, the tree sha there, and its files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub dir: String,
    pub tree: String,
    pub files: Vec<TreeFile>,
}

/// The state file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub repositories: BTreeMap<String, Memory>,
    /// Blob sha → base64 bytes, for the blobs the checks read (immutable by sha).
    #[serde(default)]
    pub blobs: BTreeMap<String, String>,
    /// `name@version tree-sha` → the packed files that differ from the registry's tarball (versions
    /// are immutable and the tree sha names the content, so a quiet week downloads no tarball).
    #[serde(default)]
    pub compared: BTreeMap<String, Vec<String>>,
    /// The week whose Discord message was sent.
    #[serde(default)]
    pub posted_week: Option<String>,
}

pub struct Settings<'a> {
    /// Branch heads and the fix pull request listing; its ETag cache is saved between runs.
    pub heads: &'a GitHub,
    /// Trees and blobs, immutable by sha.
    pub objects: &'a GitHub,
    /// Writes the fix commits and pull requests; `None` in a dry run.
    pub writer: Option<&'a GitHub>,
    pub registry: &'a Registry,
    pub guid_cache: Option<&'a Path>,
    pub jobs: usize,
    pub week: &'a str,
}

fn gh(repository: &str, e: GitHubError) -> String {
    format!("{repository}: {e}")
}

/// The studio-wide GUID index, built once per run when the first package needs it.
struct LazyIndex<'a> {
    settings: &'a Settings<'a>,
    built: Option<Result<guid_index::Index, String>>,
}

impl LazyIndex<'_> {
    fn get(&mut self) -> &Result<guid_index::Index, String> {
        self.built.get_or_insert_with(|| {
            guid_index::build(
                self.settings.registry,
                self.settings.guid_cache,
                self.settings.jobs,
            )
            .map(|(index, _)| index)
        })
    }
}

pub fn run(settings: &Settings, targets: &[Target], state: &mut State) -> Vec<RepositoryHealth> {
    let mut index = LazyIndex {
        settings,
        built: None,
    };
    let mut lines = Vec::new();
    for target in targets {
        let key = target.repository.to_ascii_lowercase();
        let mut memory = state.repositories.get(&key).cloned().unwrap_or_default();
        let line = match check(settings, target, &mut memory, state, &mut index) {
            Ok(line) => line,
            Err(error) => RepositoryHealth {
                repository: target.repository.clone(),
                sha: memory.sha.clone(),
                packages: Vec::new(),
                pull: None,
                error: Some(error),
            },
        };
        eprintln!(
            "upm-publisher health: {}: {}",
            target.repository,
            match &line.error {
                Some(e) => format!("FAILED: {e}"),
                None => format!(
                    "{} packages, {} problems{}",
                    line.packages.len(),
                    line.problems(),
                    line.pull
                        .as_ref()
                        .map(|p| format!(", fix pull request {}", p.action))
                        .unwrap_or_default()
                ),
            }
        );
        state.repositories.insert(key, memory);
        lines.push(line);
    }
    // Keep only the blobs the remembered heads still name.
    let named: BTreeSet<String> = state
        .repositories
        .values()
        .flat_map(|m| {
            m.packages
                .iter()
                .flat_map(|p| p.files.iter().map(|f| f.blob.clone()))
        })
        .collect();
    state.blobs.retain(|sha, _| named.contains(sha));
    lines
}

/// Reads the head (one conditional request when nothing moved) and, when it moved, the tree and the
/// blobs the checks read.
fn read_head(
    settings: &Settings,
    target: &Target,
    memory: &mut Memory,
    state: &mut State,
) -> Result<(String, String), String> {
    let repository = target.repository.as_str();
    let mut branch = target
        .branch
        .clone()
        .or_else(|| memory.default_branch.clone());
    let (branch, sha) = loop {
        let name = match &branch {
            Some(name) => name.clone(),
            None => {
                let repo = settings
                    .heads
                    .repository(repository)
                    .map_err(|e| gh(repository, e))?;
                memory.default_branch = Some(repo.default_branch.clone());
                repo.default_branch
            }
        };
        match settings
            .heads
            .branch_fetched(repository, &name)
            .map_err(|e| gh(repository, e))?
        {
            Some(head) => break (name, head.value.commit.sha),
            None if target.branch.is_none() && branch.is_some() => {
                memory.default_branch = None;
                branch = None;
            }
            None => return Err(format!("branch {name} does not exist")),
        }
    };
    if memory.sha.as_deref() == Some(sha.as_str()) {
        return Ok((branch, sha));
    }
    let tree = settings
        .objects
        .tree(repository, &sha, true)
        .map_err(|e| gh(repository, e))?;
    let manifests = manifest_blobs(&tree)?;
    let mut packages = Vec::new();
    for manifest in manifests {
        let text = read_blob(settings, repository, &manifest.blob, state)?;
        match classify(&String::from_utf8_lossy(&text)) {
            Shape::NotUpm => continue,
            Shape::Upm(_) | Shape::Unparseable(_) => {}
        }
        let dir = manifest.dir.as_str().to_string();
        let files = health::files_below(&tree, &dir);
        for file in files.iter().filter(|f| health::must_read(&f.path, f.size)) {
            read_blob(settings, repository, &file.blob, state)?;
        }
        packages.push(Snapshot {
            tree: health::dir_tree_sha(&tree, &dir).unwrap_or_default(),
            dir,
            files,
        });
    }
    memory.sha = Some(sha.clone());
    memory.root_tree = Some(tree.sha.clone());
    memory.packages = packages;
    Ok((branch, sha))
}

fn read_blob(
    settings: &Settings,
    repository: &str,
    sha: &str,
    state: &mut State,
) -> Result<Vec<u8>, String> {
    if let Some(bytes) = state.blobs.get(sha).and_then(|b| STANDARD.decode(b).ok()) {
        return Ok(bytes);
    }
    let bytes = settings
        .objects
        .blob(repository, sha)
        .map_err(|e| gh(repository, e))?;
    state.blobs.insert(sha.to_string(), STANDARD.encode(&bytes));
    Ok(bytes)
}

/// Lays a package out on disk for the publish path's checks: the bytes of the files they read, and
/// files of the right size (holes) for the others, which they judge by path and size only.
fn lay_out(root: &Path, package: &Snapshot, state: &State) -> Result<PathBuf, String> {
    let dir = if package.dir.is_empty() {
        root.to_path_buf()
    } else {
        root.join(&package.dir)
    };
    for file in &package.files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        match state
            .blobs
            .get(&file.blob)
            .and_then(|b| STANDARD.decode(b).ok())
        {
            Some(bytes) => fs::write(&path, bytes),
            None => fs::File::create(&path).and_then(|f| f.set_len(file.size)),
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(dir)
}

/// The publish path's checks of a package directory: the manifest's (`validate`) and the packed
/// files' (`assets`), with the files npm would pack and the GUIDs Unity reads.
#[allow(clippy::type_complexity)]
fn publish_checks(
    dir: &Path,
    rel: &str,
    manifest: &Map<String, Value>,
) -> (Vec<Problem>, Vec<String>, BTreeMap<String, String>, bool) {
    let mut problems = Vec::new();
    let mut private = false;
    match validate::validate(PackagePath::new(rel), dir.to_path_buf(), manifest.clone()) {
        Validated::Fail(failed) => problems.extend(failed.problems),
        Validated::Skip(_) => private = true,
        Validated::Ok(_) => {}
    }
    let (files, guids) = match pack::select_files(dir, manifest) {
        Ok(files) => {
            let findings = assets::check(&files, manifest, &assets::OnDisk(dir));
            problems.extend(findings.problems);
            (files, findings.guids)
        }
        Err(e) => {
            problems.push(Problem {
                field: "files".into(),
                reason: e,
            });
            (Vec::new(), BTreeMap::new())
        }
    };
    (problems, files, guids, private)
}

fn check(
    settings: &Settings,
    target: &Target,
    memory: &mut Memory,
    state: &mut State,
    index: &mut LazyIndex,
) -> Result<RepositoryHealth, String> {
    let (branch, sha) = read_head(settings, target, memory, state)?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let names: BTreeSet<String> = BTreeSet::new();
    let mut packages = Vec::new();
    let mut all_fixes: Vec<FileFix> = Vec::new();
    let mut published_with_fixes = Vec::new();
    let mut own_guids: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut names = names;
    for snapshot in &memory.packages.clone() {
        let dir = lay_out(work.path(), snapshot, state)?;
        let manifest_text =
            String::from_utf8_lossy(&fs::read(dir.join("package.json")).unwrap_or_default())
                .into_owned();
        let map = match classify(&manifest_text) {
            Shape::Upm(map) => map,
            Shape::NotUpm => continue,
            Shape::Unparseable(e) => {
                packages.push(PackageHealth {
                    dir: snapshot.dir.clone(),
                    name: String::new(),
                    version: String::new(),
                    problems: vec![health::Finding {
                        field: "package.json".into(),
                        reason: e,
                        fix: false,
                    }],
                });
                continue;
            }
        };
        let (mut problems, packed, guids, private) = publish_checks(&dir, &snapshot.dir, &map);
        if private {
            continue;
        }
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = map
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        names.insert(name.clone());
        own_guids.push((name.clone(), guids.clone()));

        // The studio-wide GUID index, as the publish path checks it.
        if !guids.is_empty() {
            match index.get() {
                Ok(index) => problems.extend(guid_index::clashes(&name, &guids, index)),
                Err(e) => return Err(format!("the registry's GUID index: {e}")),
            }
        }
        // Exact dependencies on the studio's packages must be on the registry; ranges of them get the
        // registry's versions, for their fix.
        let mut on_registry: BTreeMap<String, Vec<semver::Version>> = BTreeMap::new();
        for (dep, value) in map
            .get("dependencies")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if !order::is_ours(&name, dep, &names) {
                continue;
            }
            let Some(value) = value.as_str() else {
                continue;
            };
            let packument = settings
                .registry
                .packument(&PackageName::new_unchecked(dep.clone()))?;
            let versions = packument.map(|p| p.semver_versions()).unwrap_or_default();
            match semver::Version::parse(value) {
                Ok(exact) if !versions.contains(&exact) => problems.push(Problem {
                    field: format!("dependencies.{dep}"),
                    reason: format!(
                        "{dep}@{exact} is not on the registry: no project can install this package"
                    ),
                }),
                Ok(_) => {}
                Err(_) => {
                    on_registry.insert(dep.clone(), versions);
                }
            }
        }
        // Drift against the registry.
        let registered = registered(settings, state, &name, &version, snapshot, &packed)?;
        problems.extend(health::drift(&version, &registered));

        // Fixes, kept only when the publish path's checks of the fixed package no longer report them.
        let guid_memory = &mut memory.guids;
        let mut draw = |path: &str| {
            guid_memory
                .entry(path.to_string())
                .or_insert_with(|| {
                    health::random_guid()
                        .unwrap_or_else(|_| format!("{:032x}", rand_fallback(path)))
                })
                .clone()
        };
        let fixes = health::plan_fixes(
            &snapshot.dir,
            &manifest_text,
            &problems,
            &on_registry,
            &mut draw,
        );
        let fixes = if fixes.is_empty() {
            fixes
        } else {
            let remaining = recheck(work.path(), &dir, &snapshot.dir, &fixes)?;
            health::confirmed(fixes, &remaining)
        };
        let fixed: BTreeSet<String> = fixes
            .iter()
            .flat_map(|f| f.changes.iter().map(|c| c.field.clone()))
            .collect();
        if !fixes.is_empty() && registered.has_version {
            published_with_fixes.push(format!("{name}@{version}"));
        }
        all_fixes.extend(fixes);
        packages.push(PackageHealth {
            dir: snapshot.dir.clone(),
            name,
            version,
            problems: health::findings(&problems, &fixed),
        });
    }
    // GUIDs shared between the packages of this head.
    let owners: Vec<(String, &BTreeMap<String, String>)> =
        own_guids.iter().map(|(n, g)| (n.clone(), g)).collect();
    for (i, clashes) in assets::guid_clashes(&owners) {
        if let Some(package) = packages.iter_mut().find(|p| p.name == owners[i].0) {
            package
                .problems
                .extend(health::findings(&clashes, &BTreeSet::new()));
        }
    }
    // Forget proposed GUIDs of files no longer proposed.
    let proposed: BTreeSet<&str> = all_fixes.iter().map(|f| f.path.as_str()).collect();
    memory
        .guids
        .retain(|path, _| proposed.contains(path.as_str()));

    let pull = if all_fixes.is_empty() {
        None
    } else {
        let body = health::pull_body(&packages, &all_fixes, &published_with_fixes, settings.week);
        Some(fix_pull(
            settings,
            &target.repository,
            &branch,
            memory,
            &all_fixes,
            &body,
        ))
    };
    Ok(RepositoryHealth {
        repository: target.repository.clone(),
        sha: Some(sha),
        packages,
        pull,
        error: None,
    })
}

/// A last resort when the OS gives no randomness: still 32 hex digits, unique per path and run.
fn rand_fallback(path: &str) -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = health::git_blob_sha(format!("{path}{nanos}").as_bytes());
    u128::from_str_radix(&digest[..32], 16).unwrap_or(nanos)
}

/// Writes the fixes into the laid-out package and runs the publish path's checks again: the fields
/// still reported.
fn recheck(
    root: &Path,
    dir: &Path,
    rel: &str,
    fixes: &[FileFix],
) -> Result<BTreeSet<String>, String> {
    for fix in fixes {
        let path = root.join(&fix.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        fs::write(&path, &fix.content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let text = fs::read_to_string(dir.join("package.json")).map_err(|e| e.to_string())?;
    let Shape::Upm(map) = classify(&text) else {
        return Ok(fixes
            .iter()
            .flat_map(|f| f.changes.iter().map(|c| c.field.clone()))
            .collect());
    };
    let (problems, ..) = publish_checks(dir, rel, &map);
    Ok(problems.into_iter().map(|p| p.field).collect())
}

/// The registry's view of the branch's version: `latest`, whether the version is there, and which
/// packed files differ from its tarball (compared by git blob sha; remembered per tree sha).
fn registered(
    settings: &Settings,
    state: &mut State,
    name: &str,
    version: &str,
    snapshot: &Snapshot,
    packed: &[String],
) -> Result<Registered, String> {
    let package = PackageName::new_unchecked(name.to_string());
    let Some(packument) = settings.registry.packument(&package)? else {
        return Ok(Registered::default());
    };
    let mut out = Registered {
        latest: packument.dist_tags.get("latest").cloned(),
        has_version: packument.versions.contains_key(version),
        changed: None,
    };
    if !out.has_version || snapshot.tree.is_empty() {
        return Ok(out);
    }
    let key = format!("{name}@{version} {}", snapshot.tree);
    if let Some(changed) = state.compared.get(&key) {
        out.changed = Some(changed.clone());
        return Ok(out);
    }
    let Some(dist) = packument.versions[version].dist.as_ref() else {
        return Ok(out);
    };
    let url = registry::tarball_url(settings.registry.base(), &package, &dist.tarball);
    let tgz = settings.registry.download(&url)?;
    let stored: BTreeMap<String, String> = upm_unity::tarball::files(&tgz)?
        .into_iter()
        .map(|(path, bytes)| (path, health::git_blob_sha(&bytes)))
        .collect();
    let blobs: BTreeMap<&str, &str> = snapshot
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.blob.as_str()))
        .collect();
    let ours: BTreeMap<String, String> = packed
        .iter()
        .filter_map(|p| Some((p.clone(), blobs.get(p.as_str())?.to_string())))
        .collect();
    let changed = health::changed_files(&ours, &stored);
    state.compared.insert(key, changed.clone());
    out.changed = Some(changed);
    Ok(out)
}

/// Opens or updates the repository's one fix pull request. The open one is found by its head branch;
/// when its body already carries this fix set's fingerprint, nothing is written.
fn fix_pull(
    settings: &Settings,
    repository: &str,
    base: &str,
    memory: &Memory,
    fixes: &[FileFix],
    body: &str,
) -> PullOutcome {
    let outcome = |action: String, pull: Option<&upm_github::api::PullRequest>| PullOutcome {
        action,
        number: pull.map(|p| p.number),
        url: pull.map(|p| p.html_url.clone()),
    };
    let owner = repository.split('/').next().unwrap_or_default();
    let open = match settings
        .heads
        .open_pulls_from(repository, &format!("{owner}:{}", health::FIX_BRANCH))
    {
        Ok(open) => open,
        Err(e) => return outcome(format!("failed: {e}"), None),
    };
    let existing = open.into_iter().find(|p| p.base.ref_name == base);
    let wanted = health::fingerprint(fixes);
    if let Some(pull) = &existing {
        if pull.body.as_deref().and_then(health::fingerprint_of) == Some(wanted.as_str()) {
            return outcome("unchanged".into(), Some(pull));
        }
    }
    let Some(writer) = settings.writer else {
        return outcome("dry run".into(), existing.as_ref());
    };
    let result = (|| {
        let head = memory.sha.as_deref().ok_or("no head")?;
        let root = memory.root_tree.as_deref().ok_or("no tree")?;
        let changes: Vec<TreeChange> = fixes
            .iter()
            .map(|f| TreeChange {
                path: f.path.clone(),
                content: Some(f.content.clone()),
            })
            .collect();
        let tree = writer
            .create_tree(repository, root, &changes)
            .map_err(|e| e.to_string())?;
        let commit = writer
            .create_commit(repository, &health::commit_message(fixes), &tree, &[head])
            .map_err(|e| e.to_string())?;
        // The branch may outlive its pull request (merged or closed): move it, forcing, as the fix
        // commit sits on the current head rather than on the old fixes.
        match writer.create_branch(repository, health::FIX_BRANCH, &commit) {
            Ok(()) => {}
            Err(e) if e.status() == Some(422) => writer
                .update_branch(repository, health::FIX_BRANCH, &commit, true)
                .map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        }
        match &existing {
            Some(pull) => writer
                .update_pull(repository, pull.number, health::FIX_TITLE, body)
                .map(|p| ("updated", p)),
            None => writer
                .create_pull(
                    repository,
                    &NewPullRequest {
                        title: health::FIX_TITLE,
                        head: health::FIX_BRANCH,
                        base,
                        body,
                    },
                )
                .map(|p| ("opened", p)),
        }
        .map_err(|e| e.to_string())
    })();
    match result {
        Ok((action, pull)) => outcome(action.into(), Some(&pull)),
        Err(e) => outcome(format!("failed: {e}"), existing.as_ref()),
    }
}

// ---------------------------------------------------------------------------------------------------
// The `health` command

pub const AFTER_HELP: &str = "\
Secrets come from the environment only, never from arguments:
  GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY  the App: reads with its tokens narrowed by
                        GITHUB_APP_TOKEN_PERMISSIONS (contents:read,pull_requests:read), writes the
                        fix pull requests with tokens narrowed to contents:write,pull_requests:write
  GITHUB_TOKEN          instead of the App (reads and writes)
  UPM_FIX_TOKEN         writes the fix pull requests instead (tests)
  NPM_TOKEN             registry token for reading, when the registry needs one
  DISCORD_WEBHOOK_URL   the week's message when anything is unhealthy (once per week)

Exit status:
  0  every repository was checked (problems are reported, not failures)
  1  a repository could not be checked, or a fix pull request could not be written
  2  usage error";

#[derive(clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    sources: crate::sweep::Sources,

    /// The organization whose App installation reads the repositories (the central repository's
    /// owner; Actions sets GITHUB_REPOSITORY_OWNER).
    #[arg(long, env = "GITHUB_REPOSITORY_OWNER", value_name = "OWNER")]
    owner: Option<String>,

    /// A directory holding the run's memory between runs (state and ETags); created if missing.
    #[arg(long, env = "UPM_HEALTH_STATE", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Keep the studio-wide GUID index in this file between runs.
    #[arg(long, env = "UPM_GUID_CACHE", value_name = "FILE")]
    guid_cache: Option<PathBuf>,

    /// Report only: write no pull request and post nothing.
    #[arg(long, env = "UPM_DRY_RUN")]
    dry_run: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Append a Markdown summary to this file (GitHub Actions sets GITHUB_STEP_SUMMARY).
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    summary_file: Option<PathBuf>,

    /// Write the report as JSON to this file.
    #[arg(long, env = "UPM_AUDIT_FILE", value_name = "FILE")]
    audit_file: Option<PathBuf>,

    /// Post into this thread of the webhook's channel.
    #[arg(long, env = "DISCORD_THREAD_ID", value_name = "ID")]
    discord_thread_id: Option<String>,

    /// Concurrent registry downloads for the GUID index.
    #[arg(long, env = "UPM_JOBS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Unix time the run counts as "now" (the week it belongs to); default: the clock.
    #[arg(long, env = "UPM_HEALTH_NOW", hide = true)]
    now: Option<u64>,
}

const PROGRAM: &str = "upm-publisher health";
const STATE_FILE: &str = "health.json";

pub fn command(args: HealthArgs) -> ExitCode {
    let started = Instant::now();
    let usage = |message: String| {
        eprintln!("{PROGRAM}: {message}");
        ExitCode::from(2)
    };
    let targets = match fs::read_to_string(&args.sources.registry_file)
        .map_err(|e| e.to_string())
        .and_then(|text| health::targets(&text))
    {
        Ok(t) => t,
        Err(e) => return usage(format!("{}: {e}", args.sources.registry_file.display())),
    };
    let (registry, policy) = match job::registry(
        &args.sources.registry,
        args.sources.attempts,
        args.sources.timeout,
    ) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let reads = match Credentials::from_env(args.owner.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let writes = match std::env::var("UPM_FIX_TOKEN") {
        Ok(token) if !token.trim().is_empty() => {
            Credentials::Token(GitHubSecret::new(token.trim()))
        }
        _ => match &reads {
            // The same App, its tokens narrowed to what the fix commits and pull requests need.
            Credentials::App(app) => match (**app)
                .clone()
                .with_permissions("contents:write,pull_requests:write")
            {
                Ok(app) => Credentials::App(Box::new(app)),
                Err(e) => return usage(e),
            },
            other => other.clone(),
        },
    };
    let (heads, objects, writer) = match args.sources.clients(reads, writes) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let mut state = match &args.state_dir {
        Some(dir) => match sweep::open_memory::<State>(dir, STATE_FILE, &heads, PROGRAM) {
            Ok(state) => state,
            Err(e) => return usage(e),
        },
        None => State::default(),
    };
    state.repositories.retain(|key, _| {
        targets
            .iter()
            .any(|t| t.repository.eq_ignore_ascii_case(key))
    });
    let now = args.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let week = health::iso_week(now);
    let settings = Settings {
        heads: &heads,
        objects: &objects,
        writer: (!args.dry_run).then_some(&writer),
        registry: &registry,
        guid_cache: args.guid_cache.as_deref(),
        jobs: usize::from(args.jobs),
        week: &week,
    };
    eprintln!(
        "{PROGRAM}: {week}, {} repositories{}",
        targets.len(),
        if args.dry_run { ", dry run" } else { "" }
    );
    let lines = run(&settings, &targets, &mut state);

    let requests = heads.stats().requests + objects.stats().requests + writer.stats().requests;
    let not_modified = heads.stats().not_modified + objects.stats().not_modified;
    let millis = started.elapsed().as_millis();
    let how = Notification {
        thread_id: args.discord_thread_id.as_deref(),
        policy: &policy,
        timeout: args.sources.timeout,
        dry_run: args.dry_run,
        program: PROGRAM,
    };
    let notification =
        if state.posted_week.as_deref() == Some(week.as_str()) && !health::healthy(&lines) {
            "already posted this week".to_string()
        } else {
            job::notify_discord(&how, || {
                health::alert(&week, &lines, job::run_url(&job::server_url()).as_deref())
            })
        };
    if notification == "sent" {
        state.posted_week = Some(week.clone());
    }
    if let Some(dir) = &args.state_dir {
        sweep::save_memory(dir, STATE_FILE, &state, &heads, PROGRAM);
    }
    if let Some(path) = &args.summary_file {
        job::append_summary(
            path,
            &health::summary(&week, &lines, requests, not_modified, millis),
            PROGRAM,
        );
    }
    let report = json!({
        "week": week,
        "counts": health::counts(&lines),
        "repositories": lines,
        "github_requests": requests,
        "not_modified": not_modified,
        "millis": millis,
        "notification": notification,
    });
    let mut ok = true;
    if let Some(path) = &args.audit_file {
        ok &= job::write_audit(path, &report, PROGRAM);
    }
    if args.json {
        println!("{report:#}");
    }
    let failed = lines.iter().any(|l| {
        l.error.is_some()
            || l.pull
                .as_ref()
                .is_some_and(|p| p.action.starts_with("failed"))
    });
    eprintln!(
        "{PROGRAM}: {} GitHub requests ({not_modified} answered 304) in {millis} ms; notification: {notification}",
        requests
    );
    if ok && !failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

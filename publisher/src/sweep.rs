//! sweep: the exchanges of one `reconcile` run, over the shared GitHub client (`upm-github`) and the
//! publisher's registry client. Every decision is `reconcile`'s; this module only asks and records.
//!
//! Cost of one repository, in GitHub requests:
//! - head unchanged since the last sweep: 1 (`GET …/branches/{b}`, answered 304 from the saved ETag);
//! - head moved: 1 + 1 tree (`?recursive=1`) + 1 per package.json blob not seen before;
//! - first sweep without a `branch` in the registry: + 1 (`GET /repos/{o}/{r}` for the default branch,
//!   remembered afterwards);
//! - a catch-up: + 1 dispatch.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use semver::Version;
use serde_json::json;
use upm_github::{ClientConfig, Credentials, Error as GitHubError, GitHub, Secret as GitHubSecret};

use crate::job::{self, Notification};
use crate::model::PackageName;
use crate::reconcile::{
    active_targets, alert, catch_up_payload, decide, dispatched, manifest_blobs, order, prune,
    read_manifest, recently_dispatched, summary, Budget, Dispatch, Found, Known, Line, Manifest,
    Remembered, State, Target,
};
use crate::registry::Registry;

/// Consecutive repositories whose registry lookups failed before the sweep stops asking the registry
/// (an outage): the remaining lines fail at once instead of each waiting through its retries.
const REGISTRY_FAILURES_BEFORE_GIVING_UP: usize = 3;

pub struct Settings<'a> {
    /// Reads branch heads and repositories; its ETag cache is saved between sweeps.
    pub heads: &'a GitHub,
    /// Reads trees and blobs, which are immutable by sha: their answers are not worth a saved cache.
    pub objects: &'a GitHub,
    /// Sends the catch-up dispatches; `None` in a dry run.
    pub dispatcher: Option<&'a GitHub>,
    pub dispatch_repo: &'a str,
    pub registry: &'a Registry,
    pub sweep_id: &'a str,
    /// Unix seconds, recorded as each repository's `last_examined`.
    pub now: u64,
}

pub struct Swept {
    pub lines: Vec<(String, Line)>,
    /// GitHub requests sent (304s included), and how many of them GitHub answered 304.
    pub requests: u64,
    pub not_modified: u64,
}

fn requests(settings: &Settings) -> u64 {
    settings.heads.stats().requests
        + settings.objects.stats().requests
        + settings.dispatcher.map_or(0, |d| d.stats().requests)
}

/// Why a repository's examination stopped.
enum Stop {
    /// Out of budget or rate limit: the rest of the sweep is deferred too.
    Deferred(String),
    Failed(String),
}

fn github_error(repository: &str, e: GitHubError) -> Stop {
    match e {
        GitHubError::RateLimited { wait_secs, .. } => Stop::Deferred(format!(
            "GitHub's rate limit asked to wait {wait_secs} s (longer than the client's bound)"
        )),
        other => Stop::Failed(format!("{repository}: {other}")),
    }
}

pub fn sweep(settings: &Settings, targets: &[Target], state: &mut State, budget: Budget) -> Swept {
    let start = requests(settings);
    let start_not_modified =
        settings.heads.stats().not_modified + settings.objects.stats().not_modified;
    let mut lines = Vec::new();
    let mut deferred: Option<String> = None;
    let mut registry_failures = 0;
    for target in targets {
        if let Some(why) = &deferred {
            lines.push((target.repository.clone(), Line::Deferred(why.clone())));
            continue;
        }
        let key = target.repository.to_ascii_lowercase();
        let mut memory = state.get(&key).cloned().unwrap_or_default();
        let ask = |cost: u64| {
            budget
                .allows(requests(settings) - start, cost)
                .map_err(Stop::Deferred)
        };
        let line = match examine(settings, target, &mut memory, &ask) {
            Err(Stop::Deferred(why)) => {
                deferred = Some(why.clone());
                Line::Deferred(why)
            }
            Err(Stop::Failed(why)) => Line::Failed(why),
            Ok((branch, sha, packages)) => {
                let answers = if registry_failures >= REGISTRY_FAILURES_BEFORE_GIVING_UP {
                    vec![None; packages.len()]
                } else {
                    lookup(settings.registry, &packages)
                };
                let line = decide(&sha, &packages, &answers);
                if matches!(line, Line::Failed(_)) {
                    registry_failures += 1;
                } else {
                    registry_failures = 0;
                }
                catch_up(settings, &target.repository, &branch, line, &mut memory)
            }
        };
        if !matches!(line, Line::Deferred(_)) {
            memory.last_examined = settings.now;
        }
        eprintln!(
            "upm-publisher reconcile: {}: {}",
            target.repository,
            describe(&line)
        );
        state.insert(key, memory);
        lines.push((target.repository.clone(), line));
    }
    let not_modified = settings.heads.stats().not_modified + settings.objects.stats().not_modified
        - start_not_modified;
    Swept {
        lines,
        requests: requests(settings) - start,
        not_modified,
    }
}

/// Is each package's version on the registry? Stops asking at the first unclear answer: one failed
/// lookup already fails the line (`decide`), and the registry may be down.
fn lookup(registry: &Registry, packages: &[Found]) -> Vec<Option<bool>> {
    let mut answers = Vec::with_capacity(packages.len());
    for package in packages {
        let answer = Version::parse(&package.version).ok().and_then(|version| {
            registry
                .exists(&PackageName::new_unchecked(package.name.clone()), &version)
                .map_err(|e| eprintln!("upm-publisher reconcile: {e}"))
                .ok()
        });
        answers.push(answer);
        if answer.is_none() {
            answers.resize(packages.len(), None);
            break;
        }
    }
    answers
}

/// Reads the head of the publishing branch and the UPM packages there: `(branch, sha, packages)`.
fn examine(
    settings: &Settings,
    target: &Target,
    memory: &mut Remembered,
    ask: &dyn Fn(u64) -> Result<(), Stop>,
) -> Result<(String, String, Vec<Found>), Stop> {
    let repository = target.repository.as_str();
    let mut branch = target
        .branch
        .clone()
        .or_else(|| memory.default_branch.clone());
    let head = loop {
        let name = match &branch {
            Some(name) => name.clone(),
            None => {
                ask(2)?;
                let repo = settings
                    .heads
                    .repository(repository)
                    .map_err(|e| github_error(repository, e))?;
                memory.default_branch = Some(repo.default_branch.clone());
                repo.default_branch
            }
        };
        ask(1)?;
        match settings
            .heads
            .branch(repository, &name)
            .map_err(|e| github_error(repository, e))?
        {
            Some(head) => break (name, head.commit.sha),
            // The remembered default branch was renamed: ask once more.
            None if target.branch.is_none() && branch.is_some() => {
                memory.default_branch = None;
                branch = None;
            }
            None => return Err(Stop::Failed(format!("branch {name} does not exist"))),
        }
    };
    let (branch, sha) = head;
    if memory.sha.as_deref() == Some(sha.as_str()) {
        return Ok((branch, sha, memory.packages()));
    }
    ask(1)?;
    let tree = settings
        .objects
        .tree(repository, &sha, true)
        .map_err(|e| github_error(repository, e))?;
    let blobs = manifest_blobs(&tree).map_err(Stop::Failed)?;
    let mut manifests = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let package = match memory.known_blob(&blob.blob) {
            // The same bytes at another directory still name that directory.
            Some(known) => known.package.clone().map(|mut f| {
                f.dir = blob.dir.as_str().to_string();
                f
            }),
            None => {
                ask(1)?;
                let bytes = settings
                    .objects
                    .blob(repository, &blob.blob)
                    .map_err(|e| github_error(repository, e))?;
                match read_manifest(&blob.dir, &String::from_utf8_lossy(&bytes)) {
                    Manifest::Package(found) => Some(found),
                    Manifest::Ignored | Manifest::Invalid(_) => None,
                }
            }
        };
        manifests.push(Known {
            dir: blob.dir.as_str().to_string(),
            blob: blob.blob,
            package,
        });
    }
    memory.sha = Some(sha.clone());
    memory.manifests = manifests;
    Ok((branch, sha, memory.packages()))
}

fn catch_up(
    settings: &Settings,
    repository: &str,
    branch: &str,
    line: Line,
    memory: &mut Remembered,
) -> Line {
    let Line::CatchUp { sha, missing, .. } = line else {
        return line;
    };
    let dispatch = if let Some(at) =
        recently_dispatched(memory.dispatched.as_ref(), &sha, &missing, settings.now)
    {
        Dispatch::AlreadySent { at }
    } else if let Some(dispatcher) = settings.dispatcher {
        let payload = catch_up_payload(repository, branch, &sha, &missing, settings.sweep_id);
        match dispatcher.dispatch(settings.dispatch_repo, "package_publish", &payload) {
            Ok(()) => {
                memory.dispatched = Some(dispatched(&sha, &missing, settings.now));
                Dispatch::Sent
            }
            Err(e) => Dispatch::Failed(e.to_string()),
        }
    } else {
        Dispatch::DryRun
    };
    Line::CatchUp {
        sha,
        missing,
        dispatch,
    }
}

fn describe(line: &Line) -> String {
    match line {
        Line::UpToDate { packages, .. } => format!("up to date ({packages} packages)"),
        Line::CatchUp {
            missing, dispatch, ..
        } => format!("{} missing, dispatch: {dispatch:?}", missing.len()),
        Line::Deferred(why) => format!("deferred: {why}"),
        Line::Failed(why) => format!("FAILED: {why}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// The `reconcile` command

pub const AFTER_HELP: &str = "\
Secrets come from the environment only, never from arguments:
  GITHUB_TOKEN          reads the package repositories (contents: read); with GITHUB_APP_ID and
                        GITHUB_APP_PRIVATE_KEY instead, the App's installation on the dispatch
                        repository's owner is used
  UPM_DISPATCH_TOKEN    sends the catch-up dispatches (contents: write on the dispatch repository);
                        GITHUB_TOKEN's credentials when unset
  NPM_TOKEN             registry token for reading, when the registry needs one
  DISCORD_WEBHOOK_URL   the alert when anything was caught up or a line failed

Exit status:
  0  every repository was examined or deferred, and every catch-up was dispatched
  1  a repository's line failed, or a dispatch failed (the other lines are complete)
  2  usage error";

#[derive(clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    sources: Sources,

    /// The central repository that receives `package_publish` (Actions sets GITHUB_REPOSITORY).
    #[arg(long, env = "UPM_DISPATCH_REPO", value_name = "OWNER/NAME")]
    dispatch_repo: String,

    /// A directory holding the sweep's memory between runs (state and ETags); created if missing.
    #[arg(long, env = "UPM_RECONCILE_STATE", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// GitHub requests one sweep may send.
    #[arg(long, env = "UPM_RECONCILE_BUDGET", default_value_t = 500)]
    budget: u64,

    /// Report what is missing; dispatch nothing and post nothing.
    #[arg(long, env = "UPM_DRY_RUN")]
    dry_run: bool,

    /// Append a Markdown summary to this file (GitHub Actions sets GITHUB_STEP_SUMMARY).
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    summary_file: Option<PathBuf>,

    /// Write the sweep's result as JSON (one line per repository, the request counts).
    #[arg(long, env = "UPM_AUDIT_FILE", value_name = "FILE")]
    audit_file: Option<PathBuf>,

    /// Post into this thread of the webhook's channel.
    #[arg(long, env = "DISCORD_THREAD_ID", value_name = "ID")]
    discord_thread_id: Option<String>,
}

/// What the sweeps over every registered repository (reconcile, health) read, and how hard they try.
#[derive(clap::Args)]
pub struct Sources {
    /// The registry file listing the repositories (the worker's format; health skips an entry with
    /// `"health": false`).
    #[arg(
        long,
        env = "UPM_REGISTRY_FILE",
        value_name = "FILE",
        default_value = "config/repositories.json"
    )]
    pub registry_file: PathBuf,

    /// The npm registry's base URL.
    #[arg(long, env = "UPM_REGISTRY", value_name = "URL")]
    pub registry: String,

    /// GitHub's REST API (Actions sets GITHUB_API_URL).
    #[arg(
        long,
        env = "GITHUB_API_URL",
        value_name = "URL",
        default_value = "https://api.github.com"
    )]
    pub github_api: String,

    /// Attempts per registry or Discord request.
    #[arg(long, env = "UPM_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub attempts: u32,

    /// Timeout of one HTTP request, in seconds.
    #[arg(long, env = "UPM_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

impl Sources {
    /// A GitHub client for `credentials`, with this sweep's request timeout.
    fn github(&self, credentials: Credentials) -> Result<GitHub, String> {
        let mut config = ClientConfig::new(&self.github_api);
        config.timeout = Duration::from_secs(self.timeout);
        GitHub::new(config, credentials)
    }

    /// The three clients of a sweep: heads (its ETag cache is the one kept between runs), objects
    /// (trees and blobs, whose answers never change), and the writer.
    pub fn clients(
        &self,
        reads: Credentials,
        writes: Credentials,
    ) -> Result<(GitHub, GitHub, GitHub), String> {
        Ok((
            self.github(reads.clone())?,
            self.github(reads)?,
            self.github(writes)?,
        ))
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A sweep's memory between runs, in `dir`: its state (`file`, JSON) and the heads client's ETag
/// cache. A missing or damaged state only costs requests: the sweep starts afresh. `Err`: the
/// directory cannot be made.
pub fn open_memory<T: serde::de::DeserializeOwned + Default>(
    dir: &Path,
    file: &str,
    heads: &GitHub,
    program: &str,
) -> Result<T, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let state = match fs::read_to_string(dir.join(file)) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            eprintln!("{program}: ignoring the unreadable state file: {e}");
            T::default()
        }),
        Err(_) => T::default(),
    };
    if let Err(e) = heads.load_etags(&dir.join(ETAGS_FILE)) {
        eprintln!("{program}: ignoring the ETag cache: {e}");
    }
    Ok(state)
}

/// Keeps what [`open_memory`] reads for the next run; a failure is said, not fatal (the next run only
/// asks GitHub again).
pub fn save_memory<T: serde::Serialize>(
    dir: &Path,
    file: &str,
    state: &T,
    heads: &GitHub,
    program: &str,
) {
    let written = serde_json::to_string_pretty(state)
        .map_err(|e| e.to_string())
        .and_then(|json| fs::write(dir.join(file), json).map_err(|e| e.to_string()))
        .and_then(|()| heads.save_etags(&dir.join(ETAGS_FILE)));
    if let Err(e) = written {
        eprintln!("{program}: cannot save the state: {e}");
    }
}

/// How this command names itself in its log lines.
const PROGRAM: &str = "upm-publisher reconcile";

const STATE_FILE: &str = "repositories.json";
const ETAGS_FILE: &str = "etags.json";

pub fn command(args: ReconcileArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("upm-publisher reconcile: {message}");
        ExitCode::from(2)
    };
    let owner = match args.dispatch_repo.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() => owner.to_string(),
        _ => return usage(format!("{:?} is not owner/name", args.dispatch_repo)),
    };
    let registry_text = match fs::read_to_string(&args.sources.registry_file) {
        Ok(text) => text,
        Err(e) => return usage(format!("{}: {e}", args.sources.registry_file.display())),
    };
    let targets = match active_targets(&registry_text) {
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
    let reads = match Credentials::from_env(Some(&owner)) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let dispatch_credentials = match std::env::var("UPM_DISPATCH_TOKEN") {
        Ok(token) if !token.trim().is_empty() => {
            Credentials::Token(GitHubSecret::new(token.trim()))
        }
        _ => reads.clone(),
    };
    let (heads, objects, dispatcher) = match args.sources.clients(reads, dispatch_credentials) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };

    let mut state = match &args.state_dir {
        Some(dir) => match open_memory::<State>(dir, STATE_FILE, &heads, PROGRAM) {
            Ok(state) => state,
            Err(e) => return usage(e),
        },
        None => State::new(),
    };
    prune(&mut state, &targets);
    let targets = order(targets, &state);
    let sweep_id = std::env::var("GITHUB_RUN_ID")
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| now_unix().to_string());
    let settings = Settings {
        heads: &heads,
        objects: &objects,
        dispatcher: (!args.dry_run).then_some(&dispatcher),
        dispatch_repo: &args.dispatch_repo,
        registry: &registry,
        sweep_id: &sweep_id,
        now: now_unix(),
    };
    eprintln!(
        "upm-publisher reconcile: {} active repositories, budget {} requests{}",
        targets.len(),
        args.budget,
        if args.dry_run { ", dry run" } else { "" }
    );
    let swept = sweep(
        &settings,
        &targets,
        &mut state,
        Budget { limit: args.budget },
    );

    let mut ok = true;
    if let Some(dir) = &args.state_dir {
        save_memory(dir, STATE_FILE, &state, &heads, PROGRAM);
    }
    if let Some(path) = &args.summary_file {
        let text = summary(&swept.lines, swept.requests, swept.not_modified);
        job::append_summary(path, &text, PROGRAM);
    }
    let how = Notification {
        thread_id: args.discord_thread_id.as_deref(),
        policy: &policy,
        timeout: args.sources.timeout,
        dry_run: args.dry_run,
        program: PROGRAM,
    };
    let notification = job::notify_discord(&how, || {
        alert(&swept.lines, job::run_url(&job::server_url()).as_deref())
    });
    if let Some(path) = &args.audit_file {
        ok &= job::write_audit(path, &audit_json(&swept, &notification), PROGRAM);
    }
    let failed = swept.lines.iter().any(|(_, line)| {
        matches!(
            line,
            Line::Failed(_)
                | Line::CatchUp {
                    dispatch: Dispatch::Failed(_),
                    ..
                }
        )
    });
    eprintln!(
        "upm-publisher reconcile: {} GitHub requests ({} answered 304); notification: {notification}",
        swept.requests, swept.not_modified
    );
    if ok && !failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn audit_json(swept: &Swept, notification: &str) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = swept
        .lines
        .iter()
        .map(|(repository, line)| {
            let mut value = match line {
                Line::UpToDate { sha, packages } => {
                    json!({"result": "up_to_date", "sha": sha, "packages": packages})
                }
                Line::CatchUp {
                    sha,
                    missing,
                    dispatch,
                } => json!({
                    "result": "catch_up",
                    "sha": sha,
                    "missing": missing,
                    "dispatch": match dispatch {
                        Dispatch::Pending | Dispatch::DryRun => "dry_run".to_string(),
                        Dispatch::Sent => "sent".to_string(),
                        Dispatch::Failed(e) => format!("failed: {e}"),
                        Dispatch::AlreadySent { at } => format!("already_sent_at {at}"),
                    },
                }),
                Line::Deferred(why) => json!({"result": "deferred", "reason": why}),
                Line::Failed(why) => json!({"result": "failed", "reason": why}),
            };
            value["repository"] = json!(repository);
            value
        })
        .collect();
    json!({
        "lines": lines,
        "github_requests": swept.requests,
        "not_modified": swept.not_modified,
        "notification": notification,
    })
}

//! `upm trace`: gathers one bump's records from GitHub and the registry and hands them to
//! [`crate::trace`], which decides. `upm trace <repo>` alone traces the last pushes that touched a
//! package.json.
//!
//! Cost per commit (GitHub requests): the repository, the commit, two recursive trees, two blobs per
//! changed package.json; the hook's delivery list since the commit (one page per 100 deliveries) and
//! one delivery detail per push of the repository until the commit's is found (plus one per
//! redelivery); the central runs created since the push (one page per 100, split further when GitHub's
//! 1,000-result cap is hit); per run naming the commit: its jobs, its artifacts and the audit zip
//! (a redirect: two HTTP requests, counted once); one commits page for the changelog commit.
//! Everything but the zip is a conditional GET: with the ETag cache, what did not change is a 304.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use upm_github::api::{HookDeliveryDetail, Repository, WorkflowRun};
use upm_github::client::now_unix;
use upm_github::deliveries::{format_rfc3339_utc, parse_rfc3339_utc, HookDelivery};
use upm_github::Error;

use crate::npm::{self, Registry};
use crate::trace::{
    self, Attempt, AuditFacts, Bump, Facts, JobFacts, RegistryState, RunFacts, Trace,
    DELIVERY_LOG_SECS,
};
use crate::{migration::PUBLISH_WORKFLOW, table, Context};

/// package.json files under these directories are never packages (the publisher skips them too).
const SKIPPED_DIRS: [&str; 4] = ["node_modules", "Library", "Temp", ".git"];
/// Delivery details read while looking for one commit's push (the log holds 3 days).
const MAX_DETAILS: usize = 60;
/// Runs naming one commit whose jobs and audit are read (the newest ones).
const MAX_RUNS: usize = 5;
/// How far before the commit time a push's delivery may be (clocks of committers are not GitHub's).
const CLOCK_SLACK_SECS: i64 = 600;

/// What a trace is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sha(String),
    Package { name: String, version: String },
}

/// `0123abc…` (7 to 40 hex digits) or `name@version` (scoped names keep their leading `@`).
pub fn parse_target(text: &str) -> Result<Target, String> {
    let text = text.trim();
    if (7..=40).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(Target::Sha(text.to_ascii_lowercase()));
    }
    match text.rsplit_once('@') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() && name != "@" => {
            Ok(Target::Package {
                name: name.to_string(),
                version: version.to_string(),
            })
        }
        _ => Err(format!(
            "{text:?} is neither a commit sha (7-40 hex digits) nor package@version"
        )),
    }
}

/// GitHub unreachable: one message for the whole command, not one per request.
pub(crate) fn github_error(context: &Context, e: Error) -> String {
    match e {
        Error::Transport { detail, .. } => format!(
            "GitHub ({}) is unreachable: {detail}; nothing was traced",
            context.github.api()
        ),
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
struct CommitInfo {
    sha: String,
    commit: CommitText,
    #[serde(default)]
    parents: Vec<ShaOnly>,
}

#[derive(Deserialize)]
struct CommitText {
    message: String,
    #[serde(default)]
    committer: Option<Dated>,
}

#[derive(Deserialize)]
struct Dated {
    #[serde(default)]
    date: Option<String>,
}

#[derive(Deserialize)]
struct ShaOnly {
    sha: String,
}

/// The part of a push payload we read.
#[derive(Deserialize, Default)]
pub(crate) struct PushPayload {
    #[serde(default, rename = "ref")]
    pub(crate) ref_name: String,
    #[serde(default)]
    pub(crate) after: String,
    #[serde(default)]
    pub(crate) commits: Vec<PushCommit>,
    #[serde(default)]
    repository: Option<PushRepository>,
}

#[derive(Deserialize, Default)]
pub(crate) struct PushCommit {
    #[serde(default)]
    pub(crate) added: Vec<String>,
    #[serde(default)]
    pub(crate) modified: Vec<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct PushRepository {
    /// Unix seconds in push payloads (other events write a date string; then it is ignored).
    #[serde(default)]
    pushed_at: Option<serde_json::Value>,
}

/// The worker's answer body (DESIGN.md's HTTP contract).
#[derive(Deserialize)]
struct WorkerAnswer {
    outcome: Option<String>,
    reason: Option<String>,
}

/// The publisher's audit file: the fields the trace reads (publisher/src/summary.rs `Audit`).
#[derive(Deserialize)]
struct AuditFile {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    published: Vec<AuditPackage>,
    #[serde(default)]
    failed: Vec<AuditPackage>,
    #[serde(default)]
    skipped: Vec<AuditPackage>,
    #[serde(default)]
    notification: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    timings: Option<AuditTimings>,
}

#[derive(Deserialize)]
struct AuditPackage {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct AuditTimings {
    #[serde(default)]
    notified_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
}

fn time(text: &Option<String>) -> Option<i64> {
    text.as_deref().and_then(parse_rfc3339_utc)
}

/// A package.json's (name, version) when it has a UPM shape (`unity` or `displayName`, the
/// publisher's rule).
pub(crate) fn upm_manifest(bytes: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let serde_json::Value::Object(map) = serde_json::from_str(text).ok()? else {
        return None;
    };
    if !(map.contains_key("unity") || map.contains_key("displayName")) {
        return None;
    }
    let field = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some((field("name")?, field("version")?))
}

pub(crate) fn is_manifest_path(path: &str) -> bool {
    (path == "package.json" || path.ends_with("/package.json"))
        && !path.split('/').any(|s| SKIPPED_DIRS.contains(&s))
}

/// The records one `upm trace` shares between the commits it traces.
struct Gatherer<'a> {
    context: &'a Context,
    repo: Repository,
    branch: String,
    registry: Registry,
    now: i64,
    /// The hook's push deliveries of this repository, newest first (`None`: the hook is unknown).
    deliveries: Option<Vec<HookDelivery>>,
    deliveries_from: i64,
    details: HashMap<u64, HookDeliveryDetail>,
    runs: Option<(i64, Vec<WorkflowRun>)>,
}

impl<'a> Gatherer<'a> {
    fn github(&self) -> &upm_github::GitHub {
        &self.context.github
    }

    fn err(&self, e: Error) -> String {
        github_error(self.context, e)
    }

    /// The hook's push deliveries of this repository since `from` (read once, widened when needed).
    fn deliveries(&mut self, from: i64) -> Result<Option<&Vec<HookDelivery>>, String> {
        let Ok((org, hook)) = self.context.hook() else {
            return Ok(None);
        };
        let from = from.max(self.now - DELIVERY_LOG_SECS);
        if self.deliveries.is_none() || from < self.deliveries_from {
            let all = self
                .github()
                .hook_deliveries(org, hook, from, 5_000)
                .map_err(|e| self.err(e))?;
            let id = self.repo.id;
            self.deliveries = Some(
                all.into_iter()
                    .filter(|d| d.event == "push" && d.repository_id == Some(id))
                    .collect(),
            );
            self.deliveries_from = from;
        }
        Ok(self.deliveries.as_ref())
    }

    fn detail(&mut self, id: u64) -> Result<HookDeliveryDetail, String> {
        if let Some(d) = self.details.get(&id) {
            return Ok(d.clone());
        }
        let (org, hook) = self.context.hook()?;
        let detail = self
            .github()
            .hook_delivery(org, hook, id)
            .map_err(|e| self.err(e))?;
        self.details.insert(id, detail.clone());
        Ok(detail)
    }

    /// Central publish runs created since `from`, newest first.
    fn runs(&mut self, from: i64) -> Result<&Vec<WorkflowRun>, String> {
        let stale = match &self.runs {
            Some((since, _)) => from < *since,
            None => true,
        };
        if stale {
            let runs = runs_between(self.context, from, self.now + 60, 0)?;
            self.runs = Some((from, runs));
        }
        Ok(&self.runs.as_ref().expect("just read").1)
    }

    /// UPM manifests of a commit: path → (blob sha).
    fn manifests(&self, sha: &str) -> Result<BTreeMap<String, String>, String> {
        let tree = self
            .github()
            .tree(&self.repo.full_name, sha, true)
            .map_err(|e| self.err(e))?;
        Ok(tree
            .tree
            .into_iter()
            .filter(|e| e.kind == "blob" && is_manifest_path(&e.path))
            .map(|e| (e.path, e.sha))
            .collect())
    }

    fn manifest_at(&self, blob: &str) -> Result<Option<(String, String)>, String> {
        let bytes = self
            .github()
            .blob(&self.repo.full_name, blob)
            .map_err(|e| self.err(e))?;
        Ok(upm_manifest(&bytes))
    }

    /// The commit that set `name`'s version to `version` on the publishing branch.
    fn find_bump(&mut self, name: &str, version: &str) -> Result<String, String> {
        let head = self
            .github()
            .branch(&self.repo.full_name, &self.branch)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| format!("{} has no branch {}", self.repo.full_name, self.branch))?;
        let mut path = None;
        for (p, blob) in self.manifests(&head.commit.sha)? {
            if self.manifest_at(&blob)?.is_some_and(|(n, _)| n == name) {
                path = Some(p);
                break;
            }
        }
        let path = path.ok_or_else(|| {
            format!(
                "no UPM package named {name} on {}'s {} branch",
                self.repo.full_name, self.branch
            )
        })?;
        let history = self
            .github()
            .commits(&self.repo.full_name, &self.branch, Some(&path), None, 50)
            .map_err(|e| self.err(e))?;
        // Newest first: the bump is the oldest commit of the newest run of commits at `version`.
        let mut found = None;
        for commit in history {
            let file = self
                .github()
                .file(&self.repo.full_name, &path, Some(&commit.sha))
                .map_err(|e| self.err(e))?;
            let at = file.and_then(|f| upm_manifest(&f.content)).map(|(_, v)| v);
            if at.as_deref() == Some(version) {
                found = Some(commit.sha);
            } else if found.is_some() {
                break;
            }
        }
        found.ok_or_else(|| {
            format!(
                "{name}@{version} is not the version of {path} in its last 50 changes on {}",
                self.branch
            )
        })
    }

    fn trace(&mut self, target: &Target) -> Result<Trace, String> {
        let sha = match target {
            Target::Sha(sha) => sha.clone(),
            Target::Package { name, version } => self.find_bump(name, version)?,
        };
        let full = self.repo.full_name.clone();
        let commit: CommitInfo = match self.github().get(&format!(
            "/repos/{}/commits/{}",
            full,
            upm_github::client::segment(&sha)
        )) {
            Ok(c) => c,
            Err(e) if matches!(e.status(), Some(404 | 422)) => {
                return Err(format!("{full} has no commit {sha}"))
            }
            Err(e) => return Err(self.err(e)),
        };
        let sha = commit.sha.clone();
        let committed_at = commit.commit.committer.as_ref().and_then(|c| time(&c.date));

        // What the commit bumped: its UPM manifests against its first parent's.
        let now_manifests = self.manifests(&sha)?;
        let before = match commit.parents.first() {
            Some(p) => self.manifests(&p.sha)?,
            None => BTreeMap::new(),
        };
        let touched_manifest = now_manifests.iter().any(|(p, b)| before.get(p) != Some(b))
            || before.keys().any(|p| !now_manifests.contains_key(p));
        let mut bumps = Vec::new();
        for (path, blob) in &now_manifests {
            if before.get(path) == Some(blob) {
                continue;
            }
            let Some((name, version)) = self.manifest_at(blob)? else {
                continue;
            };
            let previous = match before.get(path) {
                Some(old) => self.manifest_at(old)?.map(|(_, v)| v),
                None => None,
            };
            if previous.as_deref() == Some(version.as_str()) {
                continue;
            }
            let registry = match self.registry.version(&name, &version) {
                npm::Version::Published { at } => RegistryState::Published { at },
                npm::Version::Missing => RegistryState::Missing,
                npm::Version::Unknown(error) => RegistryState::Unknown { error },
            };
            bumps.push(Bump {
                name,
                version,
                path: path
                    .strip_suffix("package.json")
                    .unwrap_or(path)
                    .trim_end_matches('/')
                    .to_string(),
                previous,
                registry,
            });
        }

        // The push's delivery: the oldest push of this repository since the commit whose payload's
        // `after` is the commit.
        let from = committed_at.unwrap_or(self.now - DELIVERY_LOG_SECS) - CLOCK_SLACK_SECS;
        let mut guid = None;
        let mut attempts = Vec::new();
        let mut pushed_at = None;
        let delivery_log_read = match self.deliveries(from)? {
            None => false,
            Some(list) => {
                let mut by_guid: BTreeMap<String, Vec<HookDelivery>> = BTreeMap::new();
                for d in list {
                    by_guid.entry(d.guid.clone()).or_default().push(d.clone());
                }
                let mut groups: Vec<Vec<HookDelivery>> = by_guid.into_values().collect();
                for g in &mut groups {
                    g.sort_by_key(|d| (d.delivered_at_unix(), d.id));
                }
                groups.retain(|g| g[0].delivered_at_unix().is_some_and(|t| t >= from));
                groups.sort_by_key(|g| g[0].delivered_at_unix());
                for group in groups.into_iter().take(MAX_DETAILS) {
                    let detail = self.detail(group[0].id)?;
                    let payload: PushPayload =
                        serde_json::from_value(detail.request.payload.clone()).unwrap_or_default();
                    if !payload.after.eq_ignore_ascii_case(&sha) {
                        continue;
                    }
                    pushed_at = payload
                        .repository
                        .and_then(|r| r.pushed_at)
                        .and_then(|v| v.as_i64());
                    guid = Some(group[0].guid.clone());
                    for d in &group {
                        let answer = self.detail(d.id)?;
                        let body: Option<WorkerAnswer> = answer
                            .response
                            .as_ref()
                            .and_then(|r| serde_json::from_str(&r.payload).ok());
                        attempts.push(Attempt {
                            id: d.id,
                            delivered_at: d.delivered_at_unix().unwrap_or(0),
                            status_code: d.status_code,
                            duration_ms: (d.duration * 1000.0).round() as u64,
                            redelivery: d.redelivery,
                            outcome: body.as_ref().and_then(|b| b.outcome.clone()),
                            reason: body.and_then(|b| b.reason),
                        });
                    }
                    break;
                }
                true
            }
        };
        let pushed_at = pushed_at.or(attempts.first().map(|a| a.delivered_at));

        // The central runs whose run-name carries this commit (handle-publish-request.yml's
        // `run-name: publish <repo> @ <sha> (delivery <id>)`).
        let since = pushed_at.or(committed_at).unwrap_or(self.now) - 120;
        let repo_lower = full.to_ascii_lowercase();
        let mut matched: Vec<WorkflowRun> = self
            .runs(since)?
            .iter()
            .filter(|r| {
                let title = r.display_title.to_ascii_lowercase();
                title.contains(&sha) && title.contains(&repo_lower)
            })
            .cloned()
            .collect();
        matched.sort_by_key(|r| (parse_rfc3339_utc(&r.created_at), r.id));
        let skip = matched.len().saturating_sub(MAX_RUNS);
        let mut runs = Vec::new();
        for run in matched.into_iter().skip(skip) {
            runs.push(self.run_facts(run)?);
        }

        // The changelog commit pushed back after the run (scripts/commit-changelogs.sh writes "…
        // it published from <sha12>.").
        let mut changelog_commit = None;
        if let Some(first) = runs.iter().find_map(|r| r.created_at) {
            let mark = format!("published from {}", &sha[..12]);
            let list = self
                .github()
                .commits(
                    &full,
                    &self.branch,
                    None,
                    Some(&format_rfc3339_utc(first)),
                    100,
                )
                .map_err(|e| self.err(e))?;
            changelog_commit = list
                .into_iter()
                .rev()
                .find(|c| c.commit.message.contains(&mark))
                .map(|c| {
                    let at = c.commit.committer.and_then(|p| time(&p.date));
                    (c.sha, at)
                });
        }

        let facts = Facts {
            repository: full,
            branch: self.branch.clone(),
            sha,
            central: self.context.central.as_str().to_string(),
            commit_message: Some(
                commit
                    .commit
                    .message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            committed_at,
            pushed_at,
            touched_manifest,
            bumps,
            delivery_log_read,
            guid,
            attempts,
            runs,
            changelog_commit,
            now: self.now,
        };
        Ok(trace::build(&facts))
    }

    fn run_facts(&mut self, run: WorkflowRun) -> Result<RunFacts, String> {
        let central = self.context.central.as_str().to_string();
        let jobs = self
            .github()
            .run_jobs(&central, run.id)
            .map_err(|e| self.err(e))?;
        let jobs = jobs
            .into_iter()
            .map(|j| JobFacts {
                failed_step: j
                    .steps
                    .iter()
                    .find(|s| s.conclusion.as_deref() == Some("failure"))
                    .map(|s| s.name.clone()),
                name: j.name,
                status: j.status,
                conclusion: j.conclusion,
                created_at: parse_rfc3339_utc(&j.created_at),
                started_at: time(&j.started_at),
                completed_at: time(&j.completed_at),
                runner: j.runner_name.filter(|r| !r.is_empty()),
                labels: j.labels,
            })
            .collect();
        let (audit, audit_note) = if run.status.as_deref() == Some("completed") {
            match self.audit(run.id) {
                Ok(audit) => (Some(audit), None),
                Err(note) => (None, Some(note)),
            }
        } else {
            (None, None)
        };
        let delivery = run
            .display_title
            .rsplit_once("(delivery ")
            .map(|(_, d)| d.trim_end_matches(')').trim().to_string());
        Ok(RunFacts {
            id: run.id,
            url: run.html_url,
            title: run.display_title,
            delivery,
            created_at: parse_rfc3339_utc(&run.created_at),
            status: run.status.unwrap_or_default(),
            conclusion: run.conclusion,
            updated_at: time(&run.updated_at),
            jobs,
            audit,
            audit_note,
        })
    }

    /// The run's audit artifact (`upm-publish-audit-<run>-<attempt>`, the latest attempt's).
    fn audit(&self, run_id: u64) -> Result<AuditFacts, String> {
        let central = self.context.central.as_str();
        let artifacts = self
            .github()
            .run_artifacts(central, run_id)
            .map_err(|e| self.err(e))?;
        let artifact = artifacts
            .iter()
            .filter(|a| a.name.starts_with("upm-publish-audit-"))
            .max_by_key(|a| {
                a.name
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .ok_or("the run uploaded no audit artifact")?;
        if artifact.expired {
            return Err("the audit artifact expired (kept 90 days)".into());
        }
        let zip = self
            .github()
            .artifact_zip(central, artifact.id)
            .map_err(|e| self.err(e))?;
        let files = crate::zip::read(&zip)?;
        let (_, bytes) = files
            .iter()
            .find(|(name, _)| name.ends_with(".json"))
            .ok_or("the audit artifact holds no JSON file")?;
        let file: AuditFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("the audit file is not the publisher's: {e}"))?;
        let id = |p: &AuditPackage| {
            format!(
                "{}@{}",
                p.name.as_deref().unwrap_or("?"),
                p.version.as_deref().unwrap_or("?")
            )
        };
        Ok(AuditFacts {
            ok: file.ok,
            published: file.published.iter().map(id).collect(),
            failed: file
                .failed
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}: {}",
                        id(p),
                        p.stage.as_deref().unwrap_or("?"),
                        p.reason.as_deref().unwrap_or("")
                    )
                })
                .collect(),
            skipped: file
                .skipped
                .iter()
                .map(|p| format!("{}: {}", id(p), p.reason.as_deref().unwrap_or("")))
                .collect(),
            notification: file.notification,
            notified_at: file.timings.as_ref().and_then(|t| time(&t.notified_at)),
            finished_at: file
                .timings
                .as_ref()
                .and_then(|t| time(&t.finished_at))
                .or_else(|| time(&file.timestamp)),
        })
    }
}

/// Central publish runs created in `[from, to]`, newest first. GitHub returns at most 1,000 runs for a
/// `created` search; a capped window is split in halves (at most 6 times: 64 windows).
pub fn runs_between(
    context: &Context,
    from: i64,
    to: i64,
    depth: u32,
) -> Result<Vec<WorkflowRun>, String> {
    let listing = context
        .github
        .workflow_runs_between(
            context.central.as_str(),
            PUBLISH_WORKFLOW,
            &format_rfc3339_utc(from),
            &format_rfc3339_utc(to),
        )
        .map_err(|e| github_error(context, e))?;
    if !listing.capped || depth >= 6 || to - from < 120 {
        return Ok(listing.runs);
    }
    let middle = from + (to - from) / 2;
    let mut runs = runs_between(context, middle + 1, to, depth + 1)?;
    runs.extend(runs_between(context, from, middle, depth + 1)?);
    Ok(runs)
}

#[derive(Serialize)]
struct Report<'a> {
    traces: &'a [Trace],
    github_requests: u64,
    github_not_modified: u64,
    registry_requests: u64,
}

/// `upm trace <repo> [<sha | package@version>]`. Exit: 0 every bump is on the registry (or nothing
/// was bumped), 3 a bump is not (the trace says where it stopped), 1 the trace failed, 2 bad input.
pub fn run(
    context: &Context,
    repository: &str,
    target: Option<&str>,
    registry_url: Option<&str>,
    last: usize,
    as_of: Option<i64>,
) -> Result<u8, String> {
    let repository = match crate::parse_repo(repository) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("upm: {e}");
            return Ok(2);
        }
    };
    let target = match target.map(parse_target).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("upm: {e}");
            return Ok(2);
        }
    };
    let Some(registry_url) = registry_url.filter(|u| !u.trim().is_empty()) else {
        eprintln!("upm: the registry is unknown: give --registry URL or set UPM_REGISTRY");
        return Ok(2);
    };
    let repo = context
        .github
        .repository(repository.as_str())
        .map_err(|e| github_error(context, e))?;
    let branch = context
        .read_registry()
        .ok()
        .and_then(|f| {
            f.list()
                .into_iter()
                .find(|e| e.repository.eq_ignore_ascii_case(&repo.full_name))
                .and_then(|e| e.branch)
        })
        .unwrap_or_else(|| repo.default_branch.clone());
    let mut gatherer = Gatherer {
        context,
        branch,
        registry: Registry::new(registry_url),
        now: as_of.unwrap_or_else(now_unix),
        deliveries: None,
        deliveries_from: i64::MAX,
        details: HashMap::new(),
        runs: None,
        repo,
    };
    let targets = match target {
        Some(t) => vec![t],
        None => {
            let shas = recent_pushes(&mut gatherer, last)?;
            if shas.is_empty() {
                context.progress(&format!(
                    "no push to {} that touched a package.json in GitHub's delivery log (3 days)",
                    gatherer.branch
                ));
            }
            shas.into_iter().map(Target::Sha).collect()
        }
    };
    let mut traces = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        if targets.len() > 1 {
            context.progress_step(index, targets.len(), &format!("{target:?}"));
        }
        traces.push(gatherer.trace(target)?);
    }
    let stats = context.github.stats();
    let report = Report {
        traces: &traces,
        github_requests: stats.requests,
        github_not_modified: stats.not_modified,
        registry_requests: gatherer.registry.requests,
    };
    context.print(&report, || {
        let mut out = String::new();
        if traces.len() > 1 {
            out.push_str(&summary_table(&traces));
            out.push('\n');
        }
        for t in &traces {
            out.push_str(&trace::render(t));
            out.push('\n');
        }
        out
    });
    context.progress(&format!(
        "GitHub requests: {} ({} answered 304 from the ETag cache); registry requests: {}",
        stats.requests, stats.not_modified, gatherer.registry.requests
    ));
    let stuck = traces.iter().any(|t| {
        matches!(
            t.verdict,
            trace::Verdict::Stopped | trace::Verdict::InProgress
        )
    });
    Ok(if stuck { 3 } else { 0 })
}

/// The last `count` pushes to the publishing branch that touched a package.json, newest first, from
/// the hook's delivery log.
fn recent_pushes(gatherer: &mut Gatherer, count: usize) -> Result<Vec<String>, String> {
    let now = gatherer.now;
    let Some(list) = gatherer.deliveries(now - DELIVERY_LOG_SECS)? else {
        return Err("`upm trace <repo>` reads the hook's delivery log: set GITHUB_ORG and HOOK_ID (or name a commit)".into());
    };
    let mut firsts: BTreeMap<String, HookDelivery> = BTreeMap::new();
    for d in list {
        let keep = firsts
            .get(&d.guid)
            .is_none_or(|f| (d.delivered_at_unix(), d.id) < (f.delivered_at_unix(), f.id));
        if keep {
            firsts.insert(d.guid.clone(), d.clone());
        }
    }
    let mut firsts: Vec<HookDelivery> = firsts.into_values().collect();
    firsts.sort_by_key(|d| std::cmp::Reverse((d.delivered_at_unix(), d.id)));
    let wanted_ref = format!("refs/heads/{}", gatherer.branch);
    let mut shas: Vec<String> = Vec::new();
    for d in firsts.into_iter().take(MAX_DETAILS * 2) {
        let detail = gatherer.detail(d.id)?;
        let payload: PushPayload =
            serde_json::from_value(detail.request.payload).unwrap_or_default();
        let touched = payload.commits.iter().any(|c| {
            c.added
                .iter()
                .chain(&c.modified)
                .any(|p| p.rsplit('/').next() == Some("package.json"))
        });
        if payload.ref_name == wanted_ref
            && touched
            && payload.after.len() == 40
            && !shas.contains(&payload.after)
        {
            shas.push(payload.after.to_ascii_lowercase());
            if shas.len() >= count {
                break;
            }
        }
    }
    Ok(shas)
}

fn summary_table(traces: &[Trace]) -> String {
    let rows: Vec<Vec<String>> = traces
        .iter()
        .map(|t| {
            let pushed = t
                .events
                .first()
                .and_then(|e| e.at)
                .map(|at| format_rfc3339_utc(at)[..16].replace('T', " "))
                .unwrap_or_default();
            let bumps = if t.bumps.is_empty() {
                "-".to_string()
            } else {
                t.bumps
                    .iter()
                    .map(|b| format!("{}@{}", b.name, b.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let verdict = match (t.verdict, t.stopped_at) {
                (trace::Verdict::Published, _) => "published".to_string(),
                (trace::Verdict::CaughtUp, _) => "caught up".to_string(),
                (trace::Verdict::NotBumped, _) => "not a bump".to_string(),
                (v, stage) => format!(
                    "{} at {}",
                    if v == trace::Verdict::InProgress {
                        "in progress"
                    } else {
                        "STOPPED"
                    },
                    stage.map_or("?", trace::Stage::as_str)
                ),
            };
            vec![
                pushed,
                t.sha[..12].to_string(),
                bumps,
                verdict,
                t.next_step.clone(),
            ]
        })
        .collect();
    table::render(&["PUSHED (UTC)", "COMMIT", "BUMPS", "WHERE", "NEXT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("0123ABCdef"),
            Ok(Target::Sha("0123abcdef".into()))
        );
        assert_eq!(
            parse_target("@studio/core@1.4.0"),
            Ok(Target::Package {
                name: "@studio/core".into(),
                version: "1.4.0".into()
            })
        );
        assert_eq!(
            parse_target("com.studio.core@1.4.0"),
            Ok(Target::Package {
                name: "com.studio.core".into(),
                version: "1.4.0".into()
            })
        );
        for bad in ["", "abc", "com.studio.core", "com.studio.core@", "@1.0.0"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests() {
        assert_eq!(
            upm_manifest(br#"{"name":"com.s.a","version":"1.0.0","unity":"2022.3"}"#),
            Some(("com.s.a".into(), "1.0.0".into()))
        );
        assert_eq!(upm_manifest(br#"{"name":"tool","version":"1.0.0"}"#), None);
        assert!(is_manifest_path("Packages/a/package.json"));
        assert!(!is_manifest_path("node_modules/x/package.json"));
        assert!(!is_manifest_path("Packages/a/package.json.meta"));
    }
}

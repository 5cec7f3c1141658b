//! watchdog: the decisions of the net under the runners and under the other nets. Pure functions of
//! what GitHub answered, the worker's own state and a clock; `scheduled` fetches and sends.
//!
//! 1. Runners that pick up nothing. With `vars.PUBLISH_RUNNER` naming self-hosted labels and that pool
//!    dead, every publish run waits `queued` until GitHub fails it after 24 hours ("Usage limits":
//!    "Job queue time - Each job for self-hosted runners can be queued for a maximum of 24 hours"), and
//!    reconcile re-dispatches to the same dead labels. A publish run queued longer than the threshold,
//!    whose queued job asks for `self-hosted` labels that no online runner has, is cancelled and
//!    dispatched again marked `runner: github-hosted`, which the workflow's `runs-on` honours. The
//!    marked run publishes the same commit; the publisher skips what is already published.
//! 2. Nets that stop. In a public repository GitHub disables scheduled workflows after 60 days without
//!    activity (state `disabled_inactivity`), and drops scheduled runs at peak load ("Events that trigger
//!    workflows", `schedule`). A `disabled_inactivity` workflow is enabled again; reconcile silent for
//!    longer than its bound is dispatched; no usable publisher binary for the central repository's head
//!    is reported (every publish of that commit would fail at "Fetch the publisher").
//!
//! State between ticks lives in KV (`FailoverState`, the time of the last nets check). KV is eventually
//! consistent: a stale read costs at worst a second "failover started" alert or a nets check an hour
//! early, never a publish: which runs to move is decided from GitHub's listing of this tick alone.

use serde::{Deserialize, Serialize};

use crate::deadline::DEADLINE_MS;
use crate::dispatch::{ClientPayload, EVERY_PACKAGE};
use crate::model::RepoName;
use crate::platform::HttpRequest;

/// The workflow files the watchdog watches, by name (GitHub takes a file name wherever it takes a
/// workflow id).
pub const PUBLISH_WORKFLOW: &str = "handle-publish-request.yml";
pub const RECONCILE_WORKFLOW: &str = "reconcile.yml";
pub const BINARY_WORKFLOW: &str = "publisher-binary.yml";
/// The mark `runs-on` reads (`github.event.client_payload.runner`).
pub const GITHUB_HOSTED: &str = "github-hosted";
/// Every self-hosted runner carries this label, and only they do ("Using labels with self-hosted
/// runners": the default labels `self-hosted`, the OS and the architecture).
pub const SELF_HOSTED: &str = "self-hosted";

pub const FAILOVER_KEY: &str = "watchdog:v1:failover";
pub const NETS_KEY: &str = "watchdog:v1:nets-checked";
/// Dedups the "no usable binary" alert per head commit.
pub fn binary_alert_key(sha: &str) -> String {
    format!("watchdog:v1:binary-alerted:{sha}")
}
/// A failover record outlives any outage worth the name; each tick that sees it refreshes it.
pub const FAILOVER_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;
/// The nets (workflow states, reconcile, binary) are checked at most once an hour: they fail in hours
/// or days, and five requests every ten minutes would be the watchdog's largest quiet cost.
pub const NETS_EVERY_MS: u64 = 60 * 60 * 1000;
/// One "no usable binary" alert per head commit per day.
pub const BINARY_ALERT_TTL_SECONDS: u64 = 24 * 60 * 60;
/// publisher-binary.yml uploads with `retention-days: 90`; a day's margin before GitHub expires it.
pub const BINARY_RETENTION_MS: u64 = 89 * 24 * 60 * 60 * 1000;
/// GitHub's largest page for the runs, jobs, runners and workflows listings.
pub const PAGE_SIZE: u32 = 100;

// The requests, as paths under the API (docs.github.com/rest/actions/...).

/// "List workflow runs for a workflow", only the queued ones (the `status` filter).
pub fn queued_runs_path(central: &RepoName) -> String {
    format!(
        "/repos/{}/actions/workflows/{PUBLISH_WORKFLOW}/runs?status=queued&per_page={PAGE_SIZE}",
        central.as_str()
    )
}
/// "List jobs for a workflow run attempt": the queued job's `labels` are its `runs-on`.
pub fn jobs_path(central: &RepoName, run_id: u64) -> String {
    format!("/repos/{}/actions/runs/{run_id}/jobs", central.as_str())
}
/// "Cancel a workflow run": 202 Accepted.
pub fn cancel_path(central: &RepoName, run_id: u64) -> String {
    format!("/repos/{}/actions/runs/{run_id}/cancel", central.as_str())
}
/// "List self-hosted runners for a repository" (App permission: repository Administration: read).
pub fn repo_runners_path(central: &RepoName) -> String {
    format!(
        "/repos/{}/actions/runners?per_page={PAGE_SIZE}",
        central.as_str()
    )
}
/// "List self-hosted runners for an organization" (organization permission Self-hosted runners: read).
pub fn org_runners_path(central: &RepoName) -> String {
    format!(
        "/orgs/{}/actions/runners?per_page={PAGE_SIZE}",
        central.as_str().split('/').next().unwrap_or_default()
    )
}
/// "List repository workflows": each with its `state`.
pub fn workflows_path(central: &RepoName) -> String {
    format!(
        "/repos/{}/actions/workflows?per_page={PAGE_SIZE}",
        central.as_str()
    )
}
/// "Enable a workflow" (Actions: write): 204.
pub fn enable_path(central: &RepoName, workflow_id: u64) -> String {
    format!(
        "/repos/{}/actions/workflows/{workflow_id}/enable",
        central.as_str()
    )
}
/// The newest run of a workflow, whatever its event (newest first is GitHub's order).
pub fn latest_run_path(central: &RepoName, workflow: &str) -> String {
    format!(
        "/repos/{}/actions/workflows/{workflow}/runs?per_page=1",
        central.as_str()
    )
}
/// The binary builds of one commit (what scripts/fetch-publisher.sh reads).
pub fn binary_runs_path(central: &RepoName, sha: &str) -> String {
    format!(
        "/repos/{}/actions/workflows/{BINARY_WORKFLOW}/runs?head_sha={sha}&per_page=20",
        central.as_str()
    )
}
/// "Create a workflow dispatch event" (Actions: write): 204; `ref` is required.
pub fn workflow_dispatch_path(central: &RepoName, workflow: &str) -> String {
    format!(
        "/repos/{}/actions/workflows/{workflow}/dispatches",
        central.as_str()
    )
}
pub fn repo_path(central: &RepoName) -> String {
    format!("/repos/{}", central.as_str())
}
pub fn branch_path(central: &RepoName, branch: &str) -> String {
    format!("/repos/{}/branches/{branch}", central.as_str())
}

// What GitHub answered, read into small types (nothing downstream sees raw JSON).

fn read<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| format!("{what} is unreadable at {}: {}", e.path(), e.inner()))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Run {
    pub id: u64,
    /// The run's `run-name`: for a publish run "publish <repository> @ <sha> (delivery <id>)".
    #[serde(default)]
    pub display_title: String,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    #[serde(default)]
    pub event: String,
    pub created_at: String,
    #[serde(default)]
    pub head_sha: String,
}

impl Run {
    pub fn created_ms(&self) -> Option<u64> {
        upm_github::deliveries::parse_rfc3339_utc(&self.created_at)
            .and_then(|secs| u64::try_from(secs).ok())
            .map(|secs| secs * 1000)
    }
}

pub fn parse_runs(body: &str) -> Result<Vec<Run>, String> {
    #[derive(Deserialize)]
    struct Page {
        workflow_runs: Vec<Run>,
    }
    read::<Page>("the workflow runs listing", body).map(|page| page.workflow_runs)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Job {
    pub status: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub runner_name: Option<String>,
}

pub fn parse_jobs(body: &str) -> Result<Vec<Job>, String> {
    #[derive(Deserialize)]
    struct Page {
        jobs: Vec<Job>,
    }
    read::<Page>("the jobs listing", body).map(|page| page.jobs)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Runner {
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    pub busy: bool,
    pub labels: Vec<RunnerLabel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunnerLabel {
    pub name: String,
}

pub fn parse_runners(body: &str) -> Result<Vec<Runner>, String> {
    #[derive(Deserialize)]
    struct Page {
        runners: Vec<Runner>,
    }
    read::<Page>("the runners listing", body).map(|page| page.runners)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Workflow {
    pub id: u64,
    pub path: String,
    /// `active`, `deleted`, `disabled_fork`, `disabled_inactivity` or `disabled_manually`.
    pub state: String,
}

pub fn parse_workflows(body: &str) -> Result<Vec<Workflow>, String> {
    #[derive(Deserialize)]
    struct Page {
        workflows: Vec<Workflow>,
    }
    read::<Page>("the workflows listing", body).map(|page| page.workflows)
}

/// `default_branch` of `GET /repos/{central}`.
pub fn parse_default_branch(body: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Repo {
        default_branch: String,
    }
    read::<Repo>("the repository", body).map(|repo| repo.default_branch)
}

/// `commit.sha` of `GET /repos/{central}/branches/{branch}`.
pub fn parse_branch_head(body: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Branch {
        commit: Sha,
    }
    #[derive(Deserialize)]
    struct Sha {
        sha: String,
    }
    read::<Branch>("the branch", body).map(|branch| branch.commit.sha)
}

// 1. Runners that pick up nothing.

/// The queued runs waiting longer than `queued_ms` at `now_ms`, oldest first, at most `max`: the
/// oldest are nearest GitHub's 24-hour limit. A run whose `created_at` is unreadable is left alone.
pub fn stuck_runs(runs: &[Run], now_ms: u64, queued_ms: u64, max: usize) -> Vec<&Run> {
    let mut stuck: Vec<(&Run, u64)> = runs
        .iter()
        .filter(|run| run.status.as_deref() == Some("queued"))
        .filter_map(|run| run.created_ms().map(|created| (run, created)))
        .filter(|(_, created)| now_ms.saturating_sub(*created) >= queued_ms)
        .collect();
    stuck.sort_by_key(|(run, created)| (*created, run.id));
    stuck.into_iter().take(max).map(|(run, _)| run).collect()
}

/// What a publish run publishes, read back from its `run-name` (handle-publish-request.yml):
/// GitHub keeps no `client_payload` on the run, and the title is the one place the run carries it.
/// tests/workflows/rules.test.mjs keeps the workflow's `run-name` in this shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRun {
    pub repository: RepoName,
    pub commit_sha: String,
    /// `manual` for a replay without one.
    pub delivery: String,
}

pub fn publish_run(display_title: &str) -> Option<PublishRun> {
    let rest = display_title.trim().strip_prefix("publish ")?;
    let (repository, rest) = rest.split_once(" @ ")?;
    let (commit_sha, rest) = rest.split_once(" (delivery ")?;
    let delivery = rest.split_once(')')?.0;
    let repository = RepoName::parse(repository.trim())?;
    let commit_sha = commit_sha.trim();
    let full_sha =
        matches!(commit_sha.len(), 40 | 64) && commit_sha.bytes().all(|b| b.is_ascii_hexdigit());
    let delivery_ok = !delivery.is_empty()
        && delivery.len() <= 100
        && delivery
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    (full_sha && delivery_ok).then(|| PublishRun {
        repository,
        commit_sha: commit_sha.to_string(),
        delivery: delivery.to_string(),
    })
}

/// The labels a run waits for, when its queued job asks for self-hosted runners. `None` for a job
/// already on a runner, or one on GitHub's runners (a marked run never counts as stuck on a pool).
pub fn waiting_self_hosted_labels(jobs: &[Job]) -> Option<Vec<String>> {
    jobs.iter()
        .filter(|job| job.status == "queued" && job.runner_name.is_none())
        .find(|job| {
            job.labels
                .iter()
                .any(|l| l.eq_ignore_ascii_case(SELF_HOSTED))
        })
        .map(|job| job.labels.clone())
}

/// GitHub sends a job to a runner that has every label of its `runs-on` (labels compare without case).
/// Busy counts as alive: the pool is taking jobs, only slower than the threshold.
pub fn pool_alive(runners: &[Runner], labels: &[String]) -> bool {
    runners.iter().any(|runner| {
        runner.status == "online"
            && labels.iter().all(|wanted| {
                runner
                    .labels
                    .iter()
                    .any(|have| have.name.eq_ignore_ascii_case(wanted))
            })
    })
}

/// The re-dispatch of a stuck run: what the publisher needs, and the mark. The commit message, author
/// and branch are not in the run's title; they only decorate the notification. `*` is safe: the
/// publisher finds every package of the commit and skips what is already published.
pub fn fallback_payload(run: &PublishRun) -> ClientPayload {
    ClientPayload {
        repository: run.repository.to_string(),
        commit_sha: run.commit_sha.clone(),
        commit_message: String::new(),
        commit_author: String::new(),
        branch: String::new(),
        package_path: EVERY_PACKAGE.to_string(),
        delivery: run.delivery.clone(),
        runner: Some(GITHUB_HOSTED.to_string()),
    }
}

/// What one stuck run calls for, from its job and the runners GitHub listed (`None`: unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StuckVerdict {
    /// Not waiting for self-hosted runners (already running, or on GitHub's runners): leave it.
    NotSelfHosted,
    /// Its title is not a publish run's: it cannot be dispatched again, so it is left alone.
    Unreadable,
    /// A runner with its labels is online (busy, or its runner group does not let this repository
    /// use it): a person has to look; the watchdog does not move it.
    PoolOnline,
    /// The runners could not be listed (a missing permission): nothing is moved blind.
    RunnersUnknown,
    /// No online runner has its labels: cancel it and dispatch this payload.
    Move(Box<ClientPayload>),
}

pub fn stuck_verdict(run: &Run, jobs: &[Job], runners: Option<&[Runner]>) -> StuckVerdict {
    let Some(labels) = waiting_self_hosted_labels(jobs) else {
        return StuckVerdict::NotSelfHosted;
    };
    let Some(publish) = publish_run(&run.display_title) else {
        return StuckVerdict::Unreadable;
    };
    match runners {
        None => StuckVerdict::RunnersUnknown,
        Some(runners) if pool_alive(runners, &labels) => StuckVerdict::PoolOnline,
        Some(_) => StuckVerdict::Move(Box::new(fallback_payload(&publish))),
    }
}

/// The failover between ticks (KV `watchdog:v1:failover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverState {
    pub since_ms: u64,
    /// The dead pool's labels, as the first stuck job asked for them.
    pub labels: Vec<String>,
    /// Runs moved to GitHub's runners since the failover started.
    pub moved: u32,
}

impl FailoverState {
    /// `None` for anything else (the "ended" marker, garbage): at worst one alert too many.
    pub fn from_kv(value: &str) -> Option<FailoverState> {
        serde_json::from_str(value).ok()
    }
    pub fn to_kv(&self) -> String {
        serde_json::to_string(self).expect("the failover state serialises")
    }
}

/// What KV holds once a failover ended (Platform has no delete; KV's shortest TTL is 60 s).
pub const FAILOVER_ENDED: &str = "ended";

/// What this tick means for the failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failover {
    /// Nothing stuck, nothing active.
    Quiet,
    /// Runs were moved and no failover was active: alert once, remember it.
    Started(FailoverState),
    /// Active, and still (or again) moving runs or the pool still dead: remember it, no alert.
    Ongoing(FailoverState),
    /// Active, and an online runner has the pool's labels again and nothing is stuck on it: alert.
    Recovered(FailoverState),
}

/// `pool_alive_now`: whether the active failover's labels have an online runner this tick (`None`
/// when not asked or unreadable, which keeps the failover on).
pub fn failover(
    active: Option<FailoverState>,
    moved_labels: Option<&[String]>,
    moved: usize,
    stuck_on_pool: bool,
    pool_alive_now: Option<bool>,
    now_ms: u64,
) -> Failover {
    match (active, moved_labels) {
        (None, Some(labels)) if moved > 0 => Failover::Started(FailoverState {
            since_ms: now_ms,
            labels: labels.to_vec(),
            moved: moved as u32,
        }),
        (None, _) => Failover::Quiet,
        (Some(mut state), _) if moved > 0 => {
            state.moved = state.moved.saturating_add(moved as u32);
            Failover::Ongoing(state)
        }
        (Some(state), _) if pool_alive_now == Some(true) && !stuck_on_pool => {
            Failover::Recovered(state)
        }
        (Some(state), _) => Failover::Ongoing(state),
    }
}

// 2. Nets that stop.

/// The workflows GitHub disabled for inactivity: enabled again. One a person disabled
/// (`disabled_manually`) is theirs to decide, and is only reported.
pub fn disabled_for_inactivity(workflows: &[Workflow]) -> Vec<&Workflow> {
    workflows
        .iter()
        .filter(|w| w.state == "disabled_inactivity")
        .collect()
}

pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether reconcile's newest run (any event) is older than `silent_ms`, or it never ran.
pub fn reconcile_silent(latest: Option<&Run>, now_ms: u64, silent_ms: u64) -> bool {
    match latest.and_then(Run::created_ms) {
        Some(created) => now_ms.saturating_sub(created) > silent_ms,
        None => true,
    }
}

/// The publisher binary for the central repository's head, as scripts/fetch-publisher.sh judges it:
/// a successful build of that commit by one of the default branch's own events, its artifact not
/// expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binary {
    Usable,
    /// A build of the commit has not ended yet.
    Building,
    Missing(String),
}

pub fn binary(runs: &[Run], now_ms: u64) -> Binary {
    let own = |run: &&Run| {
        matches!(
            run.event.as_str(),
            "push" | "schedule" | "workflow_dispatch"
        )
    };
    let runs: Vec<&Run> = runs.iter().filter(own).collect();
    let fresh = |run: &&&Run| {
        run.created_ms()
            .is_some_and(|created| now_ms.saturating_sub(created) < BINARY_RETENTION_MS)
    };
    if runs.iter().filter(fresh).any(|run| {
        run.status.as_deref() == Some("completed") && run.conclusion.as_deref() == Some("success")
    }) {
        return Binary::Usable;
    }
    if runs
        .iter()
        .any(|run| run.status.as_deref() != Some("completed"))
    {
        return Binary::Building;
    }
    Binary::Missing(if runs.is_empty() {
        format!("{BINARY_WORKFLOW} never built this commit")
    } else {
        format!(
            "no build of this commit by {BINARY_WORKFLOW} succeeded within its artifacts' 90 days"
        )
    })
}

/// Whether the nets are due a check (at most hourly; an unreadable record counts as due).
pub fn nets_due(last_checked: Option<&str>, now_ms: u64) -> bool {
    match last_checked.and_then(|v| v.parse::<u64>().ok()) {
        Some(last) => now_ms.saturating_sub(last) >= NETS_EVERY_MS || last > now_ms,
        None => true,
    }
}

// Alerts.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    FailoverStarted {
        labels: Vec<String>,
        moved: Vec<String>,
    },
    Recovered {
        labels: Vec<String>,
        moved: u32,
        minutes: u64,
    },
    WorkflowEnabled {
        path: String,
    },
    ReconcileDispatched {
        silent_for: String,
    },
    NoBinary {
        sha: String,
        why: String,
    },
}

impl Alert {
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::FailoverStarted { .. } => "failover-started",
            Alert::Recovered { .. } => "failover-ended",
            Alert::WorkflowEnabled { .. } => "workflow-enabled",
            Alert::ReconcileDispatched { .. } => "reconcile-dispatched",
            Alert::NoBinary { .. } => "no-binary",
        }
    }

    fn title_and_text(&self) -> (&'static str, String, u32) {
        const RED: u32 = 15_548_997;
        const YELLOW: u32 = 16_705_372;
        const GREEN: u32 = 5_763_719;
        match self {
            Alert::FailoverStarted { labels, moved } => (
                "Self-hosted runners are not picking up publish runs",
                format!(
                    "No online runner has the labels [{}]. Publish runs queued past the watchdog's threshold are cancelled and dispatched again on GitHub-hosted runners until one is back. Moved: {}.",
                    labels.join(", "),
                    moved.join(", ")
                ),
                RED,
            ),
            Alert::Recovered { labels, moved, minutes } => (
                "Self-hosted runners are back",
                format!(
                    "An online runner has the labels [{}] again; publish runs stay on them. The failover lasted about {minutes} minutes and moved {moved} run(s).",
                    labels.join(", ")
                ),
                GREEN,
            ),
            Alert::WorkflowEnabled { path } => (
                "A scheduled workflow was disabled by GitHub",
                format!("GitHub disabled {path} after 60 days without repository activity; the watchdog enabled it again."),
                YELLOW,
            ),
            Alert::ReconcileDispatched { silent_for } => (
                "Reconcile stopped running on its schedule",
                format!("No reconcile run for {silent_for}; the watchdog dispatched one. Check the workflow's schedule."),
                YELLOW,
            ),
            Alert::NoBinary { sha, why } => (
                "No usable publisher binary for the central repository's head",
                format!("{why} (commit {sha}): every publish run of this commit fails at \"Fetch the publisher\". Run {BINARY_WORKFLOW} on the default branch."),
                RED,
            ),
        }
    }

    /// The Discord webhook body; `allowed_mentions` empty, so no text can ping anyone.
    pub fn discord_body(&self) -> String {
        let (title, description, color) = self.title_and_text();
        serde_json::json!({
            "allowed_mentions": { "parse": [] },
            "embeds": [{ "title": title, "description": description, "color": color }],
        })
        .to_string()
    }
}

/// The alert's request to Discord's webhook (`?wait=true`: Discord answers once the message exists).
/// Never through `github::request`: GitHub's credential must not travel to another host.
pub fn discord_request(webhook: &str, alert: &Alert) -> HttpRequest {
    let separator = if webhook.contains('?') { '&' } else { '?' };
    HttpRequest {
        method: "POST",
        url: format!("{webhook}{separator}wait=true"),
        headers: vec![
            ("Content-Type", "application/json".to_string()),
            (
                "User-Agent",
                concat!("upm-relay/", env!("CARGO_PKG_VERSION")).to_string(),
            ),
        ],
        body: Some(alert.discord_body()),
        timeout_ms: DEADLINE_MS,
    }
}

/// "about N minutes" from two instants.
pub fn minutes_between(from_ms: u64, to_ms: u64) -> u64 {
    to_ms.saturating_sub(from_ms) / 60_000
}

/// One tick, for its single JSON log line (`msg: "watchdog"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchdogReport {
    /// `done`, `off`, `invalid` or `failed` (the queued runs could not be listed).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub queued: usize,
    pub stuck: usize,
    pub moved: usize,
    /// Stuck although an online runner has their labels.
    pub stuck_on_online_pool: usize,
    pub failover_active: bool,
    pub nets_checked: bool,
    pub workflows_enabled: usize,
    pub reconcile_dispatched: bool,
    /// Alerts posted (their kinds); an alert without `DISCORD_WEBHOOK_URL` is only in this line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<&'static str>,
    pub errors: usize,
    /// GitHub requests this tick made, tokens not included.
    pub github_calls: u32,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl WatchdogReport {
    pub fn log_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            level: &'static str,
            msg: &'static str,
            #[serde(flatten)]
            report: &'a WatchdogReport,
        }
        let level = match self.outcome {
            "failed" | "invalid" => "error",
            _ if self.errors > 0 || !self.alerts.is_empty() || self.failover_active => "warn",
            _ => "info",
        };
        serde_json::to_string(&Line {
            level,
            msg: "watchdog",
            report: self,
        })
        .expect("the watchdog log line serialises")
    }
}

#[cfg(test)]
#[path = "watchdog_tests.rs"]
mod tests;

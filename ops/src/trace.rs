//! trace: "where is my package?" — one bump through every stage, from the records GitHub and the
//! registry keep: the push's delivery and its redeliveries (our answer bodies), the central publish run
//! that names the delivery (or reconcile's catch-up run), its jobs, the publish audit artifact, the
//! registry's publish time, the changelog commit back. Pure: `cmd_trace` gathers [`Facts`], this module
//! orders them into a timeline, finds the stage where the bump stopped and chooses the next step.

use serde::Serialize;
use upm_github::deliveries::{format_rfc3339_utc, PERMANENT_STATUS_CODES, REDELIVERY_WINDOW_SECS};

/// The minutes past each hour at which `.github/workflows/reconcile.yml` runs (`cron: "13,43 * * * *"`;
/// a test reads the workflow so the two cannot drift apart).
pub const RECONCILE_MINUTES: [i64; 2] = [13, 43];

/// GitHub: "You can view details about webhook deliveries from the past 3 days." Older pushes have no
/// delivery record left to read.
pub const DELIVERY_LOG_SECS: i64 = 3 * 86_400;

/// The worker's redelivery rule allows this many redeliveries of one delivery (crates/github
/// `RedeliveryPolicy::default().max_redeliveries`).
const MAX_REDELIVERIES: usize = 3;

/// A package whose `version` this commit changed, and what the registry says about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bump {
    pub name: String,
    pub version: String,
    /// The package directory (`""` = the repository root).
    pub path: String,
    /// The version before this commit; `None` for a new package.
    pub previous: Option<String>,
    pub registry: RegistryState,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RegistryState {
    /// On the registry; `at` is the packument's `time[version]` (Unix seconds) when it has one.
    Published {
        at: Option<i64>,
    },
    Missing,
    /// The registry could not say (an outage, a refusal).
    Unknown {
        error: String,
    },
}

/// One attempt of the push's delivery (the original or a redelivery), with our answer body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub id: u64,
    pub delivered_at: i64,
    pub status_code: u16,
    pub duration_ms: u64,
    pub redelivery: bool,
    /// The worker's answer: `outcome` and `reason` (DESIGN.md's HTTP contract).
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFacts {
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub runner: Option<String>,
    pub labels: Vec<String>,
    /// The first step whose conclusion is `failure`.
    pub failed_step: Option<String>,
}

/// What the publisher's audit artifact says (the fields the trace reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditFacts {
    pub ok: bool,
    pub published: Vec<String>,
    /// `name@version: stage: reason`
    pub failed: Vec<String>,
    /// `name@version: reason`
    pub skipped: Vec<String>,
    pub notification: Option<String>,
    pub notified_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFacts {
    pub id: u64,
    pub url: String,
    pub title: String,
    /// The delivery id the run-name carries (`reconcile-…` for a catch-up, `manual` for a replay).
    pub delivery: Option<String>,
    pub created_at: Option<i64>,
    pub status: String,
    pub conclusion: Option<String>,
    pub updated_at: Option<i64>,
    pub jobs: Vec<JobFacts>,
    pub audit: Option<AuditFacts>,
    /// Why the audit could not be read (expired, no artifact yet).
    pub audit_note: Option<String>,
}

impl RunFacts {
    pub fn is_catch_up(&self) -> bool {
        self.delivery
            .as_deref()
            .is_some_and(|d| d.starts_with("reconcile-"))
    }

    fn queued_job(&self) -> Option<&JobFacts> {
        self.jobs
            .iter()
            .find(|j| j.started_at.is_none() && j.status != "completed")
    }
}

/// Everything gathered about one commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub repository: String,
    pub branch: String,
    pub sha: String,
    /// The central repository (for commands in the next step).
    pub central: String,
    pub commit_message: Option<String>,
    pub committed_at: Option<i64>,
    /// When the push happened: the push payload's `repository.pushed_at`, else the first attempt.
    pub pushed_at: Option<i64>,
    /// Did the commit change any package.json at all?
    pub touched_manifest: bool,
    pub bumps: Vec<Bump>,
    /// Was the hook's delivery log read (GITHUB_ORG / HOOK_ID known, GitHub answered)?
    pub delivery_log_read: bool,
    pub guid: Option<String>,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    /// Central publish runs naming this commit, oldest first.
    pub runs: Vec<RunFacts>,
    /// The changelog commit the publish run pushed back: (sha, committed at).
    pub changelog_commit: Option<(String, Option<i64>)>,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Push,
    Bump,
    Delivery,
    Dispatch,
    Queue,
    Job,
    Registry,
    Changelog,
    Discord,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Push => "push",
            Stage::Bump => "bump",
            Stage::Delivery => "delivery",
            Stage::Dispatch => "dispatch",
            Stage::Queue => "queue",
            Stage::Job => "job",
            Stage::Registry => "registry",
            Stage::Changelog => "changelog",
            Stage::Discord => "discord",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub stage: Stage,
    /// Unix seconds; `None` when the record has no time.
    pub at: Option<i64>,
    pub what: String,
    /// Seconds since the previous event with a time.
    pub after_secs: Option<i64>,
    pub ok: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every bumped version is on the registry.
    Published,
    /// Published, but by reconcile's catch-up: an earlier net failed.
    CaughtUp,
    /// The commit bumped no version: nothing to publish.
    NotBumped,
    /// The bump is not on the registry yet and something is still moving (a run in progress).
    InProgress,
    /// The bump is not on the registry and nothing is moving it.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub repository: String,
    pub sha: String,
    pub branch: String,
    pub bumps: Vec<Bump>,
    pub events: Vec<Event>,
    pub verdict: Verdict,
    /// Where the bump stopped (or is), `None` once published.
    pub stopped_at: Option<Stage>,
    pub why: String,
    pub next_step: String,
    /// Push → the publish run's creation, and push → the last bumped version on the registry.
    pub push_to_run_secs: Option<i64>,
    pub push_to_published_secs: Option<i64>,
    /// Things that are not where the bump stopped but deserve a look (no changelog commit, Discord).
    pub notes: Vec<String>,
}

/// The next reconcile sweep after `now` (Unix seconds), from [`RECONCILE_MINUTES`].
pub fn next_reconcile(now: i64) -> i64 {
    let hour = now - now.rem_euclid(3600);
    (0..=1)
        .flat_map(|h| RECONCILE_MINUTES.map(|m| hour + h * 3600 + m * 60))
        .find(|t| *t > now)
        .expect("a sweep every hour")
}

/// `HH:MM UTC` of a Unix time.
pub fn hh_mm(at: i64) -> String {
    let text = format_rfc3339_utc(at);
    format!("{} UTC", &text[11..16])
}

/// `4 s`, `3 min 20 s`, `2 h 5 min`.
pub fn duration(secs: i64) -> String {
    let s = secs.abs();
    let sign = if secs < 0 { "-" } else { "" };
    if s < 60 {
        format!("{sign}{s} s")
    } else if s < 3600 && s % 60 == 0 {
        format!("{sign}{} min", s / 60)
    } else if s < 3600 {
        format!("{sign}{} min {} s", s / 60, s % 60)
    } else {
        format!("{sign}{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The commit's timeline, the stage where its bump stopped and the next step.
pub fn build(facts: &Facts) -> Trace {
    let mut events = timeline(facts);
    events.sort_by_key(|e| (e.at.is_none(), e.at));
    let mut previous: Option<i64> = None;
    for event in &mut events {
        if let Some(at) = event.at {
            event.after_secs = previous.map(|p| at - p);
            previous = Some(at);
        }
    }
    let decision = decide(facts);
    let delivery_run = facts.runs.iter().rev().find(|r| !r.is_catch_up());
    let push_to_run_secs = match (facts.pushed_at, delivery_run.and_then(|r| r.created_at)) {
        (Some(push), Some(run)) => Some(run - push),
        _ => None,
    };
    let published_times: Vec<Option<i64>> = facts
        .bumps
        .iter()
        .map(|b| match b.registry {
            RegistryState::Published { at } => at,
            _ => None,
        })
        .collect();
    let push_to_published_secs = match facts.pushed_at {
        Some(push) if !facts.bumps.is_empty() && published_times.iter().all(Option::is_some) => {
            published_times.iter().flatten().max().map(|t| t - push)
        }
        _ => None,
    };
    Trace {
        repository: facts.repository.clone(),
        sha: facts.sha.clone(),
        branch: facts.branch.clone(),
        bumps: facts.bumps.clone(),
        events,
        verdict: decision.verdict,
        stopped_at: decision.stage,
        why: decision.why,
        next_step: decision.next_step,
        push_to_run_secs,
        push_to_published_secs,
        notes: notes(facts, decision.verdict),
    }
}

fn timeline(facts: &Facts) -> Vec<Event> {
    let mut events = Vec::new();
    let event = |stage, at, what: String, ok| Event {
        stage,
        at,
        what,
        after_secs: None,
        ok,
    };
    let bumps = if facts.bumps.is_empty() {
        "no version bumped".to_string()
    } else {
        facts
            .bumps
            .iter()
            .map(|b| match &b.previous {
                Some(p) => format!("{} {p} → {}", b.name, b.version),
                None => format!("{} {} (new)", b.name, b.version),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    events.push(event(
        Stage::Push,
        facts.pushed_at.or(facts.committed_at),
        format!(
            "{} {} to {}: {bumps}",
            if facts.pushed_at.is_some() {
                "pushed"
            } else {
                "committed"
            },
            short(&facts.sha),
            facts.branch
        ),
        true,
    ));
    for a in &facts.attempts {
        let answer = match (&a.outcome, &a.reason) {
            (Some(o), Some(r)) => format!(": {o}: {r}"),
            (Some(o), None) => format!(": {o}"),
            _ => String::new(),
        };
        let ok = (200..300).contains(&a.status_code);
        events.push(event(
            Stage::Delivery,
            Some(a.delivered_at),
            format!(
                "{} {} answered {} in {} ms{answer}",
                if a.redelivery {
                    "redelivery"
                } else {
                    "delivery"
                },
                facts.guid.as_deref().unwrap_or("?"),
                if a.status_code == 0 {
                    "nothing (timeout or no connection)".to_string()
                } else {
                    a.status_code.to_string()
                },
                a.duration_ms
            ),
            ok && a.outcome.as_deref() != Some("failed"),
        ));
    }
    for run in &facts.runs {
        let by = if run.is_catch_up() {
            "reconcile's catch-up run"
        } else {
            "publish run"
        };
        events.push(event(
            Stage::Dispatch,
            run.created_at,
            format!("{by} {} created: {}", run.id, run.title),
            true,
        ));
        for job in &run.jobs {
            if let Some(started) = job.started_at {
                let queued = job
                    .created_at
                    .map(|c| format!(" after {} queued", duration(started - c)))
                    .unwrap_or_default();
                events.push(event(
                    Stage::Queue,
                    Some(started),
                    format!(
                        "job \"{}\" started on {}{queued}",
                        job.name,
                        job.runner.as_deref().unwrap_or("a runner")
                    ),
                    true,
                ));
            } else if job.status != "completed" {
                events.push(event(
                    Stage::Queue,
                    job.created_at,
                    format!(
                        "job \"{}\" queued, no runner yet (labels {})",
                        job.name,
                        labels(job)
                    ),
                    false,
                ));
            }
            if let Some(done) = job.completed_at {
                let conclusion = job.conclusion.as_deref().unwrap_or("unknown");
                let failed = job
                    .failed_step
                    .as_ref()
                    .map(|s| format!(" at step \"{s}\""))
                    .unwrap_or_default();
                events.push(event(
                    Stage::Job,
                    Some(done),
                    format!("job \"{}\" {conclusion}{failed}", job.name),
                    conclusion == "success",
                ));
            }
        }
        if let Some(audit) = &run.audit {
            if let Some(n) = &audit.notification {
                events.push(event(
                    Stage::Discord,
                    audit.notified_at.or(audit.finished_at),
                    format!("Discord: {n} (run {})", run.id),
                    n == "sent" || n == "nothing to announce",
                ));
            }
        }
    }
    for b in &facts.bumps {
        if let RegistryState::Published { at } = b.registry {
            events.push(event(
                Stage::Registry,
                at,
                format!("{}@{} on the registry", b.name, b.version),
                true,
            ));
        }
    }
    if let Some((sha, at)) = &facts.changelog_commit {
        events.push(event(
            Stage::Changelog,
            *at,
            format!("changelog committed back as {}", short(sha)),
            true,
        ));
    }
    events
}

fn labels(job: &JobFacts) -> String {
    if job.labels.is_empty() {
        "none".into()
    } else {
        job.labels.join(", ")
    }
}

struct Decision {
    verdict: Verdict,
    stage: Option<Stage>,
    why: String,
    next_step: String,
}

fn decision(verdict: Verdict, stage: Option<Stage>, why: String, next: String) -> Decision {
    Decision {
        verdict,
        stage,
        why,
        next_step: next,
    }
}

fn decide(facts: &Facts) -> Decision {
    let reconcile = format!(
        "reconcile will catch it up at {}",
        hh_mm(next_reconcile(facts.now))
    );
    if facts.bumps.is_empty() {
        let why = if facts.touched_manifest {
            "the commit changed a package.json but no package's `version`".to_string()
        } else {
            "the commit changed no package.json".to_string()
        };
        return decision(
            Verdict::NotBumped,
            Some(Stage::Bump),
            why,
            "version not bumped: nothing publishes until `version` in package.json changes".into(),
        );
    }
    let unknown = facts.bumps.iter().find_map(|b| match &b.registry {
        RegistryState::Unknown { error } => Some((b, error)),
        _ => None,
    });
    if let Some((b, error)) = unknown {
        return decision(
            Verdict::Stopped,
            Some(Stage::Registry),
            format!(
                "the registry could not say whether {}@{} is there: {error}",
                b.name, b.version
            ),
            "check the registry (UPM_REGISTRY) and trace again".into(),
        );
    }
    let missing: Vec<String> = facts
        .bumps
        .iter()
        .filter(|b| b.registry == RegistryState::Missing)
        .map(|b| format!("{}@{}", b.name, b.version))
        .collect();
    if missing.is_empty() {
        let by_catch_up = facts.runs.iter().any(RunFacts::is_catch_up)
            && !facts
                .runs
                .iter()
                .any(|r| !r.is_catch_up() && r.conclusion.as_deref() == Some("success"));
        return if by_catch_up {
            decision(
                Verdict::CaughtUp,
                None,
                "published by reconcile's catch-up: the push's own delivery or run did not publish it"
                    .into(),
                "nothing to publish; find out why the earlier net failed (the delivery and run above)"
                    .into(),
            )
        } else {
            decision(
                Verdict::Published,
                None,
                "every bumped version is on the registry".into(),
                "nothing to do".into(),
            )
        };
    }
    let missing = missing.join(", ");
    if let Some(run) = facts.runs.last() {
        let gh = format!("-R {}", facts.central);
        if let Some(job) = run.queued_job() {
            let waited = job
                .created_at
                .or(run.created_at)
                .map(|c| format!(" for {}", duration(facts.now - c)))
                .unwrap_or_default();
            return decision(
                Verdict::Stopped,
                Some(Stage::Queue),
                format!(
                    "run {} is queued{waited}: no runner with labels [{}] took job \"{}\"",
                    run.id,
                    labels(job),
                    job.name
                ),
                format!(
                    "bring a runner with those labels online (vars.PUBLISH_RUNNER), or cancel the run \
                     (`gh run cancel {} {gh}`) and {reconcile}",
                    run.id
                ),
            );
        }
        if run.status != "completed" {
            return decision(
                Verdict::InProgress,
                Some(Stage::Job),
                format!(
                    "run {} is {} and {missing} is not on the registry yet",
                    run.id, run.status
                ),
                "wait for the run, then trace again".into(),
            );
        }
        if run.conclusion.as_deref() != Some("success") {
            let step = run
                .jobs
                .iter()
                .find_map(|j| j.failed_step.clone())
                .map(|s| format!(" at step \"{s}\""))
                .unwrap_or_default();
            let audit_failure = run
                .audit
                .as_ref()
                .and_then(|a| a.failed.first().cloned())
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            let package_problem = run.audit.as_ref().is_some_and(|a| {
                a.failed
                    .iter()
                    .any(|f| f.contains(": validate:") || f.contains(": pack:"))
            });
            let next = if package_problem {
                "fix the package as the audit says, bump `version` again and push".to_string()
            } else {
                format!(
                    "re-run the failed job: `gh run rerun {} --failed {gh}`",
                    run.id
                )
            };
            return decision(
                Verdict::Stopped,
                Some(Stage::Job),
                format!(
                    "run {} ended {}{step}{audit_failure}",
                    run.id,
                    run.conclusion.as_deref().unwrap_or("without a conclusion")
                ),
                next,
            );
        }
        let skipped = run
            .audit
            .as_ref()
            .map(|a| a.skipped.join("; "))
            .filter(|s| !s.is_empty())
            .map(|s| format!(" (its audit: skipped {s})"))
            .unwrap_or_default();
        return decision(
            Verdict::Stopped,
            Some(Stage::Registry),
            format!(
                "run {} succeeded but {missing} is not on the registry{skipped}",
                run.id
            ),
            format!(
                "check that the run published to this registry, then re-run it (`gh run rerun {} {gh}`)",
                run.id
            ),
        );
    }
    // No central run names this commit.
    if !facts.delivery_log_read {
        return decision(
            Verdict::Stopped,
            Some(Stage::Delivery),
            format!("no publish run names this commit and the hook's delivery log was not read; {missing} is not on the registry"),
            format!("set GITHUB_ORG and HOOK_ID to see the delivery; {reconcile}"),
        );
    }
    let Some(first) = facts.attempts.first() else {
        let pushed = facts.pushed_at.or(facts.committed_at);
        let why = match pushed {
            Some(t) if facts.now - t > DELIVERY_LOG_SECS => format!(
                "GitHub's delivery log keeps 3 days and this push is older; no publish run names it and {missing} is not on the registry"
            ),
            _ => format!("GitHub has no push delivery for this commit (webhook not sent, or sent elsewhere) and {missing} is not on the registry"),
        };
        return decision(Verdict::Stopped, Some(Stage::Delivery), why, reconcile);
    };
    let succeeded = facts
        .attempts
        .iter()
        .rev()
        .find(|a| (200..300).contains(&a.status_code));
    let Some(ok) = succeeded else {
        let last = facts.attempts.last().unwrap_or(first);
        let answer = last
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let why = format!(
            "every attempt of delivery {} failed ({} attempt(s), last answered {}{answer})",
            facts.guid.as_deref().unwrap_or("?"),
            facts.attempts.len(),
            last.status_code
        );
        let redeliveries = facts.attempts.iter().filter(|a| a.redelivery).count();
        let redeliverable = facts.now - first.delivered_at < REDELIVERY_WINDOW_SECS - 3600
            && !PERMANENT_STATUS_CODES.contains(&last.status_code)
            && redeliveries < MAX_REDELIVERIES;
        let next = if redeliverable {
            format!(
                "redeliver it once the cause is fixed: `upm deliveries --redeliver-failed --apply` (the worker's sweeper also retries); or {reconcile}"
            )
        } else {
            format!("it will not be redelivered (permanent answer, retries used up or older than GitHub's 3-day window): {reconcile}")
        };
        return decision(Verdict::Stopped, Some(Stage::Delivery), why, next);
    };
    match ok.outcome.as_deref() {
        Some("dispatched") | None => decision(
            Verdict::Stopped,
            Some(Stage::Dispatch),
            format!(
                "the worker answered {} (dispatched) at {} but no central publish run names delivery {}",
                ok.status_code,
                hh_mm(ok.delivered_at),
                facts.guid.as_deref().unwrap_or("?")
            ),
            format!("check the central workflow is enabled (`gh workflow view handle-publish-request.yml -R {}`); {reconcile}", facts.central),
        ),
        Some(outcome) => decision(
            Verdict::Stopped,
            Some(Stage::Dispatch),
            format!(
                "the worker did not dispatch it: {outcome}: {}",
                ok.reason.as_deref().unwrap_or("no reason given")
            ),
            format!("if the repository should publish, fix its registry entry (`upm registry list`); {reconcile} for active repositories"),
        ),
    }
}

fn notes(facts: &Facts, verdict: Verdict) -> Vec<String> {
    let mut notes = Vec::new();
    if !matches!(verdict, Verdict::Published | Verdict::CaughtUp) {
        return notes;
    }
    if facts.changelog_commit.is_none() {
        notes.push(format!(
            "no changelog commit from the publisher on {} since the run (commit-back skipped or failed)",
            facts.branch
        ));
    }
    let publishing = facts
        .runs
        .iter()
        .rev()
        .find(|r| r.conclusion.as_deref() == Some("success"));
    match publishing.map(|r| (&r.audit, &r.audit_note)) {
        Some((Some(audit), _)) => match audit.notification.as_deref() {
            Some("sent") => {}
            Some(other) => notes.push(format!("Discord was not notified: {other}")),
            None => notes.push("the audit does not say whether Discord was notified".into()),
        },
        Some((None, note)) => notes.push(format!(
            "the run's audit artifact could not be read{}",
            note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
        )),
        None => {}
    }
    notes
}

/// The trace as text: the bumps, the timeline with the time between stages, the verdict.
pub fn render(trace: &Trace) -> String {
    let mut out = format!(
        "trace {}@{} ({})\n",
        trace.repository,
        short(&trace.sha),
        trace.branch
    );
    for event in &trace.events {
        let at = event
            .at
            .map(|t| format_rfc3339_utc(t)[11..19].to_string())
            .unwrap_or_else(|| "   ?    ".into());
        let after = event
            .after_secs
            .map(|s| format!("+{}", duration(s)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {at}  {after:>12}  {} {:<9} {}\n",
            if event.ok { "✓" } else { "✗" },
            event.stage.as_str(),
            event.what
        ));
    }
    let figures: Vec<String> = [
        trace
            .push_to_run_secs
            .map(|s| format!("push → run {}", duration(s))),
        trace
            .push_to_published_secs
            .map(|s| format!("push → published {}", duration(s))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !figures.is_empty() {
        out.push_str(&format!("  {}\n", figures.join(" · ")));
    }
    let verdict = match trace.verdict {
        Verdict::Published => "PUBLISHED".to_string(),
        Verdict::CaughtUp => "PUBLISHED by reconcile".to_string(),
        Verdict::NotBumped => "NOT A BUMP".to_string(),
        Verdict::InProgress => format!(
            "IN PROGRESS at {}",
            trace.stopped_at.map_or("?", Stage::as_str)
        ),
        Verdict::Stopped => format!("STOPPED at {}", trace.stopped_at.map_or("?", Stage::as_str)),
    };
    out.push_str(&format!(
        "{verdict}: {}\nnext: {}\n",
        trace.why, trace.next_step
    ));
    for note in &trace.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000; // 2026-11-18T…Z

    fn bump(registry: RegistryState) -> Bump {
        Bump {
            name: "com.studio.core".into(),
            version: "1.4.0".into(),
            path: "Packages/com.studio.core".into(),
            previous: Some("1.3.2".into()),
            registry,
        }
    }

    fn attempt(id: u64, at: i64, code: u16, redelivery: bool, outcome: &str) -> Attempt {
        Attempt {
            id,
            delivered_at: at,
            status_code: code,
            duration_ms: 200,
            redelivery,
            outcome: Some(outcome.into()),
            reason: Some(format!("{outcome} because")),
        }
    }

    fn job(started: Option<i64>, completed: Option<i64>, conclusion: Option<&str>) -> JobFacts {
        JobFacts {
            name: "Publish UPM packages".into(),
            status: match (started, completed) {
                (_, Some(_)) => "completed",
                (Some(_), None) => "in_progress",
                _ => "queued",
            }
            .into(),
            conclusion: conclusion.map(str::to_string),
            created_at: Some(NOW - 600),
            started_at: started,
            completed_at: completed,
            runner: started.map(|_| "arc-publish-7".into()),
            labels: vec!["self-hosted".into(), "arc-publish".into()],
            failed_step: (conclusion == Some("failure")).then(|| "Publish".into()),
        }
    }

    fn run(
        delivery: &str,
        status: &str,
        conclusion: Option<&str>,
        jobs: Vec<JobFacts>,
    ) -> RunFacts {
        RunFacts {
            id: 77,
            url: "https://github.com/Studio/Central/actions/runs/77".into(),
            title: format!("publish Studio/Core @ abc (delivery {delivery})"),
            delivery: Some(delivery.into()),
            created_at: Some(NOW - 601),
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
            updated_at: None,
            jobs,
            audit: None,
            audit_note: None,
        }
    }

    fn facts() -> Facts {
        Facts {
            repository: "Studio/Core".into(),
            branch: "main".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            central: "Studio/Central".into(),
            commit_message: None,
            committed_at: Some(NOW - 700),
            pushed_at: Some(NOW - 603),
            touched_manifest: true,
            bumps: vec![bump(RegistryState::Missing)],
            delivery_log_read: true,
            guid: Some("g-1".into()),
            attempts: vec![attempt(1, NOW - 602, 200, false, "dispatched")],
            runs: vec![],
            changelog_commit: None,
            now: NOW,
        }
    }

    #[test]
    fn the_next_sweep_follows_the_schedule() {
        let hour = NOW - NOW.rem_euclid(3600);
        assert_eq!(next_reconcile(hour), hour + 13 * 60);
        assert_eq!(next_reconcile(hour + 13 * 60), hour + 43 * 60);
        assert_eq!(next_reconcile(hour + 50 * 60), hour + 3600 + 13 * 60);
    }

    #[test]
    fn the_schedule_is_reconciles_own() {
        let workflow = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.github/workflows/reconcile.yml"
        ))
        .unwrap();
        let minutes: Vec<String> = RECONCILE_MINUTES.iter().map(i64::to_string).collect();
        let cron = format!("cron: \"{} * * * *\"", minutes.join(","));
        assert!(workflow.contains(&cron), "reconcile.yml has no {cron}");
    }

    #[test]
    fn a_published_bump_has_a_full_ordered_timeline() {
        let mut f = facts();
        f.bumps = vec![bump(RegistryState::Published {
            at: Some(NOW - 540),
        })];
        let mut r = run(
            "g-1",
            "completed",
            Some("success"),
            vec![job(Some(NOW - 590), Some(NOW - 530), Some("success"))],
        );
        r.audit = Some(AuditFacts {
            ok: true,
            published: vec!["com.studio.core@1.4.0".into()],
            notification: Some("sent".into()),
            notified_at: Some(NOW - 535),
            ..AuditFacts::default()
        });
        f.runs = vec![r];
        f.changelog_commit = Some(("feedfacefeedface".into(), Some(NOW - 531)));
        let t = build(&f);
        assert_eq!(t.verdict, Verdict::Published);
        assert_eq!(t.stopped_at, None);
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        let stages: Vec<Stage> = t.events.iter().map(|e| e.stage).collect();
        assert_eq!(
            stages,
            [
                Stage::Push,
                Stage::Delivery,
                Stage::Dispatch,
                Stage::Queue,
                Stage::Registry,
                Stage::Discord,
                Stage::Changelog,
                Stage::Job,
            ]
        );
        assert_eq!(t.events[1].after_secs, Some(1));
        assert_eq!(t.push_to_run_secs, Some(2));
        assert_eq!(t.push_to_published_secs, Some(63));
    }

    #[test]
    fn a_failed_delivery_is_redelivered_while_github_allows_it() {
        let mut f = facts();
        f.attempts = vec![
            attempt(1, NOW - 602, 502, false, "failed"),
            attempt(2, NOW - 300, 502, true, "failed"),
        ];
        let t = build(&f);
        assert_eq!(
            (t.verdict, t.stopped_at),
            (Verdict::Stopped, Some(Stage::Delivery))
        );
        assert!(
            t.why.contains("2 attempt(s), last answered 502"),
            "{}",
            t.why
        );
        assert!(t.next_step.starts_with("redeliver it"), "{}", t.next_step);
        // Three redeliveries used up, or a permanent answer: only reconcile is left.
        f.attempts.extend([
            attempt(3, NOW - 200, 502, true, "failed"),
            attempt(4, NOW - 100, 502, true, "failed"),
        ]);
        assert!(build(&f)
            .next_step
            .starts_with("it will not be redelivered"));
        f.attempts = vec![attempt(1, NOW - 602, 401, false, "rejected")];
        assert!(build(&f)
            .next_step
            .contains("reconcile will catch it up at"));
    }

    #[test]
    fn a_dispatch_without_a_run_waits_for_reconcile_at_its_next_sweep() {
        let f = facts();
        let t = build(&f);
        assert_eq!(t.stopped_at, Some(Stage::Dispatch));
        let at = hh_mm(next_reconcile(NOW));
        assert!(
            t.next_step
                .ends_with(&format!("reconcile will catch it up at {at}")),
            "{}",
            t.next_step
        );
        let mut ignored = facts();
        ignored.attempts = vec![attempt(1, NOW - 602, 200, false, "ignored")];
        let t = build(&ignored);
        assert!(t.why.contains("did not dispatch it: ignored"), "{}", t.why);
    }

    #[test]
    fn no_delivery_at_all_and_an_unread_log_are_told_apart() {
        let mut f = facts();
        f.attempts.clear();
        assert!(build(&f).why.starts_with("GitHub has no push delivery"));
        f.pushed_at = Some(NOW - DELIVERY_LOG_SECS - 10);
        assert!(build(&f).why.contains("keeps 3 days"));
        f.delivery_log_read = false;
        assert!(build(&f)
            .next_step
            .starts_with("set GITHUB_ORG and HOOK_ID"));
    }

    #[test]
    fn a_queued_run_names_the_labels_nobody_serves() {
        let mut f = facts();
        f.runs = vec![run("g-1", "queued", None, vec![job(None, None, None)])];
        let t = build(&f);
        assert_eq!(t.stopped_at, Some(Stage::Queue));
        assert!(t.why.contains("queued for 10 min:"), "{}", t.why);
        assert!(t.why.contains("[self-hosted, arc-publish]"), "{}", t.why);
        assert!(
            t.next_step.contains("gh run cancel 77 -R Studio/Central"),
            "{}",
            t.next_step
        );
        f.runs = vec![run(
            "g-1",
            "in_progress",
            None,
            vec![job(Some(NOW - 10), None, None)],
        )];
        assert_eq!(build(&f).verdict, Verdict::InProgress);
    }

    #[test]
    fn a_failed_run_is_re_run_unless_the_package_itself_is_wrong() {
        let mut f = facts();
        let mut r = run(
            "g-1",
            "completed",
            Some("failure"),
            vec![job(Some(NOW - 590), Some(NOW - 580), Some("failure"))],
        );
        f.runs = vec![r.clone()];
        let t = build(&f);
        assert_eq!(t.stopped_at, Some(Stage::Job));
        assert!(t.why.contains("at step \"Publish\""), "{}", t.why);
        assert!(
            t.next_step.contains("gh run rerun 77 --failed"),
            "{}",
            t.next_step
        );
        r.audit = Some(AuditFacts {
            failed: vec!["com.studio.core@1.4.0: validate: `unity` is missing".into()],
            ..AuditFacts::default()
        });
        f.runs = vec![r];
        assert!(build(&f).next_step.starts_with("fix the package"));
    }

    #[test]
    fn a_catch_up_and_a_non_bump_have_their_own_verdicts() {
        let mut f = facts();
        f.bumps = vec![bump(RegistryState::Published { at: Some(NOW - 10) })];
        f.attempts = vec![attempt(1, NOW - 602, 502, false, "failed")];
        f.runs = vec![run("reconcile-42", "completed", Some("success"), vec![])];
        let t = build(&f);
        assert_eq!(t.verdict, Verdict::CaughtUp);
        assert_eq!(
            t.push_to_run_secs, None,
            "a catch-up is not the push's own run"
        );
        assert!(
            t.notes.iter().any(|n| n.contains("audit artifact")),
            "{:?}",
            t.notes
        );
        f.bumps.clear();
        let t = build(&f);
        assert_eq!(
            (t.verdict, t.stopped_at),
            (Verdict::NotBumped, Some(Stage::Bump))
        );
        assert!(t.next_step.starts_with("version not bumped"));
        f.bumps = vec![bump(RegistryState::Unknown {
            error: "no answer".into(),
        })];
        assert_eq!(build(&f).stopped_at, Some(Stage::Registry));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(4), "4 s");
        assert_eq!(duration(200), "3 min 20 s");
        assert_eq!(duration(300), "5 min");
        assert_eq!(duration(7_500), "2 h 5 min");
        assert_eq!(duration(-3), "-3 s");
    }
}

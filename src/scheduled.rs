//! The cron-triggered sweep: list the hook's deliveries, decide with `sweep` (and the shared rule in
//! `upm_github::deliveries`), ask GitHub to redeliver, remember what was asked in KV. Then the
//! watchdog: list the stuck publish runs and the nets' workflows, decide with `watchdog`, cancel,
//! dispatch, enable and alert. Like `delivery`, this file only sequences the decisions and does the
//! I/O they ask for through the `Platform`.

use std::collections::HashMap;

use upm_github::deliveries::{plan_redeliveries, HookDelivery, RedeliveryPolicy, Skip};

use crate::app_auth::{send_authorized, send_authorized_for_page};
use crate::config::{Config, SweepConfig, SweepSettings, WatchdogConfig, WatchdogSettings};
use crate::dedup;
use crate::dispatch;
use crate::github;
use crate::model::RepoName;
use crate::platform::{HttpRequest, HttpResponse, Platform};
use crate::sweep::{
    self, answer_retryable, redelivery_answer, verdict, RedeliveryAnswer, SweepRecord, SweepReport,
    Verdict,
};
use crate::watchdog::{
    self, Alert, Binary, Failover, FailoverState, Run, Runner, StuckVerdict, WatchdogReport,
};

/// Per-delivery notes in the log line are capped so one line stays readable in `wrangler tail`.
const MAX_NOTES: usize = 25;
const ACCEPT: &str = "application/vnd.github+json";

/// One sweep. Never fails: what went wrong is in the report, whose log line is the run's record.
pub async fn sweep<P: Platform>(config: &Config, platform: &P) -> SweepReport {
    let started = platform.now_ms();
    let mut report = match &config.sweep {
        SweepConfig::Off => SweepReport {
            outcome: "off",
            reason: Some("GITHUB_ORG and HOOK_ID are not set: the sweeper is off".into()),
            ..SweepReport::default()
        },
        SweepConfig::Invalid(why) => SweepReport {
            outcome: "invalid",
            reason: Some(why.clone()),
            ..SweepReport::default()
        },
        // Redelivering into a worker that answers 500 would only spend each delivery's attempts.
        SweepConfig::On(_) if !config.problems.is_empty() => SweepReport {
            outcome: "invalid",
            reason: Some(format!(
                "the worker is not configured, so nothing is redelivered: {}",
                config.problems.join("; ")
            )),
            ..SweepReport::default()
        },
        SweepConfig::On(_) if config.app.is_none() && config.github_token.is_none() => {
            SweepReport {
                outcome: "invalid",
                reason: Some("no GitHub credential: set GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY or GITHUB_TOKEN".into()),
                ..SweepReport::default()
            }
        }
        SweepConfig::On(settings) => {
            let mut report = SweepReport {
                outcome: "done",
                ..SweepReport::default()
            };
            Sweep {
                config,
                platform,
                settings,
            }
            .run(&mut report)
            .await;
            report
        }
    };
    report.elapsed_ms = platform.now_ms().saturating_sub(started);
    report
}

struct Sweep<'a, P> {
    config: &'a Config,
    platform: &'a P,
    settings: &'a SweepSettings,
}

impl<P: Platform> Sweep<'_, P> {
    async fn run(&self, report: &mut SweepReport) {
        let now_unix = (self.platform.now_ms() / 1000) as i64;
        let Some(listing) = self.list(now_unix, report).await else {
            report.outcome = "failed";
            return;
        };
        let policy = self.settings.policy;

        // Every failed push or pull request delivery the shared rule would redeliver, before the per-run budget, so the
        // worker's own records can set some aside first and the budget goes to the rest.
        let unbounded = RedeliveryPolicy {
            max_per_run: usize::MAX,
            ..policy
        };
        let wide = plan_redeliveries(&listing, now_unix, &unbounded, |_| false);
        report.failed = wide.redeliver.len() + wide.skipped.len();
        let mut records = HashMap::new();
        let mut held = HashMap::new();
        let now_ms = self.platform.now_ms();
        for candidate in &wide.redeliver {
            let dispatched = self.dispatched(&candidate.guid, report).await;
            let record = self.record(&candidate.guid).await;
            match verdict(
                dispatched,
                &record,
                candidate.last_status_code,
                &policy,
                now_ms,
            ) {
                verdict @ (Verdict::Dispatched
                | Verdict::Permanent
                | Verdict::Capped
                | Verdict::Waiting { .. }) => {
                    held.insert(candidate.guid.clone(), verdict);
                }
                Verdict::CheckAnswer | Verdict::Redeliver => {}
            }
            records.insert(candidate.guid.clone(), record);
        }

        let plan = plan_redeliveries(&listing, now_unix, &policy, |guid| held.contains_key(guid));
        for skipped in &plan.skipped {
            match skipped.reason {
                Skip::OutsideWindow => report.outside_window += 1,
                Skip::Permanent => report.permanent += 1,
                Skip::AttemptsExhausted => report.attempts_exhausted += 1,
                Skip::OverBudget => report.over_budget += 1,
                Skip::UnreadableDate => {
                    report.errors += 1;
                    self.note(report, format!("{}: unreadable delivered_at", skipped.guid));
                }
                Skip::AlreadyDispatched => match held.get(&skipped.guid) {
                    Some(Verdict::Permanent) => report.permanent += 1,
                    Some(Verdict::Capped) => report.attempts_exhausted += 1,
                    Some(Verdict::Waiting { .. }) => report.waiting += 1,
                    _ => report.already_dispatched += 1,
                },
            }
        }

        for redelivery in &plan.redeliver {
            let mut record = records.remove(&redelivery.guid).unwrap_or_default();
            if verdict(false, &record, redelivery.last_status_code, &policy, now_ms)
                == Verdict::CheckAnswer
            {
                record.answer_checked = true;
                if let Some(false) = self.answer_retryable(redelivery.delivery_id, report).await {
                    record.permanent = Some("the worker answered retryable: false".into());
                    report.permanent += 1;
                    self.note(
                        report,
                        format!(
                            "{}: not redelivered, our 502 said retryable: false",
                            redelivery.guid
                        ),
                    );
                    self.save(&redelivery.guid, &record).await;
                    continue;
                }
            }
            if self.config.dry_run {
                report.redelivered += 1;
                self.note(
                    report,
                    format!(
                        "{}: dry run, would redeliver attempt {}",
                        redelivery.guid, redelivery.delivery_id
                    ),
                );
                continue;
            }
            let request = github::request(
                self.config,
                "POST",
                &self.settings.redeliver_path(redelivery.delivery_id),
                ACCEPT,
                None,
            );
            report.github_calls += 1;
            let answer = match send_authorized(self.config, self.platform, request).await {
                Ok(response) => {
                    redelivery_answer(response.status, &github::error_message(&response.body))
                }
                Err(why) => RedeliveryAnswer::Failed(why.detail()),
            };
            match answer {
                RedeliveryAnswer::Accepted => {
                    record.redeliveries += 1;
                    record.last_redelivered_at_ms = Some(self.platform.now_ms());
                    report.redelivered += 1;
                    self.note(
                        report,
                        format!(
                            "{}: redelivered (last answer {}, sweeper redelivery {})",
                            redelivery.guid, redelivery.last_status_code, record.redeliveries
                        ),
                    );
                }
                RedeliveryAnswer::Refused(why) => {
                    report.permanent += 1;
                    self.note(
                        report,
                        format!("{}: GitHub refused the redelivery: {why}", redelivery.guid),
                    );
                    record.permanent = Some(why);
                }
                RedeliveryAnswer::Failed(why) => {
                    report.errors += 1;
                    self.note(
                        report,
                        format!(
                            "{}: redelivery failed, next run retries: {why}",
                            redelivery.guid
                        ),
                    );
                }
            }
            self.save(&redelivery.guid, &record).await;
        }
    }

    /// Reads the listing, newest first, until it leaves the redelivery window, ends, or the page cap.
    /// `None` when not even the first page could be read.
    async fn list(&self, now_unix: i64, report: &mut SweepReport) -> Option<Vec<HookDelivery>> {
        let mut listing = Vec::new();
        let mut path = Some(self.settings.first_page_path());
        while let Some(current) = path.take() {
            if report.pages >= self.settings.max_pages {
                report.truncated = true;
                self.note(
                    report,
                    format!("stopped after {} pages (SWEEP_MAX_PAGES)", report.pages),
                );
                break;
            }
            let request = github::request(self.config, "GET", &current, ACCEPT, None);
            report.github_calls += 1;
            let page = match send_authorized_for_page(self.config, self.platform, request).await {
                Ok((
                    HttpResponse {
                        status: 200, body, ..
                    },
                    link,
                )) => sweep::parse_page(&body).map(|page| (page, link)),
                Ok((response, _)) => Err(format!(
                    "listing deliveries: GitHub answered {}: {}",
                    response.status,
                    github::error_message(&response.body)
                )),
                Err(why) => Err(format!("listing deliveries: {}", why.detail())),
            };
            match page {
                Ok((page, link)) => {
                    report.pages += 1;
                    report.listed += page.len();
                    if sweep::page_reaches_into_window(&page, now_unix) {
                        path = sweep::next_page_path(link.as_deref(), &self.config.github_api);
                    }
                    listing.extend(page);
                }
                Err(why) if report.pages == 0 => {
                    report.reason = Some(why);
                    return None;
                }
                // The pages read so far still hold the newest failures; the KV records keep a
                // delivery seen only in part from being redelivered past its cap.
                Err(why) => {
                    report.errors += 1;
                    report.truncated = true;
                    self.note(report, why);
                }
            }
        }
        Some(listing)
    }

    async fn dispatched(&self, guid: &str, report: &mut SweepReport) -> bool {
        match self.platform.kv_get(&dedup::key(guid)).await {
            Ok(record) => record.is_some(),
            // Unknown: redeliver. A second copy costs a dedup check, never a double publish.
            Err(why) => {
                self.note(report, format!("{guid}: dispatch record unreadable: {why}"));
                false
            }
        }
    }

    async fn record(&self, guid: &str) -> SweepRecord {
        match self.platform.kv_get(&SweepRecord::key(guid)).await {
            Ok(Some(value)) => SweepRecord::from_kv(&value),
            _ => SweepRecord::default(),
        }
    }

    async fn save(&self, guid: &str, record: &SweepRecord) {
        // A lost write costs at most one redelivery more, bounded by the listing's own count.
        let _ = self
            .platform
            .kv_put(
                &SweepRecord::key(guid),
                &record.to_kv(),
                Some(sweep::RECORD_TTL_SECONDS),
            )
            .await;
    }

    async fn answer_retryable(&self, delivery_id: u64, report: &mut SweepReport) -> Option<bool> {
        let request = github::request(
            self.config,
            "GET",
            &self.settings.delivery_path(delivery_id),
            ACCEPT,
            None,
        );
        report.github_calls += 1;
        match send_authorized(self.config, self.platform, request).await {
            Ok(response) if response.status == 200 => answer_retryable(&response.body),
            _ => None,
        }
    }

    fn note(&self, report: &mut SweepReport, note: String) {
        if report.notes.len() < MAX_NOTES {
            report.notes.push(note);
        }
    }
}

/// One watchdog tick at `now_ms` (the cron's `scheduledTime`). Never fails: what went wrong is in the
/// report, whose log line is the tick's record.
pub async fn watchdog<P: Platform>(config: &Config, platform: &P, now_ms: u64) -> WatchdogReport {
    let started = platform.now_ms();
    let invalid = |why: String| WatchdogReport {
        outcome: "invalid",
        reason: Some(why),
        ..WatchdogReport::default()
    };
    let mut report = match (&config.watchdog, &config.dispatch_repo) {
        (WatchdogConfig::Off, _) => WatchdogReport {
            outcome: "off",
            reason: Some("WATCHDOG is not on".into()),
            ..WatchdogReport::default()
        },
        (WatchdogConfig::Invalid(why), _) => invalid(why.clone()),
        (WatchdogConfig::On(_), _) if !config.problems.is_empty() => invalid(format!(
            "the worker is not configured: {}",
            config.problems.join("; ")
        )),
        (WatchdogConfig::On(_), _) if config.app.is_none() && config.github_token.is_none() => {
            invalid(
                "no GitHub credential: set GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY or GITHUB_TOKEN"
                    .into(),
            )
        }
        (WatchdogConfig::On(_), None) => invalid("DISPATCH_REPO is not set".into()),
        (WatchdogConfig::On(settings), Some(central)) => {
            let mut report = WatchdogReport {
                outcome: "done",
                ..WatchdogReport::default()
            };
            Watch {
                config,
                platform,
                settings,
                central,
                now_ms,
                runners: None,
                default_branch: None,
            }
            .run(&mut report)
            .await;
            report
        }
    };
    report.elapsed_ms = platform.now_ms().saturating_sub(started);
    report
}

struct Watch<'a, P> {
    config: &'a Config,
    platform: &'a P,
    settings: &'a WatchdogSettings,
    central: &'a RepoName,
    now_ms: u64,
    /// The self-hosted runners, listed at most once per tick (`Some(None)`: unreadable).
    runners: Option<Option<Vec<Runner>>>,
    default_branch: Option<String>,
}

impl<P: Platform> Watch<'_, P> {
    async fn run(&mut self, report: &mut WatchdogReport) {
        self.runners_that_pick_up_nothing(report).await;
        let last = self
            .platform
            .kv_get(watchdog::NETS_KEY)
            .await
            .ok()
            .flatten();
        if watchdog::nets_due(last.as_deref(), self.now_ms) {
            report.nets_checked = true;
            self.nets(report).await;
            // A lost write costs one more check next tick, five requests.
            let _ = self
                .platform
                .kv_put(
                    watchdog::NETS_KEY,
                    &self.now_ms.to_string(),
                    Some(2 * watchdog::NETS_EVERY_MS / 1000),
                )
                .await;
        }
    }

    async fn runners_that_pick_up_nothing(&mut self, report: &mut WatchdogReport) {
        let active = match self.platform.kv_get(watchdog::FAILOVER_KEY).await {
            Ok(value) => value.as_deref().and_then(FailoverState::from_kv),
            Err(why) => {
                // Unknown: decided as if none was active; at worst a second "started" alert.
                note(report, format!("failover state unreadable: {why}"));
                None
            }
        };
        let queued = match self
            .get(&watchdog::queued_runs_path(self.central), report)
            .await
            .and_then(|body| watchdog::parse_runs(&body))
        {
            Ok(runs) => runs,
            Err(why) => {
                report.outcome = "failed";
                report.reason = Some(format!("listing queued publish runs: {why}"));
                report.failover_active = active.is_some();
                return;
            }
        };
        report.queued = queued.len();
        let stuck: Vec<Run> = watchdog::stuck_runs(
            &queued,
            self.now_ms,
            self.settings.queued_ms,
            self.settings.max_per_tick,
        )
        .into_iter()
        .cloned()
        .collect();
        report.stuck = stuck.len();
        let mut moved_labels: Option<Vec<String>> = None;
        let mut moved = Vec::new();
        for run in &stuck {
            let jobs = match self
                .get(&watchdog::jobs_path(self.central, run.id), report)
                .await
                .and_then(|body| watchdog::parse_jobs(&body))
            {
                Ok(jobs) => jobs,
                Err(why) => {
                    report.errors += 1;
                    note(report, format!("run {}: {why}", run.id));
                    continue;
                }
            };
            let runners = match watchdog::waiting_self_hosted_labels(&jobs) {
                Some(_) => self.runners(report).await,
                None => None,
            };
            match watchdog::stuck_verdict(run, &jobs, runners.as_deref()) {
                StuckVerdict::NotSelfHosted => {}
                StuckVerdict::Unreadable => note(
                    report,
                    format!(
                        "run {}: its title is not a publish run's, left alone",
                        run.id
                    ),
                ),
                StuckVerdict::PoolOnline => {
                    report.stuck_on_online_pool += 1;
                    note(
                        report,
                        format!("run {}: stuck although a runner with its labels is online (busy, or its runner group does not allow this repository)", run.id),
                    );
                }
                StuckVerdict::RunnersUnknown => {
                    report.errors += 1;
                    note(
                        report,
                        format!(
                            "run {}: the runners could not be listed, nothing moved",
                            run.id
                        ),
                    );
                }
                StuckVerdict::Move(payload) => {
                    if self.move_run(run, &payload, report).await {
                        moved_labels.get_or_insert_with(|| {
                            watchdog::waiting_self_hosted_labels(&jobs).unwrap_or_default()
                        });
                        moved.push(format!(
                            "{}@{}",
                            payload.repository,
                            &payload.commit_sha[..12]
                        ));
                    }
                }
            }
        }
        report.moved = moved.len();
        let pool_alive_now = match &active {
            Some(state) if moved.is_empty() => self
                .runners(report)
                .await
                .map(|runners| watchdog::pool_alive(&runners, &state.labels)),
            _ => None,
        };
        let decision = watchdog::failover(
            active,
            moved_labels.as_deref(),
            moved.len(),
            report.stuck_on_online_pool > 0,
            pool_alive_now,
            self.now_ms,
        );
        match decision {
            Failover::Quiet => {}
            Failover::Started(state) => {
                report.failover_active = true;
                self.save_failover(&state.to_kv(), watchdog::FAILOVER_TTL_SECONDS)
                    .await;
                let alert = Alert::FailoverStarted {
                    labels: state.labels,
                    moved,
                };
                self.alert(alert, report).await;
            }
            Failover::Ongoing(state) => {
                report.failover_active = true;
                self.save_failover(&state.to_kv(), watchdog::FAILOVER_TTL_SECONDS)
                    .await;
            }
            Failover::Recovered(state) => {
                self.save_failover(watchdog::FAILOVER_ENDED, 60).await;
                let alert = Alert::Recovered {
                    minutes: watchdog::minutes_between(state.since_ms, self.now_ms),
                    labels: state.labels,
                    moved: state.moved,
                };
                self.alert(alert, report).await;
            }
        }
    }

    /// Cancels the stuck run, then dispatches it again marked. Only after GitHub accepted the cancel:
    /// a run that could not be cancelled is listed again next tick (and a run that started meanwhile
    /// publishes by itself).
    async fn move_run(
        &self,
        run: &Run,
        payload: &dispatch::ClientPayload,
        report: &mut WatchdogReport,
    ) -> bool {
        if self.config.dry_run {
            note(
                report,
                format!(
                    "dry run: would move run {} ({}) to GitHub-hosted runners",
                    run.id, payload.repository
                ),
            );
            return false;
        }
        let cancel = self.request("POST", &watchdog::cancel_path(self.central, run.id), None);
        match self.send(cancel, report).await {
            Ok(response) if response.status == 202 => {}
            Ok(response) => {
                report.errors += 1;
                note(
                    report,
                    format!(
                        "run {}: cancel answered {}: {}",
                        run.id,
                        response.status,
                        github::error_message(&response.body)
                    ),
                );
                return false;
            }
            Err(why) => {
                report.errors += 1;
                note(report, format!("run {}: cancel failed: {why}", run.id));
                return false;
            }
        }
        let request = github::dispatch_request(self.config, self.central, dispatch::body(payload));
        match self.send(request, report).await {
            Ok(response) if (200..300).contains(&response.status) => {
                note(
                    report,
                    format!(
                        "run {} ({}) moved to GitHub-hosted runners",
                        run.id, payload.repository
                    ),
                );
                true
            }
            // The run is cancelled and not dispatched again: reconcile's next sweep publishes it (on
            // the dead labels, so the watchdog moves that run in turn). Reported loudly.
            Ok(response) => {
                report.errors += 1;
                note(
                    report,
                    format!(
                        "run {} cancelled but its re-dispatch answered {}: {}; reconcile catches it up",
                        run.id,
                        response.status,
                        github::error_message(&response.body)
                    ),
                );
                false
            }
            Err(why) => {
                report.errors += 1;
                note(
                    report,
                    format!("run {} cancelled but its re-dispatch failed: {why}; reconcile catches it up", run.id),
                );
                false
            }
        }
    }

    /// The repository's and the organization's self-hosted runners, together. A 404 on the
    /// organization listing is an owner that is a user, not an organization: no runners there.
    async fn runners(&mut self, report: &mut WatchdogReport) -> Option<Vec<Runner>> {
        if let Some(known) = &self.runners {
            return known.clone();
        }
        let mut all = Vec::new();
        let mut readable = true;
        for path in [
            watchdog::repo_runners_path(self.central),
            watchdog::org_runners_path(self.central),
        ] {
            let request = self.request("GET", &path, None);
            match self.send(request, report).await {
                Ok(response) if response.status == 200 => {
                    match watchdog::parse_runners(&response.body) {
                        Ok(runners) => all.extend(runners),
                        Err(why) => {
                            readable = false;
                            note(report, why);
                        }
                    }
                }
                Ok(response) if response.status == 404 => {}
                Ok(response) => {
                    readable = false;
                    note(
                        report,
                        format!(
                            "listing runners answered {}: {} (the App needs Administration: read on the central repository and the organization's Self-hosted runners: read)",
                            response.status,
                            github::error_message(&response.body)
                        ),
                    );
                }
                Err(why) => {
                    readable = false;
                    note(report, format!("listing runners failed: {why}"));
                }
            }
        }
        let runners = readable.then_some(all);
        self.runners = Some(runners.clone());
        runners
    }

    async fn nets(&mut self, report: &mut WatchdogReport) {
        // Scheduled workflows GitHub disabled for inactivity (Actions: write to enable).
        match self
            .get(&watchdog::workflows_path(self.central), report)
            .await
            .and_then(|body| watchdog::parse_workflows(&body))
        {
            Ok(workflows) => {
                for workflow in watchdog::disabled_for_inactivity(&workflows)
                    .into_iter()
                    .take(self.settings.max_per_tick)
                {
                    if self.config.dry_run {
                        note(report, format!("dry run: would enable {}", workflow.path));
                        continue;
                    }
                    let enable = self.request(
                        "PUT",
                        &watchdog::enable_path(self.central, workflow.id),
                        None,
                    );
                    match self.send(enable, report).await {
                        Ok(response) if response.status == 204 => {
                            report.workflows_enabled += 1;
                            let alert = Alert::WorkflowEnabled {
                                path: workflow.path.clone(),
                            };
                            self.alert(alert, report).await;
                        }
                        Ok(response) => {
                            report.errors += 1;
                            note(
                                report,
                                format!(
                                    "enabling {} answered {}: {}",
                                    workflow.path,
                                    response.status,
                                    github::error_message(&response.body)
                                ),
                            );
                        }
                        Err(why) => {
                            report.errors += 1;
                            note(report, format!("enabling {} failed: {why}", workflow.path));
                        }
                    }
                }
                for workflow in workflows.iter().filter(|w| w.state == "disabled_manually") {
                    note(report, format!("{} is disabled by a person", workflow.path));
                }
            }
            Err(why) => {
                report.errors += 1;
                note(report, format!("listing workflows: {why}"));
            }
        }

        // Reconcile's schedule: silent past its bound → run it now.
        match self
            .get(
                &watchdog::latest_run_path(self.central, watchdog::RECONCILE_WORKFLOW),
                report,
            )
            .await
            .and_then(|body| watchdog::parse_runs(&body))
        {
            Ok(runs) => {
                if watchdog::reconcile_silent(
                    runs.first(),
                    self.now_ms,
                    self.settings.reconcile_silent_ms,
                ) {
                    self.dispatch_reconcile(runs.first(), report).await;
                }
            }
            Err(why) => {
                report.errors += 1;
                note(report, format!("listing reconcile runs: {why}"));
            }
        }

        // A usable publisher binary for the head of the default branch.
        let Some(branch) = self.default_branch(report).await else {
            return;
        };
        let head = match self
            .get(&watchdog::branch_path(self.central, &branch), report)
            .await
            .and_then(|body| watchdog::parse_branch_head(&body))
        {
            Ok(sha) => sha,
            Err(why) => {
                report.errors += 1;
                note(report, format!("reading the head of {branch}: {why}"));
                return;
            }
        };
        match self
            .get(&watchdog::binary_runs_path(self.central, &head), report)
            .await
            .and_then(|body| watchdog::parse_runs(&body))
        {
            Ok(runs) => match watchdog::binary(&runs, self.now_ms) {
                Binary::Usable => {}
                Binary::Building => note(report, format!("the binary of {head} is being built")),
                Binary::Missing(why) => {
                    let key = watchdog::binary_alert_key(&head);
                    if self.platform.kv_get(&key).await.ok().flatten().is_none() {
                        let _ = self
                            .platform
                            .kv_put(&key, "alerted", Some(watchdog::BINARY_ALERT_TTL_SECONDS))
                            .await;
                        let alert = Alert::NoBinary { sha: head, why };
                        self.alert(alert, report).await;
                    }
                }
            },
            Err(why) => {
                report.errors += 1;
                note(report, format!("listing binary builds: {why}"));
            }
        }
    }

    async fn dispatch_reconcile(&mut self, latest: Option<&Run>, report: &mut WatchdogReport) {
        let silent_for = match latest.and_then(Run::created_ms) {
            Some(created) => format!(
                "{} minutes",
                watchdog::minutes_between(created, self.now_ms)
            ),
            None => "ever (it never ran)".to_string(),
        };
        if self.config.dry_run {
            note(
                report,
                format!("dry run: would dispatch {}", watchdog::RECONCILE_WORKFLOW),
            );
            return;
        }
        let Some(branch) = self.default_branch(report).await else {
            return;
        };
        let body = serde_json::json!({ "ref": branch }).to_string();
        let request = self.request(
            "POST",
            &watchdog::workflow_dispatch_path(self.central, watchdog::RECONCILE_WORKFLOW),
            Some(body),
        );
        match self.send(request, report).await {
            Ok(response) if (200..300).contains(&response.status) => {
                report.reconcile_dispatched = true;
                self.alert(Alert::ReconcileDispatched { silent_for }, report)
                    .await;
            }
            Ok(response) => {
                report.errors += 1;
                note(
                    report,
                    format!(
                        "dispatching {} answered {}: {}",
                        watchdog::RECONCILE_WORKFLOW,
                        response.status,
                        github::error_message(&response.body)
                    ),
                );
            }
            Err(why) => {
                report.errors += 1;
                note(report, format!("dispatching reconcile failed: {why}"));
            }
        }
    }

    async fn default_branch(&mut self, report: &mut WatchdogReport) -> Option<String> {
        if self.default_branch.is_none() {
            match self
                .get(&watchdog::repo_path(self.central), report)
                .await
                .and_then(|body| watchdog::parse_default_branch(&body))
            {
                Ok(branch) => self.default_branch = Some(branch),
                Err(why) => {
                    report.errors += 1;
                    note(report, format!("reading the central repository: {why}"));
                }
            }
        }
        self.default_branch.clone()
    }

    async fn save_failover(&self, value: &str, ttl_seconds: u64) {
        // A lost write costs a second "started" alert, or a missed "recovered" one: never a publish.
        let _ = self
            .platform
            .kv_put(watchdog::FAILOVER_KEY, value, Some(ttl_seconds))
            .await;
    }

    /// Posts the alert to Discord when `DISCORD_WEBHOOK_URL` is set; the log line names it either way.
    async fn alert(&self, alert: Alert, report: &mut WatchdogReport) {
        report.alerts.push(alert.kind());
        let Some(webhook) = &self.settings.discord_webhook else {
            return;
        };
        if self.config.dry_run {
            return;
        }
        match self
            .platform
            .send(watchdog::discord_request(webhook, &alert))
            .await
        {
            Ok(response) if (200..300).contains(&response.status) => {}
            // The URL is a secret: only the status is named.
            Ok(response) => {
                report.errors += 1;
                note(
                    report,
                    format!(
                        "Discord answered {} to the {} alert",
                        response.status,
                        alert.kind()
                    ),
                );
            }
            Err(why) => {
                report.errors += 1;
                note(
                    report,
                    format!(
                        "the {} alert did not reach Discord: {}",
                        alert.kind(),
                        why.public()
                    ),
                );
            }
        }
    }

    fn request(&self, method: &'static str, path: &str, body: Option<String>) -> HttpRequest {
        github::request(self.config, method, path, ACCEPT, body)
    }

    async fn send(
        &self,
        request: HttpRequest,
        report: &mut WatchdogReport,
    ) -> Result<HttpResponse, String> {
        report.github_calls += 1;
        send_authorized(self.config, self.platform, request)
            .await
            .map_err(|why| why.detail())
    }

    /// A GET whose only good answer is 200, as its body.
    async fn get(&self, path: &str, report: &mut WatchdogReport) -> Result<String, String> {
        let request = self.request("GET", path, None);
        match self.send(request, report).await? {
            HttpResponse {
                status: 200, body, ..
            } => Ok(body),
            response => Err(format!(
                "GitHub answered {}: {}",
                response.status,
                github::error_message(&response.body)
            )),
        }
    }
}

fn note(report: &mut WatchdogReport, note: String) {
    if report.notes.len() < MAX_NOTES {
        report.notes.push(note);
    }
}

#[cfg(test)]
#[path = "scheduled_tests.rs"]
mod tests;

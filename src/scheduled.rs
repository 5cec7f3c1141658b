//! The cron-triggered sweep: list the hook's deliveries, decide with `sweep` (and the shared rule in
//! `upm_github::deliveries`), ask GitHub to redeliver, remember what was asked in KV. Like `delivery`,
//! this file only sequences the decisions and does the I/O they ask for through the `Platform`.

use std::collections::HashMap;

use upm_github::deliveries::{plan_redeliveries, HookDelivery, RedeliveryPolicy, Skip};

use crate::app_auth::{send_authorized, send_authorized_for_page};
use crate::config::{Config, SweepConfig, SweepSettings};
use crate::dedup;
use crate::github;
use crate::platform::{HttpResponse, Platform};
use crate::sweep::{
    self, answer_retryable, redelivery_answer, verdict, RedeliveryAnswer, SweepRecord, SweepReport,
    Verdict,
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

        // Every failed push delivery the shared rule would redeliver, before the per-run budget, so the
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

#[cfg(test)]
#[path = "scheduled_tests.rs"]
mod tests;

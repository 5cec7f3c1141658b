//! `upm deliveries`: the organization hook's recent deliveries, the alert, and redelivery of failed
//! ones by the rule the worker's sweeper uses (`upm_github::deliveries::plan_redeliveries`).

use std::collections::HashMap;

use serde::Serialize;
use upm_github::client::now_unix;
use upm_github::deliveries::{
    format_rfc3339_utc, plan_redeliveries, redelivery_outcome, RedeliveryOutcome, RedeliveryPlan,
    RedeliveryPolicy, REDELIVERY_WINDOW_SECS,
};

use crate::delivery_stats::{self, DeliveryStats};
use crate::{discord, parse_window, table, Context};

/// Deliveries read per run at most (GitHub keeps a few days of them).
const MAX_DELIVERIES: usize = 5_000;

#[derive(Serialize)]
struct Report {
    org: String,
    hook_id: u64,
    window: String,
    stats: DeliveryStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redelivery: Option<Redeliveries>,
}

#[derive(Serialize)]
struct Alert {
    threshold: f64,
    below: bool,
    /// "sent", "not needed", or why it could not be sent.
    outcome: String,
}

#[derive(Serialize)]
struct Redeliveries {
    applied: bool,
    plan: RedeliveryPlan,
    /// Delivery ids GitHub accepted the redelivery of.
    redelivered: Vec<u64>,
    /// Asked, but GitHub said "later" (422 spammed, 429, 5xx, no answer): the next run asks again.
    deferred: Vec<String>,
    errors: Vec<String>,
    /// Guids GitHub accepted but had not listed a new attempt of when we stopped waiting.
    unlisted: Vec<String>,
}

/// Repository ids → names, from the registry (GitHub's delivery list names repositories by id).
pub fn repository_names(context: &Context) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    let Ok(file) = context.read_registry() else {
        return names;
    };
    for entry in file.list() {
        if let Ok(repo) = context.github.repository(&entry.repository) {
            names.insert(repo.id, repo.full_name);
        }
    }
    names
}

pub fn run(
    context: &Context,
    since: &str,
    alert_below: Option<f64>,
    redeliver_failed: bool,
    apply: bool,
) -> Result<u8, String> {
    let (org, hook_id) = context.hook()?;
    let window = parse_window(since)?;
    let now = now_unix();
    // Redelivery needs the whole 3-day window, whatever the statistics window.
    let fetch_from = if redeliver_failed {
        now - window.max(REDELIVERY_WINDOW_SECS)
    } else {
        now - window
    };
    context.progress(&format!(
        "reading the deliveries of {org}'s hook {hook_id} since {since} ago…"
    ));
    let deliveries = context
        .github
        .hook_deliveries(org, hook_id, fetch_from, MAX_DELIVERIES)
        .map_err(|e| e.to_string())?;
    let names = repository_names(context);
    let stats = delivery_stats::compute(&deliveries, now - window, |id| match id {
        Some(id) => names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
        None => "(no repository)".into(),
    });
    let mut failed = false;
    let alert = alert_below.map(|threshold| {
        let below = delivery_stats::should_alert(&stats, threshold);
        let outcome = if !below {
            "not needed".to_string()
        } else {
            failed = true;
            match discord::post(&delivery_stats::alert_message(
                &stats, threshold, since, org,
            )) {
                Ok(()) => "sent".into(),
                Err(e) => e,
            }
        };
        Alert {
            threshold,
            below,
            outcome,
        }
    });
    let redelivery = if redeliver_failed {
        // The CLI has no dispatch record of its own (the worker's KV has). What it can see: the central
        // publish workflow's runs, whose run-name names the delivery. A delivery with a run was
        // dispatched (its answer was lost, not the dispatch), so it is not redelivered.
        let runs = match context.github.workflow_runs(
            context.central.as_str(),
            crate::migration::PUBLISH_WORKFLOW,
            &format_rfc3339_utc(now - REDELIVERY_WINDOW_SECS),
            5_000,
        ) {
            Ok(runs) => runs,
            Err(e) => {
                context.progress(&format!(
                    "warning: the central publish runs could not be read ({e}); deciding from the delivery log alone"
                ));
                Vec::new()
            }
        };
        let dispatched = |guid: &str| runs.iter().any(|r| r.display_title.contains(guid));
        let plan = plan_redeliveries(&deliveries, now, &RedeliveryPolicy::default(), dispatched);
        let mut redelivered = Vec::new();
        let mut deferred = Vec::new();
        let mut errors = Vec::new();
        if apply {
            for item in &plan.redeliver {
                match context.github.redeliver(org, hook_id, item.delivery_id) {
                    Ok(()) => redelivered.push(item.delivery_id),
                    Err(e) => {
                        let line = format!("{} ({}): {e}", item.delivery_id, item.guid);
                        let status = match &e {
                            upm_github::Error::Status { status, .. } => *status,
                            upm_github::Error::RateLimited { .. } => 429,
                            upm_github::Error::Transport { .. } => 0,
                            _ => 400,
                        };
                        match redelivery_outcome(status) {
                            RedeliveryOutcome::Refused => errors.push(line),
                            _ => deferred.push(line),
                        }
                    }
                }
            }
        }
        if !errors.is_empty() {
            failed = true;
        }
        let asked: Vec<(u64, String)> = plan
            .redeliver
            .iter()
            .filter(|item| redelivered.contains(&item.delivery_id))
            .map(|item| (item.delivery_id, item.guid.clone()))
            .collect();
        let unlisted = wait_until_listed(context, org, hook_id, &asked);
        Some(Redeliveries {
            applied: apply,
            plan,
            redelivered,
            deferred,
            errors,
            unlisted,
        })
    } else {
        None
    };
    let report = Report {
        org: org.to_string(),
        hook_id,
        window: since.to_string(),
        stats,
        alert,
        redelivery,
    };
    context.print(&report, || render(&report, &names));
    Ok(if failed { 1 } else { 0 })
}

/// Pauses between the listings that wait for the new attempts: 1 + 2 + 4 + 8 + 15 = 30 s at most.
const LISTING_WAITS_MS: [u64; 5] = [1_000, 2_000, 4_000, 8_000, 15_000];

/// Waits (bounded) until GitHub lists a new attempt of every redelivery it accepted, so that running
/// this command again right away does not redeliver the same delivery twice. Returns the guids still
/// not listed. Each listing is one page of the newest deliveries.
fn wait_until_listed(
    context: &Context,
    org: &str,
    hook_id: u64,
    asked: &[(u64, String)],
) -> Vec<String> {
    let mut pending: Vec<String> = asked.iter().map(|(_, guid)| guid.clone()).collect();
    for pause in LISTING_WAITS_MS {
        if pending.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(pause));
        match context
            .github
            .hook_deliveries(org, hook_id, now_unix() - 3_600, 100)
        {
            Ok(listing) => {
                pending = upm_github::deliveries::attempts_not_listed(&listing, asked)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
            }
            Err(e) => {
                context.progress(&format!(
                    "warning: the deliveries could not be listed again ({e})"
                ));
                break;
            }
        }
    }
    if !pending.is_empty() {
        context.progress(&format!(
            "GitHub accepted {} redelivery(ies) it has not listed yet ({}): wait a minute before running this again, or they are asked for twice",
            pending.len(),
            pending.join(", ")
        ));
    }
    pending
}

fn render(report: &Report, names: &HashMap<u64, String>) -> String {
    let s = &report.stats;
    let mut out = format!(
        "deliveries of {}'s hook {} in the last {}\n",
        report.org, report.hook_id, report.window
    );
    let rate = s.success_rate.map_or("n/a".into(), |r| format!("{r:.1}%"));
    let ms = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v} ms"));
    out.push_str(&format!(
        "{} deliveries, {} redeliveries · first-attempt success {rate} · recovered {} · still failed {} · p50 {} · p95 {}\n",
        s.deliveries,
        s.redeliveries,
        s.recovered,
        s.still_failed,
        ms(s.p50_ms),
        ms(s.p95_ms)
    ));
    if !s.failures.is_empty() {
        out.push_str("\nfailures\n");
        let rows: Vec<Vec<String>> = s
            .failures
            .iter()
            .map(|f| {
                vec![
                    f.status_code.to_string(),
                    f.attempts.to_string(),
                    f.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(&["STATUS", "ATTEMPTS", "REASON"], &rows));
    }
    if !s.repositories.is_empty() {
        out.push_str("\nper repository\n");
        let rows: Vec<Vec<String>> = s
            .repositories
            .iter()
            .map(|r| {
                vec![
                    r.repository.clone(),
                    r.deliveries.to_string(),
                    r.failed_first_attempts.to_string(),
                    r.still_failed.to_string(),
                    format!("{} at {}", r.last_status_code, r.last_delivered_at),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &[
                "REPOSITORY",
                "DELIVERIES",
                "FAILED FIRST",
                "STILL FAILED",
                "LAST",
            ],
            &rows,
        ));
    }
    if let Some(alert) = &report.alert {
        out.push_str(&format!(
            "\nalert below {}%: {}\n",
            alert.threshold,
            if alert.below {
                format!("BELOW, {}", alert.outcome)
            } else {
                alert.outcome.clone()
            }
        ));
    }
    if let Some(r) = &report.redelivery {
        let verb = if r.applied {
            "redelivered"
        } else {
            "would redeliver (dry run; --apply to ask GitHub)"
        };
        out.push_str(&format!(
            "\nredelivery: {} {verb}\n",
            r.plan.redeliver.len()
        ));
        let mut rows: Vec<Vec<String>> = r
            .plan
            .redeliver
            .iter()
            .map(|d| {
                let prefix = format!("{} (", d.delivery_id);
                let done = if !r.applied {
                    "planned"
                } else if r.redelivered.contains(&d.delivery_id) {
                    "asked"
                } else if r.deferred.iter().any(|e| e.starts_with(&prefix)) {
                    "deferred"
                } else {
                    "error"
                };
                vec![
                    d.guid.clone(),
                    d.delivery_id.to_string(),
                    repo_name(names, d.repository_id),
                    format!("{} attempt(s), last {}", d.attempts, d.last_status_code),
                    done.into(),
                ]
            })
            .collect();
        rows.extend(r.plan.skipped.iter().map(|s| {
            vec![
                s.guid.clone(),
                s.delivery_id.to_string(),
                String::new(),
                "skipped".into(),
                s.reason.as_str().into(),
            ]
        }));
        if !rows.is_empty() {
            out.push_str(&table::render(
                &["GUID", "DELIVERY", "REPOSITORY", "HISTORY", "ACTION"],
                &rows,
            ));
        }
        for e in &r.deferred {
            out.push_str(&format!("deferred, the next run asks again: {e}\n"));
        }
        for e in &r.errors {
            out.push_str(&format!("error: {e}\n"));
        }
    }
    out
}

fn repo_name(names: &HashMap<u64, String>, id: Option<u64>) -> String {
    id.and_then(|id| names.get(&id).cloned())
        .unwrap_or_else(|| id.map_or(String::new(), |id| format!("#{id}")))
}

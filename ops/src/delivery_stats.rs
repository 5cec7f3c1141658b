//! delivery_stats: what the organization hook's delivery log says about the webhook's health.
//!
//! The success rate counts FIRST attempts (GitHub's own deliveries, not our redeliveries): it measures
//! the relay as GitHub sees it. A delivery that failed and was redelivered successfully still lowers
//! it, and is counted separately as "recovered".

use std::collections::BTreeMap;

use serde::Serialize;
use upm_github::deliveries::{group_by_guid, HookDelivery};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryStats {
    /// Deliveries (first attempts) in the window.
    pub deliveries: usize,
    /// Redelivery attempts in the window.
    pub redeliveries: usize,
    pub first_attempt_ok: usize,
    /// Failed at first, delivered by a later attempt.
    pub recovered: usize,
    /// No attempt succeeded.
    pub still_failed: usize,
    /// First-attempt success rate in percent; `None` without deliveries.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    /// Failed attempts grouped by status code and GitHub's reason text, most frequent first.
    pub failures: Vec<FailureGroup>,
    pub repositories: Vec<RepositoryRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    pub status_code: u16,
    pub reason: String,
    pub attempts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryRow {
    pub repository: String,
    pub deliveries: usize,
    pub failed_first_attempts: usize,
    pub still_failed: usize,
    /// The newest attempt's status code.
    pub last_status_code: u16,
    pub last_delivered_at: String,
}

/// Statistics over the attempts delivered at or after `since_unix`. `name_of(repository_id)` names a
/// repository (GitHub's delivery list carries only ids).
pub fn compute(
    deliveries: &[HookDelivery],
    since_unix: i64,
    name_of: impl Fn(Option<u64>) -> String,
) -> DeliveryStats {
    let window: Vec<HookDelivery> = deliveries
        .iter()
        .filter(|d| d.delivered_at_unix().is_some_and(|t| t >= since_unix))
        .cloned()
        .collect();
    let mut stats = DeliveryStats {
        deliveries: 0,
        redeliveries: window.iter().filter(|d| d.redelivery).count(),
        first_attempt_ok: 0,
        recovered: 0,
        still_failed: 0,
        success_rate: None,
        p50_ms: None,
        p95_ms: None,
        failures: Vec::new(),
        repositories: Vec::new(),
    };
    let mut rows: BTreeMap<String, RepositoryRow> = BTreeMap::new();
    for attempts in group_by_guid(&window).into_values() {
        let first = attempts[0];
        let latest = attempts[attempts.len() - 1];
        let any_ok = attempts.iter().any(|d| d.succeeded());
        // A guid whose original is older than the window shows only redeliveries: not a delivery of
        // this window.
        let counted = !first.redelivery;
        let name = name_of(first.repository_id.or(latest.repository_id));
        let row = rows.entry(name.clone()).or_insert_with(|| RepositoryRow {
            repository: name,
            deliveries: 0,
            failed_first_attempts: 0,
            still_failed: 0,
            last_status_code: latest.status_code,
            last_delivered_at: latest.delivered_at.clone(),
        });
        if latest.delivered_at_unix() >= parse(&row.last_delivered_at) {
            row.last_status_code = latest.status_code;
            row.last_delivered_at = latest.delivered_at.clone();
        }
        if !any_ok {
            row.still_failed += 1;
            stats.still_failed += 1;
        }
        if !counted {
            continue;
        }
        stats.deliveries += 1;
        row.deliveries += 1;
        if first.succeeded() {
            stats.first_attempt_ok += 1;
        } else {
            row.failed_first_attempts += 1;
            if any_ok {
                stats.recovered += 1;
            }
        }
    }
    if stats.deliveries > 0 {
        stats.success_rate = Some(100.0 * stats.first_attempt_ok as f64 / stats.deliveries as f64);
    }
    let mut durations: Vec<u64> = window
        .iter()
        .map(|d| (d.duration * 1000.0).round() as u64)
        .collect();
    durations.sort_unstable();
    stats.p50_ms = percentile(&durations, 50);
    stats.p95_ms = percentile(&durations, 95);
    let mut failures: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for d in window.iter().filter(|d| !d.succeeded()) {
        *failures
            .entry((d.status_code, d.status.clone()))
            .or_default() += 1;
    }
    stats.failures = failures
        .into_iter()
        .map(|((status_code, reason), attempts)| FailureGroup {
            status_code,
            reason,
            attempts,
        })
        .collect();
    stats.failures.sort_by(|a, b| {
        b.attempts
            .cmp(&a.attempts)
            .then(a.status_code.cmp(&b.status_code))
    });
    stats.repositories = rows.into_values().collect();
    stats
}

fn parse(text: &str) -> Option<i64> {
    upm_github::deliveries::parse_rfc3339_utc(text)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// Should `--alert-below THRESHOLD` alert? Only when there were deliveries and the rate is below.
pub fn should_alert(stats: &DeliveryStats, threshold: f64) -> bool {
    stats.success_rate.is_some_and(|rate| rate < threshold)
}

/// The Discord message for an alert: one embed, no secrets, the numbers an on-call person acts on.
pub fn alert_message(
    stats: &DeliveryStats,
    threshold: f64,
    window: &str,
    org: &str,
) -> serde_json::Value {
    let rate = stats.success_rate.unwrap_or(0.0);
    let mut fields = vec![
        serde_json::json!({"name": "Deliveries", "value": stats.deliveries.to_string(), "inline": true}),
        serde_json::json!({"name": "Failed first attempts", "value": (stats.deliveries - stats.first_attempt_ok).to_string(), "inline": true}),
        serde_json::json!({"name": "Still failed", "value": stats.still_failed.to_string(), "inline": true}),
    ];
    let reasons: Vec<String> = stats
        .failures
        .iter()
        .take(5)
        .map(|f| format!("{} × {} {}", f.attempts, f.status_code, f.reason))
        .collect();
    if !reasons.is_empty() {
        fields.push(serde_json::json!({"name": "Failures", "value": reasons.join("\n")}));
    }
    serde_json::json!({
        "embeds": [{
            "title": format!("Webhook deliveries below {threshold}% ({org}, last {window})"),
            "description": format!(
                "{rate:.1}% of push deliveries succeeded at the first attempt. Failed deliveries inside GitHub's 3-day window can be redelivered: `upm deliveries --redeliver-failed --apply`."
            ),
            "color": 15_158_332,
            "fields": fields,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use upm_github::deliveries::format_rfc3339_utc;

    const NOW: i64 = 1_795_766_400;

    fn d(
        id: u64,
        guid: &str,
        ago: i64,
        code: u16,
        repo: u64,
        redelivery: bool,
        secs: f64,
    ) -> HookDelivery {
        HookDelivery {
            id,
            guid: guid.into(),
            delivered_at: format_rfc3339_utc(NOW - ago),
            redelivery,
            duration: secs,
            status: upm_fake_github::state::Delivery::status_text(code),
            status_code: code,
            event: "push".into(),
            action: None,
            repository_id: Some(repo),
        }
    }

    fn name(id: Option<u64>) -> String {
        match id {
            Some(1) => "Studio/A".into(),
            Some(2) => "Studio/B".into(),
            other => format!("#{}", other.unwrap_or(0)),
        }
    }

    #[test]
    fn counts_first_attempts_recoveries_and_groups_failures() {
        let list = vec![
            d(1, "a", 500, 200, 1, false, 0.1),
            d(2, "b", 400, 502, 1, false, 0.2),
            d(3, "b", 300, 200, 1, true, 0.3),
            d(4, "c", 200, 502, 2, false, 0.4),
            d(5, "d", 100, 401, 2, false, 2.0),
            // Outside the window: ignored.
            d(6, "old", 99_999, 502, 1, false, 9.0),
        ];
        let stats = compute(&list, NOW - 3600, name);
        assert_eq!((stats.deliveries, stats.redeliveries), (4, 1));
        assert_eq!(
            (stats.first_attempt_ok, stats.recovered, stats.still_failed),
            (1, 1, 2)
        );
        assert_eq!(stats.success_rate, Some(25.0));
        assert_eq!((stats.p50_ms, stats.p95_ms), (Some(300), Some(2000)));
        assert_eq!(
            stats.failures,
            [
                FailureGroup {
                    status_code: 502,
                    reason: "Invalid HTTP Response: 502".into(),
                    attempts: 2
                },
                FailureGroup {
                    status_code: 401,
                    reason: "Invalid HTTP Response: 401".into(),
                    attempts: 1
                },
            ]
        );
        let a = &stats.repositories[0];
        assert_eq!(
            (
                a.repository.as_str(),
                a.deliveries,
                a.failed_first_attempts,
                a.still_failed
            ),
            ("Studio/A", 2, 1, 0)
        );
        assert_eq!(a.last_status_code, 200);
        let b = &stats.repositories[1];
        assert_eq!(
            (b.deliveries, b.still_failed, b.last_status_code),
            (2, 2, 401)
        );
    }

    #[test]
    fn alert_threshold() {
        let ok: Vec<_> = (0..100)
            .map(|i| {
                d(
                    i,
                    &format!("g{i}"),
                    10,
                    if i == 0 { 502 } else { 200 },
                    1,
                    false,
                    0.1,
                )
            })
            .collect();
        let stats = compute(&ok, 0, name);
        assert_eq!(stats.success_rate, Some(99.0));
        assert!(!should_alert(&stats, 99.0), "99 % is not below 99");
        assert!(should_alert(&stats, 99.5));
        let empty = compute(&[], 0, name);
        assert_eq!(empty.success_rate, None);
        assert!(
            !should_alert(&empty, 99.0),
            "no deliveries, no rate, no alert"
        );
        let message = alert_message(&stats, 99.5, "24h", "Studio");
        let text = message.to_string();
        assert!(text.contains("below 99.5%"), "{text}");
        assert!(text.contains("1 × 502"), "{text}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50), Some(10));
        assert_eq!(percentile(&v, 95), Some(19));
    }
}

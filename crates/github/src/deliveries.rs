//! deliveries: the organization webhook's delivery log, and the ONE rule for which failed deliveries to
//! ask GitHub to redeliver.
//!
//! This module has no native dependencies (serde only) so the wasm worker's scheduled sweeper and the
//! `upm deliveries --redeliver-failed` command use the very same rule. Build with
//! `default-features = false` to get it without the HTTP client.
//!
//! # The redelivery rule
//!
//! GitHub never redelivers a failed webhook delivery by itself; a person (or this rule) must
//! `POST /orgs/{org}/hooks/{hook_id}/deliveries/{delivery_id}/attempts`. A redelivery keeps the original
//! `guid` (the `X-GitHub-Delivery` header the worker dedups on) and gets a new `id`, with
//! `redelivery: true`. So the listing is grouped by `guid`, and for each guid:
//!
//! 1. **Push and pull request deliveries only**: the two events the worker acts on (a publish, a publish
//!    preview). Pings, and every other event the worker ignores, never publish. A pull request's lost
//!    preview matters as much as a push when branch protection requires its check.
//! 2. **Failed** = no attempt of that guid got a 2xx answer. One successful attempt (the original or a
//!    redelivery) settles it.
//! 3. **Inside the redelivery window.** GitHub only redelivers deliveries from the past 3 days; the
//!    first attempt must be younger than 3 days minus [`RedeliveryPolicy::window_margin_secs`], so a
//!    request sent at the edge is not refused (and so clock skew between us and GitHub does no harm).
//! 4. **Not a permanent failure.** If the latest attempt was answered with a status our worker only
//!    gives to a delivery that will fail again byte for byte (400 malformed, 401 bad signature, 404/405
//!    wrong URL or method, 413 too large, 415 content type), redelivering it cannot help.
//!    Anything else (5xx, 429, timeouts, connection failures: status code 0) is transient.
//! 5. **Bounded retries.** The attempt count is derived from the listing itself (every attempt of the
//!    guid is one line), so no extra state is needed: once a guid has had
//!    [`RedeliveryPolicy::max_redeliveries`] redeliveries, it is left to a person.
//! 6. **Not already dispatched.** The caller may know better than GitHub's log (the worker's dedup
//!    record says this delivery was dispatched, e.g. its answer was lost on the way back): such guids
//!    are skipped.
//! 7. **Bounded per run.** At most [`RedeliveryPolicy::max_per_run`] redeliveries per call, oldest
//!    first (they leave the window first).
//!
//! The delivery asked to be redelivered is the guid's latest attempt. The caller must pass the whole
//! listing of the window (every page): a guid seen only partly could be redelivered once too often.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One line of `GET /orgs/{org}/hooks/{hook_id}/deliveries`. Only the fields we read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HookDelivery {
    /// This attempt's id: what `…/deliveries/{id}` and `…/{id}/attempts` take.
    pub id: u64,
    /// The `X-GitHub-Delivery` value, shared by a delivery and all its redeliveries.
    pub guid: String,
    /// RFC 3339 UTC, e.g. `2026-11-27T10:00:00Z`.
    pub delivered_at: String,
    #[serde(default)]
    pub redelivery: bool,
    /// Seconds GitHub waited for our answer.
    #[serde(default)]
    pub duration: f64,
    /// GitHub's text for the outcome, e.g. `OK` or `Invalid HTTP Response: 502`.
    #[serde(default)]
    pub status: String,
    /// Our answer's status; 0 when there was no HTTP answer (timeout, connection refused).
    #[serde(default)]
    pub status_code: u16,
    pub event: String,
    #[serde(default)]
    pub action: Option<String>,
    /// GitHub lists deliveries by repository id, not name.
    #[serde(default)]
    pub repository_id: Option<u64>,
}

impl HookDelivery {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// `delivered_at` as Unix seconds, `None` when GitHub sent something we cannot read.
    pub fn delivered_at_unix(&self) -> Option<i64> {
        parse_rfc3339_utc(&self.delivered_at)
    }
}

/// GitHub keeps failed deliveries redeliverable for 3 days
/// (docs: "Redelivering webhooks": "You can only redeliver deliveries that were delivered in the past
/// 3 days").
pub const REDELIVERY_WINDOW_SECS: i64 = 3 * 24 * 60 * 60;

/// Statuses the worker answers only for a delivery that will fail the same way again (see DESIGN.md's
/// HTTP contract): redelivering the same bytes to the same URL cannot succeed.
pub const PERMANENT_STATUS_CODES: &[u16] = &[400, 401, 404, 405, 413, 415];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeliveryPolicy {
    /// Only deliveries whose first attempt is younger than the window minus this margin.
    pub window_margin_secs: i64,
    /// Redeliveries (attempts after the first) a guid may get before it is left to a person.
    pub max_redeliveries: u32,
    /// Redeliveries asked for by one run.
    pub max_per_run: usize,
}

impl Default for RedeliveryPolicy {
    fn default() -> Self {
        RedeliveryPolicy {
            // One hour: a sweep every few minutes still reaches a delivery many times before the edge.
            window_margin_secs: 60 * 60,
            max_redeliveries: 3,
            max_per_run: 20,
        }
    }
}

/// A redelivery to ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redelivery {
    /// The attempt to redeliver (the guid's latest).
    pub delivery_id: u64,
    pub guid: String,
    /// Attempts so far, the original included.
    pub attempts: u32,
    pub first_delivered_at: String,
    pub last_status_code: u16,
    pub repository_id: Option<u64>,
}

/// Why a failed push delivery is not redelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Its first attempt is (nearly) older than GitHub's 3-day window.
    OutsideWindow,
    /// The latest answer was a permanent failure (see [`PERMANENT_STATUS_CODES`]).
    Permanent,
    /// It already had [`RedeliveryPolicy::max_redeliveries`] redeliveries.
    AttemptsExhausted,
    /// The caller's own record says it was dispatched.
    AlreadyDispatched,
    /// Eligible, but this run's budget was used up; the next run takes it.
    OverBudget,
    /// `delivered_at` could not be read.
    UnreadableDate,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::OutsideWindow => "outside_window",
            Skip::Permanent => "permanent",
            Skip::AttemptsExhausted => "attempts_exhausted",
            Skip::AlreadyDispatched => "already_dispatched",
            Skip::OverBudget => "over_budget",
            Skip::UnreadableDate => "unreadable_date",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub guid: String,
    pub delivery_id: u64,
    pub reason: Skip,
}

/// What one run should do: `redeliver` (oldest first) and the failed push deliveries it leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedeliveryPlan {
    pub redeliver: Vec<Redelivery>,
    pub skipped: Vec<Skipped>,
}

/// The events whose failed deliveries are redelivered: the ones the worker acts on.
pub const ACTED_ON: [&str; 2] = ["push", "pull_request"];

/// The redelivery rule (see the module documentation). `now_unix` is the caller's clock in Unix
/// seconds; `already_dispatched(guid)` is the caller's own record (return `false` when there is none).
pub fn plan_redeliveries(
    deliveries: &[HookDelivery],
    now_unix: i64,
    policy: &RedeliveryPolicy,
    already_dispatched: impl Fn(&str) -> bool,
) -> RedeliveryPlan {
    let mut plan = RedeliveryPlan::default();
    let mut eligible = Vec::new();
    for attempts in group_by_guid(deliveries).into_values() {
        if !ACTED_ON.contains(&attempts[0].event.as_str()) || attempts.iter().any(|d| d.succeeded())
        {
            continue;
        }
        // Attempts are sorted oldest first: the first is the original, the last the latest answer.
        let first = attempts[0];
        let latest = attempts[attempts.len() - 1];
        let skip = |reason| Skipped {
            guid: latest.guid.clone(),
            delivery_id: latest.id,
            reason,
        };
        let Some(first_at) = first.delivered_at_unix() else {
            plan.skipped.push(skip(Skip::UnreadableDate));
            continue;
        };
        let count = attempts.len() as u32;
        let reason = if now_unix - first_at >= REDELIVERY_WINDOW_SECS - policy.window_margin_secs {
            Some(Skip::OutsideWindow)
        } else if PERMANENT_STATUS_CODES.contains(&latest.status_code) {
            Some(Skip::Permanent)
        } else if count.saturating_sub(1) >= policy.max_redeliveries {
            Some(Skip::AttemptsExhausted)
        } else if already_dispatched(&latest.guid) {
            Some(Skip::AlreadyDispatched)
        } else {
            None
        };
        match reason {
            Some(reason) => plan.skipped.push(skip(reason)),
            None => eligible.push((first_at, first, latest, count)),
        }
    }
    eligible.sort_by(|a, b| (a.0, &a.1.guid).cmp(&(b.0, &b.1.guid)));
    for (index, (_, first, latest, count)) in eligible.into_iter().enumerate() {
        if index >= policy.max_per_run {
            plan.skipped.push(Skipped {
                guid: latest.guid.clone(),
                delivery_id: latest.id,
                reason: Skip::OverBudget,
            });
            continue;
        }
        plan.redeliver.push(Redelivery {
            delivery_id: latest.id,
            guid: latest.guid.clone(),
            attempts: count,
            first_delivered_at: first.delivered_at.clone(),
            last_status_code: latest.status_code,
            repository_id: first.repository_id.or(latest.repository_id),
        });
    }
    plan
}

/// What GitHub's answer to `POST /orgs/{org}/hooks/{hook_id}/deliveries/{delivery_id}/attempts` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedeliveryOutcome {
    /// 202 (any 2xx): GitHub will redeliver (the new attempt is listed a little later).
    Accepted,
    /// Asking again cannot help (404: the delivery or hook is gone; 400, 401, 403: the request or the
    /// credentials are wrong).
    Refused,
    /// Ask again on a later run: 5xx, 429, no answer (0), and 422. GitHub documents 422 for this
    /// endpoint as "Validation failed, or the endpoint has been spammed" ("Redeliver a delivery for an
    /// organization webhook"): a burst of redeliveries meets it, and it passes. The deliveries this
    /// rule picks are inside the window and under the attempt bound, so a retry is bounded too.
    Retry,
}

pub fn redelivery_outcome(status: u16) -> RedeliveryOutcome {
    match status {
        200..=299 => RedeliveryOutcome::Accepted,
        0 | 422 | 429 | 500..=599 => RedeliveryOutcome::Retry,
        _ => RedeliveryOutcome::Refused,
    }
}

/// The redeliveries asked for (`delivery_id` of the attempt redelivered, its guid) that `listing` does
/// not show a newer attempt of yet. GitHub answers the request 202 before it makes and lists the
/// attempt, so a second run right after the first would see the old failure and ask again.
pub fn attempts_not_listed<'a>(
    listing: &[HookDelivery],
    asked: &'a [(u64, String)],
) -> Vec<&'a str> {
    asked
        .iter()
        .filter(|(id, guid)| !listing.iter().any(|d| &d.guid == guid && d.id > *id))
        .map(|(_, guid)| guid.as_str())
        .collect()
}

/// Every attempt of each guid, oldest first (by time, then id: ids grow with time at GitHub).
pub fn group_by_guid(deliveries: &[HookDelivery]) -> BTreeMap<&str, Vec<&HookDelivery>> {
    let mut groups: BTreeMap<&str, Vec<&HookDelivery>> = BTreeMap::new();
    for delivery in deliveries {
        groups.entry(&delivery.guid).or_default().push(delivery);
    }
    for attempts in groups.values_mut() {
        attempts.sort_by_key(|d| (d.delivered_at_unix().unwrap_or(i64::MIN), d.id));
    }
    groups
}

/// Reads the `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` timestamps GitHub sends, as Unix seconds. Written
/// here (not with a date crate) to keep this module dependency-free for the wasm worker.
pub fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Formats Unix seconds as GitHub does (`2026-11-27T10:00:00Z`).
pub fn format_rfc3339_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// Howard Hinnant's days-from-civil algorithm (public domain), proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_766_400; // 2026-11-27T08:00:00Z

    fn at(secs_ago: i64) -> String {
        format_rfc3339_utc(NOW - secs_ago)
    }

    #[test]
    fn an_asked_redelivery_is_pending_until_a_newer_attempt_of_its_guid_is_listed() {
        let asked = vec![(10, "a".to_string()), (20, "b".to_string())];
        let before = [attempt(10, "a", 60, 502), attempt(20, "b", 50, 500)];
        assert_eq!(attempts_not_listed(&before, &asked), ["a", "b"]);
        // An older attempt of the guid, or a newer one of another guid, does not count.
        let other = [attempt(5, "b", 90, 500), attempt(30, "c", 1, 200)];
        assert_eq!(attempts_not_listed(&other, &asked), ["a", "b"]);
        let after = [attempt(31, "a", 1, 200), attempt(20, "b", 50, 500)];
        assert_eq!(attempts_not_listed(&after, &asked), ["b"]);
    }

    fn attempt(id: u64, guid: &str, secs_ago: i64, code: u16) -> HookDelivery {
        HookDelivery {
            id,
            guid: guid.to_string(),
            delivered_at: at(secs_ago),
            redelivery: false,
            duration: 0.1,
            status: if code == 200 {
                "OK".into()
            } else {
                format!("Invalid HTTP Response: {code}")
            },
            status_code: code,
            event: "push".into(),
            action: None,
            repository_id: Some(7),
        }
    }

    fn redelivery(id: u64, guid: &str, secs_ago: i64, code: u16) -> HookDelivery {
        HookDelivery {
            redelivery: true,
            ..attempt(id, guid, secs_ago, code)
        }
    }

    fn plan(deliveries: &[HookDelivery]) -> RedeliveryPlan {
        plan_redeliveries(deliveries, NOW, &RedeliveryPolicy::default(), |_| false)
    }

    fn guids(plan: &RedeliveryPlan) -> Vec<&str> {
        plan.redeliver.iter().map(|r| r.guid.as_str()).collect()
    }

    fn reason(plan: &RedeliveryPlan, guid: &str) -> Option<Skip> {
        plan.skipped
            .iter()
            .find(|s| s.guid == guid)
            .map(|s| s.reason)
    }

    #[test]
    fn parses_github_timestamps() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("2026-11-27T08:00:00Z"), Some(NOW));
        assert_eq!(parse_rfc3339_utc("2026-11-27T08:00:00.123Z"), Some(NOW));
        assert_eq!(parse_rfc3339_utc("2026-11-27T10:00:00+02:00"), Some(NOW));
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T00:00:00Z"),
            Some(1_709_164_800)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-13-01T00:00:00Z",
            "2026-11-27T08:00:00",
            "x026-11-27T08:00:00Z",
            "2026-11-27T08:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad:?}");
        }
        for unix in [0, NOW, 951_782_400, 4_102_444_800] {
            assert_eq!(parse_rfc3339_utc(&format_rfc3339_utc(unix)), Some(unix));
        }
    }

    #[test]
    fn a_failed_push_inside_the_window_is_redelivered_by_its_latest_attempt() {
        let list = [attempt(1, "a", 600, 502), redelivery(2, "a", 300, 503)];
        let plan = plan(&list);
        assert_eq!(plan.redeliver.len(), 1);
        let r = &plan.redeliver[0];
        assert_eq!((r.delivery_id, r.attempts, r.last_status_code), (2, 2, 503));
        assert_eq!(r.first_delivered_at, at(600));
    }

    #[test]
    fn one_successful_attempt_settles_a_guid() {
        let list = [
            attempt(1, "a", 600, 502),
            redelivery(2, "a", 300, 200),
            attempt(3, "b", 60, 202),
        ];
        assert!(plan(&list).redeliver.is_empty());
        assert!(plan(&list).skipped.is_empty());
    }

    #[test]
    fn only_the_events_the_worker_acts_on() {
        let mut ping = attempt(1, "ping", 60, 500);
        ping.event = "ping".into();
        let mut issues = attempt(2, "issues", 60, 502);
        issues.event = "issues".into();
        let mut pull = attempt(4, "pull", 50, 502);
        pull.event = "pull_request".into();
        let p = plan(&[ping, issues, attempt(3, "push", 60, 502), pull]);
        assert_eq!(guids(&p), ["push", "pull"]);
    }

    #[test]
    fn the_window_is_three_days_minus_the_margin() {
        let margin = RedeliveryPolicy::default().window_margin_secs;
        let edge = REDELIVERY_WINDOW_SECS - margin;
        let p = plan(&[
            attempt(1, "inside", edge - 1, 502),
            attempt(2, "edge", edge, 502),
            attempt(3, "old", REDELIVERY_WINDOW_SECS + 10, 502),
        ]);
        assert_eq!(guids(&p), ["inside"]);
        assert_eq!(reason(&p, "edge"), Some(Skip::OutsideWindow));
        assert_eq!(reason(&p, "old"), Some(Skip::OutsideWindow));
    }

    #[test]
    fn the_window_counts_from_the_first_attempt() {
        let edge = REDELIVERY_WINDOW_SECS - RedeliveryPolicy::default().window_margin_secs;
        let p = plan(&[attempt(1, "a", edge + 5, 502), redelivery(2, "a", 10, 502)]);
        assert_eq!(reason(&p, "a"), Some(Skip::OutsideWindow));
    }

    #[test]
    fn permanent_failures_are_not_retried_but_transient_ones_are() {
        for code in PERMANENT_STATUS_CODES {
            let p = plan(&[attempt(1, "a", 60, *code)]);
            assert_eq!(reason(&p, "a"), Some(Skip::Permanent), "{code}");
        }
        for code in [0, 429, 500, 502, 503, 504] {
            let p = plan(&[attempt(1, "a", 60, code)]);
            assert_eq!(guids(&p), ["a"], "{code}");
        }
        // The latest answer decides: a 502 after a 401 (secret rotated since) is worth another try.
        let p = plan(&[attempt(1, "a", 120, 401), redelivery(2, "a", 60, 502)]);
        assert_eq!(guids(&p), ["a"]);
    }

    #[test]
    fn attempts_are_counted_from_the_listing() {
        let max = RedeliveryPolicy::default().max_redeliveries as u64;
        let mut list = vec![attempt(1, "a", 900, 502)];
        for i in 0..max {
            list.push(redelivery(2 + i, "a", 800 - i as i64, 502));
        }
        assert_eq!(reason(&plan(&list), "a"), Some(Skip::AttemptsExhausted));
        list.pop();
        assert_eq!(guids(&plan(&list)), ["a"]);
        // The listing's order does not matter.
        list.reverse();
        let p = plan(&list);
        assert_eq!(p.redeliver[0].delivery_id, 1 + max - 1);
        assert_eq!(p.redeliver[0].attempts, max as u32);
    }

    #[test]
    fn the_callers_dispatch_record_wins() {
        let list = [attempt(1, "a", 60, 502), attempt(2, "b", 60, 502)];
        let p = plan_redeliveries(&list, NOW, &RedeliveryPolicy::default(), |guid| guid == "a");
        assert_eq!(guids(&p), ["b"]);
        assert_eq!(reason(&p, "a"), Some(Skip::AlreadyDispatched));
    }

    #[test]
    fn bounded_per_run_oldest_first() {
        let list: Vec<_> = (0..5)
            .map(|i| attempt(i, &format!("g{i}"), 100 * (i as i64 + 1), 502))
            .collect();
        let policy = RedeliveryPolicy {
            max_per_run: 2,
            ..RedeliveryPolicy::default()
        };
        let p = plan_redeliveries(&list, NOW, &policy, |_| false);
        assert_eq!(guids(&p), ["g4", "g3"]);
        assert_eq!(
            p.skipped
                .iter()
                .filter(|s| s.reason == Skip::OverBudget)
                .count(),
            3
        );
    }

    #[test]
    fn a_spammed_redelivery_is_asked_again_later() {
        assert_eq!(redelivery_outcome(202), RedeliveryOutcome::Accepted);
        assert_eq!(redelivery_outcome(422), RedeliveryOutcome::Retry);
        for code in [0, 429, 500, 502, 503] {
            assert_eq!(redelivery_outcome(code), RedeliveryOutcome::Retry, "{code}");
        }
        for code in [400, 401, 403, 404] {
            assert_eq!(
                redelivery_outcome(code),
                RedeliveryOutcome::Refused,
                "{code}"
            );
        }
    }

    #[test]
    fn an_unreadable_date_is_skipped_not_a_panic() {
        let mut bad = attempt(1, "a", 60, 502);
        bad.delivered_at = "yesterday".into();
        assert_eq!(reason(&plan(&[bad]), "a"), Some(Skip::UnreadableDate));
    }

    #[test]
    fn reads_githubs_listing() {
        let json = r#"[{"id": 12345678, "guid": "0b989ba4-242f-11e5-81e1-c7b6966d2516",
            "delivered_at": "2019-06-03T00:57:16Z", "redelivery": false, "duration": 0.27,
            "status": "OK", "status_code": 200, "event": "push", "action": null,
            "installation_id": 123, "repository_id": 456, "throttled_at": null}]"#;
        let list: Vec<HookDelivery> = serde_json::from_str(json).unwrap();
        assert_eq!(list[0].id, 12345678);
        assert!(list[0].succeeded());
        assert_eq!(list[0].repository_id, Some(456));
        assert_eq!(list[0].delivered_at_unix(), Some(1_559_523_436));
    }
}

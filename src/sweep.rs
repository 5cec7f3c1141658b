//! sweep: the scheduled sweeper's decisions. GitHub never redelivers a failed webhook delivery by
//! itself, so on a cron trigger the worker lists the organization hook's recent deliveries and asks
//! GitHub to redeliver the failed `push` deliveries that were never dispatched.
//!
//! WHICH deliveries is decided by one rule shared with `upm deliveries --redeliver-failed`:
//! `upm_github::deliveries::plan_redeliveries` (push only, no 2xx attempt, inside the 3-day window, not
//! answered with a permanent 4xx, bounded redeliveries per delivery and per run). This module adds what
//! only the worker knows, all kept in KV:
//! - the dispatch record `delivery:<guid>` (dedup): a delivery dispatched whose answer never reached
//!   GitHub (a timeout) is not redelivered;
//! - a per-delivery record `sweep:v1:<guid>` counting the sweeper's own redeliveries (GitHub lists a
//!   redelivery a little after accepting it, and a run reads a bounded number of pages, so the listing
//!   alone can undercount), and remembering a delivery the worker refused for good: a 502 whose body says
//!   `"retryable": false` (GitHub itself refused the dispatch request, which would fail again).
//!
//! `scheduled` sequences these decisions through the `Platform`. The sweeper's settings
//! (`SweepConfig`: `GITHUB_ORG`, `HOOK_ID`, the caps) are read with the rest of the configuration, in
//! `config`; here are only the requests they address.

use serde::{Deserialize, Serialize};
use upm_github::deliveries::{HookDelivery, RedeliveryPolicy, REDELIVERY_WINDOW_SECS};

use crate::config::SweepSettings;

/// GitHub's largest page for the deliveries listing.
pub const PAGE_SIZE: u32 = 100;
/// The sweeper spaces its own redeliveries of one delivery: at least this long after the first, then
/// twice as long after each further one (9, 18, 36 … minutes). Just under the 10-minute cron, so the next
/// tick may redeliver again, while a few attempts still span an outage of an hour rather than three
/// consecutive ticks.
pub const REDELIVERY_SPACING_MS: u64 = 9 * 60 * 1000;
/// The per-delivery record outlives GitHub's 3-day redelivery window, like the dispatch record.
pub const RECORD_TTL_SECONDS: u64 = crate::dedup::TTL_SECONDS;

// The settings type is the configuration's (config.rs); which GitHub paths the sweeper builds from it
// is the sweeper's business, so these methods stay here.
impl SweepSettings {
    fn hook_path(&self) -> String {
        format!("/orgs/{}/hooks/{}/deliveries", self.org, self.hook_id)
    }

    /// The first page: `GET /orgs/{org}/hooks/{hook_id}/deliveries?per_page=100`, newest first.
    pub fn first_page_path(&self) -> String {
        format!("{}?per_page={PAGE_SIZE}", self.hook_path())
    }

    /// `GET …/deliveries/{id}`: one attempt with our answer's body (for its `retryable` flag).
    pub fn delivery_path(&self, delivery_id: u64) -> String {
        format!("{}/{delivery_id}", self.hook_path())
    }

    /// `POST …/deliveries/{id}/attempts`: GitHub answers 202 Accepted and redelivers shortly after.
    pub fn redeliver_path(&self, delivery_id: u64) -> String {
        format!("{}/{delivery_id}/attempts", self.hook_path())
    }
}

/// The next page from a `Link` header (`<url>; rel="next", <url>; rel="last"`), as a path under
/// `github_api`. The listing is cursor-paginated, so the URL is taken as GitHub gives it; a URL on
/// another host is refused, because our credential goes with the request.
pub fn next_page_path(link: Option<&str>, github_api: &str) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let path = url.strip_prefix(github_api)?;
        (is_next && path.starts_with('/')).then(|| path.to_string())
    })
}

/// Reads one page of the listing.
pub fn parse_page(body: &str) -> Result<Vec<HookDelivery>, String> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        format!(
            "the deliveries listing is unreadable at {}: {}",
            e.path(),
            e.inner()
        )
    })
}

/// Whether the next page can still hold deliveries inside the redelivery window. The listing is newest
/// first, so once a page reaches past the window the rest is older still.
pub fn page_reaches_into_window(page: &[HookDelivery], now_unix: i64) -> bool {
    !page.is_empty()
        && page
            .iter()
            .filter_map(HookDelivery::delivered_at_unix)
            .all(|at| now_unix - at < REDELIVERY_WINDOW_SECS)
}

/// What the sweeper remembers about one delivery (`sweep:v1:<guid>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// Redeliveries this sweeper asked for.
    pub redeliveries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_redelivered_at_ms: Option<u64>,
    /// Set once the delivery is known to fail for good; it is never redelivered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent: Option<String>,
    /// Whether the 502 body was read already (one `GET …/deliveries/{id}` per delivery, not per run).
    #[serde(default)]
    pub answer_checked: bool,
}

impl SweepRecord {
    pub fn key(guid: &str) -> String {
        format!("sweep:v1:{guid}")
    }

    /// An unreadable record counts as none: at worst one more redelivery, which the dedup record
    /// keeps from publishing twice.
    pub fn from_kv(value: &str) -> SweepRecord {
        serde_json::from_str(value).unwrap_or_default()
    }

    pub fn to_kv(&self) -> String {
        serde_json::to_string(self).expect("a sweep record serialises")
    }
}

/// What the worker's own state says about a delivery the shared rule would redeliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The dedup record exists: it was dispatched (GitHub only missed our answer).
    Dispatched,
    /// Known to fail for good.
    Permanent,
    /// The sweeper already asked `max_redeliveries` times.
    Capped,
    /// The sweeper redelivered it recently; not again before `due_ms` (`REDELIVERY_SPACING_MS`).
    Waiting {
        due_ms: u64,
    },
    /// Read our 502 answer first: it says whether another attempt can help.
    CheckAnswer,
    Redeliver,
}

pub fn verdict(
    dispatched: bool,
    record: &SweepRecord,
    last_status_code: u16,
    policy: &RedeliveryPolicy,
    now_ms: u64,
) -> Verdict {
    let due_ms = record.last_redelivered_at_ms.map(|last| {
        last.saturating_add(REDELIVERY_SPACING_MS << record.redeliveries.saturating_sub(1).min(8))
    });
    if dispatched {
        Verdict::Dispatched
    } else if record.permanent.is_some() {
        Verdict::Permanent
    } else if record.redeliveries >= policy.max_redeliveries {
        Verdict::Capped
    } else if let Some(due_ms) = due_ms.filter(|due| now_ms < *due) {
        Verdict::Waiting { due_ms }
    } else if last_status_code == 502 && !record.answer_checked {
        Verdict::CheckAnswer
    } else {
        Verdict::Redeliver
    }
}

/// The `retryable` flag of the worker's answer, from `GET …/deliveries/{id}` (GitHub keeps our response
/// body as the string `response.payload`). `None` when it is not there (an older worker, or a 502 from
/// Cloudflare rather than from us): then the delivery counts as retryable, within the cap.
pub fn answer_retryable(detail_body: &str) -> Option<bool> {
    #[derive(Deserialize)]
    struct Detail {
        response: Option<Answer>,
    }
    #[derive(Deserialize)]
    struct Answer {
        payload: Option<String>,
    }
    #[derive(Deserialize)]
    struct Body {
        retryable: Option<bool>,
    }
    let detail: Detail = serde_json::from_str(detail_body).ok()?;
    let payload = detail.response?.payload?;
    serde_json::from_str::<Body>(&payload).ok()?.retryable
}

/// What GitHub's answer to `POST …/attempts` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeliveryAnswer {
    /// 202 (or any 2xx): GitHub will redeliver.
    Accepted,
    /// A 4xx asking again cannot help (404: the delivery is gone).
    Refused(String),
    /// 5xx, 429, 422 ("the endpoint has been spammed") or a network error: the next run asks again.
    Failed(String),
}

/// The rule shared with `upm deliveries` (`upm_github::deliveries::redelivery_outcome`).
pub fn redelivery_answer(status: u16, message: &str) -> RedeliveryAnswer {
    use upm_github::deliveries::{redelivery_outcome, RedeliveryOutcome};
    let why = format!("GitHub answered {status}: {message}");
    match redelivery_outcome(status) {
        RedeliveryOutcome::Accepted => RedeliveryAnswer::Accepted,
        RedeliveryOutcome::Refused => RedeliveryAnswer::Refused(why),
        RedeliveryOutcome::Retry => RedeliveryAnswer::Failed(why),
    }
}

/// One run, for its single JSON log line (`msg: "sweep"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// `done`, `off`, `invalid` or `failed` (the listing could not be read).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub pages: u32,
    /// The listing reached past the page cap before leaving the window (the rest waits for a run).
    pub truncated: bool,
    pub listed: usize,
    /// Failed push and pull request deliveries (by guid) in the listing.
    pub failed: usize,
    pub redelivered: usize,
    pub already_dispatched: usize,
    pub permanent: usize,
    pub attempts_exhausted: usize,
    /// Redelivered by the sweeper recently (REDELIVERY_SPACING_MS); a later run takes them.
    pub waiting: usize,
    pub outside_window: usize,
    pub over_budget: usize,
    pub errors: usize,
    /// GitHub requests this run made (the cost of the net), tokens not included.
    pub github_calls: u32,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl SweepReport {
    pub fn log_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            level: &'static str,
            msg: &'static str,
            #[serde(flatten)]
            report: &'a SweepReport,
        }
        let level = match self.outcome {
            "failed" | "invalid" => "error",
            _ if self.errors > 0 || self.truncated => "warn",
            _ => "info",
        };
        serde_json::to_string(&Line {
            level,
            msg: "sweep",
            report: self,
        })
        .expect("the sweep log line serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SweepConfig;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> SweepConfig {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        SweepConfig::from_lookup(&|name| map.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn off_unless_org_and_hook_are_both_set() {
        assert_eq!(settings(&[]), SweepConfig::Off);
        let SweepConfig::On(on) = settings(&[("GITHUB_ORG", "Studio"), ("HOOK_ID", "42")]) else {
            panic!("both set")
        };
        assert_eq!(
            (on.org.as_str(), on.hook_id, on.max_pages),
            ("Studio", 42, 5)
        );
        assert_eq!(on.policy, RedeliveryPolicy::default());
        assert_eq!(
            on.first_page_path(),
            "/orgs/Studio/hooks/42/deliveries?per_page=100"
        );
        assert_eq!(
            on.redeliver_path(7),
            "/orgs/Studio/hooks/42/deliveries/7/attempts"
        );
        assert_eq!(on.delivery_path(7), "/orgs/Studio/hooks/42/deliveries/7");
        for (pairs, expected) in [
            (vec![("GITHUB_ORG", "Studio")], "HOOK_ID"),
            (vec![("HOOK_ID", "1")], "GITHUB_ORG"),
            (
                vec![("GITHUB_ORG", "a/b"), ("HOOK_ID", "1")],
                "GITHUB_ORG must",
            ),
            (vec![("GITHUB_ORG", "a"), ("HOOK_ID", "x1")], "HOOK_ID must"),
            (
                vec![
                    ("GITHUB_ORG", "a"),
                    ("HOOK_ID", "1"),
                    ("SWEEP_MAX_PAGES", "0"),
                ],
                "SWEEP_MAX_PAGES must",
            ),
        ] {
            match settings(&pairs) {
                SweepConfig::Invalid(why) => assert!(why.contains(expected), "{why}"),
                other => panic!("{pairs:?} gave {other:?}"),
            }
        }
        let SweepConfig::On(tuned) = settings(&[
            ("GITHUB_ORG", "a"),
            ("HOOK_ID", "1"),
            ("SWEEP_MAX_PAGES", "2"),
            ("SWEEP_MAX_PER_RUN", "7"),
            ("SWEEP_MAX_REDELIVERIES", "5"),
        ]) else {
            panic!()
        };
        assert_eq!(
            (
                tuned.max_pages,
                tuned.policy.max_per_run,
                tuned.policy.max_redeliveries
            ),
            (2, 7, 5)
        );
    }

    #[test]
    fn the_next_page_comes_from_the_link_header_on_our_api_host_only() {
        let api = "https://api.github.com";
        let link = r#"<https://api.github.com/orgs/S/hooks/1/deliveries?per_page=100&cursor=v1_2>; rel="next", <https://api.github.com/orgs/S/hooks/1/deliveries?per_page=100>; rel="first""#;
        assert_eq!(
            next_page_path(Some(link), api).as_deref(),
            Some("/orgs/S/hooks/1/deliveries?per_page=100&cursor=v1_2")
        );
        let last_only = r#"<https://api.github.com/x?cursor=1>; rel="prev""#;
        assert_eq!(next_page_path(Some(last_only), api), None);
        assert_eq!(next_page_path(None, api), None);
        let elsewhere = r#"<https://evil.example/x?cursor=1>; rel="next""#;
        assert_eq!(next_page_path(Some(elsewhere), api), None);
        let lookalike = r#"<https://api.github.com.evil.example/x>; rel="next""#;
        assert_eq!(next_page_path(Some(lookalike), api), None);
        assert_eq!(next_page_path(Some("garbage"), api), None);
    }

    fn delivery(secs_ago: i64, now: i64) -> HookDelivery {
        HookDelivery {
            id: 1,
            guid: "g".into(),
            delivered_at: upm_github::deliveries::format_rfc3339_utc(now - secs_ago),
            redelivery: false,
            duration: 0.1,
            status: "OK".into(),
            status_code: 200,
            event: "push".into(),
            action: None,
            repository_id: None,
        }
    }

    #[test]
    fn paging_stops_once_a_page_reaches_past_the_window() {
        let now = 1_800_000_000;
        let inside = [delivery(60, now), delivery(86_400, now)];
        assert!(page_reaches_into_window(&inside, now));
        let crossing = [delivery(60, now), delivery(REDELIVERY_WINDOW_SECS + 1, now)];
        assert!(!page_reaches_into_window(&crossing, now));
        assert!(!page_reaches_into_window(&[], now));
    }

    #[test]
    fn a_page_that_is_not_a_listing_names_the_field() {
        let err = parse_page(r#"[{"id": "x"}]"#).unwrap_err();
        assert!(err.contains("[0].id"), "{err}");
        assert_eq!(parse_page("[]").unwrap(), vec![]);
    }

    #[test]
    fn the_worker_s_own_state_decides_last() {
        let policy = RedeliveryPolicy::default();
        let fresh = SweepRecord::default();
        assert_eq!(verdict(true, &fresh, 502, &policy, 0), Verdict::Dispatched);
        assert_eq!(
            verdict(false, &fresh, 502, &policy, 0),
            Verdict::CheckAnswer
        );
        assert_eq!(verdict(false, &fresh, 500, &policy, 0), Verdict::Redeliver);
        assert_eq!(verdict(false, &fresh, 0, &policy, 0), Verdict::Redeliver);
        let checked = SweepRecord {
            answer_checked: true,
            ..SweepRecord::default()
        };
        assert_eq!(
            verdict(false, &checked, 502, &policy, 0),
            Verdict::Redeliver
        );
        let capped = SweepRecord {
            redeliveries: policy.max_redeliveries,
            ..checked.clone()
        };
        assert_eq!(verdict(false, &capped, 502, &policy, 0), Verdict::Capped);
        let permanent = SweepRecord {
            permanent: Some("GitHub refused the dispatch".into()),
            ..SweepRecord::default()
        };
        assert_eq!(
            verdict(false, &permanent, 502, &policy, 0),
            Verdict::Permanent
        );
    }

    #[test]
    fn the_sweeper_spaces_its_redeliveries_doubling() {
        let policy = RedeliveryPolicy {
            max_redeliveries: 10,
            ..RedeliveryPolicy::default()
        };
        let after = |redeliveries: u32| SweepRecord {
            redeliveries,
            last_redelivered_at_ms: Some(1_000_000),
            answer_checked: true,
            ..SweepRecord::default()
        };
        let minute = 60_000;
        for (redeliveries, gap) in [(1, 9 * minute), (2, 18 * minute), (3, 36 * minute)] {
            let record = after(redeliveries);
            assert_eq!(
                verdict(false, &record, 500, &policy, 1_000_000 + gap - 1),
                Verdict::Waiting {
                    due_ms: 1_000_000 + gap
                }
            );
            assert_eq!(
                verdict(false, &record, 500, &policy, 1_000_000 + gap),
                Verdict::Redeliver
            );
        }
    }

    #[test]
    fn records_round_trip_and_garbage_reads_as_none() {
        let record = SweepRecord {
            redeliveries: 2,
            last_redelivered_at_ms: Some(5),
            permanent: None,
            answer_checked: true,
        };
        assert_eq!(SweepRecord::from_kv(&record.to_kv()), record);
        assert_eq!(SweepRecord::from_kv("{oops"), SweepRecord::default());
        assert_eq!(SweepRecord::key("abc-1"), "sweep:v1:abc-1");
    }

    #[test]
    fn retryable_is_read_from_our_answer_as_github_kept_it() {
        let detail = |payload: &str| {
            serde_json::json!({"id": 1, "guid": "g", "status_code": 502,
                "request": {"headers": {}, "payload": {"ref": "x"}},
                "response": {"headers": {}, "payload": payload}})
            .to_string()
        };
        let body = r#"{"outcome":"failed","reason":"x","retryable":false}"#;
        assert_eq!(answer_retryable(&detail(body)), Some(false));
        let body = r#"{"outcome":"failed","reason":"x","retryable":true}"#;
        assert_eq!(answer_retryable(&detail(body)), Some(true));
        assert_eq!(
            answer_retryable(&detail("<html>502 Bad Gateway</html>")),
            None
        );
        assert_eq!(answer_retryable(r#"{"response": null}"#), None);
        assert_eq!(answer_retryable("not json"), None);
    }

    #[test]
    fn github_refusing_a_redelivery_is_final_but_its_outages_are_not() {
        assert_eq!(redelivery_answer(202, ""), RedeliveryAnswer::Accepted);
        // 422 is also "the endpoint has been spammed": it passes, so the next run asks again.
        assert!(
            matches!(redelivery_answer(422, "spammed"), RedeliveryAnswer::Failed(m) if m.contains("422: spammed"))
        );
        assert!(matches!(
            redelivery_answer(404, "x"),
            RedeliveryAnswer::Refused(_)
        ));
        assert!(matches!(
            redelivery_answer(429, "x"),
            RedeliveryAnswer::Failed(_)
        ));
        assert!(matches!(
            redelivery_answer(503, "x"),
            RedeliveryAnswer::Failed(_)
        ));
    }

    #[test]
    fn the_log_line_is_one_json_object_with_counts() {
        let report = SweepReport {
            outcome: "done",
            pages: 1,
            listed: 3,
            failed: 1,
            redelivered: 1,
            ..SweepReport::default()
        };
        let line = report.log_line();
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["msg"], "sweep");
        assert_eq!(value["level"], "info");
        assert_eq!(value["redelivered"], 1);
        assert!(value.get("reason").is_none());
        let failed = SweepReport {
            outcome: "failed",
            ..SweepReport::default()
        };
        assert!(failed.log_line().contains(r#""level":"error""#));
    }
}

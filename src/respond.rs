//! respond + log: every delivery ends in one `Reply`, which becomes one JSON response body and one JSON
//! log line (what `wrangler tail` shows). Neither ever carries a secret or a stack trace.

use serde::Serialize;

/// What became of a delivery; the `outcome` field of the HTTP contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Dispatched,
    Ignored,
    Duplicate,
    Rejected,
    Failed,
}

/// The end of a delivery's path through the stages, with the HTTP status that tells GitHub whether to
/// record it as delivered (2xx) or failed (anything else, which can then be redelivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub status: u16,
    pub outcome: Outcome,
    pub reason: String,
    /// Extra headers (`Allow` on a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl Stop {
    fn new(status: u16, outcome: Outcome, reason: impl Into<String>) -> Stop {
        Stop {
            status,
            outcome,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    pub fn ignored(reason: impl Into<String>) -> Stop {
        Stop::new(200, Outcome::Ignored, reason)
    }

    pub fn bad_request(reason: impl Into<String>) -> Stop {
        Stop::new(400, Outcome::Rejected, reason)
    }

    pub fn unauthorized(reason: impl Into<String>) -> Stop {
        Stop::new(401, Outcome::Rejected, reason)
    }

    pub fn not_found() -> Stop {
        Stop::new(
            404,
            Outcome::Rejected,
            "not found: deliveries go to POST / (or /webhook)",
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> Stop {
        let mut stop = Stop::new(
            405,
            Outcome::Rejected,
            format!("method not allowed (allowed: {allow})"),
        );
        stop.headers.push(("Allow", allow.to_string()));
        stop
    }

    pub fn too_large(reason: impl Into<String>) -> Stop {
        Stop::new(413, Outcome::Rejected, reason)
    }

    pub fn unsupported_media_type(reason: impl Into<String>) -> Stop {
        Stop::new(415, Outcome::Rejected, reason)
    }

    /// GitHub (or the registry behind it) failed us after retries: a 502 makes GitHub record a failed
    /// delivery that can be redelivered, so nothing is silently dropped.
    pub fn upstream_failed(reason: impl Into<String>) -> Stop {
        Stop::new(502, Outcome::Failed, reason)
    }

    /// The same delivery or push is being dispatched by a request still in flight in this isolate. Not
    /// a 2xx: if that request fails, this copy must stay redeliverable.
    pub fn in_flight(reason: impl Into<String>) -> Stop {
        Stop::new(409, Outcome::Duplicate, reason)
    }

    /// The worker itself is misconfigured (e.g. no DISPATCH_REPO): a 500 so deliveries fail visibly.
    pub fn misconfigured(reason: impl Into<String>) -> Stop {
        Stop::new(500, Outcome::Failed, reason)
    }
}

/// Facts about a delivery gathered on its way through the stages, for the response and the log line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliveryFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// The pull request's number, on a `pull_request` delivery (`commit_sha` is then its head, `branch`
    /// its base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// How many requests the dispatch took (1 when GitHub accepted the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// With DRY_RUN: the request that would have been sent, `{"url", "body"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_dispatch: Option<serde_json::Value>,
    /// Set when a failure is known not to be worth a redelivery (see `retryable_after`); every 502
    /// body and log line carries the flag, `true` unless this says otherwise.
    #[serde(skip)]
    pub retryable: Option<bool>,
}

/// Whether a redelivery can help after GitHub answered a dispatch with `status` (`None`: no answer).
/// 400 and 422 say the request itself is invalid, and a redelivery of the same delivery builds the same
/// request; everything else (outages, rate limits, and credentials or permissions an operator can fix)
/// is worth another attempt. The sweeper reads the flag from the 502 body GitHub keeps.
pub fn retryable_after(status: Option<u16>) -> bool {
    !matches!(status, Some(400 | 422))
}

/// The `retryable` field: on every 502, never elsewhere.
fn retryable(stop: &Stop, facts: &DeliveryFacts) -> Option<bool> {
    (stop.status == 502).then(|| facts.retryable.unwrap_or(true))
}

/// The response body of the HTTP contract.
#[derive(Serialize)]
struct Body<'a> {
    outcome: Outcome,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retryable: Option<bool>,
    #[serde(flatten)]
    facts: &'a DeliveryFacts,
}

/// The one log line per delivery. `notes` carries what the operator should know but the sender need not
/// (a stale registry copy served because GitHub failed, a retried dispatch).
#[derive(Serialize)]
struct LogLine<'a> {
    level: &'static str,
    msg: &'static str,
    status: u16,
    outcome: Outcome,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retryable: Option<bool>,
    #[serde(flatten)]
    facts: &'a DeliveryFacts,
    elapsed_ms: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

pub fn response_body(stop: &Stop, facts: &DeliveryFacts) -> String {
    serde_json::to_string(&Body {
        outcome: stop.outcome,
        reason: &stop.reason,
        retryable: retryable(stop, facts),
        facts,
    })
    .expect("the response body serialises")
}

/// `alarm` raises the level to `error` whatever the status: something an operator must fix even
/// though this delivery went through (a registry copy older than REGISTRY_MAX_STALE_SECONDS, a registry
/// GitHub refuses to serve us).
pub fn log_line(
    stop: &Stop,
    facts: &DeliveryFacts,
    elapsed_ms: u64,
    notes: &[String],
    alarm: bool,
) -> String {
    let level = match stop.status {
        _ if alarm => "error",
        200..=299 if notes.is_empty() => "info",
        200..=499 => "warn",
        _ => "error",
    };
    serde_json::to_string(&LogLine {
        level,
        msg: "delivery",
        status: stop.status,
        outcome: stop.outcome,
        reason: &stop.reason,
        retryable: retryable(stop, facts),
        facts,
        elapsed_ms,
        notes,
    })
    .expect("the log line serialises")
}

/// A KV write to make after the response is sent (`ctx.waitUntil` in the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvWrite {
    pub key: String,
    pub value: String,
    pub ttl_seconds: Option<u64>,
}

/// The response, and the log line for `wrangler tail` (none for health checks, which monitors poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub log: Option<String>,
    /// Writes that need not delay the response.
    pub after_response: Vec<KvWrite>,
}

/// What the operator should know about a delivery beyond its outcome; `alarm` makes the line `error`.
#[derive(Debug, Default)]
pub struct Notes {
    pub lines: Vec<String>,
    pub alarm: bool,
}

impl Notes {
    pub fn push(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

/// The reply to a request that ended in `stop`: its body, its log line, and no writes yet (the
/// delivery adds those it deferred).
pub fn finish(stop: Stop, facts: DeliveryFacts, elapsed_ms: u64, notes: &Notes) -> Reply {
    Reply {
        status: stop.status,
        body: response_body(&stop, &facts),
        log: Some(log_line(
            &stop,
            &facts,
            elapsed_ms,
            &notes.lines,
            notes.alarm,
        )),
        headers: stop.headers,
        after_response: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn body_follows_the_contract() {
        let facts = DeliveryFacts {
            delivery: Some("d-1".into()),
            repository: Some("Studio/Core".into()),
            ..DeliveryFacts::default()
        };
        let body: Value =
            serde_json::from_str(&response_body(&Stop::ignored("tag push"), &facts)).unwrap();
        assert_eq!(
            body,
            json!({"outcome": "ignored", "reason": "tag push", "delivery": "d-1", "repository": "Studio/Core"})
        );
    }

    #[test]
    fn statuses_match_the_contract() {
        let cases = [
            (Stop::ignored("x"), 200, Outcome::Ignored),
            (Stop::bad_request("x"), 400, Outcome::Rejected),
            (Stop::unauthorized("x"), 401, Outcome::Rejected),
            (Stop::not_found(), 404, Outcome::Rejected),
            (Stop::method_not_allowed("POST"), 405, Outcome::Rejected),
            (Stop::too_large("x"), 413, Outcome::Rejected),
            (Stop::unsupported_media_type("x"), 415, Outcome::Rejected),
            (Stop::misconfigured("x"), 500, Outcome::Failed),
            (Stop::upstream_failed("x"), 502, Outcome::Failed),
        ];
        for (stop, status, outcome) in cases {
            assert_eq!((stop.status, stop.outcome), (status, outcome), "{stop:?}");
        }
        assert_eq!(
            Stop::method_not_allowed("GET, HEAD").headers,
            vec![("Allow", "GET, HEAD".to_string())]
        );
    }

    #[test]
    fn log_line_is_one_json_object_with_level_and_timing() {
        let facts = DeliveryFacts {
            delivery: Some("d-2".into()),
            event: Some("push".into()),
            ..DeliveryFacts::default()
        };
        let line = log_line(
            &Stop::upstream_failed("GitHub answered 500"),
            &facts,
            42,
            &[],
            false,
        );
        assert!(!line.contains('\n'));
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "error");
        assert_eq!(value["status"], 502);
        assert_eq!(value["outcome"], "failed");
        assert_eq!(value["event"], "push");
        assert_eq!(value["elapsed_ms"], 42);
        assert_eq!(value["retryable"], true, "a 502 says whether to redeliver");
        assert!(value.get("notes").is_none());

        let noted = log_line(
            &Stop::ignored("x"),
            &facts,
            1,
            &["registry: stale copy".into()],
            false,
        );
        let value: Value = serde_json::from_str(&noted).unwrap();
        assert_eq!(value["level"], "warn");
        assert_eq!(value["notes"], json!(["registry: stale copy"]));
        let alarmed = log_line(
            &Stop::ignored("x"),
            &facts,
            1,
            &["registry: 2 days old".into()],
            true,
        );
        let value: Value = serde_json::from_str(&alarmed).unwrap();
        assert_eq!(value["level"], "error");
    }

    #[test]
    fn only_a_502_carries_retryable_and_only_400_or_422_make_it_false() {
        let facts = DeliveryFacts::default();
        let field = |stop: &Stop, facts: &DeliveryFacts| {
            let body: Value = serde_json::from_str(&response_body(stop, facts)).unwrap();
            let log: Value = serde_json::from_str(&log_line(stop, facts, 0, &[], false)).unwrap();
            assert_eq!(body.get("retryable"), log.get("retryable"));
            body.get("retryable").cloned()
        };
        assert_eq!(
            field(&Stop::upstream_failed("x"), &facts),
            Some(json!(true))
        );
        assert_eq!(field(&Stop::ignored("x"), &facts), None);
        assert_eq!(field(&Stop::misconfigured("x"), &facts), None);
        let refused = DeliveryFacts {
            retryable: Some(retryable_after(Some(422))),
            ..DeliveryFacts::default()
        };
        assert_eq!(
            field(&Stop::upstream_failed("x"), &refused),
            Some(json!(false))
        );
        for status in [
            None,
            Some(401),
            Some(403),
            Some(404),
            Some(429),
            Some(500),
            Some(503),
        ] {
            assert!(retryable_after(status), "{status:?}");
        }
        assert!(!retryable_after(Some(400)));
    }
}

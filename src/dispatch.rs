//! dispatch: the `repository_dispatch` that starts the publisher, and when to try it again.

use serde::Serialize;

use crate::classify::PushEvent;
use crate::filter::{ChangedPackages, Publish};
use crate::platform::{HttpResponse, SendError};
use crate::preview::Preview;

pub const EVENT_TYPE: &str = "package_publish";
/// The event type of a pull request's publish preview (`.github/workflows/preview.yml`).
pub const PREVIEW_EVENT_TYPE: &str = "package_preview";

/// GitHub limits `client_payload` to 10 top-level properties and the whole body to 64 KB (REST docs for
/// "Create a repository dispatch event"). The commit message is the only field that can be long, so it is
/// cut to this many bytes; the package list falls back to "scan everything" past its own bound.
pub const COMMIT_MESSAGE_LIMIT: usize = 4096;
pub const PACKAGE_PATH_LIMIT: usize = 32 * 1024;
/// The whole request body stays under GitHub's 64 KB with room to spare.
pub const BODY_LIMIT: usize = 60 * 1024;
const SHORT_MESSAGE_LIMIT: usize = 512;
/// A display name; GitHub's own limit is far below this, but the payload is not GitHub's to bound here.
const AUTHOR_LIMIT: usize = 256;
/// `package_path` when the publisher should find every package itself. Not an empty string: the
/// workflow's `a || b` expressions treat "" as missing.
pub const EVERY_PACKAGE: &str = "*";
const TRUNCATION_NOTE: &str = "… [truncated]";

/// The `client_payload` the publisher workflow reads. Seven properties, each a string, and an eighth
/// only on the watchdog's re-dispatch (GitHub allows 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientPayload {
    pub repository: String,
    pub commit_sha: String,
    pub commit_message: String,
    pub commit_author: String,
    pub branch: String,
    /// Directories of the changed package.json files, comma-separated; `.` is the repository root and
    /// `*` means "find every package" (the push was too large to list its files).
    pub package_path: String,
    pub delivery: String,
    /// `github-hosted` on the watchdog's re-dispatch of a run stuck on dead self-hosted runners: the
    /// workflow's `runs-on` then picks GitHub's runner instead of `vars.PUBLISH_RUNNER`. Absent on every
    /// dispatch of a push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
}

#[derive(Serialize)]
struct DispatchBody<'a> {
    event_type: &'static str,
    client_payload: &'a ClientPayload,
}

pub fn client_payload(publish: &Publish, push: &PushEvent, delivery: &str) -> ClientPayload {
    let head = push.head_commit.as_ref();
    let author = head.and_then(|c| c.author.as_ref());
    let commit_author = match author {
        Some(a) if !a.name.is_empty() => a.name.clone(),
        Some(a) => a.username.clone().unwrap_or_default(),
        None => push
            .sender
            .as_ref()
            .map(|s| s.login.clone())
            .unwrap_or_default(),
    };
    let mut payload = ClientPayload {
        repository: publish.repository.to_string(),
        commit_sha: publish.commit_sha.clone(),
        commit_message: truncate(
            head.map(|c| c.message.as_str()).unwrap_or(""),
            COMMIT_MESSAGE_LIMIT,
        ),
        commit_author: truncate(&commit_author, AUTHOR_LIMIT),
        branch: publish.branch.clone(),
        package_path: package_path(&publish.packages),
        delivery: delivery.to_string(),
        runner: None,
    };
    // The limits above count bytes of text; JSON escaping can multiply them (a control character is six
    // bytes escaped). What GitHub limits is the body, so the body is measured, and shrunk if need be:
    // first "scan everything", then a shorter message.
    if body(&payload).len() > BODY_LIMIT {
        payload.package_path = EVERY_PACKAGE.to_string();
        if body(&payload).len() > BODY_LIMIT {
            payload.commit_message = truncate(&payload.commit_message, SHORT_MESSAGE_LIMIT);
        }
    }
    payload
}

pub fn package_path(packages: &ChangedPackages) -> String {
    match packages {
        ChangedPackages::Paths(dirs) => {
            // A directory named with a comma cannot travel in a comma-separated list without
            // becoming two wrong paths: let the publisher find every package instead.
            if dirs.iter().any(|d| d.contains(',')) {
                return EVERY_PACKAGE.to_string();
            }
            let joined = dirs.join(",");
            // Past the bound, "scan everything" loses nothing: the publisher skips what is published.
            if joined.len() > PACKAGE_PATH_LIMIT {
                EVERY_PACKAGE.to_string()
            } else {
                joined
            }
        }
        ChangedPackages::Unknown => EVERY_PACKAGE.to_string(),
    }
}

/// The request body, as JSON text for sending (written directly, not through a `Value`).
pub fn body(payload: &ClientPayload) -> String {
    serde_json::to_string(&DispatchBody {
        event_type: EVENT_TYPE,
        client_payload: payload,
    })
    .expect("the dispatch body serialises")
}

/// The request body as a JSON value (what a dry run shows).
pub fn body_json(payload: &ClientPayload) -> serde_json::Value {
    serde_json::to_value(DispatchBody {
        event_type: EVENT_TYPE,
        client_payload: payload,
    })
    .expect("the dispatch body serialises")
}

/// The `client_payload` of a `package_preview` dispatch: seven properties (GitHub allows 10), all short
/// and bounded (`preview::candidate` checked the shas and the branch), so no truncation is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewPayload {
    pub repository: String,
    pub pull_request: u64,
    pub head_sha: String,
    pub base_sha: String,
    pub base_branch: String,
    /// The head is in a fork: the workflow checks it out as data only (it always does), and the check
    /// summary says so.
    pub fork: bool,
    pub delivery: String,
}

#[derive(Serialize)]
struct PreviewBody<'a> {
    event_type: &'static str,
    client_payload: &'a PreviewPayload,
}

pub fn preview_payload(preview: &Preview, delivery: &str) -> PreviewPayload {
    PreviewPayload {
        repository: preview.repository.to_string(),
        pull_request: preview.number,
        head_sha: preview.head_sha.clone(),
        base_sha: preview.base_sha.clone(),
        base_branch: preview.base_branch.clone(),
        fork: preview.fork,
        delivery: delivery.to_string(),
    }
}

pub fn preview_body_json(payload: &PreviewPayload) -> serde_json::Value {
    serde_json::to_value(PreviewBody {
        event_type: PREVIEW_EVENT_TYPE,
        client_payload: payload,
    })
    .expect("the preview body serialises")
}

/// Cuts `text` to at most `limit` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit - TRUNCATION_NOTE.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATION_NOTE}", &text[..end])
}

/// How hard we try. Every attempt runs inside the delivery's one deadline (`deadline::DEADLINE_MS`,
/// counted from the request's start, well before GitHub's 10 s delivery timeout), so the retries are
/// bounded by what is left of it rather than by a budget of their own.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff_ms: u64,
    /// Another attempt is made only if at least this much time is left after waiting for it: a dispatch
    /// that is cut off mid-flight may have reached GitHub, and then the 502 we answer is a lie.
    pub min_attempt_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            first_backoff_ms: 250,
            min_attempt_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryAfter { delay_ms: u64, why: String },
    GiveUp(String),
}

/// Decides what follows an attempt. `attempt` counts from 1; `remaining_ms` is what is left of the
/// delivery's deadline. `why` never carries the runtime's own error text (`SendError::public`).
pub fn after_attempt(
    attempt: u32,
    result: &Result<HttpResponse, SendError>,
    remaining_ms: u64,
    policy: RetryPolicy,
) -> Next {
    let (why, retry_after_ms) = match result {
        Ok(response) if (200..300).contains(&response.status) => return Next::Done,
        Ok(response) => {
            let retry_after_ms = response
                .retry_after
                .as_deref()
                .and_then(parse_retry_after_ms);
            let why = format!(
                "GitHub answered {}: {}",
                response.status,
                crate::github::error_message(&response.body)
            );
            // 5xx and 429 are GitHub's "try again"; a 403 with Retry-After is a secondary rate limit.
            let retryable = response.status >= 500
                || response.status == 429
                || (response.status == 403 && retry_after_ms.is_some());
            if !retryable {
                return Next::GiveUp(why);
            }
            (why, retry_after_ms)
        }
        Err(error) => (error.public(), None),
    };
    if attempt >= policy.max_attempts {
        return Next::GiveUp(format!("{why} (after {attempt} attempts)"));
    }
    let backoff = policy.first_backoff_ms << (attempt - 1).min(8);
    let delay_ms = retry_after_ms.map_or(backoff, |ms| ms.max(backoff));
    if delay_ms >= remaining_ms || remaining_ms - delay_ms < policy.min_attempt_ms {
        return Next::GiveUp(format!(
            "{why} (no time left for attempt {} before the delivery's deadline)",
            attempt + 1
        ));
    }
    Next::RetryAfter { delay_ms, why }
}

/// `Retry-After` in seconds, GitHub's form; a value too large for any clock saturates (and then cannot
/// fit the deadline). The HTTP-date form is not used by GitHub and is ignored: the ordinary backoff
/// applies.
fn parse_retry_after_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        value
            .parse::<u64>()
            .unwrap_or(u64::MAX)
            .saturating_mul(1000),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_dispatch_carries_what_the_workflow_reads() {
        let preview = Preview {
            repository: crate::model::RepoName::parse("Studio/Tools").unwrap(),
            number: 7,
            base_branch: "main".into(),
            head_sha: "a".repeat(40),
            base_sha: "b".repeat(40),
            fork: true,
        };
        let body = preview_body_json(&preview_payload(&preview, "guid-1"));
        assert_eq!(body["event_type"], "package_preview");
        let payload = body["client_payload"].as_object().unwrap();
        // GitHub refuses more than 10 top-level client_payload properties.
        assert!(payload.len() <= 10, "{payload:?}");
        assert_eq!(body["client_payload"]["repository"], "Studio/Tools");
        assert_eq!(body["client_payload"]["pull_request"], 7);
        assert_eq!(body["client_payload"]["head_sha"], "a".repeat(40));
        assert_eq!(body["client_payload"]["base_sha"], "b".repeat(40));
        assert_eq!(body["client_payload"]["base_branch"], "main");
        assert_eq!(body["client_payload"]["fork"], true);
        assert_eq!(body["client_payload"]["delivery"], "guid-1");
        assert!(body.to_string().len() < BODY_LIMIT);
    }
    use crate::filter::{candidate, on_branch, LoopGuard};
    use crate::fixtures::push_touching;
    use serde_json::Value;

    fn response(status: u16, retry_after: Option<&str>) -> Result<HttpResponse, SendError> {
        Ok(HttpResponse {
            status,
            retry_after: retry_after.map(str::to_string),
            body: r#"{"message":"Server Error"}"#.into(),
        })
    }

    fn publish_for(push: &PushEvent) -> Publish {
        on_branch(candidate(push, &LoopGuard::default()).unwrap(), None).unwrap()
    }

    #[test]
    fn body_matches_what_the_workflow_reads() {
        let push = push_touching(&["Packages/com.studio.a/package.json", "package.json"]);
        let payload = client_payload(&publish_for(&push), &push, "delivery-1");
        let value: Value = serde_json::from_str(&body(&payload)).unwrap();
        assert_eq!(value["event_type"], "package_publish");
        let client = value["client_payload"].as_object().unwrap();
        assert!(client.len() <= 10, "GitHub allows at most 10 properties");
        assert_eq!(client["repository"], "Codertocat/Hello-World");
        assert_eq!(client["commit_sha"], push.after.as_str());
        assert_eq!(client["branch"], "master");
        assert_eq!(client["package_path"], "Packages/com.studio.a,.");
        assert_eq!(client["commit_author"], "Codertocat");
        assert_eq!(client["delivery"], "delivery-1");
        assert!(client.values().all(Value::is_string));
    }

    #[test]
    fn long_and_unicode_messages_stay_under_the_limit() {
        let mut push = push_touching(&["package.json"]);
        let message = "🚀 Release ünïcode ".repeat(5_000);
        push.head_commit.as_mut().unwrap().message = message.clone();
        let payload = client_payload(&publish_for(&push), &push, "d");
        assert!(payload.commit_message.len() <= COMMIT_MESSAGE_LIMIT);
        assert!(payload.commit_message.ends_with("[truncated]"));
        assert!(message.starts_with(payload.commit_message.trim_end_matches(TRUNCATION_NOTE)));
        assert!(body(&payload).len() < 64 * 1024);

        let short = "feat: 🎉 emoji stays whole";
        assert_eq!(truncate(short, COMMIT_MESSAGE_LIMIT), short);
    }

    #[test]
    fn author_falls_back_to_username_then_sender() {
        let mut push = push_touching(&["package.json"]);
        let head = push.head_commit.as_mut().unwrap();
        head.author.as_mut().unwrap().name = String::new();
        head.author.as_mut().unwrap().username = Some("octo".into());
        assert_eq!(
            client_payload(&publish_for(&push), &push, "d").commit_author,
            "octo"
        );
        push.head_commit.as_mut().unwrap().author = None;
        assert_eq!(
            client_payload(&publish_for(&push), &push, "d").commit_author,
            "Codertocat"
        );
    }

    #[test]
    fn too_many_paths_means_scan_everything() {
        let dirs: Vec<String> = (0..5_000)
            .map(|i| format!("Packages/com.studio.package-{i}"))
            .collect();
        assert_eq!(package_path(&ChangedPackages::Paths(dirs)), "*");
        assert_eq!(package_path(&ChangedPackages::Unknown), "*");
        assert_eq!(package_path(&ChangedPackages::Paths(vec![".".into()])), ".");
    }

    #[test]
    fn escaping_cannot_push_the_body_past_githubs_limit() {
        let mut push = push_touching(&["package.json"]);
        // 4 KiB of control characters: 24 KiB escaped.
        push.head_commit.as_mut().unwrap().message = "\u{1}".repeat(5_000);
        let mut publish = publish_for(&push);
        // Directories whose quotes double in JSON, just under the raw 32 KiB bound.
        publish.packages = ChangedPackages::Paths(
            (0..300)
                .map(|i| format!("{}{i}", "\"".repeat(100)))
                .collect(),
        );
        let payload = client_payload(&publish, &push, "d");
        assert!(
            body(&payload).len() <= BODY_LIMIT,
            "{}",
            body(&payload).len()
        );
        assert_eq!(payload.package_path, EVERY_PACKAGE);
    }

    #[test]
    fn a_comma_in_a_directory_name_means_scan_everything() {
        let dirs = vec!["Packages/a".to_string(), "Packages/b,c".to_string()];
        assert_eq!(package_path(&ChangedPackages::Paths(dirs)), "*");
    }

    const PLENTY: u64 = 7_000;

    #[test]
    fn success_is_done() {
        let policy = RetryPolicy::default();
        assert_eq!(
            after_attempt(1, &response(204, None), PLENTY, policy),
            Next::Done
        );
        assert_eq!(
            after_attempt(3, &response(200, None), 0, policy),
            Next::Done
        );
    }

    #[test]
    fn server_errors_and_network_failures_are_retried_with_backoff() {
        let policy = RetryPolicy::default();
        for result in [
            response(500, None),
            response(502, None),
            response(429, None),
            Err(SendError::Network("connection reset".into())),
            Err(SendError::TimedOut { after_ms: 900 }),
        ] {
            match after_attempt(1, &result, PLENTY, policy) {
                Next::RetryAfter { delay_ms: 250, .. } => {}
                other => panic!("{result:?}: {other:?}"),
            }
            assert!(matches!(
                after_attempt(2, &result, PLENTY, policy),
                Next::RetryAfter { delay_ms: 500, .. }
            ));
            match after_attempt(3, &result, PLENTY, policy) {
                Next::GiveUp(why) => assert!(why.ends_with("(after 3 attempts)"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_runtimes_error_text_is_not_in_the_reason() {
        let result = Err(SendError::Network(
            "TypeError: internal error; reference = 0123abcd".into(),
        ));
        for remaining in [PLENTY, 0] {
            let why = match after_attempt(1, &result, remaining, RetryPolicy::default()) {
                Next::RetryAfter { why, .. } | Next::GiveUp(why) => why,
                Next::Done => panic!("not done"),
            };
            assert!(
                !why.contains("reference") && !why.contains("TypeError"),
                "{why}"
            );
        }
    }

    #[test]
    fn a_retry_is_made_only_if_it_fits_the_deadline() {
        let policy = RetryPolicy::default();
        // 250 ms backoff + 1 s for the attempt: fits in 1.25 s, not in 1.2 s.
        assert!(matches!(
            after_attempt(1, &response(502, None), 1_250, policy),
            Next::RetryAfter { delay_ms: 250, .. }
        ));
        match after_attempt(1, &response(502, None), 1_200, policy) {
            Next::GiveUp(why) => assert!(why.contains("deadline"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_errors_are_final() {
        for status in [401, 403, 404, 422] {
            match after_attempt(1, &response(status, None), PLENTY, RetryPolicy::default()) {
                Next::GiveUp(why) => assert!(
                    why.starts_with(&format!("GitHub answered {status}: Server Error")),
                    "{why}"
                ),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_deadline() {
        let budget = RetryPolicy::default();
        assert!(matches!(
            after_attempt(1, &response(429, Some("2")), PLENTY, budget),
            Next::RetryAfter {
                delay_ms: 2_000,
                ..
            }
        ));
        // A secondary rate limit is a 403 with Retry-After.
        assert!(matches!(
            after_attempt(1, &response(403, Some("1")), PLENTY, budget),
            Next::RetryAfter {
                delay_ms: 1_000,
                ..
            }
        ));
        // Waiting 60 s would outlast GitHub's 10 s delivery timeout: give up now, answer 502.
        match after_attempt(1, &response(429, Some("60")), PLENTY, budget) {
            Next::GiveUp(why) => assert!(why.contains("deadline"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            after_attempt(2, &response(503, None), 100, budget),
            Next::GiveUp(_)
        ));
        // Not seconds: the ordinary backoff (an HTTP-date is ignored, see parse_retry_after_ms).
        for odd in ["soon", "Wed, 21 Oct 2026 07:28:00 GMT", "-5", "1.5", ""] {
            assert!(
                matches!(
                    after_attempt(1, &response(429, Some(odd)), PLENTY, budget),
                    Next::RetryAfter { delay_ms: 250, .. }
                ),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn an_enormous_retry_after_does_not_overflow() {
        let budget = RetryPolicy::default();
        for huge in [
            "99999999999999999",
            "18446744073709551615",
            "999999999999999999999999999999",
        ] {
            for remaining in [PLENTY, u64::MAX] {
                match after_attempt(1, &response(429, Some(huge)), remaining, budget) {
                    Next::GiveUp(why) => assert!(why.contains("deadline"), "{why}"),
                    other => panic!("{huge}: {other:?}"),
                }
            }
        }
    }
}

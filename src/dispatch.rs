//! dispatch: the `repository_dispatch` that starts the publisher, and when to try it again.

use serde::Serialize;

use crate::classify::PushEvent;
use crate::filter::{ChangedPackages, Publish};
use crate::platform::HttpResponse;

pub const EVENT_TYPE: &str = "package_publish";

/// GitHub limits `client_payload` to 10 top-level properties and the whole body to 64 KB (REST docs for
/// "Create a repository dispatch event"). The commit message is the only field that can be long, so it is
/// cut to this many bytes; the package list falls back to "scan everything" past its own bound.
pub const COMMIT_MESSAGE_LIMIT: usize = 4096;
pub const PACKAGE_PATH_LIMIT: usize = 32 * 1024;
/// `package_path` when the publisher should find every package itself. Not an empty string: the
/// workflow's `a || b` expressions treat "" as missing.
pub const EVERY_PACKAGE: &str = "*";
const TRUNCATION_NOTE: &str = "… [truncated]";

/// The `client_payload` the publisher workflow reads. Seven properties, each a string.
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
    ClientPayload {
        repository: publish.repository.to_string(),
        commit_sha: publish.commit_sha.clone(),
        commit_message: truncate(
            head.map(|c| c.message.as_str()).unwrap_or(""),
            COMMIT_MESSAGE_LIMIT,
        ),
        commit_author,
        branch: publish.branch.clone(),
        package_path: package_path(&publish.packages),
        delivery: delivery.to_string(),
    }
}

pub fn package_path(packages: &ChangedPackages) -> String {
    match packages {
        ChangedPackages::Paths(dirs) => {
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

/// The request body, as JSON text for sending.
pub fn body(payload: &ClientPayload) -> String {
    body_json(payload).to_string()
}

/// The request body as a JSON value (what a dry run shows).
pub fn body_json(payload: &ClientPayload) -> serde_json::Value {
    serde_json::to_value(DispatchBody {
        event_type: EVENT_TYPE,
        client_payload: payload,
    })
    .expect("the dispatch body serialises")
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

/// How hard we try. GitHub gives a webhook 10 seconds to answer before it records a timeout, so the
/// retries (and the waits between them) must end well before that, leaving room for the registry lookup.
#[derive(Debug, Clone, Copy)]
pub struct RetryBudget {
    pub max_attempts: u32,
    pub total_ms: u64,
    pub first_backoff_ms: u64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            max_attempts: 3,
            total_ms: 6_000,
            first_backoff_ms: 250,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryAfter { delay_ms: u64, why: String },
    GiveUp(String),
}

/// Decides what follows an attempt. `attempt` counts from 1; `elapsed_ms` is the time since the first
/// attempt started.
pub fn after_attempt(
    attempt: u32,
    result: &Result<HttpResponse, String>,
    elapsed_ms: u64,
    budget: RetryBudget,
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
        Err(network) => (format!("network error: {network}"), None),
    };
    if attempt >= budget.max_attempts {
        return Next::GiveUp(format!("{why} (after {attempt} attempts)"));
    }
    let backoff = budget.first_backoff_ms << (attempt - 1).min(8);
    let delay_ms = retry_after_ms.map_or(backoff, |ms| ms.max(backoff));
    if elapsed_ms + delay_ms >= budget.total_ms {
        return Next::GiveUp(format!(
            "{why} (retry budget of {} ms spent after {attempt} attempts)",
            budget.total_ms
        ));
    }
    Next::RetryAfter { delay_ms, why }
}

/// `Retry-After` in seconds (GitHub's form). The HTTP-date form is not used by GitHub and reads as absent.
fn parse_retry_after_ms(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{candidate, on_branch, LoopGuard};
    use crate::fixtures::push_touching;
    use serde_json::Value;

    fn response(status: u16, retry_after: Option<&str>) -> Result<HttpResponse, String> {
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
    fn success_is_done() {
        let budget = RetryBudget::default();
        assert_eq!(
            after_attempt(1, &response(204, None), 0, budget),
            Next::Done
        );
        assert_eq!(
            after_attempt(3, &response(200, None), 0, budget),
            Next::Done
        );
    }

    #[test]
    fn server_errors_and_network_failures_are_retried_with_backoff() {
        let budget = RetryBudget::default();
        for result in [
            response(500, None),
            response(502, None),
            response(429, None),
            Err("connection reset".into()),
        ] {
            match after_attempt(1, &result, 100, budget) {
                Next::RetryAfter { delay_ms: 250, .. } => {}
                other => panic!("{result:?}: {other:?}"),
            }
            assert!(matches!(
                after_attempt(2, &result, 400, budget),
                Next::RetryAfter { delay_ms: 500, .. }
            ));
            match after_attempt(3, &result, 1_000, budget) {
                Next::GiveUp(why) => assert!(why.ends_with("(after 3 attempts)"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn client_errors_are_final() {
        for status in [401, 403, 404, 422] {
            match after_attempt(1, &response(status, None), 0, RetryBudget::default()) {
                Next::GiveUp(why) => assert!(
                    why.starts_with(&format!("GitHub answered {status}: Server Error")),
                    "{why}"
                ),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget() {
        let budget = RetryBudget::default();
        assert!(matches!(
            after_attempt(1, &response(429, Some("2")), 0, budget),
            Next::RetryAfter {
                delay_ms: 2_000,
                ..
            }
        ));
        // A secondary rate limit is a 403 with Retry-After.
        assert!(matches!(
            after_attempt(1, &response(403, Some("1")), 0, budget),
            Next::RetryAfter {
                delay_ms: 1_000,
                ..
            }
        ));
        // Waiting 60 s would outlast GitHub's 10 s delivery timeout: give up now, answer 502.
        match after_attempt(1, &response(429, Some("60")), 0, budget) {
            Next::GiveUp(why) => assert!(why.contains("retry budget"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            after_attempt(2, &response(503, None), 5_900, budget),
            Next::GiveUp(_)
        ));
        assert!(matches!(
            after_attempt(1, &response(429, Some("soon")), 0, budget),
            Next::RetryAfter { delay_ms: 250, .. }
        ));
    }
}

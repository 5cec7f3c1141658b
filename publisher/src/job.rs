//! job: what the `publish` and `reconcile` commands share around their work as a GitHub Actions job —
//! the registry client and its secret from the environment, the run's link, the Discord post, and the
//! step summary and audit files.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::notify;
use crate::registry::{self, Registry, RetryPolicy, Secret};

/// The registry client, with `NPM_TOKEN` from the environment (never an argument: other processes can
/// see those), and the retry policy it uses, which the Discord post shares.
pub fn registry(url: &str, attempts: u32, timeout: u64) -> Result<(Registry, RetryPolicy), String> {
    let policy = RetryPolicy {
        attempts,
        ..RetryPolicy::default()
    };
    let token = std::env::var("NPM_TOKEN").ok().and_then(Secret::new);
    let registry = Registry::new(url, token, policy, Duration::from_secs(timeout))?;
    Ok((registry, policy))
}

/// GitHub's web address (Actions sets GITHUB_SERVER_URL; github.com outside Actions).
pub fn server_url() -> String {
    std::env::var("GITHUB_SERVER_URL").unwrap_or_else(|_| "https://github.com".to_string())
}

/// The link to this workflow run, when running in Actions.
pub fn run_url(server_url: &str) -> Option<String> {
    match (
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        (Ok(repo), Ok(id)) if !repo.is_empty() && !id.is_empty() => {
            Some(format!("{server_url}/{repo}/actions/runs/{id}"))
        }
        _ => None,
    }
}

/// How a command notifies Discord; the webhook itself comes from DISCORD_WEBHOOK_URL (a secret).
pub struct Notification<'a> {
    /// Post into this thread of the webhook's channel.
    pub thread_id: Option<&'a str>,
    pub policy: &'a RetryPolicy,
    /// Seconds, per request (at most 30: a slow Discord must not hold the job).
    pub timeout: u64,
    pub dry_run: bool,
    /// How the command names itself in its log lines.
    pub program: &'a str,
}

/// Posts `message()` when a webhook is configured, the run is not a dry run and there is something to
/// say; returns what happened, for the audit file. A failure is logged as a warning and never fails the
/// run.
pub fn notify_discord(
    how: &Notification,
    message: impl FnOnce() -> Option<notify::Message>,
) -> String {
    let Some(webhook) = std::env::var("DISCORD_WEBHOOK_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        return "not configured".to_string();
    };
    if how.dry_run {
        return "skipped (dry run)".to_string();
    }
    let Some(message) = message() else {
        return "nothing to announce".to_string();
    };
    let result = notify::webhook_url(&webhook, how.thread_id).and_then(|url| {
        let agent = registry::agent(Duration::from_secs(how.timeout.min(30)));
        notify::post(&agent, &url, &message, how.policy)
    });
    match result {
        Ok(()) => "sent".to_string(),
        Err(e) => {
            eprintln!("{}: warning: {e}", how.program);
            format!("failed: {e}")
        }
    }
}

/// Appends to the step summary; a failure is only logged (the summary is a convenience).
pub fn append_summary(path: &Path, text: &str, program: &str) {
    let appended = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(e) = appended {
        eprintln!(
            "{program}: cannot write the summary to {}: {e}",
            path.display()
        );
    }
}

/// Writes the audit file; `false` (and logged) when it could not be written, which fails the run: the
/// audit is the record of what happened.
pub fn write_audit(path: &Path, audit: &impl serde::Serialize, program: &str) -> bool {
    let written = serde_json::to_vec_pretty(audit)
        .map_err(|e| e.to_string())
        .and_then(|json| fs::write(path, json).map_err(|e| e.to_string()));
    match written {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "{program}: cannot write the audit file {}: {e}",
                path.display()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_that_cannot_be_written_fails_the_run_and_one_that_can_is_json() {
        let dir = tempfile::tempdir().unwrap();
        let audit = serde_json::json!({"ok": true});
        assert!(!write_audit(
            &dir.path().join("missing/audit.json"),
            &audit,
            "test"
        ));
        let path = dir.path().join("audit.json");
        assert!(write_audit(&path, &audit, "test"));
        let written: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, audit);
    }

    #[test]
    fn the_summary_is_appended_to_what_earlier_steps_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        fs::write(&path, "earlier step\n").unwrap();
        append_summary(&path, "ours\n", "test");
        append_summary(&path, "more\n", "test");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "earlier step\nours\nmore\n"
        );
    }
}

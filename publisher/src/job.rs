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

/// Where and how to post to Discord: the webhook comes from DISCORD_WEBHOOK_URL (a secret).
pub struct Discord<'a> {
    webhook: String,
    thread_id: Option<&'a str>,
    policy: &'a RetryPolicy,
    timeout: u64,
}

impl<'a> Discord<'a> {
    /// `None` when no webhook is configured.
    pub fn from_env(
        thread_id: Option<&'a str>,
        policy: &'a RetryPolicy,
        timeout: u64,
    ) -> Option<Self> {
        let webhook = std::env::var("DISCORD_WEBHOOK_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())?;
        Some(Discord {
            webhook,
            thread_id,
            policy,
            timeout,
        })
    }

    /// Posts the message; returns what happened, for the audit file (a failure is also logged, as a
    /// warning under `program`: the notification never fails the run).
    pub fn post(&self, message: &notify::Message, program: &str) -> String {
        let result = notify::webhook_url(&self.webhook, self.thread_id).and_then(|url| {
            let agent = registry::agent(Duration::from_secs(self.timeout.min(30)));
            notify::post(&agent, &url, message, self.policy)
        });
        match result {
            Ok(()) => "sent".to_string(),
            Err(e) => {
                eprintln!("{program}: warning: {e}");
                format!("failed: {e}")
            }
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

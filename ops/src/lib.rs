//! The `upm` operations CLI as a library: pure decisions in their own modules (`registry_file`,
//! `delivery_stats`, `migration`), and one `cmd_*` module per subcommand that gathers facts from GitHub
//! through the shared client (`upm_github`) and prints the report.

pub mod cmd_deliveries;
pub mod cmd_doctor;
pub mod cmd_migrate;
pub mod cmd_probe;
pub mod cmd_registry;
pub mod cmd_slo;
pub mod cmd_status;
pub mod cmd_trace;
pub mod delivery_stats;
pub mod discord;
pub mod doctor;
pub mod migration;
pub mod npm;
pub mod probe;
pub mod registry_file;
pub mod slo;
pub mod table;
pub mod trace;
pub mod zip;

use std::path::PathBuf;
use std::time::Duration;

use upm_github::{ClientConfig, Credentials, GitHub};
use upm_relay::model::RepoName;

/// What every subcommand gets: the GitHub client, where things are, and how to print.
pub struct Context {
    pub github: GitHub,
    pub central: RepoName,
    pub org: Option<String>,
    pub hook_id: Option<u64>,
    pub registry_file: PathBuf,
    pub json: bool,
}

impl Context {
    pub fn new(
        api: &str,
        central: &str,
        org: Option<String>,
        hook_id: Option<u64>,
        registry_file: PathBuf,
        json: bool,
        max_rate_limit_wait_secs: u64,
    ) -> Result<Context, String> {
        let central = RepoName::parse(central)
            .ok_or_else(|| format!("--central {central:?} is not owner/name"))?;
        let credentials = Credentials::from_env(org.as_deref())?;
        let config = ClientConfig {
            user_agent: concat!("upm-ops/", env!("CARGO_PKG_VERSION")).to_string(),
            max_rate_limit_wait: Duration::from_secs(max_rate_limit_wait_secs),
            ..ClientConfig::new(api)
        };
        Ok(Context {
            github: GitHub::new(config, credentials)?,
            central,
            org,
            hook_id,
            registry_file,
            json,
        })
    }

    pub fn read_registry(&self) -> Result<registry_file::RegistryFile, String> {
        let text = std::fs::read_to_string(&self.registry_file)
            .map_err(|e| format!("{}: {e}", self.registry_file.display()))?;
        registry_file::RegistryFile::parse(&text)
            .map_err(|e| format!("{}: {e}", self.registry_file.display()))
    }

    pub fn write_registry(&self, text: &str) -> Result<(), String> {
        std::fs::write(&self.registry_file, text)
            .map_err(|e| format!("{}: {e}", self.registry_file.display()))
    }

    pub fn hook(&self) -> Result<(&str, u64), String> {
        match (&self.org, self.hook_id) {
            (Some(org), Some(hook)) => Ok((org, hook)),
            _ => Err("the organization webhook is unknown: set GITHUB_ORG and HOOK_ID (or --org and --hook-id)".into()),
        }
    }

    /// Prints a report: JSON with `--json`, else the table text.
    pub fn print(&self, report: &impl serde::Serialize, table: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(report).expect("reports serialise")
            );
        } else {
            print!("{}", table());
        }
    }

    /// A line of progress for long operations (stderr, so `--json` stdout stays clean).
    pub fn progress(&self, line: &str) {
        eprintln!("{line}");
    }

    /// `[3/40] Studio/Game`: the progress line of step `index` (from 0) of a loop over `total`.
    pub fn progress_step(&self, index: usize, total: usize, what: &str) {
        self.progress(&format!("[{}/{total}] {what}", index + 1));
    }
}

/// An HTTP agent for what is not GitHub (the registry, Discord, the worker): every status is an answer
/// to read, not an error, and nothing waits longer than `timeout_secs` in all.
pub fn http_agent(timeout_secs: u64) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(timeout_secs)))
        .build()
        .into()
}

/// `24h`, `90m`, `7d`, `3600s` → seconds.
pub fn parse_window(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration like 24h, 90m, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if secs <= 0 {
        return Err(format!("{text:?}: must be positive"));
    }
    Ok(secs)
}

pub fn parse_repo(text: &str) -> Result<RepoName, String> {
    RepoName::parse(text).ok_or_else(|| format!("{text:?} is not a GitHub repository (owner/name)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows() {
        assert_eq!(super::parse_window("24h"), Ok(86_400));
        assert_eq!(super::parse_window("90m"), Ok(5_400));
        assert_eq!(super::parse_window("7d"), Ok(604_800));
        assert!(super::parse_window("24").is_err());
        assert!(super::parse_window("0h").is_err());
        assert!(super::parse_window("h").is_err());
    }
}

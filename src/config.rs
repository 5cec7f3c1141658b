//! The worker's configuration, read once per request from secrets and vars (names in README.md).
//!
//! The settings types live here, next to their one reader, not with the stages that use them: the
//! GitHub App's (`AppCredentials`, used by `app_auth`), the sweeper's (`SweepConfig`, used by
//! `sweep` and `scheduled`) and the watchdog's (`WatchdogConfig`, used by `scheduled`). So the configuration sits below every stage that reads it and names none
//! of them.

use upm_github::deliveries::RedeliveryPolicy;

use crate::app_key::{parse_private_key, PrivateKey};
use crate::filter::LoopGuard;
use crate::model::RepoName;
use crate::verify::WebhookSecrets;

pub const DEFAULT_GITHUB_API: &str = "https://api.github.com";
pub const DEFAULT_REGISTRY_PATH: &str = "config/repositories.json";
/// About a minute: registry edits show up quickly without a GitHub request per delivery.
pub const DEFAULT_REGISTRY_TTL_SECONDS: u64 = 60;
/// How old a registry copy may get while GitHub keeps failing before it is an alarm (log level
/// `error`, `/health` status `stale`). It is still used: a day-old registry beats a lost delivery.
pub const DEFAULT_REGISTRY_MAX_STALE_SECONDS: u64 = 24 * 60 * 60;
/// Pages of the hook's deliveries the sweeper reads per run unless `SWEEP_MAX_PAGES` says otherwise.
pub const DEFAULT_MAX_PAGES: u32 = 5;

pub struct Config {
    pub secrets: WebhookSecrets,
    pub github_token: Option<String>,
    pub dispatch_repo: Option<RepoName>,
    pub github_api: String,
    pub registry_path: String,
    pub registry_ttl_ms: u64,
    pub registry_max_stale_ms: u64,
    /// `HEALTH_TOKEN`: a bearer token that unlocks `/health`'s details. Without it, nobody gets them.
    pub health_token: Option<String>,
    pub dry_run: bool,
    pub loop_guard: LoopGuard,
    /// The GitHub App, when `GITHUB_APP_ID` is set: it replaces `GITHUB_TOKEN` (app_auth).
    pub app: Option<AppCredentials>,
    /// The scheduled sweeper's settings (sweep); its problems never fail a delivery.
    pub sweep: SweepConfig,
    /// The watchdog's settings (watchdog): off unless `WATCHDOG=on`; its problems never fail a delivery.
    pub watchdog: WatchdogConfig,
    /// What is wrong with the configuration, by setting name; never a value.
    pub problems: Vec<String>,
}

impl Config {
    /// Builds the configuration from a lookup of secret or var by name (blank counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();

        let secrets = WebhookSecrets::parse(&get("WEBHOOK_SECRET").unwrap_or_default());
        if secrets.is_empty() {
            problems.push("WEBHOOK_SECRET is not set".to_string());
        }
        let dispatch_repo = match get("DISPATCH_REPO") {
            None => {
                problems
                    .push("DISPATCH_REPO is not set (owner/name of the central repository)".into());
                None
            }
            Some(value) => {
                let parsed = RepoName::parse(&value);
                if parsed.is_none() {
                    problems.push("DISPATCH_REPO is not an owner/name".into());
                }
                parsed
            }
        };
        let dry_run = match get("DRY_RUN").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => false,
            Some(_) => {
                // Refusing to guess keeps a typo from sending real dispatches in a test environment.
                problems.push("DRY_RUN must be true or false".into());
                true
            }
        };
        let github_token = get("GITHUB_TOKEN");
        let app = AppCredentials::from_lookup(&get).unwrap_or_else(|why| {
            problems.push(why);
            None
        });
        if github_token.is_none() && app.is_none() && !dry_run {
            problems.push("GITHUB_TOKEN is not set (or set DRY_RUN=true)".into());
        }
        let registry_ttl_ms = match get("REGISTRY_TTL_SECONDS") {
            None => DEFAULT_REGISTRY_TTL_SECONDS * 1000,
            Some(v) => match v.parse::<u64>() {
                Ok(seconds) => seconds.saturating_mul(1000),
                Err(_) => {
                    problems.push("REGISTRY_TTL_SECONDS must be a whole number of seconds".into());
                    DEFAULT_REGISTRY_TTL_SECONDS * 1000
                }
            },
        };
        let registry_max_stale_ms = match get("REGISTRY_MAX_STALE_SECONDS") {
            None => DEFAULT_REGISTRY_MAX_STALE_SECONDS * 1000,
            Some(v) => match v.parse::<u64>() {
                Ok(seconds) => seconds.saturating_mul(1000),
                Err(_) => {
                    problems.push(
                        "REGISTRY_MAX_STALE_SECONDS must be a whole number of seconds".into(),
                    );
                    DEFAULT_REGISTRY_MAX_STALE_SECONDS * 1000
                }
            },
        };
        let github_api = get("GITHUB_API")
            .unwrap_or_else(|| DEFAULT_GITHUB_API.to_string())
            .trim_end_matches('/')
            .to_string();
        if let Some(rest) = github_api.strip_prefix("http://") {
            // The token travels in the Authorization header: in clear text only to this machine.
            if !is_loopback_host(rest) {
                problems.push(
                    "GITHUB_API must be https:// (plain http:// only for a loopback host)".into(),
                );
            }
        } else if !github_api.starts_with("https://") {
            problems.push("GITHUB_API must be an https:// URL".into());
        }
        let registry_path = get("REGISTRY_PATH")
            .unwrap_or_else(|| DEFAULT_REGISTRY_PATH.to_string())
            .trim_start_matches('/')
            .to_string();
        // classify keeps only `.json` paths of a push's file lists (src/classify.rs, JsonPaths), and
        // must see an edit of the registry file.
        if !registry_path.ends_with(".json") {
            problems.push("REGISTRY_PATH must name a .json file".into());
        }

        Config {
            secrets,
            github_token,
            dispatch_repo,
            github_api,
            registry_path,
            registry_ttl_ms,
            registry_max_stale_ms,
            health_token: get("HEALTH_TOKEN"),
            dry_run,
            loop_guard: LoopGuard::parse(&get("IGNORE_SENDERS").unwrap_or_default()),
            app,
            sweep: SweepConfig::from_lookup(&get),
            watchdog: WatchdogConfig::from_lookup(&get),
            problems,
        }
    }
}

/// The App settings: `GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY` and the optional
/// `GITHUB_APP_INSTALLATION_ID` (else looked up from `DISPATCH_REPO`, or `GITHUB_ORG`, once per token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    pub app_id: String,
    pub private_key: PrivateKey,
    pub installation_id: Option<u64>,
}

impl AppCredentials {
    /// Reads the App settings; `Ok(None)` when no App is configured. Errors name the setting, never its
    /// value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let (app_id, pem) = match (get("GITHUB_APP_ID"), get("GITHUB_APP_PRIVATE_KEY")) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err("GITHUB_APP_ID is set without GITHUB_APP_PRIVATE_KEY".into())
            }
            (None, Some(_)) => {
                return Err("GITHUB_APP_PRIVATE_KEY is set without GITHUB_APP_ID".into())
            }
            (Some(id), Some(pem)) => (id, pem),
        };
        // GitHub accepts the App's numeric id or its client id (`Iv1.…`) as the JWT issuer.
        if app_id.len() > 64
            || !app_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Err("GITHUB_APP_ID must be the App's id (digits) or client id".into());
        }
        let private_key = parse_private_key(&pem)
            .map_err(|why| format!("GITHUB_APP_PRIVATE_KEY is not usable: {why}"))?;
        let installation_id = match get("GITHUB_APP_INSTALLATION_ID") {
            None => None,
            Some(id) => Some(id.parse::<u64>().map_err(|_| {
                "GITHUB_APP_INSTALLATION_ID must be a number (the installation's id)".to_string()
            })?),
        };
        Ok(Some(AppCredentials {
            app_id,
            private_key,
            installation_id,
        }))
    }
}

/// The sweeper's settings. `Off` unless both `GITHUB_ORG` and `HOOK_ID` are set; a bad value makes it
/// `Invalid` (logged by each run) without failing any delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepConfig {
    Off,
    On(SweepSettings),
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSettings {
    pub org: String,
    pub hook_id: u64,
    /// Pages of 100 deliveries read per run (`SWEEP_MAX_PAGES`).
    pub max_pages: u32,
    /// `SWEEP_MAX_PER_RUN` and `SWEEP_MAX_REDELIVERIES` (per delivery); the window margin is the
    /// shared rule's.
    pub policy: RedeliveryPolicy,
}

impl SweepConfig {
    /// Reads the settings; errors name the setting, never its value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> SweepConfig {
        match Self::read(get) {
            Ok(Some(settings)) => SweepConfig::On(settings),
            Ok(None) => SweepConfig::Off,
            Err(why) => SweepConfig::Invalid(why),
        }
    }

    fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<SweepSettings>, String> {
        let (org, hook_id) = match (get("GITHUB_ORG"), get("HOOK_ID")) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err("GITHUB_ORG is set but HOOK_ID is not".into()),
            (None, Some(_)) => return Err("HOOK_ID is set but GITHUB_ORG is not".into()),
            (Some(org), Some(hook)) => (org, hook),
        };
        if org.is_empty()
            || org.len() > 39
            || !org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("GITHUB_ORG must be an organization login".into());
        }
        let hook_id = hook_id
            .parse::<u64>()
            .map_err(|_| "HOOK_ID must be the organization webhook's numeric id".to_string())?;
        let defaults = RedeliveryPolicy::default();
        let number = |name: &str, default: u64, max: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{name} must be a whole number from 1 to {max}")),
            }
        };
        Ok(Some(SweepSettings {
            org,
            hook_id,
            max_pages: number("SWEEP_MAX_PAGES", DEFAULT_MAX_PAGES.into(), 50)? as u32,
            policy: RedeliveryPolicy {
                max_per_run: number("SWEEP_MAX_PER_RUN", defaults.max_per_run as u64, 100)?
                    as usize,
                max_redeliveries: number(
                    "SWEEP_MAX_REDELIVERIES",
                    defaults.max_redeliveries.into(),
                    20,
                )? as u32,
                ..defaults
            },
        }))
    }
}

/// The watchdog's switch and bounds (README.md, "The watchdog").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchdogConfig {
    Off,
    On(WatchdogSettings),
    Invalid(String),
}

/// Defaults: a publish run queued 10 minutes on self-hosted labels is stuck; at most 5 runs moved per
/// tick; reconcile silent for 2 hours (four missed 30-minute runs) is a stopped net.
pub const DEFAULT_WATCHDOG_QUEUED_MINUTES: u64 = 10;
pub const DEFAULT_WATCHDOG_MAX_PER_TICK: u64 = 5;
pub const DEFAULT_WATCHDOG_RECONCILE_SILENT_MINUTES: u64 = 120;

#[derive(Clone, PartialEq, Eq)]
pub struct WatchdogSettings {
    /// `WATCHDOG_QUEUED_MINUTES`, in ms: how long a publish run may wait for a runner.
    pub queued_ms: u64,
    /// `WATCHDOG_MAX_PER_TICK`: stuck runs looked at (and moved) per tick.
    pub max_per_tick: usize,
    /// `WATCHDOG_RECONCILE_SILENT_MINUTES`, in ms.
    pub reconcile_silent_ms: u64,
    /// `DISCORD_WEBHOOK_URL` (a secret: never logged, not even in `Debug`).
    pub discord_webhook: Option<String>,
}

impl std::fmt::Debug for WatchdogSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogSettings")
            .field("queued_ms", &self.queued_ms)
            .field("max_per_tick", &self.max_per_tick)
            .field("reconcile_silent_ms", &self.reconcile_silent_ms)
            .field(
                "discord_webhook",
                &self.discord_webhook.as_ref().map(|_| "set"),
            )
            .finish()
    }
}

impl WatchdogConfig {
    /// Reads the settings; errors name the setting, never its value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> WatchdogConfig {
        match Self::read(get) {
            Ok(Some(settings)) => WatchdogConfig::On(settings),
            Ok(None) => WatchdogConfig::Off,
            Err(why) => WatchdogConfig::Invalid(why),
        }
    }

    fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<WatchdogSettings>, String> {
        match get("WATCHDOG").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("off" | "false" | "0" | "no") => return Ok(None),
            Some("on" | "true" | "1" | "yes") => {}
            Some(_) => return Err("WATCHDOG must be on or off".into()),
        }
        let minutes = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| format!("{name} must be a whole number from {min} to {max}")),
            }
        };
        // Below 5 minutes a healthy pool that is merely busy would be failed over; GitHub fails a job
        // queued 24 hours, so waiting longer than that is waiting for nothing.
        let queued = minutes(
            "WATCHDOG_QUEUED_MINUTES",
            DEFAULT_WATCHDOG_QUEUED_MINUTES,
            5,
            24 * 60,
        )?;
        let max_per_tick = minutes(
            "WATCHDOG_MAX_PER_TICK",
            DEFAULT_WATCHDOG_MAX_PER_TICK,
            1,
            20,
        )?;
        // Reconcile's own cron is every 30 minutes: less than an hour would dispatch it between runs.
        let silent = minutes(
            "WATCHDOG_RECONCILE_SILENT_MINUTES",
            DEFAULT_WATCHDOG_RECONCILE_SILENT_MINUTES,
            60,
            7 * 24 * 60,
        )?;
        let discord_webhook = match get("DISCORD_WEBHOOK_URL") {
            None => None,
            Some(url)
                if url.starts_with("https://")
                    || url
                        .strip_prefix("http://")
                        .is_some_and(is_loopback_host) =>
            {
                Some(url)
            }
            Some(_) => {
                return Err(
                    "DISCORD_WEBHOOK_URL must be an https:// URL (plain http:// only for a loopback host)"
                        .into(),
                )
            }
        };
        Ok(Some(WatchdogSettings {
            queued_ms: queued * 60_000,
            max_per_tick: max_per_tick as usize,
            reconcile_silent_ms: silent * 60_000,
            discord_webhook,
        }))
    }
}

/// `localhost`, a `*.localhost` name (RFC 6761 reserves them for loopback), `127.0.0.0/8` or `[::1]`,
/// with or without a port, from the part of a URL after `http://`.
fn is_loopback_host(after_scheme: &str) -> bool {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| &h[1..]).unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn a_complete_configuration_has_no_problems() {
        let c = config(&[
            ("WEBHOOK_SECRET", "a,b"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("DISPATCH_REPO", "Studio/upm-auto-publisher"),
            ("GITHUB_API", "http://127.0.0.1:9999/"),
            ("REGISTRY_TTL_SECONDS", "5"),
            ("IGNORE_SENDERS", "upm-bot[bot]"),
        ]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.secrets.len(), 2);
        assert_eq!(c.github_api, "http://127.0.0.1:9999");
        assert_eq!(c.registry_path, "config/repositories.json");
        assert_eq!(c.registry_ttl_ms, 5000);
        assert!(!c.dry_run);
        assert_eq!(
            c.loop_guard.ignored_senders,
            vec!["upm-bot[bot]".to_string()]
        );
    }

    #[test]
    fn the_watchdog_is_off_unless_switched_on_and_never_shows_the_discord_url() {
        assert_eq!(config(&[]).watchdog, WatchdogConfig::Off);
        assert_eq!(config(&[("WATCHDOG", "off")]).watchdog, WatchdogConfig::Off);
        let WatchdogConfig::On(on) = config(&[("WATCHDOG", "on")]).watchdog else {
            panic!("switched on")
        };
        assert_eq!(
            (on.queued_ms, on.max_per_tick, on.reconcile_silent_ms),
            (600_000, 5, 7_200_000)
        );
        assert_eq!(on.discord_webhook, None);
        let secret = "https://discord.com/api/webhooks/1/t0ps3cret";
        let WatchdogConfig::On(on) = config(&[
            ("WATCHDOG", "ON"),
            ("WATCHDOG_QUEUED_MINUTES", "15"),
            ("WATCHDOG_MAX_PER_TICK", "2"),
            ("DISCORD_WEBHOOK_URL", secret),
        ])
        .watchdog
        else {
            panic!("switched on")
        };
        assert_eq!((on.queued_ms, on.max_per_tick), (900_000, 2));
        assert_eq!(on.discord_webhook.as_deref(), Some(secret));
        assert!(!format!("{on:?}").contains("t0ps3cret"));
        for (pairs, expected) in [
            (vec![("WATCHDOG", "maybe")], "WATCHDOG must"),
            (
                vec![("WATCHDOG", "on"), ("WATCHDOG_QUEUED_MINUTES", "1")],
                "WATCHDOG_QUEUED_MINUTES must",
            ),
            (
                vec![
                    ("WATCHDOG", "on"),
                    ("DISCORD_WEBHOOK_URL", "http://discord.com/x"),
                ],
                "DISCORD_WEBHOOK_URL must",
            ),
        ] {
            match config(&pairs).watchdog {
                WatchdogConfig::Invalid(why) => {
                    assert!(why.contains(expected), "{why}");
                    assert!(!why.contains("discord.com/x"));
                }
                other => panic!("{pairs:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://api.github.com",
            "http://127.0.0.1:9999",
            "http://localhost:8080/api",
            "http://github.localhost",
            "http://[::1]:3000",
            "http://127.1.2.3",
        ] {
            let c = config(&[("GITHUB_API", ok)]);
            assert!(
                !c.problems.iter().any(|p| p.contains("GITHUB_API")),
                "{ok}: {:?}",
                c.problems
            );
        }
        for bad in [
            "http://api.github.com",
            "http://127.0.0.1.evil.example",
            "http://localhost@evil.example",
            "http://evil-localhost",
            "http://[::2]",
            "ftp://127.0.0.1",
            "api.github.com",
        ] {
            let c = config(&[("GITHUB_API", bad)]);
            assert!(
                c.problems.iter().any(|p| p.contains("GITHUB_API")),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn the_registry_path_must_be_json() {
        let c = config(&[("REGISTRY_PATH", "config/repositories.yml")]);
        assert!(c.problems.iter().any(|p| p.contains("REGISTRY_PATH")));
        let c = config(&[("REGISTRY_PATH", "/config/studio repos.json")]);
        assert_eq!(c.registry_path, "config/studio repos.json");
        assert!(!c.problems.iter().any(|p| p.contains("REGISTRY_PATH")));
    }

    #[test]
    fn defaults_and_dry_run_without_a_token() {
        let c = config(&[
            ("WEBHOOK_SECRET", "s"),
            ("DISPATCH_REPO", "a/b"),
            ("DRY_RUN", "TRUE"),
        ]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(c.dry_run);
        assert_eq!(c.github_api, DEFAULT_GITHUB_API);
        assert_eq!(c.registry_ttl_ms, 60_000);
    }

    #[test]
    fn problems_name_the_setting_never_the_value() {
        let c = config(&[
            ("DISPATCH_REPO", "not a repo"),
            ("DRY_RUN", "maybe"),
            ("REGISTRY_TTL_SECONDS", "soon"),
            ("GITHUB_API", "ftp://x"),
        ]);
        let all = c.problems.join("; ");
        for setting in [
            "WEBHOOK_SECRET",
            "DISPATCH_REPO",
            "DRY_RUN",
            "REGISTRY_TTL_SECONDS",
            "GITHUB_API",
        ] {
            assert!(all.contains(setting), "{setting} missing from {all}");
        }
        assert!(!all.contains("not a repo") && !all.contains("maybe"));
        assert!(
            c.dry_run,
            "an unreadable DRY_RUN must not send real dispatches"
        );
        let c = config(&[("WEBHOOK_SECRET", "s"), ("DISPATCH_REPO", "a/b")]);
        assert_eq!(
            c.problems,
            vec!["GITHUB_TOKEN is not set (or set DRY_RUN=true)".to_string()]
        );
    }
}

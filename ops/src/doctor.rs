//! doctor: the pre-flight's judgements. Each function turns what GitHub, the worker, the registry or
//! Discord answered into lines of one table, `ok` / `warn` / `FAIL`, each with what to do. Pure: the
//! requests are `cmd_doctor`'s.

use serde::Serialize;
use upm_github::settings::{Installation, Item, OrgHook};
use upm_relay::watchdog::{self, Binary, Run, Runner, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub level: Level,
    pub detail: String,
    /// What to do; `None` when nothing is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(check: impl Into<String>, detail: impl Into<String>, fix: &str) -> Check {
        Check {
            level: Level::Warn,
            fix: Some(fix.to_string()),
            ..Check::ok(check, detail)
        }
    }

    pub fn fail(check: impl Into<String>, detail: impl Into<String>, fix: &str) -> Check {
        Check {
            level: Level::Fail,
            fix: Some(fix.to_string()),
            ..Check::ok(check, detail)
        }
    }
}

/// Exit status: 1 when any line fails.
pub fn exit_code(checks: &[Check]) -> u8 {
    u8::from(checks.iter().any(|c| c.level == Level::Fail))
}

// ---- the worker ---------------------------------------------------------------------------------

/// `GET {worker}/health`: `answer` is the status and body, or why there was none.
pub fn health(answer: &Result<(u16, String), String>, with_token: bool) -> Check {
    const NAME: &str = "worker /health";
    let (status, body) = match answer {
        Err(e) => {
            return Check::fail(
                NAME,
                format!("no answer: {e}"),
                "deploy the worker (wrangler deploy) and check its route and WORKER_URL",
            )
        }
        Ok(answer) => answer,
    };
    if *status != 200 {
        return Check::fail(
            NAME,
            format!("answered {status}"),
            "WORKER_URL must be the worker's own URL; see wrangler tail",
        );
    }
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let version = value["version"].as_str().unwrap_or("?");
    let problems: Vec<&str> = value["problems"]
        .as_array()
        .map(|p| p.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    match value["status"].as_str() {
        Some("ok") if value["dry_run"] == serde_json::Value::Bool(true) => Check::warn(
            NAME,
            format!("ok, version {version}, but DRY_RUN is on: nothing is dispatched"),
            "set DRY_RUN=false in wrangler.toml and deploy",
        ),
        Some("ok") => {
            let mut detail = format!("ok, version {version}");
            if let Some(entries) = value["registry"]["entries"].as_u64() {
                detail.push_str(&format!(", registry of {entries} repositories"));
            }
            if !with_token {
                detail.push_str(" (HEALTH_TOKEN not given: details not read)");
            }
            Check::ok(NAME, detail)
        }
        Some("stale") => Check::warn(
            NAME,
            format!("stale: the registry copy in use is old (version {version})"),
            "check that the worker can read config/repositories.json from GitHub (wrangler tail)",
        ),
        Some("misconfigured") => Check::fail(
            NAME,
            if problems.is_empty() {
                "misconfigured (HEALTH_TOKEN shows why)".to_string()
            } else {
                format!("misconfigured: {}", problems.join("; "))
            },
            "wrangler secret put the missing secrets, then deploy",
        ),
        _ => Check::fail(
            NAME,
            format!("not the worker's answer: {}", shorten(body)),
            "WORKER_URL must be the worker's own URL",
        ),
    }
}

// ---- the organization webhook -------------------------------------------------------------------

/// The organization webhook's settings against what the worker needs. The worker reads only
/// `application/json` (HTTP contract: 415 otherwise) and acts on `push`; the publish preview needs
/// `pull_request`.
pub fn webhook(
    org: &str,
    hook_id: u64,
    hook: Option<&OrgHook>,
    worker: Option<&str>,
) -> Vec<Check> {
    let Some(hook) = hook else {
        return vec![Check::fail(
            "webhook",
            format!("{org} has no webhook {hook_id}"),
            "add it (Organization settings → Webhooks), then set HOOK_ID to the number in its URL",
        )];
    };
    let mut checks = Vec::new();
    checks.push(if hook.active {
        Check::ok("webhook active", format!("{org} hook {hook_id} is active"))
    } else {
        Check::fail(
            "webhook active",
            format!("{org} hook {hook_id} is inactive: GitHub sends nothing"),
            "tick \"Active\" in the webhook's settings",
        )
    });
    let url = hook.config.url.clone().unwrap_or_default();
    checks.push(match worker {
        Some(worker) if same_url(&url, worker) => Check::ok("webhook URL", url),
        Some(worker) => Check::fail(
            "webhook URL",
            format!("points at {url:?}, not the worker {worker}"),
            "set the webhook's payload URL to the worker's URL",
        ),
        None => Check::warn(
            "webhook URL",
            format!("{url} (the worker URL is unknown, not compared)"),
            "pass --worker-url (or WORKER_URL)",
        ),
    });
    let content_type = hook.config.content_type.as_deref().unwrap_or("form");
    checks.push(if content_type == "json" {
        Check::ok("webhook content type", "application/json")
    } else {
        Check::fail(
            "webhook content type",
            format!("{content_type}: the worker answers 415 to anything but application/json"),
            "set Content type to application/json",
        )
    });
    let sends = |event: &str| hook.events.iter().any(|e| e == event || e == "*");
    checks.push(if !sends("push") {
        Check::fail(
            "webhook events",
            format!("sends {:?}, not push: nothing is published", hook.events),
            "tick \"Pushes\" in the webhook's events",
        )
    } else if !sends("pull_request") {
        Check::warn(
            "webhook events",
            "push, but not pull_request: pull requests get no publish preview",
            "tick \"Pull requests\" in the webhook's events",
        )
    } else {
        Check::ok("webhook events", "push and pull_request")
    });
    let insecure = match &hook.config.insecure_ssl {
        Some(serde_json::Value::String(s)) => s == "1",
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    };
    if insecure {
        checks.push(Check::warn(
            "webhook TLS",
            "SSL verification is disabled",
            "enable SSL verification: the worker has a valid certificate",
        ));
    }
    checks
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// The last day's first-attempt success of push deliveries.
pub fn deliveries(rate: Option<f64>, deliveries: usize, still_failed: usize) -> Check {
    const NAME: &str = "recent deliveries";
    match rate {
        None => Check::warn(
            NAME,
            "no delivery in the last 24 h",
            "push to a registered repository, or look at the webhook's Recent Deliveries",
        ),
        Some(rate) if rate < 90.0 => Check::fail(
            NAME,
            format!("{rate:.1}% of {deliveries} succeeded at the first attempt; {still_failed} still failed"),
            "upm deliveries shows why; upm deliveries --redeliver-failed --apply once fixed",
        ),
        Some(rate) if rate < 99.0 || still_failed > 0 => Check::warn(
            NAME,
            format!("{rate:.1}% of {deliveries} succeeded at the first attempt; {still_failed} still failed"),
            "upm deliveries shows why",
        ),
        Some(rate) => Check::ok(
            NAME,
            format!("{rate:.1}% of {deliveries} succeeded at the first attempt"),
        ),
    }
}

// ---- the GitHub App -----------------------------------------------------------------------------

/// A permission the App's installation needs, and what breaks without it. Sources: GitHub's REST
/// reference, "Fine-grained access tokens for …" of each endpoint.
pub struct Permission {
    pub name: &'static str,
    pub level: &'static str,
    /// Without it: `Fail` for the publish path, `Warn` for a net or a tool.
    pub missing: Level,
    pub breaks: &'static str,
}

pub const PERMISSIONS: [Permission; 8] = [
    Permission {
        name: "contents",
        level: "write",
        missing: Level::Fail,
        // "Create a repository dispatch event": contents:write; the changelog commit.
        breaks: "dispatch and the changelog commit",
    },
    Permission {
        name: "metadata",
        level: "read",
        missing: Level::Fail,
        breaks: "every repository read",
    },
    Permission {
        name: "organization_hooks",
        level: "write",
        missing: Level::Warn,
        // "Redeliver a delivery for an organization webhook": organization_hooks:write.
        breaks: "the sweeper's redeliveries and upm deliveries",
    },
    Permission {
        name: "actions",
        level: "write",
        missing: Level::Warn,
        // Cancel a run, create a workflow dispatch, enable a workflow: actions:write.
        breaks: "the watchdog (cancel, re-dispatch, enable) and upm trace",
    },
    Permission {
        name: "administration",
        level: "read",
        missing: Level::Warn,
        // "List self-hosted runners for a repository": administration:read.
        breaks: "the watchdog's view of the repository's runners",
    },
    Permission {
        name: "organization_self_hosted_runners",
        level: "read",
        missing: Level::Warn,
        // "List self-hosted runners for an organization": organization_self_hosted_runners:read.
        breaks: "the watchdog's view of the organization's runners",
    },
    Permission {
        name: "checks",
        level: "write",
        missing: Level::Warn,
        // "Create a check run": checks:write.
        breaks: "the publish preview on pull requests",
    },
    Permission {
        name: "pull_requests",
        level: "write",
        missing: Level::Warn,
        breaks: "upm migrate and upm registry add --open-pr (pull requests)",
    },
];

fn rank(level: &str) -> u8 {
    match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

/// The installation's permissions against [`PERMISSIONS`]; one line.
pub fn app_permissions(org: &str, installation: Option<&Installation>, app: bool) -> Check {
    const NAME: &str = "App permissions";
    if !app {
        return Check::warn(
            NAME,
            "not checked: run with the App's credentials (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY)",
            "export the App's id and key, then run upm doctor again",
        );
    }
    let Some(installation) = installation else {
        return Check::fail(
            NAME,
            format!("the App is not installed on {org}"),
            "install the App on the organization (its settings → Install App)",
        );
    };
    let missing: Vec<&Permission> = PERMISSIONS
        .iter()
        .filter(|p| {
            rank(
                installation
                    .permissions
                    .get(p.name)
                    .map_or("", String::as_str),
            ) < rank(p.level)
        })
        .collect();
    let level = missing.iter().map(|p| p.missing).max().unwrap_or(Level::Ok);
    if missing.is_empty() {
        return Check::ok(NAME, "every permission the paths need");
    }
    let detail = missing
        .iter()
        .map(|p| format!("{}: {} missing ({})", p.name, p.level, p.breaks))
        .collect::<Vec<_>>()
        .join("; ");
    let fix =
        "grant them in the App's settings → Permissions, then accept them on the installation";
    if level == Level::Fail {
        Check::fail(NAME, detail, fix)
    } else {
        Check::warn(NAME, detail, fix)
    }
}

/// Whether the installation reaches each active registered repository (`Err`: could not be asked).
pub fn app_reach(reached: &[(String, Result<bool, String>)], app: bool) -> Vec<Check> {
    const NAME: &str = "App installed";
    if !app {
        return Vec::new();
    }
    let mut checks: Vec<Check> = reached
        .iter()
        .filter_map(|(repository, answer)| match answer {
            Ok(true) => None,
            Ok(false) => Some(Check::fail(
                NAME,
                format!("{repository}: not reachable by the App (not installed there, or it does not exist)"),
                "add the repository to the App's installation, or upm registry disable it",
            )),
            Err(e) => Some(Check::warn(NAME, format!("{repository}: {e}"), "run again")),
        })
        .collect();
    if checks.is_empty() {
        checks.push(Check::ok(
            NAME,
            format!("on all {} active registered repositories", reached.len()),
        ));
    }
    checks
}

// ---- the central repository's workflows -----------------------------------------------------------

/// The central repository's workflows: `(file, whether a disabled one stops publishing)`.
pub const WORKFLOWS: [(&str, bool); 8] = [
    (watchdog::PUBLISH_WORKFLOW, true),
    (watchdog::BINARY_WORKFLOW, true),
    (watchdog::RECONCILE_WORKFLOW, false),
    ("deliveries-watch.yml", false),
    ("preview.yml", false),
    ("health.yml", false),
    ("deploy.yml", false),
    ("ci.yml", false),
];

/// Every workflow on the default branch and enabled.
pub fn workflows(default_branch: &str, listed: &[Workflow]) -> Vec<Check> {
    WORKFLOWS
        .iter()
        .map(|(file, essential)| {
            let name = format!("workflow {file}");
            let found = listed
                .iter()
                .find(|w| watchdog::file_name(&w.path) == *file);
            match found.map(|w| w.state.as_str()) {
                None => Check::fail(
                    name,
                    format!("not on the default branch {default_branch}"),
                    "merge .github/workflows into the default branch",
                ),
                Some("active") => Check::ok(name, "active"),
                Some("disabled_inactivity") => Check::fail(
                    name,
                    "disabled by GitHub after 60 days without activity in the repository",
                    &format!("gh workflow enable {file} (WATCHDOG=on re-enables it by itself)"),
                ),
                Some(state) if *essential => Check::fail(
                    name,
                    state.to_string(),
                    &format!("gh workflow enable {file}"),
                ),
                Some(state) => Check::warn(
                    name,
                    state.to_string(),
                    &format!("gh workflow enable {file}"),
                ),
            }
        })
        .collect()
}

/// The scheduled nets: `(file, longest quiet time in seconds)`. reconcile runs every 30 minutes (and
/// the watchdog's default bound is 2 hours), the delivery watch hourly, the binary rebuild and the
/// health check weekly. `ops/tests/doctor.rs` checks this list against the files' `schedule`.
pub const SCHEDULES: [(&str, i64); 4] = [
    (watchdog::RECONCILE_WORKFLOW, 2 * 3600),
    ("deliveries-watch.yml", 3 * 3600),
    (watchdog::BINARY_WORKFLOW, 8 * 86_400),
    ("health.yml", 8 * 86_400),
];

/// A scheduled workflow's newest run against its bound. GitHub drops scheduled runs at peak load and
/// disables them after 60 quiet days ("Events that trigger workflows", `schedule`).
pub fn schedule(file: &str, bound_secs: i64, latest: Option<&Run>, now: i64) -> Check {
    let name = format!("schedule {file}");
    let fix = format!("gh workflow run {file}; if it stays quiet, check its state (enabled?)");
    match latest.and_then(|r| r.created_ms()) {
        None => Check::warn(name, "never ran", &fix),
        Some(ms) => {
            let age = now - (ms / 1000) as i64;
            if age > bound_secs {
                Check::fail(
                    name,
                    format!("last run {} ago (bound {})", span(age), span(bound_secs)),
                    &fix,
                )
            } else {
                Check::ok(name, format!("last run {} ago", span(age)))
            }
        }
    }
}

/// GitHub: "In a public repository, scheduled workflows are automatically disabled when no repository
/// activity has occurred in 60 days." Warn 10 days ahead.
pub fn activity(private: bool, last_commit: Option<i64>, now: i64) -> Option<Check> {
    const NAME: &str = "repository activity";
    if private {
        return None;
    }
    let age = now - last_commit?;
    Some(if age > 50 * 86_400 {
        Check::warn(
            NAME,
            format!(
                "last commit {} ago: GitHub disables the schedules of a public repository after 60 quiet days",
                span(age)
            ),
            "commit anything to the default branch (or keep WATCHDOG=on, which re-enables them)",
        )
    } else {
        Check::ok(NAME, format!("last commit {} ago", span(age)))
    })
}

/// The publisher binary for the default branch's head, judged as `scripts/fetch-publisher.sh` and
/// the watchdog judge it.
pub fn binary(head: &str, runs: &[Run], now: i64) -> Check {
    const NAME: &str = "publisher binary";
    let short = &head[..head.len().min(7)];
    match watchdog::binary(runs, (now as u64) * 1000) {
        Binary::Usable => Check::ok(NAME, format!("built for the head {short}")),
        Binary::Building => Check::warn(
            NAME,
            format!("being built for the head {short}"),
            "wait for publisher-binary.yml to finish",
        ),
        Binary::Missing(why) => Check::fail(
            NAME,
            format!("head {short}: {why}: every publish fails at \"Fetch the publisher\""),
            "gh workflow run publisher-binary.yml (on the default branch)",
        ),
    }
}

// ---- runners ------------------------------------------------------------------------------------

/// `vars.PUBLISH_RUNNER` (as `runs-on` reads it with `fromJSON`) against the runners GitHub lists.
pub fn runners(variable: Option<&str>, listed: &Result<Vec<Runner>, String>) -> Check {
    const NAME: &str = "runners";
    let Some(text) = variable.filter(|t| !t.trim().is_empty()) else {
        return Check::ok(NAME, "GitHub-hosted (PUBLISH_RUNNER is not set)");
    };
    let labels: Vec<String> = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::String(label)) => vec![label],
        Ok(serde_json::Value::Array(items)) if items.iter().all(|i| i.is_string()) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Check::fail(
                NAME,
                format!("PUBLISH_RUNNER {text:?} is not a JSON label or list of labels: runs-on's fromJSON fails"),
                "set it like [\"self-hosted\",\"linux\"]",
            )
        }
    };
    if !labels
        .iter()
        .any(|l| l.eq_ignore_ascii_case(watchdog::SELF_HOSTED))
    {
        return Check::ok(NAME, format!("GitHub-hosted {labels:?}"));
    }
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) => {
            return Check::warn(
                NAME,
                format!("PUBLISH_RUNNER {labels:?}, but the runners could not be listed: {e}"),
                "grant Administration: read and Self-hosted runners: read",
            )
        }
    };
    if watchdog::pool_alive(listed, &labels) {
        let online = listed.iter().filter(|r| r.status == "online").count();
        Check::ok(
            NAME,
            format!("{online} online runner(s); one has every label of {labels:?}"),
        )
    } else {
        Check::fail(
            NAME,
            format!("no online runner has every label of {labels:?}: each publish waits queued until GitHub fails it after 24 h"),
            "start a runner with those labels, fix PUBLISH_RUNNER, or turn WATCHDOG=on to fail over to GitHub-hosted runners",
        )
    }
}

/// An organization runner group the central repository may use, with its runners.
pub struct Group {
    pub name: String,
    pub allows_public_repositories: bool,
    pub restricted_to_workflows: bool,
    pub selected_workflows: Vec<String>,
    pub runners: Vec<Runner>,
}

/// The labels `vars.PUBLISH_RUNNER` asks for, when they name self-hosted runners.
pub fn self_hosted_labels(variable: Option<&str>) -> Option<Vec<String>> {
    let labels: Vec<String> = match serde_json::from_str::<serde_json::Value>(variable?).ok()? {
        serde_json::Value::String(label) => vec![label],
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => return None,
    };
    labels
        .iter()
        .any(|l| l.eq_ignore_ascii_case(watchdog::SELF_HOSTED))
        .then_some(labels)
}

/// Whether a runner GitHub would give the publish job to exists: a repository runner with the labels,
/// or an organization runner with them in a group that serves this repository. GitHub: a group's
/// repository access ("visible_to_repository"), "Allow public repositories" (off by default), and
/// "Selected workflows" ("owner/repo/.github/workflows/file.yml@ref") each keep a runner from a job.
pub fn runner_groups(
    labels: &[String],
    repository_runners: &[Runner],
    groups: &Result<Vec<Group>, String>,
    central: &str,
    private: bool,
) -> Check {
    const NAME: &str = "runner group";
    if watchdog::pool_alive(repository_runners, labels) {
        return Check::ok(
            NAME,
            "a runner of the central repository itself has the labels",
        );
    }
    let groups = match groups {
        Ok(groups) => groups,
        Err(e) => {
            return Check::warn(
                NAME,
                format!("the runner groups could not be read: {e}"),
                "grant Self-hosted runners: read",
            )
        }
    };
    let workflow = format!(
        "{}/.github/workflows/{}@",
        central.to_ascii_lowercase(),
        watchdog::PUBLISH_WORKFLOW
    );
    let mut blocked = Vec::new();
    for group in groups
        .iter()
        .filter(|g| watchdog::pool_alive(&g.runners, labels))
    {
        let public_refused = !private && !group.allows_public_repositories;
        let workflow_refused = group.restricted_to_workflows
            && !group
                .selected_workflows
                .iter()
                .any(|w| w.to_ascii_lowercase().starts_with(&workflow));
        if !public_refused && !workflow_refused {
            return Check::ok(
                NAME,
                format!("\"{}\" serves {central} with an online runner", group.name),
            );
        }
        if public_refused {
            blocked.push(format!(
                "\"{}\" does not allow public repositories",
                group.name
            ));
        }
        if workflow_refused {
            blocked.push(format!(
                "\"{}\" runs only other workflows than {}",
                group.name,
                watchdog::PUBLISH_WORKFLOW
            ));
        }
    }
    if blocked.is_empty() {
        Check::fail(
            NAME,
            format!("no runner group {central} may use has an online runner with {labels:?}: the publish job waits queued"),
            "Organization settings → Actions → Runner groups: give the runners' group access to the central repository",
        )
    } else {
        Check::fail(
            NAME,
            format!("{}: the publish job waits queued", blocked.join("; ")),
            "Organization settings → Actions → Runner groups: allow public repositories, or add the publish workflow",
        )
    }
}

// ---- the registry and Discord -------------------------------------------------------------------

/// `GET {registry}/-/ping`, then `GET {registry}/-/whoami` with the publish token (npm's "who am I":
/// 200 with the user the token belongs to, 401 when the token is refused).
pub fn registry(
    url: Option<&str>,
    ping: &Result<u16, String>,
    whoami: Option<&Result<(u16, String), String>>,
) -> Vec<Check> {
    let Some(url) = url else {
        return vec![Check::fail(
            "registry",
            "the registry is unknown",
            "pass --registry or set UPM_REGISTRY",
        )];
    };
    match ping {
        Ok(200) => {}
        Ok(status) => {
            return vec![Check::fail(
                "registry",
                format!("{url} answered {status} to /-/ping"),
                "check the registry's URL and that it is up",
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                "registry",
                format!("{url}: no answer: {e}"),
                "check the registry's URL and that it is up",
            )]
        }
    }
    let mut checks = vec![Check::ok("registry", format!("{url} answers"))];
    checks.push(match whoami {
        None => Check::warn(
            "publish token",
            "NPM_TOKEN not given: not checked",
            "export NPM_TOKEN (the upm-publish environment's) and run again",
        ),
        // A registry may answer 200 to an unknown token and name no user (Verdaccio does): that is
        // anonymous, as `npm whoami` reads it (ENEEDAUTH).
        Some(Ok((200, body)))
            if serde_json::from_str::<serde_json::Value>(body).unwrap_or_default()["username"]
                .as_str()
                .is_some_and(|u| !u.is_empty()) =>
        {
            let user: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            Check::ok(
                "publish token",
                format!("accepted as {}", user["username"].as_str().unwrap_or("?")),
            )
        }
        Some(Ok((status, _))) => Check::fail(
            "publish token",
            format!("refused ({status}, no user)"),
            "make a new token on the registry and store it as NPM_TOKEN in the upm-publish environment",
        ),
        Some(Err(e)) => Check::fail(
            "publish token",
            format!("no answer: {e}"),
            "check the registry",
        ),
    });
    checks
}

/// `GET` on a Discord webhook URL answers the webhook (200) without posting; 401/404 when it was
/// deleted or its token is wrong.
pub fn discord(answer: Option<&Result<u16, String>>) -> Check {
    const NAME: &str = "Discord webhook";
    match answer {
        None => Check::warn(
            NAME,
            "DISCORD_WEBHOOK_URL not given: not checked",
            "export it and run again; without it nobody is told of a publish or an alert",
        ),
        Some(Ok(200)) => Check::ok(NAME, "valid"),
        Some(Ok(status)) => Check::fail(
            NAME,
            format!("answered {status}: deleted, or its token is wrong"),
            "make a new webhook in the Discord channel and update the DISCORD_WEBHOOK_URL secret",
        ),
        Some(Err(e)) => Check::fail(NAME, format!("no answer: {e}"), "check the URL"),
    }
}

/// Dispatcher workflows still in repositories the organization webhook already serves: each push is
/// then dispatched twice.
pub fn dispatchers(found: &[(String, Vec<String>)], active: usize) -> Vec<Check> {
    const NAME: &str = "dispatchers left";
    let left: Vec<Check> = found
        .iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(repository, files)| {
            Check::warn(
                NAME,
                format!("{repository}: {}", files.join(", ")),
                "upm migrate remove-dispatchers --only <repository> --apply",
            )
        })
        .collect();
    if left.is_empty() {
        vec![Check::ok(
            NAME,
            format!("none in {active} active repositories"),
        )]
    } else {
        left
    }
}

// ---- secrets and variables ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Variable,
}

/// Without it: the job fails (`Required`), or loses something (`Recommended`), or `Optional`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Recommended,
    Optional,
}

/// What a workflow's job reads (`secrets.NAME`, `vars.NAME`), and in which environment it runs.
/// `tests/workflows`-style: `ops/tests/doctor.rs` reads every workflow file and fails when this table
/// and the files disagree.
pub struct Reads {
    pub workflow: &'static str,
    pub environment: Option<&'static str>,
    pub items: &'static [(Kind, &'static str, Need)],
}

use Kind::{Secret, Variable};
use Need::{Optional, Recommended, Required};

pub const READS: [Reads; 8] = [
    Reads {
        workflow: "handle-publish-request.yml",
        environment: Some("upm-publish"),
        items: &[
            (Variable, "UPM_REGISTRY", Required),
            (Secret, "NPM_TOKEN", Required),
            (Variable, "UPM_APP_ID", Recommended),
            (Secret, "UPM_APP_PRIVATE_KEY", Recommended),
            (Secret, "DISCORD_WEBHOOK_URL", Recommended),
            (Variable, "DISCORD_THREAD_ID", Optional),
            (Variable, "PUBLISH_RUNNER", Optional),
            (Variable, "UPM_ATTESTATION", Optional),
            (Secret, "TARGET_REPO_TOKEN", Optional),
            (Variable, "UPM_SIGNING_ORG_ID", Optional),
            (Secret, "UPM_SERVICE_ACCOUNT_KEY_ID", Optional),
            (Secret, "UPM_SERVICE_ACCOUNT_KEY_SECRET", Optional),
        ],
    },
    Reads {
        workflow: "reconcile.yml",
        environment: None,
        items: &[
            (Variable, "UPM_REGISTRY", Required),
            (Variable, "UPM_APP_ID", Required),
            (Secret, "UPM_APP_PRIVATE_KEY", Required),
            (Secret, "DISCORD_WEBHOOK_URL", Recommended),
            (Variable, "DISCORD_THREAD_ID", Optional),
            (Variable, "UPM_APP_INSTALLATION_ID", Optional),
            (Variable, "UPM_ATTESTATION", Optional),
            (Variable, "UPM_RECONCILE_BUDGET", Optional),
            (Secret, "UPM_REGISTRY_READ_TOKEN", Optional),
        ],
    },
    Reads {
        workflow: "deliveries-watch.yml",
        environment: None,
        items: &[
            (Variable, "GITHUB_ORG", Required),
            (Variable, "HOOK_ID", Required),
            (Variable, "UPM_APP_ID", Recommended),
            (Secret, "UPM_APP_PRIVATE_KEY", Recommended),
            (Secret, "DISCORD_WEBHOOK_URL", Recommended),
            (Variable, "UPM_REGISTRY", Recommended),
            (Secret, "UPM_OPS_TOKEN", Optional),
            (Variable, "DISCORD_THREAD_ID", Optional),
            (Secret, "UPM_REGISTRY_READ_TOKEN", Optional),
            (Variable, "UPM_SCOPES", Optional),
        ],
    },
    Reads {
        workflow: "deploy.yml",
        environment: Some("production"),
        items: &[
            (Secret, "CLOUDFLARE_API_TOKEN", Required),
            (Secret, "CLOUDFLARE_ACCOUNT_ID", Required),
            (Secret, "WEBHOOK_SECRET", Required),
            (Variable, "UPM_APP_ID", Recommended),
            (Secret, "UPM_APP_PRIVATE_KEY", Recommended),
            (Secret, "RELAY_GITHUB_TOKEN", Optional),
            (Variable, "UPM_GITHUB_ORG", Optional),
            (Variable, "UPM_HOOK_ID", Optional),
            (Variable, "WORKER_URL", Optional),
        ],
    },
    Reads {
        workflow: "publisher-binary.yml",
        environment: None,
        items: &[(Variable, "UPM_ATTESTATION", Optional)],
    },
    Reads {
        workflow: "preview.yml",
        environment: None,
        items: &[
            (Variable, "UPM_REGISTRY", Required),
            (Variable, "UPM_APP_ID", Required),
            (Secret, "UPM_APP_PRIVATE_KEY", Required),
            (Variable, "UPM_ATTESTATION", Optional),
        ],
    },
    Reads {
        workflow: "health.yml",
        environment: None,
        items: &[
            (Variable, "UPM_REGISTRY", Required),
            (Variable, "UPM_APP_ID", Required),
            (Secret, "UPM_APP_PRIVATE_KEY", Required),
            (Secret, "DISCORD_WEBHOOK_URL", Recommended),
            (Variable, "DISCORD_THREAD_ID", Optional),
            (Variable, "UPM_APP_INSTALLATION_ID", Optional),
            (Variable, "UPM_ATTESTATION", Optional),
            (Secret, "UPM_REGISTRY_READ_TOKEN", Optional),
        ],
    },
    Reads {
        workflow: "ci.yml",
        environment: None,
        items: &[],
    },
];

/// Where a name is set: the repository, each environment that has it, the organization (with a
/// visibility that reaches the central repository).
#[derive(Debug, Default, Clone)]
pub struct Where {
    pub repository: bool,
    pub environments: Vec<String>,
    pub organization: bool,
}

/// The names set for the central repository, by kind, from the listings.
#[derive(Debug, Default)]
pub struct Settings {
    pub secrets: std::collections::BTreeMap<String, Where>,
    pub variables: std::collections::BTreeMap<String, Where>,
}

impl Settings {
    pub fn add_repository(&mut self, kind: Kind, items: &[Item]) {
        for item in items {
            self.slot(kind, &item.name).repository = true;
        }
    }

    pub fn add_environment(&mut self, kind: Kind, environment: &str, items: &[Item]) {
        for item in items {
            self.slot(kind, &item.name)
                .environments
                .push(environment.to_string());
        }
    }

    /// `reaches`: whether the organization item reaches the central repository (visibility `all`,
    /// `private` for a private repository, or `selected` naming it).
    pub fn add_organization(&mut self, kind: Kind, name: &str, reaches: bool) {
        if reaches {
            self.slot(kind, name).organization = true;
        }
    }

    fn slot(&mut self, kind: Kind, name: &str) -> &mut Where {
        match kind {
            Kind::Secret => self.secrets.entry(name.to_string()).or_default(),
            Kind::Variable => self.variables.entry(name.to_string()).or_default(),
        }
    }

    fn visible_to(
        &self,
        kind: Kind,
        name: &str,
        environment: Option<&str>,
    ) -> (bool, Option<&Where>) {
        let found = match kind {
            Kind::Secret => self.secrets.get(name),
            Kind::Variable => self.variables.get(name),
        };
        let visible = found.is_some_and(|w| {
            w.repository
                || w.organization
                || environment.is_some_and(|e| w.environments.iter().any(|have| have == e))
        });
        (visible, found)
    }
}

/// Whether an organization item with `visibility` reaches a repository (GitHub: `private` means
/// private and internal repositories only).
pub fn org_item_reaches(visibility: Option<&str>, private: bool, selected: bool) -> bool {
    match visibility {
        Some("all") => true,
        Some("private") => private,
        Some("selected") => selected,
        _ => false,
    }
}

/// One line per workflow: every secret and variable its job reads, visible where the job runs. A job
/// without `environment:` cannot see an environment's secrets ("Using secrets in GitHub Actions").
pub fn secrets(settings: &Settings) -> Vec<Check> {
    READS
        .iter()
        .map(|reads| {
            let name = format!("settings for {}", reads.workflow);
            let mut fails = Vec::new();
            let mut warns = Vec::new();
            for (kind, item, need) in reads.items {
                let (visible, found) = settings.visible_to(*kind, item, reads.environment);
                if visible || *need == Need::Optional {
                    continue;
                }
                let what = match kind {
                    Kind::Secret => format!("secret {item}"),
                    Kind::Variable => format!("variable {item}"),
                };
                let text = match found.filter(|w| !w.environments.is_empty()) {
                    Some(w) => format!(
                        "{what} is only in environment {}, which this job does not run in",
                        w.environments.join(", ")
                    ),
                    None => format!("{what} is not set"),
                };
                if *need == Need::Required {
                    fails.push(text);
                } else {
                    warns.push(text);
                }
            }
            let place = match reads.environment {
                Some(e) => format!("the repository, the organization or the environment {e}"),
                None => "the repository or the organization (this job has no environment)".into(),
            };
            let fix = format!("set them in {place}");
            if !fails.is_empty() {
                fails.extend(warns);
                Check::fail(name, fails.join("; "), &fix)
            } else if !warns.is_empty() {
                Check::warn(name, warns.join("; "), &fix)
            } else {
                Check::ok(
                    name,
                    "every required secret and variable is visible to the job",
                )
            }
        })
        .collect()
}

// ---- text ---------------------------------------------------------------------------------------

/// `90 s`, `45 min`, `5 h`, `12 d`.
pub fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The table: one line per check, its fix under it.
pub fn render(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let detail = match &c.fix {
                Some(fix) => format!("{} → {fix}", c.detail),
                None => c.detail.clone(),
            };
            vec![c.check.clone(), c.level.label().to_string(), detail]
        })
        .collect();
    let mut out = crate::table::render(&["CHECK", "STATUS", "DETAIL → WHAT TO DO"], &rows);
    let count = |level| checks.iter().filter(|c| c.level == level).count();
    out.push_str(&format!(
        "\n{} ok · {} warn · {} FAIL\n",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(events: &[&str], url: &str, content_type: &str, active: bool) -> OrgHook {
        serde_json::from_value(serde_json::json!({
            "id": 42, "active": active, "events": events,
            "config": { "url": url, "content_type": content_type, "insecure_ssl": "0" }
        }))
        .unwrap()
    }

    fn levels(checks: &[Check]) -> Vec<(String, Level)> {
        checks.iter().map(|c| (c.check.clone(), c.level)).collect()
    }

    #[test]
    fn the_webhook_must_send_json_pushes_to_the_worker() {
        let worker = Some("https://relay.example.workers.dev");
        let good = hook(
            &["push", "pull_request"],
            "https://relay.example.workers.dev/",
            "json",
            true,
        );
        assert!(webhook("Studio", 42, Some(&good), worker)
            .iter()
            .all(|c| c.level == Level::Ok));
        let bad = hook(&["issues"], "https://old.example.com", "form", false);
        let checks = webhook("Studio", 42, Some(&bad), worker);
        assert_eq!(
            levels(&checks),
            [
                ("webhook active".to_string(), Level::Fail),
                ("webhook URL".to_string(), Level::Fail),
                ("webhook content type".to_string(), Level::Fail),
                ("webhook events".to_string(), Level::Fail),
            ]
        );
        let push_only = hook(&["push"], "https://relay.example.workers.dev", "json", true);
        assert_eq!(
            webhook("Studio", 42, Some(&push_only), worker)[3].level,
            Level::Warn,
            "the preview needs pull_request"
        );
        assert_eq!(webhook("Studio", 42, None, worker)[0].level, Level::Fail);
    }

    #[test]
    fn health_reads_the_workers_own_answer() {
        let ok = Ok((
            200,
            r#"{"status":"ok","version":"1.2.0","dry_run":false,"registry":{"entries":9}}"#
                .to_string(),
        ));
        let check = health(&ok, true);
        assert_eq!(check.level, Level::Ok);
        assert!(check.detail.contains("registry of 9"), "{}", check.detail);
        let dry = Ok((
            200,
            r#"{"status":"ok","version":"1","dry_run":true}"#.to_string(),
        ));
        assert_eq!(health(&dry, true).level, Level::Warn);
        let broken = Ok((
            200,
            r#"{"status":"misconfigured","version":"1","problems":["WEBHOOK_SECRET is not set"]}"#
                .to_string(),
        ));
        let check = health(&broken, true);
        assert_eq!(check.level, Level::Fail);
        assert!(check.detail.contains("WEBHOOK_SECRET"));
        assert_eq!(
            health(&Ok((200, "<html>".into())), false).level,
            Level::Fail
        );
        assert_eq!(health(&Err("refused".into()), false).level, Level::Fail);
    }

    #[test]
    fn a_secret_only_in_the_publish_environment_fails_the_jobs_without_it() {
        let mut settings = Settings::default();
        let names = |list: &[&str]| -> Vec<Item> {
            list.iter()
                .map(|n| Item {
                    name: n.to_string(),
                    visibility: None,
                })
                .collect()
        };
        settings.add_repository(
            Variable,
            &names(&["UPM_REGISTRY", "UPM_APP_ID", "GITHUB_ORG", "HOOK_ID"]),
        );
        settings.add_environment(
            Secret,
            "upm-publish",
            &names(&["NPM_TOKEN", "UPM_APP_PRIVATE_KEY"]),
        );
        settings.add_organization(Secret, "DISCORD_WEBHOOK_URL", true);
        settings.add_environment(
            Secret,
            "production",
            &names(&[
                "CLOUDFLARE_API_TOKEN",
                "CLOUDFLARE_ACCOUNT_ID",
                "WEBHOOK_SECRET",
            ]),
        );
        let checks = secrets(&settings);
        let by = |workflow: &str| {
            checks
                .iter()
                .find(|c| c.check.ends_with(workflow))
                .unwrap()
                .clone()
        };
        assert_eq!(by("handle-publish-request.yml").level, Level::Ok);
        let reconcile = by("reconcile.yml");
        assert_eq!(reconcile.level, Level::Fail);
        assert!(
            reconcile
                .detail
                .contains("secret UPM_APP_PRIVATE_KEY is only in environment upm-publish"),
            "{}",
            reconcile.detail
        );
        assert_eq!(by("deliveries-watch.yml").level, Level::Warn);
        assert_eq!(
            by("deploy.yml").level,
            Level::Warn,
            "the App's key is recommended there"
        );
        assert!(!org_item_reaches(Some("private"), false, false));
        assert!(org_item_reaches(Some("private"), true, false));
        assert!(org_item_reaches(Some("selected"), false, true));
    }

    #[test]
    fn permissions_missing_on_the_publish_path_fail_others_warn() {
        let installation = |pairs: &[(&str, &str)]| Installation {
            id: 1,
            repository_selection: Some("all".into()),
            permissions: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let all: Vec<(&str, &str)> = PERMISSIONS.iter().map(|p| (p.name, p.level)).collect();
        assert_eq!(
            app_permissions("Studio", Some(&installation(&all)), true).level,
            Level::Ok
        );
        let mut no_checks = all.clone();
        no_checks.retain(|(name, _)| *name != "checks");
        assert_eq!(
            app_permissions("Studio", Some(&installation(&no_checks)), true).level,
            Level::Warn
        );
        let mut read_only = all.clone();
        read_only[0] = ("contents", "read");
        let check = app_permissions("Studio", Some(&installation(&read_only)), true);
        assert_eq!(check.level, Level::Fail);
        assert!(check.detail.starts_with("contents: write missing"));
        assert_eq!(app_permissions("Studio", None, true).level, Level::Fail);
        assert_eq!(app_permissions("Studio", None, false).level, Level::Warn);
    }

    #[test]
    fn runners_for_the_publish_labels() {
        let runner = |status: &str, labels: &[&str]| Runner {
            name: "r".into(),
            status: status.into(),
            busy: false,
            labels: labels
                .iter()
                .map(|l| watchdog::RunnerLabel {
                    name: l.to_string(),
                })
                .collect(),
        };
        assert_eq!(runners(None, &Ok(Vec::new())).level, Level::Ok);
        assert_eq!(
            runners(Some("ubuntu-latest"), &Ok(Vec::new())).level,
            Level::Fail
        );
        assert_eq!(
            runners(Some("\"ubuntu-24.04\""), &Ok(Vec::new())).level,
            Level::Ok
        );
        let labels = Some(r#"["self-hosted","linux"]"#);
        let dead = Ok(vec![runner("offline", &["self-hosted", "linux"])]);
        assert_eq!(runners(labels, &dead).level, Level::Fail);
        let alive = Ok(vec![runner("online", &["self-hosted", "Linux", "x64"])]);
        assert_eq!(runners(labels, &alive).level, Level::Ok);
        assert_eq!(runners(labels, &Err("403".into())).level, Level::Warn);

        let wanted = self_hosted_labels(labels).unwrap();
        assert_eq!(self_hosted_labels(Some("\"ubuntu-24.04\"")), None);
        let group = |public: bool, restricted: bool, workflows: &[&str]| Group {
            name: "Builders".into(),
            allows_public_repositories: public,
            restricted_to_workflows: restricted,
            selected_workflows: workflows.iter().map(|w| w.to_string()).collect(),
            runners: vec![runner("online", &["self-hosted", "linux"])],
        };
        let central = "Studio/Central";
        let check = |groups: Vec<Group>, private: bool| {
            runner_groups(&wanted, &[], &Ok(groups), central, private)
        };
        assert_eq!(check(vec![group(true, false, &[])], false).level, Level::Ok);
        let public = check(vec![group(false, false, &[])], false);
        assert_eq!(public.level, Level::Fail);
        assert!(public.detail.contains("does not allow public repositories"));
        assert_eq!(check(vec![group(false, false, &[])], true).level, Level::Ok);
        let elsewhere = ["Studio/Other/.github/workflows/build.yml@main"];
        assert_eq!(
            check(vec![group(true, true, &elsewhere)], false).level,
            Level::Fail
        );
        let ours =
            ["studio/central/.github/workflows/handle-publish-request.yml@refs/heads/master"];
        assert_eq!(
            check(vec![group(true, true, &ours)], false).level,
            Level::Ok
        );
        assert_eq!(check(Vec::new(), false).level, Level::Fail);
        let own = [runner("online", &["self-hosted", "linux"])];
        assert_eq!(
            runner_groups(&wanted, &own, &Err("403".into()), central, false).level,
            Level::Ok
        );
    }

    #[test]
    fn schedules_activity_and_the_exit_code() {
        let now = 1_800_000_000;
        let run = |age: i64| Run {
            id: 1,
            display_title: String::new(),
            status: Some("completed".into()),
            conclusion: Some("success".into()),
            event: "schedule".into(),
            created_at: upm_github::deliveries::format_rfc3339_utc(now - age),
            head_sha: String::new(),
        };
        assert_eq!(
            schedule("reconcile.yml", 7200, Some(&run(1800)), now).level,
            Level::Ok
        );
        let silent = schedule("reconcile.yml", 7200, Some(&run(3 * 3600)), now);
        assert_eq!(silent.level, Level::Fail);
        assert!(silent.detail.contains("3 h ago"), "{}", silent.detail);
        assert_eq!(
            schedule("reconcile.yml", 7200, None, now).level,
            Level::Warn
        );
        assert_eq!(
            activity(false, Some(now - 55 * 86_400), now).unwrap().level,
            Level::Warn
        );
        assert_eq!(
            activity(false, Some(now - 5 * 86_400), now).unwrap().level,
            Level::Ok
        );
        assert!(activity(true, Some(now - 90 * 86_400), now).is_none());
        let checks = vec![Check::ok("a", "x"), Check::warn("b", "y", "z")];
        assert_eq!(exit_code(&checks), 0);
        let mut failing = checks;
        failing.push(Check::fail("c", "d", "e"));
        assert_eq!(exit_code(&failing), 1);
        assert!(render(&failing).contains("1 ok · 1 warn · 1 FAIL"));
    }

    #[test]
    fn registry_discord_and_dispatchers() {
        let url = Some("https://npm.example");
        assert_eq!(registry(None, &Ok(200), None)[0].level, Level::Fail);
        assert_eq!(
            registry(url, &Err("refused".into()), None)[0].level,
            Level::Fail
        );
        let refused = Ok((401, String::new()));
        let anonymous = Ok((200, "{}".to_string()));
        assert_eq!(
            registry(url, &Ok(200), Some(&anonymous))[1].level,
            Level::Fail
        );
        let checks = registry(url, &Ok(200), Some(&refused));
        assert_eq!(
            levels(&checks)[1],
            ("publish token".to_string(), Level::Fail)
        );
        let accepted = Ok((200, r#"{"username":"ci"}"#.to_string()));
        assert!(registry(url, &Ok(200), Some(&accepted))[1]
            .detail
            .contains("as ci"));
        assert_eq!(discord(Some(&Ok(404))).level, Level::Fail);
        assert_eq!(discord(Some(&Ok(200))).level, Level::Ok);
        assert_eq!(discord(None).level, Level::Warn);
        let left = dispatchers(
            &[
                ("Studio/A".into(), vec![]),
                (
                    "Studio/B".into(),
                    vec![".github/workflows/upm-publish-dispatcher.yml".into()],
                ),
            ],
            2,
        );
        assert_eq!(
            levels(&left),
            [("dispatchers left".to_string(), Level::Warn)]
        );
        assert!(left[0].detail.starts_with("Studio/B"));
    }
}

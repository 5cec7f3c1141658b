//! `upm doctor`: the pre-flight. It asks the worker, GitHub, the registry and Discord what a deployment
//! depends on and prints one table (`doctor` judges each answer). Read-only: it changes nothing.
//!
//! Cost in GitHub requests, for a central repository and R active registered repositories: about 20
//! fixed (repository, branch, commits, workflows, 3 schedules, binary builds, variable, runners ×2,
//! hook, deliveries, installation, 2 listings each of repository/environment/organization secrets and
//! variables), plus per repository 1 installation lookup (with the App) and 2 dispatcher-file reads.

use serde::Serialize;
use upm_github::client::now_unix;
use upm_github::settings::Item;
use upm_relay::watchdog::{self, Run, Runner, Workflow};

use crate::doctor::{self, Check, Kind, Settings};
use crate::migration::DISPATCHER_FILES;
use crate::{delivery_stats, Context};

pub struct Options {
    pub worker_url: Option<String>,
    pub health_token: Option<String>,
    pub registry: Option<String>,
    pub npm_token: Option<String>,
    pub discord_webhook: Option<String>,
}

#[derive(Serialize)]
struct Report {
    checks: Vec<Check>,
    github_requests: u64,
}

pub fn run(context: &Context, options: &Options) -> Result<u8, String> {
    let agent = crate::http_agent(15);
    let mut checks = Vec::new();

    match &options.worker_url {
        Some(url) => {
            let health = format!("{}/health", url.trim_end_matches('/'));
            let mut request = agent.get(&health);
            if let Some(token) = &options.health_token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let answer = request.call().map_err(|e| e.to_string()).map(|mut r| {
                let status = r.status().as_u16();
                (status, r.body_mut().read_to_string().unwrap_or_default())
            });
            checks.push(doctor::health(&answer, options.health_token.is_some()));
        }
        None => checks.push(Check::warn(
            "worker /health",
            "the worker's URL is unknown: not checked",
            "pass --worker-url (or WORKER_URL)",
        )),
    }

    github_checks(context, options, &mut checks);

    let registry = options
        .registry
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string());
    let ping = match &registry {
        Some(url) => agent
            .get(&format!("{url}/-/ping"))
            .call()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string()),
        None => Err("unknown".into()),
    };
    let whoami = match (&registry, &options.npm_token) {
        (Some(url), Some(token)) if ping == Ok(200) => Some(
            agent
                .get(&format!("{url}/-/whoami"))
                .header("Authorization", &format!("Bearer {token}"))
                .call()
                .map(|mut r| {
                    let status = r.status().as_u16();
                    (status, r.body_mut().read_to_string().unwrap_or_default())
                })
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    checks.extend(doctor::registry(
        registry.as_deref(),
        &ping,
        whoami.as_ref(),
    ));

    // Discord answers GET on a webhook URL with the webhook itself, without posting anything.
    let discord = options.discord_webhook.as_ref().map(|url| {
        agent
            .get(url)
            .call()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });
    checks.push(doctor::discord(discord.as_ref()));

    let report = Report {
        github_requests: context.github.stats().requests,
        checks,
    };
    context.print(&report, || {
        format!(
            "{}{} GitHub requests\n",
            doctor::render(&report.checks),
            report.github_requests
        )
    });
    Ok(doctor::exit_code(&report.checks))
}

/// Everything asked of GitHub. The first answer decides whether GitHub is reachable at all: offline,
/// one line says so instead of one error per check.
fn github_checks(context: &Context, options: &Options, checks: &mut Vec<Check>) {
    let github = &context.github;
    let central = context.central.as_str();
    let owner = central.split('/').next().unwrap_or(central).to_string();
    let now = now_unix();
    let repository = match github.repository(central) {
        Ok(repository) => repository,
        Err(upm_github::Error::Transport { detail, .. }) => {
            checks.push(Check::fail(
                "GitHub",
                format!("cannot be reached at {} ({detail})", github.api()),
                "check the network (and GITHUB_API); the GitHub checks were skipped",
            ));
            return;
        }
        Err(e) => {
            checks.push(Check::fail(
                "central repository",
                format!("{central}: {e}"),
                "check DISPATCH_REPO (--central) and the credentials",
            ));
            return;
        }
    };
    let branch = repository.default_branch.clone();
    checks.push(Check::ok("default branch", format!("{central}: {branch}")));
    let head = match github.branch(central, &branch) {
        Ok(Some(found)) => Some(found.commit.sha),
        Ok(None) => None,
        Err(e) => {
            checks.push(Check::warn("default branch", e.to_string(), "run again"));
            None
        }
    };

    let workflows_path = format!("/repos/{central}/actions/workflows?per_page=100");
    match github.get_all::<Workflow>(&workflows_path, Some("workflows"), 500) {
        Ok(listed) => checks.extend(doctor::workflows(&branch, &listed)),
        Err(e) => checks.push(Check::warn(
            "workflows",
            format!("not listed: {e}"),
            "grant Actions: read",
        )),
    }
    for (file, bound) in doctor::SCHEDULES {
        let path = format!("/repos/{central}/actions/workflows/{file}/runs?per_page=1");
        match github.get_all::<Run>(&path, Some("workflow_runs"), 1) {
            Ok(runs) => checks.push(doctor::schedule(file, bound, runs.first(), now)),
            Err(e) if e.is_not_found() => {}
            Err(e) => checks.push(Check::warn(
                format!("schedule {file}"),
                e.to_string(),
                "grant Actions: read",
            )),
        }
    }
    if let Ok(commits) = github.commits(central, &branch, None, None, 1) {
        let last = commits
            .first()
            .and_then(|c| c.commit.committer.as_ref())
            .and_then(|p| p.date.as_deref())
            .and_then(upm_github::deliveries::parse_rfc3339_utc);
        checks.extend(doctor::activity(repository.private, last, now));
    }
    if let Some(head) = &head {
        let path = format!(
            "/repos/{central}/actions/workflows/{}/runs?head_sha={head}&per_page=20",
            watchdog::BINARY_WORKFLOW
        );
        match github.get_all::<Run>(&path, Some("workflow_runs"), 20) {
            Ok(runs) => checks.push(doctor::binary(head, &runs, now)),
            Err(e) => checks.push(Check::warn(
                "publisher binary",
                e.to_string(),
                "grant Actions: read",
            )),
        }
    }

    let publish_runner = github
        .repo_variable(central, "PUBLISH_RUNNER")
        .ok()
        .flatten();
    if let Some(labels) = doctor::self_hosted_labels(publish_runner.as_deref()) {
        let listed = |path: &str| {
            github
                .get_all::<Runner>(path, Some("runners"), 1_000)
                .map_err(|e| e.to_string())
        };
        let repo_runners = listed(&format!("/repos/{central}/actions/runners?per_page=100"));
        let org_runners = listed(&format!("/orgs/{owner}/actions/runners?per_page=100"));
        let all = match (&repo_runners, &org_runners) {
            (Ok(a), Ok(b)) => Ok(a.iter().chain(b).cloned().collect()),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let runners = doctor::runners(publish_runner.as_deref(), &all);
        let alive = runners.level == doctor::Level::Ok;
        checks.push(runners);
        // Only when a runner with the labels is online: is it one GitHub would give the job to?
        if alive {
            let name = central.split('/').nth(1).unwrap_or(central);
            let groups = github
                .runner_groups_for(&owner, name)
                .map_err(|e| e.to_string())
                .and_then(|groups| {
                    groups
                        .into_iter()
                        .map(|g| {
                            let path = format!(
                                "/orgs/{owner}/actions/runner-groups/{}/runners?per_page=100",
                                g.id
                            );
                            Ok(doctor::Group {
                                runners: listed(&path)?,
                                name: g.name,
                                allows_public_repositories: g.allows_public_repositories,
                                restricted_to_workflows: g.restricted_to_workflows,
                                selected_workflows: g.selected_workflows,
                            })
                        })
                        .collect()
                });
            checks.push(doctor::runner_groups(
                &labels,
                repo_runners.as_deref().unwrap_or(&[]),
                &groups,
                central,
                repository.private,
            ));
        }
    } else {
        checks.push(doctor::runners(publish_runner.as_deref(), &Ok(Vec::new())));
    }

    match context.hook() {
        Ok((org, hook_id)) => {
            match github.org_hook(org, hook_id) {
                Ok(hook) => checks.extend(doctor::webhook(
                    org,
                    hook_id,
                    hook.as_ref(),
                    options.worker_url.as_deref(),
                )),
                Err(e) => checks.push(Check::warn(
                    "webhook",
                    format!("not readable: {e}"),
                    "run with an organization owner's token or an App with Webhooks: read",
                )),
            }
            match github.hook_deliveries(org, hook_id, now - 86_400, 5_000) {
                Ok(deliveries) => {
                    let stats =
                        delivery_stats::compute(&deliveries, now - 86_400, |_| String::new());
                    checks.push(doctor::deliveries(
                        stats.success_rate,
                        stats.deliveries,
                        stats.still_failed,
                    ));
                }
                Err(e) => checks.push(Check::warn(
                    "recent deliveries",
                    format!("not readable: {e}"),
                    "grant Webhooks: read",
                )),
            }
        }
        Err(e) => checks.push(Check::fail(
            "webhook",
            e,
            "set GITHUB_ORG and HOOK_ID (the number in the webhook's settings URL)",
        )),
    }

    let app = matches!(github.credentials(), upm_github::Credentials::App(_));
    let org = context.org.clone().unwrap_or_else(|| owner.clone());
    let installation = github.org_installation(&org).ok().flatten();
    checks.push(doctor::app_permissions(&org, installation.as_ref(), app));
    let active: Vec<(String, String)> = match context.read_registry() {
        Ok(file) => file
            .list()
            .into_iter()
            .filter(|entry| entry.status == "active")
            .map(|entry| {
                let branch = entry.branch.unwrap_or_default();
                (entry.repository, branch)
            })
            .collect(),
        Err(e) => {
            checks.push(Check::fail(
                "registry file",
                e,
                "run from the central repository's checkout, or pass --registry-file",
            ));
            Vec::new()
        }
    };
    if app {
        let reached: Vec<(String, Result<bool, String>)> = active
            .iter()
            .map(|(repository, _)| {
                let answer = github
                    .repo_installation(repository)
                    .map(|found| found.is_some())
                    .map_err(|e| e.to_string());
                (repository.clone(), answer)
            })
            .collect();
        checks.extend(doctor::app_reach(&reached, true));
    }
    let found: Vec<(String, Vec<String>)> = active
        .iter()
        .map(|(repository, branch)| {
            let reference = (!branch.is_empty()).then_some(branch.as_str());
            let files = DISPATCHER_FILES
                .iter()
                .filter(|path| matches!(github.file(repository, path, reference), Ok(Some(_))))
                .map(|path| path.to_string())
                .collect();
            (repository.clone(), files)
        })
        .collect();
    checks.extend(doctor::dispatchers(&found, active.len()));

    match settings(context, &owner, repository.private) {
        Ok(settings) => checks.extend(doctor::secrets(&settings)),
        Err(e) => checks.push(Check::warn(
            "secrets and variables",
            format!("not readable: {e}"),
            "run with an App or token allowed Secrets: read and Variables: read (repository and organization)",
        )),
    }
}

/// The names of every secret and variable the central repository's jobs can see, and where.
fn settings(context: &Context, owner: &str, private: bool) -> Result<Settings, String> {
    let github = &context.github;
    let central = context.central.as_str();
    let mut settings = Settings::default();
    let environments: Vec<&str> = {
        let mut names: Vec<&str> = doctor::READS.iter().filter_map(|r| r.environment).collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    for (kind, listing) in [(Kind::Secret, "secrets"), (Kind::Variable, "variables")] {
        let items: Vec<Item> = github
            .repo_items(central, listing)
            .map_err(|e| e.to_string())?;
        settings.add_repository(kind, &items);
        for environment in &environments {
            if let Some(items) = github
                .environment_items(central, environment, listing)
                .map_err(|e| e.to_string())?
            {
                settings.add_environment(kind, environment, &items);
            }
        }
        // An organization item reaches the repository by its visibility; `selected` ones are asked.
        match github.org_items(owner, listing) {
            Ok(items) => {
                for item in items {
                    let selected = item.visibility.as_deref() == Some("selected")
                        && github
                            .org_item_repositories(owner, listing, &item.name)
                            .map(|list| list.iter().any(|r| r.eq_ignore_ascii_case(central)))
                            .unwrap_or(false);
                    let reaches =
                        doctor::org_item_reaches(item.visibility.as_deref(), private, selected);
                    settings.add_organization(kind, &item.name, reaches);
                }
            }
            // A user account has no organization secrets.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(settings)
}

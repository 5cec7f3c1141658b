//! `upm slo`: gathers one [`PushRecord`] per push delivery from GitHub's records and the registry, keeps
//! them in a history file (GitHub's delivery log forgets after 3 days; a 7-day report needs what
//! earlier runs saw), and hands them to [`crate::slo`]. With `--alert`, posts the transitions of the
//! alert window to Discord, once per breach and once on recovery, remembering what it announced in
//! `--alert-state`.
//!
//! Cost (GitHub requests): the hook's delivery list (one page per 100 deliveries of the last 3 days),
//! one repository read per registered repository, the central runs of the last 3 days (one page per
//! 100 runs), and per push of a registered repository that touched a package.json on its publishing
//! branch: one delivery detail and one contents read per package.json. All are conditional GETs: with
//! the ETag cache, a delivery or file already read is a 304.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use upm_github::client::now_unix;
use upm_github::deliveries::HookDelivery;

use crate::cmd_trace::{github_error, is_manifest_path, runs_between, upm_manifest, PushPayload};
use crate::npm::{self, Registry};
use crate::slo::{self, BumpRecord, PushRecord, Targets};
use crate::trace::DELIVERY_LOG_SECS;
use crate::{discord, parse_window, Context};

/// How long the history keeps a push (a 30-day report is the longest anyone asked for).
const HISTORY_SECS: i64 = 35 * 86_400;
/// A version already on the registry this long before the push was not published by it.
const SAME_PUSH_SLACK_SECS: i64 = 60;

pub struct Options {
    pub since: String,
    pub registry: Option<String>,
    pub history: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    pub alert: bool,
    pub alert_window: String,
    pub alert_state: Option<PathBuf>,
    pub targets: Targets,
    /// Judge as of this Unix time instead of now: a report of the past, reproducible.
    pub as_of: Option<i64>,
}

#[derive(Serialize, Deserialize, Default)]
struct History {
    records: Vec<PushRecord>,
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn registry_version(registry: &mut Registry, package: &str) -> Result<npm::Version, String> {
    let (name, version) = package
        .rsplit_once('@')
        .ok_or_else(|| format!("{package}: not name@version"))?;
    match registry.version(name, version) {
        npm::Version::Unknown(e) => Err(e),
        other => Ok(other),
    }
}

pub fn run(context: &Context, options: &Options) -> Result<u8, String> {
    let window = parse_window(&options.since)?;
    let alert_window = parse_window(&options.alert_window)?;
    let Some(registry_url) = options.registry.as_deref().filter(|u| !u.trim().is_empty()) else {
        eprintln!("upm: the registry is unknown: give --registry URL or set UPM_REGISTRY");
        return Ok(2);
    };
    let (org, hook) = context.hook()?;
    let now = options.as_of.unwrap_or_else(now_unix);
    let log_from = now - window.max(alert_window).min(DELIVERY_LOG_SECS);
    let mut registry = Registry::new(registry_url);

    let deliveries: Vec<HookDelivery> = context
        .github
        .hook_deliveries(org, hook, log_from, 10_000)
        .map_err(|e| github_error(context, e))?
        .into_iter()
        .filter(|d| d.event == "push")
        .collect();
    // Registered repositories: id → (name, publishing branch).
    let mut repos: HashMap<u64, (String, String)> = HashMap::new();
    for entry in context.read_registry()?.list() {
        match context.github.repository(&entry.repository) {
            Ok(repo) => {
                let branch = entry.branch.clone().unwrap_or(repo.default_branch);
                repos.insert(repo.id, (repo.full_name, branch));
            }
            Err(e @ upm_github::Error::Transport { .. }) => return Err(github_error(context, e)),
            Err(e) => context.progress(&format!("warning: {}: {e}", entry.repository)),
        }
    }
    // Central runs by the delivery their run-name carries.
    // Whole UTC days: the hourly watch then asks the same listing all day, which GitHub answers 304
    // (free) while no run was added; the records are cut to the window below.
    let runs = runs_between(
        context,
        (log_from - 60).div_euclid(86_400) * 86_400,
        (now + 60).div_euclid(86_400) * 86_400 + 86_399,
        0,
    )?;
    let mut run_created: HashMap<String, i64> = HashMap::new();
    for run in &runs {
        if let Some((_, d)) = run.display_title.rsplit_once("(delivery ") {
            let guid = d.trim_end_matches(')').trim().to_string();
            if let Some(t) = upm_github::deliveries::parse_rfc3339_utc(&run.created_at) {
                let entry = run_created.entry(guid).or_insert(t);
                *entry = (*entry).min(t);
            }
        }
    }

    let mut by_guid: BTreeMap<String, Vec<&HookDelivery>> = BTreeMap::new();
    for d in &deliveries {
        by_guid.entry(d.guid.clone()).or_default().push(d);
    }
    let mut fresh = Vec::new();
    for (guid, mut attempts) in by_guid {
        attempts.sort_by_key(|d| (d.delivered_at_unix(), d.id));
        let first = attempts[0];
        let Some(pushed_at) = first.delivered_at_unix() else {
            continue;
        };
        let known = first.repository_id.and_then(|id| repos.get(&id));
        let repository = match (known, first.repository_id) {
            (Some((name, _)), _) => name.clone(),
            (None, Some(id)) => format!("#{id}"),
            (None, None) => "(no repository)".into(),
        };
        let mut record = PushRecord {
            guid: guid.clone(),
            repository,
            sha: String::new(),
            pushed_at,
            first_ok: first.succeeded(),
            run_created_at: run_created.get(&guid).copied(),
            bumps: Vec::new(),
        };
        if let Some((name, branch)) = known {
            let detail = context
                .github
                .hook_delivery(org, hook, first.id)
                .map_err(|e| github_error(context, e))?;
            let payload: PushPayload =
                serde_json::from_value(detail.request.payload).unwrap_or_default();
            record.sha = payload.after.clone();
            let mut paths: Vec<&String> = payload
                .commits
                .iter()
                .flat_map(|c| c.added.iter().chain(&c.modified))
                .filter(|p| is_manifest_path(p))
                .collect();
            paths.sort();
            paths.dedup();
            if payload.ref_name == format!("refs/heads/{branch}") && payload.after.len() == 40 {
                for path in paths {
                    let file = context
                        .github
                        .file(name, path, Some(&payload.after))
                        .map_err(|e| github_error(context, e))?;
                    let Some((package, version)) = file.and_then(|f| upm_manifest(&f.content))
                    else {
                        continue;
                    };
                    let id = format!("{package}@{version}");
                    let published_at = match registry_version(&mut registry, &id)? {
                        npm::Version::Published { at: Some(at) } => {
                            if at < pushed_at - SAME_PUSH_SLACK_SECS {
                                continue; // already published before this push: not its bump
                            }
                            Some(at)
                        }
                        // On the registry without a time: published, but no latency to measure.
                        npm::Version::Published { at: None } => continue,
                        _ => None,
                    };
                    record.bumps.push(BumpRecord {
                        package: id,
                        published_at,
                    });
                }
            }
        }
        fresh.push(record);
    }

    // The history: what earlier runs saw, its still-missing bumps asked again (the registry remembers
    // longer than GitHub's delivery log).
    let mut records = fresh;
    if let Some(path) = &options.history {
        let mut history: History = read_json(path)?;
        for record in &mut history.records {
            for bump in record.bumps.iter_mut().filter(|b| b.published_at.is_none()) {
                if let npm::Version::Published { at } =
                    registry_version(&mut registry, &bump.package)?
                {
                    bump.published_at = at.or(Some(now));
                }
            }
        }
        records = slo::merge_history(history.records, records, now - HISTORY_SECS);
        write_json(
            path,
            &History {
                records: records.clone(),
            },
        )?;
    }

    let report = slo::compute(&records, now - window, now, &options.targets);
    if options.history.is_none() && window > DELIVERY_LOG_SECS {
        context.progress(
            "note: GitHub keeps 3 days of deliveries; keep --history between runs to measure a longer window",
        );
    }
    #[derive(Serialize)]
    struct Output<'a> {
        #[serde(flatten)]
        report: &'a slo::Report,
        github_requests: u64,
        github_not_modified: u64,
        registry_requests: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        alert: Option<String>,
    }
    let mut code = 0;
    let mut alert = None;
    if options.alert {
        let judged = slo::compute(&records, now - alert_window, now, &options.targets);
        if !judged.breaches.is_empty() {
            code = 1;
        }
        let state_path = options
            .alert_state
            .as_deref()
            .ok_or("--alert needs --alert-state FILE: the breaches already announced")?;
        let previous: slo::AlertState = read_json(state_path)?;
        let transitions = slo::transitions(&previous, &judged.breaches, now);
        let outcome = match slo::alert_message(&transitions, &options.alert_window) {
            None => "nothing new to announce".to_string(),
            Some(message) => match discord::post(&message) {
                Ok(()) => format!(
                    "sent ({} new, {} recovered)",
                    transitions.new.len(),
                    transitions.recovered.len()
                ),
                Err(e) => {
                    code = 1;
                    format!("NOT sent, will be tried again next run: {e}")
                }
            },
        };
        // The state moves only once the message went out, so a failed post is tried again.
        if !outcome.starts_with("NOT") {
            write_json(state_path, &transitions.state)?;
        }
        alert = Some(outcome);
    }
    let stats = context.github.stats();
    let output = Output {
        report: &report,
        github_requests: stats.requests,
        github_not_modified: stats.not_modified,
        registry_requests: registry.requests,
        alert: alert.clone(),
    };
    context.print(&output, || {
        let mut text = slo::render(&report);
        if let Some(a) = &alert {
            text.push_str(&format!("alert (last {}): {a}\n", options.alert_window));
        }
        text
    });
    if let Some(path) = &options.summary {
        let text = format!(
            "## Publishing SLO (last {})\n\n```\n{}```\n\n{}",
            options.since,
            slo::render(&report),
            slo::mermaid(&report)
        );
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = appended {
            context.progress(&format!("warning: the summary was not written: {e}"));
        }
    }
    context.progress(&format!(
        "GitHub requests: {} ({} answered 304 from the ETag cache); registry requests: {}",
        stats.requests, stats.not_modified, registry.requests
    ));
    Ok(code)
}

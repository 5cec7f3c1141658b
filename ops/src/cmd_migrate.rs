//! `upm migrate …`: check, remove-dispatchers (batched, resumable), restore-dispatchers (rollback).
//!
//! Resumable without a state file: progress lives in GitHub itself. Each step looks before it acts —
//! the fixed branch exists already? a file is already deleted on it? an open pull request from it
//! exists? — so a run interrupted anywhere (a 5xx, a rate limit, Ctrl-C) continues where it stopped
//! when run again, and a finished repository is reported as done, not changed twice.

use serde::Serialize;
use upm_github::api::{AutoMerge, NewPullRequest};
use upm_github::client::now_unix;
use upm_github::deliveries::{format_rfc3339_utc, group_by_guid};
use upm_github::GitHub;

use crate::migration::{self, Check, Facts};
use crate::registry_file::Listed;
use crate::{parse_repo, parse_window, table, Context};

/// Facts for several repositories, reading the shared lists (deliveries, central runs) once.
fn gather(context: &Context, repositories: &[String], since: &str) -> Result<Vec<Check>, String> {
    let window = parse_window(since)?;
    let since_unix = now_unix() - window;
    let registry = context.read_registry()?;
    let listed = registry.list();
    let deliveries = match context.hook() {
        Ok((org, hook)) => Ok(context
            .github
            .hook_deliveries(org, hook, since_unix, 10_000)
            .map_err(|e| e.to_string())?),
        Err(e) => Err(e),
    };
    let runs = context
        .github
        .workflow_runs(
            context.central.as_str(),
            migration::PUBLISH_WORKFLOW,
            &format_rfc3339_utc(since_unix),
            1000,
        )
        .map_err(|e| format!("{}: publish runs: {e}", context.central))?;
    let mut checks = Vec::new();
    for (index, name) in repositories.iter().enumerate() {
        context.progress_step(index, repositories.len(), &format!("checking {name}"));
        let repository = parse_repo(name)?;
        let entry = listed
            .iter()
            .find(|l| parse_repo(&l.repository).ok().as_ref() == Some(&repository));
        let mut facts = Facts {
            repository: entry.map_or(repository.to_string(), |e| e.repository.clone()),
            registered: entry.map(|e| e.status.to_string()),
            ..Facts::default()
        };
        match context.github.repository(repository.as_str()) {
            Ok(repo) => {
                facts.repository = repo.full_name.clone();
                let branch = entry
                    .and_then(|e| e.branch.clone())
                    .unwrap_or(repo.default_branch.clone());
                match &deliveries {
                    Ok(deliveries) => {
                        let own: Vec<_> = deliveries
                            .iter()
                            .filter(|d| d.event == "push" && (d.repository_id == Some(repo.id)))
                            .cloned()
                            .collect();
                        facts.last_ok_push_delivery = own
                            .iter()
                            .filter(|d| d.succeeded())
                            .map(|d| d.delivered_at.clone())
                            .max();
                        facts.failed_push_deliveries = group_by_guid(&own)
                            .values()
                            .filter(|attempts| !attempts.iter().any(|d| d.succeeded()))
                            .count();
                    }
                    Err(e) => facts.errors.push(e.clone()),
                }
                let needle = repo.full_name.to_ascii_lowercase();
                facts.last_central_run = runs
                    .iter()
                    .filter(|r| r.display_title.to_ascii_lowercase().contains(&needle))
                    .map(|r| r.created_at.clone())
                    .max();
                for path in migration::DISPATCHER_FILES {
                    match context.github.file(&repo.full_name, path, Some(&branch)) {
                        Ok(Some(_)) => facts.dispatcher_files.push(path.to_string()),
                        Ok(None) => {}
                        Err(e) => facts.errors.push(e.to_string()),
                    }
                }
            }
            Err(e) => facts.errors.push(e.to_string()),
        }
        checks.push(migration::evaluate(facts));
    }
    Ok(checks)
}

fn check_rows(checks: &[Check]) -> Vec<Vec<String>> {
    checks
        .iter()
        .map(|c| {
            vec![
                c.facts.repository.clone(),
                c.facts.registered.clone().unwrap_or_else(|| "no".into()),
                c.facts
                    .last_ok_push_delivery
                    .clone()
                    .unwrap_or_else(|| "none".into()),
                c.facts
                    .last_central_run
                    .clone()
                    .unwrap_or_else(|| "none".into()),
                if c.facts.dispatcher_files.is_empty() {
                    "none".into()
                } else {
                    c.facts
                        .dispatcher_files
                        .iter()
                        .map(|f| f.rsplit('/').next().unwrap_or(f).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                if c.passed {
                    "PASS".into()
                } else {
                    format!("FAIL: {}", c.problems.join("; "))
                },
            ]
        })
        .collect()
}

const CHECK_HEADER: [&str; 6] = [
    "REPOSITORY",
    "REGISTERED",
    "LAST OK DELIVERY",
    "LAST CENTRAL RUN",
    "DISPATCHERS",
    "RESULT",
];

pub fn check(context: &Context, repositories: &[String], since: &str) -> Result<u8, String> {
    let checks = gather(context, repositories, since)?;
    let failed = checks.iter().filter(|c| !c.passed).count();
    context.print(&checks, || {
        format!(
            "{}{} of {} ready for the dispatcher removal (window {since})\n",
            table::render(&CHECK_HEADER, &check_rows(&checks)),
            checks.len() - failed,
            checks.len()
        )
    });
    Ok(if failed == 0 { 0 } else { 1 })
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub repository: String,
    /// `skipped`, `done`, `planned`, `changed`, `next-batch`, `error`.
    pub result: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_merge: Option<AutoMerge>,
}

fn outcome(repository: &str, result: &str, detail: impl Into<String>) -> Outcome {
    Outcome {
        repository: repository.to_string(),
        result: result.into(),
        detail: detail.into(),
        pull_request: None,
        auto_merge: None,
    }
}

fn targets(context: &Context, only: &[String]) -> Result<Vec<Listed>, String> {
    let listed = context.read_registry()?.list();
    if only.is_empty() {
        return Ok(listed
            .into_iter()
            .filter(|l| l.status == "active")
            .collect());
    }
    only.iter()
        .map(|name| {
            let wanted = parse_repo(name)?;
            listed
                .iter()
                .find(|l| parse_repo(&l.repository).ok().as_ref() == Some(&wanted))
                .cloned()
                .ok_or_else(|| format!("{name} is not registered"))
        })
        .collect()
}

fn print_outcomes(context: &Context, outcomes: &[Outcome], apply: bool, title: &str) {
    context.print(&outcomes, || {
        let rows: Vec<Vec<String>> = outcomes
            .iter()
            .map(|o| {
                let mut detail = o.detail.clone();
                if let Some(pr) = &o.pull_request {
                    detail = format!("{detail} {pr}").trim().to_string();
                }
                match &o.auto_merge {
                    Some(AutoMerge::Enabled) => detail.push_str("; auto-merge on"),
                    Some(AutoMerge::Refused(why)) => {
                        detail.push_str(&format!("; auto-merge refused: {why}"))
                    }
                    None => {}
                }
                vec![o.repository.clone(), o.result.clone(), detail]
            })
            .collect();
        let mode = if apply {
            ""
        } else {
            " (dry run: nothing changed; --apply to do it)"
        };
        format!(
            "{title}{mode}\n{}",
            table::render(&["REPOSITORY", "RESULT", "DETAIL"], &rows)
        )
    });
}

fn exit_code(outcomes: &[Outcome]) -> u8 {
    if outcomes.iter().any(|o| o.result == "error") {
        1
    } else {
        0
    }
}

pub fn remove_dispatchers(
    context: &Context,
    batch: usize,
    only: &[String],
    since: &str,
    set_note: bool,
    apply: bool,
) -> Result<u8, String> {
    let entries = targets(context, only)?;
    let names: Vec<String> = entries.iter().map(|e| e.repository.clone()).collect();
    let checks = gather(context, &names, since)?;
    let github = &context.github;
    let mut outcomes = Vec::new();
    let mut acted = 0;
    for (entry, check) in entries.iter().zip(checks) {
        let repository = check.facts.repository.clone();
        if check.facts.dispatcher_files.is_empty() && check.facts.errors.is_empty() {
            outcomes.push(outcome(&repository, "done", "no dispatcher workflow left"));
            continue;
        }
        let owner = repository.split('/').next().unwrap_or("");
        match github.open_pulls_from(
            &repository,
            &format!("{owner}:{}", migration::REMOVE_BRANCH),
        ) {
            Ok(pulls) if !pulls.is_empty() => {
                let mut done = outcome(&repository, "done", "pull request already open:");
                done.pull_request = Some(pulls[0].html_url.clone());
                outcomes.push(done);
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                outcomes.push(outcome(&repository, "error", e.to_string()));
                continue;
            }
        }
        if !check.passed {
            outcomes.push(outcome(
                &repository,
                "skipped",
                format!("check failed: {}", check.problems.join("; ")),
            ));
            continue;
        }
        if acted >= batch {
            outcomes.push(outcome(
                &repository,
                "next-batch",
                format!("batch of {batch} reached; run again to continue"),
            ));
            continue;
        }
        acted += 1;
        let files = check.facts.dispatcher_files.clone();
        if !apply {
            outcomes.push(outcome(
                &repository,
                "planned",
                format!(
                    "branch {}, delete {}, open a pull request, enable auto-merge",
                    migration::REMOVE_BRANCH,
                    files.join(" and ")
                ),
            ));
            continue;
        }
        context.progress(&format!("{repository}: removing {}", files.join(", ")));
        let branch = entry.branch.clone();
        match open_removal(
            github,
            &repository,
            branch.as_deref(),
            &files,
            context.central.as_str(),
        ) {
            Ok(mut done) => {
                if set_note {
                    if let Some(pr) = &done.pull_request {
                        if let Err(e) =
                            note(context, &repository, &format!("dispatcher removal: {pr}"))
                        {
                            done.detail
                                .push_str(&format!(" (registry note not set: {e})"));
                        }
                    }
                }
                outcomes.push(done);
            }
            Err(e) => outcomes.push(outcome(
                &repository,
                "error",
                format!("{e} (run again to resume)"),
            )),
        }
    }
    print_outcomes(context, &outcomes, apply, "dispatcher removal");
    Ok(exit_code(&outcomes))
}

fn note(context: &Context, repository: &str, text: &str) -> Result<(), String> {
    let file = context.read_registry()?;
    let edited = file.set_note(&parse_repo(repository)?, text)?;
    context.write_registry(&edited)
}

/// Branch, deletions, pull request, auto-merge — each step skipped when already done.
fn open_removal(
    github: &GitHub,
    repository: &str,
    publishing_branch: Option<&str>,
    files: &[String],
    central: &str,
) -> Result<Outcome, String> {
    let repo = github.repository(repository).map_err(|e| e.to_string())?;
    let base = publishing_branch
        .unwrap_or(&repo.default_branch)
        .to_string();
    let work = migration::REMOVE_BRANCH;
    ensure_branch(github, repository, work, &base)?;
    for path in files {
        if let Some(file) = github
            .file(repository, path, Some(work))
            .map_err(|e| e.to_string())?
        {
            github
                .delete_file(
                    repository,
                    path,
                    work,
                    &format!("Remove {path}: the organization webhook publishes now"),
                    &file.sha,
                )
                .map_err(|e| e.to_string())?;
        }
    }
    let body = migration::removal_body(repository, files, central);
    open_auto_merged_pull(
        github,
        repository,
        migration::removal_title(),
        work,
        &base,
        &body,
    )
}

fn ensure_branch(
    github: &GitHub,
    repository: &str,
    branch: &str,
    from: &str,
) -> Result<(), String> {
    if github
        .branch(repository, branch)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let head = github
        .branch(repository, from)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{repository}: branch {from} does not exist"))?;
    github
        .create_branch(repository, branch, &head.commit.sha)
        .map_err(|e| e.to_string())
}

/// Opens the pull request (or finds the one a previous run opened) and asks for a squash auto-merge:
/// the "changed" outcome of a migration step.
fn open_auto_merged_pull(
    github: &GitHub,
    repository: &str,
    title: &str,
    head: &str,
    base: &str,
    body: &str,
) -> Result<Outcome, String> {
    let owner = repository.split('/').next().unwrap_or("");
    let new = NewPullRequest {
        title,
        head,
        base,
        body,
    };
    let pull = match github.create_pull(repository, &new) {
        Ok(pull) => pull,
        // Opened by a run that was interrupted before it could say so.
        Err(e) if e.status() == Some(422) && e.to_string().contains("already exists") => github
            .open_pulls_from(repository, &format!("{owner}:{head}"))
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| e.to_string())?,
        Err(e) => return Err(e.to_string()),
    };
    let auto_merge = github
        .enable_auto_merge(&pull.node_id, "SQUASH")
        .map_err(|e| e.to_string())?;
    Ok(Outcome {
        repository: repository.to_string(),
        result: "changed".into(),
        detail: "pull request opened:".into(),
        pull_request: Some(pull.html_url),
        auto_merge: Some(auto_merge),
    })
}

pub fn restore_dispatchers(
    context: &Context,
    only: &[String],
    direct: bool,
    apply: bool,
) -> Result<u8, String> {
    let entries = targets(context, only)?;
    let github = &context.github;
    let central = context.central.as_str();
    let mut outcomes = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        context.progress_step(index, entries.len(), &entry.repository);
        match restore_one(github, entry, central, direct, apply) {
            Ok(o) => outcomes.push(o),
            Err(e) => outcomes.push(outcome(
                &entry.repository,
                "error",
                format!("{e} (run again to resume)"),
            )),
        }
    }
    let title = if direct {
        "dispatcher rollback (direct commits)"
    } else {
        "dispatcher rollback (pull requests)"
    };
    print_outcomes(context, &outcomes, apply, title);
    Ok(exit_code(&outcomes))
}

fn restore_one(
    github: &GitHub,
    entry: &Listed,
    central: &str,
    direct: bool,
    apply: bool,
) -> Result<Outcome, String> {
    let repo = github
        .repository(&entry.repository)
        .map_err(|e| e.to_string())?;
    let repository = repo.full_name.clone();
    let branch = entry.branch.clone().unwrap_or(repo.default_branch.clone());
    let wanted = migration::render_dispatcher(central, &branch);
    let path = migration::RESTORED_FILE;
    let current = github
        .file(&repository, path, Some(&branch))
        .map_err(|e| e.to_string())?;
    if current
        .as_ref()
        .is_some_and(|f| f.content == wanted.as_bytes())
    {
        return Ok(outcome(
            &repository,
            "done",
            format!("{path} is in place on {branch}"),
        ));
    }
    let message = format!("Restore {path}: publish through a dispatch to {central}");
    if direct {
        if !apply {
            return Ok(outcome(
                &repository,
                "planned",
                format!("commit {path} to {branch}"),
            ));
        }
        let sha = github
            .put_file(
                &repository,
                path,
                &branch,
                &message,
                wanted.as_bytes(),
                current.as_ref().map(|f| f.sha.as_str()),
            )
            .map_err(|e| e.to_string())?;
        return Ok(outcome(
            &repository,
            "changed",
            format!(
                "committed {path} to {branch} ({})",
                &sha[..sha.len().min(7)]
            ),
        ));
    }
    let owner = repository.split('/').next().unwrap_or("");
    let work = migration::RESTORE_BRANCH;
    let open = github
        .open_pulls_from(&repository, &format!("{owner}:{work}"))
        .map_err(|e| e.to_string())?;
    if let Some(pull) = open.first() {
        let mut done = outcome(&repository, "done", "pull request already open:");
        done.pull_request = Some(pull.html_url.clone());
        return Ok(done);
    }
    if !apply {
        return Ok(outcome(
            &repository,
            "planned",
            format!("branch {work}, add {path}, open a pull request to {branch}"),
        ));
    }
    ensure_branch(github, &repository, work, &branch)?;
    let on_branch = github
        .file(&repository, path, Some(work))
        .map_err(|e| e.to_string())?;
    if on_branch
        .as_ref()
        .is_none_or(|f| f.content != wanted.as_bytes())
    {
        github
            .put_file(
                &repository,
                path,
                work,
                &message,
                wanted.as_bytes(),
                on_branch.as_ref().map(|f| f.sha.as_str()),
            )
            .map_err(|e| e.to_string())?;
    }
    open_auto_merged_pull(
        github,
        &repository,
        migration::restore_title(),
        work,
        &branch,
        &migration::restore_body(&repository, central),
    )
}

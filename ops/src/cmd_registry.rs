//! `upm registry …`: list, add, enable, disable, pending, validate.

use serde::Serialize;
use upm_relay::model::RepoName;
use upm_relay::registry::Status;

use crate::registry_file::{line_diff, Listed, RegistryFile};
use crate::{parse_repo, table, Context};

fn rows(list: &[Listed]) -> Vec<Vec<String>> {
    list.iter()
        .map(|l| {
            vec![
                l.repository.clone(),
                l.status.to_string(),
                l.branch.clone().unwrap_or_else(|| "(default)".into()),
                l.note.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

pub fn list(context: &Context) -> Result<u8, String> {
    let list = context.read_registry()?.list();
    context.print(&list, || {
        let active = list.iter().filter(|l| l.status == "active").count();
        format!(
            "{}{} repositories: {active} active, {} disabled, {} pending\n",
            table::render(&["REPOSITORY", "STATUS", "BRANCH", "NOTE"], &rows(&list)),
            list.len(),
            list.iter().filter(|l| l.status == "disabled").count(),
            list.iter().filter(|l| l.status == "pending").count(),
        )
    });
    Ok(0)
}

pub fn pending(context: &Context) -> Result<u8, String> {
    let list: Vec<Listed> = context
        .read_registry()?
        .list()
        .into_iter()
        .filter(|l| l.status == "pending")
        .collect();
    context.print(&list, || {
        if list.is_empty() {
            "no pending repositories\n".into()
        } else {
            format!(
                "{}{} pending: `upm registry enable REPO --apply` activates one\n",
                table::render(&["REPOSITORY", "STATUS", "BRANCH", "NOTE"], &rows(&list)),
                list.len()
            )
        }
    });
    Ok(0)
}

#[derive(Serialize)]
struct Change {
    repository: String,
    action: String,
    applied: bool,
    /// What changed, as a unified-style line diff.
    diff: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pull_request: Option<String>,
}

impl Change {
    /// An `add`: the lines it changes in the file, and the pull request carrying it, if any.
    fn add(
        repository: &RepoName,
        applied: bool,
        diff: Vec<String>,
        pull_request: Option<String>,
    ) -> Change {
        Change {
            repository: repository.to_string(),
            action: "add".into(),
            applied,
            diff,
            pull_request,
        }
    }
}

fn print_change(context: &Context, change: &Change) {
    context.print(change, || {
        let mut out = String::new();
        if change.diff.is_empty() {
            out.push_str(&format!(
                "{}: nothing to change ({})\n",
                change.repository, change.action
            ));
            if let Some(pr) = &change.pull_request {
                out.push_str(&format!("pull request already open: {pr}\n"));
            }
            return out;
        }
        let verb = if change.applied {
            "changed"
        } else {
            "would change (dry run; --apply to write)"
        };
        out.push_str(&format!(
            "{} {}: {verb}\n",
            change.action, change.repository
        ));
        for line in &change.diff {
            out.push_str(&format!("  {line}\n"));
        }
        if let Some(pr) = &change.pull_request {
            out.push_str(&format!("pull request: {pr}\n"));
        }
        out
    });
}

pub fn add(
    context: &Context,
    url: &str,
    branch: Option<&str>,
    note: Option<&str>,
    pending: bool,
    open_pr: bool,
    apply: bool,
) -> Result<u8, String> {
    let repository = parse_repo(url)?;
    let status = if pending {
        Status::Pending
    } else {
        Status::Active
    };
    // The repository must exist and be readable with our credentials, or it could never publish.
    let found = context
        .github
        .repository(repository.as_str())
        .map_err(|e| format!("{repository}: {e}"))?;
    if let Some(branch) = branch {
        if context
            .github
            .branch(&found.full_name, branch)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!(
                "{}: branch {branch:?} does not exist",
                found.full_name
            ));
        }
    }
    // GitHub's spelling of the name, so the file matches what the worker sees in payloads.
    let repository = parse_repo(&found.full_name)?;
    if open_pr {
        return add_by_pull_request(context, &repository, status, branch, note, apply);
    }
    let file = context.read_registry()?;
    let edited = file.add(&repository, status, branch, note)?;
    if apply {
        context.write_registry(&edited)?;
    }
    print_change(
        context,
        &Change::add(&repository, apply, line_diff(file.text(), &edited), None),
    );
    Ok(0)
}

/// The registry change as a pull request on the central repository: branch
/// `upm/register-<owner>-<name>` from the default branch, the edited file committed there, a PR.
/// Re-running finds the branch and the PR and reuses them.
fn add_by_pull_request(
    context: &Context,
    repository: &RepoName,
    status: Status,
    branch: Option<&str>,
    note: Option<&str>,
    apply: bool,
) -> Result<u8, String> {
    let github = &context.github;
    let central = context.central.as_str();
    let path = context.registry_file.to_string_lossy().replace('\\', "/");
    let path = path.trim_start_matches("./").to_string();
    let central_repo = github.repository(central).map_err(|e| e.to_string())?;
    let base = central_repo.default_branch.clone();
    let work_branch = format!("upm/register-{}", repository.key().replace('/', "-"));
    let head = format!("{}:{work_branch}", central.split('/').next().unwrap_or(""));
    let existing = github
        .open_pulls_from(central, &head)
        .map_err(|e| e.to_string())?;
    if let Some(pr) = existing.first() {
        print_change(
            context,
            &Change::add(repository, false, Vec::new(), Some(pr.html_url.clone())),
        );
        return Ok(0);
    }
    let on_branch = github
        .branch(central, &work_branch)
        .map_err(|e| e.to_string())?;
    let source = on_branch
        .as_ref()
        .map_or(base.as_str(), |_| work_branch.as_str());
    let current = github
        .file(central, &path, Some(source))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{central}: {path} not found on {source}"))?;
    let text = String::from_utf8(current.content).map_err(|_| format!("{path} is not UTF-8"))?;
    let file = RegistryFile::parse(&text)?;
    let edited = match file.find(repository) {
        Some(_) => text.clone(),
        None => file.add(repository, status, branch, note)?,
    };
    let mut pull_request = None;
    if apply {
        if on_branch.is_none() {
            let base_head = github
                .branch(central, &base)
                .map_err(|e| e.to_string())?
                .ok_or("no default branch")?;
            github
                .create_branch(central, &work_branch, &base_head.commit.sha)
                .map_err(|e| e.to_string())?;
        }
        if edited != text {
            github
                .put_file(
                    central,
                    &path,
                    &work_branch,
                    &format!("Register {repository}"),
                    edited.as_bytes(),
                    Some(&current.sha),
                )
                .map_err(|e| e.to_string())?;
        }
        let body = format!(
            "Registers `{repository}` ({}) in `{path}`, so the organization webhook publishes its UPM packages.\n\n\
             How to test: after merging, bump a package's `version` in {repository} and push; `upm deliveries --since 1h` shows the delivery and `upm status` the published version.",
            status.as_str()
        );
        let pr = github
            .create_pull(
                central,
                &upm_github::api::NewPullRequest {
                    title: &format!("Register {repository} for UPM publishing"),
                    head: &work_branch,
                    base: &base,
                    body: &body,
                },
            )
            .map_err(|e| e.to_string())?;
        pull_request = Some(pr.html_url);
    }
    print_change(
        context,
        &Change::add(repository, apply, line_diff(&text, &edited), pull_request),
    );
    Ok(0)
}

pub fn set_status(
    context: &Context,
    repository: &str,
    enable: bool,
    apply: bool,
) -> Result<u8, String> {
    let repository = parse_repo(repository)?;
    let file = context.read_registry()?;
    let status = if enable {
        Status::Active
    } else {
        Status::Disabled
    };
    let edited = file.set_status(&repository, status)?;
    let changed = edited != file.text();
    if apply && changed {
        context.write_registry(&edited)?;
    }
    print_change(
        context,
        &Change {
            repository: file
                .find(&repository)
                .map_or(repository.to_string(), |l| l.repository),
            action: if enable { "enable" } else { "disable" }.into(),
            applied: apply && changed,
            diff: line_diff(file.text(), &edited),
            pull_request: None,
        },
    );
    Ok(0)
}

#[derive(Serialize)]
struct Validation {
    repository: String,
    status: String,
    ok: bool,
    detail: String,
}

/// The schema (the worker's parser), then each repository: does it exist, is it readable with the
/// configured credentials, does its publishing branch exist, is it archived.
pub fn validate(context: &Context) -> Result<u8, String> {
    let text = std::fs::read_to_string(&context.registry_file)
        .map_err(|e| format!("{}: {e}", context.registry_file.display()))?;
    let file = match RegistryFile::parse(&text) {
        Ok(file) => file,
        Err(e) => {
            let report = vec![Validation {
                repository: "(file)".into(),
                status: String::new(),
                ok: false,
                detail: format!("schema: {e}"),
            }];
            context.print(&report, || {
                format!("{}: schema: {e}\n", context.registry_file.display())
            });
            return Ok(1);
        }
    };
    let list = file.list();
    let mut report = Vec::new();
    for (index, entry) in list.iter().enumerate() {
        context.progress_step(index, list.len(), &entry.repository);
        let (ok, detail) = match context.github.repository(&entry.repository) {
            Ok(repo) => {
                let branch = entry.branch.clone().unwrap_or(repo.default_branch.clone());
                match context.github.branch(&repo.full_name, &branch) {
                    Ok(Some(_)) if repo.archived => (false, format!("archived (branch {branch})")),
                    Ok(Some(_)) if repo.full_name != entry.repository => (
                        true,
                        format!(
                            "reachable, branch {branch}; GitHub spells it {}",
                            repo.full_name
                        ),
                    ),
                    Ok(Some(_)) => (true, format!("reachable, branch {branch}")),
                    Ok(None) => (false, format!("branch {branch} does not exist")),
                    Err(e) => (false, e.to_string()),
                }
            }
            Err(e) if e.is_not_found() => (
                false,
                "not found, or not readable with the configured credentials".into(),
            ),
            Err(e) => (false, e.to_string()),
        };
        report.push(Validation {
            repository: entry.repository.clone(),
            status: entry.status.into(),
            ok,
            detail,
        });
    }
    let failed = report.iter().filter(|v| !v.ok).count();
    context.print(&report, || {
        let rows: Vec<Vec<String>> = report
            .iter()
            .map(|v| {
                vec![
                    v.repository.clone(),
                    v.status.clone(),
                    if v.ok { "ok" } else { "FAIL" }.into(),
                    v.detail.clone(),
                ]
            })
            .collect();
        format!(
            "schema: ok ({} entries)\n{}{} of {} reachable\n",
            report.len(),
            table::render(&["REPOSITORY", "STATUS", "CHECK", "DETAIL"], &rows),
            report.len() - failed,
            report.len()
        )
    });
    Ok(if failed == 0 { 0 } else { 1 })
}

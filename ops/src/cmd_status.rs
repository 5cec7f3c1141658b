//! `upm status`: one table — each registered repository, its status, its UPM packages with the version
//! on the publishing branch next to the registry's latest, whether the registry has that version
//! (unpublished bumps stand out), the last webhook delivery for it, and whether a dispatcher workflow is
//! still present.
//!
//! Cost: per repository one branch read, one recursive tree, one blob per package.json (all conditional
//! GETs, so an unchanged repository is cheap), one contents read per dispatcher file, and one registry
//! read (the packument) per package.

use serde::Serialize;
use upm_github::client::now_unix;
use upm_github::deliveries::{HookDelivery, REDELIVERY_WINDOW_SECS};

use crate::migration::DISPATCHER_FILES;
use crate::{table, Context};

/// package.json files under these directories are never packages (the publisher skips them too).
const SKIPPED_DIRS: [&str; 4] = ["node_modules", "Library", "Temp", ".git"];

#[derive(Debug, Serialize)]
struct Row {
    repository: String,
    status: String,
    branch: String,
    package: String,
    version: String,
    /// The registry's `latest` dist-tag, `-` when it has no version of the package.
    registry_latest: String,
    /// `yes`, `NO` (an unpublished bump), `?` (no registry configured or it failed).
    published: String,
    last_delivery: String,
    dispatcher: String,
}

pub fn run(context: &Context, registry_url: Option<&str>) -> Result<u8, String> {
    let entries = context.read_registry()?.list();
    let github = &context.github;
    // The last 3 days of deliveries, when the hook is known: the last outcome per repository.
    let deliveries: Vec<HookDelivery> = match context.hook() {
        Ok((org, hook)) => {
            match github.hook_deliveries(org, hook, now_unix() - REDELIVERY_WINDOW_SECS, 5_000) {
                Ok(deliveries) => deliveries,
                Err(e) => {
                    offline(context, &e)?;
                    Vec::new()
                }
            }
        }
        Err(_) => Vec::new(),
    };
    // One registry reader: each packument read once, and after an outage one message, not one per
    // package.
    let mut npm = registry_url.map(crate::npm::Registry::new);
    let mut rows = Vec::new();
    let mut unpublished = 0;
    for (index, entry) in entries.iter().enumerate() {
        context.progress_step(index, entries.len(), &entry.repository);
        let base = |branch: &str| Row {
            repository: entry.repository.clone(),
            status: entry.status.into(),
            branch: branch.to_string(),
            package: String::new(),
            version: String::new(),
            registry_latest: String::new(),
            published: String::new(),
            last_delivery: String::new(),
            dispatcher: String::new(),
        };
        let repo = match github.repository(&entry.repository) {
            Ok(repo) => repo,
            Err(e) => {
                // No answer at all is not this repository's problem: say it once and stop.
                offline(context, &e)?;
                let mut row = base(entry.branch.as_deref().unwrap_or("?"));
                row.package = format!("error: {e}");
                rows.push(row);
                continue;
            }
        };
        let branch = entry.branch.clone().unwrap_or(repo.default_branch.clone());
        let last_delivery = deliveries
            .iter()
            .filter(|d| d.repository_id == Some(repo.id) && d.event == "push")
            .max_by_key(|d| (d.delivered_at_unix(), d.id))
            .map(|d| format!("{} {}", d.status_code, d.delivered_at))
            .unwrap_or_else(|| "none in 3 days".into());
        let mut dispatcher = Vec::new();
        for path in DISPATCHER_FILES {
            if let Ok(Some(_)) = github.file(&repo.full_name, path, Some(&branch)) {
                dispatcher.push(path.rsplit('/').next().unwrap_or(path).to_string());
            }
        }
        let dispatcher = if dispatcher.is_empty() {
            "no".to_string()
        } else {
            dispatcher.join(", ")
        };
        let packages = match packages(context, &repo.full_name, &branch) {
            Ok(packages) => packages,
            Err(e) => {
                let mut row = base(&branch);
                row.package = format!("error: {e}");
                row.last_delivery = last_delivery;
                row.dispatcher = dispatcher;
                rows.push(row);
                continue;
            }
        };
        if packages.is_empty() {
            let mut row = base(&branch);
            row.package = "(no UPM package)".into();
            row.last_delivery = last_delivery.clone();
            row.dispatcher = dispatcher.clone();
            rows.push(row);
        }
        for (name, version) in packages {
            let (published, registry_latest) = match npm.as_mut().map(|r| r.packument(&name)) {
                Some(Ok(Some(p))) if p.versions.contains_key(&version) => {
                    ("yes".to_string(), p.latest())
                }
                Some(Ok(found)) => {
                    unpublished += 1;
                    (
                        "NO".to_string(),
                        found.map_or("-".to_string(), |p| p.latest()),
                    )
                }
                Some(Err(_)) | None => ("?".to_string(), "?".to_string()),
            };
            let mut row = base(&branch);
            row.package = name;
            row.version = version;
            row.registry_latest = registry_latest;
            row.published = published;
            row.last_delivery = last_delivery.clone();
            row.dispatcher = dispatcher.clone();
            rows.push(row);
        }
    }
    context.print(&rows, || {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.repository.clone(),
                    r.status.clone(),
                    r.branch.clone(),
                    r.package.clone(),
                    r.version.clone(),
                    r.registry_latest.clone(),
                    r.published.clone(),
                    r.last_delivery.clone(),
                    r.dispatcher.clone(),
                ]
            })
            .collect();
        let mut out = table::render(
            &[
                "REPOSITORY",
                "STATUS",
                "BRANCH",
                "PACKAGE",
                "VERSION",
                "REGISTRY LATEST",
                "PUBLISHED",
                "LAST DELIVERY",
                "DISPATCHER",
            ],
            &table_rows,
        );
        if npm.is_none() {
            out.push_str("PUBLISHED is ? without --registry / UPM_REGISTRY\n");
        }
        if unpublished > 0 {
            out.push_str(&format!(
                "{unpublished} version(s) on a publishing branch are not on the registry\n"
            ));
        }
        out
    });
    Ok(0)
}

/// `Err` (the command's one message) when GitHub gave no answer at all.
fn offline(context: &Context, error: &upm_github::Error) -> Result<(), String> {
    match error {
        upm_github::Error::Transport { detail, .. } => Err(format!(
            "GitHub cannot be reached at {} ({detail})",
            context.github.api()
        )),
        _ => Ok(()),
    }
}

/// The UPM packages (`name`, `version`) on a branch: every package.json with a UPM shape (`unity` or
/// `displayName`, the publisher's rule), read through the git trees and blobs API.
fn packages(
    context: &Context,
    repository: &str,
    branch: &str,
) -> Result<Vec<(String, String)>, String> {
    let github = &context.github;
    let head = github
        .branch(repository, branch)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("branch {branch} does not exist"))?;
    let tree = github
        .tree(repository, &head.commit.sha, true)
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for entry in &tree.tree {
        let is_manifest = entry.kind == "blob"
            && (entry.path == "package.json" || entry.path.ends_with("/package.json"))
            && !entry
                .path
                .split('/')
                .any(|segment| SKIPPED_DIRS.contains(&segment));
        if !is_manifest {
            continue;
        }
        let bytes = github
            .blob(repository, &entry.sha)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        else {
            continue;
        };
        if !(map.contains_key("unity") || map.contains_key("displayName")) {
            continue;
        }
        let field = |k: &str| {
            map.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        found.push((field("name"), field("version")));
    }
    Ok(found)
}

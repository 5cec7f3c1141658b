//! Reconcile: the net under every other net. For each active repository of the registry file, read the
//! publishing branch's head through GitHub's REST API (no clone), find its UPM packages, and catch up
//! every `name@version` the registry does not have.
//!
//! This module holds the decisions, all pure: which repositories, which package.json files of a tree,
//! which packages are UPM packages, what is missing, what to dispatch, how much a sweep may spend, and
//! the report. The HTTP exchanges live in the caller.
//!
//! **Catching up = dispatching `package_publish`** for the directories with a missing version, at the
//! head sha, exactly as the worker would have. Not publishing directly, because the publish workflow is
//! the one path that publishes: it writes and commits the changelog, notifies, leaves the audit file,
//! and alone holds the registry token. The sweep needs only read access to the registry and the
//! repositories, plus the right to dispatch on the central repository.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::discover::{classify, normalise_path, skipped_dir_in, Shape};
use crate::model::PackagePath;
use crate::notify::{Embed, Field, Message};
use crate::validate::{check_name, check_version};

/// One active repository of the registry file, and the branch that publishes (`None`: the default
/// branch, as the worker does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub repository: String,
    pub branch: Option<String>,
}

/// The active repositories of `config/repositories.json`, parsed by the worker's own parser (one
/// definition of the file for the whole project).
pub fn active_targets(registry_text: &str) -> Result<Vec<Target>, String> {
    let registry = upm_relay::registry::Registry::parse(registry_text)?;
    Ok(registry
        .entries()
        .into_iter()
        .filter(|e| e.status == upm_relay::registry::Status::Active)
        .map(|e| Target {
            repository: e.repository.as_str().to_string(),
            branch: e.branch.clone(),
        })
        .collect())
}

/// `GET /repos/{o}/{r}/git/trees/{sha}?recursive=1`, as the shared client reads it.
pub use upm_github::api::Tree;

/// A package.json of the tree worth reading: its directory and blob sha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBlob {
    pub dir: PackagePath,
    pub blob: String,
}

/// The package.json blobs of a tree, outside the directories `discover` never searches
/// (`node_modules`, `Library`, `Temp`). A truncated tree (GitHub stops at 100,000 entries or 7 MB)
/// is an error: reading part of it would silently miss packages.
pub fn manifest_blobs(tree: &Tree) -> Result<Vec<ManifestBlob>, String> {
    if tree.truncated {
        return Err("GitHub truncated the tree (over 100,000 entries or 7 MB): \
                    reconcile cannot see every package.json of this repository"
            .to_string());
    }
    let mut blobs: Vec<ManifestBlob> = tree
        .tree
        .iter()
        .filter(|e| e.kind == "blob")
        .filter(|e| e.path == "package.json" || e.path.ends_with("/package.json"))
        .filter_map(|e| {
            let dir = normalise_path(&e.path).ok()?;
            if skipped_dir_in(&dir).is_some() {
                return None;
            }
            Some(ManifestBlob {
                dir,
                blob: e.sha.clone(),
            })
        })
        .collect();
    blobs.sort_by(|a, b| a.dir.as_str().cmp(b.dir.as_str()));
    Ok(blobs)
}

/// A UPM package found in a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub dir: String,
    pub name: String,
    pub version: String,
}

/// What a package.json blob holds, for reconcile: a publishable `name@version`, nothing to do (not a
/// UPM package, or `private`), or a problem. Problems are not caught up: the publish run of the push
/// that introduced them already reported them, with file and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Package(Found),
    Ignored,
    Invalid(String),
}

pub fn read_manifest(dir: &PackagePath, text: &str) -> Manifest {
    let map = match classify(text) {
        Shape::Upm(map) => map,
        Shape::NotUpm => return Manifest::Ignored,
        Shape::Unparseable(e) => return Manifest::Invalid(e),
    };
    if map.get("private") == Some(&Value::Bool(true)) {
        return Manifest::Ignored;
    }
    let field = |key: &str| map.get(key).and_then(Value::as_str).map(str::trim);
    let (Some(name), Some(version)) = (field("name"), field("version")) else {
        return Manifest::Invalid("no string name and version".to_string());
    };
    if let Err(e) = check_name(name) {
        return Manifest::Invalid(e);
    }
    match check_version(version) {
        Ok(v) => Manifest::Package(Found {
            dir: dir.as_str().to_string(),
            name: name.to_string(),
            version: v.to_string(),
        }),
        Err(e) => Manifest::Invalid(e),
    }
}

/// What one repository needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Every package of the head is on the registry.
    UpToDate { sha: String, packages: usize },
    /// Versions the registry lacks; a dispatch for their directories at `sha` catches them up.
    CatchUp {
        sha: String,
        missing: Vec<Found>,
        dispatch: Dispatch,
    },
    /// Not examined this sweep: the request budget or GitHub's rate limit ran out first.
    Deferred(String),
    /// This repository could not be examined (GitHub or the registry failed, a broken tree). The other
    /// lines are unaffected.
    Failed(String),
}

/// What became of a catch-up's dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Not sent yet (the decision, before the sweep acts on it).
    Pending,
    Sent,
    Failed(String),
    DryRun,
    /// The same versions at the same sha were dispatched at this Unix time, less than
    /// `REDISPATCH_AFTER_SECS` ago: that run may still be queued or running, and if it failed it
    /// posted its own failure. Not sent again yet.
    AlreadySent {
        at: u64,
    },
}

/// How long a dispatched catch-up is given before the same versions are dispatched again. A run that
/// failed for good (a version that must be bumped) would otherwise be dispatched and alerted on every
/// sweep.
pub const REDISPATCH_AFTER_SECS: u64 = 6 * 3600;

/// A catch-up dispatch the state remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatched {
    pub sha: String,
    pub versions: Vec<String>,
    pub at: u64,
}

fn versions(missing: &[Found]) -> Vec<String> {
    let mut v: Vec<String> = missing
        .iter()
        .map(|f| format!("{}@{}", f.name, f.version))
        .collect();
    v.sort();
    v
}

/// When the same catch-up was dispatched recently, the time it was: do not send it again.
pub fn recently_dispatched(
    previous: Option<&Dispatched>,
    sha: &str,
    missing: &[Found],
    now: u64,
) -> Option<u64> {
    let previous = previous?;
    (previous.sha == sha
        && previous.versions == versions(missing)
        && now.saturating_sub(previous.at) < REDISPATCH_AFTER_SECS)
        .then_some(previous.at)
}

/// What the state records after a dispatch was sent.
pub fn dispatched(sha: &str, missing: &[Found], now: u64) -> Dispatched {
    Dispatched {
        sha: sha.to_string(),
        versions: versions(missing),
        at: now,
    }
}

/// The registry's answer for one `name@version`: `Some(true)` published, `Some(false)` missing, `None`
/// unknown (an error, which fails the line rather than dispatching blindly).
pub fn decide(sha: &str, found: &[Found], published: &[Option<bool>]) -> Line {
    assert_eq!(found.len(), published.len(), "one answer per package");
    let mut missing = Vec::new();
    for (package, answer) in found.iter().zip(published) {
        match answer {
            Some(true) => {}
            Some(false) => missing.push(package.clone()),
            None => {
                return Line::Failed(format!(
                    "the registry could not say whether {}@{} is published",
                    package.name, package.version
                ))
            }
        }
    }
    if missing.is_empty() {
        Line::UpToDate {
            sha: sha.to_string(),
            packages: found.len(),
        }
    } else {
        Line::CatchUp {
            sha: sha.to_string(),
            missing,
            dispatch: Dispatch::Pending,
        }
    }
}

/// The `client_payload` of the `package_publish` dispatch that catches `missing` up: the worker's
/// seven string properties, with the directories of the missing versions only, and a `delivery` that
/// names the sweep (it shows in the publish run's name and audit file).
pub fn catch_up_payload(
    repository: &str,
    branch: &str,
    sha: &str,
    missing: &[Found],
    sweep_id: &str,
) -> Value {
    let mut dirs: Vec<&str> = missing
        .iter()
        .map(|f| {
            if f.dir.is_empty() {
                "."
            } else {
                f.dir.as_str()
            }
        })
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    json!({
        "repository": repository,
        "commit_sha": sha,
        "commit_message": format!("reconcile: catch up {}", versions(missing).join(", ")),
        "commit_author": "upm-publisher reconcile",
        "branch": branch,
        "package_path": dirs.join(","),
        "delivery": format!("reconcile-{sweep_id}"),
    })
}

/// A per-sweep allowance of GitHub requests. GitHub's own rate limit is the client's business
/// (`upm-github` waits on `Retry-After` / `x-ratelimit-reset` within a bound, then gives up); the
/// budget keeps one sweep from spending what the rest of the hour needs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub limit: u64,
}

impl Budget {
    /// May a sweep that has sent `used` requests send `cost` more?
    pub fn allows(&self, used: u64, cost: u64) -> Result<(), String> {
        if used + cost > self.limit {
            Err(format!(
                "the sweep's request budget is spent ({used} of {})",
                self.limit
            ))
        } else {
            Ok(())
        }
    }
}

/// What a sweep remembers about a repository between runs (the state file): its default branch, the
/// head it saw and what each package.json blob of that head holds, and when it was last examined.
/// (The ETag of the head request lives in the GitHub client's own cache, saved beside this file.) When
/// the head did not move (a 304), the packages are known without reading the tree; when it moved, only
/// the blobs not seen before are read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Known>,
    #[serde(default)]
    pub last_examined: u64,
    #[serde(default)]
    pub dispatched: Option<Dispatched>,
}

/// One package.json blob of a head and what it holds (`None`: not a publishable UPM package).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub dir: String,
    pub blob: String,
    pub package: Option<Found>,
}

impl Remembered {
    pub fn packages(&self) -> Vec<Found> {
        self.manifests
            .iter()
            .filter_map(|k| k.package.clone())
            .collect()
    }

    /// What is already known about `blob` (blobs are immutable: the same sha, the same content).
    pub fn known_blob(&self, blob: &str) -> Option<&Known> {
        self.manifests.iter().find(|k| k.blob == blob)
    }
}

/// The state file, keyed by the lower-cased `owner/name`.
pub type State = BTreeMap<String, Remembered>;

/// Forgets repositories that are no longer active in the registry, so the state file does not grow
/// with every repository ever registered.
pub fn prune(state: &mut State, targets: &[Target]) {
    state.retain(|key, _| {
        targets
            .iter()
            .any(|t| t.repository.eq_ignore_ascii_case(key))
    });
}

/// The order of a sweep: repositories not examined for the longest first, so a budget that runs out
/// never starves the same repositories twice in a row.
pub fn order(targets: Vec<Target>, state: &State) -> Vec<Target> {
    let mut targets = targets;
    targets.sort_by_key(|t| {
        (
            state
                .get(&t.repository.to_ascii_lowercase())
                .map_or(0, |r| r.last_examined),
            t.repository.to_ascii_lowercase(),
        )
    });
    targets
}

fn listed(missing: &[Found]) -> String {
    versions(missing).join(", ")
}

/// The job summary: one row per repository, and the sweep's cost.
pub fn summary(lines: &[(String, Line)], requests: u64, not_modified: u64) -> String {
    let mut out = String::from("## UPM reconcile\n\n| Repository | Result |\n| --- | --- |\n");
    for (repository, line) in lines {
        let result = match line {
            Line::UpToDate { sha, packages } => {
                format!("up to date at {} ({packages} packages)", short(sha))
            }
            Line::CatchUp {
                sha,
                missing,
                dispatch,
            } => {
                let what = match dispatch {
                    Dispatch::Sent => "⚠️ caught up (publish dispatched)".to_string(),
                    Dispatch::Pending | Dispatch::DryRun => "missing (dry run)".to_string(),
                    Dispatch::Failed(e) => format!("❌ missing, the dispatch failed: {e}"),
                    Dispatch::AlreadySent { .. } => {
                        "missing, dispatched by an earlier sweep (waiting for that run)".to_string()
                    }
                };
                format!("{what} at {}: {}", short(sha), listed(missing))
            }
            Line::Deferred(why) => format!("deferred: {why}"),
            Line::Failed(why) => format!("❌ {why}"),
        };
        out.push_str(&format!(
            "| {} | {} |\n",
            crate::summary::cell(repository),
            crate::summary::cell(&result)
        ));
    }
    out.push_str(&format!(
        "\n{requests} GitHub requests ({not_modified} answered 304 Not Modified).\n"
    ));
    out
}

/// The Discord alert, when anything had to be caught up (something upstream failed: a person should
/// look) or a line failed. `None` when the sweep found everything in place. Shaped by `notify::fit`,
/// like every message the publisher sends.
pub fn alert(lines: &[(String, Line)], run_url: Option<&str>) -> Option<Message> {
    let mut fields = Vec::new();
    for (repository, line) in lines {
        let value = match line {
            Line::CatchUp {
                sha,
                missing,
                dispatch: Dispatch::Sent,
            } => format!("publish dispatched at {}: {}", short(sha), listed(missing)),
            Line::CatchUp {
                sha,
                missing,
                dispatch: Dispatch::Failed(e),
            } => format!(
                "missing at {}: {}; the dispatch FAILED: {e}",
                short(sha),
                listed(missing)
            ),
            Line::Failed(why) => format!("could not check: {why}"),
            _ => continue,
        };
        fields.push(Field {
            name: repository.clone(),
            value,
            inline: false,
        });
    }
    if fields.is_empty() {
        return None;
    }
    let embed = Embed {
        title: format!(
            "Reconcile: {} {} needed attention",
            fields.len(),
            if fields.len() == 1 {
                "repository"
            } else {
                "repositories"
            }
        ),
        url: run_url.map(str::to_string),
        description: "Versions on a publishing branch were missing from the registry, so a \
                      delivery, dispatch or run was lost upstream. Reconcile dispatched the publish; \
                      find out why the original did not happen."
            .to_string(),
        color: ORANGE,
        fields,
        footer: None,
    };
    Some(Message::of(vec![embed]))
}

const ORANGE: u32 = 0xFF_A5_00;

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(dir: &str, name: &str, version: &str) -> Found {
        Found {
            dir: dir.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn only_active_repositories_are_swept() {
        let text = r#"{"repositories": [
            {"url": "https://github.com/Studio/B", "status": "active", "branch": "release"},
            {"url": "Studio/A", "status": "active"},
            {"url": "Studio/Off", "status": "disabled"},
            {"url": "Studio/Later", "status": "pending"}
        ]}"#;
        assert_eq!(
            active_targets(text).unwrap(),
            [
                Target {
                    repository: "Studio/A".into(),
                    branch: None
                },
                Target {
                    repository: "Studio/B".into(),
                    branch: Some("release".into())
                },
            ]
        );
        assert!(active_targets(r#"{"repositories": [{"url": "x"}]}"#).is_err());
    }

    #[test]
    fn package_json_blobs_skip_dependency_and_generated_folders() {
        let tree: Tree = serde_json::from_value(json!({"sha": "root", "tree": [
            {"path": "package.json", "type": "blob", "sha": "r"},
            {"path": "Packages/a/package.json", "type": "blob", "sha": "a"},
            {"path": "Packages/a/node_modules/x/package.json", "type": "blob", "sha": "n"},
            {"path": "Library/PackageCache/y/package.json", "type": "blob", "sha": "l"},
            {"path": "Packages/a/package.json.meta", "type": "blob", "sha": "m"},
            {"path": "Packages/b", "type": "tree", "sha": "t"},
            {"path": "Packages/b/mypackage.json", "type": "blob", "sha": "z"}
        ], "truncated": false}))
        .unwrap();
        let blobs = manifest_blobs(&tree).unwrap();
        let got: Vec<(&str, &str)> = blobs
            .iter()
            .map(|b| (b.dir.as_str(), b.blob.as_str()))
            .collect();
        assert_eq!(got, [("", "r"), ("Packages/a", "a")]);

        let truncated: Tree =
            serde_json::from_value(json!({"sha": "root", "tree": [], "truncated": true})).unwrap();
        assert!(manifest_blobs(&truncated)
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn manifests() {
        let dir = PackagePath::new("Packages/a");
        assert_eq!(
            read_manifest(
                &dir,
                r#"{"name":"com.s.a","version":"1.2.0","displayName":"A"}"#
            ),
            Manifest::Package(found("Packages/a", "com.s.a", "1.2.0"))
        );
        assert_eq!(
            read_manifest(&dir, r#"{"name":"tooling","version":"1.0.0"}"#),
            Manifest::Ignored
        );
        assert_eq!(
            read_manifest(
                &dir,
                r#"{"name":"com.s.a","version":"1.0.0","unity":"2022.3","private":true}"#
            ),
            Manifest::Ignored
        );
        assert!(matches!(
            read_manifest(
                &dir,
                r#"{"name":"com.s.a","version":"one","unity":"2022.3"}"#
            ),
            Manifest::Invalid(_)
        ));
        assert!(matches!(read_manifest(&dir, "{"), Manifest::Invalid(_)));
    }

    #[test]
    fn only_missing_versions_are_caught_up_and_an_unknown_answer_fails_the_line() {
        let packages = [
            found("a", "com.s.a", "1.0.0"),
            found("b", "com.s.b", "2.0.0"),
        ];
        assert_eq!(
            decide("s", &packages, &[Some(true), Some(true)]),
            Line::UpToDate {
                sha: "s".into(),
                packages: 2
            }
        );
        assert_eq!(
            decide("s", &packages, &[Some(true), Some(false)]),
            Line::CatchUp {
                sha: "s".into(),
                missing: vec![packages[1].clone()],
                dispatch: Dispatch::Pending
            }
        );
        assert!(matches!(
            decide("s", &packages, &[None, Some(false)]),
            Line::Failed(why) if why.contains("com.s.a@1.0.0")
        ));
    }

    #[test]
    fn the_dispatch_names_only_the_missing_directories() {
        let payload = catch_up_payload(
            "Studio/A",
            "main",
            "abc",
            &[
                found("Packages/b", "com.s.b", "2.0.0"),
                found("", "com.s.root", "1.0.0"),
                found("Packages/b", "com.s.b2", "1.0.0"),
            ],
            "42",
        );
        assert_eq!(payload["package_path"], ".,Packages/b");
        assert_eq!(payload["commit_sha"], "abc");
        assert_eq!(payload["delivery"], "reconcile-42");
        // The worker's payload: seven string properties.
        assert_eq!(payload.as_object().unwrap().len(), 7);
        assert!(payload.as_object().unwrap().values().all(Value::is_string));
    }

    #[test]
    fn a_catch_up_is_not_dispatched_again_for_six_hours() {
        let missing = [found("a", "com.s.a", "1.1.0")];
        let sent = dispatched("s1", &missing, 1000);
        assert_eq!(
            recently_dispatched(Some(&sent), "s1", &missing, 1000 + 3600),
            Some(1000)
        );
        assert_eq!(
            recently_dispatched(Some(&sent), "s1", &missing, 1000 + REDISPATCH_AFTER_SECS),
            None
        );
        // Another head, or other versions: a new catch-up.
        assert_eq!(recently_dispatched(Some(&sent), "s2", &missing, 1001), None);
        let more = [missing[0].clone(), found("b", "com.s.b", "1.0.0")];
        assert_eq!(recently_dispatched(Some(&sent), "s1", &more, 1001), None);
        assert_eq!(recently_dispatched(None, "s1", &missing, 1001), None);
    }

    #[test]
    fn the_budget_stops_a_sweep() {
        let budget = Budget { limit: 3 };
        assert!(budget.allows(0, 3).is_ok());
        assert!(budget.allows(2, 1).is_ok());
        assert!(budget.allows(2, 2).unwrap_err().contains("budget"));
    }

    #[test]
    fn the_longest_unexamined_go_first() {
        let targets = ["Studio/A", "Studio/B", "Studio/C"]
            .map(|r| Target {
                repository: r.into(),
                branch: None,
            })
            .to_vec();
        let mut state = State::new();
        state.insert(
            "studio/a".into(),
            Remembered {
                last_examined: 30,
                ..Remembered::default()
            },
        );
        state.insert(
            "studio/c".into(),
            Remembered {
                last_examined: 10,
                ..Remembered::default()
            },
        );
        let ordered: Vec<String> = order(targets, &state)
            .into_iter()
            .map(|t| t.repository)
            .collect();
        assert_eq!(ordered, ["Studio/B", "Studio/C", "Studio/A"]);
    }

    #[test]
    fn repositories_no_longer_active_are_forgotten() {
        let mut state = State::new();
        state.insert("studio/a".into(), Remembered::default());
        state.insert("studio/gone".into(), Remembered::default());
        prune(
            &mut state,
            &[Target {
                repository: "Studio/A".into(),
                branch: None,
            }],
        );
        assert_eq!(state.keys().collect::<Vec<_>>(), ["studio/a"]);
    }

    #[test]
    fn reports() {
        let lines = vec![
            (
                "Studio/A".to_string(),
                Line::UpToDate {
                    sha: "fedcba9876543210".into(),
                    packages: 2,
                },
            ),
            (
                "Studio/B".to_string(),
                Line::CatchUp {
                    sha: "0123456789abcdef".into(),
                    missing: vec![found("p", "com.s.b", "1.1.0")],
                    dispatch: Dispatch::Sent,
                },
            ),
            (
                "Studio/E".to_string(),
                Line::CatchUp {
                    sha: "0123456789abcdef".into(),
                    missing: vec![found("p", "com.s.e", "1.1.0")],
                    dispatch: Dispatch::AlreadySent { at: 5 },
                },
            ),
            (
                "Studio/C".to_string(),
                Line::Failed("GitHub answered 500".into()),
            ),
            (
                "Studio/D".to_string(),
                Line::Deferred("request budget spent".into()),
            ),
        ];
        let text = summary(&lines, 7, 4);
        assert!(text.contains("| Studio/A | up to date at fedcba987654 (2 packages) |"));
        assert!(text.contains("caught up (publish dispatched) at 0123456789ab: com.s.b@1.1.0"));
        assert!(text.contains("waiting for that run"));
        assert!(text.contains("7 GitHub requests (4 answered 304 Not Modified)."));
        let message = alert(&lines, Some("https://run")).unwrap();
        let fields = &message.embeds[0].fields;
        assert_eq!(fields.len(), 2, "only the new catch-up and the failure");
        assert!(fields[0].value.contains("com.s.b@1.1.0"));
        assert!(message.allowed_mentions.parse.is_empty());
        assert!(alert(&lines[..1], None).is_none());
    }
}

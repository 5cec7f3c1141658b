//! Health: the weekly look at every package on every publishing branch, with the publish path's own
//! rules (`validate`, `assets`, `guid_index`, the dependency check) plus the drift a person wants to
//! know about, and the fixes a machine can make without judgement.
//!
//! This module holds the decisions, all pure: which repositories, which files of a tree a check must
//! read, which problems are machine-fixable and what the fixed files are, the drift between a branch
//! and the registry, the fix pull request's body and fingerprint, the week, and the report (job
//! summary, Discord message, JSON). The exchanges live in `health_run`.
//!
//! **Fixable, and nothing else:** a missing `.meta` of a folder or of a text asset (Unity's own
//! shapes, a new random GUID), a dependency range replaced by the exact version the registry holds, and
//! manifest fields Unity rejects whose correct form is certain (`unityRelease` without `unity`, `unity`
//! holding a full release). A GUID clash, a content change without a bump, a version behind the
//! registry, a missing `.meta` of a script or a texture (whose importer settings a person chooses):
//! reported, never fixed.

use std::collections::{BTreeMap, BTreeSet};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::Problem;
use crate::notify::{Embed, Field, Message};
use crate::reconcile::Target;
use crate::summary::cell;
use crate::validate;

/// The branch every fix pull request comes from: one per repository, found again by its head, so a
/// week's run updates the open one instead of opening another.
pub const FIX_BRANCH: &str = "upm-health/fixes";
pub const FIX_TITLE: &str = "UPM health: fixes Unity needs";
/// Marks the fix set a pull request holds, in its body: the same set is never written twice.
const FINGERPRINT_MARK: &str = "<!-- upm-health fixes ";

/// The active repositories of the registry file that take part (an entry's `"health": false` opts
/// out), parsed by the worker's own parser.
pub fn targets(registry_text: &str) -> Result<Vec<Target>, String> {
    let registry = upm_relay::registry::Registry::parse(registry_text)?;
    Ok(registry
        .entries()
        .into_iter()
        .filter(|e| e.status == upm_relay::registry::Status::Active && e.health)
        .map(|e| Target {
            repository: e.repository.as_str().to_string(),
            branch: e.branch.clone(),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------------
// What to read of a tree

/// One file of a package as the tree lists it: its path from the package root, blob sha and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeFile {
    pub path: String,
    pub blob: String,
    pub size: u64,
}

/// The files of the tree below `dir` (`""`: the whole tree), relative to it.
pub fn files_below(tree: &upm_github::api::Tree, dir: &str) -> Vec<TreeFile> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    tree.tree
        .iter()
        .filter(|e| e.kind == "blob")
        .filter_map(|e| {
            Some(TreeFile {
                path: e.path.strip_prefix(&prefix)?.to_string(),
                blob: e.sha.clone(),
                size: e.size.unwrap_or(0),
            })
        })
        .collect()
}

/// The sha of the tree at `dir` (`""`: the root), which changes exactly when something below changes.
pub fn dir_tree_sha(tree: &upm_github::api::Tree, dir: &str) -> Option<String> {
    if dir.is_empty() {
        return Some(tree.sha.clone());
    }
    tree.tree
        .iter()
        .find(|e| e.kind == "tree" && e.path == dir)
        .map(|e| e.sha.clone())
}

/// Does a check read this file's bytes? The manifest and the ignore files (what npm packs), every
/// `.meta` (GUIDs), and files small enough to be a Git LFS pointer (`assets`: 126–1024 bytes). The
/// others are judged by path and size, and compared with the registry by blob sha: never downloaded.
pub fn must_read(path: &str, size: u64) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path == "package.json"
        || matches!(name, ".npmignore" | ".gitignore")
        || name.ends_with(".meta")
        || (126..=1024).contains(&size)
}

/// git's object id of a blob (`git hash-object`): what the tree lists, computed for a tarball's file.
pub fn git_blob_sha(bytes: &[u8]) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Findings

/// One problem of a package: the publish path's `Problem` (field and reason), and whether this run's
/// fix pull request fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub field: String,
    pub reason: String,
    pub fix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageHealth {
    pub dir: String,
    pub name: String,
    pub version: String,
    pub problems: Vec<Finding>,
}

/// The registry's view of a package, for the drift checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registered {
    /// `dist-tags.latest`.
    pub latest: Option<String>,
    /// Whether the branch's version is on the registry.
    pub has_version: bool,
    /// The packed files that differ from that version's tarball (`Some(empty)`: identical; `None`:
    /// not compared).
    pub changed: Option<Vec<String>>,
}

/// Files the publish workflow itself changes after it publishes: it commits the new changelog section
/// (and a new `CHANGELOG.md.meta`) back to the branch, so they always differ from the tarball.
const WRITTEN_AFTER_PUBLISH: [&str; 2] = ["CHANGELOG.md", "CHANGELOG.md.meta"];

/// The packed files (path → blob sha on the branch) that the registry's tarball of the same version
/// (path → its bytes' blob sha) does not hold identically, either way round.
pub fn changed_files(
    packed: &BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut changed: BTreeSet<&str> = BTreeSet::new();
    for (path, blob) in packed {
        if stored.get(path) != Some(blob) {
            changed.insert(path);
        }
    }
    for path in stored.keys() {
        if !packed.contains_key(path) {
            changed.insert(path);
        }
    }
    changed
        .into_iter()
        .filter(|p| !WRITTEN_AFTER_PUBLISH.contains(p))
        .map(str::to_string)
        .collect()
}

/// The drift between the branch's `version` and the registry, as problems for a person.
pub fn drift(version: &str, registered: &Registered) -> Vec<Problem> {
    let mut out = Vec::new();
    if let (Ok(ours), Some(Ok(latest))) = (
        Version::parse(version),
        registered.latest.as_deref().map(Version::parse),
    ) {
        if ours < latest {
            out.push(Problem {
                field: "version".to_string(),
                reason: format!(
                    "{ours} is below the registry's latest {latest}: was a bump reverted? The next \
                     publish from this branch would not become `latest`"
                ),
            });
        }
    }
    if let Some(changed) = registered.changed.as_ref().filter(|c| !c.is_empty()) {
        let listed: Vec<&str> = changed.iter().take(5).map(String::as_str).collect();
        let more = changed.len().saturating_sub(listed.len());
        out.push(Problem {
            field: "version".to_string(),
            reason: format!(
                "{version} is on the registry with other content: {} changed since it was published \
                 ({}{}), and no project will receive them until the version is bumped",
                plural(changed.len(), "file"),
                listed.join(", "),
                if more > 0 {
                    format!(", …and {more} more")
                } else {
                    String::new()
                }
            ),
        });
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    match (n, what.strip_suffix('y')) {
        (1, _) => format!("1 {what}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {what}s"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Fixes

/// Unity's text asset formats (Unity manual, "Text assets": .bytes .csv .fnt .htm .html .json .md .txt
/// .xml .yaml), imported by TextScriptImporter: their `.meta` holds nothing a person chooses.
const TEXT_ASSET_EXTENSIONS: [&str; 10] = [
    "bytes", "csv", "fnt", "htm", "html", "json", "md", "txt", "xml", "yaml",
];

/// A folder's `.meta` exactly as Unity writes it (e.g. `Editor.meta` in Unity's own
/// com.unity.package-validation-suite): `folderAsset: yes` and a DefaultImporter.
pub fn folder_meta(guid: &str) -> String {
    format!(
        "fileFormatVersion: 2\nguid: {guid}\nfolderAsset: yes\nDefaultImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
    )
}

/// A text asset's `.meta` exactly as Unity writes it (e.g. `CHANGELOG.md.meta` and
/// `package.json.meta` in com.unity.package-validation-suite): a TextScriptImporter.
pub fn text_asset_meta(guid: &str) -> String {
    format!(
        "fileFormatVersion: 2\nguid: {guid}\nTextScriptImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
    )
}

pub fn is_text_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && TEXT_ASSET_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
    })
}

/// A random GUID as Unity makes them: 32 lower-case hex digits.
pub fn random_guid() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness for a GUID: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// One change of a fix pull request, for its body: the problem's field, what changes, and why Unity
/// needs it (with the source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub what: String,
    pub why: String,
}

/// One file the fix pull request writes (its path from the repository root) and the changes in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFix {
    pub path: String,
    pub content: String,
    pub changes: Vec<Change>,
}

const WHY_FOLDER_META: &str = "In a package Unity cannot write the `.meta` it misses, so it ignores \
    the folder and every asset in it (\"has no meta file, but it's in an immutable folder\"): Package \
    Validation Suite US-0112 (`Standards/US0112-PackageContainsMetafile.cs`) and PVP-26-4 \
    (`Lib/PvpXray/MetaFileVerifierV4.cs`). This is Unity's folder `.meta` (`folderAsset: yes`, as in \
    `Editor.meta` of Unity's com.unity.package-validation-suite) with a new random GUID.";
const WHY_TEXT_META: &str = "In a package Unity cannot write the `.meta` it misses, so it ignores \
    the file (US-0112, PVP-26-4). This is the TextScriptImporter `.meta` Unity writes for a text asset \
    (Unity manual, \"Text assets\"; as `CHANGELOG.md.meta` in com.unity.package-validation-suite) with \
    a new random GUID.";
const WHY_EXACT_DEPENDENCY: &str = "Unity's Package Manager resolves a dependency by exact version, \
    never an npm range (Unity manual, \"Package manifest\": `dependencies` maps a name to a version): \
    a range breaks every project that installs the package. The version written is the highest one on \
    the registry that the range allowed.";
const WHY_UNITY_RELEASE: &str = "`unityRelease` only completes `unity` (Unity manual, \"Package \
    manifest\": to use `unityRelease` you must also give `unity`); without it the Package Manager \
    rejects the manifest. Removing it keeps what the manifest says: no minimum Unity.";
const WHY_UNITY_SPLIT: &str = "`unity` is `major.minor` only and the release goes into \
    `unityRelease` (Unity manual, \"Package manifest\"); the Package Manager rejects `2022.3.11f1` \
    in `unity`. The same minimum Unity, written the way Unity reads it.";

/// A missing-`.meta` problem of the publish path (`assets::check`), read back: the asset without its
/// `.meta` and whether it is a folder. The reasons are the publish path's own words (tested below).
fn missing_meta(problem: &Problem) -> Option<(&str, bool)> {
    if let Some(folder) = problem.field.strip_suffix('/') {
        return problem
            .reason
            .starts_with(&format!("folder has no {folder}.meta in the package"))
            .then_some((folder, true));
    }
    problem
        .reason
        .starts_with(&format!("has no {}.meta in the package", problem.field))
        .then_some((problem.field.as_str(), false))
}

/// The highest version on the registry that `range` allows, when `range` is an npm range (not an
/// exact version, not a tag).
pub fn exact_for_range(range: &str, on_registry: &[Version]) -> Option<Version> {
    let range = range.trim();
    if Version::parse(range).is_ok() {
        return None;
    }
    let req = VersionReq::parse(range).ok()?;
    on_registry.iter().filter(|v| req.matches(v)).max().cloned()
}

/// Where a string value of the manifest stands: the quoted value's byte span.
struct Span {
    key_start: usize,
    value_start: usize,
    value_end: usize,
}

/// Finds `"key": "value"` at the top level of the manifest object (`within: None`) or inside the
/// top-level object `within`. A tiny JSON scanner: strings are skipped as wholes, so a key inside
/// another value never matches.
fn find_string_member(text: &str, within: Option<&str>, key: &str) -> Option<Span> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let mut in_target = within.is_none();
    let mut target_depth = 1;
    let mut expect_key = false;
    let mut pending_object_key: Option<String> = None;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                depth += 1;
                if let (Some(name), Some(w)) = (pending_object_key.take(), within) {
                    if depth == 2 && name == w {
                        in_target = true;
                        target_depth = 2;
                    }
                }
                expect_key = true;
            }
            b'}' => {
                if in_target && within.is_some() && depth == target_depth {
                    in_target = false;
                }
                depth = depth.saturating_sub(1);
            }
            b'[' => {
                depth += 1;
                pending_object_key = None;
            }
            b']' => depth = depth.saturating_sub(1),
            b',' => expect_key = true,
            b'"' => {
                let start = i;
                let end = string_end(bytes, i)?;
                let literal = &text[start..=end];
                i = end;
                if expect_key {
                    expect_key = false;
                    let name: String = serde_json::from_str(literal).ok()?;
                    // What follows the key: `:` then the value.
                    let mut j = end + 1;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if bytes.get(j) != Some(&b':') {
                        return None;
                    }
                    j += 1;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if in_target && depth == target_depth && name == key {
                        if bytes.get(j) != Some(&b'"') {
                            return None;
                        }
                        let value_end = string_end(bytes, j)?;
                        return Some(Span {
                            key_start: start,
                            value_start: j,
                            value_end: value_end + 1,
                        });
                    }
                    if depth == 1 {
                        pending_object_key = Some(name);
                    }
                    i = j - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The edited text, accepted only when it parses to exactly `expected`: an edit never changes anything
/// it did not mean to.
fn checked(edited: String, expected: &Value) -> Option<String> {
    (serde_json::from_str::<Value>(&edited).ok().as_ref() == Some(expected)).then_some(edited)
}

/// `dependencies.<name>` set to `version`, every other byte kept.
pub fn set_dependency(text: &str, name: &str, version: &str) -> Option<String> {
    let span = find_string_member(text, Some("dependencies"), name)?;
    let mut expected: Value = serde_json::from_str(text).ok()?;
    expected["dependencies"][name] = Value::String(version.to_string());
    let edited = format!(
        "{}{}{}",
        &text[..span.value_start],
        Value::String(version.to_string()),
        &text[span.value_end..]
    );
    checked(edited, &expected)
}

/// The top-level `key` removed with its comma (and its line, when it has one of its own).
pub fn remove_member(text: &str, key: &str) -> Option<String> {
    let span = find_string_member(text, None, key)?;
    let mut expected: Value = serde_json::from_str(text).ok()?;
    expected.as_object_mut()?.remove(key);
    let after = &text[span.value_end..];
    let trimmed = after.trim_start();
    let edited = if let Some(rest) = trimmed.strip_prefix(',') {
        // Not the last member: drop it, its comma, and the line break when it stood on its own line.
        let line_start = text[..span.key_start].rfind('\n').map_or(0, |n| n + 1);
        let own_line = text[line_start..span.key_start].trim().is_empty();
        let rest_start = text.len() - rest.len();
        if own_line {
            let next_line = text[rest_start..]
                .find('\n')
                .filter(|n| text[rest_start..rest_start + n].trim().is_empty())
                .map_or(rest_start, |n| rest_start + n + 1);
            format!("{}{}", &text[..line_start], &text[next_line..])
        } else {
            let skip = rest.len() - rest.trim_start().len();
            format!("{}{}", &text[..span.key_start], &text[rest_start + skip..])
        }
    } else {
        // The last member: drop the comma before it.
        let before = text[..span.key_start].trim_end();
        let comma = before.strip_suffix(',')?;
        format!("{comma}{after}")
    };
    checked(edited, &expected)
}

/// `unity: "2022.3.11f1"` written as `unity: "2022.3"` plus `unityRelease: "11f1"` after it.
pub fn split_unity(text: &str) -> Option<String> {
    let span = find_string_member(text, None, "unity")?;
    let mut expected: Value = serde_json::from_str(text).ok()?;
    if expected.get("unityRelease").is_some() {
        return None;
    }
    let full = expected["unity"].as_str()?.to_string();
    let mut parts = full.splitn(3, '.');
    let (major, minor, release) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) || !validate::is_unity_release(release) {
        return None;
    }
    expected["unity"] = Value::String(format!("{major}.{minor}"));
    expected["unityRelease"] = Value::String(release.to_string());
    let line_start = text[..span.key_start].rfind('\n').map_or(0, |n| n + 1);
    let indent = &text[line_start..span.key_start];
    let separator = if indent.trim().is_empty() {
        format!(",\n{indent}")
    } else {
        ", ".to_string()
    };
    let edited = format!(
        "{}\"{major}.{minor}\"{separator}\"unityRelease\": {}{}",
        &text[..span.value_start],
        Value::String(release.to_string()),
        &text[span.value_end..]
    );
    checked(edited, &expected)
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    }
}

/// The fixes for one package's problems: the files to write (paths from the repository root) and the
/// changes each holds. `exact` gives, for a dependency name, the versions on the registry (absent:
/// unknown, so its range stays a person's problem); `guid` gives the GUID for a new `.meta` (by its
/// repository path, so a rerun can reuse the GUIDs it proposed before).
pub fn plan_fixes(
    dir: &str,
    manifest_text: &str,
    problems: &[Problem],
    on_registry: &BTreeMap<String, Vec<Version>>,
    guid: &mut dyn FnMut(&str) -> String,
) -> Vec<FileFix> {
    let mut fixes = Vec::new();
    let mut manifest = manifest_text.to_string();
    let mut manifest_changes = Vec::new();
    let parsed: Value = serde_json::from_str(manifest_text).unwrap_or(Value::Null);
    for problem in problems {
        if let Some((asset, is_folder)) = missing_meta(problem) {
            let path = join(dir, &format!("{asset}.meta"));
            if is_folder {
                let content = folder_meta(&guid(&path));
                fixes.push(FileFix {
                    path,
                    content,
                    changes: vec![Change {
                        field: problem.field.clone(),
                        what: format!("adds the folder `.meta` of `{asset}/`"),
                        why: WHY_FOLDER_META.to_string(),
                    }],
                });
            } else if is_text_asset(asset) {
                let content = text_asset_meta(&guid(&path));
                fixes.push(FileFix {
                    path,
                    content,
                    changes: vec![Change {
                        field: problem.field.clone(),
                        what: format!("adds the `.meta` of the text asset `{asset}`"),
                        why: WHY_TEXT_META.to_string(),
                    }],
                });
            }
            continue;
        }
        if let Some(name) = problem.field.strip_prefix("dependencies.") {
            let Some(range) = parsed["dependencies"][name].as_str() else {
                continue;
            };
            let Some(exact) = on_registry
                .get(name)
                .and_then(|versions| exact_for_range(range, versions))
            else {
                continue;
            };
            if let Some(edited) = set_dependency(&manifest, name, &exact.to_string()) {
                manifest = edited;
                manifest_changes.push(Change {
                    field: problem.field.clone(),
                    what: format!("`{name}`: `{range}` → `{exact}`"),
                    why: WHY_EXACT_DEPENDENCY.to_string(),
                });
            }
            continue;
        }
        if problem.field == "unityRelease" && problem.reason.starts_with("needs `unity`") {
            if let Some(edited) = remove_member(&manifest, "unityRelease") {
                manifest = edited;
                manifest_changes.push(Change {
                    field: problem.field.clone(),
                    what: "removes `unityRelease`, which has no `unity` to complete".to_string(),
                    why: WHY_UNITY_RELEASE.to_string(),
                });
            }
            continue;
        }
        if problem.field == "unity" {
            if let Some(edited) = split_unity(&manifest) {
                let release = serde_json::from_str::<Value>(&edited).ok();
                manifest = edited;
                manifest_changes.push(Change {
                    field: problem.field.clone(),
                    what: format!(
                        "`unity`: `{}` → `{}` and `unityRelease` `{}`",
                        parsed["unity"].as_str().unwrap_or_default(),
                        release
                            .as_ref()
                            .and_then(|v| v["unity"].as_str())
                            .unwrap_or_default(),
                        release
                            .as_ref()
                            .and_then(|v| v["unityRelease"].as_str())
                            .unwrap_or_default()
                    ),
                    why: WHY_UNITY_SPLIT.to_string(),
                });
            }
        }
    }
    if !manifest_changes.is_empty() {
        fixes.insert(
            0,
            FileFix {
                path: join(dir, "package.json"),
                content: manifest,
                changes: manifest_changes,
            },
        );
    }
    fixes
}

/// Marks each problem that a kept fix answers, after the fixed package was checked again: a fix is
/// kept only when the publish path's own checks no longer report its field.
pub fn findings(problems: &[Problem], fixed_fields: &BTreeSet<String>) -> Vec<Finding> {
    problems
        .iter()
        .map(|p| Finding {
            field: p.field.clone(),
            reason: p.reason.clone(),
            fix: fixed_fields.contains(&p.field),
        })
        .collect()
}

/// The fixes whose every change the re-check no longer reports (`remaining`: the fields the fixed
/// package still has problems with).
pub fn confirmed(fixes: Vec<FileFix>, remaining: &BTreeSet<String>) -> Vec<FileFix> {
    fixes
        .into_iter()
        .filter_map(|mut f| {
            f.changes.retain(|c| !remaining.contains(&c.field));
            (!f.changes.is_empty()).then_some(f)
        })
        .collect()
}

/// What identifies a fix set, whatever GUIDs it drew: the paths, the fields, and the content of every
/// file that is not a new `.meta`. The same set is never written to the pull request twice.
pub fn fingerprint(fixes: &[FileFix]) -> String {
    let mut hasher = Sha256::new();
    let mut sorted: Vec<&FileFix> = fixes.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for fix in sorted {
        hasher.update(fix.path.as_bytes());
        hasher.update([0]);
        for change in &fix.changes {
            hasher.update(change.field.as_bytes());
            hasher.update([0]);
        }
        if !fix.path.ends_with(".meta") {
            hasher.update(fix.content.as_bytes());
        }
        hasher.update([1]);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint a pull request body carries, if any.
pub fn fingerprint_of(body: &str) -> Option<&str> {
    let start = body.find(FINGERPRINT_MARK)? + FINGERPRINT_MARK.len();
    body[start..].split_whitespace().next()
}

/// The fix commit's message.
pub fn commit_message(fixes: &[FileFix]) -> String {
    let mut message = format!(
        "fix(upm): {} Unity needs\n\n",
        plural(fixes.iter().map(|f| f.changes.len()).sum(), "fix")
    );
    for fix in fixes {
        for change in &fix.changes {
            message.push_str(&format!("- {}: {}\n", fix.path, change.what));
        }
    }
    message
}

/// The fix pull request's body: each change and why Unity needs it, what was left to a person, and
/// the fingerprint mark.
pub fn pull_body(
    packages: &[PackageHealth],
    fixes: &[FileFix],
    published: &[String],
    week: &str,
) -> String {
    let mut body = format!(
        "The weekly UPM health check ({week}) found problems on this branch that Unity's Package \
         Manager refuses or silently mishandles, and that a machine can fix without judgement. Each \
         change, and why Unity needs it:\n\n"
    );
    for fix in fixes {
        for change in &fix.changes {
            body.push_str(&format!(
                "- **`{}`** {}.\n  Why: {}\n",
                fix.path, change.what, change.why
            ));
        }
    }
    let left: Vec<String> = packages
        .iter()
        .flat_map(|p| {
            p.problems
                .iter()
                .filter(|f| !f.fix)
                .map(move |f| format!("- {} `{}`: {}", p.name, f.field, f.reason))
        })
        .collect();
    if !left.is_empty() {
        body.push_str("\nNot changed here, because they need a person:\n\n");
        body.push_str(&left.join("\n"));
        body.push('\n');
    }
    if !published.is_empty() {
        body.push_str(&format!(
            "\n⚠️ {} already on the registry: bump the version in this pull request before merging, \
             or the fix is never published.\n",
            published.join(", ")
        ));
    }
    body.push_str(&format!(
        "\nThis pull request is updated by the next weekly run while it stays open (branch \
         `{FIX_BRANCH}`).\n{FINGERPRINT_MARK}{} -->\n",
        fingerprint(fixes)
    ));
    body
}

// ---------------------------------------------------------------------------------------------------
// The week

/// The ISO 8601 week of a Unix time, as `2026-W49`: a run names the week it belongs to.
pub fn iso_week(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    // 1970-01-01 was a Thursday; ISO weeks start on Monday and belong to the year of their Thursday.
    let weekday = (days + 3).rem_euclid(7); // Monday = 0
    let thursday = days - weekday + 3;
    let (year, ordinal) = year_and_ordinal(thursday);
    format!("{year}-W{:02}", ordinal / 7 + 1)
}

/// The year of a day count since 1970-01-01 and the day's 0-based ordinal in it.
fn year_and_ordinal(days: i64) -> (i64, i64) {
    let mut year = 1970;
    let mut rest = days;
    let length = |y: i64| {
        if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
            366
        } else {
            365
        }
    };
    while rest < 0 {
        year -= 1;
        rest += length(year);
    }
    while rest >= length(year) {
        rest -= length(year);
        year += 1;
    }
    (year, rest)
}

// ---------------------------------------------------------------------------------------------------
// The report

/// What became of a repository's fix pull request this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullOutcome {
    /// `opened`, `updated`, `unchanged`, `dry run` or `failed: …`.
    pub action: String,
    pub number: Option<u64>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryHealth {
    pub repository: String,
    pub sha: Option<String>,
    pub packages: Vec<PackageHealth>,
    pub pull: Option<PullOutcome>,
    /// The repository could not be checked (GitHub or the registry failed, a truncated tree).
    pub error: Option<String>,
}

impl RepositoryHealth {
    pub fn problems(&self) -> usize {
        self.packages.iter().map(|p| p.problems.len()).sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub repositories: usize,
    pub packages: usize,
    pub unhealthy_packages: usize,
    pub problems: usize,
    pub fixable: usize,
    pub fix_pull_requests: usize,
    pub failed_repositories: usize,
}

pub fn counts(lines: &[RepositoryHealth]) -> Counts {
    let mut c = Counts {
        repositories: lines.len(),
        ..Counts::default()
    };
    for line in lines {
        c.packages += line.packages.len();
        c.unhealthy_packages += line
            .packages
            .iter()
            .filter(|p| !p.problems.is_empty())
            .count();
        c.problems += line.problems();
        c.fixable += line
            .packages
            .iter()
            .flat_map(|p| &p.problems)
            .filter(|f| f.fix)
            .count();
        c.fix_pull_requests += usize::from(line.pull.as_ref().is_some_and(|p| p.number.is_some()));
        c.failed_repositories += usize::from(line.error.is_some());
    }
    c
}

pub fn healthy(lines: &[RepositoryHealth]) -> bool {
    lines.iter().all(|l| l.error.is_none() && l.problems() == 0)
}

/// One problem as the report and the Discord message show it: 🔧 when the fix pull request mends it.
fn problem_text(f: &Finding) -> String {
    format!(
        "{}`{}` {}",
        if f.fix { "🔧 " } else { "" },
        f.field,
        f.reason
    )
}

fn pull_cell(pull: Option<&PullOutcome>) -> String {
    match pull {
        None => String::new(),
        Some(PullOutcome {
            url: Some(url),
            number: Some(n),
            action,
        }) => format!("[#{n}]({url}) ({action})"),
        Some(p) => p.action.clone(),
    }
}

/// The job summary: one row per package with problems (a healthy repository gets one row), then the
/// run's cost.
pub fn summary(
    week: &str,
    lines: &[RepositoryHealth],
    requests: u64,
    not_modified: u64,
    millis: u128,
) -> String {
    let c = counts(lines);
    let mut out = format!(
        "## UPM health ({week})\n\n{}, {}: {} in {}, {} fixed by {}.\n\n| Repository | Package | \
         Problems | Fix PR |\n| --- | --- | --- | --- |\n",
        plural(c.repositories, "repository"),
        plural(c.packages, "package"),
        plural(c.problems, "problem"),
        plural(c.unhealthy_packages, "package"),
        c.fixable,
        plural(c.fix_pull_requests, "pull request")
    );
    for line in lines {
        let repository = cell(&line.repository);
        if let Some(error) = &line.error {
            out.push_str(&format!(
                "| {repository} | | ❌ could not check: {} | |\n",
                cell(error)
            ));
            continue;
        }
        let sick: Vec<&PackageHealth> = line
            .packages
            .iter()
            .filter(|p| !p.problems.is_empty())
            .collect();
        if sick.is_empty() {
            out.push_str(&format!(
                "| {repository} | {} | ✅ healthy | |\n",
                plural(line.packages.len(), "package")
            ));
            continue;
        }
        for package in sick {
            let problems: Vec<String> = package.problems.iter().map(problem_text).collect();
            let pull = if package.problems.iter().any(|f| f.fix) {
                pull_cell(line.pull.as_ref())
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {repository} | {}@{} | {} | {} |\n",
                cell(&package.name),
                cell(&package.version),
                problems
                    .iter()
                    .map(|p| cell(p))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                cell(&pull)
            ));
        }
    }
    out.push_str(&format!(
        "\n🔧 fixed by the pull request; the others need a person.\n\n{requests} GitHub requests \
         ({not_modified} answered 304 Not Modified), {:.1} s.\n",
        millis as f64 / 1000.0
    ));
    out
}

const ORANGE: u32 = 0xFF_A5_00;

/// The week's Discord message: the counts and the worst offenders. `None` when everything is healthy.
pub fn alert(week: &str, lines: &[RepositoryHealth], run_url: Option<&str>) -> Option<Message> {
    if healthy(lines) {
        return None;
    }
    let c = counts(lines);
    let mut offenders: Vec<(&RepositoryHealth, &PackageHealth)> = lines
        .iter()
        .flat_map(|l| l.packages.iter().map(move |p| (l, p)))
        .filter(|(_, p)| !p.problems.is_empty())
        .collect();
    offenders.sort_by(|a, b| {
        b.1.problems
            .len()
            .cmp(&a.1.problems.len())
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    let mut fields: Vec<Field> = offenders
        .iter()
        .take(5)
        .map(|(line, package)| {
            let mut value: Vec<String> =
                package.problems.iter().take(3).map(problem_text).collect();
            if package.problems.len() > 3 {
                value.push(format!("…and {} more", package.problems.len() - 3));
            }
            if let Some(url) = line.pull.as_ref().and_then(|p| p.url.as_deref()) {
                value.push(format!("fix PR: {url}"));
            }
            Field {
                name: format!(
                    "{} · {}@{} ({})",
                    line.repository,
                    package.name,
                    package.version,
                    plural(package.problems.len(), "problem")
                ),
                value: value.join("\n"),
                inline: false,
            }
        })
        .collect();
    for line in lines.iter().filter(|l| l.error.is_some()) {
        fields.push(Field {
            name: line.repository.clone(),
            value: format!(
                "could not check: {}",
                line.error.as_deref().unwrap_or_default()
            ),
            inline: false,
        });
    }
    let embed = Embed {
        title: format!(
            "UPM health {week}: {} in {}",
            plural(c.problems, "problem"),
            plural(c.unhealthy_packages, "package")
        ),
        url: run_url.map(str::to_string),
        description: format!(
            "{} repositories and {} packages checked. {} fixed by {} (review and merge them); {} need a \
             person.{}",
            c.repositories,
            c.packages,
            c.fixable,
            plural(c.fix_pull_requests, "pull request"),
            c.problems - c.fixable,
            if c.failed_repositories > 0 {
                format!(" {} could not be checked.", plural(c.failed_repositories, "repository"))
            } else {
                String::new()
            }
        ),
        color: ORANGE,
        fields,
        footer: None,
    };
    Some(Message::of(vec![embed]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(field: &str, reason: &str) -> Problem {
        Problem {
            field: field.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn opted_out_and_inactive_repositories_are_not_checked() {
        let text = r#"{"repositories": [
            {"url": "Studio/A", "status": "active"},
            {"url": "Studio/B", "status": "active", "health": false},
            {"url": "Studio/C", "status": "disabled"}
        ]}"#;
        let names: Vec<String> = targets(text)
            .unwrap()
            .into_iter()
            .map(|t| t.repository)
            .collect();
        assert_eq!(names, ["Studio/A"]);
    }

    #[test]
    fn only_what_a_check_reads_is_downloaded() {
        assert!(must_read("package.json", 5000));
        assert!(must_read("Runtime/A.cs.meta", 200));
        assert!(must_read("Runtime/.npmignore", 10));
        assert!(
            must_read("Textures/a.png", 130),
            "the size of an LFS pointer"
        );
        assert!(!must_read("Textures/a.png", 50_000));
        assert!(!must_read("Runtime/A.cs", 60));
        assert!(!must_read("Samples~/package.json", 60));
        // `git hash-object` of "hello\n".
        assert_eq!(
            git_blob_sha(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn the_publish_paths_missing_meta_problems_are_read_back() {
        // The publish path's own findings (assets::check) for a folder and files without their .meta.
        let files: Vec<String> = [
            "package.json",
            "package.json.meta",
            "Runtime/A.cs",
            "Runtime/A.cs.meta",
            "Docs.txt",
        ]
        .map(String::from)
        .to_vec();
        let mut source = BTreeMap::new();
        for f in &files {
            source.insert(
                f.clone(),
                b"guid: 0123456789abcdef0123456789abcdef\n".to_vec(),
            );
        }
        let manifest = serde_json::Map::new();
        let findings = crate::assets::check(&files, &manifest, &source);
        let read: Vec<(&str, bool)> = findings.problems.iter().filter_map(missing_meta).collect();
        assert_eq!(read, [("Runtime", true), ("Docs.txt", false)]);
        assert_eq!(
            missing_meta(&problem(
                "Runtime.meta/",
                "is a folder named like a .meta file"
            )),
            None
        );
    }

    #[test]
    fn a_range_becomes_the_highest_registry_version_it_allows() {
        let versions: Vec<Version> = ["1.2.0", "1.4.1", "2.0.0", "1.5.0-pre.1"]
            .iter()
            .map(|v| Version::parse(v).unwrap())
            .collect();
        assert_eq!(
            exact_for_range("^1.2.0", &versions),
            Some(Version::new(1, 4, 1))
        );
        assert_eq!(
            exact_for_range("~1.2", &versions),
            Some(Version::new(1, 2, 0))
        );
        assert_eq!(exact_for_range("1.2.0", &versions), None, "already exact");
        assert_eq!(
            exact_for_range("^3.0.0", &versions),
            None,
            "nothing allowed"
        );
        assert_eq!(
            exact_for_range("latest", &versions),
            None,
            "a tag needs a person"
        );
    }

    const MANIFEST: &str = "{\n  \"name\": \"com.s.a\",\n  \"version\": \"1.0.0\",\n  \"description\": \"has \\\"dependencies\\\": {\\\"com.s.b\\\": \\\"^1.0.0\\\"}\",\n  \"unityRelease\": \"11f1\",\n  \"dependencies\": {\n    \"com.s.b\": \"^1.0.0\",\n    \"com.s.c\": \"2.0.0\"\n  }\n}\n";

    #[test]
    fn manifest_edits_keep_every_other_byte() {
        let edited = set_dependency(MANIFEST, "com.s.b", "1.3.0").unwrap();
        assert_eq!(
            edited,
            MANIFEST.replacen("\"com.s.b\": \"^1.0.0\",\n", "\"com.s.b\": \"1.3.0\",\n", 1)
        );
        assert!(
            edited.contains("\\\"com.s.b\\\": \\\"^1.0.0\\\""),
            "the description is untouched"
        );
        let removed = remove_member(MANIFEST, "unityRelease").unwrap();
        assert_eq!(
            removed,
            MANIFEST.replace("  \"unityRelease\": \"11f1\",\n", "")
        );
        // The last member, and one on a shared line.
        assert_eq!(
            remove_member("{\"a\": 1, \"unityRelease\": \"1f1\"}", "unityRelease").unwrap(),
            "{\"a\": 1}"
        );
        assert_eq!(
            remove_member("{\"unityRelease\": \"1f1\", \"a\": 1}", "unityRelease").unwrap(),
            "{\"a\": 1}"
        );
        assert_eq!(
            split_unity("{\n  \"name\": \"x\",\n  \"unity\": \"2022.3.11f1\"\n}\n").unwrap(),
            "{\n  \"name\": \"x\",\n  \"unity\": \"2022.3\",\n  \"unityRelease\": \"11f1\"\n}\n"
        );
        assert_eq!(split_unity("{\"unity\": \"2022.3\"}"), None);
        assert_eq!(set_dependency(MANIFEST, "com.s.zzz", "1.0.0"), None);
    }

    #[test]
    fn fixes_cover_what_needs_no_judgement_only() {
        let problems = [
            problem(
                "Runtime/",
                "folder has no Runtime.meta in the package: Unity ignores its assets",
            ),
            problem(
                "Docs/Guide.md",
                "has no Docs/Guide.md.meta in the package: Unity ignores it",
            ),
            problem(
                "Runtime/A.cs",
                "has no Runtime/A.cs.meta in the package: Unity ignores it",
            ),
            problem(
                "dependencies.com.s.b",
                "\"^1.0.0\" is not a semantic version",
            ),
            problem(
                "dependencies.com.unity.ugui",
                "\"^1.0.0\" is not a semantic version",
            ),
            problem("unityRelease", "needs `unity` (it completes that version)"),
            problem(
                "Runtime/B.cs.meta",
                "GUID x is already used by com.s.other@1.0.0",
            ),
        ];
        let registry = BTreeMap::from([(
            "com.s.b".to_string(),
            vec![Version::new(1, 0, 0), Version::new(1, 3, 0)],
        )]);
        let mut n = 0;
        let fixes = plan_fixes("Packages/a", MANIFEST, &problems, &registry, &mut |path| {
            n += 1;
            assert!(path.starts_with("Packages/a/"));
            format!("{n:032x}")
        });
        let paths: Vec<&str> = fixes.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Packages/a/package.json",
                "Packages/a/Runtime.meta",
                "Packages/a/Docs/Guide.md.meta"
            ]
        );
        assert_eq!(fixes[1].content, folder_meta(&format!("{:032x}", 1)));
        assert!(fixes[1]
            .content
            .contains("folderAsset: yes\nDefaultImporter:"));
        assert!(fixes[2].content.contains("TextScriptImporter:"));
        let manifest: Value = serde_json::from_str(&fixes[0].content).unwrap();
        assert_eq!(manifest["dependencies"]["com.s.b"], "1.3.0");
        assert_eq!(manifest["dependencies"]["com.s.c"], "2.0.0");
        assert!(manifest.get("unityRelease").is_none());
        assert_eq!(
            fixes[0].changes.len(),
            2,
            "a Unity dependency's range is a person's"
        );

        // The fingerprint ignores the GUIDs drawn, not the paths or the manifest.
        let again = plan_fixes("Packages/a", MANIFEST, &problems, &registry, &mut |_| {
            "f".repeat(32)
        });
        assert_eq!(fingerprint(&fixes), fingerprint(&again));
        assert_ne!(fingerprint(&fixes), fingerprint(&fixes[..2]));
        let body = pull_body(&[], &fixes, &[], "2026-W49");
        assert_eq!(fingerprint_of(&body), Some(fingerprint(&fixes).as_str()));
        assert!(body.contains("US-0112"));

        // A fix the re-check still reports is dropped.
        let remaining = BTreeSet::from(["Runtime/".to_string()]);
        let kept = confirmed(fixes, &remaining);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn drift_names_a_version_behind_and_content_changed_without_a_bump() {
        let packed = BTreeMap::from([
            ("package.json".to_string(), "a".to_string()),
            ("Runtime/A.cs".to_string(), "b2".to_string()),
            ("CHANGELOG.md".to_string(), "c2".to_string()),
        ]);
        let stored = BTreeMap::from([
            ("package.json".to_string(), "a".to_string()),
            ("Runtime/A.cs".to_string(), "b".to_string()),
            ("Runtime/Gone.cs".to_string(), "g".to_string()),
            ("CHANGELOG.md".to_string(), "c".to_string()),
        ]);
        let changed = changed_files(&packed, &stored);
        assert_eq!(changed, ["Runtime/A.cs", "Runtime/Gone.cs"]);
        let problems = drift(
            "1.0.0",
            &Registered {
                latest: Some("1.2.0".into()),
                has_version: true,
                changed: Some(changed),
            },
        );
        assert_eq!(problems.len(), 2);
        assert!(problems[0]
            .reason
            .contains("below the registry's latest 1.2.0"));
        assert!(problems[1].reason.contains("2 files changed"));
        assert!(drift(
            "1.2.0",
            &Registered {
                latest: Some("1.2.0".into()),
                has_version: true,
                changed: Some(vec![])
            }
        )
        .is_empty());
    }

    #[test]
    fn weeks_are_iso_weeks() {
        assert_eq!(iso_week(1_796_256_000), "2026-W49"); // 2026-12-03
        assert_eq!(iso_week(1_609_459_200), "2020-W53"); // 2021-01-01 belongs to 2020's last week
        assert_eq!(iso_week(1_704_067_200), "2024-W01"); // 2024-01-01, a Monday
    }

    #[test]
    fn nothing_is_posted_when_everything_is_healthy() {
        let healthy_line = RepositoryHealth {
            repository: "Studio/A".into(),
            sha: Some("s".into()),
            packages: vec![PackageHealth {
                dir: String::new(),
                name: "com.s.a".into(),
                version: "1.0.0".into(),
                problems: vec![],
            }],
            pull: None,
            error: None,
        };
        assert!(alert("2026-W49", std::slice::from_ref(&healthy_line), None).is_none());
        let mut sick = healthy_line.clone();
        sick.repository = "Studio/B".into();
        sick.packages[0].problems = vec![
            Finding {
                field: "Runtime/".into(),
                reason: "folder has no Runtime.meta".into(),
                fix: true,
            },
            Finding {
                field: "version".into(),
                reason: "changed".into(),
                fix: false,
            },
        ];
        sick.pull = Some(PullOutcome {
            action: "opened".into(),
            number: Some(3),
            url: Some("https://pr/3".into()),
        });
        let lines = [healthy_line, sick];
        let message = alert("2026-W49", &lines, Some("https://run")).unwrap();
        assert_eq!(
            message.embeds[0].title,
            "UPM health 2026-W49: 2 problems in 1 package"
        );
        assert!(message.embeds[0].fields[0].value.contains("https://pr/3"));
        assert!(message.allowed_mentions.parse.is_empty());
        let text = summary("2026-W49", &lines, 7, 3, 1500);
        assert!(
            text.contains("| Studio/A | 1 package | ✅ healthy | |"),
            "{text}"
        );
        assert!(text.contains("[#3](https://pr/3) (opened)"), "{text}");
        assert!(text.contains("7 GitHub requests (3 answered 304 Not Modified), 1.5 s."));
    }
}

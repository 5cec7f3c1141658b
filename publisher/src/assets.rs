//! What Unity will choke on in the files a package ships. A package from a registry is immutable in a
//! Unity project: Unity cannot write the `.meta` files it is missing, so it ignores those assets ("has no
//! meta file, but it's in an immutable folder"), and every asset's identity is the `guid` of its `.meta`.
//! These checks run on the list of files the tarball will hold (a directory's selection, or a prebuilt
//! tarball's entries), so they judge what projects will receive, not what the repository holds.
//!
//! Every rule is Unity's own, and each function cites where it comes from: the Package Validation Suite
//! (`com.unity.package-validation-suite`: the `US0xxx` standards in
//! `Editor/ValidationSuite/ValidationTests/Standards/`, the `PVP-xx-x` checks in `Lib/PvpXray/`) or the
//! Unity manual. publisher/README.md ("Validation") lists them with their verdicts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::model::Problem;

/// Listing every missing `.meta` of a package that has none would bury the message: the first few name
/// the pattern, the count says the rest.
const MAX_LISTED: usize = 20;

/// Unity's limit on a path inside a package, counted from the package root, in UTF-16 units as C# counts
/// them (PVP-22-1 in `Lib/PvpXray/PathVerifier.cs`, US-0113 `FilePathLength`). A project's own path and
/// `Library/PackageCache/<name>@<hash>/` come on top, and Windows' 260-character limit then breaks the
/// import.
pub const MAX_PATH_LEN: usize = 140;

/// Folders that Unity imports as ONE asset when a plugin importer claims them: the folder has a `.meta`,
/// its contents have none (`Lib/PvpXray/Verifier.cs`, `PathEntry`: "Loadable Plugin Directories";
/// US-0112 `k_LoadableDirectoryExtensionTypes`). Matched case-insensitively, as both do.
const PLUGIN_FOLDER_SUFFIXES: [&str; 4] = [".androidlib", ".bundle", ".framework", ".plugin"];

/// A Git LFS pointer is a small text file that starts with this line (git-lfs `docs/spec.md`, "The
/// Pointer"); the Validation Suite's PVP-36-1 (`Lib/PvpXray/GitLfsVerifier.cs`) looks for exactly this
/// prefix in files of 126 to 1024 bytes.
const LFS_POINTER_PREFIX: &[u8] = b"version https://git-lfs.github.com/spec/";
const LFS_POINTER_SIZES: std::ops::RangeInclusive<u64> = 126..=1024;

/// The files of a package, as the checks read them: a directory on disk or a tarball in memory.
pub trait PackageFiles {
    /// The file's size in bytes.
    fn size(&self, rel: &str) -> Result<u64, String>;
    /// The file's bytes (the checks read `.meta` files and files small enough to be LFS pointers).
    fn read(&self, rel: &str) -> Result<Vec<u8>, String>;
}

/// A package directory on disk.
pub struct OnDisk<'a>(pub &'a std::path::Path);

impl PackageFiles for OnDisk<'_> {
    fn size(&self, rel: &str) -> Result<u64, String> {
        std::fs::metadata(self.0.join(rel))
            .map(|m| m.len())
            .map_err(|e| e.to_string())
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.0.join(rel)).map_err(|e| e.to_string())
    }
}

/// Files held in memory (a prebuilt tarball's entries), by path relative to the package root.
impl PackageFiles for BTreeMap<String, Vec<u8>> {
    fn size(&self, rel: &str) -> Result<u64, String> {
        self.get(rel)
            .map(|b| b.len() as u64)
            .ok_or_else(|| format!("{rel} is not in the tarball"))
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, String> {
        self.get(rel)
            .cloned()
            .ok_or_else(|| format!("{rel} is not in the tarball"))
    }
}

/// Which Unity versions a package targets, as far as what Unity imports depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Every Unity the package allows ignores the contents of plugin folders. Unity 2023.1 (UUM-9421)
    /// and its backports to 2020.3, 2021.3 and 2022.2 do; 2019.x, 2020.1–2, 2021.1–2 and 2022.1 import
    /// them, so there the children need `.meta` files too. A package without `unity` may be installed
    /// anywhere. This is the Validation Suite's `GetTargetUnityImportsPluginDirs` (`Verifier.cs`) and
    /// US-0112's `#if UNITY_2020_3 || UNITY_2021_3 || UNITY_2022_2_OR_NEWER`.
    pub plugin_children_hidden: bool,
}

impl Target {
    pub fn of(manifest: &Map<String, Value>) -> Target {
        let minimum = manifest
            .get("unity")
            .and_then(Value::as_str)
            .and_then(|v| v.split_once('.'))
            .and_then(|(major, minor)| {
                Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
            });
        let plugin_children_hidden = match minimum {
            None => false,
            Some((major, minor)) => match major {
                ..=2019 => false,
                2020 | 2021 => minor >= 3,
                2022 => minor >= 2,
                _ => true,
            },
        };
        Target {
            plugin_children_hidden,
        }
    }
}

/// A name the asset database skips, with everything below it: a leading `.`, a trailing `~`, or `cvs`
/// (Unity manual, "Special folder names"; the Validation Suite's `PathEntry.IsHiddenLegacy` applies the
/// same test, with the path lower-cased).
fn hidden_name(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~') || name.eq_ignore_ascii_case("cvs")
}

fn is_plugin_folder(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    PLUGIN_FOLDER_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// The plugin folder that `path` lies inside (not `path` itself: the folder is still an asset, only its
/// contents are not), e.g. `Runtime/Plugins/iOS/webrtc.framework` for a file within it.
pub fn plugin_folder_of(path: &str) -> Option<&str> {
    let mut end = 0;
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        end += part.len();
        if is_plugin_folder(part) {
            return Some(&path[..end]);
        }
        end += 1;
    }
    None
}

/// Does Unity import this path (a file, or a folder when `is_dir`) as an asset of its own? Not when a
/// part of it is hidden (see `hidden_name`), not a file ending in `.tmp` (`PathEntry.IsHiddenLegacy`:
/// files only), and not inside a plugin folder when the target Unity ignores plugin folders' contents.
pub fn imported(path: &str, is_dir: bool, target: Target) -> bool {
    if path.split('/').any(hidden_name) {
        return false;
    }
    if !is_dir && path.to_ascii_lowercase().ends_with(".tmp") {
        return false;
    }
    !(target.plugin_children_hidden && plugin_folder_of(path).is_some())
}

/// The GUID of a `.meta` file's text: the `guid:` line's 32 hex digits.
pub fn meta_guid(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim_start().strip_prefix("guid:")?.trim();
        (value.len() == 32 && value.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| value.to_ascii_lowercase())
    })
}

/// What the checks found: `problems` fail the package, `warnings` do not; `guids` (GUID → the `.meta`
/// that declares it) feed the checks across packages (of the run, and of the registry).
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub guids: BTreeMap<String, String>,
}

/// Every folder holding one of `files` (`Runtime`, `Runtime/Sub`, …), excluding the package root.
fn folders(files: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in files {
        let mut rest = file.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            if !out.insert(parent.to_string()) {
                break;
            }
            rest = parent;
        }
    }
    out
}

/// The top-level `files` entries naming `folder` (case-insensitively, as npm matches them).
fn listed_in_files(manifest: &Map<String, Value>, folder: &str) -> bool {
    manifest
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|entry| {
            let entry = entry.trim_start_matches("./").trim_matches('/');
            entry.eq_ignore_ascii_case(folder)
        })
}

/// Pushes `items` as problems, at most `MAX_LISTED` of them and a count of the rest.
fn push_capped(out: &mut Vec<Problem>, items: Vec<Problem>, what: &str) {
    let extra = items.len().saturating_sub(MAX_LISTED);
    out.extend(items.into_iter().take(MAX_LISTED));
    if extra > 0 {
        out.push(Problem {
            field: "(files)".to_string(),
            reason: format!("…and {extra} more {what}"),
        });
    }
}

fn problem(field: &str, reason: String) -> Problem {
    Problem {
        field: field.to_string(),
        reason,
    }
}

/// Why a plugin folder's child needs a `.meta` when the target says so: the author may not know that
/// raising `unity` exempts it.
fn plugin_hint(path: &str, target: Target) -> String {
    match plugin_folder_of(path) {
        Some(folder) if !target.plugin_children_hidden => format!(
            " (it lies in the plugin folder {folder}: Unity 2020.3, 2021.3, 2022.2 and later import \
             such a folder as one asset, but the package's `unity` allows an older editor that imports \
             its contents; declare `\"unity\": \"2021.3\"` or newer, or give each child its .meta)"
        ),
        _ => String::new(),
    }
}

/// US-0112 / PVP-26-4 (`MetaFileVerifierV4.cs`): every file and folder Unity imports has its `.meta`.
/// A plugin folder itself is imported (it needs its `.meta`); its contents are not, for a target that
/// ignores them.
fn missing_metas(
    files: &[String],
    folders: &BTreeSet<String>,
    packed: &BTreeSet<&str>,
    manifest: &Map<String, Value>,
    target: Target,
) -> Vec<Problem> {
    let mut missing = Vec::new();
    for folder in folders
        .iter()
        .filter(|f| imported(f, true, target) && !f.ends_with(".meta"))
    {
        let meta = format!("{folder}.meta");
        if !packed.contains(meta.as_str()) {
            let hint = if !folder.contains('/') && listed_in_files(manifest, folder) {
                format!(" (`files` lists \"{folder}\" but not \"{meta}\")")
            } else {
                plugin_hint(folder, target)
            };
            missing.push(problem(
                &format!("{folder}/"),
                format!("folder has no {meta} in the package{hint}: Unity ignores its assets"),
            ));
        }
    }
    for file in files
        .iter()
        .filter(|f| imported(f, false, target) && !f.ends_with(".meta"))
    {
        let meta = format!("{file}.meta");
        if !packed.contains(meta.as_str()) {
            missing.push(problem(
                file,
                format!(
                    "has no {meta} in the package{}: Unity ignores it",
                    plugin_hint(file, target)
                ),
            ));
        }
    }
    missing
}

/// `git lfs` pointer files packed instead of their content (PVP-36-1, `GitLfsVerifier.cs`): the
/// checkout did not fetch the LFS objects, and every project would get a 130-byte text file where a
/// texture or a native library should be.
fn lfs_pointers(files: &[String], source: &impl PackageFiles) -> Vec<Problem> {
    let mut out = Vec::new();
    for file in files {
        let Ok(size) = source.size(file) else {
            continue;
        };
        if !LFS_POINTER_SIZES.contains(&size) {
            continue;
        }
        if let Ok(bytes) = source.read(file) {
            if bytes.starts_with(LFS_POINTER_PREFIX) {
                out.push(problem(
                    file,
                    "is a Git LFS pointer, not the file's content: the checkout did not fetch LFS \
                     objects (check out with LFS, e.g. actions/checkout `lfs: true`), and every \
                     project would receive the pointer text (PVP-36-1)"
                        .to_string(),
                ));
            }
        }
    }
    out
}

/// PVP-22-1 / US-0113: paths longer than `MAX_PATH_LEN`.
fn long_paths(files: &[String]) -> Vec<Problem> {
    files
        .iter()
        .filter_map(|file| {
            let len = file.encode_utf16().count();
            (len > MAX_PATH_LEN).then(|| {
                problem(
                    file,
                    format!(
                        "is {len} characters long, over Unity's limit of {MAX_PATH_LEN} for a path \
                         inside a package (US-0113, PVP-22-1): the project's own path and \
                         Library/PackageCache/ come on top, and imports fail on Windows; use shorter \
                         names"
                    ),
                )
            })
        })
        .collect()
}

/// File names that never belong in a package (PVP-33-1, `PathVerifier.cs`), limited to those npm would
/// still pack: its own defaults already drop `.DS_Store`, `._*`, `*.orig`, `.*.swp`, `.git/`, `.npmrc`.
const JUNK_NAMES: [&str; 16] = [
    ".gitattributes",
    ".gitmodules",
    ".editorconfig",
    ".gitlab-ci.yml",
    ".hgignore",
    ".volumeicon.icns",
    ".apdisk",
    "codeowners",
    "issue_template.md",
    "pull_request_template.md",
    "renovate.json",
    "codecov.yml",
    "catalog-info.yaml",
    "sonarqube.analysis.xml",
    "testrunneroptions.json",
    ".buginfo",
];
/// Folders of the same list (PVP-33-1: IDE, CI and OS folders).
const JUNK_FOLDERS: [&str; 9] = [
    ".github",
    ".gitlab",
    ".idea",
    ".vs",
    ".vscode",
    "__macosx",
    ".trashes",
    ".fseventsd",
    ".spotlight-v100",
];

/// Junk (PVP-33-1): a warning, because Unity does not import these (they are hidden or not assets), so
/// they only cost download size; Unity's own packages must not ship them.
fn junk(files: &[String]) -> Vec<Problem> {
    files
        .iter()
        .filter(|file| {
            let lower = file.to_ascii_lowercase();
            let parts: Vec<&str> = lower.split('/').collect();
            let (name, dirs) = parts.split_last().expect("split yields one part");
            JUNK_NAMES.contains(name) || dirs.iter().any(|d| JUNK_FOLDERS.contains(d))
        })
        .map(|file| {
            problem(
                file,
                "is repository or editor clutter that Unity's packages must not ship (PVP-33-1); \
                 add it to .npmignore"
                    .to_string(),
            )
        })
        .collect()
}

/// Checks the packed `files` of a package (sorted paths relative to its root). `source` reads `.meta`
/// files and the sizes (and, for small files, the bytes) of the others.
pub fn check(
    files: &[String],
    manifest: &Map<String, Value>,
    source: &impl PackageFiles,
) -> Findings {
    let mut findings = Findings::default();
    let target = Target::of(manifest);
    let packed: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    let folders = folders(files);

    let missing = missing_metas(files, &folders, &packed, manifest, target);
    push_capped(&mut findings.problems, missing, "files without a .meta");

    // PVP-26-4 (`MetaFileVerifierV4.cs`) and PVP-27-1 (`MetaGuidVerifier.cs`): every .meta that Unity
    // reads belongs to an asset it imports, has a GUID, and no GUID is used twice. A .meta that Unity
    // does not read (in `Samples~/`, or inside a plugin folder it imports whole) is left alone: it lets
    // one package serve editors on both sides of the plugin-folder change.
    let mut orphans = Vec::new();
    let mut unreadable = Vec::new();
    for meta in files
        .iter()
        .filter(|f| f.ends_with(".meta") && imported(f, false, target))
    {
        let asset = &meta[..meta.len() - ".meta".len()];
        let is_folder = folders.contains(asset);
        if asset.ends_with(".meta") {
            orphans.push(problem(
                meta,
                format!("is the .meta of {asset}, itself a .meta: Unity never writes one"),
            ));
            continue;
        }
        if !packed.contains(asset) && !is_folder {
            orphans.push(problem(
                meta,
                format!(
                    "has no {asset} beside it in the package (an orphan .meta, PVP-26-4): Unity \
                     warns about it in every project and cannot delete it from an immutable package; \
                     delete it or leave it out with its asset (.npmignore)"
                ),
            ));
            continue;
        }
        if !imported(asset, is_folder, target) {
            orphans.push(problem(
                meta,
                format!(
                    "belongs to {asset}, which Unity does not import (a hidden name: leading `.`, \
                     trailing `~`); Unity treats it as an orphan (PVP-26-4): delete it"
                ),
            ));
            continue;
        }
        let text = source
            .read(meta)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        match text.map(|text| meta_guid(&text)) {
            Ok(Some(guid)) => {
                if let Some(first) = findings.guids.get(&guid) {
                    findings.problems.push(problem(
                        meta,
                        format!(
                            "GUID {guid} is also the GUID of {first}: references to one asset would \
                             resolve to the other"
                        ),
                    ));
                } else {
                    findings.guids.insert(guid, meta.clone());
                }
            }
            Ok(None) => unreadable.push(problem(
                meta,
                "has no `guid:` line of 32 hex digits".to_string(),
            )),
            Err(e) => unreadable.push(problem(meta, format!("cannot be read: {e}"))),
        }
    }
    push_capped(
        &mut findings.problems,
        unreadable,
        ".meta files without a GUID",
    );
    push_capped(&mut findings.problems, orphans, "orphan .meta files");

    // PVP-26-4: "Directory with meta file extension". Unity would read the folder's name as a .meta.
    for folder in folders
        .iter()
        .filter(|f| f.ends_with(".meta") && imported(f, true, target))
    {
        findings.problems.push(problem(
            &format!("{folder}/"),
            "is a folder named like a .meta file: Unity reads it as the .meta of an asset; rename it"
                .to_string(),
        ));
    }

    push_capped(
        &mut findings.problems,
        lfs_pointers(files, source),
        "Git LFS pointers",
    );
    push_capped(&mut findings.problems, long_paths(files), "long paths");
    push_capped(&mut findings.warnings, junk(files), "junk files");

    // PVP-80-1 (`SampleVerifier.cs`: "specifies a non-existent path"): samples the Package Manager
    // offers must be in the tarball.
    let samples = manifest
        .get("samples")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (i, sample) in samples.enumerate() {
        let Some(raw) = sample.get("path").and_then(Value::as_str) else {
            continue;
        };
        let path = raw.trim().trim_start_matches("./").trim_matches('/');
        let prefix = format!("{path}/");
        if !files.iter().any(|f| f.starts_with(&prefix)) {
            findings.problems.push(problem(
                &format!("samples[{i}].path"),
                format!(
                    "{raw:?} holds no file in the package: the Package Manager would offer a sample \
                     it cannot import"
                ),
            ));
        }
    }
    findings
}

/// GUIDs declared by more than one package of a run: for each package index, the problems to add. A
/// duplicated GUID across packages silently breaks references in every project that installs both.
pub fn guid_clashes(
    packages: &[(String, &BTreeMap<String, String>)],
) -> BTreeMap<usize, Vec<Problem>> {
    let mut owners: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, (_, guids)) in packages.iter().enumerate() {
        for (guid, meta) in guids.iter() {
            owners.entry(guid).or_default().push((i, meta));
        }
    }
    let mut out: BTreeMap<usize, Vec<Problem>> = BTreeMap::new();
    for (guid, holders) in owners.iter().filter(|(_, h)| h.len() > 1) {
        for &(i, meta) in holders {
            let others = holders
                .iter()
                .filter(|(j, _)| *j != i)
                .map(|(j, other)| format!("{} {other}", packages[*j].0))
                .collect::<Vec<_>>()
                .join(", ");
            out.entry(i).or_default().push(Problem {
                field: meta.to_string(),
                reason: format!("GUID {guid} is also used by {others}"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid(n: u32) -> String {
        format!("fileFormatVersion: 2\nguid: {n:032x}\nMonoImporter:\n")
    }

    fn list(files: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = files.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    fn manifest(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    /// The files in memory: every .meta gets a distinct GUID unless `special` gives its text; other
    /// files hold a line of C#.
    fn tree(files: &[String], special: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        files
            .iter()
            .map(|path| {
                let text = match special.iter().find(|(p, _)| p == path) {
                    Some((_, text)) => text.to_string(),
                    None if path.ends_with(".meta") => guid(
                        path.bytes()
                            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)),
                    ),
                    None => "// content\n".to_string(),
                };
                (path.clone(), text.into_bytes())
            })
            .collect()
    }

    fn run(files: &[String], m: &Map<String, Value>, special: &[(&str, &str)]) -> Findings {
        check(files, m, &tree(files, special))
    }

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    /// `files`, each with its .meta, and every folder on the way with its .meta (where Unity imports
    /// them).
    fn with_metas(files: &[&str]) -> Vec<String> {
        let files = list(files);
        let mut all: BTreeSet<String> = files.iter().cloned().collect();
        for f in files
            .iter()
            .filter(|f| !f.ends_with(".meta") && imported(f, false, NEW_UNITY))
        {
            all.insert(format!("{f}.meta"));
        }
        for folder in folders(&files)
            .into_iter()
            .filter(|f| imported(f, true, NEW_UNITY))
        {
            all.insert(format!("{folder}.meta"));
        }
        all.into_iter().collect()
    }

    const NEW_UNITY: Target = Target {
        plugin_children_hidden: true,
    };

    #[test]
    fn what_unity_imports() {
        for yes in ["Runtime/A.cs", "package.json", "Editor/Sub/B.asmdef"] {
            assert!(imported(yes, false, NEW_UNITY), "{yes}");
        }
        for no in [
            "Samples~/S.cs",
            "Documentation~/index.md",
            ".npmignore",
            "Runtime/.hidden/x.cs",
            "CVS/Entries",
            "cvs/Entries",
            "Runtime/cache.TMP",
            "Runtime/Plugins/iOS/webrtc.framework/Info.plist",
            "Plugins/X.BUNDLE/Contents/Info.plist",
            "Plugins/a.androidlib/build.gradle",
            "Plugins/P.plugin/Contents/MacOS/P",
        ] {
            assert!(!imported(no, false, NEW_UNITY), "{no}");
        }
        // The plugin folder itself is an asset; a folder ending in .tmp is not a temporary file.
        assert!(imported(
            "Runtime/Plugins/iOS/webrtc.framework",
            true,
            NEW_UNITY
        ));
        assert!(imported("Runtime/Data.tmp", true, NEW_UNITY));
        // An editor that imports plugin folders' contents sees the children.
        let old = Target {
            plugin_children_hidden: false,
        };
        assert!(imported("Plugins/X.bundle/Contents/Info.plist", false, old));
        assert_eq!(
            plugin_folder_of("Runtime/Plugins/iOS/webrtc.framework/Headers/a.h"),
            Some("Runtime/Plugins/iOS/webrtc.framework")
        );
        assert_eq!(
            plugin_folder_of("Runtime/Plugins/iOS/webrtc.framework"),
            None
        );
    }

    #[test]
    fn which_editors_ignore_plugin_folder_contents() {
        let hidden = |unity: &str| {
            Target::of(&manifest(&format!(r#"{{"unity":"{unity}"}}"#))).plugin_children_hidden
        };
        for yes in [
            "2020.3", "2021.3", "2022.2", "2022.3", "2023.1", "6000.0", "6000.3",
        ] {
            assert!(hidden(yes), "{yes}");
        }
        for no in [
            "2019.4", "2020.1", "2020.2", "2021.1", "2021.2", "2022.1", "odd",
        ] {
            assert!(!hidden(no), "{no}");
        }
        assert!(!Target::of(&Map::new()).plugin_children_hidden);
    }

    #[test]
    fn guids() {
        assert_eq!(
            meta_guid("fileFormatVersion: 2\nguid: 0123456789ABCDEF0123456789abcdef\n").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(meta_guid("fileFormatVersion: 2\n"), None);
        assert_eq!(meta_guid("guid: 1234"), None);
    }

    #[test]
    fn a_complete_package_passes() {
        let files = list(&[
            "package.json",
            "package.json.meta",
            "README.md",
            "README.md.meta",
            "Runtime.meta",
            "Runtime/A.cs",
            "Runtime/A.cs.meta",
            "Runtime/Sub.meta",
            "Runtime/Sub/B.cs",
            "Runtime/Sub/B.cs.meta",
            "Samples~/Basic/S.cs",
            "Samples~/Basic/S.cs.meta",
            "Documentation~/index.md",
            ".npmignore",
        ]);
        let m = manifest(r#"{"samples":[{"path":"Samples~/Basic"}]}"#);
        let f = run(&files, &m, &[]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        // The sample's .meta is not read by Unity until the sample is imported into Assets/.
        assert_eq!(f.guids.len(), 6);
    }

    /// com.unity.webrtc 3.0.0's native plugins: an iOS framework and a macOS bundle, each folder with
    /// its .meta and nothing inside with one.
    fn webrtc_shaped() -> Vec<String> {
        let mut files = with_metas(&[
            "package.json",
            "README.md",
            "Runtime/Scripts/WebRTC.cs",
            "Runtime/Unity.WebRTC.asmdef",
            "Runtime/Plugins/x86_64/webrtc.dll",
            "Runtime/Plugins/x86_64/libwebrtc.so",
        ]);
        for folder in [
            "Runtime/Plugins/iOS",
            "Runtime/Plugins/iOS/webrtc.framework",
            "Runtime/Plugins/macOS",
            "Runtime/Plugins/macOS/libwebrtc.bundle",
        ] {
            files.push(format!("{folder}.meta"));
        }
        for child in [
            "Runtime/Plugins/iOS/webrtc.framework/Info.plist",
            "Runtime/Plugins/iOS/webrtc.framework/webrtc",
            "Runtime/Plugins/iOS/webrtc.framework/Headers/WebRTC.h",
            "Runtime/Plugins/iOS/webrtc.framework/Modules/module.modulemap",
            "Runtime/Plugins/macOS/libwebrtc.bundle/Contents/Info.plist",
            "Runtime/Plugins/macOS/libwebrtc.bundle/Contents/MacOS/libwebrtc",
            "Runtime/Plugins/macOS/libwebrtc.bundle/Contents/_CodeSignature/CodeResources",
        ] {
            files.push(child.to_string());
        }
        files.sort();
        files
    }

    /// com.unity.mobile.notifications' Android library: a Gradle project folder imported as one asset.
    fn notifications_shaped() -> Vec<String> {
        let mut files = with_metas(&[
            "package.json",
            "Runtime/Android/AndroidNotificationCenter.cs",
            "Runtime/Unity.Notifications.Android.asmdef",
        ]);
        files.push("Runtime/Android/Plugins.meta".into());
        files.push("Runtime/Android/Plugins/mobilenotifications.androidlib.meta".into());
        for child in [
            "build.gradle",
            "proguard-rules.pro",
            "src/main/AndroidManifest.xml",
            "src/main/java/com/unity/androidnotifications/UnityNotificationManager.java",
        ] {
            files.push(format!(
                "Runtime/Android/Plugins/mobilenotifications.androidlib/{child}"
            ));
        }
        files.sort();
        files
    }

    #[test]
    fn plugin_folders_are_one_asset_as_in_unitys_own_packages() {
        let webrtc = webrtc_shaped();
        let f = run(&webrtc, &manifest(r#"{"unity":"2020.3"}"#), &[]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);

        let notifications = notifications_shaped();
        let f = run(&notifications, &manifest(r#"{"unity":"2021.3"}"#), &[]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);

        // A .meta inside the folder is tolerated (a package serving older editors too), and not read.
        let mut bridged = notifications.clone();
        bridged.push(
            "Runtime/Android/Plugins/mobilenotifications.androidlib/build.gradle.meta".into(),
        );
        bridged.sort();
        let f = run(&bridged, &manifest(r#"{"unity":"2021.3"}"#), &[]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert!(!f.guids.values().any(|m| m.contains("androidlib/")));
    }

    #[test]
    fn the_plugin_folder_itself_needs_its_meta() {
        let files: Vec<String> = webrtc_shaped()
            .into_iter()
            .filter(|f| f != "Runtime/Plugins/iOS/webrtc.framework.meta")
            .collect();
        let f = run(&files, &manifest(r#"{"unity":"2022.3"}"#), &[]);
        assert_eq!(
            fields(&f.problems),
            ["Runtime/Plugins/iOS/webrtc.framework/"]
        );
    }

    #[test]
    fn an_editor_that_imports_plugin_contents_needs_their_metas() {
        // No `unity`: any editor may install it, including those that import the children.
        let f = run(&notifications_shaped(), &Map::new(), &[]);
        assert!(
            fields(&f.problems)
                .contains(&"Runtime/Android/Plugins/mobilenotifications.androidlib/build.gradle"),
            "{:?}",
            f.problems
        );
        assert!(
            f.problems[0]
                .reason
                .contains("declare `\"unity\": \"2021.3\"` or newer"),
            "{}",
            f.problems[0].reason
        );
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let files = list(&[
            "package.json",
            "Runtime/A.cs",
            "Runtime/A.cs.meta",
            "Runtime/B.cs",
            "Runtime/B.cs.meta",
            "Runtime/C.cs.meta",
            "Editor.meta",
            "Editor/E.cs",
            "Editor/E.cs.meta",
        ]);
        let m = manifest(
            r#"{"files":["Runtime","Editor","Editor.meta"],"samples":[{"path":"Samples~/Gone"}]}"#,
        );
        let same = guid(1);
        let f = run(
            &files,
            &m,
            &[
                ("Runtime/A.cs.meta", &same),
                ("Runtime/B.cs.meta", &same),
                ("Editor/E.cs.meta", "fileFormatVersion: 2\n"),
            ],
        );
        assert_eq!(
            fields(&f.problems),
            [
                "Runtime/",
                "package.json",
                "Runtime/B.cs.meta",
                "Editor/E.cs.meta",
                "Runtime/C.cs.meta",
                "samples[0].path"
            ]
        );
        assert!(
            f.problems[0]
                .reason
                .contains("`files` lists \"Runtime\" but not \"Runtime.meta\""),
            "{}",
            f.problems[0].reason
        );
        assert!(f.problems[2].reason.contains("Runtime/A.cs.meta"));
        assert!(f.problems[4].reason.contains("orphan .meta"));
    }

    #[test]
    fn metas_unity_cannot_pair_with_an_imported_asset_fail() {
        let mut files = with_metas(&["package.json", "Runtime/A.cs"]);
        files.extend(
            [
                "Samples~.meta",
                "Runtime/A.cs.meta.meta",
                "Runtime/Odd.meta/X.cs",
                "Runtime/Odd.meta/X.cs.meta",
                "Samples~/S/S.cs",
                "Samples~/S/Orphan.cs.meta",
            ]
            .map(String::from),
        );
        files.sort();
        let f = run(&files, &Map::new(), &[]);
        assert_eq!(
            fields(&f.problems),
            [
                "Runtime/A.cs.meta.meta",
                "Samples~.meta",
                "Runtime/Odd.meta/"
            ],
            "{:?}",
            f.problems
        );
        assert!(f.problems[1]
            .reason
            .contains("Samples~, which Unity does not import"));
    }

    #[test]
    fn git_lfs_pointers_fail_with_their_path() {
        let pointer = "version https://git-lfs.github.com/spec/v1\n\
                       oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
                       size 12345\n";
        assert!(LFS_POINTER_SIZES.contains(&(pointer.len() as u64)));
        let big = format!("{pointer}{}", "x".repeat(2000));
        let files = with_metas(&[
            "package.json",
            "Runtime/Plugins/Android/libgame.so",
            "Runtime/Textures/Logo.png",
            "Documentation~/images/shot.png",
        ]);
        let f = run(
            &files,
            &Map::new(),
            &[
                ("Runtime/Plugins/Android/libgame.so", pointer),
                ("Documentation~/images/shot.png", pointer),
                ("Runtime/Textures/Logo.png", &big),
            ],
        );
        assert_eq!(
            fields(&f.problems),
            [
                "Documentation~/images/shot.png",
                "Runtime/Plugins/Android/libgame.so"
            ]
        );
        assert!(f.problems[1].reason.contains("Git LFS pointer"));
    }

    #[test]
    fn paths_over_unitys_limit_fail() {
        let dir = "Runtime/".to_string() + &"Deep/".repeat(24); // 8 + 120 characters
        let at_limit = format!("{dir}{}.cs", "a".repeat(140 - dir.len() - 3));
        let over = format!("{dir}{}.cs", "b".repeat(141 - dir.len() - 3));
        assert_eq!(at_limit.len(), 140);
        let files: Vec<String> = with_metas(&["package.json", &at_limit, &over])
            .into_iter()
            .filter(|f| !f.ends_with(".meta") || f.len() <= 140)
            .collect();
        let f = run(&files, &Map::new(), &[]);
        let long: Vec<&Problem> = f
            .problems
            .iter()
            .filter(|p| p.reason.contains("Unity's limit of 140"))
            .collect();
        assert_eq!(long.len(), 1, "{:?}", f.problems);
        assert_eq!(long[0].field, over);
        assert!(long[0].reason.starts_with("is 141 characters long"));
    }

    #[test]
    fn junk_only_warns() {
        let mut files = with_metas(&["package.json", "Runtime/A.cs"]);
        files.extend(
            [
                ".gitattributes",
                ".github/workflows/ci.yml",
                "Runtime/.vscode/settings.json",
            ]
            .map(String::from),
        );
        files.sort();
        let f = run(&files, &Map::new(), &[]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(
            fields(&f.warnings),
            [
                ".gitattributes",
                ".github/workflows/ci.yml",
                "Runtime/.vscode/settings.json"
            ]
        );
        assert!(f.warnings[0].reason.contains("PVP-33-1"));
    }

    #[test]
    fn a_sample_whose_folder_is_not_packed_still_fails() {
        // As in ZString: `samples[].path` names a folder the package does not ship.
        let files = with_metas(&["package.json", "Runtime/ZString.cs"]);
        let m = manifest(
            r#"{"unity":"2021.3","samples":[{"displayName":"Demo","path":"Samples~/Demo"}]}"#,
        );
        let f = run(&files, &m, &[]);
        assert_eq!(fields(&f.problems), ["samples[0].path"]);
        assert!(f.problems[0]
            .reason
            .contains("\"Samples~/Demo\" holds no file"));
    }

    #[test]
    fn a_package_without_metas_gets_a_bounded_list() {
        let mut files: Vec<String> = (0..100).map(|i| format!("Runtime/F{i:03}.cs")).collect();
        files.push("package.json".into());
        files.sort();
        let f = run(&files, &Map::new(), &[]);
        assert_eq!(f.problems.len(), MAX_LISTED + 1);
        assert_eq!(
            f.problems.last().unwrap().reason,
            "…and 82 more files without a .meta"
        );
    }
    #[test]
    fn guids_clash_across_packages() {
        let a: BTreeMap<String, String> = [
            ("g1".to_string(), "Runtime/A.cs.meta".to_string()),
            ("g2".into(), "x.meta".into()),
        ]
        .into();
        let b: BTreeMap<String, String> =
            [("g1".to_string(), "Runtime/Copy.cs.meta".to_string())].into();
        let c: BTreeMap<String, String> = [("g3".to_string(), "y.meta".to_string())].into();
        let clashes = guid_clashes(&[
            ("com.s.a@1.0.0".into(), &a),
            ("com.s.b@1.0.0".into(), &b),
            ("com.s.c@1.0.0".into(), &c),
        ]);
        assert_eq!(clashes.len(), 2);
        assert_eq!(clashes[&0][0].field, "Runtime/A.cs.meta");
        assert!(clashes[&0][0]
            .reason
            .contains("com.s.b@1.0.0 Runtime/Copy.cs.meta"));
        assert!(clashes[&1][0]
            .reason
            .contains("com.s.a@1.0.0 Runtime/A.cs.meta"));
    }
}

//! What Unity will choke on in the files a package ships (anchor: Unity's Package Validation Suite). A
//! package from a registry is immutable in a Unity project: Unity cannot write the `.meta` files it is
//! missing, so it ignores those assets ("has no meta file, but it's in an immutable folder"), and every
//! asset's identity is the `guid` of its `.meta`. These checks run on the list of files the tarball will
//! hold, so they judge what projects will receive, not what the repository holds.
//!
//! Fail or warn (publisher/README.md, "Validation"): a missing `.meta`, a `.meta` without a GUID, a GUID
//! used twice and a sample path that is not packed fail the package; an orphan `.meta` (no asset beside it)
//! only warns, because Unity merely logs it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::model::Problem;

/// Listing every missing `.meta` of a package that has none would bury the message: the first few name
/// the pattern, the count says the rest.
const MAX_LISTED: usize = 20;

/// Does Unity import this path? Unity skips every file and folder whose name starts with `.`, ends with
/// `~`, is `cvs`, or ends with `.tmp` (Unity manual, "Special folder names" / hidden assets), and
/// everything below such a folder.
pub fn imported(path: &str) -> bool {
    path.split('/').all(|name| {
        let lower = name.to_ascii_lowercase();
        !(name.starts_with('.') || name.ends_with('~') || lower == "cvs" || lower.ends_with(".tmp"))
    })
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
/// that declares it) feed the check across the packages of a run.
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

/// Checks the packed `files` of a package (sorted paths relative to its root). `read` returns the text
/// of a packed file (only `.meta` files are read).
pub fn check(
    files: &[String],
    manifest: &Map<String, Value>,
    read: impl Fn(&str) -> Result<String, String>,
) -> Findings {
    let mut findings = Findings::default();
    let packed: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    let folders = folders(files);

    // Every imported file and folder has its .meta.
    let mut missing = Vec::new();
    for folder in folders.iter().filter(|f| imported(f)) {
        let meta = format!("{folder}.meta");
        if !packed.contains(meta.as_str()) {
            let hint = if !folder.contains('/') && listed_in_files(manifest, folder) {
                format!(" (`files` lists \"{folder}\" but not \"{meta}\")")
            } else {
                String::new()
            };
            missing.push(Problem {
                field: format!("{folder}/"),
                reason: format!(
                    "folder has no {meta} in the package{hint}: Unity ignores its assets"
                ),
            });
        }
    }
    for file in files
        .iter()
        .filter(|f| imported(f) && !f.ends_with(".meta"))
    {
        let meta = format!("{file}.meta");
        if !packed.contains(meta.as_str()) {
            missing.push(Problem {
                field: file.clone(),
                reason: format!("has no {meta} in the package: Unity ignores it"),
            });
        }
    }
    push_capped(&mut findings.problems, missing, "files without a .meta");

    // Every imported .meta belongs to an asset, has a GUID, and no GUID is used twice.
    let mut orphans = Vec::new();
    let mut unreadable = Vec::new();
    for meta in files.iter().filter(|f| f.ends_with(".meta") && imported(f)) {
        let asset = &meta[..meta.len() - ".meta".len()];
        if !packed.contains(asset) && !folders.contains(asset) {
            orphans.push(Problem {
                field: meta.clone(),
                reason: format!("no {asset} beside it in the package (an orphan .meta)"),
            });
            continue;
        }
        match read(meta).map(|text| meta_guid(&text)) {
            Ok(Some(guid)) => {
                if let Some(first) = findings.guids.get(&guid) {
                    findings.problems.push(Problem {
                        field: meta.clone(),
                        reason: format!(
                            "GUID {guid} is also the GUID of {first}: references to one asset would \
                             resolve to the other"
                        ),
                    });
                } else {
                    findings.guids.insert(guid, meta.clone());
                }
            }
            Ok(None) => unreadable.push(Problem {
                field: meta.clone(),
                reason: "has no `guid:` line of 32 hex digits".to_string(),
            }),
            Err(e) => unreadable.push(Problem {
                field: meta.clone(),
                reason: format!("cannot be read: {e}"),
            }),
        }
    }
    push_capped(
        &mut findings.problems,
        unreadable,
        ".meta files without a GUID",
    );
    push_capped(&mut findings.warnings, orphans, "orphan .meta files");

    // Samples the Package Manager offers must be in the tarball.
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
            findings.problems.push(Problem {
                field: format!("samples[{i}].path"),
                reason: format!(
                    "{raw:?} holds no file in the package: the Package Manager would offer a sample \
                     it cannot import"
                ),
            });
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

    /// Reads `.meta` texts from a table; every .meta gets a distinct GUID unless listed.
    fn reader(special: &[(&str, &str)]) -> impl Fn(&str) -> Result<String, String> {
        let special: BTreeMap<String, String> = special
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |path: &str| {
            Ok(special.get(path).cloned().unwrap_or_else(|| {
                guid(
                    path.bytes()
                        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)),
                )
            }))
        }
    }

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn what_unity_imports() {
        for yes in ["Runtime/A.cs", "package.json", "Editor/Sub/B.asmdef"] {
            assert!(imported(yes), "{yes}");
        }
        for no in [
            "Samples~/S.cs",
            "Documentation~/index.md",
            ".npmignore",
            "Runtime/.hidden/x.cs",
            "CVS/Entries",
            "Runtime/cache.TMP",
        ] {
            assert!(!imported(no), "{no}");
        }
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
            "Documentation~/index.md",
            ".npmignore",
        ]);
        let m = manifest(r#"{"samples":[{"path":"Samples~/Basic"}]}"#);
        let f = check(&files, &m, reader(&[]));
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        assert_eq!(f.guids.len(), 6);
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
        let f = check(
            &files,
            &m,
            reader(&[
                ("Runtime/A.cs.meta", &same),
                ("Runtime/B.cs.meta", &same),
                ("Editor/E.cs.meta", "fileFormatVersion: 2\n"),
            ]),
        );
        assert_eq!(
            fields(&f.problems),
            [
                "Runtime/",
                "package.json",
                "Runtime/B.cs.meta",
                "Editor/E.cs.meta",
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
        assert_eq!(fields(&f.warnings), ["Runtime/C.cs.meta"]);
    }

    #[test]
    fn a_package_without_metas_gets_a_bounded_list() {
        let mut files: Vec<String> = (0..100).map(|i| format!("Runtime/F{i:03}.cs")).collect();
        files.push("package.json".into());
        files.sort();
        let f = check(&files, &Map::new(), reader(&[]));
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

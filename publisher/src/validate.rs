//! Is a UPM-shaped package.json publishable? Every problem is reported with its field, so one run tells
//! the author everything to fix. Validation happens before any upload because Verdaccio can leave a
//! version unpublishable after rejecting an upload of it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::model::{Failed, Package, PackageName, PackagePath, Problem, Skipped, Stage};

/// npm's limit on the length of a package name.
const MAX_NAME_LEN: usize = 214;

#[derive(Debug)]
pub enum Validated {
    Ok(Box<Package>),
    Skip(Skipped),
    Fail(Failed),
}

pub fn validate(path: PackagePath, dir: PathBuf, manifest: Map<String, Value>) -> Validated {
    let mut problems = Vec::new();
    let mut problem = |field: &str, reason: String| {
        problems.push(Problem {
            field: field.to_string(),
            reason,
        })
    };

    let name = required(
        &manifest,
        "name",
        |name| check_name(name).map(|()| name.to_string()),
        &mut problem,
    );
    let version = required(&manifest, "version", check_version, &mut problem);
    let display_name = match manifest.get("displayName") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            problem("displayName", "must be a non-empty string".to_string());
            None
        }
    };
    match manifest.get("unity") {
        None => {}
        Some(Value::String(s)) if is_unity_version(s) => {}
        Some(_) => problem(
            "unity",
            "must be a Unity version like \"2022.3\" (major.minor)".to_string(),
        ),
    }
    match manifest.get("unityRelease") {
        None => {}
        Some(Value::String(s)) if is_unity_release(s) && !manifest.contains_key("unity") => {
            problem(
                "unityRelease",
                "needs `unity` (it completes that version)".to_string(),
            )
        }
        Some(Value::String(s)) if is_unity_release(s) => {}
        Some(_) => problem(
            "unityRelease",
            "must be a Unity release like \"11f1\" or \"0b4\" (patch, letter, build)".to_string(),
        ),
    }
    match manifest.get("files") {
        None => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => problem("files", "must be an array of strings".to_string()),
    }
    check_dependencies(manifest.get("dependencies"), &mut problem);
    check_samples(manifest.get("samples"), &mut problem);

    let raw_name = manifest
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let raw_version = manifest
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut warnings = Vec::new();
    if let Some(name) = name.as_deref().filter(|n| n.starts_with('@')) {
        warnings.push(Problem {
            field: "name".to_string(),
            reason: format!(
                "{name:?} is a scoped npm name: Unity's scoped registries select packages by \
                 reverse-domain prefix (com.studio.*), so projects may not find it"
            ),
        });
    }
    match (name, version, problems.is_empty()) {
        (Some(name), Some(version), true) => {
            // npm refuses to publish a private package; so do we, without calling it a failure.
            if manifest.get("private") == Some(&Value::Bool(true)) {
                return Validated::Skip(Skipped {
                    path,
                    name: raw_name,
                    version: raw_version,
                    reason: "marked `\"private\": true`".to_string(),
                });
            }
            Validated::Ok(Box::new(Package {
                path,
                dir,
                name: PackageName::new_unchecked(name),
                version,
                display_name,
                manifest,
                warnings,
            }))
        }
        _ => {
            let reason = problems
                .iter()
                .map(|p| format!("`{}` {}", p.field, p.reason))
                .collect::<Vec<_>>()
                .join("; ");
            Validated::Fail(Failed {
                file: path.manifest_file(),
                path,
                name: raw_name,
                version: raw_version,
                stage: Stage::Validate,
                problems,
                reason,
            })
        }
    }
}

/// A field that must be a string passing `check`: its checked value, or `None` with the problem reported.
fn required<T>(
    manifest: &Map<String, Value>,
    field: &str,
    check: impl FnOnce(&str) -> Result<T, String>,
    problem: &mut impl FnMut(&str, String),
) -> Option<T> {
    let reason = match manifest.get(field) {
        Some(Value::String(value)) => match check(value) {
            Ok(checked) => return Some(checked),
            Err(reason) => reason,
        },
        Some(_) => "must be a string".to_string(),
        None => "is missing".to_string(),
    };
    problem(field, reason);
    None
}

/// A lower-case reverse-domain name (`com.studio.tool`, Unity's convention) or an npm scoped name
/// (`@studio/tool`). Unity accepts lower-case letters, digits, `-`, `_` and `.`; npm additionally caps the
/// length and forbids names that start with `.` or `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if name != name.to_lowercase() {
        return Err(format!("{name:?} must be lower-case"));
    }
    if let Some(scoped) = name.strip_prefix('@') {
        let Some((scope, bare)) = scoped.split_once('/') else {
            return Err(format!("{name:?} must look like @scope/name"));
        };
        for (part, what) in [(scope, "scope"), (bare, "name")] {
            if !is_npm_segment(part) {
                return Err(format!(
                    "{name:?}: the {what} must start with a letter or digit and contain only a-z, 0-9, '-', '_', '.'"
                ));
            }
        }
        return Ok(());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "{name:?} must be reverse-domain (e.g. com.studio.tool) or @scope/name"
        ));
    }
    if labels.iter().any(|label| !is_domain_label(label)) {
        return Err(format!(
            "{name:?}: each dot-separated part must start with a letter or digit and contain only a-z, 0-9, '-', '_'"
        ));
    }
    Ok(())
}

fn is_domain_label(label: &str) -> bool {
    let mut chars = label.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_npm_segment(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        })
}

/// Strict SemVer 2.0 (no `v` prefix, no ranges, no leading zeros): what npm stores and Unity resolves.
pub fn check_version(version: &str) -> Result<semver::Version, String> {
    if version.trim() != version {
        return Err(format!("{version:?} has surrounding whitespace"));
    }
    semver::Version::parse(version)
        .map_err(|e| format!("{version:?} is not a semantic version (MAJOR.MINOR.PATCH): {e}"))
}

/// Unity's `unityRelease`: the patch number, the release kind (a alpha, b beta, f final, p patch, x
/// experimental) and the build, e.g. `11f1`.
pub fn is_unity_release(s: &str) -> bool {
    let Some(letter) = s.find(|c: char| c.is_ascii_alphabetic()) else {
        return false;
    };
    let (patch, rest) = s.split_at(letter);
    let (kind, build) = rest.split_at(1);
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    digits(patch) && matches!(kind, "a" | "b" | "f" | "p" | "x") && digits(build)
}

/// `dependencies`: package names to exact versions. Unity's resolver takes a version, never an npm range,
/// so `^1.2.0` or `latest` breaks every project that installs the package.
fn check_dependencies(value: Option<&Value>, problem: &mut impl FnMut(&str, String)) {
    let deps = match value {
        None => return,
        Some(Value::Object(deps)) => deps,
        Some(_) => {
            problem(
                "dependencies",
                "must be an object of package name to version".to_string(),
            );
            return;
        }
    };
    for (name, version) in deps {
        let field = format!("dependencies.{name}");
        if let Err(reason) = check_name(name) {
            problem(&field, format!("is not a package name: {reason}"));
        }
        match version.as_str() {
            Some(v) => {
                if let Err(reason) = check_version(v) {
                    problem(
                        &field,
                        format!("{reason} (Unity takes an exact version, not a range)"),
                    );
                }
            }
            None => problem(&field, "must be a version string".to_string()),
        }
    }
}

/// `samples`: objects whose `path` names a folder of the package (whether it is packed is checked with the
/// files, in `assets`).
fn check_samples(value: Option<&Value>, problem: &mut impl FnMut(&str, String)) {
    let samples = match value {
        None => return,
        Some(Value::Array(samples)) => samples,
        Some(_) => {
            problem(
                "samples",
                "must be an array of {displayName, description, path}".to_string(),
            );
            return;
        }
    };
    for (i, sample) in samples.iter().enumerate() {
        match sample.get("path").and_then(Value::as_str) {
            Some(path) if !path.trim().is_empty() => {}
            _ => problem(
                &format!("samples[{i}].path"),
                "must be a non-empty string".to_string(),
            ),
        }
    }
}

/// The `dependencies` of a validated manifest, as (name, version) pairs.
pub fn dependencies(manifest: &Map<String, Value>) -> Vec<(String, semver::Version)> {
    manifest
        .get("dependencies")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.clone(), semver::Version::parse(v.as_str()?).ok()?)))
        .collect()
}

fn is_unity_version(s: &str) -> bool {
    match s.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty()
                && !minor.is_empty()
                && major.chars().all(|c| c.is_ascii_digit())
                && minor.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Two package.json files declaring the same name@version in one commit: publishing either would be a
/// guess, so both are reported. Returns, for each index, the other files declaring the same version.
pub fn duplicates(packages: &[Package]) -> BTreeMap<usize, Vec<String>> {
    let mut by_id: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in packages.iter().enumerate() {
        by_id.entry(p.id()).or_default().push(i);
    }
    let mut out = BTreeMap::new();
    for indexes in by_id.values().filter(|v| v.len() > 1) {
        for &i in indexes {
            let others = indexes
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| packages[j].path.manifest_file())
                .collect();
            out.insert(i, others);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn run(json: &str) -> Validated {
        validate(
            PackagePath::new("Packages/a"),
            PathBuf::from("/x"),
            manifest(json),
        )
    }

    #[test]
    fn names() {
        for ok in [
            "com.studio.tool",
            "com.unity.2d-sprite",
            "a.b",
            "@studio/tool",
            "@s/t.x",
            "com.a_b.c",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "tool",
            "Com.Studio.Tool",
            "com..tool",
            ".com.tool",
            "com.tool.",
            "com.-tool",
            "com.studio tool",
            "@studio",
            "@/tool",
            "@studio/",
            "@Studio/tool",
            "com.studio/tool",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&format!("com.{}", "a".repeat(220))).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(
            check_version("1.2.3").unwrap(),
            semver::Version::new(1, 2, 3)
        );
        assert!(check_version("1.2.3-preview.1").is_ok());
        for bad in ["1.2", "v1.2.3", "^1.2.3", "01.2.3", " 1.2.3", "latest", ""] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_valid_package() {
        match run(r#"{"name":"com.studio.a","version":"1.2.0","displayName":"A","unity":"2022.3"}"#)
        {
            Validated::Ok(p) => {
                assert_eq!(p.id(), "com.studio.a@1.2.0");
                assert_eq!(p.display_name.as_deref(), Some("A"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        match run(r#"{"name":"Bad Name","version":"1.0","unity":2022,"files":"Runtime"}"#) {
            Validated::Fail(f) => {
                let fields: Vec<&str> = f.problems.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(fields, ["name", "version", "unity", "files"]);
                assert_eq!(f.file, "Packages/a/package.json");
                assert_eq!(f.stage, Stage::Validate);
                assert!(f.reason.contains("`version`"), "{}", f.reason);
                assert_eq!(f.version.as_deref(), Some("1.0"));
            }
            other => panic!("{other:?}"),
        }
        match run(r#"{"displayName":"A"}"#) {
            Validated::Fail(f) => assert_eq!(f.reason, "`name` is missing; `version` is missing"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unity_fields_dependencies_and_samples() {
        match run(
            r#"{"name":"com.studio.a","version":"1.0.0","displayName":"A","unity":"2022.3",
                "unityRelease":"11f1","dependencies":{"com.unity.ugui":"1.0.0","com.studio.b":"2.1.0-preview.1"},
                "samples":[{"displayName":"Basic","path":"Samples~/Basic"}]}"#,
        ) {
            Validated::Ok(p) => {
                assert!(p.warnings.is_empty());
                assert_eq!(
                    dependencies(&p.manifest),
                    [
                        (
                            "com.studio.b".to_string(),
                            semver::Version::parse("2.1.0-preview.1").unwrap()
                        ),
                        ("com.unity.ugui".to_string(), semver::Version::new(1, 0, 0))
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match run(
            r#"{"name":"com.studio.a","version":"1.0.0","displayName":"A","unity":"2022.3",
                "unityRelease":"11", "dependencies":{"com.studio.b":"^2.0.0","Bad Name":"1.0.0","com.studio.c":3},
                "samples":[{"displayName":"No path"}]}"#,
        ) {
            Validated::Fail(f) => {
                let fields: Vec<&str> = f.problems.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(
                    fields,
                    [
                        "unityRelease",
                        "dependencies.Bad Name",
                        "dependencies.com.studio.b",
                        "dependencies.com.studio.c",
                        "samples[0].path"
                    ]
                );
                assert!(f.reason.contains("not a range"), "{}", f.reason);
            }
            other => panic!("{other:?}"),
        }
        for ok in ["0f1", "11f1", "0b4", "3a10", "2p1", "1x1"] {
            assert!(is_unity_release(ok), "{ok}");
        }
        for bad in ["", "11", "f1", "11f", "11q1", "1.1f1", "11F1"] {
            assert!(!is_unity_release(bad), "{bad}");
        }
        assert!(matches!(
            run(
                r#"{"name":"com.studio.a","version":"1.0.0","displayName":"A","unityRelease":"0f1"}"#
            ),
            Validated::Fail(_)
        ));
    }

    #[test]
    fn a_scoped_name_is_a_warning() {
        match run(r#"{"name":"@studio/a","version":"1.0.0","displayName":"A"}"#) {
            Validated::Ok(p) => {
                assert_eq!(p.warnings.len(), 1);
                assert!(p.warnings[0].reason.contains("reverse-domain"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn private_packages_are_skipped() {
        assert!(matches!(
            run(r#"{"name":"com.studio.a","version":"1.0.0","displayName":"A","private":true}"#),
            Validated::Skip(_)
        ));
    }

    #[test]
    fn duplicate_versions_are_found() {
        let pkg = |path: &str, version: &str| match validate(
            PackagePath::new(path),
            PathBuf::new(),
            manifest(&format!(
                r#"{{"name":"com.s.a","version":"{version}","displayName":"A"}}"#
            )),
        ) {
            Validated::Ok(p) => *p,
            other => panic!("{other:?}"),
        };
        let packages = [pkg("a", "1.0.0"), pkg("b", "1.0.0"), pkg("c", "2.0.0")];
        let dups = duplicates(&packages);
        assert_eq!(dups.len(), 2);
        assert_eq!(dups[&0], ["b/package.json"]);
        assert_eq!(dups[&1], ["a/package.json"]);
    }
}

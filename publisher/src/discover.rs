//! Which package.json files are UPM packages to consider: the directories the dispatch named, or every
//! UPM-shaped package.json in the workspace when none were named.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::model::{Failed, PackagePath, Skipped, Stage};

/// Directories never searched: dependencies (`node_modules`), Unity's generated folders (`Library`, `Temp`)
/// and git's own data. A package.json inside them is never ours to publish.
const SKIPPED_DIRS: [&str; 4] = ["node_modules", "Library", "Temp", ".git"];

/// Unity projects nest deeply, but a bound keeps a symlink-free yet pathological tree from running away.
const MAX_SCAN_DEPTH: usize = 48;

/// What the workflow (or a person) asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every UPM-shaped package.json in the workspace.
    Scan,
    /// These directories (raw, as received; normalised by `discover`).
    Paths(Vec<String>),
}

impl Request {
    /// `--package-paths`: comma-separated directories, `.` for the repository root. Absent, empty, or
    /// containing `*` asks for a scan. Empty means "every package" because that is what the legacy
    /// per-repository dispatchers and the original worker send (`package_path: ""`): reading the root
    /// only would find nothing there and lose the bump. Empty entries inside a list are ignored.
    pub fn parse(list: Option<&str>) -> Request {
        let mut paths: Vec<String> = Vec::new();
        for raw in list.unwrap_or("").split(',').map(str::trim) {
            if raw == "*" {
                return Request::Scan;
            }
            if !raw.is_empty() && !paths.iter().any(|p| p == raw) {
                paths.push(raw.to_string());
            }
        }
        if paths.is_empty() {
            Request::Scan
        } else {
            Request::Paths(paths)
        }
    }
}

/// A package.json that may be published, or the reason it will not be.
#[derive(Debug, Clone)]
pub enum Candidate {
    Upm {
        path: PackagePath,
        dir: PathBuf,
        manifest: Map<String, Value>,
    },
    Skip(Skipped),
    Fail(Failed),
}

/// The shape of one package.json's text.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Has `unity` or `displayName`: a UPM package (its other fields are `validate`'s business).
    Upm(Map<String, Value>),
    /// Valid JSON, but a tooling/npm manifest rather than a UPM package.
    NotUpm,
    Unparseable(String),
}

/// Decides the shape of a package.json. The UPM markers are `unity` and `displayName`: npm manifests have
/// neither, and a UPM package missing its `name` or `version` should be reported, not silently ignored.
pub fn classify(text: &str) -> Shape {
    // A UTF-8 BOM is common in files saved by Windows editors and Unity itself; npm tolerates it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            if map.contains_key("unity") || map.contains_key("displayName") {
                Shape::Upm(map)
            } else {
                Shape::NotUpm
            }
        }
        Ok(_) => Shape::Unparseable("the top level is not a JSON object".to_string()),
        Err(e) => Shape::Unparseable(format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        )),
    }
}

/// Normalises a requested directory to the `a/b` form, refusing anything that could leave the workspace.
/// A trailing `package.json` is tolerated (people paste file paths).
pub fn normalise_path(raw: &str) -> Result<PackagePath, String> {
    let raw = raw.trim();
    if raw.starts_with('/') || raw.contains('\\') || raw.contains('\0') {
        return Err("must be a relative path with `/` separators".to_string());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must not contain `..`".to_string()),
            part => parts.push(part),
        }
    }
    if parts.last() == Some(&"package.json") {
        parts.pop();
    }
    Ok(PackagePath::new(parts.join("/")))
}

/// The skipped directory a path lies in, if any.
pub fn skipped_dir_in(path: &PackagePath) -> Option<&'static str> {
    path.as_str()
        .split('/')
        .find_map(|part| SKIPPED_DIRS.iter().copied().find(|d| *d == part))
}

/// Finds the candidates for `request` under `root`.
pub fn discover(root: &Path, request: &Request) -> Vec<Candidate> {
    match request {
        Request::Paths(paths) => paths.iter().map(|raw| requested(root, raw)).collect(),
        Request::Scan => match scan(root) {
            Ok(paths) => paths
                .into_iter()
                .filter_map(|path| {
                    match read_candidate(root, path) {
                        // The scan reports only UPM packages; other package.json files (the project
                        // root's tooling manifest, build scripts…) are not its concern.
                        Candidate::Skip(_) => None,
                        other => Some(other),
                    }
                })
                .collect(),
            Err(e) => vec![Candidate::Fail(Failed {
                path: PackagePath::root(),
                file: String::new(),
                name: None,
                version: None,
                stage: Stage::Discover,
                problems: Vec::new(),
                reason: format!("cannot scan the workspace: {e}"),
            })],
        },
    }
}

fn requested(root: &Path, raw: &str) -> Candidate {
    let path = match normalise_path(raw) {
        Ok(path) => path,
        Err(reason) => {
            return Candidate::Fail(Failed {
                path: PackagePath::new(raw),
                file: raw.to_string(),
                name: None,
                version: None,
                stage: Stage::Discover,
                problems: Vec::new(),
                reason: format!("package path {raw:?} {reason}"),
            })
        }
    };
    if let Some(dir) = skipped_dir_in(&path) {
        return Candidate::Skip(Skipped {
            reason: format!("inside `{dir}`, which is never published"),
            path,
            name: None,
            version: None,
        });
    }
    read_candidate(root, path)
}

fn read_candidate(root: &Path, path: PackagePath) -> Candidate {
    let dir = root.join(path.as_str());
    let file = path.manifest_file();
    let fail = |reason: String| Failed {
        path: path.clone(),
        file: file.clone(),
        name: None,
        version: None,
        stage: Stage::Discover,
        problems: Vec::new(),
        reason,
    };
    // A symlinked package.json or directory could point outside the checkout; refuse to follow it.
    match fs::symlink_metadata(dir.join("package.json")) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Candidate::Fail(fail("package.json is a symbolic link".to_string()))
        }
        _ => {}
    }
    if path
        .as_str()
        .split('/')
        .scan(root.to_path_buf(), |at, part| {
            at.push(part);
            Some(fs::symlink_metadata(&*at).map(|m| m.file_type().is_symlink()))
        })
        .any(|r| matches!(r, Ok(true)))
    {
        return Candidate::Fail(fail("the package directory is a symbolic link".to_string()));
    }
    let text = match fs::read(dir.join("package.json")) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return Candidate::Fail(fail("package.json is not UTF-8".to_string())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Candidate::Fail(fail("no package.json in this directory".to_string()))
        }
        Err(e) => return Candidate::Fail(fail(format!("cannot read package.json: {e}"))),
    };
    match classify(&text) {
        Shape::Upm(manifest) => Candidate::Upm {
            path,
            dir,
            manifest,
        },
        Shape::NotUpm => Candidate::Skip(Skipped {
            path,
            name: None,
            version: None,
            reason: "not a UPM package (no `unity` or `displayName` field)".to_string(),
        }),
        Shape::Unparseable(reason) => Candidate::Fail(fail(reason)),
    }
}

/// Every directory under `root` holding a package.json, outside the skipped directories, sorted.
pub fn scan(root: &Path) -> io::Result<Vec<PackagePath>> {
    let mut found = Vec::new();
    walk(root, "", 0, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(root: &Path, rel: &str, depth: usize, found: &mut Vec<PackagePath>) -> io::Result<()> {
    if depth > MAX_SCAN_DEPTH {
        return Ok(());
    }
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        // file_type() does not follow symlinks: linked directories are not walked (they could loop or
        // leave the checkout), linked package.json files are not read.
        let kind = entry.file_type()?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if kind.is_dir() {
            if SKIPPED_DIRS.contains(&name.as_str()) {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            walk(root, &child, depth + 1, found)?;
        } else if kind.is_file() && name == "package.json" {
            found.push(PackagePath::new(rel));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const UPM: &str = r#"{"name":"com.studio.a","version":"1.0.0","displayName":"A"}"#;

    #[test]
    fn request_parsing() {
        assert_eq!(Request::parse(None), Request::Scan);
        assert_eq!(Request::parse(Some(" * ")), Request::Scan);
        // The legacy dispatchers' empty package_path: every package, never "the root only".
        assert_eq!(Request::parse(Some("")), Request::Scan);
        assert_eq!(Request::parse(Some("  ")), Request::Scan);
        assert_eq!(Request::parse(Some(" , ")), Request::Scan);
        assert_eq!(Request::parse(Some("a,*")), Request::Scan);
        assert_eq!(
            Request::parse(Some("., a,")),
            Request::Paths(vec![".".into(), "a".into()])
        );
        assert_eq!(
            Request::parse(Some("a, b ,a")),
            Request::Paths(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn normalising_paths() {
        assert_eq!(normalise_path("").unwrap().as_str(), "");
        assert_eq!(normalise_path(".").unwrap().as_str(), "");
        assert_eq!(
            normalise_path("./Packages/a/").unwrap().as_str(),
            "Packages/a"
        );
        assert_eq!(
            normalise_path("Packages/a/package.json").unwrap().as_str(),
            "Packages/a"
        );
        assert_eq!(normalise_path("package.json").unwrap().as_str(), "");
        assert!(normalise_path("../x").is_err());
        assert!(normalise_path("a/../../x").is_err());
        assert!(normalise_path("/etc").is_err());
        assert!(normalise_path("a\\b").is_err());
    }

    #[test]
    fn shapes() {
        assert!(matches!(classify(UPM), Shape::Upm(_)));
        assert!(matches!(
            classify(r#"{"name":"x","unity":"2022.3"}"#),
            Shape::Upm(_)
        ));
        assert_eq!(
            classify(r#"{"name":"tool","version":"1.0.0"}"#),
            Shape::NotUpm
        );
        assert!(matches!(
            classify("\u{feff}{\"displayName\":\"A\"}"),
            Shape::Upm(_)
        ));
        match classify("{\n  \"name\": \"a\",\n}") {
            Shape::Unparseable(reason) => assert!(reason.contains("line 3"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify("[1]"), Shape::Unparseable(_)));
    }

    #[test]
    fn skipped_dirs() {
        assert_eq!(
            skipped_dir_in(&PackagePath::new("a/node_modules/b")),
            Some("node_modules")
        );
        assert_eq!(
            skipped_dir_in(&PackagePath::new("Library/x")),
            Some("Library")
        );
        assert_eq!(
            skipped_dir_in(&PackagePath::new("Packages/Libraryish")),
            None
        );
    }

    #[test]
    fn scan_skips_generated_and_dependency_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "package.json", r#"{"name":"project","private":true}"#);
        write(root, "Packages/com.studio.a/package.json", UPM);
        write(root, "Packages/com.studio.b/package.json", "{oops");
        write(
            root,
            "Packages/com.studio.a/node_modules/x/package.json",
            UPM,
        );
        write(root, "Library/PackageCache/y/package.json", UPM);
        write(root, "Temp/z/package.json", UPM);
        write(
            root,
            "Tools/build/package.json",
            r#"{"name":"tools","version":"1.0.0"}"#,
        );
        let found = discover(root, &Request::Scan);
        let summary: Vec<String> = found
            .iter()
            .map(|c| match c {
                Candidate::Upm { path, .. } => format!("upm {path}"),
                Candidate::Skip(s) => format!("skip {}", s.path),
                Candidate::Fail(f) => format!("fail {}", f.path),
            })
            .collect();
        assert_eq!(
            summary,
            ["upm Packages/com.studio.a", "fail Packages/com.studio.b"]
        );
    }

    #[test]
    fn requested_paths_report_every_case() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "package.json",
            r#"{"name":"project","version":"1.0.0"}"#,
        );
        write(root, "a/package.json", UPM);
        let request = Request::parse(Some("a,.,missing,../up,node_modules/q"));
        let found = discover(root, &request);
        assert!(matches!(&found[0], Candidate::Upm { path, .. } if path.as_str() == "a"));
        assert!(matches!(&found[1], Candidate::Skip(s) if s.reason.contains("not a UPM")));
        assert!(
            matches!(&found[2], Candidate::Fail(f) if f.reason.contains("no package.json") && f.file == "missing/package.json")
        );
        assert!(matches!(&found[3], Candidate::Fail(f) if f.reason.contains("..")));
        assert!(matches!(&found[4], Candidate::Skip(s) if s.reason.contains("node_modules")));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "pkg/package.json", UPM);
        std::os::unix::fs::symlink(outside.path().join("pkg"), tmp.path().join("linked")).unwrap();
        assert!(discover(tmp.path(), &Request::Scan).is_empty());
        let found = discover(tmp.path(), &Request::parse(Some("linked")));
        assert!(matches!(&found[0], Candidate::Fail(f) if f.reason.contains("symbolic link")));
    }
}

//! The npm tarball of a package: which files go in (npm's rules: `files`, `.npmignore`/`.gitignore`,
//! always-included and never-included files) and a byte-for-byte reproducible `.tgz` with the `package/`
//! prefix.
//!
//! Why not `npm publish --ignore-scripts`: the runner would need Node and an `.npmrc` holding the token,
//! each package would cost an npm start-up, and we could neither control the dist-tag decision, nor
//! verify against the exact bytes we sent, nor make the tarball reproducible. Reproducibility matters:
//! two runs publishing the same commit race harmlessly only if they upload identical bytes, because
//! Verdaccio can keep the losing upload's tarball.

use std::fs;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use serde_json::{Map, Value};

/// npm stamps every entry with this date (1985-10-26T08:15:00Z) so that tarballs are reproducible.
const NPM_MTIME: u64 = 499_162_500;

/// Never packed, whatever the rules say: version-control data, dependencies, and `.npmrc`, which may
/// hold a registry token.
const NEVER_DIRS: [&str; 5] = [".git", ".svn", ".hg", "CVS", "node_modules"];
const NEVER_FILES: [&str; 1] = [".npmrc"];

/// npm's default exclusions: lowest priority, so a package's own `!negation` can bring one back.
const DEFAULT_IGNORES: [&str; 13] = [
    ".npmignore",
    ".gitignore",
    ".*.swp",
    "._*",
    ".DS_Store",
    "*.orig",
    "npm-debug.log",
    ".lock-wscript",
    ".wafpickle-*",
    "/build/config.gypi",
    "/package-lock.json",
    "/yarn.lock",
    "/pnpm-lock.yaml",
];

/// Root files npm always includes (matched case-insensitively, with any extension).
const ALWAYS_STEMS: [&str; 4] = ["readme", "license", "licence", "copying"];

/// Upper bound on files in one package: a Unity package with more is almost surely a mistake
/// (a `Library/` committed inside the package, say), and the tarball would not fit the registry anyway.
const MAX_FILES: usize = 50_000;

#[derive(Debug, Clone)]
pub struct Tarball {
    pub bytes: Vec<u8>,
    pub files: Vec<String>,
    pub unpacked_size: u64,
}

/// Is `name` (a root file name) one npm always includes?
pub fn always_included(name: &str) -> bool {
    if name == "package.json" {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    ALWAYS_STEMS.iter().any(|stem| {
        lower == *stem
            || lower
                .strip_prefix(stem)
                .is_some_and(|rest| rest.starts_with('.') && !rest[1..].contains('.'))
    })
}

/// The `files` entries of a manifest, normalised the way npm does: anchored at the package root.
pub fn files_patterns(manifest: &Map<String, Value>) -> Option<Vec<String>> {
    let items = manifest.get("files")?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(Value::as_str)
            .map(|raw| {
                let (negated, pattern) = match raw.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, raw),
                };
                let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
                let pattern = pattern.trim_end_matches('/');
                format!("{}/{pattern}", if negated { "!" } else { "" })
            })
            .filter(|p| !p.ends_with('/'))
            .collect(),
    )
}

struct Rules {
    /// From `files`, when the manifest has it: what is in. `None`: everything not ignored is in.
    files: Option<Gitignore>,
    /// Entries of `files` naming one exact path: npm lets no `.npmignore` exclude those.
    exact: Vec<String>,
    defaults: Gitignore,
}

fn build_matcher(
    root: &Path,
    lines: impl IntoIterator<Item = String>,
) -> Result<Gitignore, String> {
    let mut builder = GitignoreBuilder::new(root);
    for line in lines {
        builder
            .add_line(None, &line)
            .map_err(|e| format!("bad pattern {line:?}: {e}"))?;
    }
    builder.build().map_err(|e| e.to_string())
}

/// The ignore file that governs one directory: `.npmignore`, or `.gitignore` when there is none.
fn ignore_file(dir: &Path) -> Result<Option<Gitignore>, String> {
    for name in [".npmignore", ".gitignore"] {
        let path = dir.join(name);
        if let Ok(meta) = fs::symlink_metadata(&path) {
            if !meta.is_file() {
                continue;
            }
            let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {name}: {e}"))?;
            return build_matcher(dir, text.lines().map(str::to_string)).map(Some);
        }
    }
    Ok(None)
}

/// The files npm would pack from `dir`, as sorted `/`-separated relative paths.
pub fn select_files(dir: &Path, manifest: &Map<String, Value>) -> Result<Vec<String>, String> {
    let patterns = files_patterns(manifest);
    let rules = Rules {
        exact: patterns
            .iter()
            .flatten()
            .filter(|p| !p.starts_with('!') && !p.contains(['*', '?', '[']))
            .map(|p| p.trim_start_matches('/').to_string())
            .collect(),
        files: match &patterns {
            Some(patterns) => Some(build_matcher(dir, patterns.iter().cloned())?),
            None => None,
        },
        defaults: build_matcher(dir, DEFAULT_IGNORES.iter().map(|s| s.to_string()))?,
    };
    // With `files`, npm ignores the root's ignore files (the list already says what is in) but still
    // honours those of subdirectories.
    let root_ignore = if rules.files.is_some() {
        None
    } else {
        ignore_file(dir)?
    };
    let mut stack: Vec<(String, Gitignore)> = Vec::new();
    if let Some(root_ignore) = root_ignore {
        stack.push((String::new(), root_ignore));
    }
    let mut out = Vec::new();
    walk(dir, "", &rules, &mut stack, &mut out)?;
    out.sort();
    Ok(out)
}

/// The verdict of the ignore files in `stack` (deepest first, as git does) on `rel`.
fn ignored_by_stack(stack: &[(String, Gitignore)], rel: &str, is_dir: bool) -> Option<bool> {
    for (base, matcher) in stack.iter().rev() {
        let local = if base.is_empty() {
            rel
        } else {
            match rel
                .strip_prefix(base.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(local) => local,
                None => continue,
            }
        };
        match matcher.matched(local, is_dir) {
            Match::Ignore(_) => return Some(true),
            Match::Whitelist(_) => return Some(false),
            Match::None => {}
        }
    }
    None
}

fn included(rules: &Rules, stack: &[(String, Gitignore)], rel: &str, is_dir: bool) -> bool {
    let at_root = !rel.contains('/');
    if !is_dir && at_root && always_included(rel) {
        return true;
    }
    if rules.exact.iter().any(|e| e == rel) {
        return true;
    }
    if let Some(files) = &rules.files {
        // A directory is entered whatever `files` says (a glob may match deeper down); a file is in only
        // when it or one of its directories is listed.
        if !is_dir && !files.matched_path_or_any_parents(rel, false).is_ignore() {
            return false;
        }
    }
    match ignored_by_stack(stack, rel, is_dir) {
        Some(ignored) => !ignored,
        None => !rules.defaults.matched(rel, is_dir).is_ignore(),
    }
}

fn walk(
    root: &Path,
    rel: &str,
    rules: &Rules,
    stack: &mut Vec<(String, Gitignore)>,
    out: &mut Vec<String>,
) -> Result<(), String> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let entries = fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", display(rel)))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", display(rel)))?;
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(format!("a file name in {} is not UTF-8", display(rel)));
        };
        names.push((name, kind));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in names {
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if kind.is_dir() {
            if NEVER_DIRS.contains(&name.as_str()) || !included(rules, stack, &child, true) {
                continue;
            }
            let pushed = match ignore_file(&root.join(&child))? {
                Some(matcher) => {
                    stack.push((child.clone(), matcher));
                    true
                }
                None => false,
            };
            walk(root, &child, rules, stack, out)?;
            if pushed {
                stack.pop();
            }
        } else if kind.is_file() {
            if NEVER_FILES.contains(&name.as_str()) || !included(rules, stack, &child, false) {
                continue;
            }
            out.push(child);
            if out.len() > MAX_FILES {
                return Err(format!(
                    "more than {MAX_FILES} files to pack; check `files` or .npmignore"
                ));
            }
        }
        // Symbolic links are left out: npm packs a link's target, which could lie outside the checkout.
    }
    Ok(())
}

fn display(rel: &str) -> &str {
    if rel.is_empty() {
        "the package root"
    } else {
        rel
    }
}

/// Packs `files` (from `select_files`) into a reproducible gzipped tar: sorted entries under
/// `package/`, npm's fixed mtime, root ownership, 0644 (0755 when executable).
pub fn build_tarball(dir: &Path, files: Vec<String>) -> Result<Tarball, String> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    let mut unpacked_size = 0u64;
    for rel in &files {
        let path = dir.join(rel);
        let data = fs::read(&path).map_err(|e| format!("cannot read {rel}: {e}"))?;
        let mode = if is_executable(&path) { 0o755 } else { 0o644 };
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(NPM_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        // append_data writes a GNU long-name entry first when the path does not fit the header:
        // node-tar (npm) and Unity's package manager both read those.
        builder
            .append_data(&mut header, format!("package/{rel}"), data.as_slice())
            .map_err(|e| format!("cannot add {rel} to the tarball: {e}"))?;
        unpacked_size += data.len() as u64;
    }
    let gz = builder.into_inner().map_err(|e| e.to_string())?;
    let bytes = gz.finish().map_err(|e| e.to_string())?;
    Ok(Tarball {
        bytes,
        files,
        unpacked_size,
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}

/// The package's README, which npm sends as the version's `readme` (Verdaccio's web page shows it).
pub fn readme(dir: &Path, files: &[String]) -> Option<(String, String)> {
    const MAX_README: usize = 64 * 1024;
    let name = files
        .iter()
        .filter(|f| !f.contains('/') && f.to_ascii_lowercase().starts_with("readme"))
        .min_by_key(|f| (!f.eq_ignore_ascii_case("readme.md"), f.len()))?;
    let text = fs::read_to_string(dir.join(name)).ok()?;
    let mut end = text.len().min(MAX_README);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some((name.clone(), text[..end].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let path = tmp.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        tmp
    }

    fn manifest(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn always_included_names() {
        for yes in [
            "package.json",
            "README",
            "README.md",
            "readme.txt",
            "LICENSE",
            "LICENCE.md",
            "COPYING",
        ] {
            assert!(always_included(yes), "{yes}");
        }
        for no in ["CHANGELOG.md", "README.md.meta", "readmeish.md", "src.js"] {
            assert!(!always_included(no), "{no}");
        }
    }

    #[test]
    fn without_files_npmignore_wins_over_gitignore_and_defaults_apply() {
        let t = tree(&[
            ("package.json", "{}"),
            ("README.md", "hi"),
            ("README.md.meta", "m"),
            ("Runtime/A.cs", ""),
            ("Runtime/A.cs.meta", ""),
            ("Tests/T.cs", ""),
            ("Docs~/x.md", ""),
            (".npmignore", "Tests/\n*.log\n"),
            (".gitignore", "Runtime/\n"),
            ("build.log", ""),
            (".DS_Store", ""),
            ("Runtime/.DS_Store", ""),
            (".npmrc", "//r/:_authToken=secret"),
            ("node_modules/x/index.js", ""),
            ("Editor/.npmignore", "*.tmp\n"),
            ("Editor/E.cs", ""),
            ("Editor/E.tmp", ""),
            ("package-lock.json", "{}"),
        ]);
        let files = select_files(t.path(), &manifest("{}")).unwrap();
        assert_eq!(
            files,
            [
                "Docs~/x.md",
                "Editor/E.cs",
                "README.md",
                "README.md.meta",
                "Runtime/A.cs",
                "Runtime/A.cs.meta",
                "package.json"
            ]
        );
    }

    #[test]
    fn gitignore_is_used_when_there_is_no_npmignore() {
        let t = tree(&[
            ("package.json", "{}"),
            ("a.js", ""),
            ("gen/b.js", ""),
            (".gitignore", "gen\n"),
        ]);
        assert_eq!(
            select_files(t.path(), &manifest("{}")).unwrap(),
            ["a.js", "package.json"]
        );
    }

    #[test]
    fn files_lists_what_goes_in() {
        let t = tree(&[
            ("package.json", "{}"),
            ("LICENSE.md", ""),
            ("CHANGELOG.md", ""),
            ("Runtime/A.cs", ""),
            ("Runtime/Internal/B.cs", ""),
            ("Runtime/Internal/skip.txt", ""),
            ("Runtime/.npmignore", "*.txt\n"),
            ("Runtime/.DS_Store", ""),
            ("Tests/T.cs", ""),
            ("Samples~/S.cs", ""),
            ("Samples~/Other.cs", ""),
            (".npmignore", "Runtime/\n"),
            ("notes.txt", ""),
        ]);
        let m = manifest(
            r#"{"files":["Runtime", "./Samples~/S.cs", "CHANGELOG.md", "!Runtime/Internal/B.cs"]}"#,
        );
        assert_eq!(
            select_files(t.path(), &m).unwrap(),
            [
                "CHANGELOG.md",
                "LICENSE.md",
                "Runtime/A.cs",
                "Samples~/S.cs",
                "package.json"
            ]
        );
    }

    #[test]
    fn files_globs() {
        let t = tree(&[
            ("package.json", "{}"),
            ("a.js", ""),
            ("lib/b.js", ""),
            ("lib/c.ts", ""),
        ]);
        let m = manifest(r#"{"files":["**/*.js"]}"#);
        assert_eq!(
            select_files(t.path(), &m).unwrap(),
            ["a.js", "lib/b.js", "package.json"]
        );
    }

    #[test]
    fn tarballs_are_reproducible_and_prefixed() {
        let t = tree(&[
            ("package.json", r#"{"name":"a"}"#),
            ("Runtime/A.cs", "class A {}"),
        ]);
        let files = select_files(t.path(), &manifest("{}")).unwrap();
        let one = build_tarball(t.path(), files.clone()).unwrap();
        // Touch the files: a later checkout of the same commit has other mtimes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(t.path().join("Runtime/A.cs"), "class A {}").unwrap();
        let two = build_tarball(t.path(), files).unwrap();
        assert_eq!(one.bytes, two.bytes);
        assert_eq!(one.unpacked_size, 22);

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(one.bytes.as_slice()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            assert_eq!(header.mtime().unwrap(), NPM_MTIME);
            assert_eq!(header.mode().unwrap(), 0o644);
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.push((entry.path().unwrap().to_string_lossy().into_owned(), text));
        }
        assert_eq!(
            seen,
            [
                ("package/Runtime/A.cs".to_string(), "class A {}".to_string()),
                (
                    "package/package.json".to_string(),
                    r#"{"name":"a"}"#.to_string()
                )
            ]
        );
    }

    #[test]
    fn long_paths_survive() {
        let deep = format!("{}/File.cs", ["VeryLongDirectoryName"; 12].join("/"));
        let t = tree(&[("package.json", "{}"), (deep.as_str(), "x")]);
        let files = select_files(t.path(), &manifest("{}")).unwrap();
        let tarball = build_tarball(t.path(), files).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball.bytes.as_slice()));
        let paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(paths.contains(&format!("package/{deep}")), "{paths:?}");
    }

    #[test]
    fn readme_prefers_markdown() {
        let files = vec![
            "README.txt".to_string(),
            "README.md".to_string(),
            "Docs/README.md".to_string(),
        ];
        let t = tree(&[("README.md", "# A"), ("README.txt", "a")]);
        assert_eq!(
            readme(t.path(), &files),
            Some(("README.md".to_string(), "# A".to_string()))
        );
    }
}

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

/// Never packed, whatever the rules say, at any depth: version-control data, dependencies, and `.npmrc`,
/// which may hold a registry token. npm drops `node_modules` only at the package root; we drop it at any
/// depth on purpose (a Unity package never ships installed npm dependencies, and a nested one is a
/// developer's leftover `npm install`). See publisher/README.md, "Where we differ from npm".
const NEVER_DIRS: [&str; 5] = [".git", ".svn", ".hg", "CVS", "node_modules"];
const NEVER_FILES: [&str; 1] = [".npmrc"];

/// Never packed from the package root, even when `files`, `main` or `bin` name them: npm-packlist's
/// strict rules (lock files describe the author's install, not the package's).
const NEVER_ROOT_FILES: [&str; 4] = [
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
];

/// npm's default exclusions (npm-packlist's `defaults`): lowest priority, so `files` or a package's own
/// `!negation` can bring one back. Applied in every directory, as npm does.
const DEFAULT_IGNORES: [&str; 10] = [
    ".npmignore",
    ".gitignore",
    ".*.swp",
    "._*",
    ".DS_Store",
    "*.orig",
    "npm-debug.log",
    "/.lock-wscript",
    "/.wafpickle-*",
    "/build/config.gypi",
];

/// Only at the package root (npm: `/archived-packages/**`, where `npm pack` once kept old tarballs). A
/// default like the others: `files` naming it brings it back (measured with npm 11).
const DEFAULT_ROOT_IGNORES: [&str; 1] = ["/archived-packages/"];

/// Root files npm always includes (matched case-insensitively, with any extension chain).
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

/// Is `name` (a root file name) one npm always includes? npm's rule is `readme{,.*[^~$]}` (and the same
/// for the other stems), case-insensitive: the bare stem, or the stem, a dot and anything not ending in
/// `~` or `$` — so `README.md.meta` is always packed, which Unity needs beside `README.md`.
pub fn always_included(name: &str) -> bool {
    if name == "package.json" {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    ALWAYS_STEMS.iter().any(|stem| {
        lower == *stem
            || lower.strip_prefix(stem).is_some_and(|rest| {
                rest.len() >= 2 && rest.starts_with('.') && !rest.ends_with(['~', '$'])
            })
    })
}

/// npm refuses names with `*` (they cannot exist on Windows); node-tar handles the other bad characters.
fn bad_name(name: &str) -> bool {
    name.contains('*')
}

/// A `bin` path, relative to the package root; `None` when it leaves the root. npm normalises `bin`
/// (`./tool.js` is `tool.js`) before packing.
fn bin_path(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in raw.trim().split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A `main` or `browser` path as npm uses it: literally, as the rule `!/<path>`. A leading `./`, common in
/// `main`, makes that rule match nothing, so npm then packs the file only if the other rules let it in;
/// we do the same (measured with npm 11, fixture `entry-points`).
fn literal_entry(raw: &str) -> Option<String> {
    let path = raw.strip_prefix('/').unwrap_or(raw);
    let plain = !path.is_empty() && path.split('/').all(|part| !matches!(part, "" | "." | ".."));
    plain.then(|| path.to_string())
}

/// Files npm packs whatever the ignore rules say: `main`, `browser` and every `bin`.
pub fn entry_points(manifest: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["main", "browser"] {
        if let Some(path) = manifest.get(key).and_then(Value::as_str) {
            out.extend(literal_entry(path));
        }
    }
    match manifest.get("bin") {
        Some(Value::String(path)) => out.extend(bin_path(path)),
        Some(Value::Object(bins)) => {
            out.extend(bins.values().filter_map(Value::as_str).filter_map(bin_path))
        }
        _ => {}
    }
    out
}

/// One `files` entry as npm reads it: negated or not, the path relative to the root (`./` dropped),
/// `dir/*` meaning everything below `dir`, and whether it is anchored. npm matches with minimatch's
/// `matchBase`, so an entry without any `/` (`*.md`, `Runtime`) matches a name at any depth — in the
/// directories npm walks; an entry with a `/` (leading, inner or trailing) is anchored at the root.
fn files_entry(raw: &str) -> (bool, String, bool) {
    let (negated, pattern) = match raw.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let anchored = pattern.contains('/');
    let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
    let pattern = pattern.trim_end_matches('/');
    let pattern = match pattern.strip_suffix("/*") {
        Some(dir) => format!("{dir}/**"),
        None => pattern.to_string(),
    };
    (negated, pattern, anchored)
}

/// Which directories npm walks under `files`: it enters a directory only when a rule could match it or
/// something below it (minimatch's partial match), so a name pattern like `*.md` only applies in
/// directories that another entry opened. Each anchored positive entry, as one glob per path segment.
fn opening_entries(
    manifest: &Map<String, Value>,
) -> Result<Vec<Vec<globset::GlobMatcher>>, String> {
    let items = manifest.get("files").and_then(Value::as_array);
    let mut out = Vec::new();
    for raw in items.into_iter().flatten().filter_map(Value::as_str) {
        let (negated, pattern, anchored) = files_entry(raw);
        if negated || !anchored || pattern.is_empty() {
            continue;
        }
        let mut segments = Vec::new();
        for segment in pattern.split('/') {
            let glob = globset::GlobBuilder::new(segment)
                .case_insensitive(true)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("bad `files` entry {raw:?}: {e}"))?;
            segments.push(glob.compile_matcher());
        }
        out.push(segments);
    }
    Ok(out)
}

/// Could `entry` (segment globs) match `dir` or something below it?
fn opens(entry: &[globset::GlobMatcher], dir: &str) -> bool {
    for (i, name) in dir.split('/').enumerate() {
        match entry.get(i) {
            None => return false,
            Some(glob) if glob.glob().glob() == "**" => return true,
            Some(glob) if !glob.is_match(name) => return false,
            Some(_) => {}
        }
    }
    true
}

/// The `files` entries of a manifest as ignore-file lines, the way npm builds them: an entry naming an
/// existing directory (exact case: npm stats it) covers the directory and everything below it; any other
/// entry is a pattern matched against each path itself, case-insensitively — so `"runtime.meta"` picks up
/// `Runtime.meta`, while `"runtime"` enters `Runtime/` but packs none of its files (npm 11 does exactly
/// that; validation then reports the missing files' folder). Lines are "exclusions" that we read as
/// inclusions, hence the inverted `!`.
pub fn files_patterns(dir: &Path, manifest: &Map<String, Value>) -> Option<Vec<String>> {
    let items = manifest.get("files")?.as_array()?;
    let mut lines = Vec::new();
    for raw in items.iter().filter_map(Value::as_str) {
        let (negated, pattern, anchored) = files_entry(raw);
        if pattern.is_empty() {
            continue;
        }
        let bang = if negated { "!" } else { "" };
        let slash = if anchored { "/" } else { "" };
        lines.push(format!("{bang}{slash}{pattern}"));
        if fs::symlink_metadata(dir.join(&pattern)).is_ok_and(|m| m.is_dir()) {
            lines.push(format!("{bang}/{pattern}/**"));
        }
    }
    Some(lines)
}

struct Rules {
    /// From `files`, when the manifest has it: what is in. `None`: everything not ignored is in.
    files: Option<Gitignore>,
    /// `!entries` of `files` naming an existing file: npm makes those strict exclusions, which only the
    /// always-included root files outrank.
    excluded: Vec<String>,
    /// With `files`: the anchored entries, which decide the directories npm walks.
    opening: Vec<Vec<globset::GlobMatcher>>,
    /// Files packed whatever the ignore files say: `files` entries naming an existing file (npm stats each
    /// entry to tell), and `main`/`browser`/`bin`.
    required: Vec<String>,
    /// `main`/`browser`/`bin`: npm adds their strict rules last, so they outrank even `excluded`.
    entry_points: Vec<String>,
    defaults: Gitignore,
    root_defaults: Gitignore,
}

/// npm matches ignore rules and `files` entries case-insensitively (minimatch `nocase`), and trims each
/// line, so `  Tests/` excludes `Tests/`.
fn build_matcher<'a>(
    root: &Path,
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<Gitignore, String> {
    let mut builder = GitignoreBuilder::new(root);
    builder.case_insensitive(true).map_err(|e| e.to_string())?;
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        builder
            .add_line(None, line)
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
            return build_matcher(dir, text.lines()).map(Some);
        }
    }
    Ok(None)
}

/// The files npm would pack from `dir`, as sorted `/`-separated relative paths.
pub fn select_files(dir: &Path, manifest: &Map<String, Value>) -> Result<Vec<String>, String> {
    let patterns = files_patterns(dir, manifest);
    // npm makes a `files` entry naming an existing file (exact case) a strict rule: no ignore file of a
    // subdirectory can drop it.
    let mut required: Vec<String> = patterns
        .iter()
        .flatten()
        .filter(|p| !p.starts_with('!'))
        .map(|p| p.trim_start_matches('/').to_string())
        .filter(|p| fs::symlink_metadata(dir.join(p)).is_ok_and(|m| m.is_file()))
        .collect();
    let entry_points = entry_points(manifest);
    required.extend(entry_points.iter().cloned());
    let rules = Rules {
        required,
        entry_points,
        excluded: patterns
            .iter()
            .flatten()
            .filter_map(|p| p.strip_prefix('!'))
            .map(|p| p.trim_start_matches('/').to_string())
            .filter(|p| fs::symlink_metadata(dir.join(p)).is_ok_and(|m| m.is_file()))
            .collect(),
        opening: opening_entries(manifest)?,
        files: match &patterns {
            Some(patterns) => Some(build_matcher(dir, patterns.iter().map(String::as_str))?),
            None => None,
        },
        defaults: build_matcher(dir, DEFAULT_IGNORES)?,
        root_defaults: build_matcher(dir, DEFAULT_ROOT_IGNORES)?,
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

/// npm injects its defaults into every directory it walks, so each applies relative to the entry's own
/// directory (`/build/config.gypi` included, hence the last two segments).
fn ignored_by_default(rules: &Rules, rel: &str, is_dir: bool) -> bool {
    let mut segments = rel.rsplitn(3, '/');
    let name = segments.next().unwrap_or(rel);
    let last_two = match segments.next() {
        Some(parent) => format!("{parent}/{name}"),
        None => name.to_string(),
    };
    rules.defaults.matched(name, is_dir).is_ignore()
        || rules.defaults.matched(&last_two, is_dir).is_ignore()
        || (!rel.contains('/') && rules.root_defaults.matched(rel, is_dir).is_ignore())
}

fn included(rules: &Rules, stack: &[(String, Gitignore)], rel: &str, is_dir: bool) -> bool {
    let at_root = !rel.contains('/');
    if is_dir {
        // A directory holding a required file is entered whatever the rules say about it.
        let prefix = format!("{rel}/");
        if rules.required.iter().any(|r| r.starts_with(&prefix)) {
            return true;
        }
    } else {
        if (at_root && always_included(rel)) || rules.entry_points.iter().any(|e| e == rel) {
            return true;
        }
        if rules.excluded.iter().any(|e| e == rel) {
            return false;
        }
        if rules.required.iter().any(|r| r == rel) {
            return true;
        }
    }
    if let Some(files) = &rules.files {
        // A directory is entered when a line matches it (a listed directory, a name pattern) or an
        // anchored entry could match below it; a file is in only when a line matches it (a listed
        // directory's line `/dir/**` matches everything below it).
        let listed = files.matched(rel, is_dir).is_ignore();
        let opened = is_dir && rules.opening.iter().any(|entry| opens(entry, rel));
        if !listed && !opened {
            return false;
        }
    }
    match ignored_by_stack(stack, rel, is_dir) {
        Some(ignored) => !ignored,
        None => {
            // `files` outranks npm's defaults at the root (a listed `.DS_Store` or `archived-packages`
            // there is packed); below it, each directory's own defaults come last and win.
            let listed = at_root
                && rules
                    .files
                    .as_ref()
                    .is_some_and(|f| f.matched(rel, is_dir).is_ignore());
            listed || !ignored_by_default(rules, rel, is_dir)
        }
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
        if bad_name(&name) {
            continue;
        }
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
            if NEVER_FILES.contains(&name.as_str())
                || (rel.is_empty() && NEVER_ROOT_FILES.contains(&name.as_str()))
                || !included(rules, stack, &child, false)
            {
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

/// node's `path.extname`: from the last `.` of the base name, unless that dot starts the name.
fn extname(base: &str) -> &str {
    match base.rfind('.') {
        Some(0) | None => "",
        Some(i) => &base[i..],
    }
}

/// A stand-in for ICU's root collation (node's `localeCompare(_, 'en')`) on ASCII: punctuation and
/// symbols first, then digits, then letters, case ignored first; raw bytes break ties so the order is
/// total and the tarball reproducible.
fn collation_key(s: &str) -> Vec<(u8, u8)> {
    s.chars()
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            let class = if lower.is_ascii_digit() {
                1
            } else if lower.is_ascii_alphabetic() {
                2
            } else if c.is_ascii() {
                0
            } else {
                3
            };
            (class, if c.is_ascii() { lower as u8 } else { 0 })
        })
        .collect()
}

/// npm's entry order (npm-packlist's `sort`, "optimize for compressibility"): by extension, then base
/// name, then path, so files alike sit together and gzip finds the repeats (`.meta` files above all).
pub fn npm_order(a: &str, b: &str) -> std::cmp::Ordering {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
    let (base_a, base_b) = (base(a), base(b));
    collation_key(extname(&base_a))
        .cmp(&collation_key(extname(&base_b)))
        .then_with(|| collation_key(&base_a).cmp(&collation_key(&base_b)))
        .then_with(|| collation_key(a).cmp(&collation_key(b)))
        .then_with(|| a.cmp(b))
}

/// Packs `files` (from `select_files`) into a reproducible gzipped tar: entries in npm's order under
/// `package/`, npm's fixed mtime, root ownership, 0644 (0755 when executable).
pub fn build_tarball(dir: &Path, files: Vec<String>) -> Result<Tarball, String> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    let mut unpacked_size = 0u64;
    let mut ordered: Vec<&String> = files.iter().collect();
    ordered.sort_by(|a, b| npm_order(a, b));
    for rel in ordered {
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

/// What `upm-publisher pack DIR` prints: the shape of `npm pack --dry-run --json` (one element), so the
/// two can be compared directly. Writes the tarball to `out` when given.
pub fn dry_run(dir: &Path, out: Option<&Path>) -> Result<Value, String> {
    let text = fs::read_to_string(dir.join("package.json"))
        .map_err(|e| format!("cannot read {}/package.json: {e}", dir.display()))?;
    let manifest: Map<String, Value> =
        serde_json::from_str(&text).map_err(|e| format!("package.json: {e}"))?;
    let files = select_files(dir, &manifest)?;
    let tarball = build_tarball(dir, files)?;
    if let Some(out) = out {
        fs::write(out, &tarball.bytes)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    let digests = crate::verify::Digests::of(&tarball.bytes);
    let mut entries = Vec::new();
    for rel in &tarball.files {
        let size = fs::metadata(dir.join(rel)).map(|m| m.len()).unwrap_or(0);
        entries.push(serde_json::json!({ "path": rel, "size": size }));
    }
    Ok(serde_json::json!([{
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "size": tarball.bytes.len(),
        "unpackedSize": tarball.unpacked_size,
        "shasum": digests.shasum,
        "integrity": digests.integrity,
        "entryCount": tarball.files.len(),
        "files": entries,
    }]))
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
        // npm's `readme{,.*[^~$]}`: any extension chain, so Unity's `.meta` beside the README is packed.
        for yes in [
            "README.md.meta",
            "LICENSE.md.meta",
            "licence.third.party.md",
            "Copying.x",
        ] {
            assert!(always_included(yes), "{yes}");
        }
        for no in [
            "CHANGELOG.md",
            "readmeish.md",
            "src.js",
            "README.md~",
            "LICENSE.txt$",
            "readme.",
        ] {
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

    // The npm 11 behaviours below were measured with `npm pack --dry-run` (the parity test re-checks
    // them against the system npm on the trees in tests/fixtures/pack).
    #[test]
    fn ignore_rules_are_case_insensitive_and_trimmed() {
        let t = tree(&[
            ("package.json", "{}"),
            ("CONTRIBUTING.md", ""),
            ("Documentation~/contributing.md", ""),
            ("Documentation~/index.md", ""),
            ("Tests/T.cs", ""),
            ("Tests.meta", ""),
            ("Runtime/A.TMP", ""),
            ("Runtime/A.cs", ""),
            (
                ".npmignore",
                "# c\nCONTRIBUTING.md\n  tests/  \n\ttests.meta\n*.tmp\n   # c\n",
            ),
        ]);
        assert_eq!(
            select_files(t.path(), &manifest("{}")).unwrap(),
            ["Documentation~/index.md", "Runtime/A.cs", "package.json"]
        );
    }

    #[test]
    fn files_entries_match_like_npm() {
        let t = tree(&[
            ("package.json", "{}"),
            ("README.md", ""),
            ("README.md.meta", ""),
            ("LICENSE.txt~", ""),
            ("Runtime/A.cs", ""),
            ("Runtime.meta", ""),
            ("Editor/E.cs", ""),
            ("Editor.meta", ""),
            ("Samples~/Basic/S.cs", ""),
            ("Samples~/Other/O.cs", ""),
        ]);
        // "runtime" (no such directory in this case) matches the folder itself but none of its files;
        // "runtime.meta" matches Runtime.meta; "Editor/" is a directory: all of it.
        let m = manifest(r#"{"files":["runtime","runtime.meta","Editor/","Samples~/Basic/*"]}"#);
        assert_eq!(
            select_files(t.path(), &m).unwrap(),
            [
                "Editor/E.cs",
                "README.md",
                "README.md.meta",
                "Runtime.meta",
                "Samples~/Basic/S.cs",
                "package.json"
            ]
        );
    }

    #[test]
    fn files_name_patterns_apply_in_opened_directories_and_negated_files_are_strict() {
        let t = tree(&[
            ("package.json", "{}"),
            ("notes.md", ""),
            ("Tests/A.cs", ""),
            ("Tests/readme.md", ""),
            ("Tests/x.meta", ""),
            ("Docs/guide.md", ""),
            ("Runtime/B.cs", ""),
            ("Runtime/C.cs", ""),
        ]);
        // `*.md` has no `/`: it matches at any depth, but only where another entry opened the
        // directory (`Tests/A.cs` opens Tests/, nothing opens Docs/). `!Runtime/B.cs` names a file:
        // npm makes it a strict exclusion that the later `Runtime` cannot undo.
        let m = manifest(r#"{"files":["!Runtime/B.cs","*.md","Tests/A.cs","Runtime","*.meta"]}"#);
        assert_eq!(
            select_files(t.path(), &m).unwrap(),
            [
                "Runtime/C.cs",
                "Tests/A.cs",
                "Tests/readme.md",
                "Tests/x.meta",
                "notes.md",
                "package.json"
            ]
        );
    }

    #[test]
    fn entry_points_lock_files_and_bad_names() {
        let t = tree(&[
            ("package.json", "{}"),
            ("index.js", ""),
            ("lib/b.js", ""),
            ("lib/c.js", ""),
            ("lib/d.js", ""),
            ("lib/yarn.lock", ""),
            ("package-lock.json", ""),
            ("yarn.lock", ""),
            ("pnpm-lock.yaml", ""),
            ("bun.lockb", ""),
            ("archived-packages/old.tgz", ""),
            ("Runtime/Odd*Name.cs", ""),
            ("Runtime/A.cs", ""),
            ("Runtime/.npmrc", ""),
        ]);
        let m = manifest(
            r#"{"main":"./index.js","browser":"lib/b.js","bin":{"t":"./lib/c.js"},
                "files":["Runtime","package-lock.json","yarn.lock","bun.lockb","lib/yarn.lock"]}"#,
        );
        // `./index.js` as `main` matches nothing in npm; `bin` is normalised; root lock files never go in.
        assert_eq!(
            select_files(t.path(), &m).unwrap(),
            [
                "Runtime/A.cs",
                "lib/b.js",
                "lib/c.js",
                "lib/yarn.lock",
                "package.json"
            ]
        );
        // `main` outranks even a negated `files` entry naming the same file.
        let m = manifest(r#"{"files":["lib","!lib/b.js","!lib/c.js"],"main":"lib/b.js"}"#);
        assert_eq!(
            select_files(t.path(), &m).unwrap(),
            ["lib/b.js", "lib/d.js", "lib/yarn.lock", "package.json"]
        );
        let all = select_files(t.path(), &manifest("{}")).unwrap();
        assert!(!all
            .iter()
            .any(|f| f.contains('*') || f.contains("archived-packages")));
        assert!(all.contains(&"lib/yarn.lock".to_string()));
        assert!(!all.contains(&"bun.lockb".to_string()));
    }

    #[test]
    fn entries_follow_npms_order() {
        let mut files = vec![
            "package.json",
            "Runtime/B.cs.meta",
            "Runtime/A.cs",
            "README.md",
            "Runtime/A.cs.meta",
            "Editor/A.cs",
            "Runtime.meta",
            ".npmignore",
        ];
        files.sort_by(|a, b| npm_order(a, b));
        assert_eq!(
            files,
            [
                ".npmignore",
                "Editor/A.cs",
                "Runtime/A.cs",
                "package.json",
                "README.md",
                "Runtime/A.cs.meta",
                "Runtime/B.cs.meta",
                "Runtime.meta"
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

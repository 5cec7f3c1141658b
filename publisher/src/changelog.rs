//! A changelog section per published version, from the git history of the package's directory since the
//! previous published version, grouped by Conventional Commit type when messages follow it.

use std::fs;
use std::path::Path;

use semver::Version;

use crate::git::git;
use crate::model::Package;

/// Bounds on history reading: a package with a longer history since its last release gets a truncated
/// changelog (with a note) rather than a slow run.
const MAX_ENTRIES: usize = 100;
const MAX_MANIFEST_COMMITS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Breaking,
    Feature,
    Fix,
    Performance,
    Revert,
    Documentation,
    Other,
}

impl Kind {
    fn heading(self) -> &'static str {
        match self {
            Kind::Breaking => "Breaking Changes",
            Kind::Feature => "Features",
            Kind::Fix => "Bug Fixes",
            Kind::Performance => "Performance",
            Kind::Revert => "Reverts",
            Kind::Documentation => "Documentation",
            Kind::Other => "Other Changes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub scope: Option<String>,
    pub description: String,
    pub sha: String,
    /// True when the subject followed `type(scope)!: description`.
    pub conventional: bool,
}

/// Reads one commit's message the Conventional Commits way (`feat(ui)!: add x`, a `BREAKING CHANGE:`
/// footer); anything else is an `Other` entry with the whole subject.
pub fn parse_commit(sha: &str, subject: &str, body: &str) -> Entry {
    let subject = subject.trim();
    let other = || Entry {
        kind: Kind::Other,
        scope: None,
        description: subject.to_string(),
        sha: sha.to_string(),
        conventional: false,
    };
    let Some((head, description)) = subject.split_once(": ") else {
        return other();
    };
    let (head, bang) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let (kind, scope) = match head.split_once('(') {
        Some((kind, rest)) => match rest.strip_suffix(')') {
            Some(scope) if !scope.is_empty() && !scope.contains(['(', ')']) => {
                (kind, Some(scope.to_string()))
            }
            _ => return other(),
        },
        None => (head, None),
    };
    if kind.is_empty()
        || !kind.chars().all(|c| c.is_ascii_alphabetic())
        || description.trim().is_empty()
    {
        return other();
    }
    let breaking = bang
        || body
            .lines()
            .any(|l| l.starts_with("BREAKING CHANGE:") || l.starts_with("BREAKING-CHANGE:"));
    let kind = match (breaking, kind.to_ascii_lowercase().as_str()) {
        (true, _) => Kind::Breaking,
        (_, "feat" | "feature") => Kind::Feature,
        (_, "fix" | "bugfix") => Kind::Fix,
        (_, "perf") => Kind::Performance,
        (_, "revert") => Kind::Revert,
        (_, "docs" | "doc") => Kind::Documentation,
        _ => Kind::Other,
    };
    Entry {
        kind,
        scope,
        description: description.trim().to_string(),
        sha: sha.to_string(),
        conventional: true,
    }
}

/// The commit that introduced `previous` into the package.json: walking the manifest's history newest
/// first, the oldest commit of the most recent run at that version. Changes after it are new.
/// Reads the history lazily, so usually only a few versions are looked up.
pub fn boundary<I>(history: I, previous: &Version) -> Option<String>
where
    I: IntoIterator<Item = (String, Option<Version>)>,
{
    let mut found: Option<String> = None;
    for (sha, version) in history {
        match (&found, version.as_ref() == Some(previous)) {
            (_, true) => found = Some(sha),
            (Some(_), false) => break,
            (None, false) => {}
        }
    }
    found
}

/// The changelog section for one version (Markdown, starting with its `## [version] - date` heading).
pub fn render(
    version: &Version,
    date: &str,
    entries: &[Entry],
    since: Option<&Version>,
    truncated: bool,
) -> String {
    let mut out = format!("## [{version}] - {date}\n\n");
    if entries.is_empty() {
        match since {
            Some(prev) => out.push_str(&format!(
                "- No changes in this package's directory since {prev}.\n"
            )),
            None => out.push_str("- First release.\n"),
        }
        return out;
    }
    let line = |e: &Entry| {
        let short = &e.sha[..e.sha.len().min(7)];
        match &e.scope {
            Some(scope) => format!("- **{scope}:** {} ({short})\n", e.description),
            None => format!("- {} ({short})\n", e.description),
        }
    };
    if entries.iter().all(|e| !e.conventional) {
        for e in entries {
            out.push_str(&line(e));
        }
    } else {
        let mut kinds: Vec<Kind> = entries.iter().map(|e| e.kind).collect();
        kinds.sort();
        kinds.dedup();
        for (i, kind) in kinds.into_iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("### {}\n\n", kind.heading()));
            for e in entries.iter().filter(|e| e.kind == kind) {
                out.push_str(&line(e));
            }
        }
    }
    if truncated {
        out.push_str(&format!(
            "\n_Only the latest {MAX_ENTRIES} changes are listed._\n"
        ));
    }
    out
}

const NEW_FILE_HEADER: &str =
    "# Changelog\n\nAll notable changes to this package are documented in this file.\n\n";

/// `existing` with `section` added above the newest entry (below the file's title and preamble).
/// `None` when the file already has a section for `version`, so a re-run does not duplicate it.
pub fn prepend(existing: Option<&str>, version: &Version, section: &str) -> Option<String> {
    let Some(existing) = existing else {
        return Some(format!("{NEW_FILE_HEADER}{section}"));
    };
    let marker = format!("## [{version}]");
    if existing
        .lines()
        .any(|l| l.trim_start().starts_with(&marker))
    {
        return None;
    }
    let section = section.trim_end();
    let mut offset = 0;
    let mut insert_at = None;
    let mut saw_title = false;
    for line in existing.split_inclusive('\n') {
        if line.starts_with("## ") {
            insert_at = Some(offset);
            break;
        }
        if line.starts_with("# ") {
            saw_title = true;
        }
        offset += line.len();
    }
    Some(match (insert_at, saw_title) {
        (Some(at), _) => format!("{}{section}\n\n{}", &existing[..at], &existing[at..]),
        // A title and a preamble but no release yet: append after them.
        (None, true) => format!("{}\n\n{section}\n", existing.trim_end()),
        (None, false) => format!("{section}\n\n{existing}"),
    })
}

/// The section for a published package, from the workspace's git history.
pub fn for_package(
    root: &Path,
    package: &Package,
    previous: Option<&Version>,
) -> Result<String, String> {
    let manifest = package.path.manifest_file();
    let boundary_sha = match previous {
        Some(prev) => {
            let shas = git(
                root,
                &[
                    "log",
                    &format!("--max-count={MAX_MANIFEST_COMMITS}"),
                    "--format=%H",
                    "HEAD",
                    "--",
                    &manifest,
                ],
            )?;
            let history = shas.lines().map(|sha| {
                let version = git(root, &["show", &format!("{sha}:{manifest}")])
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .and_then(|v| {
                        v.get("version")?
                            .as_str()
                            .and_then(|s| Version::parse(s).ok())
                    });
                (sha.to_string(), version)
            });
            boundary(history, prev)
        }
        None => None,
    };
    let range = match &boundary_sha {
        Some(sha) => format!("{sha}..HEAD"),
        None => "HEAD".to_string(),
    };
    // Fields separated by US (0x1f), records by RS (0x1e): neither appears in commit messages.
    let log = git(
        root,
        &[
            "log",
            "--no-merges",
            &format!("--max-count={}", MAX_ENTRIES + 1),
            "--format=%H%x1f%s%x1f%b%x1e",
            &range,
            "--",
            package.path.pathspec(),
        ],
    )?;
    let mut entries: Vec<Entry> = log
        .split('\x1e')
        .filter_map(|record| {
            let mut fields = record.trim_start_matches('\n').splitn(3, '\x1f');
            let sha = fields.next()?.trim();
            if sha.is_empty() {
                return None;
            }
            Some(parse_commit(
                sha,
                fields.next().unwrap_or(""),
                fields.next().unwrap_or(""),
            ))
        })
        .collect();
    let truncated = entries.len() > MAX_ENTRIES;
    entries.truncate(MAX_ENTRIES);
    let date = git(root, &["log", "-1", "--format=%cs", "HEAD"])?;
    Ok(render(
        &package.version,
        date.trim(),
        &entries,
        previous,
        truncated,
    ))
}

/// Adds `section` to the package's CHANGELOG.md (created when missing). Returns whether it wrote.
pub fn write(package: &Package, section: &str) -> Result<bool, String> {
    let path = package.dir.join("CHANGELOG.md");
    let existing = match fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read CHANGELOG.md: {e}")),
    };
    match prepend(existing.as_deref(), &package.version, section) {
        Some(text) => {
            fs::write(&path, text).map_err(|e| format!("cannot write CHANGELOG.md: {e}"))?;
            write_meta(package)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A CHANGELOG.md without its `.meta` fails the package's next publish (Unity ignores such a file in
/// an immutable package, and `assets` checks for it): a new CHANGELOG.md gets one. Its GUID is derived
/// from the package name, so two runs of one commit write the same bytes.
fn write_meta(package: &Package) -> Result<(), String> {
    use sha1::Digest as _;
    let path = package.dir.join("CHANGELOG.md.meta");
    if fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let digest = sha1::Sha1::digest(format!("{}/CHANGELOG.md", package.name).as_bytes());
    let guid: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let text = format!(
        "fileFormatVersion: 2\nguid: {guid}\nTextScriptImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
    );
    fs::write(&path, text).map_err(|e| format!("cannot write CHANGELOG.md.meta: {e}"))
}

/// The section without its heading: what the notification and the summary show.
pub fn body(section: &str) -> &str {
    section
        .split_once("\n\n")
        .map(|(_, b)| b)
        .unwrap_or(section)
        .trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn conventional_commits() {
        let e = parse_commit("abc", "feat(ui): add a button", "");
        assert_eq!(
            (e.kind, e.scope.as_deref(), e.description.as_str()),
            (Kind::Feature, Some("ui"), "add a button")
        );
        assert_eq!(parse_commit("a", "fix: crash on load", "").kind, Kind::Fix);
        assert_eq!(
            parse_commit("a", "refactor!: drop Unity 2020", "").kind,
            Kind::Breaking
        );
        assert_eq!(
            parse_commit("a", "feat: x", "text\nBREAKING CHANGE: y").kind,
            Kind::Breaking
        );
        assert_eq!(
            parse_commit("a", "docs: readme", "").kind,
            Kind::Documentation
        );
        assert_eq!(parse_commit("a", "chore: bump", "").kind, Kind::Other);
        assert!(parse_commit("a", "chore: bump", "").conventional);
        // Any alphabetic type is conventional (grouped under Other when unknown), capitals included.
        assert_eq!(parse_commit("a", "Fix: thing", "").kind, Kind::Fix);
        assert!(parse_commit("a", "WIP: two things", "").conventional);
        for plain in ["Update README", "feat(: x", "feat:", "a b: c", "fix(): x"] {
            let e = parse_commit("a", plain, "");
            assert!(!e.conventional, "{plain}");
            assert_eq!(e.description, plain.trim());
        }
    }

    #[test]
    fn the_boundary_is_where_the_previous_version_was_introduced() {
        let h = |pairs: &[(&str, Option<&str>)]| -> Vec<(String, Option<Version>)> {
            pairs
                .iter()
                .map(|(s, v)| (s.to_string(), v.map(|v| Version::parse(v).unwrap())))
                .collect()
        };
        // newest first: bump to 1.2.0, two edits at 1.1.0, the bump to 1.1.0, older history.
        let history = h(&[
            ("e", Some("1.2.0")),
            ("d", Some("1.1.0")),
            ("c", Some("1.1.0")),
            ("b", Some("1.1.0")),
            ("a", Some("1.0.0")),
        ]);
        assert_eq!(boundary(history.clone(), &v("1.1.0")).as_deref(), Some("b"));
        assert_eq!(boundary(history.clone(), &v("1.0.0")).as_deref(), Some("a"));
        assert_eq!(boundary(history, &v("0.9.0")), None);
        // An unreadable manifest in between ends the run.
        let history = h(&[("c", Some("1.1.0")), ("b", None), ("a", Some("1.1.0"))]);
        assert_eq!(boundary(history, &v("1.1.0")).as_deref(), Some("c"));
    }

    #[test]
    fn rendering_groups_conventional_commits() {
        let entries = vec![
            parse_commit("1111111aaa", "fix(io): close files", ""),
            parse_commit("2222222bbb", "feat: streaming", ""),
            parse_commit("3333333ccc", "Tidy up", ""),
            parse_commit("4444444ddd", "feat!: new API", ""),
        ];
        let text = render(
            &v("2.0.0"),
            "2026-11-24",
            &entries,
            Some(&v("1.0.0")),
            false,
        );
        assert_eq!(
            text,
            "## [2.0.0] - 2026-11-24\n\n### Breaking Changes\n\n- new API (4444444)\n\n### Features\n\n- streaming (2222222)\n\n\
             ### Bug Fixes\n\n- **io:** close files (1111111)\n\n### Other Changes\n\n- Tidy up (3333333)\n"
        );
        let plain = render(
            &v("1.0.1"),
            "d",
            &[parse_commit("abcdef12", "Tidy up", "")],
            None,
            true,
        );
        assert!(
            plain.contains("- Tidy up (abcdef1)\n")
                && !plain.contains("###")
                && plain.contains("Only the latest")
        );
        assert!(render(&v("1.0.0"), "d", &[], None, false).contains("First release"));
        assert_eq!(body("## [1.0.0] - d\n\n- x\n"), "- x");
    }

    #[test]
    fn prepending_keeps_title_and_is_idempotent() {
        let section = "## [1.1.0] - d\n\n- new\n";
        let fresh = prepend(None, &v("1.1.0"), section).unwrap();
        assert!(fresh.starts_with("# Changelog\n") && fresh.ends_with(section));
        let existing = "# Changelog\n\nNotes.\n\n## [1.0.0] - c\n\n- old\n";
        let updated = prepend(Some(existing), &v("1.1.0"), section).unwrap();
        assert_eq!(
            updated,
            "# Changelog\n\nNotes.\n\n## [1.1.0] - d\n\n- new\n\n## [1.0.0] - c\n\n- old\n"
        );
        assert_eq!(prepend(Some(&updated), &v("1.1.0"), section), None);
        assert_eq!(
            prepend(Some("# Changelog\n"), &v("1.1.0"), section).unwrap(),
            "# Changelog\n\n## [1.1.0] - d\n\n- new\n"
        );
        assert_eq!(
            prepend(Some("- loose\n"), &v("1.1.0"), section).unwrap(),
            "## [1.1.0] - d\n\n- new\n\n- loose\n"
        );
    }
}

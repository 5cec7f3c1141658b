//! preview: what merging a pull request would publish, decided before the merge.
//!
//! The verdict on each package comes from the publish path itself: `run::run` in dry run, against a
//! read-only registry client (`Registry::read_only`: no token, every write refused before it is sent),
//! so every rule the publish applies (manifest, Unity's `.meta` and GUID rules, GUIDs against the
//! registry's packages, dependencies on the registry, cycles) is applied here by the same code. This
//! module adds what only a preview needs: which packages the pull request touched (`git diff` of the
//! merge base and the head), whether a touched package's version moved, the tarball's files against the
//! published version's, the changelog section, and the report (a table, a Markdown summary, the check
//! run's conclusion and annotations).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use semver::Version;
use serde::Serialize;

use crate::changelog;
use crate::discover::{self, Candidate, Request};
use crate::git::git;
use crate::model::{ChangeKind, Outcome, Package, PackagePath, Problem};
use crate::pack;
use crate::publish;
use crate::registry::{self, Registry};
use crate::run;
use crate::validate::{self, Validated};

/// The check run's name: what branch protection requires.
pub const CHECK_NAME: &str = "UPM publish preview";

/// What merging would do to one package.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A new version would be published.
    Publish {
        /// The version on the base branch (`None`: a new package).
        from: Option<String>,
        /// The highest version on the registry below this one.
        previous: Option<String>,
        change: ChangeKind,
        dist_tag: Option<String>,
        files: FileDiff,
        changelog: String,
    },
    /// Files of the package changed, its version did not, and that version is published: the merge
    /// publishes nothing. The most common mistake.
    NotBumped,
    /// The version is on the registry with exactly these bytes: nothing to publish.
    AlreadyPublished,
    /// The version is on the registry with other bytes: the publish would fail.
    PublishedDifferently,
    /// The publish would fail (validation, the registry, dependencies…).
    Fail {
        stage: String,
        reason: String,
        problems: Vec<Problem>,
    },
    /// Not a package that publishes (`private`, not UPM-shaped).
    Skip { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackagePreview {
    pub path: String,
    pub name: Option<String>,
    pub version: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The tarball's files against the published version's (`against`), by path and size.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileDiff {
    pub against: Option<String>,
    pub files: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Files in both whose size changed: (path, bytes before, bytes after).
    pub resized: Vec<(String, u64, u64)>,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Neutral,
    Failure,
}

/// The whole preview of one pull request head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    pub base: String,
    pub head: String,
    pub changed_files: usize,
    pub packages: Vec<PackagePreview>,
}

/// One annotation: a repository path and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub path: String,
    pub title: String,
    pub message: String,
}

/// The package directories that own `changed` files: a file belongs to the deepest package directory
/// holding it (UPM packages may nest, e.g. a sample project inside a package). `.` is the root.
pub fn touched_packages(changed: &[String], package_dirs: &[PackagePath]) -> Vec<PackagePath> {
    let mut touched = BTreeSet::new();
    for file in changed {
        let owner = package_dirs
            .iter()
            .filter(|dir| {
                dir.as_str() == "."
                    || file
                        .strip_prefix(dir.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|dir| {
                if dir.as_str() == "." {
                    0
                } else {
                    dir.as_str().len()
                }
            });
        if let Some(dir) = owner {
            touched.insert(dir.clone());
        }
    }
    touched.into_iter().collect()
}

/// Files of `after` against `before` (path → unpacked bytes).
pub fn file_diff(
    against: Option<String>,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> FileDiff {
    let mut diff = FileDiff {
        against,
        files: after.len(),
        bytes_before: before.values().sum(),
        bytes_after: after.values().sum(),
        ..FileDiff::default()
    };
    for (path, size) in after {
        match before.get(path) {
            None => diff.added.push(path.clone()),
            Some(old) if old != size => diff.resized.push((path.clone(), *old, *size)),
            Some(_) => {}
        }
    }
    diff.removed = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect();
    diff
}

/// `failure` when a package would fail to publish, `neutral` when nothing would publish, `success`
/// otherwise: what branch protection reads.
pub fn conclusion(packages: &[PackagePreview]) -> Conclusion {
    let fails = packages.iter().any(|p| {
        matches!(
            p.verdict,
            Verdict::Fail { .. } | Verdict::PublishedDifferently
        )
    });
    if fails {
        Conclusion::Failure
    } else if packages
        .iter()
        .any(|p| matches!(p.verdict, Verdict::Publish { .. }))
    {
        Conclusion::Success
    } else {
        Conclusion::Neutral
    }
}

/// The check run's title: one line saying what the merge would do.
pub fn title(packages: &[PackagePreview]) -> String {
    let count = |f: fn(&Verdict) -> bool| packages.iter().filter(|p| f(&p.verdict)).count();
    let publish = count(|v| matches!(v, Verdict::Publish { .. }));
    let fail = count(|v| matches!(v, Verdict::Fail { .. } | Verdict::PublishedDifferently));
    let not_bumped = count(|v| matches!(v, Verdict::NotBumped));
    match (publish, fail, not_bumped) {
        (_, f, _) if f > 0 => format!("{f} package(s) would fail to publish"),
        (0, _, 0) if packages.is_empty() => "No UPM package changed: nothing will publish".into(),
        (0, _, n) if n > 0 => {
            format!("{n} package(s) changed without a version bump: nothing will publish")
        }
        (0, _, _) => "Nothing will publish".into(),
        (p, _, _) => format!("{p} package(s) will publish"),
    }
}

fn package_label(p: &PackagePreview) -> String {
    match (&p.name, &p.version) {
        (Some(name), Some(_)) => name.clone(),
        _ => p.path.clone(),
    }
}

/// One line per package, the same words in the table, the summary and the terminal.
pub fn what(p: &PackagePreview) -> String {
    let version = p.version.as_deref().unwrap_or("?");
    match &p.verdict {
        Verdict::Publish {
            from,
            change,
            dist_tag,
            previous,
            ..
        } => {
            let from = from.as_deref().or(previous.as_deref());
            let arrow = match from {
                Some(from) => format!("{from} → {version} ({change})"),
                None => format!("{version} ({change})"),
            };
            format!(
                "{arrow}, dist-tag {}",
                dist_tag
                    .as_deref()
                    .unwrap_or("none (every tag is already higher)")
            )
        }
        Verdict::NotBumped => {
            format!("version not bumped: nothing will publish (files changed, {version} is already published)")
        }
        Verdict::AlreadyPublished => {
            format!("{version} is already published with this content: nothing will publish")
        }
        Verdict::PublishedDifferently => {
            format!("{version} is already published with different content: bump again")
        }
        Verdict::Fail { stage, reason, .. } => format!("would fail ({stage}): {reason}"),
        Verdict::Skip { reason } => format!("skipped: {reason}"),
    }
}

fn signed(after: u64, before: u64) -> String {
    let delta = after as i64 - before as i64;
    if delta >= 0 {
        format!("+{delta} B")
    } else {
        format!("{delta} B")
    }
}

fn files_line(diff: &FileDiff) -> String {
    match &diff.against {
        None => format!(
            "{} files, {} B (first version)",
            diff.files, diff.bytes_after
        ),
        Some(v) => format!(
            "{} files against {v}: {} added, {} removed, {} resized, {}",
            diff.files,
            diff.added.len(),
            diff.removed.len(),
            diff.resized.len(),
            signed(diff.bytes_after, diff.bytes_before)
        ),
    }
}

/// The terminal table (`upm-publisher preview` locally): one row per package.
pub fn table(preview: &Preview) -> String {
    let mut out = format!(
        "preview of {} against {} ({} changed file(s))\n",
        short(&preview.head),
        short(&preview.base),
        preview.changed_files
    );
    let width = preview
        .packages
        .iter()
        .map(|p| package_label(p).len())
        .max()
        .unwrap_or(7)
        .max(7);
    out.push_str(&format!("{:<width$}  WHAT\n", "PACKAGE"));
    for p in &preview.packages {
        out.push_str(&format!("{:<width$}  {}\n", package_label(p), what(p)));
        if let Verdict::Publish { files, .. } = &p.verdict {
            out.push_str(&format!("{:<width$}    files: {}\n", "", files_line(files)));
        }
    }
    if preview.packages.is_empty() {
        out.push_str("(no UPM package changed)\n");
    }
    out.push_str(&format!(
        "conclusion: {}\n",
        match conclusion(&preview.packages) {
            Conclusion::Success => "success",
            Conclusion::Neutral => "neutral",
            Conclusion::Failure => "failure",
        }
    ));
    out
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

const MAX_LISTED_FILES: usize = 30;

/// The check run's Markdown summary: a table of every package, then per package that publishes its
/// files against the published version and the changelog section that would be written.
pub fn markdown(preview: &Preview) -> String {
    let mut md = format!(
        "Merging this pull request (head `{}`, base `{}`, {} changed file(s)):\n\n",
        short(&preview.head),
        short(&preview.base),
        preview.changed_files
    );
    if preview.packages.is_empty() {
        md.push_str("No file of a UPM package changed: nothing will publish.\n");
        return md;
    }
    md.push_str("| package | path | what the merge does |\n|---|---|---|\n");
    for p in &preview.packages {
        md.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            cell(&package_label(p)),
            cell(&p.path),
            cell(&what(p))
        ));
    }
    for p in &preview.packages {
        match &p.verdict {
            Verdict::Publish {
                files, changelog, ..
            } => {
                md.push_str(&format!(
                    "\n### `{}@{}`\n\n{}\n",
                    package_label(p),
                    p.version.as_deref().unwrap_or("?"),
                    files_line(files)
                ));
                let changes = files
                    .added
                    .iter()
                    .map(|f| ("+", f))
                    .chain(files.removed.iter().map(|f| ("-", f)));
                for (i, (sign, path)) in changes.enumerate() {
                    if i == MAX_LISTED_FILES {
                        md.push_str("- …\n");
                        break;
                    }
                    md.push_str(&format!("- {sign} `{}`\n", cell(path)));
                }
                for (path, before, after) in files.resized.iter().take(MAX_LISTED_FILES) {
                    md.push_str(&format!("- ~ `{}` {before} B → {after} B\n", cell(path)));
                }
                if !changelog.trim().is_empty() {
                    md.push_str(
                        "\n<details><summary>Changelog section it would write</summary>\n\n",
                    );
                    md.push_str(changelog.trim());
                    md.push_str("\n\n</details>\n");
                }
            }
            Verdict::Fail { problems, .. } if !problems.is_empty() => {
                md.push_str(&format!("\n### `{}` would fail\n\n", package_label(p)));
                for problem in problems {
                    md.push_str(&format!(
                        "- `{}` {}\n",
                        cell(&problem.field),
                        cell(&problem.reason)
                    ));
                }
            }
            _ => {}
        }
    }
    md.push_str("\nNothing was published: a preview holds no registry token.\n");
    md
}

/// The repository path a problem points at: a file or folder of the package (`Runtime/A.cs`,
/// `Editor/`), else the package's package.json (a manifest field such as `version`).
pub fn problem_path(package_path: &str, field: &str) -> String {
    let manifest = if package_path == "." {
        "package.json".to_string()
    } else {
        format!("{package_path}/package.json")
    };
    let looks_like_path = field.contains('/') || field.contains('.') && !field.contains(' ');
    let is_manifest_field = field.starts_with("dependencies.")
        || field.starts_with("samples")
        || field.starts_with('(')
        || !looks_like_path;
    if is_manifest_field {
        return manifest;
    }
    let rel = field.trim_end_matches('/');
    if package_path == "." {
        rel.to_string()
    } else {
        format!("{package_path}/{rel}")
    }
}

/// An annotation for every problem of a package that would fail, and one on the package.json of a
/// package whose version must move.
pub fn annotations(preview: &Preview) -> Vec<Annotation> {
    let mut out = Vec::new();
    for p in &preview.packages {
        let manifest = problem_path(&p.path, "version");
        match &p.verdict {
            Verdict::Fail {
                problems, reason, ..
            } => {
                if problems.is_empty() {
                    out.push(Annotation {
                        path: manifest,
                        title: "would fail to publish".into(),
                        message: reason.clone(),
                    });
                }
                for problem in problems {
                    out.push(Annotation {
                        path: problem_path(&p.path, &problem.field),
                        title: "would fail to publish".into(),
                        message: format!("`{}` {}", problem.field, problem.reason),
                    });
                }
            }
            Verdict::PublishedDifferently => out.push(Annotation {
                path: manifest,
                title: "bump the version".into(),
                message: what(p),
            }),
            _ => {}
        }
    }
    out
}

pub struct Settings<'a> {
    /// The preview's only registry client: read-only.
    pub registry: &'a Registry,
    pub jobs: usize,
    pub guid_cache: Option<&'a Path>,
}

/// The files of the pull request: `git diff` from the merge base of `base` and `HEAD` to `HEAD`, as
/// GitHub's "Files changed" shows them. Renames are listed as a removal and an addition, so a file moved
/// out of a package counts for it too.
pub fn changed_files(root: &Path, base: &str) -> Result<(String, String, Vec<String>), String> {
    let head = git(root, &["rev-parse", "HEAD"])?.trim().to_string();
    let base_sha = git(
        root,
        &["rev-parse", "--verify", &format!("{base}^{{commit}}")],
    )
    .map_err(|e| format!("base {base:?} is not a commit of the workspace: {e}"))?
    .trim()
    .to_string();
    let merge_base = git(root, &["merge-base", &base_sha, &head])
        .map_err(|e| format!("no merge base of {base} and HEAD (is the history fetched?): {e}"))?
        .trim()
        .to_string();
    let list = git(
        root,
        &[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            &merge_base,
            &head,
        ],
    )?;
    let files = list
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    Ok((base_sha, head, files))
}

/// The version a package had at the merge base (`None`: the package is new, or its manifest unreadable).
fn base_version(root: &Path, base: &str, path: &PackagePath) -> Option<Version> {
    let text = git(root, &["show", &format!("{base}:{}", path.manifest_file())]).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Version::parse(value.get("version")?.as_str()?).ok()
}

fn validated(root: &Path, path: &PackagePath) -> Option<Package> {
    let found = discover::discover(root, &Request::Paths(vec![path.as_str().to_string()]));
    match found.into_iter().next()? {
        Candidate::Upm {
            path,
            dir,
            manifest,
        } => match validate::validate(path, dir, manifest) {
            Validated::Ok(package) => Some(*package),
            _ => None,
        },
        _ => None,
    }
}

/// The packed files of `package` with their sizes, and the tarball's sha1.
fn packed(package: &Package) -> Result<(BTreeMap<String, u64>, String), String> {
    let files = pack::select_files(&package.dir, &package.manifest)?;
    let sizes = files
        .iter()
        .map(|f| {
            let size = std::fs::metadata(package.dir.join(f)).map_or(0, |m| m.len());
            (f.clone(), size)
        })
        .collect();
    let tarball = pack::build_tarball(&package.dir, files)?;
    Ok((sizes, crate::verify::Digests::of(&tarball.bytes).shasum))
}

/// The files and sizes of a published version's tarball.
fn published_files(
    registry: &Registry,
    package: &Package,
    packument: &registry::Packument,
    version: &str,
) -> Result<BTreeMap<String, u64>, String> {
    let meta = packument
        .versions
        .get(version)
        .ok_or_else(|| format!("{version} is not in the packument"))?;
    let dist = meta
        .dist
        .as_ref()
        .ok_or_else(|| format!("{version} has no dist in the packument"))?;
    let url = registry::tarball_url(registry.base(), &package.name, &dist.tarball);
    let bytes = registry.download(&url)?;
    let entries = upm_unity::tarball::files(&bytes)?;
    Ok(entries
        .into_iter()
        .map(|(path, bytes)| (path, bytes.len() as u64))
        .collect())
}

/// The preview of `HEAD` against `base` in the checkout at `root`.
pub fn preview(root: &Path, base: &str, settings: &Settings) -> Result<Preview, String> {
    if !settings.registry.is_read_only() {
        return Err("a preview needs a read-only registry client".into());
    }
    let (base_sha, head, changed) = changed_files(root, base)?;
    let dirs = discover::scan(root).map_err(|e| format!("scanning the workspace: {e}"))?;
    let touched = touched_packages(&changed, &dirs);
    let mut preview = Preview {
        base: base_sha.clone(),
        head,
        changed_files: changed.len(),
        packages: Vec::new(),
    };
    if touched.is_empty() {
        return Ok(preview);
    }
    let published_at = std::sync::Mutex::new(BTreeMap::new());
    let run_settings = run::Settings {
        registry: settings.registry,
        jobs: settings.jobs,
        dry_run: true,
        guid_cache: settings.guid_cache,
        prebuilt: None,
        require_signed: false,
        published_at: &published_at,
    };
    let request = Request::Paths(touched.iter().map(|p| p.as_str().to_string()).collect());
    let outcomes = run::run(root, &request, &run_settings);
    for outcome in outcomes {
        preview
            .packages
            .push(judge(root, &base_sha, outcome, settings));
    }
    Ok(preview)
}

/// One package's verdict, from the dry run's outcome and, for what the dry run cannot say, the registry.
fn judge(root: &Path, base: &str, outcome: Outcome, settings: &Settings) -> PackagePreview {
    let (path, name, version, skipped_reason) = match outcome {
        Outcome::Failed(f) => {
            return PackagePreview {
                path: f.path.as_str().to_string(),
                name: f.name,
                version: f.version,
                verdict: Verdict::Fail {
                    stage: f.stage.to_string(),
                    reason: f.reason,
                    problems: f.problems,
                },
            }
        }
        Outcome::Published(p) => {
            // Not reachable with a read-only registry; said plainly should it ever be.
            return PackagePreview {
                path: p.path.as_str().to_string(),
                name: Some(p.name.to_string()),
                version: Some(p.version.clone()),
                verdict: Verdict::Fail {
                    stage: "publish".into(),
                    reason: "the preview published (a bug: report it)".into(),
                    problems: Vec::new(),
                },
            };
        }
        Outcome::Skipped(s) => (s.path, s.name, s.version, s.reason),
    };
    let fail = |reason: String| Verdict::Fail {
        stage: "registry".into(),
        reason,
        problems: Vec::new(),
    };
    let would_publish = skipped_reason.starts_with(publish::DRY_RUN_PUBLISH);
    let already = skipped_reason == run::ALREADY_PUBLISHED;
    let verdict = match validated(root, &path) {
        _ if !would_publish && !already => Verdict::Skip {
            reason: skipped_reason,
        },
        None => fail("the package did not validate a second time".into()),
        Some(package) => {
            let from = base_version(root, base, &package.path);
            match settings.registry.packument(&package.name) {
                Err(e) => fail(e),
                Ok(packument) if already => {
                    match (
                        packed(&package),
                        packument
                            .as_ref()
                            .and_then(|p| p.versions.get(&package.version.to_string())),
                    ) {
                        (Err(e), _) => fail(e),
                        (Ok((_, shasum)), Some(meta))
                            if meta.dist.as_ref().is_some_and(|d| d.shasum == shasum) =>
                        {
                            Verdict::AlreadyPublished
                        }
                        _ if from.as_ref() == Some(&package.version) => Verdict::NotBumped,
                        _ => Verdict::PublishedDifferently,
                    }
                }
                Ok(packument) => {
                    let previous = publish::previous_version(packument.as_ref(), &package.version);
                    let tags = packument
                        .as_ref()
                        .map(|p| p.dist_tags.clone())
                        .unwrap_or_default();
                    let latest = tags.get("latest").and_then(|v| Version::parse(v).ok());
                    let change =
                        publish::change_kind(&package.version, previous.as_ref(), latest.as_ref());
                    let dist_tag = publish::choose_dist_tag(&package.version, &tags);
                    let against = previous.as_ref().map(Version::to_string);
                    let before = match (&packument, &against) {
                        (Some(doc), Some(v)) => {
                            published_files(settings.registry, &package, doc, v)
                        }
                        _ => Ok(BTreeMap::new()),
                    };
                    match (before, packed(&package)) {
                        (Err(e), _) | (_, Err(e)) => fail(e),
                        (Ok(before), Ok((after, _))) => Verdict::Publish {
                            from: from.as_ref().map(Version::to_string),
                            previous: against.clone(),
                            change,
                            dist_tag,
                            files: file_diff(against, &before, &after),
                            changelog: changelog::for_package(root, &package, previous.as_ref())
                                .unwrap_or_default(),
                        },
                    }
                }
            }
        }
    };
    PackagePreview {
        path: path.as_str().to_string(),
        name,
        version,
        verdict,
    }
}

#[cfg(test)]
#[path = "preview_tests.rs"]
mod tests;

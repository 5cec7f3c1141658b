//! Domain types shared by the stages. Each stage turns its input into one of these; nothing downstream
//! of `validate` sees raw package.json text, and nothing downstream of `registry` sees an HTTP status.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A package directory, relative to the workspace root, with `/` separators; `""` is the root itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PackagePath(String);

impl PackagePath {
    pub fn root() -> Self {
        PackagePath(String::new())
    }

    /// Callers guarantee `rel` is normalised (see `discover::normalise_path`).
    pub fn new(rel: impl Into<String>) -> Self {
        PackagePath(rel.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The package.json of this directory, as shown to people (`package.json` for the root).
    pub fn manifest_file(&self) -> String {
        if self.0.is_empty() {
            "package.json".to_string()
        } else {
            format!("{}/package.json", self.0)
        }
    }

    /// The pathspec git needs for this directory (`.` for the root: an empty pathspec is an error).
    pub fn pathspec(&self) -> &str {
        if self.0.is_empty() {
            "."
        } else {
            &self.0
        }
    }
}

impl fmt::Display for PackagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A package name that passed `validate::check_name`: lower-case reverse-domain or `@scope/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PackageName(String);

impl PackageName {
    /// Only `validate` constructs names; everything else receives them checked.
    pub(crate) fn new_unchecked(name: String) -> Self {
        PackageName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as one URL path segment: npm registries want the scope's `/` encoded (`@scope%2fname`).
    pub fn url_segment(&self) -> String {
        self.0.replace('/', "%2f")
    }

    /// The name without its scope: npm names tarballs `<bare>-<version>.tgz`.
    pub fn bare(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A UPM package found in the workspace and validated: ready to be looked up and published.
#[derive(Debug, Clone)]
pub struct Package {
    pub path: PackagePath,
    /// Absolute directory on disk.
    pub dir: PathBuf,
    pub name: PackageName,
    pub version: semver::Version,
    pub display_name: Option<String>,
    /// The package.json as written: it is published as the version's manifest, so every field is kept.
    pub manifest: serde_json::Map<String, serde_json::Value>,
    /// Problems that do not stop the publish (see publisher/README.md, "Validation").
    pub warnings: Vec<Problem>,
}

impl Package {
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// The stage at which a package failed: tells a reader where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Checkout,
    Discover,
    Validate,
    Registry,
    Pack,
    Publish,
    Verify,
    /// Stored and verified, but Unity's Package Manager does not see it (`visible`).
    Visible,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Stage::Checkout => "checkout",
            Stage::Discover => "discover",
            Stage::Validate => "validate",
            Stage::Registry => "registry",
            Stage::Pack => "pack",
            Stage::Publish => "publish",
            Stage::Verify => "verify",
            Stage::Visible => "visible",
        };
        f.write_str(s)
    }
}

/// One problem with one field of a package.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

/// What kind of release a published version is, against the versions already on the registry: what
/// people read first in the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The first version of the package on the registry.
    Initial,
    Major,
    Minor,
    Patch,
    Prerelease,
    /// Below the current `latest`: a fix on an older line.
    Backport,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Initial => "new package",
            ChangeKind::Major => "major",
            ChangeKind::Minor => "minor",
            ChangeKind::Patch => "patch",
            ChangeKind::Prerelease => "prerelease",
            ChangeKind::Backport => "backport",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub path: PackagePath,
    pub name: PackageName,
    pub version: String,
    /// The highest version below this one on the registry before the upload, if any.
    pub previous: Option<String>,
    pub change: ChangeKind,
    /// `None` when no tag could move forward (see `publish::choose_dist_tag`).
    pub dist_tag: Option<String>,
    pub shasum: String,
    pub integrity: String,
    pub display_name: Option<String>,
    pub files: usize,
    /// Bytes of the .tgz, and of its files unpacked.
    pub size: usize,
    pub unpacked_size: u64,
    /// Set when the upload met a 409 and the stored tarball turned out to be ours (a retried upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Validation warnings: published anyway (publisher/README.md, "Validation").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
    pub changelog: String,
    /// Published from a tarball signed by Unity's CLI, byte for byte (`signing`).
    pub signed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub path: PackagePath,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub path: PackagePath,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub stage: Stage,
    /// Field-level problems (validation); empty for other stages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    pub reason: String,
}

impl Failed {
    /// A failure listing problems with their paths or fields (validation of a package that parsed).
    pub fn with_problems(package: &Package, stage: Stage, problems: Vec<Problem>) -> Self {
        let reason = problems
            .iter()
            .map(|p| format!("`{}` {}", p.field, p.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Failed {
            problems,
            ..Failed::of(package, stage, reason)
        }
    }

    /// A failure tied to a package that passed validation.
    pub fn of(package: &Package, stage: Stage, reason: impl Into<String>) -> Self {
        Failed {
            path: package.path.clone(),
            file: package.path.manifest_file(),
            name: Some(package.name.to_string()),
            version: Some(package.version.to_string()),
            stage,
            problems: Vec::new(),
            reason: reason.into(),
        }
    }
}

/// What happened to one package.json.
#[derive(Debug, Clone)]
pub enum Outcome {
    Published(Box<Published>),
    Skipped(Skipped),
    Failed(Failed),
}

/// Where the packages came from: shown in the summary, the audit file and the notification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Source {
    pub repository: Option<String>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Link to the workflow run, when running in GitHub Actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    #[serde(skip)]
    pub server_url: String,
}

impl Source {
    pub fn commit_url(&self) -> Option<String> {
        match (&self.repository, &self.commit_sha) {
            (Some(repo), Some(sha)) => Some(format!("{}/{repo}/commit/{sha}", self.server_url)),
            _ => None,
        }
    }

    /// The package's CHANGELOG.md as it is at the published commit.
    pub fn changelog_url(&self, path: &PackagePath) -> Option<String> {
        match (&self.repository, &self.commit_sha) {
            (Some(repo), Some(sha)) => {
                let dir = match path.as_str() {
                    "" => String::new(),
                    dir => format!("{dir}/"),
                };
                Some(format!(
                    "{}/{repo}/blob/{sha}/{dir}CHANGELOG.md",
                    self.server_url
                ))
            }
            _ => None,
        }
    }

    pub fn short_sha(&self) -> Option<&str> {
        self.commit_sha.as_deref().map(|s| &s[..s.len().min(7)])
    }
}

/// Everything a run decided, in the order packages were found.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: Source,
    pub registry: String,
    pub dry_run: bool,
    /// When the run finished deciding (RFC 3339, UTC): stamped on the audit file and the summary.
    pub finished_at: String,
    pub outcomes: Vec<Outcome>,
}

/// The package's page on the registry's web interface (Verdaccio's `/-/web/detail/<name>`).
pub fn registry_page(registry: &str, name: &PackageName) -> String {
    format!(
        "{}/-/web/detail/{}",
        registry.trim_end_matches('/'),
        name.as_str()
    )
}

impl Report {
    pub fn published(&self) -> impl Iterator<Item = &Published> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Published(p) => Some(p.as_ref()),
            _ => None,
        })
    }

    pub fn skipped(&self) -> impl Iterator<Item = &Skipped> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Skipped(s) => Some(s),
            _ => None,
        })
    }

    pub fn failed(&self) -> impl Iterator<Item = &Failed> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Failed(f) => Some(f),
            _ => None,
        })
    }

    pub fn has_failures(&self) -> bool {
        self.failed().next().is_some()
    }

    /// For the tests of what renders a report: `outcomes` from studio/game@0123456 on main, on github.com.
    #[cfg(test)]
    pub fn fixture(outcomes: Vec<Outcome>) -> Report {
        Report {
            source: Source {
                repository: Some("studio/game".into()),
                commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
                branch: Some("main".into()),
                server_url: "https://github.com".into(),
                run_url: Some("https://github.com/studio/game/actions/runs/77".into()),
                ..Source::default()
            },
            registry: "http://r".into(),
            dry_run: false,
            finished_at: "2026-11-27T10:00:00Z".into(),
            outcomes,
        }
    }
}

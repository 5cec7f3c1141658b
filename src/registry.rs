//! registry: is the pushed repository registered, active, and which branch publishes?
//!
//! The registry is `config/repositories.json` in the central repository. It is read through three tiers:
//! the isolate's memory, Workers KV, and GitHub's contents API. A copy younger than the TTL is used as it
//! is; an older one is refreshed from GitHub, and if GitHub fails the older copy is used anyway, because
//! a registry that changes a few times a month is better stale than a delivery lost to an outage. This
//! module decides (parsing, lookup, freshness, which copy is newer); `registry_tiers` does the reading.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::RepoName;

/// The KV key holding the cached registry (see `CachedRegistry` for its format). It names where the copy
/// came from, so pointing DISPATCH_REPO or REGISTRY_PATH elsewhere can never serve the old file.
pub fn kv_key(central: &RepoName, registry_path: &str) -> String {
    format!("registry:v1:{}:{registry_path}", central.key())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Disabled,
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Pending => "pending",
        }
    }
}

/// One line of `config/repositories.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    url: String,
    status: Status,
    #[serde(default)]
    branch: Option<String>,
    /// Only tarballs signed by Unity's CLI may be published for this repository (the publisher reads
    /// it; the worker does not).
    #[serde(default)]
    require_signed: bool,
    /// `false` keeps the repository out of the weekly health check and its fix pull requests (the
    /// publisher reads it; the worker does not). Default true.
    #[serde(default = "yes")]
    health: bool,
    /// Free text for the humans who edit the file; not read.
    #[serde(default, rename = "note")]
    _note: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default, rename = "$schema")]
    _schema: Option<String>,
    repositories: Vec<EntryFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub repository: RepoName,
    pub status: Status,
    pub branch: Option<String>,
    pub require_signed: bool,
    /// Checked by the weekly health run (`"health": false` opts out).
    pub health: bool,
}

/// The parsed registry, keyed by the lower-cased `owner/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    entries: HashMap<String, Entry>,
}

impl Registry {
    /// Parses the registry file. The file is checked strictly (unknown fields, bad URLs, duplicates are
    /// errors naming the entry) because a typo here silently stops a repository from publishing.
    /// Nothing may follow the JSON document: a merge-conflict marker after it means the file is not
    /// what its author meant.
    pub fn parse(text: &str) -> Result<Registry, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let file: RegistryFile = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|err| format!("{}: {}", err.path(), err.inner()))?;
        deserializer
            .end()
            .map_err(|err| format!("data after the JSON document: {err}"))?;
        let mut entries = HashMap::with_capacity(file.repositories.len());
        for (index, entry) in file.repositories.into_iter().enumerate() {
            let repository = RepoName::parse(&entry.url).ok_or_else(|| {
                format!(
                    "repositories[{index}].url: {:?} is not a GitHub repository URL",
                    entry.url
                )
            })?;
            let branch = match entry.branch.as_deref().map(str::trim) {
                Some("") => return Err(format!("repositories[{index}].branch: empty")),
                other => other.map(str::to_string),
            };
            let key = repository.key().to_string();
            let entry = Entry {
                repository,
                status: entry.status,
                branch,
                require_signed: entry.require_signed,
                health: entry.health,
            };
            if let Some(previous) = entries.insert(key, entry) {
                return Err(format!(
                    "repositories[{index}].url: {} is listed twice",
                    previous.repository
                ));
            }
        }
        Ok(Registry { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, ordered by repository (for tools that walk the whole registry, such as the
    /// publisher's reconcile sweep).
    pub fn entries(&self) -> Vec<&Entry> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_by(|a, b| a.repository.key().cmp(b.repository.key()));
        entries
    }

    pub fn lookup(&self, repository: &RepoName) -> Lookup<'_> {
        match self.entries.get(repository.key()) {
            None => Lookup::NotRegistered,
            Some(entry) if entry.status == Status::Active => Lookup::Active(entry),
            Some(entry) => Lookup::Inactive(entry.status),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Active(&'a Entry),
    Inactive(Status),
    NotRegistered,
}

/// A registry copy with the time it was fetched from GitHub. Stored in KV as
/// `{"fetched_at_ms": <unix ms>, "document": "<the file's text>"}`: the text, not the parsed form, so the
/// KV copy can be read by anyone (and seeded by `wrangler kv key put`) without knowing our types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRegistry {
    pub fetched_at_ms: u64,
    pub registry: Registry,
}

#[derive(Serialize, Deserialize)]
struct KvEnvelope<'a> {
    fetched_at_ms: u64,
    #[serde(borrow)]
    document: std::borrow::Cow<'a, str>,
}

impl CachedRegistry {
    pub fn from_kv(value: &str) -> Result<CachedRegistry, String> {
        let envelope: KvEnvelope = serde_json::from_str(value).map_err(|e| e.to_string())?;
        Ok(CachedRegistry {
            fetched_at_ms: envelope.fetched_at_ms,
            registry: Registry::parse(&envelope.document)?,
        })
    }

    pub fn to_kv(document: &str, fetched_at_ms: u64) -> String {
        serde_json::to_string(&KvEnvelope {
            fetched_at_ms,
            document: document.into(),
        })
        .expect("the envelope serialises")
    }

    /// How far the copy's date is from now, either way: a copy dated in the future (clock skew between
    /// isolates, or a hand-seeded KV value) is as far from fresh as it is ahead, so a date years ahead
    /// cannot make a copy "fresh forever".
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.abs_diff(self.fetched_at_ms)
    }

    /// Fresh copies are used without asking GitHub.
    pub fn is_fresh(&self, now_ms: u64, ttl_ms: u64) -> bool {
        self.age_ms(now_ms) < ttl_ms
    }
}

/// Of two copies, the one fetched last.
pub fn newest(a: Option<CachedRegistry>, b: Option<CachedRegistry>) -> Option<CachedRegistry> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.fetched_at_ms > a.fetched_at_ms {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Does this push change the registry file the worker reads? Only a push to the central repository's
/// default branch does (the contents API serves that branch); then the cached copy is out of date now,
/// not in a minute, and the file is read as of the push's commit.
pub fn push_touches_registry(
    push: &crate::classify::PushEvent,
    central: &RepoName,
    registry_path: &str,
) -> bool {
    let on_default_branch = push
        .repository
        .default_branch
        .as_deref()
        .filter(|b| !b.is_empty())
        .is_some_and(|b| push.git_ref.strip_prefix("refs/heads/") == Some(b));
    on_default_branch
        && !push.deleted
        && RepoName::parse(&push.repository.full_name).as_ref() == Some(central)
        && push.commits.iter().any(|c| {
            c.added
                .iter()
                .chain(c.modified.iter())
                .chain(c.removed.iter())
                .any(|p| p == registry_path)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::push_touching;

    const FILE: &str = r#"{
      "$schema": "./schema.json",
      "repositories": [
        {"url": "https://github.com/Studio/Core-Utils", "status": "active"},
        {"url": "https://github.com/Studio/Old-Tools.git", "status": "disabled", "note": "archived"},
        {"url": "Studio/New-Thing", "status": "pending"},
        {"url": "https://github.com/Studio/Release-Train", "status": "active", "branch": "release"}
      ]
    }"#;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    /// The production registry must parse as it is; how many repositories it lists is the studio's
    /// business, so no count is asserted.
    #[test]
    fn the_shipped_registry_file_is_valid() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/repositories.json"
        ))
        .unwrap();
        Registry::parse(&text).unwrap();
    }

    #[test]
    fn the_test_registry_fixture_is_valid() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/registry.json"
        ))
        .unwrap();
        let registry = Registry::parse(&text).unwrap();
        assert!(matches!(
            registry.lookup(&name("Codertocat/Hello-World")),
            Lookup::Active(_)
        ));
    }

    #[test]
    fn health_is_on_unless_an_entry_says_false() {
        let registry = Registry::parse(
            r#"{"repositories": [
                {"url": "Studio/A", "status": "active"},
                {"url": "Studio/B", "status": "active", "health": false}
            ]}"#,
        )
        .unwrap();
        let health: Vec<(&str, bool)> = registry
            .entries()
            .iter()
            .map(|e| (e.repository.as_str(), e.health))
            .collect();
        assert_eq!(health, [("Studio/A", true), ("Studio/B", false)]);
        let typo = Registry::parse(
            r#"{"repositories": [{"url": "Studio/A", "status": "active", "health": "no"}]}"#,
        );
        assert!(typo.unwrap_err().contains("health"));
    }

    #[test]
    fn looks_up_case_insensitively_with_status() {
        let registry = Registry::parse(FILE).unwrap();
        assert_eq!(registry.len(), 4);
        match registry.lookup(&name("studio/core-utils")) {
            Lookup::Active(entry) => {
                assert_eq!(entry.repository.as_str(), "Studio/Core-Utils");
                assert_eq!(entry.branch, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            registry.lookup(&name("Studio/Old-Tools")),
            Lookup::Inactive(Status::Disabled)
        );
        assert_eq!(
            registry.lookup(&name("Studio/New-Thing")),
            Lookup::Inactive(Status::Pending)
        );
        assert_eq!(
            registry.lookup(&name("Studio/Unknown")),
            Lookup::NotRegistered
        );
        let Lookup::Active(entry) = registry.lookup(&name("STUDIO/release-train")) else {
            panic!("active");
        };
        assert_eq!(entry.branch.as_deref(), Some("release"));
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let cases = [
            (
                r#"{"repositories": [{"url": "Studio/A", "status": "enabled"}]}"#,
                "repositories[0].status",
            ),
            (
                r#"{"repositories": [{"url": "Studio/A", "status": "active", "brnach": "x"}]}"#,
                "brnach",
            ),
            (
                r#"{"repositories": [{"url": "https://gitlab.com/a/b", "status": "active"}]}"#,
                "repositories[0].url",
            ),
            (
                r#"{"repositories": [{"url": "Studio/A", "status": "active", "branch": " "}]}"#,
                "repositories[0].branch",
            ),
            (
                r#"{"repositories": [{"url": "Studio/A", "status": "active"}, {"url": "studio/a", "status": "disabled"}]}"#,
                "listed twice",
            ),
            (r#"{"repos": []}"#, "repos"),
            (
                "{\"repositories\": []}\n<<<<<<< HEAD\n",
                "data after the JSON document",
            ),
            ("{\"repositories\": []} {}", "data after the JSON document"),
            ("not json", "expected"),
        ];
        for (text, expected) in cases {
            let err = Registry::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn kv_envelope_round_trips() {
        let value = CachedRegistry::to_kv(FILE, 1_700_000_000_000);
        let cached = CachedRegistry::from_kv(&value).unwrap();
        assert_eq!(cached.fetched_at_ms, 1_700_000_000_000);
        assert_eq!(cached.registry, Registry::parse(FILE).unwrap());
        assert!(CachedRegistry::from_kv("{}").is_err());
        assert!(CachedRegistry::from_kv(r#"{"fetched_at_ms": 1, "document": "[]"}"#).is_err());
    }

    #[test]
    fn kv_key_names_the_source() {
        assert_eq!(
            kv_key(&name("Studio/Central"), "config/repositories.json"),
            "registry:v1:studio/central:config/repositories.json"
        );
    }

    #[test]
    fn freshness_and_newest() {
        let copy = |at| CachedRegistry {
            fetched_at_ms: at,
            registry: Registry::default(),
        };
        assert!(copy(1_000).is_fresh(60_999, 60_000));
        assert!(!copy(1_000).is_fresh(61_000, 60_000));
        assert!(
            copy(5_000).is_fresh(1_000, 60_000),
            "a copy from a few seconds ahead (clock skew) is fresh"
        );
        let year_ms = 365 * 24 * 3_600_000;
        assert!(
            !copy(1_000 + year_ms).is_fresh(1_000, 60_000),
            "a copy dated a year ahead is not fresh forever"
        );
        assert_eq!(copy(1_000 + year_ms).age_ms(1_000), year_ms);
        assert_eq!(
            newest(Some(copy(1)), Some(copy(2))).unwrap().fetched_at_ms,
            2
        );
        assert_eq!(
            newest(Some(copy(3)), Some(copy(2))).unwrap().fetched_at_ms,
            3
        );
        assert_eq!(newest(None, Some(copy(2))).unwrap().fetched_at_ms, 2);
        assert!(newest(None, None).is_none());
    }

    #[test]
    fn detects_a_push_that_edits_the_registry() {
        let central = name("codertocat/hello-world");
        let push = push_touching(&["config/repositories.json"]);
        assert!(push_touches_registry(
            &push,
            &central,
            "config/repositories.json"
        ));
        assert!(!push_touches_registry(
            &push,
            &name("Studio/Central"),
            "config/repositories.json"
        ));
        let push = push_touching(&["config/other.json"]);
        assert!(!push_touches_registry(
            &push,
            &central,
            "config/repositories.json"
        ));
        // The contents API serves the default branch: an edit on another branch changes nothing yet.
        let mut push = push_touching(&["config/repositories.json"]);
        push.git_ref = "refs/heads/edit-registry".into();
        assert!(!push_touches_registry(
            &push,
            &central,
            "config/repositories.json"
        ));
    }
}

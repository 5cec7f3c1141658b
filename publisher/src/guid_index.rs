//! The studio-wide GUID index: every GUID of the latest version of every package on the registry, so a
//! package published today cannot reuse a GUID that another package published last month already holds.
//! Unity identifies an asset by its GUID alone: when two installed packages share one, it imports one
//! asset and ignores the other ("GUID conflict"), in every project that installs both. The check within
//! one run (`assets::guid_clashes`) cannot see packages of other runs.
//!
//! The index is built from the registry's own tarballs, read with the same rules as validation (only
//! `.meta` files Unity reads count). Versions are immutable, so it is cached by `name@version` between
//! runs (`--guid-cache`): a warm run costs the listing only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use upm_unity::search::{self, Listed};

use crate::assets;
use crate::model::Problem;
use crate::registry::Registry;

/// GUID → the `.meta` that declares it, for one `name@version`.
pub type Guids = BTreeMap<String, String>;

/// The cache file: `name@version` → its GUIDs. `format` changes when the rules that pick the GUIDs do,
/// so an old cache is read again rather than trusted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cache {
    format: u32,
    entries: BTreeMap<String, Guids>,
}

/// Bumped whenever `guids_of_tarball` would pick other GUIDs from the same tarball.
const CACHE_FORMAT: u32 = 1;

impl Cache {
    /// The cache in `text`, or an empty one when it is damaged or of another format (it only saves work).
    pub fn parse(text: &str) -> Cache {
        match serde_json::from_str::<Cache>(text) {
            Ok(cache) if cache.format == CACHE_FORMAT => cache,
            _ => Cache::default(),
        }
    }
}

/// The index: `name@version` (the latest of each package on the registry) → its GUIDs.
#[derive(Debug, Default)]
pub struct Index {
    pub packages: BTreeMap<String, (String, Guids)>,
}

/// What building the index cost: shown in the log and measured by the bench.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub listed: usize,
    pub read: usize,
    pub cached: usize,
    pub requests: usize,
    pub millis: u128,
}

fn id(l: &Listed, version: &str) -> String {
    format!("{}@{version}", l.name)
}

/// Which listed versions must be downloaded: those without a cache entry. Packages without a listed
/// version have no tarball to read.
pub fn to_read<'a>(listing: &'a [Listed], cache: &Cache) -> Vec<(&'a Listed, String)> {
    listing
        .iter()
        .filter_map(|l| Some((l, l.version.clone()?)))
        .filter(|(l, v)| !cache.entries.contains_key(&id(l, v)))
        .collect()
}

/// The GUIDs Unity reads from a package tarball: those of `assets::check` on its files, with its own
/// package.json deciding what Unity imports.
pub fn guids_of_tarball(tgz: &[u8]) -> Result<Guids, String> {
    let files = upm_unity::tarball::files(tgz)?;
    let manifest = match files.get("package.json") {
        Some(bytes) => serde_json::from_slice(bytes).unwrap_or_default(),
        None => serde_json::Map::new(),
    };
    let paths: Vec<String> = files.keys().cloned().collect();
    Ok(assets::check(&paths, &manifest, &files).guids)
}

/// The GUIDs of `own` (package `name`) that the latest version of ANOTHER package on the registry
/// declares too: one problem per `.meta`, naming the other package and file. Another version of the
/// same package keeps its GUIDs on purpose and is not a clash.
pub fn clashes(name: &str, own: &Guids, index: &Index) -> Vec<Problem> {
    let mut holders: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (other, (id, guids)) in &index.packages {
        if other == name {
            continue;
        }
        for (guid, meta) in guids {
            holders.entry(guid).or_default().push((id, meta));
        }
    }
    own.iter()
        .filter_map(|(guid, meta)| {
            let others = holders.get(guid.as_str())?;
            let named = others
                .iter()
                .map(|(id, other)| format!("{id} {other}"))
                .collect::<Vec<_>>()
                .join(", ");
            Some(Problem {
                field: meta.clone(),
                reason: format!(
                    "GUID {guid} is already used by {named} on the registry: Unity would import only one \
                     of the two in every project that installs both; give this asset a new GUID"
                ),
            })
        })
        .collect()
}

/// Every package on the registry with its listed (latest) version, as Unity lists them: the search
/// endpoint with an empty text (every package matches), page after page until a short one; `/-/all`
/// when the search endpoint answers 404. Returns the listing and the requests it took.
pub fn list(registry: &Registry) -> Result<(Vec<Listed>, usize), String> {
    let mut listing = Vec::new();
    let mut requests = 0;
    for page in 0..search::MAX_PAGES {
        let url = search::search_url(registry.base(), "", page);
        let (status, _, body) = registry.get(&url)?;
        requests += 1;
        match status {
            200 => {}
            404 if page == 0 => {
                let url = search::all_url(registry.base());
                let (status, _, body) = registry.get(&url)?;
                requests += 1;
                if status != 200 {
                    return Err(format!(
                        "{url} answered {status} (and the search endpoint 404)"
                    ));
                }
                let all = search::parse_all(&body).map_err(|e| format!("{url}: {e}"))?;
                return Ok((all, requests));
            }
            status => return Err(format!("{url} answered {status}")),
        }
        let items = search::parse_search(&body).map_err(|e| format!("{url}: {e}"))?;
        let last = search::is_last_page(items.len());
        listing.extend(items);
        if last {
            listing.sort();
            listing.dedup_by(|a, b| a.name == b.name);
            return Ok((listing, requests));
        }
    }
    Err(format!(
        "the registry lists more than {} packages; the index stops there",
        search::MAX_PAGES * search::PAGE_SIZE
    ))
}

/// The registry's own URL of a version's tarball (npm's layout: `<name>/-/<bare name>-<version>.tgz`).
fn tarball_url(base: &str, name: &str, version: &str) -> String {
    let bare = name.rsplit('/').next().unwrap_or(name);
    format!(
        "{}/{name}/-/{bare}-{version}.tgz",
        base.trim_end_matches('/')
    )
}

/// The package name of a cache key (`name@version`; a scoped name starts with `@`).
fn name_of(key: &str) -> &str {
    key.rsplit_once('@').map_or(key, |(name, _)| name)
}

/// Packages the cache knows that `listing` does not list at all. Verdaccio's search has answered a
/// short listing with a 200 (seen in the tests while other packages were being published; its walk of
/// the storage folders gives up at the first error, such as a folder whose document is not written
/// yet), so a listing that lacks a known package is suspect.
pub fn unlisted_known<'a>(listing: &[Listed], cache: &'a Cache) -> Vec<&'a str> {
    let listed: std::collections::BTreeSet<&str> =
        listing.iter().map(|l| l.name.as_str()).collect();
    let mut out: Vec<&str> = cache
        .entries
        .keys()
        .map(|k| name_of(k))
        .filter(|name| !listed.contains(name))
        .collect();
    out.dedup();
    out
}

/// Adds `more` to `listing`, one entry per name (the first seen wins).
fn merge(listing: &mut Vec<Listed>, more: Vec<Listed>) {
    for l in more {
        if !listing.iter().any(|k| k.name == l.name) {
            listing.push(l);
        }
    }
}

/// Builds the index: lists the registry, reads what the cache lacks (`jobs` at a time), and writes the
/// cache back with the listed versions. Because a listing can come back truncated (see
/// `unlisted_known`), the registry is listed twice and the listings merged, and listed again (twice at
/// most) while a package the cache knows is missing; one still missing is kept from the cache, with a
/// warning (it was on the registry when it was cached; unpublishing is rare, a hidden GUID is worse).
pub fn build(
    registry: &Registry,
    cache_file: Option<&Path>,
    jobs: usize,
) -> Result<(Index, Cost), String> {
    let started = Instant::now();
    let (mut listing, mut list_requests) = list(registry)?;
    let mut cache = cache_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|text| Cache::parse(&text))
        .unwrap_or_default();
    for round in 0..3 {
        if round > 0 && unlisted_known(&listing, &cache).is_empty() {
            break;
        }
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let (again, requests) = list(registry)?;
        list_requests += requests;
        merge(&mut listing, again);
    }
    let still_unlisted: Vec<String> = unlisted_known(&listing, &cache)
        .into_iter()
        .map(str::to_string)
        .collect();
    if !still_unlisted.is_empty() {
        eprintln!(
            "upm-publisher: warning: the registry's listing lacks {} (known from the GUID cache);              their cached GUIDs are still checked",
            still_unlisted.join(", ")
        );
    }
    let missing = to_read(&listing, &cache);
    let read = crate::run::map_concurrent(&missing, jobs, |(l, version)| {
        let url = tarball_url(registry.base(), &l.name, version);
        registry
            .download(&url)
            .and_then(|tgz| guids_of_tarball(&tgz))
            .map_err(|e| format!("reading {}@{version} for its GUIDs: {e}", l.name))
    });
    let mut cost = Cost {
        listed: listing.len(),
        read: missing.len(),
        cached: 0,
        requests: list_requests + missing.len(),
        millis: 0,
    };
    for ((l, version), guids) in missing.iter().zip(read) {
        cache.entries.insert(id(l, version), guids?);
    }
    let mut index = Index::default();
    let mut kept = BTreeMap::new();
    for (key, guids) in &cache.entries {
        let name = name_of(key);
        if still_unlisted.iter().any(|n| n == name) {
            index
                .packages
                .insert(name.to_string(), (key.clone(), guids.clone()));
            kept.insert(key.clone(), guids.clone());
        }
    }
    for l in &listing {
        let Some(version) = &l.version else { continue };
        let key = id(l, version);
        if let Some(guids) = cache.entries.remove(&key) {
            index
                .packages
                .insert(l.name.clone(), (key.clone(), guids.clone()));
            kept.insert(key, guids);
        }
    }
    cost.cached = cost.listed - cost.read;
    if let Some(file) = cache_file {
        let cache = Cache {
            format: CACHE_FORMAT,
            entries: kept,
        };
        let written = serde_json::to_vec(&cache)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(file, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            // The cache only saves work: a run that cannot write it is slower next time, not wrong.
            eprintln!(
                "upm-publisher: warning: cannot write the GUID cache {}: {e}",
                file.display()
            );
        }
    }
    cost.millis = started.elapsed().as_millis();
    Ok((index, cost))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, version: Option<&str>) -> Listed {
        Listed {
            name: name.into(),
            version: version.map(str::to_string),
        }
    }

    fn guids(pairs: &[(&str, &str)]) -> Guids {
        pairs
            .iter()
            .map(|(g, m)| (g.to_string(), m.to_string()))
            .collect()
    }

    #[test]
    fn only_uncached_versions_are_read() {
        let mut cache = Cache::default();
        cache.entries.insert("com.s.a@1.0.0".into(), Guids::new());
        let listing = [
            listed("com.s.a", Some("1.0.0")),
            listed("com.s.b", Some("2.0.0")),
            listed("com.s.c", None),
        ];
        let missing = to_read(&listing, &cache);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].0.name, "com.s.b");
        // A newer version of a cached package is read again.
        let newer = [listed("com.s.a", Some("1.1.0"))];
        assert_eq!(to_read(&newer, &cache).len(), 1);
    }

    #[test]
    fn a_listing_that_lacks_a_known_package_is_suspect() {
        let mut cache = Cache::default();
        for key in ["com.s.a@1.0.0", "@s/b@2.0.0", "com.s.c@1.0.0"] {
            cache.entries.insert(key.into(), Guids::new());
        }
        let partial = [listed("com.s.a", Some("1.1.0"))];
        assert_eq!(unlisted_known(&partial, &cache), ["@s/b", "com.s.c"]);
        let mut listing = partial.to_vec();
        merge(
            &mut listing,
            vec![
                listed("com.s.a", Some("9.0.0")),
                listed("@s/b", Some("2.0.0")),
            ],
        );
        assert_eq!(listing.len(), 2);
        assert_eq!(listing[0].version.as_deref(), Some("1.1.0"));
        assert_eq!(unlisted_known(&listing, &cache), ["com.s.c"]);
    }

    #[test]
    fn a_damaged_or_old_cache_is_ignored() {
        assert!(Cache::parse("{not json").entries.is_empty());
        assert!(Cache::parse(r#"{"format":0,"entries":{"a@1":{}}}"#)
            .entries
            .is_empty());
        assert_eq!(
            Cache::parse(r#"{"format":1,"entries":{"a@1":{"g":"x.meta"}}}"#).entries["a@1"]["g"],
            "x.meta"
        );
    }

    #[test]
    fn clashes_name_the_other_package_and_file() {
        let mut index = Index::default();
        index.packages.insert(
            "com.s.first".into(),
            (
                "com.s.first@1.0.0".into(),
                guids(&[("g1", "Runtime/Spinner.cs.meta")]),
            ),
        );
        index.packages.insert(
            "com.s.second".into(),
            ("com.s.second@2.0.0".into(), guids(&[("g2", "Editor.meta")])),
        );
        let own = guids(&[
            ("g1", "Runtime/Copy.cs.meta"),
            ("g2", "Editor.meta"),
            ("g3", "x.meta"),
        ]);
        let problems = clashes("com.s.second", &own, &index);
        // g2 is the package's own (an earlier version of it), not a clash.
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "Runtime/Copy.cs.meta");
        assert!(
            problems[0]
                .reason
                .starts_with("GUID g1 is already used by com.s.first@1.0.0 Runtime/Spinner.cs.meta on the registry"),
            "{}",
            problems[0].reason
        );
    }

    #[test]
    fn tarball_urls_follow_npm() {
        assert_eq!(
            tarball_url("http://r/", "@s/tool", "1.0.0"),
            "http://r/@s/tool/-/tool-1.0.0.tgz"
        );
        assert_eq!(
            tarball_url("http://r", "com.s.a", "1.0.0"),
            "http://r/com.s.a/-/com.s.a-1.0.0.tgz"
        );
    }
}

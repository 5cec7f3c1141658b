//! After an upload: does Unity's Package Manager see the version? "Stored" is what the registry says
//! about bytes (`verify`); "visible" is what a project will list and install. Unity lists a scoped
//! registry with `GET /-/v1/search?text=<scope>&from=0&size=250` (the `/-/all` fallback only on a 404),
//! needs a JSON content type there, then reads the packument's version and downloads the tarball
//! (`upm_unity::search`, `upm_unity::packument`). Verdaccio has had bugs in exactly that listing, so a
//! version counts as published only once all of it holds. The tarball's bytes were checked by
//! `publish::check_stored` just before.

use std::time::Duration;

use crate::model::Package;
use crate::order;
use crate::registry::{backoff, Registry, RetryPolicy};
use upm_unity::{packument, search};

/// A registry may update its listing a moment after the upload: a few short retries, then the answer
/// stands.
const SETTLE: RetryPolicy = RetryPolicy {
    attempts: 4,
    base_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(2),
};

/// Unity's listing call for `scope`, judged for `name` (at `want`, when it should be the listed one).
pub fn check_listing(
    registry: &Registry,
    scope: &str,
    name: &str,
    want: Option<&str>,
) -> Result<(), String> {
    let url = search::search_url(registry.base(), scope, 0);
    let (status, content_type, body) = registry.get(&url)?;
    let (url, content_type, listing) = match status {
        200 => (url, content_type, search::parse_search(&body)),
        // Unity's own fallback, and only then.
        404 => {
            let all = search::all_url(registry.base());
            let (status, content_type, body) = registry.get(&all)?;
            if status != 200 {
                return Err(format!(
                    "GET {url} answered 404 and GET {all} answered {status}"
                ));
            }
            (all, content_type, search::parse_all(&body))
        }
        status => return Err(format!("GET {url} answered {status}")),
    };
    if !search::is_json(content_type.as_deref()) {
        return Err(format!(
            "GET {url} answered with content type {}: Unity needs application/json",
            content_type.as_deref().unwrap_or("(none)")
        ));
    }
    let listing = listing.map_err(|e| format!("GET {url}: {e}"))?;
    search::judge_listing(&format!("GET {url}"), &listing, name, want)
}

/// The version in the packument, with the fields Unity reads as `manifest` has them.
pub fn check_packument(
    registry: &Registry,
    name: &str,
    version: &str,
    manifest: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let url = format!("{}/{}", registry.base(), name.replace('/', "%2f"));
    let (status, _, body) = registry.get(&url)?;
    if status != 200 {
        return Err(format!("GET {url} answered {status}"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
    packument::judge_version(&format!("GET {url}"), &value, version, manifest)
}

/// Everything Unity needs to see the new version; `latest` says whether the listing must show this
/// version (it shows the `latest` one). The error names the endpoint that failed.
pub fn check(registry: &Registry, package: &Package, latest: bool) -> Result<(), String> {
    let name = package.name.as_str();
    let version = package.version.to_string();
    let want = latest.then_some(version.as_str());
    let mut attempt = 1;
    loop {
        let result = check_listing(registry, order::scope(name), name, want)
            .and_then(|()| check_packument(registry, name, &version, &package.manifest));
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= SETTLE.attempts => return Err(e),
            Err(_) => {
                std::thread::sleep(backoff(&SETTLE, attempt, None));
                attempt += 1;
            }
        }
    }
}

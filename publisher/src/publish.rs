//! Uploading one new version: which dist-tag it gets, the npm publish document, and what each registry
//! answer means. Callers serialise publishes of one package name (see `run`), because Verdaccio's
//! `latest` is whatever arrived last and a same-version race can corrupt the stored tarball.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use semver::Version;
use serde_json::{json, Value};

use crate::model::{ChangeKind, Failed, Outcome, Package, Published, Skipped, Stage};
use crate::pack;
use crate::registry::{self, backoff, Packument, PutResult, Registry, RetryPolicy};
use crate::verify::{self, Digests, Verdict};

/// How a dry run's skip reason starts for a version it would publish (the preview reads it).
pub const DRY_RUN_PUBLISH: &str = "dry run: would publish";

/// The dist-tag a new `version` should get, given the package's current tags; `None` when every
/// candidate tag already points at a higher version (npm installs by exact version still work, and no
/// tag moves backwards).
///
/// - `latest` when the version is above the current `latest` (a prerelease only displaces a prerelease:
///   `npm install name` and Unity's "latest" must not jump to a preview).
/// - a prerelease otherwise goes to `next`;
/// - an older stable version (a fix on a maintained line) goes to `latest-<major>` when its major is
///   below `latest`'s, `latest-<major>.<minor>` when it is the same major. These are npm's own naming
///   for maintenance lines, and are not SemVer ranges (npm rejects tags that are).
pub fn choose_dist_tag(version: &Version, tags: &BTreeMap<String, String>) -> Option<String> {
    let current = |tag: &str| tags.get(tag).and_then(|v| Version::parse(v).ok());
    let Some(latest) = current("latest") else {
        return Some("latest".to_string());
    };
    if *version > latest && (version.pre.is_empty() || !latest.pre.is_empty()) {
        return Some("latest".to_string());
    }
    let candidate = if !version.pre.is_empty() {
        "next".to_string()
    } else if version.major < latest.major {
        format!("latest-{}", version.major)
    } else {
        format!("latest-{}.{}", version.major, version.minor)
    };
    match current(&candidate) {
        Some(existing) if existing >= *version => None,
        _ => Some(candidate),
    }
}

/// The highest published version below `version`: where this version's changelog starts.
pub fn previous_version(packument: Option<&Packument>, version: &Version) -> Option<Version> {
    packument?
        .semver_versions()
        .into_iter()
        .filter(|v| v < version)
        .max()
}

/// The kind of release `version` is: against `latest` (below it: a backport) and the highest version
/// below it (`previous`: which SemVer part moved).
pub fn change_kind(
    version: &Version,
    previous: Option<&Version>,
    latest: Option<&Version>,
) -> ChangeKind {
    if latest.is_some_and(|latest| version < latest) {
        return ChangeKind::Backport;
    }
    if !version.pre.is_empty() {
        return ChangeKind::Prerelease;
    }
    match previous {
        None => ChangeKind::Initial,
        Some(p) if p.major != version.major => ChangeKind::Major,
        Some(p) if p.minor != version.minor => ChangeKind::Minor,
        Some(_) => ChangeKind::Patch,
    }
}

/// `<bare name>-<version>.tgz`, npm's attachment and tarball file name.
pub fn tarball_name(package: &Package) -> String {
    format!("{}-{}.tgz", package.name.bare(), package.version)
}

/// The body of `PUT /<name>`, as the npm CLI sends it: one version with its `dist`, the dist-tags to set,
/// and the tarball as a base64 attachment.
pub fn publish_document(
    package: &Package,
    registry_base: &str,
    tag: Option<&str>,
    tarball: &[u8],
    digests: &Digests,
    readme: Option<(String, String)>,
) -> Value {
    let name = package.name.as_str();
    let version = package.version.to_string();
    let file = tarball_name(package);
    let mut manifest = package.manifest.clone();
    manifest.insert("_id".into(), json!(format!("{name}@{version}")));
    manifest.insert("name".into(), json!(name));
    manifest.insert("version".into(), json!(version));
    manifest.insert(
        "dist".into(),
        json!({
            "shasum": digests.shasum,
            "integrity": digests.integrity,
            "tarball": format!("{registry_base}/{name}/-/{file}"),
        }),
    );
    if let Some((readme_file, readme)) = readme {
        manifest.insert("readme".into(), json!(readme));
        manifest.insert("readmeFilename".into(), json!(readme_file));
    }
    let dist_tags = match tag {
        Some(tag) => json!({ tag: version }),
        None => json!({}),
    };
    json!({
        "_id": name,
        "name": name,
        "description": package.manifest.get("description").cloned().unwrap_or(Value::Null),
        "dist-tags": dist_tags,
        "versions": { version.clone(): Value::Object(manifest) },
        "access": null,
        "_attachments": {
            file: {
                "content_type": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(tarball),
                "length": tarball.len(),
            }
        }
    })
}

/// What publishing one package produced; `previous` feeds the changelog.
pub struct Attempt {
    pub outcome: Outcome,
    pub previous: Option<Version>,
}

/// The reason reported when a version exists with content other than ours.
fn verdict_failure(package: &Package, sent: &Digests, verdict: Verdict) -> Option<Failed> {
    match verdict {
        Verdict::Ours => None,
        Verdict::Theirs { stored } => Some(Failed::of(
            package,
            Stage::Verify,
            format!(
                "{} already exists on the registry with different content (stored shasum {stored}, ours {}); \
                 bump the version",
                package.id(),
                sent.shasum
            ),
        )),
        Verdict::Inconsistent { metadata, stored } => Some(Failed::of(
            package,
            Stage::Verify,
            format!(
                "the registry serves a tarball (shasum {stored}) that does not match its own metadata \
                 (shasum {metadata}) for {}: installs will fail; unpublish and publish the version again",
                package.id()
            ),
        )),
    }
}

/// How long to wait for a version to appear in the registry's metadata. Verdaccio answers a 409 as soon
/// as a concurrent upload has written the tarball, before that upload has added the version: the
/// metadata catches up within moments, or never (an upload that failed half-way).
const METADATA_WAIT: RetryPolicy = RetryPolicy {
    attempts: 7,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
};

/// Downloads what the registry holds for the package's version and judges it against `sent`.
fn check_stored(registry: &Registry, package: &Package, sent: &Digests) -> Result<Verdict, String> {
    let version = package.version.to_string();
    let mut attempt = 1;
    let dist = loop {
        let dist = registry
            .packument(&package.name)?
            .and_then(|p| p.versions.get(&version).and_then(|v| v.dist.clone()));
        match dist {
            Some(dist) => break dist,
            None if attempt < METADATA_WAIT.attempts => {
                std::thread::sleep(backoff(&METADATA_WAIT, attempt, None));
                attempt += 1;
            }
            None => {
                return Err(format!(
                "the registry lists no {} although it accepted or refused the upload as existing: \
                     an upload may have failed half-way and left the version blocked; check the \
                     registry, or publish a new version",
                package.id()
            ))
            }
        }
    };
    let stored = registry.download(&registry::tarball_url(
        registry.base(),
        &package.name,
        &dist.tarball,
    ))?;
    Ok(verify::judge(sent, &dist, &Digests::of(&stored)))
}

/// Rounds of "read `latest`, correct it" after an upload; each round is at most two requests.
const TAG_SETTLE_ROUNDS: u32 = 4;

/// Does `candidate` displace `latest` under `choose_dist_tag`'s rule (higher, and a prerelease only
/// displaces a prerelease)?
fn displaces(candidate: &Version, latest: &Version) -> bool {
    candidate > latest && (candidate.pre.is_empty() || !latest.pre.is_empty())
}

/// Where `latest` should point, if not where it is now: the highest published version that displaces
/// it. Verdaccio's `latest` is the last upload to arrive, and the workflow does not serialise runs of
/// one repository (see handle-publish-request.yml), so a run that chose `latest` from an older view of
/// the package can arrive after a higher version and move the tag back.
pub fn corrected_latest(now: Option<&str>, versions: &[Version]) -> Option<Version> {
    let now = now.and_then(|v| Version::parse(v).ok());
    versions
        .iter()
        .filter(|v| match &now {
            Some(now) => displaces(v, now),
            None => v.pre.is_empty(),
        })
        .max()
        .cloned()
}

/// After our upload set `latest`, puts it on the highest version if a concurrent upload left it lower.
/// Re-reads after each write, so runs that race here converge: whoever writes last confirms it.
fn settle_latest(registry: &Registry, package: &Package) -> Result<(), String> {
    for _ in 0..TAG_SETTLE_ROUNDS {
        let Some(packument) = registry.packument(&package.name)? else {
            return Ok(());
        };
        let now = packument.dist_tags.get("latest").map(String::as_str);
        let Some(target) = corrected_latest(now, &packument.semver_versions()) else {
            return Ok(());
        };
        eprintln!(
            "upm-publisher: {}: `latest` is {} below the published {target} (a concurrent run \
             arrived late); moving it to {target}",
            package.name,
            now.unwrap_or("(none)")
        );
        registry.set_dist_tag(&package.name, "latest", &target)?;
    }
    Err(format!(
        "dist-tag `latest` kept moving backwards after {TAG_SETTLE_ROUNDS} corrections"
    ))
}

/// Publishes one package whose version the registry lookup reported missing.
/// `files` are the package's files as `pack::select_files` chose them (and validation checked them).
/// `prebuilt`: a signed tarball to publish as it is (`signing`), instead of packing `files`.
pub fn publish_one(
    registry: &Registry,
    package: &Package,
    files: Vec<String>,
    prebuilt: Option<pack::Tarball>,
    dry_run: bool,
) -> Attempt {
    let fail = |stage, reason: String| Attempt {
        outcome: Outcome::Failed(Failed::of(package, stage, reason)),
        previous: None,
    };
    let packument = match registry.packument(&package.name) {
        Ok(p) => p,
        Err(e) => return fail(Stage::Registry, e),
    };
    let previous = previous_version(packument.as_ref(), &package.version);
    let latest = packument
        .as_ref()
        .and_then(|p| p.dist_tags.get("latest"))
        .and_then(|v| Version::parse(v).ok());
    let change = change_kind(&package.version, previous.as_ref(), latest.as_ref());
    let tag = choose_dist_tag(
        &package.version,
        &packument
            .as_ref()
            .map(|p| p.dist_tags.clone())
            .unwrap_or_default(),
    );

    let readme = pack::readme(&package.dir, &files);
    let signed = prebuilt.is_some();
    let tarball = match prebuilt {
        // Never repacked: the signature covers these bytes.
        Some(t) => t,
        None => match pack::build_tarball(&package.dir, files) {
            Ok(t) => t,
            Err(e) => return fail(Stage::Pack, e),
        },
    };
    let digests = Digests::of(&tarball.bytes);
    let published = |note: Option<String>| Published {
        path: package.path.clone(),
        name: package.name.clone(),
        version: package.version.to_string(),
        previous: previous.as_ref().map(Version::to_string),
        change,
        dist_tag: tag.clone(),
        shasum: digests.shasum.clone(),
        integrity: digests.integrity.clone(),
        display_name: package.display_name.clone(),
        files: tarball.files.len(),
        size: tarball.bytes.len(),
        unpacked_size: tarball.unpacked_size,
        note,
        warnings: package.warnings.clone(),
        changelog: String::new(),
        signed,
    };

    if dry_run {
        return Attempt {
            outcome: Outcome::Skipped(Skipped {
                path: package.path.clone(),
                name: Some(package.name.to_string()),
                version: Some(package.version.to_string()),
                reason: format!(
                    "{DRY_RUN_PUBLISH} {} files ({} bytes, shasum {}) with dist-tag {}",
                    tarball.files.len(),
                    tarball.bytes.len(),
                    digests.shasum,
                    tag.as_deref().unwrap_or("(none)")
                ),
            }),
            previous,
        };
    }
    if !registry.has_token() {
        return fail(
            Stage::Publish,
            "no registry token: set NPM_TOKEN to publish".to_string(),
        );
    }

    // The version may have appeared since the lookup (another run); treat it like a 409.
    let already_there = packument
        .as_ref()
        .is_some_and(|p| p.versions.contains_key(&package.version.to_string()));
    let put = if already_there {
        PutResult::Conflict { after_retry: false }
    } else {
        let document = publish_document(
            package,
            registry.base(),
            tag.as_deref(),
            &tarball.bytes,
            &digests,
            readme,
        );
        match registry.put(&package.name, document.to_string().as_bytes()) {
            Ok(put) => put,
            Err(e) => return fail(Stage::Publish, e),
        }
    };

    let outcome = match put {
        PutResult::Rejected { status, message } => Outcome::Failed(Failed::of(
            package,
            Stage::Publish,
            format!(
                "the registry refused the upload ({status}){}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
        )),
        PutResult::Created => match check_stored(registry, package, &digests) {
            Err(e) => Outcome::Failed(Failed::of(package, Stage::Verify, e)),
            Ok(verdict) => match verdict_failure(package, &digests, verdict) {
                Some(failed) => Outcome::Failed(failed),
                None => {
                    let note = match tag.as_deref() {
                        Some("latest") => settle_latest(registry, package).err(),
                        _ => None,
                    };
                    Outcome::Published(Box::new(published(note)))
                }
            },
        },
        // A 409 is never retried: the version exists, so the only question is whether it is ours.
        PutResult::Conflict { after_retry } => match check_stored(registry, package, &digests) {
            Err(e) => Outcome::Failed(Failed::of(package, Stage::Verify, e)),
            Ok(verdict) => match verdict_failure(package, &digests, verdict) {
                Some(failed) => Outcome::Failed(failed),
                // An earlier attempt of ours reached the registry before the connection failed.
                None if after_retry => Outcome::Published(Box::new(published(Some(
                    "an upload attempt failed in transit but had reached the registry".to_string(),
                )))),
                None => Outcome::Skipped(Skipped {
                    path: package.path.clone(),
                    name: Some(package.name.to_string()),
                    version: Some(package.version.to_string()),
                    reason: "published meanwhile by another run, with identical content"
                        .to_string(),
                }),
            },
        },
    };
    Attempt { outcome, previous }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PackageName, PackagePath};
    use std::path::PathBuf;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dist_tags_never_move_backwards() {
        let t = tags(&[("latest", "2.0.0")]);
        assert_eq!(
            choose_dist_tag(&v("1.0.0"), &tags(&[])).as_deref(),
            Some("latest")
        );
        assert_eq!(choose_dist_tag(&v("2.0.1"), &t).as_deref(), Some("latest"));
        assert_eq!(
            choose_dist_tag(&v("1.5.0"), &t).as_deref(),
            Some("latest-1")
        );
        assert_eq!(
            choose_dist_tag(&v("2.0.0-rc.1"), &t).as_deref(),
            Some("next")
        );
        assert_eq!(
            choose_dist_tag(&v("3.0.0-preview.1"), &t).as_deref(),
            Some("next")
        );
        let t = tags(&[("latest", "2.3.0")]);
        assert_eq!(
            choose_dist_tag(&v("2.1.4"), &t).as_deref(),
            Some("latest-2.1")
        );
        // A maintenance tag does not move backwards either.
        let t = tags(&[("latest", "2.0.0"), ("latest-1", "1.6.0")]);
        assert_eq!(choose_dist_tag(&v("1.5.0"), &t), None);
        assert_eq!(
            choose_dist_tag(&v("1.7.0"), &t).as_deref(),
            Some("latest-1")
        );
        // Previews displace a preview `latest` (packages that only ever shipped previews).
        let t = tags(&[("latest", "1.0.0-preview.2")]);
        assert_eq!(
            choose_dist_tag(&v("1.0.0-preview.3"), &t).as_deref(),
            Some("latest")
        );
        assert_eq!(choose_dist_tag(&v("1.0.0"), &t).as_deref(), Some("latest"));
        // An unreadable `latest` is treated as absent rather than blocking the publish.
        assert_eq!(
            choose_dist_tag(&v("1.0.0"), &tags(&[("latest", "nope")])).as_deref(),
            Some("latest")
        );
    }

    #[test]
    fn change_kinds() {
        let kind = |version: &str, previous: Option<&str>, latest: Option<&str>| {
            change_kind(
                &v(version),
                previous.map(v).as_ref(),
                latest.map(v).as_ref(),
            )
        };
        assert_eq!(kind("1.0.0", None, None), ChangeKind::Initial);
        assert_eq!(
            kind("2.0.0", Some("1.4.2"), Some("1.4.2")),
            ChangeKind::Major
        );
        assert_eq!(
            kind("1.5.0", Some("1.4.2"), Some("1.4.2")),
            ChangeKind::Minor
        );
        assert_eq!(
            kind("1.4.3", Some("1.4.2"), Some("1.4.2")),
            ChangeKind::Patch
        );
        assert_eq!(
            kind("2.0.0-rc.1", Some("1.4.2"), Some("1.4.2")),
            ChangeKind::Prerelease
        );
        assert_eq!(
            kind("1.3.9", Some("1.3.8"), Some("2.0.0")),
            ChangeKind::Backport
        );
        assert_eq!(kind("1.0.0-preview.1", None, None), ChangeKind::Prerelease);
    }

    #[test]
    fn latest_is_corrected_only_when_a_published_version_displaces_it() {
        let versions = [v("1.0.0"), v("1.2.0"), v("1.1.0"), v("2.0.0-rc.1")];
        assert_eq!(corrected_latest(Some("1.1.0"), &versions), Some(v("1.2.0")));
        assert_eq!(corrected_latest(Some("1.2.0"), &versions), None);
        assert_eq!(corrected_latest(None, &versions), Some(v("1.2.0")));
        // A prerelease never displaces a stable latest; it does displace a lower prerelease.
        assert_eq!(corrected_latest(Some("1.2.0"), &[v("2.0.0-rc.1")]), None);
        assert_eq!(
            corrected_latest(Some("2.0.0-rc.1"), &[v("2.0.0-rc.2"), v("1.0.0")]),
            Some(v("2.0.0-rc.2"))
        );
    }

    #[test]
    fn previous_versions() {
        let p = Packument::parse(br#"{"versions":{"1.0.0":{},"1.2.0":{},"2.0.0":{},"1.10.0":{}}}"#)
            .unwrap();
        assert_eq!(previous_version(Some(&p), &v("1.11.0")), Some(v("1.10.0")));
        assert_eq!(previous_version(Some(&p), &v("1.0.0")), None);
        assert_eq!(previous_version(None, &v("1.0.0")), None);
    }

    fn package(name: &str) -> Package {
        Package {
            path: PackagePath::new("p"),
            dir: PathBuf::new(),
            name: PackageName::new_unchecked(name.to_string()),
            version: v("1.2.0"),
            display_name: None,
            warnings: Vec::new(),
            manifest: serde_json::from_str(&format!(
                r#"{{"name":"{name}","version":"1.2.0","displayName":"A","description":"d"}}"#
            ))
            .unwrap(),
        }
    }

    #[test]
    fn the_publish_document_is_npms() {
        let pkg = package("@studio/tool");
        let digests = Digests::of(b"tgz");
        let doc = publish_document(
            &pkg,
            "http://r",
            Some("latest"),
            b"tgz",
            &digests,
            Some(("README.md".into(), "# T".into())),
        );
        assert_eq!(doc["_id"], "@studio/tool");
        assert_eq!(doc["dist-tags"], json!({"latest": "1.2.0"}));
        let version = &doc["versions"]["1.2.0"];
        assert_eq!(version["_id"], "@studio/tool@1.2.0");
        assert_eq!(version["displayName"], "A");
        assert_eq!(version["dist"]["shasum"], digests.shasum);
        assert_eq!(version["dist"]["integrity"], digests.integrity);
        assert_eq!(
            version["dist"]["tarball"],
            "http://r/@studio/tool/-/tool-1.2.0.tgz"
        );
        assert_eq!(version["readme"], "# T");
        let attachment = &doc["_attachments"]["tool-1.2.0.tgz"];
        assert_eq!(attachment["data"], "dGd6");
        assert_eq!(attachment["length"], 3);
        let untagged = publish_document(&pkg, "http://r", None, b"tgz", &digests, None);
        assert_eq!(untagged["dist-tags"], json!({}));
        assert!(untagged["versions"]["1.2.0"].get("readme").is_none());
    }

    #[test]
    fn verdicts_become_clear_failures() {
        let pkg = package("com.s.a");
        let ours = Digests::of(b"a");
        assert!(verdict_failure(&pkg, &ours, Verdict::Ours).is_none());
        let f = verdict_failure(
            &pkg,
            &ours,
            Verdict::Theirs {
                stored: "bb".into(),
            },
        )
        .unwrap();
        assert!(
            f.reason.contains("different content") && f.reason.contains("bump"),
            "{}",
            f.reason
        );
        let f = verdict_failure(
            &pkg,
            &ours,
            Verdict::Inconsistent {
                metadata: "aa".into(),
                stored: "bb".into(),
            },
        )
        .unwrap();
        assert_eq!(f.stage, Stage::Verify);
        assert!(
            f.reason.contains("does not match its own metadata"),
            "{}",
            f.reason
        );
    }
}

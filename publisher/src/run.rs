//! One publish run over a workspace: the stages in order, concurrency where it is safe, and every
//! package ending in exactly one outcome. A failing package never stops the others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::assets;
use crate::changelog;
use crate::discover::{self, Candidate, Request};
use crate::guid_index;
use crate::model::{Failed, Outcome, Package, PackageName, Problem, Skipped, Stage};
use crate::order;
use crate::pack;
use crate::publish;
use crate::registry::Registry;
use crate::signing;
use crate::validate::{self, Validated};
use crate::visible;

/// Uploads are big and the registry serialises writes per package anyway: a few at a time is plenty.
const MAX_CONCURRENT_PUBLISHES: usize = 4;

/// The skip reason of a version the registry already has (the preview reads it).
pub const ALREADY_PUBLISHED: &str = "already published";

pub struct Settings<'a> {
    pub registry: &'a Registry,
    pub jobs: usize,
    pub dry_run: bool,
    /// Where the studio-wide GUID index is kept between runs (`guid_index`); `None`: read it all.
    pub guid_cache: Option<&'a Path>,
    /// Where the workflow put the tarballs Unity's CLI signed (`<name>-<version>.tgz`, `signing`).
    pub prebuilt: Option<&'a Path>,
    /// The repository publishes signed packages only (`require_signed` in the registry file).
    pub require_signed: bool,
    /// `name@version` → when it was published (RFC 3339), for the audit's timings.
    pub published_at: &'a Mutex<BTreeMap<String, String>>,
}

/// `f` over `items` on up to `jobs` threads, results in input order.
pub fn map_concurrent<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every slot is filled once the scope has joined")
        })
        .collect()
}

fn progress(message: impl AsRef<str>) {
    eprintln!("upm-publisher: {}", message.as_ref());
}

fn report_failure(f: &Failed) {
    progress(format!("FAILED {} ({}): {}", f.file, f.stage, f.reason));
}

pub fn run(root: &Path, request: &Request, settings: &Settings) -> Vec<Outcome> {
    let candidates = discover::discover(root, request);
    let mut slots: Vec<Option<Outcome>> = Vec::with_capacity(candidates.len());
    let mut packages: Vec<(usize, Package)> = Vec::new();
    for candidate in candidates {
        let slot = slots.len();
        slots.push(match candidate {
            Candidate::Skip(s) => Some(Outcome::Skipped(s)),
            Candidate::Fail(f) => Some(Outcome::Failed(f)),
            Candidate::Upm {
                path,
                dir,
                manifest,
            } => match validate::validate(path, dir, manifest) {
                Validated::Ok(package) => {
                    packages.push((slot, *package));
                    None
                }
                Validated::Skip(s) => Some(Outcome::Skipped(s)),
                Validated::Fail(f) => Some(Outcome::Failed(f)),
            },
        });
    }
    for outcome in slots.iter().flatten() {
        if let Outcome::Failed(f) = outcome {
            report_failure(f);
        }
    }
    progress(format!(
        "{} UPM package(s) to check against {}",
        packages.len(),
        settings.registry.base()
    ));

    let list: Vec<Package> = packages.iter().map(|(_, p)| p.clone()).collect();
    let duplicates = validate::duplicates(&list);
    let mut to_check = Vec::new();
    for (i, (slot, package)) in packages.into_iter().enumerate() {
        match duplicates.get(&i) {
            Some(others) => {
                let failed = Failed::of(
                    &package,
                    Stage::Validate,
                    format!("{} is also declared by {}", package.id(), others.join(", ")),
                );
                report_failure(&failed);
                slots[slot] = Some(Outcome::Failed(failed));
            }
            None => to_check.push((slot, package)),
        }
    }

    // Existence checks are independent reads: run them all concurrently.
    let lookups = map_concurrent(&to_check, settings.jobs, |(_, p)| {
        settings.registry.exists(&p.name, &p.version)
    });
    let mut to_publish: BTreeMap<String, Vec<(usize, Package)>> = BTreeMap::new();
    for ((slot, package), lookup) in to_check.into_iter().zip(lookups) {
        match lookup {
            Ok(true) => {
                progress(format!("skip {}: already published", package.id()));
                slots[slot] = Some(Outcome::Skipped(Skipped {
                    path: package.path.clone(),
                    name: Some(package.name.to_string()),
                    version: Some(package.version.to_string()),
                    reason: ALREADY_PUBLISHED.to_string(),
                }));
            }
            Ok(false) => to_publish
                .entry(package.name.to_string())
                .or_default()
                .push((slot, package)),
            Err(e) => {
                let failed = Failed::of(
                    &package,
                    Stage::Registry,
                    format!("cannot tell whether it is published: {e}"),
                );
                report_failure(&failed);
                slots[slot] = Some(Outcome::Failed(failed));
            }
        }
    }

    let ready = inspect_files(
        to_publish.into_values().flatten().collect(),
        settings,
        &mut slots,
    );
    let ready = check_registry_guids(ready, settings, &mut slots);
    let ready = check_dependencies(ready, settings, &mut slots);
    publish_in_order(root, ready, settings, &mut slots);
    slots.into_iter().flatten().collect()
}

/// A package that passed every check before upload: its tarball's files, and the names and versions of
/// the run's packages it needs published first.
struct Ready {
    slot: usize,
    package: Package,
    files: Vec<String>,
    /// The signed tarball to publish as it is, when the workflow gave one.
    prebuilt: Option<pack::Tarball>,
    guids: BTreeMap<String, String>,
    needs: Vec<(String, semver::Version)>,
}

fn fail(slots: &mut [Option<Outcome>], slot: usize, failed: Failed) {
    report_failure(&failed);
    slots[slot] = Some(Outcome::Failed(failed));
}

/// The files each package will ship, and Unity's checks on them (`assets`), including GUIDs shared
/// between packages of the run.
fn inspect_files(
    candidates: Vec<(usize, Package)>,
    settings: &Settings,
    slots: &mut [Option<Outcome>],
) -> Vec<Ready> {
    let inspected = map_concurrent(&candidates, settings.jobs, |(_, package)| {
        let files = pack::select_files(&package.dir, &package.manifest)?;
        let prebuilt = match prebuilt_tarball(package, settings)? {
            None => {
                let findings =
                    assets::check(&files, &package.manifest, &assets::OnDisk(&package.dir));
                return Ok((files, findings, None));
            }
            Some(prebuilt) => prebuilt,
        };
        // The tarball is judged as a directory would be, on its own entries, and must hold exactly
        // what this commit would pack, plus the signature.
        let (bytes, entries) = prebuilt;
        let mut findings = assets::check(
            &entries
                .keys()
                .filter(|f| !signing::SIGNATURE_FILES.contains(&f.as_str()))
                .cloned()
                .collect::<Vec<_>>(),
            &package.manifest,
            &entries,
        );
        let differences = signing::check_prebuilt(&files, &assets::OnDisk(&package.dir), &entries);
        findings.problems.splice(0..0, differences);
        let tarball = pack::Tarball {
            bytes,
            unpacked_size: entries.values().map(|b| b.len() as u64).sum(),
            files: entries.into_keys().collect(),
        };
        Ok::<_, String>((files, findings, Some(tarball)))
    });
    let mut ready = Vec::new();
    for ((slot, mut package), result) in candidates.into_iter().zip(inspected) {
        match result {
            Err(e) => fail(slots, slot, Failed::of(&package, Stage::Pack, e)),
            Ok((files, findings, prebuilt)) => {
                package.warnings.extend(findings.warnings);
                for w in &package.warnings {
                    progress(format!(
                        "warning: {}: {} {}",
                        package.id(),
                        w.field,
                        w.reason
                    ));
                }
                if findings.problems.is_empty() {
                    ready.push(Ready {
                        slot,
                        prebuilt,
                        needs: Vec::new(),
                        guids: findings.guids,
                        files,
                        package,
                    });
                } else {
                    fail(
                        slots,
                        slot,
                        Failed::with_problems(&package, Stage::Validate, findings.problems),
                    );
                }
            }
        }
    }
    let owners: Vec<(String, &BTreeMap<String, String>)> =
        ready.iter().map(|r| (r.package.id(), &r.guids)).collect();
    let clashes = assets::guid_clashes(&owners);
    let mut kept = Vec::new();
    for (i, r) in ready.into_iter().enumerate() {
        match clashes.get(&i) {
            Some(problems) => fail(
                slots,
                r.slot,
                Failed::with_problems(&r.package, Stage::Validate, problems.clone()),
            ),
            None => kept.push(r),
        }
    }
    kept
}

/// The signed tarball the workflow left for `package`, read: its bytes and its files. `None` when there
/// is none; an error when the repository requires one, or when it cannot be read.
#[allow(clippy::type_complexity)]
fn prebuilt_tarball(
    package: &Package,
    settings: &Settings,
) -> Result<Option<(Vec<u8>, BTreeMap<String, Vec<u8>>)>, String> {
    let file_name = signing::tarball_file_name(package.name.as_str(), &package.version.to_string());
    let path = settings.prebuilt.map(|dir| dir.join(&file_name));
    match path.filter(|p| p.exists()) {
        Some(path) => {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let entries = upm_unity::tarball::files(&bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Some((bytes, entries)))
        }
        None if settings.require_signed => Err(format!(
            "this repository publishes signed packages only (`require_signed` in the registry file),              and no signed tarball {file_name} was given (`--prebuilt-tarballs`)"
        )),
        None => Ok(None),
    }
}

/// Each package's GUIDs against the latest version of every other package on the registry
/// (`guid_index`). When the index cannot be built, the packages fail: publishing unchecked could ship
/// a clash that no later run can take back.
fn check_registry_guids(
    ready: Vec<Ready>,
    settings: &Settings,
    slots: &mut [Option<Outcome>],
) -> Vec<Ready> {
    if ready.is_empty() {
        return ready;
    }
    let built = guid_index::build(settings.registry, settings.guid_cache, settings.jobs);
    let (index, cost) = match built {
        Ok(built) => built,
        Err(e) => {
            for r in ready {
                fail(
                    slots,
                    r.slot,
                    Failed::of(
                        &r.package,
                        Stage::Registry,
                        format!("cannot check its GUIDs against the registry's packages: {e}"),
                    ),
                );
            }
            return Vec::new();
        }
    };
    progress(format!(
        "GUID index: {} package(s) on the registry, {} read, {} cached; {} request(s) in {} ms",
        cost.listed, cost.read, cost.cached, cost.requests, cost.millis
    ));
    let mut kept = Vec::new();
    for r in ready {
        let problems = guid_index::clashes(r.package.name.as_str(), &r.guids, &index);
        if problems.is_empty() {
            kept.push(r);
        } else {
            fail(
                slots,
                r.slot,
                Failed::with_problems(&r.package, Stage::Validate, problems),
            );
        }
    }
    kept
}

/// Each dependency that is the studio's (`order::is_ours`) must be published by this run or be on the
/// registry already; the others are Unity's or another registry's business.
fn check_dependencies(
    ready: Vec<Ready>,
    settings: &Settings,
    slots: &mut [Option<Outcome>],
) -> Vec<Ready> {
    // Every name this run found, failed ones included: a dependency on a package of the run that could
    // not be published is still ours to check, whatever its scope.
    let mut in_run: BTreeSet<String> = ready.iter().map(|r| r.package.name.to_string()).collect();
    in_run.extend(slots.iter().flatten().filter_map(|outcome| match outcome {
        Outcome::Failed(f) => f.name.clone(),
        Outcome::Skipped(s) => s.name.clone(),
        Outcome::Published(p) => Some(p.name.to_string()),
    }));
    let publishing: BTreeSet<(String, semver::Version)> = ready
        .iter()
        .map(|r| (r.package.name.to_string(), r.package.version.clone()))
        .collect();
    let mut lookups: BTreeSet<(String, semver::Version)> = BTreeSet::new();
    for r in &ready {
        for dep in validate::dependencies(&r.package.manifest) {
            if !publishing.contains(&dep)
                && order::is_ours(r.package.name.as_str(), &dep.0, &in_run)
            {
                lookups.insert(dep);
            }
        }
    }
    let lookups: Vec<(String, semver::Version)> = lookups.into_iter().collect();
    let answers = map_concurrent(&lookups, settings.jobs, |(name, version)| {
        settings
            .registry
            .exists(&PackageName::new_unchecked(name.clone()), version)
    });
    let answers: BTreeMap<&(String, semver::Version), &Result<bool, String>> =
        lookups.iter().zip(answers.iter()).collect();

    let mut kept = Vec::new();
    for mut r in ready {
        let mut problems = Vec::new();
        let mut registry_error = None;
        for dep in validate::dependencies(&r.package.manifest) {
            if publishing.contains(&dep) {
                r.needs.push(dep);
                continue;
            }
            match answers.get(&dep) {
                None | Some(Ok(true)) => {}
                Some(Ok(false)) => problems.push(Problem {
                    field: format!("dependencies.{}", dep.0),
                    reason: format!(
                        "{}@{} is neither on the registry nor published by this run: nobody could \
                         install this package",
                        dep.0, dep.1
                    ),
                }),
                Some(Err(e)) => {
                    registry_error = Some(format!(
                        "cannot tell whether its dependency {}@{} is published: {e}",
                        dep.0, dep.1
                    ))
                }
            }
        }
        if !problems.is_empty() {
            fail(
                slots,
                r.slot,
                Failed::with_problems(&r.package, Stage::Validate, problems),
            );
        } else if let Some(e) = registry_error {
            fail(slots, r.slot, Failed::of(&r.package, Stage::Registry, e));
        } else {
            kept.push(r);
        }
    }
    kept
}

/// Publishes level by level of `order::plan`, dependencies first. Within a level, one group per package
/// name publishes its versions one at a time in version order, so `latest` ends on the highest and two
/// uploads of one name never race; groups run concurrently.
fn publish_in_order(
    root: &Path,
    ready: Vec<Ready>,
    settings: &Settings,
    slots: &mut [Option<Outcome>],
) {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &ready {
        edges
            .entry(r.package.name.to_string())
            .or_default()
            .extend(r.needs.iter().map(|(name, _)| name.clone()));
    }
    let plan = order::plan(&edges);
    let mut by_name: BTreeMap<String, Vec<Ready>> = BTreeMap::new();
    for r in ready {
        by_name
            .entry(r.package.name.to_string())
            .or_default()
            .push(r);
    }
    for (name, cycle) in &plan.cycles {
        for r in by_name.remove(name).into_iter().flatten() {
            fail(
                slots,
                r.slot,
                Failed::of(
                    &r.package,
                    Stage::Validate,
                    format!("dependency cycle among the packages of this run: {cycle}"),
                ),
            );
        }
    }

    // name@version → did it end on the registry (published, or found there with our content)?
    let mut done: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    for level in &plan.levels {
        let mut groups: Vec<Vec<Ready>> = level
            .iter()
            .filter_map(|name| by_name.remove(name))
            .collect();
        for group in &mut groups {
            group.sort_by(|a, b| a.package.version.cmp(&b.package.version));
        }
        let results = map_concurrent(
            &groups,
            settings.jobs.min(MAX_CONCURRENT_PUBLISHES),
            |group| {
                group
                    .iter()
                    .map(|r| {
                        (
                            r.slot,
                            r.package.id(),
                            publish_ready(root, r, &done, settings),
                        )
                    })
                    .collect::<Vec<_>>()
            },
        );
        for (slot, id, outcome) in results.into_iter().flatten() {
            if let Outcome::Published(_) = &outcome {
                let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                settings
                    .published_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), now.to_string());
            }
            let state = match &outcome {
                Outcome::Failed(f) => Err(f.reason.clone()),
                _ => Ok(()),
            };
            done.insert(id, state);
            slots[slot] = Some(outcome);
        }
    }
}

fn publish_ready(
    root: &Path,
    r: &Ready,
    done: &BTreeMap<String, Result<(), String>>,
    settings: &Settings,
) -> Outcome {
    let package = &r.package;
    for (name, version) in &r.needs {
        let id = format!("{name}@{version}");
        if let Some(Err(reason)) = done.get(&id) {
            let failed = Failed::of(
                package,
                Stage::Publish,
                format!("not published because its dependency {id} failed: {reason}"),
            );
            report_failure(&failed);
            return Outcome::Failed(failed);
        }
    }
    progress(format!("publishing {}", package.id()));
    let attempt = publish::publish_one(
        settings.registry,
        package,
        r.files.clone(),
        r.prebuilt.clone(),
        settings.dry_run,
    );
    match attempt.outcome {
        Outcome::Published(mut published) => {
            // The version is on the registry whatever comes next: its changelog belongs in the
            // repository.
            published.changelog =
                changelog_for(root, package, attempt.previous.as_ref(), settings.dry_run);
            progress(format!(
                "stored {} (dist-tag {}, shasum {}); checking what Unity sees",
                package.id(),
                published.dist_tag.as_deref().unwrap_or("none"),
                published.shasum
            ));
            let latest = published.dist_tag.as_deref() == Some("latest");
            if let Err(e) = visible::check(settings.registry, package, latest) {
                let failed = Failed::of(
                    package,
                    Stage::Visible,
                    format!("stored, but not visible to Unity: {e}"),
                );
                report_failure(&failed);
                return Outcome::Failed(failed);
            }
            progress(format!("published {}", package.id()));
            Outcome::Published(published)
        }
        Outcome::Failed(f) => {
            report_failure(&f);
            Outcome::Failed(f)
        }
        Outcome::Skipped(s) => {
            progress(format!("skip {}: {}", package.id(), s.reason));
            Outcome::Skipped(s)
        }
    }
}

/// The changelog is a courtesy: a git problem here is a warning, never a failure of a package that is
/// already on the registry.
fn changelog_for(
    root: &Path,
    package: &Package,
    previous: Option<&semver::Version>,
    dry_run: bool,
) -> String {
    let section = match changelog::for_package(root, package, previous) {
        Ok(section) => section,
        Err(e) => {
            progress(format!("warning: no changelog for {}: {e}", package.id()));
            return String::new();
        }
    };
    if !dry_run {
        if let Err(e) = changelog::write(package, &section) {
            progress(format!(
                "warning: {} CHANGELOG.md not updated: {e}",
                package.id()
            ));
        }
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_concurrent_keeps_order_and_bounds_threads() {
        let active = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<usize> = (0..40).collect();
        let out = map_concurrent(&items, 3, |&i| {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            active.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(map_concurrent(&Vec::<u8>::new(), 4, |_| 0).is_empty());
    }
}

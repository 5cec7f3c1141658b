//! One publish run over a workspace: the stages in order, concurrency where it is safe, and every
//! package ending in exactly one outcome. A failing package never stops the others.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::changelog;
use crate::discover::{self, Candidate, Request};
use crate::model::{Failed, Outcome, Package, Skipped, Stage};
use crate::publish;
use crate::registry::Registry;
use crate::validate::{self, Validated};

/// Uploads are big and the registry serialises writes per package anyway: a few at a time is plenty.
const MAX_CONCURRENT_PUBLISHES: usize = 4;

pub struct Settings<'a> {
    pub registry: &'a Registry,
    pub jobs: usize,
    pub dry_run: bool,
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
                    reason: "already published".to_string(),
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

    // One group per package name, publishing its versions one at a time in version order, so `latest`
    // ends on the highest and two uploads of one name never race.
    let mut groups: Vec<Vec<(usize, Package)>> = to_publish.into_values().collect();
    for group in &mut groups {
        group.sort_by(|a, b| a.1.version.cmp(&b.1.version));
    }
    let results = map_concurrent(
        &groups,
        settings.jobs.min(MAX_CONCURRENT_PUBLISHES),
        |group| {
            group
                .iter()
                .map(|(slot, package)| {
                    progress(format!("publishing {}", package.id()));
                    let attempt =
                        publish::publish_one(settings.registry, package, settings.dry_run);
                    let outcome = match attempt.outcome {
                        Outcome::Published(mut published) => {
                            published.changelog = changelog_for(
                                root,
                                package,
                                attempt.previous.as_ref(),
                                settings.dry_run,
                            );
                            progress(format!(
                                "published {} (dist-tag {}, shasum {})",
                                package.id(),
                                published.dist_tag.as_deref().unwrap_or("none"),
                                published.shasum
                            ));
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
                    };
                    (*slot, outcome)
                })
                .collect::<Vec<_>>()
        },
    );
    for (slot, outcome) in results.into_iter().flatten() {
        slots[slot] = Some(outcome);
    }
    slots.into_iter().flatten().collect()
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

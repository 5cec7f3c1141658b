//! filter (and the dispatch it decides): a push that parsed, whatever its paths and refs. Never a panic;
//! a package path never leaves the repository, the comma-separated list never splits a directory, and
//! the dispatch body stays within GitHub's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upm_relay::classify::{classify, Event};
use upm_relay::dispatch;
use upm_relay::filter::{candidate, changed_packages, on_branch, ChangedPackages, LoopGuard};

fuzz_target!(|data: &[u8]| {
    let Ok(Event::Push(push)) = classify(Some("push"), data) else {
        return;
    };
    if let ChangedPackages::Paths(dirs) = changed_packages(&push) {
        for dir in &dirs {
            assert!(!dir.is_empty());
            assert!(dir == "." || dir.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{dir}");
            assert!(!dir.starts_with('/') && !dir.contains('\\'), "{dir}");
        }
    }
    let guard = LoopGuard::parse("github-actions[bot]");
    let Ok(found) = candidate(&push, &guard) else {
        return;
    };
    assert!(!found.branch.is_empty());
    for branch_override in [None, Some("main")] {
        if let Ok(publish) = on_branch(found.clone(), branch_override) {
            let payload = dispatch::client_payload(&publish, &push, "fuzz-delivery");
            assert!(!payload.package_path.is_empty());
            if payload.package_path != dispatch::EVERY_PACKAGE {
                if let ChangedPackages::Paths(dirs) = &publish.packages {
                    assert_eq!(payload.package_path.split(',').count(), dirs.len());
                }
            }
            assert!(dispatch::body(&payload).len() <= dispatch::BODY_LIMIT, "GitHub's 64 KB");
        }
    }
});

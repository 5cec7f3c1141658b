//! What the studio-wide GUID index costs (publisher/README.md, "GUIDs across the studio"): a registry of
//! 100 real-shaped packages (the `unity/complete` fixture, 28 files each) on a real Verdaccio, then a
//! publish with an empty cache (cold) and one with the cache the first left (warm). Ignored by default;
//! run it with
//!
//! ```text
//! cargo test --release -p upm-publisher --test guid_bench -- --ignored --nocapture
//! ```

mod support;

use serde_json::json;
use support::{Cli, Repo, Verdaccio};

/// The publisher's own account of the index: `GUID index: N package(s) on the registry, R read, C
/// cached; Q request(s) in M ms`.
fn index_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("GUID index:"))
        .unwrap_or_else(|| panic!("no index line in {stderr}"))
        .to_string()
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn guid_index_cost_for_100_packages() {
    let registry = Verdaccio::start();
    let repo = Repo::new();
    for i in 0..100 {
        let name = format!("com.bench.package-{i:03}");
        repo.fixture(
            "unity/complete",
            &format!("Packages/{name}"),
            &name,
            "1.0.0",
            json!({}),
        );
    }
    let sha = repo.commit("feat: 100 packages");
    let seed = Cli::publish(&registry, &repo, &sha)
        .args(&["--jobs", "16"])
        .run();
    assert_eq!(seed.code, 0, "{}", seed.stderr);
    assert_eq!(seed.count("published"), 100);

    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("guids.json");
    let cache = cache.to_str().unwrap();
    let mut lines = Vec::new();
    for (run, name) in [("cold", "com.bench.new-a"), ("warm", "com.bench.new-b")] {
        repo.fixture(
            "unity/complete",
            &format!("Packages/{name}"),
            name,
            "1.0.0",
            json!({}),
        );
        let sha = repo.commit(&format!("feat: {name}"));
        let started = std::time::Instant::now();
        let result = Cli::publish(&registry, &repo, &sha)
            .args(&[
                "--package-paths",
                &format!("Packages/{name}"),
                "--guid-cache",
                cache,
            ])
            .run();
        let total = started.elapsed();
        assert_eq!(result.code, 0, "{}", result.stderr);
        lines.push(format!(
            "{run}: {} (whole publish run {:.2} s)",
            index_line(&result.stderr).trim_start_matches("upm-publisher: "),
            total.as_secs_f64()
        ));
    }
    for line in &lines {
        println!("guid-index {line}");
    }
    assert!(lines[0].contains("100 read, 0 cached"), "{lines:?}");
    // The warm run reads only the package the cold run published (after two listings, see
    // `guid_index::build`).
    assert!(
        lines[1].contains("1 read, 100 cached; 3 request(s)"),
        "{lines:?}"
    );
}

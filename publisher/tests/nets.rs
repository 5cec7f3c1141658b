//! The safety nets of the publish workflow, end to end against a real Verdaccio: what must hold for
//! `handle-publish-request.yml` to run without a per-repository concurrency group (quick pushes of one
//! repository run side by side), and the legacy empty `package_path`.

mod support;

use support::{Cli, Repo, Run, Verdaccio};

/// Every version a run published is on the registry with the bytes the run sent.
fn assert_published_and_verified(registry: &Verdaccio, run: &Run) {
    for published in run.audit["published"].as_array().unwrap() {
        let name = published["name"].as_str().unwrap();
        let version = published["version"].as_str().unwrap();
        let (shasum, _) = registry.stored(name, version);
        assert_eq!(published["shasum"], shasum.as_str(), "{name}@{version}");
    }
}

/// Three pushes of one repository in quick succession, each dispatch naming only the directories its
/// push changed. GitHub keeps one pending run per concurrency group and cancels the rest, so the
/// workflow has no per-repository group: the three runs start together. All three must publish, and
/// every version must end up on the registry, verified. Three rounds, because the interleaving differs.
#[test]
fn three_quick_dispatches_for_one_repository_all_publish() {
    let registry = Verdaccio::shared();
    for round in 0..3 {
        let a = format!("com.test.quick{round}-a");
        let b = format!("com.test.quick{round}-b");
        let repo = Repo::new();
        repo.package("Packages/a", &a, "1.0.0");
        repo.package("Packages/b", &b, "1.0.0");
        let first = repo.commit("feat: a and b");
        repo.set_version("Packages/a", &a, "1.1.0");
        let second = repo.commit("feat(a): 1.1.0");
        repo.set_version("Packages/a", &a, "1.2.0");
        repo.set_version("Packages/b", &b, "2.0.0");
        let third = repo.commit("feat!: a 1.2.0, b 2.0.0");
        let (_bare, url) = repo.bare();

        let dispatches = [
            (&first, "Packages/a,Packages/b"),
            (&second, "Packages/a"),
            (&third, "Packages/a,Packages/b"),
        ];
        let running: Vec<_> = dispatches
            .iter()
            .map(|(sha, paths)| {
                Cli::new(&registry.url)
                    .token(&registry.token)
                    .clone_at(&url, sha)
                    .env("UPM_REPOSITORY", "studio/quick")
                    .env("UPM_PACKAGE_PATHS", paths)
                    .spawn()
            })
            .collect();
        let runs: Vec<Run> = running.into_iter().map(|r| r.finish()).collect();

        for run in &runs {
            assert_eq!(run.code, 0, "{}", run.stderr);
            assert_eq!(run.count("failed"), 0, "{}", run.audit);
            assert_published_and_verified(registry, run);
        }
        let mut published: Vec<String> = runs.iter().flat_map(|r| r.names("published")).collect();
        published.sort();
        let mut expected = vec![
            format!("{a}@1.0.0"),
            format!("{a}@1.1.0"),
            format!("{a}@1.2.0"),
            format!("{b}@1.0.0"),
            format!("{b}@2.0.0"),
        ];
        expected.sort();
        assert_eq!(published, expected, "round {round}");
        for (name, version) in [
            (&a, "1.0.0"),
            (&a, "1.1.0"),
            (&a, "1.2.0"),
            (&b, "1.0.0"),
            (&b, "2.0.0"),
        ] {
            assert_eq!(
                registry.version_status(name, version),
                200,
                "{name}@{version}"
            );
        }
        // Whatever order the runs finished in, `latest` is the highest version (never moved back).
        assert_eq!(registry.packument(&a)["dist-tags"]["latest"], "1.2.0");
        assert_eq!(registry.packument(&b)["dist-tags"]["latest"], "2.0.0");
    }
}

/// The legacy per-repository dispatchers and the original worker send `package_path: ""`. That means
/// "every package": reading only the repository root would find nothing and lose the bump.
#[test]
fn an_empty_package_path_publishes_every_package() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.write("package.json", r#"{"name":"unity-project","private":true}"#);
    repo.package("Packages/com.test.legacy-a", "com.test.legacy-a", "1.0.0");
    repo.package("Assets/Plugins/legacy-b", "com.test.legacy-b", "3.1.0");
    let sha = repo.commit("feat: two packages");

    let run = Cli::publish(registry, &repo, &sha)
        .env("UPM_PACKAGE_PATHS", "")
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut published = run.names("published");
    published.sort();
    assert_eq!(
        published,
        ["com.test.legacy-a@1.0.0", "com.test.legacy-b@3.1.0"]
    );
    assert_published_and_verified(registry, &run);
}

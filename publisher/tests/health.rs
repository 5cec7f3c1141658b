//! `upm-publisher health` against the shared fake GitHub (`upm-fake-github`, on loopback) and a real
//! Verdaccio: three repositories (healthy; a folder without its `.meta` and a dependency range; a
//! content change without a bump) give exactly one fix pull request with exactly the two fixes, the
//! third reported and untouched; a second run of the same week writes nothing; what each run costs.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use support::{Cli, FakeServer, Repo, Run, Verdaccio};
use upm_fake_github::{FakeGitHub, State as World};

const READ_TOKEN: &str = "fake-read-token";
const FIX_TOKEN: &str = "fake-fix-token";
/// 2026-12-03, in ISO week 2026-W49.
const NOW: &str = "1796256000";

/// The files of a local fixture repository (what a publish packs from), by path.
fn files_of(repo: &Repo) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(repo.path(), repo.path(), &mut out);
    out
}

/// A package as Unity lays it out (`support::Repo::package`) in `Packages/<dir>`, published when
/// `publish` says so; returns its files.
fn package(
    registry: &Verdaccio,
    dir: &str,
    name: &str,
    version: &str,
    publish: bool,
) -> (Repo, BTreeMap<String, Vec<u8>>) {
    let repo = Repo::new();
    repo.package(&format!("Packages/{dir}"), name, version);
    let sha = repo.commit("feat: the package");
    if publish {
        let run = Cli::publish(registry, &repo, &sha).run();
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let files = files_of(&repo);
    (repo, files)
}

fn commit(world: &mut World, repository: &str, files: &BTreeMap<String, Vec<u8>>, message: &str) {
    let repo = match world.repo_mut(repository) {
        Some(repo) => repo,
        None => world.add_repo(repository, "main"),
    };
    let changes: Vec<(&str, Option<&[u8]>)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), Some(b.as_slice())))
        .collect();
    repo.commit("main", &changes, message).unwrap();
}

struct Health<'a> {
    github: &'a FakeGitHub,
    registry: &'a Verdaccio,
    dir: &'a Path,
    discord: &'a FakeServer,
}

impl Health<'_> {
    fn run(&self) -> Run {
        let registry_file = self.dir.join("repositories.json");
        std::fs::write(
            &registry_file,
            r#"{"repositories": [
                {"url": "https://github.com/studio/hl-healthy", "status": "active"},
                {"url": "https://github.com/studio/hl-fixme", "status": "active"},
                {"url": "https://github.com/studio/hl-changed", "status": "active"},
                {"url": "https://github.com/studio/hl-optout", "status": "active", "health": false}
            ]}"#,
        )
        .unwrap();
        Cli::command("health", &self.registry.url)
            .arg("--registry-file")
            .arg(&registry_file.to_string_lossy())
            .args(&["--github-api", self.github.url(), "--owner", "studio"])
            .arg("--state-dir")
            .arg(&self.dir.join("state").to_string_lossy())
            .arg("--guid-cache")
            .arg(&self.dir.join("guids.json").to_string_lossy())
            .args(&["--attempts", "2", "--timeout", "10"])
            .env("GITHUB_TOKEN", READ_TOKEN)
            .env("UPM_FIX_TOKEN", FIX_TOKEN)
            .env("UPM_HEALTH_NOW", NOW)
            .discord(self.discord)
            .run()
    }
}

fn line<'a>(run: &'a Run, repository: &str) -> &'a Value {
    run.audit["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["repository"] == repository)
        .unwrap_or_else(|| panic!("no line for {repository}: {}", run.audit))
}

#[test]
fn one_fix_pull_request_with_exactly_the_machine_fixes_and_a_quiet_rerun_writes_nothing() {
    let registry = Verdaccio::shared();
    // The dependency the range should become exact on: 1.0.0 and 1.2.0 on the registry.
    let (dep, _) = package(registry, "dep", "com.test.hl-dep", "1.0.0", true);
    dep.set_version("Packages/dep", "com.test.hl-dep", "1.2.0");
    let sha = dep.commit("feat: 1.2.0");
    assert_eq!(Cli::publish(registry, &dep, &sha).run().code, 0);

    let mut world = World {
        tokens: vec![READ_TOKEN.into(), FIX_TOKEN.into()],
        ..World::default()
    };
    // 1. Healthy: the branch holds exactly what was published.
    let (_, healthy) = package(registry, "healthy", "com.test.hl-healthy", "1.0.0", true);
    commit(
        &mut world,
        "studio/hl-healthy",
        &healthy,
        "feat: healthy 1.0.0",
    );
    // 2. A folder without its .meta and a dependency range; never published (the bump failed).
    let (_, mut fixme) = package(registry, "fixme", "com.test.hl-fixme", "1.0.0", false);
    let manifest_path = "Packages/fixme/package.json".to_string();
    let manifest = String::from_utf8(fixme[&manifest_path].clone()).unwrap().replace(
        "  \"description\": \"fixture\"\n",
        "  \"description\": \"fixture\",\n  \"dependencies\": {\n    \"com.test.hl-dep\": \"^1.0.0\"\n  }\n",
    );
    fixme.insert(manifest_path.clone(), manifest.clone().into_bytes());
    fixme.insert(
        "Packages/fixme/Editor/Tool.cs".into(),
        b"class Tool {}\n".to_vec(),
    );
    fixme.insert(
        "Packages/fixme/Editor/Tool.cs.meta".into(),
        support::meta("com.test.hl-fixme", "Editor/Tool.cs").into_bytes(),
    );
    commit(&mut world, "studio/hl-fixme", &fixme, "feat: fixme 1.0.0");
    // 3. Published, then changed on the branch without a bump.
    let (_, mut changed) = package(registry, "changed", "com.test.hl-changed", "1.0.0", true);
    commit(
        &mut world,
        "studio/hl-changed",
        &changed,
        "feat: changed 1.0.0",
    );
    changed.insert(
        "Packages/changed/Runtime/Thing.cs".into(),
        b"// com.test.hl-changed\nclass Thing { int later; }\n".to_vec(),
    );
    commit(
        &mut world,
        "studio/hl-changed",
        &changed,
        "fix: a change without a bump",
    );
    // Opted out: never read.
    commit(&mut world, "studio/hl-optout", &healthy, "feat");

    let github = FakeGitHub::start(world).unwrap();
    let discord = FakeServer::discord();
    let dir = tempfile::tempdir().unwrap();
    let health = Health {
        github: &github,
        registry,
        dir: dir.path(),
        discord: &discord,
    };
    let heads_before: BTreeMap<String, String> =
        ["studio/hl-healthy", "studio/hl-fixme", "studio/hl-changed"]
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    github.state().repo(r).unwrap().branches["main"].clone(),
                )
            })
            .collect();

    // Cold run.
    let cold = health.run();
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert_eq!(cold.audit["week"], "2026-W49");
    assert_eq!(
        cold.audit["repositories"].as_array().unwrap().len(),
        3,
        "hl-optout opted out"
    );
    let healthy_line = line(&cold, "studio/hl-healthy");
    assert_eq!(
        healthy_line["packages"][0]["problems"],
        Value::Array(vec![]),
        "{healthy_line}"
    );
    assert!(healthy_line["pull"].is_null());

    let fixme_line = line(&cold, "studio/hl-fixme");
    let problems = fixme_line["packages"][0]["problems"].as_array().unwrap();
    let fields: Vec<(&str, bool)> = problems
        .iter()
        .map(|p| (p["field"].as_str().unwrap(), p["fix"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [("dependencies.com.test.hl-dep", true), ("Editor/", true)],
        "{fixme_line}"
    );
    assert_eq!(fixme_line["pull"]["action"], "opened");
    assert_eq!(fixme_line["pull"]["number"], 1);

    let changed_line = line(&cold, "studio/hl-changed");
    let problems = changed_line["packages"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{changed_line}");
    assert_eq!(problems[0]["field"], "version");
    assert_eq!(problems[0]["fix"], false);
    assert!(problems[0]["reason"]
        .as_str()
        .unwrap()
        .contains("Runtime/Thing.cs"));
    assert!(changed_line["pull"].is_null());

    // The one pull request, and exactly its two files.
    let state = github.state().clone();
    for repository in ["studio/hl-healthy", "studio/hl-changed", "studio/hl-optout"] {
        let repo = state.repo(repository).unwrap();
        assert!(repo.pulls.is_empty(), "{repository} got a pull request");
        assert_eq!(repo.branches.len(), 1, "{repository} got a branch");
    }
    for (repository, head) in &heads_before {
        assert_eq!(
            &state.repo(repository).unwrap().branches["main"],
            head,
            "{repository}'s branch moved"
        );
    }
    let repo = state.repo("studio/hl-fixme").unwrap();
    assert_eq!(repo.pulls.len(), 1);
    let pull = &repo.pulls[0];
    assert_eq!(
        (pull.head.as_str(), pull.base.as_str(), pull.state.as_str()),
        ("upm-health/fixes", "main", "open")
    );
    let fix_commit = &repo.commits[&repo.branches["upm-health/fixes"]];
    assert_eq!(
        fix_commit.parents,
        [heads_before["studio/hl-fixme"].clone()]
    );
    let base = &repo.commits[&heads_before["studio/hl-fixme"]].files;
    let mut touched: Vec<&str> = fix_commit
        .files
        .iter()
        .filter(|(path, blob)| base.get(*path) != Some(*blob))
        .map(|(path, _)| path.as_str())
        .collect();
    touched.sort_unstable();
    assert_eq!(
        touched,
        ["Packages/fixme/Editor.meta", "Packages/fixme/package.json"]
    );
    assert_eq!(fix_commit.files.len(), base.len() + 1, "nothing deleted");
    let content =
        |path: &str| String::from_utf8(repo.blob_bytes(&fix_commit.files[path]).unwrap()).unwrap();
    assert_eq!(
        content("Packages/fixme/package.json"),
        manifest.replace(
            "\"com.test.hl-dep\": \"^1.0.0\"",
            "\"com.test.hl-dep\": \"1.2.0\""
        ),
        "only the range changed, every other byte kept"
    );
    let meta = content("Packages/fixme/Editor.meta");
    let guid = meta
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("guid: ")
        .unwrap()
        .to_string();
    assert!(
        guid.len() == 32
            && guid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{meta}"
    );
    assert_eq!(
        meta,
        format!("fileFormatVersion: 2\nguid: {guid}\nfolderAsset: yes\nDefaultImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n")
    );
    assert!(
        pull.body.contains("`com.test.hl-dep`: `^1.0.0` → `1.2.0`"),
        "{}",
        pull.body
    );
    assert!(pull.body.contains("US-0112"), "{}", pull.body);
    // Every write went with the fix token, every read with the read token.
    for request in github.requests() {
        let write = request.method != "GET";
        let expected = if write { FIX_TOKEN } else { READ_TOKEN };
        assert_eq!(
            request.token.as_deref(),
            Some(expected),
            "{} {}",
            request.method,
            request.path
        );
        assert!(
            !request.path.contains("hl-optout"),
            "the opted-out repository was read"
        );
    }
    assert_eq!(discord.requests().len(), 1);
    let message = discord.requests()[0].json();
    assert_eq!(
        message["embeds"][0]["title"],
        "UPM health 2026-W49: 3 problems in 2 packages"
    );
    assert!(
        cold.summary
            .contains("| studio/hl-healthy | 1 package | ✅ healthy | |"),
        "{}",
        cold.summary
    );

    // The same week again: nothing written, no second pull request, no second message.
    let before = github.requests().len();
    let quiet = health.run();
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(
        line(&quiet, "studio/hl-fixme")["pull"]["action"],
        "unchanged"
    );
    let sent: Vec<(String, String, u16)> = github.requests()[before..]
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    // One head per repository (304) and the fix pull request listing: a 200 this once, as the pull
    // request opened after the cold run listed none.
    assert!(sent.iter().all(|(method, ..)| method == "GET"), "{sent:?}");
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(
        sent.iter().filter(|(.., status)| *status == 304).count(),
        3,
        "{sent:?}"
    );
    let after = github.state().clone();
    assert_eq!(after.repo("studio/hl-fixme").unwrap().pulls.len(), 1);
    assert_eq!(
        after.repo("studio/hl-fixme").unwrap().pulls[0].body,
        pull.body
    );
    assert_eq!(discord.requests().len(), 1, "one message per week");
    assert_eq!(quiet.audit["notification"], "already posted this week");

    // A quiet week: every request answered 304.
    let before = github.requests().len();
    let quiet = health.run();
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    let sent: Vec<u16> = github.requests()[before..]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(sent, [304, 304, 304, 304]);
    assert_eq!(
        line(&quiet, "studio/hl-fixme")["pull"]["action"],
        "unchanged"
    );

    println!(
        "health GitHub requests per run (3 repositories, 3 packages): cold {} in {} ms, quiet {} ({} \
         answered 304) in {} ms",
        cold.audit["github_requests"],
        cold.audit["millis"],
        quiet.audit["github_requests"],
        quiet.audit["not_modified"],
        quiet.audit["millis"]
    );
    println!("--- summary (cold run) ---\n{}", cold.summary);
    println!(
        "--- fix pull request #{} body ---\n{}",
        pull.number, pull.body
    );
}

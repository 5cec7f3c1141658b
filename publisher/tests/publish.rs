//! End-to-end: the real CLI against a real Verdaccio (one per test binary, on 127.0.0.1), git fixture
//! repositories made here, and a fake Discord that records what it is sent. Each test uses its own
//! package names, so they share the registry safely.

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use support::{get, sha1_hex, tarball_paths, Cli, FakeServer, Repo, Run, Verdaccio};

fn discord_messages(discord: &FakeServer) -> Vec<Value> {
    discord.requests().iter().map(|r| r.json()).collect()
}

#[test]
fn happy_path_publishes_one_package_with_the_right_shasum() {
    let registry = Verdaccio::shared();
    let discord = FakeServer::discord();
    let repo = Repo::new();
    repo.write("package.json", r#"{"name":"unity-project","private":true}"#);
    repo.package("Packages/com.test.happy", "com.test.happy", "1.0.0");
    let sha = repo.commit("feat: first version of happy");
    let (_bare_dir, url) = repo.bare();
    let work = tempfile::tempdir().unwrap();
    let clone_into = work.path().join("checkout");

    let run = Cli::new(&registry.url)
        .token(&registry.token)
        .discord(&discord)
        .env("DISCORD_THREAD_ID", "987654321")
        .clone_at(&url, &sha)
        .args(&["--workspace", clone_into.to_str().unwrap()])
        .args(&[
            "--repository",
            "studio/happy",
            "--branch",
            "main",
            "--package-paths",
            "Packages/com.test.happy",
        ])
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.happy@1.0.0"]);
    let published = &run.audit["published"][0];
    assert_eq!(published["dist_tag"], "latest");

    // Visible on the registry, and the stored bytes are the ones we sent.
    let doc = registry.packument("com.test.happy");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert_eq!(
        doc["versions"]["1.0.0"]["displayName"],
        "Test com.test.happy"
    );
    let (shasum, tarball) = registry.stored("com.test.happy", "1.0.0");
    assert_eq!(published["shasum"], shasum.as_str());
    // Tests/ is excluded by the package's .npmignore, which npm never packs itself; entries are in
    // npm's order (by extension first).
    assert_eq!(
        tarball_paths(&tarball),
        [
            "package/Runtime/Thing.cs",
            "package/package.json",
            "package/package.json.meta",
            "package/Runtime.meta",
            "package/Runtime/Thing.cs.meta",
        ]
    );

    // The changelog was written into the checkout and told to Discord, in the thread asked for.
    let changelog =
        std::fs::read_to_string(clone_into.join("Packages/com.test.happy/CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains("## [1.0.0]") && changelog.contains("first version of happy"),
        "{changelog}"
    );
    let requests = discord.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].url.contains("wait=true") && requests[0].url.contains("thread_id=987654321")
    );
    let message = requests[0].json();
    assert_eq!(message["embeds"].as_array().unwrap().len(), 1);
    assert_eq!(message["embeds"][0]["title"], "Published 1 package");
    assert!(message["embeds"][0]["fields"][0]["value"]
        .as_str()
        .unwrap()
        .contains("first version of happy"));
    assert!(
        run.summary
            .contains("✅ published | com.test.happy | 1.0.0"),
        "{}",
        run.summary
    );
    // The webhook URL carries a token: it must not be printed.
    assert!(!run.stderr.contains("secret-webhook-token") && !run.stderr.contains(&registry.token));
}

#[test]
fn a_multi_package_repository_publishes_every_package() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.write(
        "package.json",
        r#"{"name":"unity-project","version":"0.0.0","private":true}"#,
    );
    repo.package("Packages/com.test.multi-a", "com.test.multi-a", "1.0.0");
    repo.package("Packages/com.test.multi-b", "@test/multi-b", "2.1.0");
    // UPM-shaped, but in folders that are never published.
    repo.package(
        "Packages/com.test.multi-a/node_modules/com.test.multi-dep",
        "com.test.multi-dep",
        "1.0.0",
    );
    repo.package(
        "Library/PackageCache/com.test.multi-cache",
        "com.test.multi-cache",
        "1.0.0",
    );
    let sha = repo.commit("feat: two packages");

    // No --package-paths: the whole repository is scanned.
    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut names = run.names("published");
    names.sort();
    assert_eq!(names, ["@test/multi-b@2.1.0", "com.test.multi-a@1.0.0"]);
    assert_eq!(run.count("failed") + run.count("skipped"), 0);
    registry.stored("com.test.multi-a", "1.0.0");
    registry.stored("@test/multi-b", "2.1.0");
    assert_eq!(registry.version_status("com.test.multi-dep", "1.0.0"), 404);
    assert_eq!(
        registry.version_status("com.test.multi-cache", "1.0.0"),
        404
    );
}

#[test]
fn an_already_published_version_is_skipped_and_nothing_is_uploaded() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.package("Packages/com.test.again", "com.test.again", "1.0.0");
    let sha = repo.commit("feat: again");
    let first = Cli::publish(registry, &repo, &sha).run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = registry.packument("com.test.again");

    let discord = FakeServer::discord();
    let second = Cli::publish(registry, &repo, &sha)
        .discord(&discord)
        .args(&["--package-paths", "Packages/com.test.again"])
        .run();

    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.count("published"), 0);
    assert_eq!(second.audit["skipped"][0]["reason"], "already published");
    // Any upload would have changed the document's revision and modification time.
    let after = registry.packument("com.test.again");
    assert_eq!(before["_rev"], after["_rev"]);
    assert_eq!(before["time"]["modified"], after["time"]["modified"]);
    // Nothing new: no notification.
    assert!(discord.requests().is_empty());
    assert_eq!(second.audit["notification"], "nothing to announce");
}

#[test]
fn an_invalid_package_fails_alone_and_is_announced() {
    let registry = Verdaccio::shared();
    let discord = FakeServer::discord();
    let repo = Repo::new();
    repo.package("Packages/com.test.valid", "com.test.valid", "1.0.0");
    repo.write(
        "Packages/com.test.broken/package.json",
        "{\n  \"name\": \"com.test.broken\",\n  \"version\": \"1.0.0\",\n}\n",
    );
    repo.write(
        "Packages/com.test.badname/package.json",
        r#"{"name":"Com.Test.BadName","version":"1.0","displayName":"Bad"}"#,
    );
    let sha = repo.commit("feat: one good, two bad");

    let run = Cli::publish(registry, &repo, &sha)
        .discord(&discord)
        .args(&["--repository", "studio/mixed"])
        .args(&[
            "--package-paths",
            "Packages/com.test.broken,Packages/com.test.valid,Packages/com.test.badname",
        ])
        .run();

    assert_eq!(run.code, 1, "a failed package must fail the run");
    assert_eq!(run.names("published"), ["com.test.valid@1.0.0"]);
    registry.stored("com.test.valid", "1.0.0");
    let failed = run.audit["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["file"], "Packages/com.test.broken/package.json");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("line 4"),
        "{}",
        failed[0]
    );
    assert_eq!(failed[1]["file"], "Packages/com.test.badname/package.json");
    let fields: Vec<&str> = failed[1]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "version"]);
    assert_eq!(registry.version_status("com.test.broken", "1.0.0"), 404);

    let messages = discord_messages(&discord);
    assert_eq!(messages.len(), 1);
    let embeds = messages[0]["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 2);
    assert_eq!(embeds[0]["title"], "Published 1 package");
    assert_eq!(embeds[1]["title"], "Failed to publish 2 packages");
    let failure_text = embeds[1]["fields"].to_string();
    assert!(
        failure_text.contains("Packages/com.test.broken/package.json"),
        "{failure_text}"
    );
    assert!(run.summary.contains("❌ failed"), "{}", run.summary);
}

#[test]
fn a_version_lower_than_latest_gets_another_dist_tag() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.package("pkg", "com.test.lower", "2.0.0");
    let high = repo.commit("feat!: 2.0");
    let run = Cli::publish(registry, &repo, &high).run();
    assert_eq!(run.code, 0, "{}", run.stderr);

    // A fix on the 1.x line, published after 2.0.0.
    repo.set_version("pkg", "com.test.lower", "1.5.0");
    let low = repo.commit("fix: backport");
    let run = Cli::publish(registry, &repo, &low).run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.audit["published"][0]["dist_tag"], "latest-1");
    let doc = registry.packument("com.test.lower");
    assert_eq!(
        doc["dist-tags"]["latest"], "2.0.0",
        "latest moved backwards: {}",
        doc["dist-tags"]
    );
    assert_eq!(doc["dist-tags"]["latest-1"], "1.5.0");
    registry.stored("com.test.lower", "1.5.0");
}

#[test]
fn the_changelog_covers_changes_since_the_previous_version() {
    let registry = Verdaccio::shared();
    let discord = FakeServer::discord();
    let repo = Repo::new();
    repo.package("Packages/log", "com.test.changelog", "1.0.0");
    let first = repo.commit("feat: the beginning");
    let run = Cli::publish(registry, &repo, &first).run();
    assert_eq!(run.code, 0, "{}", run.stderr);

    repo.write("Packages/log/Runtime/Thing.cs", "class Thing { int x; }\n");
    repo.commit("fix(core): handle a null scene");
    repo.write("Packages/log/Documentation~/index.md", "# Docs\n");
    repo.commit("docs: usage page");
    repo.write("Elsewhere/readme.txt", "not in the package\n");
    repo.commit("feat: unrelated change outside the package");
    repo.set_version("Packages/log", "com.test.changelog", "1.1.0");
    let release = repo.commit("chore: release 1.1.0");

    let run = Cli::publish(registry, &repo, &release)
        .discord(&discord)
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    let section = run.audit["published"][0]["changelog"].as_str().unwrap();
    assert!(section.starts_with("## [1.1.0] - "), "{section}");
    assert!(
        section.contains("### Bug Fixes\n\n- **core:** handle a null scene"),
        "{section}"
    );
    assert!(
        section.contains("### Documentation\n\n- usage page"),
        "{section}"
    );
    assert!(
        !section.contains("the beginning"),
        "1.0.0's changes leaked in: {section}"
    );
    assert!(!section.contains("unrelated"), "{section}");
    let file = std::fs::read_to_string(repo.path().join("Packages/log/CHANGELOG.md")).unwrap();
    let new_at = file.find("## [1.1.0]").expect("1.1.0 section");
    let old_at = file.find("## [1.0.0]").expect("1.0.0 section kept");
    assert!(new_at < old_at, "{file}");
    assert!(
        discord.requests()[0].json()["embeds"][0]["fields"][0]["value"]
            .as_str()
            .unwrap()
            .contains("handle a null scene")
    );
}

#[test]
fn a_broken_registry_is_an_error_never_not_published() {
    let repo = Repo::new();
    repo.package("p", "com.test.down", "1.0.0");
    let sha = repo.commit("feat: down");

    // 500 on everything: retried (bounded), then an error for the package; nothing uploaded.
    let broken = FakeServer::start(|_| (500, br#"{"error":"internal"}"#.to_vec()));
    let run = Cli::new(&broken.url)
        .token("t")
        .workspace(&repo, &sha)
        .args(&["--attempts", "2"])
        .run();
    assert_eq!(run.code, 1);
    assert_eq!(run.count("published") + run.count("skipped"), 0);
    assert_eq!(run.audit["failed"][0]["stage"], "registry");
    assert!(
        run.audit["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{}",
        run.audit
    );
    let requests = broken.requests();
    assert_eq!(requests.len(), 2, "two attempts, no more: {requests:?}");
    assert!(requests.iter().all(|r| r.method == "GET"));

    // 401 is not retried and not "missing".
    let denied = FakeServer::start(|_| (401, br#"{"error":"unauthorized"}"#.to_vec()));
    let run = Cli::new(&denied.url).workspace(&repo, &sha).run();
    assert_eq!(run.code, 1);
    assert!(run.audit["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("401"));
    assert_eq!(denied.requests().len(), 1);

    // Nothing listening at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = Cli::new(&format!("http://127.0.0.1:{port}"))
        .workspace(&repo, &sha)
        .args(&["--attempts", "2"])
        .run();
    assert_eq!(run.code, 1);
    assert_eq!(run.audit["failed"][0]["stage"], "registry");
    assert_eq!(run.count("published") + run.count("skipped"), 0);
}

/// A registry that answers the upload with 409 after storing `stored` bytes (ours, when `None`), and
/// whose metadata then claims `metadata_shasum` (the sha1 of what is stored, when `None`). This is
/// Verdaccio's same-version race, made deterministic.
fn conflicting_registry(stored: Option<Vec<u8>>, metadata_shasum: Option<String>) -> FakeServer {
    let tarball: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(stored.clone()));
    let keep_ours = stored.is_none();
    let port_holder: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let base = port_holder.clone();
    let server = FakeServer::start(move |req| {
        let stored = tarball.lock().unwrap().clone();
        match (req.method.as_str(), req.url.as_str()) {
            // The registry's listing (the GUID index reads it): nothing else is published there.
            ("GET", url) if url.starts_with("/-/v1/search?") => {
                (200, br#"{"objects":[]}"#.to_vec())
            }
            ("GET", "/com.test.conflict/1.0.0") => (404, b"{}".to_vec()),
            ("GET", "/com.test.conflict") => match &stored {
                Some(bytes) if req.url == "/com.test.conflict" => {
                    let shasum = metadata_shasum.clone().unwrap_or_else(|| sha1_hex(bytes));
                    let url = format!(
                        "{}/com.test.conflict/-/com.test.conflict-1.0.0.tgz",
                        base.lock().unwrap()
                    );
                    let doc = json!({"name":"com.test.conflict","dist-tags":{"latest":"1.0.0"},
                        "versions":{"1.0.0":{"dist":{"shasum":shasum,"tarball":url}}}});
                    (200, doc.to_string().into_bytes())
                }
                _ => (404, b"{}".to_vec()),
            },
            ("PUT", "/com.test.conflict") => {
                if keep_ours {
                    let body = req.json();
                    let data = body["_attachments"]["com.test.conflict-1.0.0.tgz"]["data"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    *tarball.lock().unwrap() = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .unwrap(),
                    );
                }
                (
                    409,
                    br#"{"error":"this package is already present"}"#.to_vec(),
                )
            }
            ("GET", "/com.test.conflict/-/com.test.conflict-1.0.0.tgz") => {
                (200, stored.unwrap_or_default())
            }
            _ => (404, b"{}".to_vec()),
        }
    });
    *port_holder.lock().unwrap() = server.url.clone();
    server
}

#[test]
fn a_409_is_verified_not_retried() {
    let repo = Repo::new();
    repo.package("p", "com.test.conflict", "1.0.0");
    let sha = repo.commit("feat: conflict");
    let run_against = |server: &FakeServer| {
        Cli::new(&server.url)
            .token("t")
            .workspace(&repo, &sha)
            .run()
    };

    // Another run uploaded the same bytes first: fine, nothing to do.
    let same = conflicting_registry(None, None);
    let run = run_against(&same);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.audit["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("identical content"));
    assert_eq!(
        same.requests().iter().filter(|r| r.method == "PUT").count(),
        1,
        "a 409 must not be retried"
    );

    // Verdaccio's race: our bytes stored under the winner's metadata. Installs would fail: say so.
    let corrupt = conflicting_registry(None, Some("0".repeat(40)));
    let run = run_against(&corrupt);
    assert_eq!(run.code, 1);
    assert_eq!(run.audit["failed"][0]["stage"], "verify");
    assert!(run.audit["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("does not match its own metadata"));

    // Someone else's content under this version: not ours, so not a success.
    let theirs = conflicting_registry(Some(b"other bytes".to_vec()), None);
    let run = run_against(&theirs);
    assert_eq!(run.code, 1);
    assert!(run.audit["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("different content"));
}

/// Two runs at once, each from its own clone of `url`: the first at `shas[0]` with the registry's
/// publisher, the second at `shas[1]` with `other_token`.
fn race(registry: &Verdaccio, other_token: &str, url: &str, shas: [&str; 2]) -> (Run, Run) {
    let a = Cli::new(&registry.url)
        .token(&registry.token)
        .clone_at(url, shas[0])
        .spawn();
    let b = Cli::new(&registry.url)
        .token(other_token)
        .clone_at(url, shas[1])
        .spawn();
    (a.finish(), b.finish())
}

#[test]
fn two_publishers_racing_on_one_version_leave_a_consistent_registry() {
    let registry = Verdaccio::shared();
    let other_token = registry.user("second-publisher");
    for round in 0..3 {
        let name = format!("com.test.race{round}");
        let repo = Repo::new();
        repo.package("p", &name, "1.0.0");
        let sha = repo.commit("feat: race");
        let (_bare, url) = repo.bare();
        // Two runs for the same commit (a redelivery, a manual replay), each with its own clone.
        let (a, b) = race(registry, &other_token, &url, [&sha, &sha]);

        assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.stderr, b.stderr);
        assert_eq!(
            a.count("published") + b.count("published"),
            1,
            "exactly one upload wins"
        );
        assert_eq!(a.count("skipped") + b.count("skipped"), 1);
        let (shasum, _) = registry.stored(&name, "1.0.0");
        let winner = if a.count("published") == 1 { &a } else { &b };
        assert_eq!(winner.audit["published"][0]["shasum"], shasum.as_str());
    }

    // Two different commits claiming one version (a mistake: the version was not bumped). At most one
    // run succeeds, with the metadata the registry recorded; the other fails or skips. The stored
    // tarball is not asserted here: Verdaccio can keep the loser's bytes if both uploads overlap, which
    // no client can prevent; the loser's verify step reports exactly that (see a_409_is_verified_not_retried).
    let repo = Repo::new();
    repo.package("p", "com.test.race-diff", "1.0.0");
    let one = repo.commit("feat: one");
    repo.write("p/Runtime/Other.cs", "class Other {}\n");
    let two = repo.commit("feat: two");
    let (_bare, url) = repo.bare();
    let (a, b) = race(registry, &other_token, &url, [&one, &two]);
    let doc = registry.packument("com.test.race-diff");
    let shasum = doc["versions"]["1.0.0"]["dist"]["shasum"]
        .as_str()
        .unwrap()
        .to_string();
    let successes: Vec<&Value> = [&a, &b]
        .iter()
        .flat_map(|r| r.audit["published"].as_array().unwrap())
        .collect();
    assert!(successes.len() <= 1);
    for s in successes {
        assert_eq!(s["shasum"], shasum.as_str());
    }
    assert!(a.code == 1 || b.code == 1 || a.count("skipped") + b.count("skipped") == 1);
}

#[test]
fn thirty_packages_fit_discords_limits() {
    let registry = Verdaccio::shared();
    let discord = FakeServer::discord();
    let repo = Repo::new();
    for i in 0..30 {
        repo.package(
            &format!("Packages/p{i:02}"),
            &format!("com.test.limits-{i:02}"),
            "1.0.0",
        );
    }
    repo.commit("feat: thirty packages");
    // Long messages touching every package, so every changelog is long too.
    for n in 0..4 {
        for i in 0..30 {
            repo.write(&format!("Packages/p{i:02}/Runtime/Note{n}.cs"), "// note\n");
            repo.write(
                &format!("Packages/p{i:02}/Runtime/Note{n}.cs.meta"),
                &support::meta(&format!("p{i}"), &format!("Note{n}.cs")),
            );
        }
        repo.commit(&format!(
            "feat: change {n} {}",
            "with a very long description ".repeat(12)
        ));
    }
    let sha = git_head(&repo);

    let run = Cli::publish(registry, &repo, &sha)
        .discord(&discord)
        .args(&["--repository", "studio/many"])
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("published"), 30);
    let messages = discord_messages(&discord);
    assert_eq!(messages.len(), 1);
    let embeds = messages[0]["embeds"].as_array().unwrap();
    assert!(embeds.len() <= 10);
    let mut total = 0;
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    for embed in embeds {
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.len() <= 25, "{} fields", fields.len());
        assert!(chars(&embed["title"]) <= 256 && chars(&embed["description"]) <= 4096);
        total +=
            chars(&embed["title"]) + chars(&embed["description"]) + chars(&embed["footer"]["text"]);
        for f in fields {
            assert!(chars(&f["value"]) <= 1024 && chars(&f["name"]) <= 256);
            total += chars(&f["name"]) + chars(&f["value"]);
        }
    }
    assert!(total <= 6000, "{total} characters");
    let names: Vec<&str> = embeds[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let more = names.last().unwrap();
    assert!(
        more.starts_with("…and ") && more.ends_with(" more"),
        "{names:?}"
    );
    let omitted: usize = more
        .trim_start_matches("…and ")
        .trim_end_matches(" more")
        .parse()
        .unwrap();
    assert_eq!(
        names.len() - 1 + omitted,
        30,
        "every package is either listed or counted"
    );
}

#[test]
fn a_run_that_cannot_start_still_reports_and_notifies() {
    let discord = FakeServer::discord();
    let repo = Repo::new();
    repo.package("p", "com.test.mismatch", "1.0.0");
    repo.commit("feat: x");
    let wrong = "0123456789abcdef0123456789abcdef01234567";
    // The run stops before any registry request (port 9 on loopback: nothing listens there).
    let run = Cli::new("http://127.0.0.1:9")
        .discord(&discord)
        .workspace(&repo, wrong)
        .args(&["--repository", "studio/x"])
        .run();
    assert_eq!(run.code, 1);
    assert_eq!(run.audit["failed"][0]["stage"], "checkout");
    assert!(run.audit["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not at the requested commit"));
    assert!(run.summary.contains("❌ failed"));
    let messages = discord_messages(&discord);
    assert_eq!(
        messages[0]["embeds"][0]["title"],
        "Failed to publish 1 package"
    );

    // A sha that is not a sha never reaches git (the workflow passes it through the environment).
    let run = Cli::new("http://127.0.0.1:9")
        .env("UPM_COMMIT_SHA", "--upload-pack=touch /tmp/x")
        .args(&["--workspace", repo.path().to_str().unwrap()])
        .run();
    assert_eq!(run.code, 1);
    assert!(run.audit["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not a full 40-character"));
}

#[test]
fn dry_run_uploads_nothing() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.package("p", "com.test.dry", "1.0.0");
    let sha = repo.commit("feat: dry");
    let run = Cli::new(&registry.url)
        .workspace(&repo, &sha)
        .arg("--dry-run")
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.audit["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("dry run: would publish 5 files"));
    assert_eq!(registry.version_status("com.test.dry", "1.0.0"), 404);
    assert!(!repo.path().join("p/CHANGELOG.md").exists());
    let _ = get(&format!("{}/-/ping", registry.url));
}

fn git_head(repo: &Repo) -> String {
    support::git(repo.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

#[test]
fn discord_rate_limits_are_waited_out_and_a_dead_webhook_does_not_hide_results() {
    let repo = Repo::new();
    repo.write(
        "p/package.json",
        r#"{"name":"com.test.ratelimit","displayName":"x"}"#,
    );
    let sha = repo.commit("feat: broken on purpose");
    // The package fails validation, so no registry is needed (nothing listens on port 9).
    let run_with = |discord: &FakeServer| {
        Cli::new("http://127.0.0.1:9")
            .discord(discord)
            .workspace(&repo, &sha)
            .run()
    };

    // Discord's 429 carries the wait in the body; the message is sent on the next attempt.
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let limited = FakeServer::start(move |_| {
        let mut n = counter.lock().unwrap();
        *n += 1;
        if *n == 1 {
            (
                429,
                br#"{"message":"You are being rate limited.","retry_after":0.05,"global":false}"#
                    .to_vec(),
            )
        } else {
            (200, br#"{"id":"1"}"#.to_vec())
        }
    });
    let run = run_with(&limited);
    assert_eq!(run.code, 1);
    assert_eq!(limited.requests().len(), 2);
    assert_eq!(run.audit["notification"], "sent");

    // A webhook that keeps failing: bounded attempts, reported, and the package result is unchanged.
    let dead = FakeServer::start(|_| (404, br#"{"message":"Unknown Webhook"}"#.to_vec()));
    let run = run_with(&dead);
    assert_eq!(run.code, 1);
    assert_eq!(dead.requests().len(), 1, "a 404 is not retried");
    assert_eq!(
        run.audit["notification"],
        "failed: the Discord webhook answered 404: Unknown Webhook"
    );
    assert!(run.summary.contains("Discord notification failed"));
    assert_eq!(run.audit["failed"][0]["stage"], "validate");
    assert!(!run.stderr.contains("secret-webhook-token"));
}

#[test]
fn people_are_told_what_changed_with_links() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.package("Packages/told", "com.test.told", "1.0.0");
    let first = repo.commit("feat: first");
    assert_eq!(Cli::publish(registry, &repo, &first).run().code, 0);
    repo.set_version("Packages/told", "com.test.told", "1.1.0");
    repo.write(
        "Packages/broken/package.json",
        r#"{"name":"com.test.told-broken","displayName":"Broken"}"#,
    );
    let sha = repo.commit("feat: a minor release");

    let discord = FakeServer::discord();
    let run = Cli::publish(registry, &repo, &sha)
        .discord(&discord)
        .args(&["--repository", "studio/told", "--branch", "main"])
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "studio/central")
        .env("GITHUB_RUN_ID", "4242")
        .run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    let run_url = "https://github.example/studio/central/actions/runs/4242";
    let commit_url = format!("https://github.example/studio/told/commit/{sha}");
    let changelog_url =
        format!("https://github.example/studio/told/blob/{sha}/Packages/told/CHANGELOG.md");
    let page = format!("{}/-/web/detail/com.test.told", registry.url);

    // Discord: the success embed says old → new and the kind of change, with every link.
    let messages = discord_messages(&discord);
    assert_eq!(messages.len(), 1);
    let ok = &messages[0]["embeds"][0];
    assert_eq!(
        ok["fields"][0]["name"],
        "com.test.told 1.0.0 → 1.1.0 · minor · latest"
    );
    let value = ok["fields"][0]["value"].as_str().unwrap();
    assert!(
        value.contains(&format!("[Registry]({page})"))
            && value.contains(&format!("[CHANGELOG]({changelog_url})")),
        "{value}"
    );
    let description = ok["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("[Commit]({commit_url})"))
            && description.contains(&format!("[Workflow run]({run_url})")),
        "{description}"
    );
    // The failure embed links the run.
    let bad = &messages[0]["embeds"][1];
    assert_eq!(bad["url"], run_url);
    assert!(bad["description"]
        .as_str()
        .unwrap()
        .contains(&format!("[Workflow run]({run_url})")));

    // The audit file: when, what came before, which dist-tag, which run.
    let stamp = run.audit["timestamp"].as_str().unwrap();
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && stamp.starts_with("20"),
        "{stamp}"
    );
    assert_eq!(run.audit["run_url"], run_url);
    let published = &run.audit["published"][0];
    assert_eq!(published["previous"], "1.0.0");
    assert_eq!(published["change"], "minor");
    assert_eq!(published["dist_tag"], "latest");

    // The job summary shows the same.
    for wanted in [
        "| ✅ published | com.test.told | 1.0.0 → 1.1.0 |".to_string(),
        "**minor**, dist-tag `latest`".to_string(),
        format!("[registry]({page})"),
        format!("[CHANGELOG]({changelog_url})"),
        format!("[workflow run]({run_url})"),
        format!("at {stamp}"),
    ] {
        assert!(
            run.summary.contains(&wanted),
            "{wanted} in\n{}",
            run.summary
        );
    }
}

#[test]
fn the_tarball_is_verified_through_the_configured_registry_url() {
    let registry = Verdaccio::shared();
    // Behind a reverse proxy, Verdaccio reports tarball URLs with its internal address.
    let internal = registry.url.clone();
    let proxy = FakeServer::proxy(registry, move |request, status, body| {
        if request.url.ends_with(".tgz") {
            return (status, body);
        }
        let text = String::from_utf8_lossy(&body).replace(&internal, "http://127.0.0.1:1");
        (status, text.into_bytes())
    });
    let repo = Repo::new();
    repo.package("p", "com.test.behind-proxy", "1.0.0");
    let sha = repo.commit("feat: behind a proxy");

    let run = Cli::new(&proxy.url)
        .token("the-proxy-adds-its-own")
        .workspace(&repo, &sha)
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.behind-proxy@1.0.0"]);
    // (The GUID index reads the other packages' tarballs through the proxy too.)
    let downloads: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.url.ends_with(".tgz") && r.url.contains("com.test.behind-proxy"))
        .map(|r| r.url)
        .collect();
    assert_eq!(
        downloads,
        ["/com.test.behind-proxy/-/com.test.behind-proxy-1.0.0.tgz"]
    );
}

#[test]
fn a_token_is_never_sent_over_plain_http_to_another_host() {
    let repo = Repo::new();
    repo.package("p", "com.test.cleartext", "1.0.0");
    let sha = repo.commit("feat: x");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upm-publisher"))
        .args(["publish", "--registry", "http://npm.studio.example:4873/"])
        .arg("--workspace")
        .arg(repo.path())
        .args(["--commit-sha", &sha])
        .env("NPM_TOKEN", "clear-text-secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plain http"), "{stderr}");
    assert!(!stderr.contains("clear-text-secret"), "{stderr}");
}

#[test]
fn every_read_after_the_upload_survives_a_transient_500() {
    // Verdaccio answers 500 to a read of a package document while it is creating it (see the README,
    // "Verdaccio settings that matter"): a concurrent run's first upload of the same package. Here every
    // read after our upload (the packument and the tarball for the verification, the packument for
    // `latest`) is answered 500 once, each on its first attempt, before the registry's real answer.
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.package("p", "com.test.reads-after-upload", "1.0.0");
    let sha = repo.commit("feat: reads after upload");
    let uploaded = Arc::new(Mutex::new(false));
    let failed_once: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let proxy = {
        let (uploaded, failed_once) = (uploaded.clone(), failed_once.clone());
        FakeServer::proxy(registry, move |request, status, body| {
            if request.method == "PUT" && status < 300 {
                *uploaded.lock().unwrap() = true;
                return (status, body);
            }
            let mut failed = failed_once.lock().unwrap();
            if request.method == "GET"
                && *uploaded.lock().unwrap()
                && !failed.contains(&request.url)
            {
                failed.push(request.url.clone());
                return (500, br#"{"error":"internal server error"}"#.to_vec());
            }
            (status, body)
        })
    };

    let run = Cli::new(&proxy.url)
        .token("the-proxy-adds-its-own")
        .workspace(&repo, &sha)
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.names("published"),
        ["com.test.reads-after-upload@1.0.0"]
    );
    assert_eq!(run.count("failed"), 0, "{}", run.audit);
    // The injection happened on every kind of read the publisher makes after an upload.
    let failed = failed_once.lock().unwrap().clone();
    assert!(
        failed.contains(&"/com.test.reads-after-upload".to_string())
            && failed.iter().any(|url| url.ends_with(".tgz")),
        "no 500 was injected on the packument and the tarball reads: {failed:?}"
    );
    // And the registry holds what the audit says was verified.
    let (shasum, _) = registry.stored("com.test.reads-after-upload", "1.0.0");
    assert_eq!(run.audit["published"][0]["shasum"], shasum.as_str());
    assert_eq!(
        registry.packument("com.test.reads-after-upload")["dist-tags"]["latest"],
        "1.0.0"
    );
}

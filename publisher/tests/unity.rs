//! End-to-end, on real-shaped Unity package trees (tests/fixtures/unity: Runtime/ and Editor/ with
//! .asmdef and .cs files, .meta files with GUIDs, Samples~, Documentation~) against a real Verdaccio:
//! what Unity would choke on fails the package before anything is uploaded, and the packages of a run are
//! published dependencies first.

mod support;

use serde_json::{json, Value};
use support::{tarball_paths, Cli, FakeServer, Repo, Run, Verdaccio};

fn failed<'a>(run: &'a Run, name: &str) -> &'a Value {
    run.audit["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} did not fail: {}", run.audit))
}

/// `name` 1.0.0 at `dir`: the complete Unity fixture (every .meta, asmdefs, samples), with these
/// package.json fields added.
fn complete(repo: &Repo, dir: &str, name: &str, fields: Value) {
    repo.fixture("unity/complete", dir, name, "1.0.0", fields);
}

fn problem_fields(failed: &Value) -> Vec<String> {
    failed["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_complete_unity_package_ships_every_meta() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    complete(
        &repo,
        "Packages/com.test.complete",
        "com.test.complete",
        json!({}),
    );
    let sha = repo.commit("feat: complete package");

    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.complete@1.0.0"]);
    assert!(
        run.audit["published"][0].get("warnings").is_none(),
        "{}",
        run.audit
    );
    let (_, tarball) = registry.stored("com.test.complete", "1.0.0");
    let paths = tarball_paths(&tarball);
    for wanted in [
        "package/package.json.meta",
        "package/README.md.meta",
        "package/Runtime.meta",
        "package/Runtime/Internal.meta",
        "package/Runtime/Internal/Pool.cs.meta",
        "package/Editor/Fixture.Complete.Editor.asmdef.meta",
        "package/Samples~/Basic/BasicSample.cs",
        "package/Documentation~/index.md",
    ] {
        assert!(paths.iter().any(|p| p == wanted), "{wanted} in {paths:?}");
    }
    // Tests/ and its .meta are kept out by the fixture's .npmignore.
    assert!(!paths.iter().any(|p| p.contains("Tests")), "{paths:?}");
}

/// A generated file in the broken fixture whose path is 154 characters long.
const LONG_PATH: &str = "Editor/Icons/GeneratedLocalizationTableBindingsForTheMainMenuScreenAndEverySubmenuOfTheSettingsPanelIncludingAccessibilityOptionsAndControllerRemapping.cs";

#[test]
fn what_unity_would_choke_on_fails_the_package_with_each_path() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.fixture(
        "unity/broken",
        "Packages/com.test.broken-assets",
        "com.test.broken-assets",
        "1.0.0",
        json!({}),
    );
    complete(
        &repo,
        "Packages/com.test.fine-beside",
        "com.test.fine-beside",
        json!({}),
    );
    let sha = repo.commit("feat: one broken, one fine");

    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.fine-beside@1.0.0"]);
    let broken = failed(&run, "com.test.broken-assets");
    assert_eq!(broken["stage"], "validate");
    assert_eq!(
        problem_fields(broken),
        [
            "Runtime/",
            "Runtime/NoMeta.cs",
            "Editor/SpinnerInspector.cs.meta",
            "Runtime/Spinner.cs.meta",
            "Editor/Deleted.cs.meta",
            "Editor/Icons/Logo.png",
            LONG_PATH,
            &format!("{LONG_PATH}.meta"),
            "samples[0].path"
        ],
        "{broken}"
    );
    let reason = broken["reason"].as_str().unwrap();
    assert!(
        reason.contains("`files` lists \"Runtime\" but not \"Runtime.meta\""),
        "{reason}"
    );
    assert!(
        reason.contains("is also the GUID of Editor/Copied.cs.meta"),
        "{reason}"
    );
    assert!(reason.contains("no `guid:` line"), "{reason}");
    assert!(reason.contains("\"Samples~/Gone\""), "{reason}");
    // The orphan .meta, the Git LFS pointer and the long paths fail too, each with its path.
    for needle in [
        "`Editor/Deleted.cs.meta` has no Editor/Deleted.cs beside it",
        "`Editor/Icons/Logo.png` is a Git LFS pointer",
        &format!("{LONG_PATH}` is 154 characters long"),
    ] {
        assert!(reason.contains(needle), "{needle} in {reason}");
    }
    // Nothing was uploaded for it.
    assert_eq!(
        registry.version_status("com.test.broken-assets", "1.0.0"),
        404
    );
    assert!(
        run.summary
            .contains("`Runtime/NoMeta.cs` has no Runtime/NoMeta.cs.meta"),
        "{}",
        run.summary
    );
}

#[test]
fn a_guid_shared_by_two_packages_of_a_run_fails_both() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    // A package copied to start another: same GUIDs in both.
    for name in ["com.test.guid-original", "com.test.guid-copy"] {
        repo.fixture_keeping_guids(
            "unity/complete",
            &format!("Packages/{name}"),
            name,
            "1.0.0",
            json!({}),
        );
    }
    complete(
        &repo,
        "Packages/com.test.guid-own",
        "com.test.guid-own",
        json!({}),
    );
    let sha = repo.commit("feat: copy a package");

    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.guid-own@1.0.0"]);
    for (name, other) in [
        ("com.test.guid-original", "com.test.guid-copy"),
        ("com.test.guid-copy", "com.test.guid-original"),
    ] {
        let f = failed(&run, name);
        let reason = f["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!(
                "is also used by {other}@1.0.0 Runtime/Spinner.cs.meta"
            )),
            "{reason}"
        );
        assert_eq!(registry.version_status(name, "1.0.0"), 404);
    }
}

/// The second at which Verdaccio stored `name@version` (its packument's `time`).
fn stored_at(registry: &Verdaccio, name: &str, version: &str) -> String {
    registry.packument(name)["time"][version]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn dependencies_are_published_first() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    // Discovery order (by path) is the reverse of the dependency order.
    complete(
        &repo,
        "Packages/a-app",
        "com.test.order-app",
        json!({"dependencies": {
            "com.test.order-ui": "1.0.0",
            "com.test.order-core": "1.0.0",
            "com.unity.textmeshpro": "3.0.6",
            "com.cysharp.unitask": "2.5.10"
        }}),
    );
    complete(
        &repo,
        "Packages/b-ui",
        "com.test.order-ui",
        json!({"dependencies": {"com.test.order-core": "1.0.0", "com.unity.ugui": "1.0.0"}}),
    );
    complete(&repo, "Packages/c-core", "com.test.order-core", json!({}));
    let sha = repo.commit("feat: three layers");

    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("published"), 3);
    let core = stored_at(registry, "com.test.order-core", "1.0.0");
    let ui = stored_at(registry, "com.test.order-ui", "1.0.0");
    let app = stored_at(registry, "com.test.order-app", "1.0.0");
    assert!(core < ui && ui < app, "core {core}, ui {ui}, app {app}");
    // Unity's own packages and other scopes were not looked up on our registry.
    assert!(
        !run.stderr.contains("textmeshpro") && !run.stderr.contains("unitask"),
        "{}",
        run.stderr
    );
    let position = |needle: &str| run.stderr.find(needle).unwrap();
    assert!(
        position("publishing com.test.order-core@1.0.0")
            < position("publishing com.test.order-ui@1.0.0")
    );
}

#[test]
fn a_dependency_cycle_fails_its_packages_and_names_the_cycle() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    complete(
        &repo,
        "Packages/ping",
        "com.test.cycle-ping",
        json!({"dependencies": {"com.test.cycle-pong": "1.0.0"}}),
    );
    complete(
        &repo,
        "Packages/pong",
        "com.test.cycle-pong",
        json!({"dependencies": {"com.test.cycle-ping": "1.0.0"}}),
    );
    complete(&repo, "Packages/free", "com.test.cycle-free", json!({}));
    let sha = repo.commit("feat: a cycle");

    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.cycle-free@1.0.0"]);
    let ping = failed(&run, "com.test.cycle-ping");
    assert_eq!(
        ping["reason"],
        "dependency cycle among the packages of this run: \
         com.test.cycle-ping → com.test.cycle-pong → com.test.cycle-ping"
    );
    assert!(failed(&run, "com.test.cycle-pong")["reason"]
        .as_str()
        .unwrap()
        .contains("com.test.cycle-pong → com.test.cycle-ping → com.test.cycle-pong"));
    assert_eq!(registry.version_status("com.test.cycle-ping", "1.0.0"), 404);
}

#[test]
fn a_missing_studio_dependency_fails_the_dependent() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    // Already on the registry from an earlier run: a fine dependency.
    complete(&repo, "Packages/base", "com.test.dep-base", json!({}));
    let first = repo.commit("feat: base");
    assert_eq!(
        Cli::publish(registry, &repo, &first)
            .args(&["--package-paths", "Packages/base"])
            .run()
            .code,
        0
    );
    complete(
        &repo,
        "Packages/user",
        "com.test.dep-user",
        json!({"dependencies": {
            "com.test.dep-base": "1.0.0",
            "com.test.dep-never-published": "2.0.0",
            "com.unity.textmeshpro": "3.0.6"
        }}),
    );
    complete(
        &repo,
        "Packages/fine",
        "com.test.dep-fine",
        json!({"dependencies": {"com.test.dep-base": "1.0.0", "com.unity.ugui": "1.0.0"}}),
    );
    let sha = repo.commit("feat: users");

    let run = Cli::publish(registry, &repo, &sha)
        .args(&["--package-paths", "Packages/user,Packages/fine"])
        .run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.dep-fine@1.0.0"]);
    let user = failed(&run, "com.test.dep-user");
    assert_eq!(
        problem_fields(user),
        ["dependencies.com.test.dep-never-published"]
    );
    assert!(
        user["reason"]
            .as_str()
            .unwrap()
            .contains("com.test.dep-never-published@2.0.0 is neither on the registry nor published by this run"),
        "{user}"
    );
    assert_eq!(registry.version_status("com.test.dep-user", "1.0.0"), 404);
}

#[test]
fn a_dependent_is_not_published_when_its_dependency_fails() {
    let registry = Verdaccio::shared();
    // The registry refuses uploads of one package (a permission rule, a full disk…).
    let proxy = FakeServer::proxy(registry, |request, status, body| {
        if request.method == "PUT" && request.url.contains("com.test.refused-lib") {
            (
                403,
                br#"{"error":"not allowed to publish package"}"#.to_vec(),
            )
        } else {
            (status, body)
        }
    });
    let repo = Repo::new();
    complete(&repo, "Packages/lib", "com.test.refused-lib", json!({}));
    complete(
        &repo,
        "Packages/app",
        "com.test.refused-app",
        json!({"dependencies": {"com.test.refused-lib": "1.0.0"}}),
    );
    // A dependency that fails validation is not published by the run either.
    repo.fixture(
        "unity/broken",
        "Packages/broken-lib",
        "com.test.refused-broken",
        "1.0.0",
        json!({}),
    );
    complete(
        &repo,
        "Packages/broken-user",
        "com.test.refused-user",
        json!({"dependencies": {"com.test.refused-broken": "1.0.0"}}),
    );
    let sha = repo.commit("feat: lib and app");

    let run = Cli::new(&proxy.url)
        .token("proxy-holds-the-real-token")
        .workspace(&repo, &sha)
        .run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.count("published"), 0, "{}", run.audit);
    assert_eq!(failed(&run, "com.test.refused-lib")["stage"], "publish");
    let app = failed(&run, "com.test.refused-app");
    assert!(
        app["reason"]
            .as_str()
            .unwrap()
            .starts_with("not published because its dependency com.test.refused-lib@1.0.0 failed: the registry refused the upload (403)"),
        "{app}"
    );
    let user = failed(&run, "com.test.refused-user");
    assert!(
        user["reason"].as_str().unwrap().contains(
            "com.test.refused-broken@1.0.0 is neither on the registry nor published by this run"
        ),
        "{user}"
    );
    // The app's upload was never attempted.
    assert!(!proxy
        .requests()
        .iter()
        .any(|r| r.method == "PUT" && r.url.contains("com.test.refused-app")));
}

/// Writes `files` under `dir` for package `name`, each file and every folder on the way with a .meta
/// (GUIDs derived from the package name), except the `children` of plugin folders, written bare as
/// Unity's own packages ship them.
fn plugin_package(
    repo: &Repo,
    dir: &str,
    name: &str,
    unity: &str,
    files: &[&str],
    children: &[&str],
) {
    repo.write(
        &format!("{dir}/package.json"),
        &json!({"name": name, "version": "1.0.0", "displayName": name, "unity": unity}).to_string(),
    );
    let mut metas = std::collections::BTreeSet::new();
    metas.insert("package.json".to_string());
    for file in files.iter().chain(children) {
        let with_meta = files.contains(file);
        if with_meta {
            repo.write(&format!("{dir}/{file}"), &format!("// {file}\n"));
            metas.insert(file.to_string());
        } else {
            repo.write(&format!("{dir}/{file}"), &format!("binary of {file}\n"));
        }
        let mut rest = *file;
        while let Some((parent, _)) = rest.rsplit_once('/') {
            if with_meta
                || !parent.contains(".framework/")
                    && !parent.contains(".bundle/")
                    && !parent.contains(".androidlib/")
            {
                metas.insert(parent.to_string());
            }
            rest = parent;
        }
    }
    for asset in metas {
        if !asset.contains(".framework/")
            && !asset.contains(".bundle/")
            && !asset.contains(".androidlib/")
        {
            repo.write(&format!("{dir}/{asset}.meta"), &support::meta(name, &asset));
        }
    }
}

#[test]
fn plugin_folders_shaped_like_unitys_packages_publish() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    // com.unity.webrtc 3.0.0: an iOS framework and a macOS bundle.
    plugin_package(
        &repo,
        "Packages/webrtc",
        "com.test.plugin-webrtc",
        "2020.3",
        &[
            "Runtime/Scripts/WebRTC.cs",
            "Runtime/Plugins/x86_64/webrtc.dll",
        ],
        &[
            "Runtime/Plugins/iOS/webrtc.framework/Info.plist",
            "Runtime/Plugins/iOS/webrtc.framework/webrtc",
            "Runtime/Plugins/iOS/webrtc.framework/Headers/WebRTC.h",
            "Runtime/Plugins/macOS/libwebrtc.bundle/Contents/Info.plist",
            "Runtime/Plugins/macOS/libwebrtc.bundle/Contents/MacOS/libwebrtc",
        ],
    );
    // com.unity.mobile.notifications: an Android library project.
    plugin_package(
        &repo,
        "Packages/notifications",
        "com.test.plugin-notifications",
        "2021.3",
        &["Runtime/Android/AndroidNotificationCenter.cs"],
        &[
            "Runtime/Android/Plugins/mobilenotifications.androidlib/build.gradle",
            "Runtime/Android/Plugins/mobilenotifications.androidlib/src/main/AndroidManifest.xml",
        ],
    );
    let sha = repo.commit("feat: native plugins");

    let run = Cli::publish(registry, &repo, &sha).run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("published"), 2, "{}", run.audit);
    let (_, tarball) = registry.stored("com.test.plugin-webrtc", "1.0.0");
    let paths = tarball_paths(&tarball);
    for wanted in [
        "package/Runtime/Plugins/iOS/webrtc.framework.meta",
        "package/Runtime/Plugins/iOS/webrtc.framework/Info.plist",
        "package/Runtime/Plugins/macOS/libwebrtc.bundle/Contents/MacOS/libwebrtc",
    ] {
        assert!(paths.iter().any(|p| p == wanted), "{wanted} in {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.ends_with("Info.plist.meta")),
        "{paths:?}"
    );
}

#[test]
fn a_guid_already_on_the_registry_fails_a_later_package_naming_it() {
    let registry = Verdaccio::shared();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("guids.json");
    let cache = cache.to_str().unwrap();
    let repo = Repo::new();
    complete(&repo, "Packages/first", "com.test.studio-first", json!({}));
    let monday = repo.commit("feat: first package");
    let first = Cli::publish(registry, &repo, &monday)
        .args(&["--package-paths", "Packages/first", "--guid-cache", cache])
        .run();
    assert_eq!(first.code, 0, "{}", first.stderr);

    // Days later, another package starts as a copy of the first: same GUIDs (the fixture's GUIDs are
    // derived from the name given to `fixture`, here the first package's).
    repo.fixture(
        "unity/complete",
        "Packages/second",
        "com.test.studio-first",
        "1.0.0",
        json!({"name": "com.test.studio-second"}),
    );
    let friday = repo.commit("feat: second package");
    let second = Cli::publish(registry, &repo, &friday)
        .args(&["--package-paths", "Packages/second", "--guid-cache", cache])
        .run();

    assert_eq!(second.code, 1, "{}", second.stderr);
    assert_eq!(second.count("published"), 0, "{}", second.stderr);
    let f = failed(&second, "com.test.studio-second");
    assert_eq!(f["stage"], "validate");
    assert!(
        problem_fields(f).contains(&"Runtime/Spinner.cs.meta".to_string()),
        "{f}"
    );
    let reason = f["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "is already used by com.test.studio-first@1.0.0 Runtime/Spinner.cs.meta on the registry"
        ),
        "{reason}"
    );
    assert_eq!(
        registry.version_status("com.test.studio-second", "1.0.0"),
        404
    );
    // The cache holds what the runs read, by name@version.
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(cache).unwrap()).unwrap();
    assert!(
        cached["entries"]["com.test.studio-first@1.0.0"].is_object(),
        "{cached}"
    );

    // The first package moves on: its next version keeps its own GUIDs, which is no clash.
    repo.set_version("Packages/first", "com.test.studio-first", "1.1.0");
    let next_week = repo.commit("feat: first 1.1.0");
    let third = Cli::publish(registry, &repo, &next_week)
        .args(&["--package-paths", "Packages/first", "--guid-cache", cache])
        .run();
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.names("published"), ["com.test.studio-first@1.1.0"]);
}

#[test]
fn a_version_unity_cannot_list_is_stored_but_not_published() {
    let registry = Verdaccio::shared();
    // The registry's search page leaves the package out, as Verdaccio's listing bugs have.
    let proxy = FakeServer::proxy(registry, |request, status, body| {
        if request.url.starts_with("/-/v1/search?text=com.test&") {
            let mut page: Value = serde_json::from_slice(&body).unwrap();
            page["objects"]
                .as_array_mut()
                .unwrap()
                .retain(|o| o["package"]["name"] != "com.test.unseen");
            return (status, page.to_string().into_bytes());
        }
        (status, body)
    });
    let discord = FakeServer::discord();
    let repo = Repo::new();
    complete(&repo, "Packages/unseen", "com.test.unseen", json!({}));
    complete(&repo, "Packages/seen", "com.test.seen", json!({}));
    let sha = repo.commit("feat: two packages");

    let run = Cli::new(&proxy.url)
        .token("proxy-holds-the-real-token")
        .discord(&discord)
        .workspace(&repo, &sha)
        .run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.seen@1.0.0"]);
    let unseen = failed(&run, "com.test.unseen");
    assert_eq!(unseen["stage"], "visible");
    let expected = format!(
        "stored, but not visible to Unity: GET {}/-/v1/search?text=com.test&from=0&size=250 does not \
         list com.test.unseen",
        proxy.url
    );
    assert!(
        unseen["reason"].as_str().unwrap().starts_with(&expected),
        "{unseen}"
    );
    // It is on the registry (a later run skips it): only Unity cannot find it.
    assert_eq!(registry.version_status("com.test.unseen", "1.0.0"), 200);
    // Unity's own calls were made, as Unity makes them.
    let requests = proxy.requests();
    assert!(requests
        .iter()
        .any(|r| r.url == "/-/v1/search?text=com.test&from=0&size=250"));
    let posted: String = discord
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        posted.contains("stored, but not visible to Unity"),
        "{posted}"
    );
}

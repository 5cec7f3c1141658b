//! `upm probe` end to end against a real Verdaccio on 127.0.0.1: packages published for real (one
//! intact, one whose stored tarball does not match the shasum its metadata claims, one whose metadata
//! lost the `unity` field), a proxy that answers Unity's search as HTML or fails once, and a registry
//! that is down. `cargo test -p upm-ops --test probe -- --nocapture` prints real output.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::{upm, Publish, Server, Verdaccio};

#[track_caller]
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// The table line of `name`, runs of spaces squashed.
#[track_caller]
fn line(stdout: &str, name: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{stdout}"));
    line.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// com.good.a (two versions), com.good.b, and two broken packages in scope com.bad.
fn registry() -> (Verdaccio, String) {
    let registry = Verdaccio::start();
    registry.publish_good("com.good.a", "1.0.0");
    registry.publish_good("com.good.a", "1.1.0");
    registry.publish_good("com.good.b", "2.0.0");
    // The stored tarball no longer matches the shasum the metadata claims (Verdaccio refuses a publish
    // whose shasum is wrong, so the bytes are changed on its disk afterwards, as a storage fault would).
    let tarball = registry.publish_good("com.bad.shasum", "1.0.0");
    registry.corrupt_stored_tarball("com.bad.shasum", "1.0.0");
    // The metadata lost the `unity` field the package itself has.
    registry.publish(Publish {
        name: "com.bad.fields",
        version: "1.0.0",
        edit: &|v| {
            v.remove("unity");
        },
    });
    (registry, support::sha1_hex(&tarball))
}

#[test]
fn visible_packages_pass_and_broken_ones_are_named() {
    let (registry, shasum_claimed) = registry();
    let discord = Server::start(|_| (204, "text/plain".into(), Vec::new()));
    let webhook = format!("{}/api/webhooks/1/secret-webhook-token", discord.url);
    let env = [
        ("NPM_TOKEN", registry.token.as_str()),
        ("DISCORD_WEBHOOK_URL", webhook.as_str()),
    ];

    // One good scope: everything visible, exit 0, and --alert posts nothing.
    let good = upm(
        &[
            "probe",
            "--registry",
            &registry.url,
            "--scope",
            "com.good",
            "--alert",
        ],
        &env,
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert_eq!(line(&good.stdout, "com.good.a"), "com.good.a 1.1.0 ok");
    assert_eq!(line(&good.stdout, "com.good.b"), "com.good.b 2.0.0 ok");
    assert!(!good.stdout.contains("com.bad"), "another scope was probed");
    assert_has(&good.stdout, "probe: 2 packages, 0 not visible to Unity (");
    // Unity's listing call (1), then packument and tarball per package (4).
    assert_has(&good.stdout, "(5 requests in ");
    assert!(
        discord.received().is_empty(),
        "no alert when all are visible"
    );

    // No scope: every package the registry lists, its scopes probed with Unity's call.
    let all = upm(&["probe", "--registry", &registry.url, "--alert"], &env);
    assert_eq!(all.code, 1, "{}", all.stderr);
    assert_eq!(line(&all.stdout, "com.good.a"), "com.good.a 1.1.0 ok");
    let shasum = line(&all.stdout, "com.bad.shasum");
    assert!(
        shasum.starts_with(&format!(
            "com.bad.shasum 1.0.0 FAIL tarball GET {}/com.bad.shasum/-/com.bad.shasum-1.0.0.tgz serves bytes with sha1 ",
            registry.url
        )),
        "{shasum}"
    );
    assert!(
        shasum.ends_with(&format!(
            "but the packument's dist.shasum is {shasum_claimed}: Unity refuses the download"
        )),
        "{shasum}"
    );
    assert_eq!(
        line(&all.stdout, "com.bad.fields"),
        format!(
            "com.bad.fields 1.0.0 FAIL packument GET {}/com.bad.fields serves 1.0.0 with `unity` missing instead of \"2022.3\"",
            registry.url
        )
    );
    // The empty listing (1), one call per scope (2), two reads per package (8).
    assert_has(
        &all.stdout,
        "probe: 4 packages, 2 not visible to Unity (11 requests in ",
    );
    assert_has(&all.stdout, "alert: sent");
    let posts = discord.received();
    assert_eq!(posts.len(), 1, "one alert");
    let alert: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    let embed = &alert["embeds"][0];
    assert_eq!(
        embed["title"],
        format!("2 of 4 packages not visible to Unity ({})", registry.url)
    );
    let description = embed["description"].as_str().unwrap();
    assert_has(description, "• `com.bad.fields`@1.0.0 (packument): GET ");
    assert_has(description, "• `com.bad.shasum`@1.0.0 (tarball): GET ");
    assert!(!description.contains("com.good"), "{description}");
    for run in [&good, &all] {
        assert!(!run.stdout.contains(&registry.token) && !run.stderr.contains(&registry.token));
        assert!(!run.stdout.contains("secret-webhook-token"));
    }

    // --json for machines: the same verdicts.
    let json = upm(&["probe", "--registry", &registry.url, "--json"], &[]);
    assert_eq!(json.code, 1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["not_visible"], 2);
    let packages = report["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 4);
    let fields = packages
        .iter()
        .find(|p| p["name"] == "com.bad.fields")
        .unwrap();
    assert_eq!(fields["visible"], false);
    assert_eq!(fields["stage"], "packument");
    assert_eq!(report["scopes"][0]["scope"], "com.bad");
    assert_eq!(
        report["scopes"][1]["url"],
        format!("{}/-/v1/search?text=com.good&from=0&size=250", registry.url)
    );
    assert_eq!(report["scopes"][1]["entries"], 2);
}

#[test]
fn a_search_served_as_html_and_a_transient_500() {
    let registry = Verdaccio::start();
    registry.publish_good("com.good.a", "1.0.0");
    registry.publish_good("com.good.b", "1.0.0");
    // Unity's search for com.good answered as a web page (a misconfigured reverse proxy's error page).
    let proxy = Server::proxy(&registry.url, move |request, reply| {
        if request.url.starts_with("/-/v1/search?text=com.good&") {
            return (
                200,
                "text/html; charset=utf-8".into(),
                b"<html></html>".to_vec(),
            );
        }
        reply
    });
    let run = upm(
        &["probe", "--registry", &proxy.url],
        &[("NPM_TOKEN", "read-token-xyz")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let why = format!(
        "FAIL listing GET {}/-/v1/search?text=com.good&from=0&size=250 answered with content type text/html; charset=utf-8: Unity needs application/json and lists nothing",
        proxy.url
    );
    assert_eq!(
        line(&run.stdout, "com.good.a"),
        format!("com.good.a - {why}")
    );
    assert_eq!(
        line(&run.stdout, "com.good.b"),
        format!("com.good.b - {why}")
    );
    assert_has(&run.stdout, "probe: 2 packages, 2 not visible to Unity");
    assert!(!run.stdout.contains("read-token-xyz") && !run.stderr.contains("read-token-xyz"));

    // Named scope: the scope itself is what Unity cannot list.
    let scoped = upm(
        &["probe", "--registry", &proxy.url, "--scope", "com.good"],
        &[],
    );
    assert_eq!(scoped.code, 1);
    assert_eq!(
        line(&scoped.stdout, "com.good"),
        format!("com.good (every package of the scope) - {why}")
    );
    assert_has(&scoped.stdout, "probe: 1 packages, 1 not visible to Unity");

    // The first packument read of com.good.b answers 500 (Verdaccio's answer while it creates a
    // package): retried, and com.good.b is ok. com.good.a's tarball is served from another origin (a
    // CDN): the read token is not sent there.
    let cdn = Server::proxy(&registry.url, |_, reply| reply);
    let fixed = Server::proxy(&registry.url, {
        let failures = Arc::new(AtomicUsize::new(0));
        let (upstream, cdn) = (registry.url.clone(), cdn.url.clone());
        move |request, (status, content_type, body)| {
            if request.url == "/com.good.b" && failures.fetch_add(1, Ordering::SeqCst) == 0 {
                return (500, "application/json".into(), b"{}".to_vec());
            }
            if request.url == "/com.good.a" {
                let text = String::from_utf8(body).unwrap().replace(&upstream, &cdn);
                return (status, content_type, text.into_bytes());
            }
            (status, content_type, body)
        }
    });
    let retried = upm(
        &["probe", "--registry", &fixed.url, "--scope", "com.good"],
        &[("NPM_TOKEN", "read-token-xyz")],
    );
    assert_eq!(retried.code, 0, "{}", retried.stdout);
    assert_eq!(line(&retried.stdout, "com.good.b"), "com.good.b 1.0.0 ok");
    let received = fixed.received();
    assert_eq!(
        received.iter().filter(|r| r.url == "/com.good.b").count(),
        2,
        "one retry"
    );
    assert_eq!(
        received[0].url, "/-/v1/search?text=com.good&from=0&size=250",
        "Unity's own call first"
    );
    assert!(received
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer read-token-xyz")));
    let downloads = cdn.received();
    assert_eq!(downloads.len(), 1, "com.good.a's tarball came from the CDN");
    assert_eq!(downloads[0].url, "/com.good.a/-/com.good.a-1.0.0.tgz");
    assert_eq!(
        downloads[0].authorization, None,
        "the token stays with the registry"
    );
}

#[test]
fn a_registry_that_is_down_is_one_message() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let run = upm(&["probe", "--registry", &url, "--scope", "com.good"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "", "no table, no line per package");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_has(
        &run.stderr,
        &format!("upm probe: the registry {url} does not answer, so nothing was probed: GET {url}/-/v1/search?text=com.good&from=0&size=250: no answer"),
    );

    let none = upm(&["probe"], &[]);
    assert_eq!(none.code, 2);
    assert_has(
        &none.stderr,
        "no registry: give --registry URL or set UPM_REGISTRY",
    );
    let scopes = upm(
        &["probe", "--registry", &url],
        &[("UPM_SCOPES", "com.a, com.b")],
    );
    assert_eq!(scopes.code, 2);
    assert_has(&scopes.stderr, "text=com.a&from=0");
}

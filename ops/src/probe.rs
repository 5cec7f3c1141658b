//! The decisions of `upm probe`, without I/O: can Unity's Package Manager see each package of the studio
//! registry? Unity lists a scoped registry with one call per scope,
//! `GET /-/v1/search?text=<scope>&from=0&size=250` (the `/-/all` fallback only on a 404), needs a JSON
//! content type there, reads the packument's `latest` version and downloads its tarball
//! (`upm_unity::search`, `upm_unity::packument`, `upm_unity::tarball`). Unity reads only that first page:
//! a package past the 250th entry of its scope's listing is invisible in the editor (openupm/openupm#4338;
//! go-gitea/gitea#20280 shows Unity's exact call).
//!
//! The per-package check takes its HTTP reads as a function (`fetch`), so the whole verdict is tested
//! here with canned answers, and run for real by `cmd_probe`.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use upm_unity::search::{self, Listed, PAGE_SIZE};
use upm_unity::{packument, tarball};

/// `--max-packages` by default: the probe stays bounded on a registry that grew.
pub const DEFAULT_MAX_PACKAGES: usize = 500;

/// One HTTP answer as the probe judges it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The naming scope of a package (`com.studio` for `com.studio.tools.core`): the publisher's rule.
pub use upm_unity::search::scope_of;

/// Does a scoped registry entry with `scope` route `name` to the studio registry? Unity matches a scope
/// as the whole name or a prefix ending at a `.` (or `/` for an npm `@scope`).
pub fn in_scope(name: &str, scope: &str) -> bool {
    name == scope
        || name
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('/'))
}

/// The scopes of a set of names, sorted, each once.
pub fn scopes_of<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .map(|n| scope_of(n).to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A listing answer as Unity takes it: status 200, a JSON content type, then its packages (`all` for the
/// `/-/all` shape). The reason names the URL and says what Unity does about it.
pub fn read_listing(url: &str, answer: &Answer, all: bool) -> Result<Vec<Listed>, String> {
    if answer.status != 200 {
        return Err(format!(
            "GET {url} answered {}: Unity lists nothing from it",
            answer.status
        ));
    }
    if !search::is_json(answer.content_type.as_deref()) {
        return Err(format!(
            "GET {url} answered with content type {}: Unity needs application/json and lists nothing",
            answer.content_type.as_deref().unwrap_or("(none)")
        ));
    }
    let parsed = if all {
        search::parse_all(&answer.body)
    } else {
        search::parse_search(&answer.body)
    };
    parsed.map_err(|e| format!("GET {url}: {e}"))
}

/// The warning for a scope whose first page is full: Unity reads that page only, so any package past it
/// is invisible (and the next one published will be).
pub fn page_warning(scope: &str, url: &str, entries: usize) -> Option<String> {
    (entries >= PAGE_SIZE).then(|| {
        format!(
            "warning: scope {scope}: GET {url} lists {entries} entries, a full page; Unity reads only this \
             first page of {PAGE_SIZE} (it never asks for from=250), so packages past it are invisible \
             to Unity; split the scope into narrower scoped-registry scopes"
        )
    })
}

/// Where a package's check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Listing,
    Packument,
    Tarball,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Listing => "listing",
            Stage::Packument => "packument",
            Stage::Tarball => "tarball",
        }
    }
}

/// One package's verdict: visible, or the endpoint that failed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub name: String,
    /// The packument's `dist-tags.latest`, once read.
    pub version: Option<String>,
    pub visible: bool,
    pub stage: Option<Stage>,
    pub reason: Option<String>,
}

impl Verdict {
    fn fail(name: &str, version: Option<&str>, stage: Stage, reason: String) -> Verdict {
        Verdict {
            name: name.to_string(),
            version: version.map(str::to_string),
            visible: false,
            stage: Some(stage),
            reason: Some(reason),
        }
    }
}

/// The packument URL of `name` (a scoped name keeps its `@` and encodes the `/`, as npm does).
pub fn packument_url(base: &str, name: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        name.replace('/', "%2f")
    )
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Everything Unity needs to see `name`, in Unity's order: its scope's listing (`listing`: the URL and
/// what it listed, or why it could not be read), the packument's `latest` with the Unity fields the
/// tarball's own package.json has, and the tarball (status 200, the sha1 `dist.shasum` claims, a
/// `package/package.json` naming the same name@version). `fetch` makes one GET.
pub fn check_package(
    base: &str,
    name: &str,
    listing: (&str, Result<&[Listed], &str>),
    mut fetch: impl FnMut(&str) -> Result<Answer, String>,
) -> Verdict {
    let (listing_url, listed) = listing;
    let listed = match listed {
        Ok(listed) => listed,
        Err(reason) => return Verdict::fail(name, None, Stage::Listing, reason.to_string()),
    };
    let listing_where = format!("GET {listing_url}");
    if let Err(reason) = search::judge_listing(&listing_where, listed, name, None) {
        return Verdict::fail(name, None, Stage::Listing, reason);
    }

    let url = packument_url(base, name);
    let fail = |version: Option<&str>, stage, reason| Verdict::fail(name, version, stage, reason);
    let answer = match fetch(&url) {
        Ok(answer) => answer,
        Err(e) => return fail(None, Stage::Packument, e),
    };
    if answer.status != 200 {
        return fail(
            None,
            Stage::Packument,
            format!(
                "GET {url} answered {}: Unity cannot read the package's versions",
                answer.status
            ),
        );
    }
    let doc: Value = match serde_json::from_slice(&answer.body) {
        Ok(doc) => doc,
        Err(e) => return fail(None, Stage::Packument, format!("GET {url}: not JSON: {e}")),
    };
    let Some(latest) = doc
        .get("dist-tags")
        .and_then(|t| t.get("latest"))
        .and_then(Value::as_str)
    else {
        return fail(
            None,
            Stage::Packument,
            format!("GET {url} has no dist-tags.latest: Unity shows no version to install"),
        );
    };
    let latest = latest.to_string();
    let version = Some(latest.as_str());
    if let Err(reason) = search::judge_listing(&listing_where, listed, name, version) {
        return fail(version, Stage::Listing, reason);
    }
    let dist = doc
        .get("versions")
        .and_then(|v| v.get(&latest))
        .and_then(|v| v.get("dist"));
    let tarball_url = dist
        .and_then(|d| d.get("tarball"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let shasum = dist.and_then(|d| d.get("shasum")).and_then(Value::as_str);
    let (Some(tarball_url), Some(shasum)) = (tarball_url, shasum) else {
        return fail(
            version,
            Stage::Packument,
            format!(
                "GET {url} serves {latest} without `dist.tarball` and `dist.shasum`: Unity cannot download it"
            ),
        );
    };

    let answer = match fetch(tarball_url) {
        Ok(answer) => answer,
        Err(e) => return fail(version, Stage::Tarball, e),
    };
    if answer.status != 200 {
        return fail(
            version,
            Stage::Tarball,
            format!(
                "GET {tarball_url} answered {}: Unity cannot download {name}@{latest}",
                answer.status
            ),
        );
    }
    let got = sha1_hex(&answer.body);
    if !got.eq_ignore_ascii_case(shasum) {
        return fail(
            version,
            Stage::Tarball,
            format!(
                "GET {tarball_url} serves bytes with sha1 {got}, but the packument's dist.shasum is \
                 {shasum}: Unity refuses the download"
            ),
        );
    }
    let manifest = match tarball::files(&answer.body)
        .map_err(|e| format!("not a package tarball: {e}"))
        .and_then(|files| {
            let bytes = files
                .get("package.json")
                .ok_or("no package/package.json in it")?;
            let text = String::from_utf8_lossy(bytes);
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err("its package/package.json is not a JSON object".to_string()),
            }
        }) {
        Ok(manifest) => manifest,
        Err(e) => return fail(version, Stage::Tarball, format!("GET {tarball_url}: {e}")),
    };
    let field = |k: &str| manifest.get(k).and_then(Value::as_str).unwrap_or("?");
    if field("name") != name || field("version") != latest {
        return fail(
            version,
            Stage::Tarball,
            format!(
                "GET {tarball_url} holds {}@{}, not {name}@{latest}",
                field("name"),
                field("version")
            ),
        );
    }
    // The packument must show the Unity fields as the package itself has them.
    if let Err(reason) = packument::judge_version(&format!("GET {url}"), &doc, &latest, &manifest) {
        return fail(version, Stage::Packument, reason);
    }
    Verdict {
        name: name.to_string(),
        version: Some(latest),
        visible: true,
        stage: None,
        reason: None,
    }
}

/// `probe: 3 packages, 1 not visible to Unity (9 requests in 0.4 s)`.
pub fn summary_line(verdicts: &[Verdict], requests: usize, seconds: f64) -> String {
    let failed = verdicts.iter().filter(|v| !v.visible).count();
    format!(
        "probe: {} packages, {failed} not visible to Unity ({requests} requests in {seconds:.1} s)",
        verdicts.len()
    )
}

/// The Discord alert listing the packages Unity cannot see; `None` when Unity sees them all.
pub fn alert_message(registry: &str, verdicts: &[Verdict], warnings: &[String]) -> Option<Value> {
    const SHOWN: usize = 15;
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.visible).collect();
    if failed.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = failed
        .iter()
        .take(SHOWN)
        .map(|v| {
            let reason = v.reason.as_deref().unwrap_or("");
            let reason: String = if reason.chars().count() > 220 {
                reason.chars().take(219).collect::<String>() + "…"
            } else {
                reason.to_string()
            };
            format!(
                "• `{}`{} ({}): {reason}",
                v.name,
                v.version
                    .as_deref()
                    .map(|v| format!("@{v}"))
                    .unwrap_or_default(),
                v.stage.map_or("", Stage::as_str)
            )
        })
        .collect();
    if failed.len() > SHOWN {
        lines.push(format!("…and {} more", failed.len() - SHOWN));
    }
    let mut fields = Vec::new();
    if !warnings.is_empty() {
        let text = warnings.join("\n");
        let text: String = text.chars().take(1000).collect();
        fields.push(serde_json::json!({"name": "Warnings", "value": text}));
    }
    Some(serde_json::json!({
        "embeds": [{
            "title": format!(
                "{} of {} packages not visible to Unity ({registry})",
                failed.len(),
                verdicts.len()
            ),
            "description": format!(
                "Unity's Package Manager cannot list or install these (`upm probe`):\n{}",
                lines.join("\n")
            ),
            "color": 15_158_332,
            "fields": fields,
        }]
    }))
}

/// The scheme, host and port of a URL (lowercased), to send the registry's token to its own origin only.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let host = match (
        scheme.as_str(),
        host.strip_suffix(":443"),
        host.strip_suffix(":80"),
    ) {
        ("https", Some(h), _) | ("http", _, Some(h)) => h.to_string(),
        _ => host,
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Write;

    #[test]
    fn scopes() {
        // scope_of itself is upm_unity's, tested there.
        assert!(in_scope("com.studio.a", "com.studio"));
        assert!(in_scope("com.studio", "com.studio"));
        assert!(!in_scope("com.studiox.a", "com.studio"));
        assert!(in_scope("@s/a", "@s"));
        assert_eq!(
            scopes_of(["com.b.x", "com.a.y", "com.b.z", "@s/t"]),
            ["@s", "com.a", "com.b"]
        );
    }

    fn answer(status: u16, content_type: &str, body: &[u8]) -> Answer {
        Answer {
            status,
            content_type: Some(content_type.to_string()),
            body: body.to_vec(),
        }
    }

    #[test]
    fn listings_as_unity_takes_them() {
        let ok = answer(
            200,
            "application/json; charset=utf-8",
            br#"{"objects":[{"package":{"name":"com.s.a","dist-tags":{"latest":"1.0.0"}}}]}"#,
        );
        assert_eq!(read_listing("u", &ok, false).unwrap().len(), 1);
        let html = answer(200, "text/html; charset=utf-8", b"<html>");
        assert_eq!(
            read_listing("u", &html, false).unwrap_err(),
            "GET u answered with content type text/html; charset=utf-8: Unity needs application/json and lists nothing"
        );
        let down = answer(503, "application/json", b"{}");
        assert_eq!(
            read_listing("u", &down, false).unwrap_err(),
            "GET u answered 503: Unity lists nothing from it"
        );
        let all = answer(
            200,
            "application/json",
            br#"{"_updated":1,"com.s.a":{"name":"com.s.a"}}"#,
        );
        assert_eq!(read_listing("u", &all, true).unwrap()[0].name, "com.s.a");
        assert!(
            read_listing("u", &answer(200, "application/json", b"[1"), false)
                .unwrap_err()
                .starts_with("GET u: not JSON")
        );
    }

    #[test]
    fn a_full_first_page_warns() {
        assert_eq!(page_warning("com.s", "u", 249), None);
        let warning = page_warning("com.s", "u", 250).unwrap();
        assert!(
            warning.starts_with("warning: scope com.s: GET u lists 250 entries"),
            "{warning}"
        );
        assert!(warning.contains("Unity reads only this first page of 250"));
        assert!(page_warning("com.s", "u", 251).is_some());
    }

    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&builder.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    const MANIFEST: &str =
        r#"{"name":"com.s.a","version":"1.1.0","unity":"2022.3","displayName":"A"}"#;

    /// A registry holding com.s.a@1.1.0 as `latest`, its tarball, and the packument's version fields.
    struct Registry {
        answers: BTreeMap<String, Answer>,
    }

    impl Registry {
        fn new(edit: impl FnOnce(&mut Value, &mut Vec<u8>)) -> Registry {
            let mut tarball = tgz(&[
                ("package/package.json", MANIFEST.as_bytes()),
                ("package/Runtime/A.cs", b"class A {}"),
            ]);
            let mut version: Value = serde_json::from_str(MANIFEST).unwrap();
            version["dist"] = serde_json::json!({
                "tarball": "http://cdn/com.s.a/-/com.s.a-1.1.0.tgz",
                "shasum": sha1_hex(&tarball),
            });
            let mut doc = serde_json::json!({
                "name": "com.s.a",
                "dist-tags": {"latest": "1.1.0"},
                "versions": {"1.1.0": version},
            });
            edit(&mut doc, &mut tarball);
            let mut answers = BTreeMap::new();
            answers.insert(
                "http://r/com.s.a".to_string(),
                answer(200, "application/json", doc.to_string().as_bytes()),
            );
            answers.insert(
                "http://cdn/com.s.a/-/com.s.a-1.1.0.tgz".to_string(),
                answer(200, "application/octet-stream", &tarball),
            );
            Registry { answers }
        }

        fn check(&self, listed: &[Listed]) -> Verdict {
            check_package("http://r/", "com.s.a", ("L", Ok(listed)), |url| {
                self.answers
                    .get(url)
                    .cloned()
                    .ok_or_else(|| format!("GET {url}: no answer"))
            })
        }
    }

    fn listed(version: &str) -> Vec<Listed> {
        vec![Listed {
            name: "com.s.a".into(),
            version: Some(version.into()),
        }]
    }

    #[track_caller]
    fn fails(verdict: Verdict, stage: Stage, reason: &str) {
        assert!(!verdict.visible, "{verdict:?}");
        assert_eq!(verdict.stage, Some(stage), "{verdict:?}");
        let got = verdict.reason.unwrap();
        assert!(got.contains(reason), "{reason:?} not in {got:?}");
    }

    #[test]
    fn a_visible_package() {
        let verdict = Registry::new(|_, _| {}).check(&listed("1.1.0"));
        assert_eq!(
            verdict,
            Verdict {
                name: "com.s.a".into(),
                version: Some("1.1.0".into()),
                visible: true,
                stage: None,
                reason: None,
            }
        );
    }

    #[test]
    fn each_endpoint_that_can_fail_is_named() {
        let good = Registry::new(|_, _| {});
        fails(
            good.check(&[]),
            Stage::Listing,
            "GET L does not list com.s.a (0 packages listed",
        );
        fails(
            good.check(&listed("1.0.0")),
            Stage::Listing,
            "GET L lists com.s.a at 1.0.0 instead of 1.1.0",
        );
        fails(
            check_package(
                "http://r",
                "com.s.a",
                ("L", Err("GET L answered 500")),
                |_| panic!("no read once the listing failed"),
            ),
            Stage::Listing,
            "GET L answered 500",
        );
        let mut gone = Registry::new(|_, _| {});
        gone.answers.get_mut("http://r/com.s.a").unwrap().status = 404;
        fails(
            gone.check(&listed("1.1.0")),
            Stage::Packument,
            "GET http://r/com.s.a answered 404",
        );
        fails(
            Registry::new(|doc, _| doc["dist-tags"] = serde_json::json!({}))
                .check(&listed("1.1.0")),
            Stage::Packument,
            "has no dist-tags.latest",
        );
        fails(
            Registry::new(|doc, _| {
                doc["versions"]["1.1.0"]
                    .as_object_mut()
                    .unwrap()
                    .remove("unity");
            })
            .check(&listed("1.1.0")),
            Stage::Packument,
            "GET http://r/com.s.a serves 1.1.0 with `unity` missing instead of \"2022.3\"",
        );
        fails(
            Registry::new(|_, tarball| tarball.push(0)).check(&listed("1.1.0")),
            Stage::Tarball,
            "but the packument's dist.shasum is",
        );
        let mut missing = Registry::new(|_, _| {});
        missing
            .answers
            .get_mut("http://cdn/com.s.a/-/com.s.a-1.1.0.tgz")
            .unwrap()
            .status = 404;
        fails(
            missing.check(&listed("1.1.0")),
            Stage::Tarball,
            "GET http://cdn/com.s.a/-/com.s.a-1.1.0.tgz answered 404: Unity cannot download com.s.a@1.1.0",
        );
        // A tarball of another package under this name's URL (its sha1 claimed correctly).
        let other = tgz(&[(
            "package/package.json",
            br#"{"name":"com.s.b","version":"1.1.0"}"#,
        )]);
        fails(
            Registry::new(|doc, tarball| {
                doc["versions"]["1.1.0"]["dist"]["shasum"] = sha1_hex(&other).into();
                *tarball = other.clone();
            })
            .check(&listed("1.1.0")),
            Stage::Tarball,
            "holds com.s.b@1.1.0, not com.s.a@1.1.0",
        );
        let mut offline = Registry::new(|_, _| {});
        offline.answers.clear();
        fails(
            offline.check(&listed("1.1.0")),
            Stage::Packument,
            "GET http://r/com.s.a: no answer",
        );
    }

    #[test]
    fn summary_and_alert() {
        let ok = Verdict {
            name: "com.s.a".into(),
            version: Some("1.0.0".into()),
            visible: true,
            stage: None,
            reason: None,
        };
        let bad = Verdict::fail(
            "com.s.b",
            Some("2.0.0"),
            Stage::Tarball,
            "GET t answered 404".into(),
        );
        assert_eq!(
            summary_line(&[ok.clone(), bad.clone()], 7, 0.25),
            "probe: 2 packages, 1 not visible to Unity (7 requests in 0.2 s)"
        );
        assert_eq!(
            alert_message("http://r", std::slice::from_ref(&ok), &[]),
            None
        );
        let alert = alert_message("http://r", &[ok, bad], &["warning: w".into()]).unwrap();
        let embed = &alert["embeds"][0];
        assert_eq!(
            embed["title"],
            "1 of 2 packages not visible to Unity (http://r)"
        );
        let description = embed["description"].as_str().unwrap();
        assert!(
            description.ends_with("• `com.s.b`@2.0.0 (tarball): GET t answered 404"),
            "{description}"
        );
        assert!(!description.contains("com.s.a"));
        assert_eq!(embed["fields"][0]["value"], "warning: w");
    }

    #[test]
    fn origins() {
        assert_eq!(origin("https://NPM.s.io/a/b"), "https://npm.s.io");
        assert_eq!(origin("https://npm.s.io:443/x"), "https://npm.s.io");
        assert_eq!(origin("http://127.0.0.1:4873/x?y"), "http://127.0.0.1:4873");
        assert_ne!(
            origin("http://127.0.0.1:4873"),
            origin("http://127.0.0.1:4874")
        );
        assert_ne!(origin("https://npm.s.io"), origin("https://npm.s.io.evil"));
    }
}

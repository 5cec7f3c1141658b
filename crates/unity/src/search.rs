//! Unity's Package Manager lists a scoped registry with one call per scope:
//! `GET /-/v1/search?text=<scope>&from=0&size=250`, and only on a 404 falls back to the deprecated
//! `GET /-/all` (seen in registry logs: go-gitea/gitea#20280 implemented the endpoint for Unity with
//! `text=com.test&…&size=250`; openupm/openupm#4338: packages beyond the first page do not show). It
//! needs a JSON content type there. Verdaccio's implementation has had paging bugs (its `total` is the
//! length of the page, not of the result set), so listings here page until a short page and never trust
//! `total`.

use serde_json::Value;

/// The page size Unity asks for, and the most Verdaccio and npmjs serve in one page.
pub const PAGE_SIZE: usize = 250;

/// Verdaccio refuses offsets above 10 000 (`MAX_FROM` in its `api/v1/search.js`).
pub const MAX_PAGES: usize = 40;

/// `text` as a query value: unreserved characters as they are, everything else percent-encoded (`@` of
/// a scope included).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The search call, page `page` (Unity itself only ever asks for page 0).
pub fn search_url(base: &str, text: &str, page: usize) -> String {
    format!(
        "{}/-/v1/search?text={}&from={}&size={PAGE_SIZE}",
        base.trim_end_matches('/'),
        encode(text),
        page * PAGE_SIZE
    )
}

/// The naming scope Unity users enter for a package in a scoped registry, and what the search call
/// asks for: `@scope` of a scoped name, else the first two labels of the reverse-domain name
/// (`com.studio` for `com.studio.tools.core`).
pub fn scope_of(name: &str) -> &str {
    if name.starts_with('@') {
        return name.split('/').next().unwrap_or(name);
    }
    let mut dots = name.match_indices('.').map(|(i, _)| i);
    match (dots.next(), dots.next()) {
        (Some(_), Some(second)) => &name[..second],
        _ => name,
    }
}

/// Unity's fallback listing.
pub fn all_url(base: &str) -> String {
    format!("{}/-/all", base.trim_end_matches('/'))
}

/// One package as a listing shows it: its name and the version listed (npm's `version`, or Verdaccio's
/// `dist-tags.latest`: Verdaccio's search objects carry no `version`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub name: String,
    pub version: Option<String>,
}

fn listed(package: &Value) -> Option<Listed> {
    let name = package.get("name")?.as_str()?.to_string();
    let version = package
        .get("version")
        .and_then(Value::as_str)
        .or_else(|| package.get("dist-tags")?.get("latest")?.as_str())
        .map(str::to_string);
    Some(Listed { name, version })
}

/// Does the answer say JSON? Unity refuses a listing served as anything else.
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
            || essence.to_ascii_lowercase().ends_with("+json")
    })
}

/// The packages of a `/-/v1/search` page (`objects[].package`).
pub fn parse_search(body: &[u8]) -> Result<Vec<Listed>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let objects = value
        .get("objects")
        .and_then(Value::as_array)
        .ok_or("no `objects` array")?;
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.get("package")
                .and_then(listed)
                .ok_or_else(|| format!("`objects[{i}].package` has no `name`"))
        })
        .collect()
}

/// The packages of a `/-/all` answer: an object of name → summary, with `_updated` beside them.
pub fn parse_all(body: &[u8]) -> Result<Vec<Listed>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    Ok(object
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .filter_map(|(_, v)| listed(v))
        .collect())
}

/// Is this page the last? A page shorter than asked for ends the listing (never `total`, see above).
pub fn is_last_page(len: usize) -> bool {
    len < PAGE_SIZE
}

/// What Unity's listing says about `name`: listed, at `want` or above when given (the version that
/// became `latest`; a concurrent run may already have moved `latest` higher, which is as good), or the
/// reason it is not, naming the URL.
pub fn judge_listing(
    url: &str,
    listing: &[Listed],
    name: &str,
    want: Option<&str>,
) -> Result<(), String> {
    let Some(found) = listing.iter().find(|l| l.name == name) else {
        return Err(format!(
            "{url} does not list {name} ({} packages listed; Unity reads only this page)",
            listing.len()
        ));
    };
    let parse = |v: &str| semver::Version::parse(v).ok();
    match (want, found.version.as_deref()) {
        (None, _) => Ok(()),
        (Some(want), Some(listed)) if listed == want => Ok(()),
        (Some(want), Some(listed)) if matches!((parse(listed), parse(want)), (Some(l), Some(w)) if l > w) => {
            Ok(())
        }
        (Some(want), listed) => Err(format!(
            "{url} lists {name} at {} instead of {want}",
            listed.unwrap_or("no version")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(scope_of("com.studio.tools.core"), "com.studio");
        assert_eq!(scope_of("@studio/tool"), "@studio");
        assert_eq!(scope_of("ab"), "ab");
        assert_eq!(scope_of("tool"), "tool");
    }

    #[test]
    fn urls_are_unitys() {
        assert_eq!(
            search_url("https://npm.studio.io/", "com.studio", 0),
            "https://npm.studio.io/-/v1/search?text=com.studio&from=0&size=250"
        );
        assert_eq!(
            search_url("http://r", "@studio", 2),
            "http://r/-/v1/search?text=%40studio&from=500&size=250"
        );
        assert_eq!(
            search_url("http://r", "", 0),
            "http://r/-/v1/search?text=&from=0&size=250"
        );
        assert_eq!(all_url("http://r/npm/"), "http://r/npm/-/all");
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("Application/JSON")));
        assert!(is_json(Some("application/vnd.npm.install-v1+json")));
        assert!(!is_json(Some("text/html; charset=utf-8")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }

    #[test]
    fn verdaccio_and_npm_pages() {
        // Verdaccio 6: no `version`, the latest in `dist-tags` (storage-utils `prepareSearchPackage`).
        let verdaccio = br#"{"objects":[{"package":{"name":"com.s.a","dist-tags":{"latest":"1.2.0"},"versions":{"1.2.0":"latest"}}},
            {"package":{"name":"com.s.b","version":"2.0.0"}}],"total":2,"time":"x"}"#;
        let listing = parse_search(verdaccio).unwrap();
        assert_eq!(
            listing,
            [
                Listed {
                    name: "com.s.a".into(),
                    version: Some("1.2.0".into())
                },
                Listed {
                    name: "com.s.b".into(),
                    version: Some("2.0.0".into())
                }
            ]
        );
        assert!(parse_search(b"<html>").unwrap_err().contains("not JSON"));
        assert!(parse_search(br#"{"objects":[{"package":{}}]}"#)
            .unwrap_err()
            .contains("objects[0].package"));
        let all = parse_all(
            br#"{"_updated":99999,"com.s.a":{"name":"com.s.a","dist-tags":{"latest":"1.0.0"}}}"#,
        )
        .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].version.as_deref(), Some("1.0.0"));
        assert!(is_last_page(249) && !is_last_page(250));
    }

    #[test]
    fn judging_a_listing() {
        let listing = [Listed {
            name: "com.s.a".into(),
            version: Some("1.1.0".into()),
        }];
        assert!(judge_listing("u", &listing, "com.s.a", Some("1.1.0")).is_ok());
        assert!(judge_listing("u", &listing, "com.s.a", None).is_ok());
        let stale = judge_listing("u", &listing, "com.s.a", Some("1.2.0")).unwrap_err();
        assert_eq!(stale, "u lists com.s.a at 1.1.0 instead of 1.2.0");
        // A higher version listed (a later run's) is as good.
        assert!(judge_listing("u", &listing, "com.s.a", Some("1.0.0")).is_ok());
        let missing = judge_listing("u", &listing, "com.s.b", None).unwrap_err();
        assert!(
            missing.starts_with("u does not list com.s.b (1 packages listed"),
            "{missing}"
        );
    }
}

//! read: is this an HTTP request we handle, and where is the payload in its body?

use std::borrow::Cow;

use crate::respond::Stop;

/// GitHub caps webhook payloads at 25 MB ("Webhook payloads are capped at 25 MB" in GitHub's webhook
/// docs); anything larger is not from GitHub.
pub const MAX_BODY_BYTES: u64 = 25 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Webhook,
    Health,
}

/// Maps method and path to a route, or to the 404/405 of the contract.
/// The path of the absolute URL the runtime hands over (`request.url`), which it has already parsed
/// and serialised (dot segments resolved, characters escaped): everything from the first `/` after
/// the authority up to the query or fragment. Cutting the text is all that is left to do; parsing it
/// again with `url` cost more per request than the rest of the routing. No path is `/`, as in a URL's
/// serialisation; text that is no absolute URL has none (and matches no route).
pub fn url_path(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    match rest.find('/') {
        Some(start) => &rest[start..],
        None => "/",
    }
}

pub fn route(method: &str, path: &str) -> Result<Route, Stop> {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    match path {
        "/" | "/webhook" => match method {
            "POST" => Ok(Route::Webhook),
            _ => Err(Stop::method_not_allowed("POST")),
        },
        "/health" => match method {
            "GET" | "HEAD" => Ok(Route::Health),
            _ => Err(Stop::method_not_allowed("GET, HEAD")),
        },
        _ => Err(Stop::not_found()),
    }
}

/// How the payload is carried. GitHub lets a webhook choose either content type per hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    /// `application/x-www-form-urlencoded` with the JSON in the `payload` field.
    Form,
}

pub fn body_kind(content_type: Option<&str>) -> Result<BodyKind, Stop> {
    let content_type = content_type.ok_or_else(|| {
        Stop::unsupported_media_type(
            "missing Content-Type: expected application/json or application/x-www-form-urlencoded",
        )
    })?;
    // Parameters such as `; charset=utf-8` do not change how we read the body.
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(BodyKind::Json)
    } else if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(BodyKind::Form)
    } else {
        Err(Stop::unsupported_media_type(format!(
            "unsupported Content-Type {:?}: expected application/json or application/x-www-form-urlencoded",
            truncate_for_message(media_type)
        )))
    }
}

/// Rejects by the declared length before the body is read, and again by the bytes actually read (a
/// chunked body has no declared length).
pub fn check_declared_length(content_length: Option<&str>) -> Result<Option<u64>, Stop> {
    match content_length.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(length)) => check_length(length).map(|()| Some(length)),
        Some(Err(_)) => Err(Stop::bad_request("malformed Content-Length header")),
        None => Ok(None),
    }
}

pub fn check_length(length: u64) -> Result<(), Stop> {
    if length > MAX_BODY_BYTES {
        Err(Stop::too_large(format!(
            "body of {length} bytes exceeds the {MAX_BODY_BYTES}-byte limit (GitHub caps payloads at 25 MB)"
        )))
    } else {
        Ok(())
    }
}

/// The JSON payload inside the raw body. The signature covers the raw body, so this runs after verify.
/// A JSON body is borrowed as it is (no copy of a large push).
pub fn payload(kind: BodyKind, raw: &[u8]) -> Result<Cow<'_, [u8]>, Stop> {
    match kind {
        BodyKind::Json => Ok(Cow::Borrowed(raw)),
        BodyKind::Form => form_payload(raw).map(Cow::Owned),
    }
}

/// The `payload` field of a form body, decoded strictly: `form_urlencoded::parse` would replace
/// escapes that are not UTF-8 with U+FFFD and hand us a payload GitHub never signed as such.
fn form_payload(raw: &[u8]) -> Result<Vec<u8>, Stop> {
    let value = raw
        .split(|&b| b == b'&')
        .find_map(|pair| pair.strip_prefix(b"payload="))
        .ok_or_else(|| Stop::bad_request("form-encoded body has no payload field"))?;
    let plus_as_space: Vec<u8> = value
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    match std::str::from_utf8(&decoded) {
        Ok(_) => Ok(decoded),
        Err(err) => Err(Stop::bad_request(format!(
            "form-encoded payload is not UTF-8 after percent-decoding (byte {})",
            err.valid_up_to()
        ))),
    }
}

/// Header values echoed in a reason are cut short: a hostile client should not get to write a novel
/// into our logs.
pub fn truncate_for_message(value: &str) -> String {
    const LIMIT: usize = 64;
    if value.chars().count() <= LIMIT {
        value.to_string()
    } else {
        format!("{}…", value.chars().take(LIMIT).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_path_is_cut_from_the_runtime_url() {
        use super::url_path;
        assert_eq!(url_path("https://relay.example.workers.dev/"), "/");
        assert_eq!(url_path("https://relay.example.workers.dev"), "/");
        assert_eq!(url_path("http://127.0.0.1:8787/health?x=1#top"), "/health");
        assert_eq!(url_path("http://worker.test/?a=/b"), "/");
        assert_eq!(url_path("http://worker.test#/frag"), "/");
        assert_eq!(url_path("http://worker.test/a/b%20c"), "/a/b%20c");
        assert_eq!(url_path("not a url"), "");
    }

    use super::*;

    #[test]
    fn routes_deliveries_and_health() {
        assert_eq!(route("POST", "/"), Ok(Route::Webhook));
        assert_eq!(route("POST", "/webhook"), Ok(Route::Webhook));
        assert_eq!(route("POST", "/webhook/"), Ok(Route::Webhook));
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("HEAD", "/health"), Ok(Route::Health));
    }

    #[test]
    fn wrong_method_is_405_and_unknown_path_404() {
        for (method, path) in [("GET", "/"), ("PUT", "/webhook"), ("DELETE", "/")] {
            assert_eq!(
                route(method, path).unwrap_err().status,
                405,
                "{method} {path}"
            );
        }
        assert_eq!(route("POST", "/health").unwrap_err().status, 405);
        for path in ["/hooks", "/webhook/extra", "/.env", "/health/x"] {
            assert_eq!(route("POST", path).unwrap_err().status, 404, "{path}");
        }
    }

    #[test]
    fn accepts_both_github_content_types() {
        assert_eq!(body_kind(Some("application/json")), Ok(BodyKind::Json));
        assert_eq!(
            body_kind(Some("Application/JSON; charset=utf-8")),
            Ok(BodyKind::Json)
        );
        assert_eq!(
            body_kind(Some("application/x-www-form-urlencoded")),
            Ok(BodyKind::Form)
        );
        for other in [
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            Some(""),
            None,
        ] {
            assert_eq!(body_kind(other).unwrap_err().status, 415, "{other:?}");
        }
    }

    #[test]
    fn enforces_githubs_size_cap() {
        assert_eq!(check_declared_length(None), Ok(None));
        assert_eq!(check_declared_length(Some("26214400")), Ok(Some(26214400)));
        assert_eq!(
            check_declared_length(Some("26214401")).unwrap_err().status,
            413
        );
        assert_eq!(check_declared_length(Some("-1")).unwrap_err().status, 400);
        assert_eq!(check_declared_length(Some("lots")).unwrap_err().status, 400);
        assert_eq!(check_length(MAX_BODY_BYTES + 1).unwrap_err().status, 413);
    }

    #[test]
    fn finds_the_form_payload() {
        let raw = b"payload=%7B%22zen%22%3A%22a+b%22%7D";
        assert_eq!(
            payload(BodyKind::Form, raw).unwrap().as_ref(),
            br#"{"zen":"a b"}"#
        );
        assert_eq!(payload(BodyKind::Form, b"other=1").unwrap_err().status, 400);
        assert_eq!(
            payload(BodyKind::Form, b"other=1&payload=%7B%7D")
                .unwrap()
                .as_ref(),
            b"{}"
        );
        assert_eq!(payload(BodyKind::Json, b"{}").unwrap().as_ref(), b"{}");
        // A key that merely ends in "payload" is not the field.
        assert_eq!(
            payload(BodyKind::Form, b"xpayload=%7B%7D")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn form_escapes_that_are_not_utf8_are_400() {
        for raw in [
            &b"payload=%7B%22zen%22%3A%22%FF%22%7D"[..],
            b"payload=%C3",
            b"payload=%ED%A0%80",
        ] {
            let stop = payload(BodyKind::Form, raw).unwrap_err();
            assert_eq!(stop.status, 400, "{raw:?}");
            assert!(stop.reason.contains("not UTF-8"), "{}", stop.reason);
        }
    }

    #[test]
    fn echoed_values_are_bounded() {
        let long = "x".repeat(10_000);
        let reason = body_kind(Some(&long)).unwrap_err().reason;
        assert!(reason.len() < 200, "{reason}");
    }
}

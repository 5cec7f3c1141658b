//! The two GitHub REST requests the worker makes, decided here and sent through the `Platform`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::Config;
use crate::deadline::DEADLINE_MS;
use crate::model::RepoName;
use crate::platform::HttpRequest;

/// RFC 3986 unreserved characters stay as they are in a path segment; everything else is escaped.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// GitHub rejects API requests without a User-Agent.
const USER_AGENT: &str = concat!("upm-relay/", env!("CARGO_PKG_VERSION"));
/// Pin the REST API version so a future default cannot change response shapes under us.
const API_VERSION: &str = "2022-11-28";

pub(crate) fn request(
    config: &Config,
    method: &'static str,
    path: &str,
    accept: &str,
    body: Option<String>,
) -> HttpRequest {
    let mut headers = vec![
        ("Accept", accept.to_string()),
        ("User-Agent", USER_AGENT.to_string()),
        ("X-GitHub-Api-Version", API_VERSION.to_string()),
    ];
    if let Some(token) = &config.github_token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json".to_string()));
    }
    HttpRequest {
        method,
        url: format!("{}{}", config.github_api, path),
        headers,
        body,
        // Never unbounded: at most one delivery's deadline. A delivery narrows it to what is left of its
        // own (`Outbound::send`); any other caller gets this bound unless it sets its own.
        timeout_ms: DEADLINE_MS,
    }
}

/// `GET /repos/{central}/contents/{path}` with the raw media type, so the body is the file itself
/// (no base64 envelope, and files up to 100 MB instead of 1 MB). With `at_commit`, the file as of
/// that commit (`?ref=`): right after a push that edits it, the default branch's tip may still be
/// served from a cache GitHub has not updated yet.
pub fn registry_file_request(
    config: &Config,
    central: &RepoName,
    at_commit: Option<&str>,
) -> HttpRequest {
    let path = config
        .registry_path
        .split('/')
        .map(|segment| utf8_percent_encode(segment, PATH_SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/");
    let query = match at_commit {
        Some(sha) => format!("?ref={}", utf8_percent_encode(sha, PATH_SEGMENT)),
        None => String::new(),
    };
    request(
        config,
        "GET",
        &format!("/repos/{}/contents/{path}{query}", central.as_str()),
        "application/vnd.github.raw+json",
        None,
    )
}

fn dispatches_path(central: &RepoName) -> String {
    format!("/repos/{}/dispatches", central.as_str())
}

/// Where dispatches go; a dry run names it without sending anything.
pub fn dispatch_url(config: &Config, central: &RepoName) -> String {
    format!("{}{}", config.github_api, dispatches_path(central))
}

/// `POST /repos/{central}/dispatches`: GitHub answers 204 No Content when it accepts the event.
pub fn dispatch_request(config: &Config, central: &RepoName, body: String) -> HttpRequest {
    request(
        config,
        "POST",
        &dispatches_path(central),
        "application/vnd.github+json",
        Some(body),
    )
}

/// GitHub's error bodies are `{"message": "...", "documentation_url": "..."}`; the message is what an
/// operator needs to see, and it is safe to pass on. Anything else (an HTML page from a proxy or load
/// balancer) is not echoed to the sender: only its size is named.
pub fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(error) => crate::read::truncate_for_message(&error.message),
        Err(_) if body.trim().is_empty() => "empty body".to_string(),
        Err(_) => format!("a {}-byte body that is not GitHub's JSON error", body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(token: Option<&str>) -> Config {
        Config::from_lookup(|name| match name {
            "GITHUB_API" => Some("http://127.0.0.1:1/".into()),
            "GITHUB_TOKEN" => token.map(str::to_string),
            "REGISTRY_PATH" => Some("/config/my repos.json".into()),
            _ => None,
        })
    }

    #[test]
    fn requests_carry_what_github_requires() {
        let central = RepoName::parse("Studio/Central").unwrap();
        let req = dispatch_request(&config(Some("t0ken")), &central, "{}".into());
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.url,
            "http://127.0.0.1:1/repos/Studio/Central/dispatches"
        );
        let header = |name| {
            req.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("Authorization"), Some("Bearer t0ken"));
        assert_eq!(
            req.timeout_ms,
            crate::deadline::DEADLINE_MS,
            "never without a timeout"
        );
        assert!(header("User-Agent").unwrap().starts_with("upm-relay/"));
        assert_eq!(header("X-GitHub-Api-Version"), Some("2022-11-28"));
        assert_eq!(header("Content-Type"), Some("application/json"));

        let req = registry_file_request(&config(None), &central, None);
        assert_eq!(
            req.url,
            "http://127.0.0.1:1/repos/Studio/Central/contents/config/my%20repos.json"
        );
        let at = registry_file_request(&config(None), &central, Some("6113728f27ae"));
        assert_eq!(
            at.url,
            "http://127.0.0.1:1/repos/Studio/Central/contents/config/my%20repos.json?ref=6113728f27ae"
        );
        assert!(req.headers.iter().all(|(n, _)| *n != "Authorization"));
        assert!(req.body.is_none());
    }

    #[test]
    fn error_messages_are_extracted_and_bounded() {
        assert_eq!(
            error_message(r#"{"message":"Bad credentials","documentation_url":"x"}"#),
            "Bad credentials"
        );
        let html = "<html><body>upstream proxy secret-ish detail</body></html>";
        assert_eq!(
            error_message(html),
            format!("a {}-byte body that is not GitHub's JSON error", html.len())
        );
        assert_eq!(error_message(" "), "empty body");
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(5000));
        assert!(error_message(&long).chars().count() <= 65);
    }
}

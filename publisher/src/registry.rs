//! Talking to the npm-compatible registry (Verdaccio in production and in tests). The decisions — what
//! a status means, whether to retry, how long to wait, where a token may be sent — are pure functions;
//! `Registry` only carries them out.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::model::PackageName;

/// A secret (the registry token): never printed, not even by `{:?}`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Option<Self> {
        let value = value.trim().to_string();
        (!value.is_empty()).then_some(Secret(value))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How hard to try before calling a registry answer an error.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    /// Caps both the exponential backoff and a server's Retry-After, so a run stays bounded.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// The wait before attempt `attempt + 1` (attempt counts from 1): the server's Retry-After when it gave
/// one, otherwise exponential backoff; both capped.
pub fn backoff(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    retry_after.unwrap_or(exponential).min(policy.max_delay)
}

/// Statuses worth another try: timeouts, rate limits and server errors (not 501/505, which will not
/// change on retry).
pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

/// Whether `name@version` exists, from the status of `GET /<name>/<version>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Exists,
    Missing,
    Transient,
    /// Anything else (401, 403, 400…): an error for that package. Never read as "not published", or a
    /// misconfigured token would make every package look new.
    Error,
}

pub fn classify_lookup(status: u16) -> Lookup {
    match status {
        200 => Lookup::Exists,
        404 => Lookup::Missing,
        s if is_transient(s) => Lookup::Transient,
        _ => Lookup::Error,
    }
}

/// What `PUT /<name>` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutResult {
    Created,
    /// 409: the version exists. `after_retry` is true when an earlier attempt of ours may have been the
    /// one that created it (a timeout or 5xx after the upload reached the registry).
    Conflict {
        after_retry: bool,
    },
    Rejected {
        status: u16,
        message: String,
    },
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased; `None` for anything else.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    // Credentials in the URL are not part of the origin.
    let host = authority.rsplit('@').next()?;
    if host.is_empty() {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let host = match (
        scheme.as_str(),
        host.strip_suffix(":443"),
        host.strip_suffix(":80"),
    ) {
        ("https", Some(bare), _) | ("http", _, Some(bare)) => bare.to_string(),
        _ => host,
    };
    Some(format!("{scheme}://{host}"))
}

/// Is the host of `origin` (from `origin()`) this machine? Only there may a token travel over plain http.
fn is_loopback(origin: &str) -> bool {
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A token may go to `origin` only over https, or over http to this machine (tests, a local Verdaccio):
/// anywhere else it would cross the network in clear text.
pub fn check_token_transport(origin: &str, has_token: bool) -> Result<(), String> {
    if has_token && origin.starts_with("http://") && !is_loopback(origin) {
        return Err(format!(
            "refusing to send NPM_TOKEN to {origin} over plain http (it would travel in clear text); \
             use the registry's https URL"
        ));
    }
    Ok(())
}

/// Where to download a version's tarball. The registry reports `dist.tarball` as it sees itself: behind a
/// reverse proxy Verdaccio often reports its internal address or `http://`, which the runner cannot reach
/// (or should not send the token to). The file name is what identifies the tarball, so it is fetched
/// from the configured base: `<base>/<name>/-/<file>`. A URL without npm's `/-/` is used as reported.
pub fn tarball_url(base: &str, name: &PackageName, reported: &str) -> String {
    let without_query = reported.split(['?', '#']).next().unwrap_or(reported);
    match without_query.rsplit_once("/-/") {
        Some((_, file)) if !file.is_empty() && !file.contains('/') => {
            format!("{}/{}/-/{file}", base.trim_end_matches('/'), name.as_str())
        }
        _ => reported.to_string(),
    }
}

/// The URL with any `user:password@` removed, for messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// The registry's document for a package: only the fields the publisher reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Packument {
    #[serde(rename = "dist-tags", default)]
    pub dist_tags: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<String, VersionMeta>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VersionMeta {
    pub dist: Option<Dist>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Dist {
    pub shasum: String,
    pub integrity: Option<String>,
    pub tarball: String,
}

impl Packument {
    pub fn parse(body: &[u8]) -> Result<Packument, String> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            format!(
                "unexpected package document at `{}`: {}",
                e.path(),
                e.inner()
            )
        })
    }

    /// Published versions that parse as SemVer, in SemVer order.
    pub fn semver_versions(&self) -> Vec<semver::Version> {
        let mut versions: Vec<semver::Version> = self
            .versions
            .keys()
            .filter_map(|v| semver::Version::parse(v).ok())
            .collect();
        versions.sort();
        versions
    }
}

/// The largest tarball or document the publisher will download; Verdaccio's own default body limit is far
/// below this, so a bigger answer means something is wrong.
const MAX_DOWNLOAD: u64 = 512 * 1024 * 1024;

/// The HTTP client for the registry and Discord.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        // Statuses are data here (404 = not published): read them instead of getting errors.
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent(concat!("upm-publisher/", env!("CARGO_PKG_VERSION")))
        // An internal registry is often signed by a studio CA that only the OS trust store knows.
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .new_agent()
}

#[derive(Clone)]
pub struct Registry {
    base: String,
    base_origin: String,
    token: Option<Secret>,
    agent: ureq::Agent,
    policy: RetryPolicy,
    /// A preview's registry: no token, and every write refused before anything is sent.
    read_only: bool,
}

/// What a write on a read-only registry answers (the preview's: it holds no token and never uploads).
pub const READ_ONLY: &str =
    "this registry client is read-only (a preview never writes to the registry)";

struct Answer {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
    content_type: Option<String>,
}

enum Method<'a> {
    Get,
    Put(&'a [u8]),
}

impl Registry {
    pub fn new(
        base: &str,
        token: Option<Secret>,
        policy: RetryPolicy,
        timeout: Duration,
    ) -> Result<Registry, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        let base_origin = origin(&base).ok_or_else(|| {
            format!(
                "registry URL {:?} must be http(s)://host[/path]",
                redact_url(&base)
            )
        })?;
        check_token_transport(&base_origin, token.is_some())?;
        Ok(Registry {
            base,
            base_origin,
            token,
            agent: agent(timeout),
            policy,
            read_only: false,
        })
    }

    /// A client that only reads, without a token whatever the environment holds: `put` and
    /// `set_dist_tag` fail with `READ_ONLY` before a byte is sent. The preview's only registry client.
    pub fn read_only(
        base: &str,
        policy: RetryPolicy,
        timeout: Duration,
    ) -> Result<Registry, String> {
        Ok(Registry {
            read_only: true,
            ..Registry::new(base, None, policy, timeout)?
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn package_url(&self, name: &PackageName) -> String {
        format!("{}/{}", self.base, name.url_segment())
    }

    fn version_url(&self, name: &PackageName, version: &semver::Version) -> String {
        // `+` (build metadata) would be read as a space by some servers.
        let version = version.to_string().replace('+', "%2B");
        format!("{}/{}/{version}", self.base, name.url_segment())
    }

    /// One HTTP exchange. The token goes only to the registry's own origin: a packument may point
    /// tarballs anywhere.
    fn once(&self, method: &Method, url: &str) -> Result<Answer, String> {
        let send_token = origin(url).as_deref() == Some(self.base_origin.as_str());
        let auth = match (&self.token, send_token) {
            (Some(token), true) => Some(format!("Bearer {}", token.expose())),
            _ => None,
        };
        let result = match method {
            Method::Get => {
                let mut req = self.agent.get(url).header("Accept", "application/json");
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.call()
            }
            Method::Put(body) => {
                let mut req = self
                    .agent
                    .put(url)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json");
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.send(*body)
            }
        };
        let mut response = result.map_err(|e| format!("{}: {e}", redact_url(url)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_DOWNLOAD)
            .read_to_vec()
            .map_err(|e| format!("{}: reading the answer: {e}", redact_url(url)))?;
        Ok(Answer {
            status,
            body,
            retry_after,
            content_type,
        })
    }

    /// Runs `once` until the answer is not transient or the attempts run out. Returns the final answer
    /// and whether any earlier attempt was made.
    fn with_retries(&self, method: Method, url: &str) -> Result<(Answer, bool), String> {
        let mut attempt = 1;
        loop {
            let outcome = self.once(&method, url);
            let retry_after = match &outcome {
                Ok(answer) if !is_transient(answer.status) => {
                    return outcome.map(|a| (a, attempt > 1))
                }
                Ok(answer) => answer.retry_after,
                Err(_) => None,
            };
            if attempt >= self.policy.attempts {
                return match outcome {
                    Ok(answer) => Err(format!(
                        "{} answered {} after {attempt} attempts{}",
                        redact_url(url),
                        answer.status,
                        error_message(&answer.body)
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )),
                    Err(e) => Err(format!("{e} (after {attempt} attempts)")),
                };
            }
            std::thread::sleep(backoff(&self.policy, attempt, retry_after));
            attempt += 1;
        }
    }

    /// Is `name@version` published? `Ok(true)` / `Ok(false)` only for a definite 200 / 404.
    pub fn exists(&self, name: &PackageName, version: &semver::Version) -> Result<bool, String> {
        let url = self.version_url(name, version);
        let (answer, _) = self.with_retries(Method::Get, &url)?;
        match classify_lookup(answer.status) {
            Lookup::Exists => Ok(true),
            Lookup::Missing => Ok(false),
            Lookup::Transient | Lookup::Error => Err(unexpected(&url, &answer)),
        }
    }

    /// The package's document, or `None` when the registry has never heard of it.
    pub fn packument(&self, name: &PackageName) -> Result<Option<Packument>, String> {
        let url = self.package_url(name);
        let (answer, _) = self.with_retries(Method::Get, &url)?;
        match answer.status {
            200 => Packument::parse(&answer.body).map(Some),
            404 => Ok(None),
            _ => Err(unexpected(&url, &answer)),
        }
    }

    pub fn put(&self, name: &PackageName, body: &[u8]) -> Result<PutResult, String> {
        if self.read_only {
            return Err(READ_ONLY.to_string());
        }
        let url = self.package_url(name);
        let (answer, retried) = self.with_retries(Method::Put(body), &url)?;
        Ok(match answer.status {
            200 | 201 => PutResult::Created,
            409 => PutResult::Conflict {
                after_retry: retried,
            },
            status => PutResult::Rejected {
                status,
                message: error_message(&answer.body).unwrap_or_default(),
            },
        })
    }

    /// Points `tag` at `version` (`npm dist-tag add`: `PUT /-/package/<name>/dist-tags/<tag>` with the
    /// version as a JSON string).
    pub fn set_dist_tag(
        &self,
        name: &PackageName,
        tag: &str,
        version: &semver::Version,
    ) -> Result<(), String> {
        if self.read_only {
            return Err(READ_ONLY.to_string());
        }
        let url = format!(
            "{}/-/package/{}/dist-tags/{tag}",
            self.base,
            name.url_segment()
        );
        let body = serde_json::to_vec(&version.to_string()).map_err(|e| e.to_string())?;
        let (answer, _) = self.with_retries(Method::Put(&body), &url)?;
        match answer.status {
            200 | 201 | 204 => Ok(()),
            _ => Err(unexpected(&url, &answer)),
        }
    }

    /// A GET whose status and content type the caller judges (Unity's listing calls): status, content
    /// type and body, after the retries of transient answers.
    pub fn get(&self, url: &str) -> Result<(u16, Option<String>, Vec<u8>), String> {
        let (answer, _) = self.with_retries(Method::Get, url)?;
        Ok((answer.status, answer.content_type, answer.body))
    }

    pub fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let (answer, _) = self.with_retries(Method::Get, url)?;
        match answer.status {
            200 => Ok(answer.body),
            status => Err(format!("{} answered {status}", redact_url(url))),
        }
    }
}

/// An answer the caller did not expect: the URL (its credentials redacted), the status and the
/// registry's own message.
fn unexpected(url: &str, answer: &Answer) -> String {
    format!(
        "{} answered {}{}",
        redact_url(url),
        answer.status,
        error_message(&answer.body)
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    )
}

/// The `error` (or `reason`/`message`) of an npm-style error body, shortened: it goes into one line.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = ["error", "reason", "message"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))?;
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(text.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_statuses() {
        assert_eq!(classify_lookup(200), Lookup::Exists);
        assert_eq!(classify_lookup(404), Lookup::Missing);
        for s in [500, 502, 503, 504, 429, 408] {
            assert_eq!(classify_lookup(s), Lookup::Transient, "{s}");
        }
        for s in [401, 403, 400, 410, 501, 301] {
            assert_eq!(classify_lookup(s), Lookup::Error, "{s}");
        }
    }

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(backoff(&p, 1, None), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, None), Duration::from_millis(200));
        assert_eq!(backoff(&p, 5, None), Duration::from_secs(1));
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
        assert_eq!(backoff(&p, 40, None), Duration::from_secs(1));
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://npm.studio.io/").as_deref(),
            Some("https://npm.studio.io")
        );
        assert_eq!(
            origin("https://NPM.studio.io:443/x").as_deref(),
            Some("https://npm.studio.io")
        );
        assert_eq!(
            origin("http://127.0.0.1:4873/a/-/a.tgz").as_deref(),
            Some("http://127.0.0.1:4873")
        );
        assert_eq!(origin("http://u:p@host/x").as_deref(), Some("http://host"));
        assert_ne!(origin("http://host:4873"), origin("http://host:4874"));
        assert_eq!(origin("file:///etc/passwd"), None);
        assert_eq!(origin("nonsense"), None);
    }

    #[test]
    fn tokens_never_travel_in_clear_text() {
        assert!(check_token_transport("https://npm.studio.io", true).is_ok());
        for local in [
            "http://127.0.0.1:4873",
            "http://localhost:4873",
            "http://[::1]:4873",
            "http://127.8.9.1",
        ] {
            assert!(check_token_transport(local, true).is_ok(), "{local}");
        }
        let err = check_token_transport("http://npm.studio.io", true).unwrap_err();
        assert!(err.contains("plain http"), "{err}");
        assert!(check_token_transport("http://10.0.0.5:4873", true).is_err());
        assert!(check_token_transport("http://localhost.evil.example", true).is_err());
        // Without a token, http is only a lookup: allowed.
        assert!(check_token_transport("http://npm.studio.io", false).is_ok());
        let secret = Secret::new("s3cret".into());
        let err = Registry::new(
            "http://npm.studio.io/",
            secret,
            RetryPolicy::default(),
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn tarballs_are_fetched_from_the_configured_registry() {
        let scoped = PackageName::new_unchecked("@studio/tool".to_string());
        assert_eq!(
            tarball_url(
                "https://npm.studio.io/npm",
                &scoped,
                "http://verdaccio.internal:4873/@studio/tool/-/tool-1.0.0.tgz"
            ),
            "https://npm.studio.io/npm/@studio/tool/-/tool-1.0.0.tgz"
        );
        let plain = PackageName::new_unchecked("com.studio.a".to_string());
        assert_eq!(
            tarball_url(
                "https://r",
                &plain,
                "http://r/com.studio.a/-/com.studio.a-1.0.0.tgz?x=1"
            ),
            "https://r/com.studio.a/-/com.studio.a-1.0.0.tgz"
        );
        assert_eq!(
            tarball_url("https://r", &plain, "https://cdn.example/blob/abc"),
            "https://cdn.example/blob/abc"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("https://u:secret@h/x@y"), "https://***@h/x@y");
        assert_eq!(redact_url("https://h/x"), "https://h/x");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("abc123".to_string()).unwrap();
        assert!(!format!("{s:?}").contains("abc123"));
        assert!(Secret::new("  ".to_string()).is_none());
    }

    #[test]
    fn packument_keeps_what_it_reads() {
        let p = Packument::parse(
            br#"{"name":"a","dist-tags":{"latest":"1.0.0"},"versions":{
                "1.0.0":{"dist":{"shasum":"ab","integrity":"sha512-x","tarball":"http://r/a/-/a-1.0.0.tgz"},"extra":1},
                "0.9.0":{"name":"a"}, "junk":{}}}"#,
        )
        .unwrap();
        assert_eq!(p.dist_tags["latest"], "1.0.0");
        assert_eq!(p.versions["1.0.0"].dist.as_ref().unwrap().shasum, "ab");
        assert_eq!(
            p.semver_versions(),
            [semver::Version::new(0, 9, 0), semver::Version::new(1, 0, 0)]
        );
        let err = Packument::parse(br#"{"versions":{"1.0.0":{"dist":{"shasum":5}}}}"#).unwrap_err();
        assert!(err.contains("versions.1.0.0.dist.shasum"), "{err}");
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"error":"this package is\n already present"}"#).as_deref(),
            Some("this package is already present")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn registry_urls() {
        let r = Registry::new(
            "http://127.0.0.1:1/npm/",
            None,
            RetryPolicy::default(),
            Duration::from_secs(1),
        )
        .unwrap();
        let name = PackageName::new_unchecked("@studio/tool".to_string());
        assert_eq!(
            r.package_url(&name),
            "http://127.0.0.1:1/npm/@studio%2ftool"
        );
        assert_eq!(
            r.version_url(&name, &semver::Version::parse("1.0.0+b.1").unwrap()),
            "http://127.0.0.1:1/npm/@studio%2ftool/1.0.0%2Bb.1"
        );
        assert!(Registry::new(
            "ftp://x",
            None,
            RetryPolicy::default(),
            Duration::from_secs(1)
        )
        .is_err());
    }
}

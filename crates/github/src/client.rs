//! client: the blocking GitHub REST client every native tool uses.
//!
//! - Auth: token, or GitHub App (RS256 JWT → installation token, reused until 5 minutes before expiry; a
//!   401 drops it and retries once).
//! - Conditional GET: every GET remembers its `ETag` and body; asking again sends `If-None-Match`, and
//!   GitHub's 304 (which does not count against the primary rate limit) returns the remembered body.
//!   The cache can be saved to a file between runs ([`GitHub::save_etags`]).
//! - Pagination: `Link: rel="next"`, which covers page numbers and cursors alike.
//! - Rate limits: `Retry-After`, `x-ratelimit-remaining: 0` + `x-ratelimit-reset`, and secondary limits
//!   (403/429 without either header: wait a minute, as GitHub's docs ask). Waits are bounded by
//!   [`ClientConfig::max_rate_limit_wait`]; a longer wait is an error naming it, never a hang.
//! - Transient failures: GETs are retried on 500/502/503/504 and on no answer, a bounded number of times.
//!   Writes are not retried: a POST that timed out may have happened.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{Credentials, Installation, InstallationToken, Secret};
use crate::error::{Error, Result};
use crate::link;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://api.github.com`, or the fake's URL in tests.
    pub api: String,
    pub user_agent: String,
    /// Per request, connection to last byte.
    pub timeout: Duration,
    /// The longest a rate limit may make us wait before giving up with [`Error::RateLimited`].
    pub max_rate_limit_wait: Duration,
    /// Retries of a GET after a 5xx or no answer.
    pub max_retries: u32,
    /// First backoff between those retries; doubled each time.
    pub retry_backoff: Duration,
    /// Pages one listing may follow.
    pub max_pages: usize,
    /// How to wait (tests may record instead of sleeping).
    pub sleep: fn(Duration),
}

impl ClientConfig {
    pub fn new(api: &str) -> ClientConfig {
        ClientConfig {
            api: api.trim().trim_end_matches('/').to_string(),
            user_agent: concat!("upm-github/", env!("CARGO_PKG_VERSION")).to_string(),
            timeout: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(120),
            max_retries: 2,
            retry_backoff: Duration::from_millis(500),
            max_pages: 100,
            sleep: std::thread::sleep,
        }
    }
}

/// What the client did: requests sent (304s included), answered-from-cache 304s, rate-limit waits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub not_modified: u64,
    pub rate_limit_waits: u64,
    pub waited_ms: u64,
    pub retries: u64,
}

/// Remembered GET answers, keyed by URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EtagCache {
    entries: BTreeMap<String, CachedAnswer>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedAnswer {
    etag: String,
    body: String,
    /// The page's `Link` header: a 304 may not repeat it.
    #[serde(default)]
    link: Option<String>,
}

/// A GET's value and whether GitHub said it had not changed since the cached copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<T> {
    pub value: T,
    pub not_modified: bool,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    etag: Option<String>,
    link: Option<String>,
    retry_after: Option<u64>,
    remaining: Option<u64>,
    reset: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AuthAs {
    /// The configured credentials (installation token for an App).
    Default,
    /// The App's own JWT (for `/app/...` endpoints).
    AppJwt,
}

#[derive(Default)]
struct ClientState {
    token: Option<InstallationToken>,
    installation_id: Option<u64>,
    etags: EtagCache,
    /// The last `x-ratelimit-remaining` / `x-ratelimit-reset` seen.
    rate: Option<(u64, i64)>,
    stats: Stats,
}

pub struct GitHub {
    config: ClientConfig,
    origin: String,
    credentials: Credentials,
    agent: ureq::Agent,
    state: Mutex<ClientState>,
}

/// The largest answer we read; GitHub's biggest (a 100-item page, a 1 MB blob as base64) is far below.
const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Rate-limit waits one request may go through before it gives up.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// GitHub: "If the retry-after header is not present … wait for at least one minute before retrying"
/// (secondary rate limits).
const SECONDARY_LIMIT_WAIT_SECS: u64 = 60;

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How long a rate-limited answer asks us to wait, or `None` when it is not a rate limit (a 403 can
/// be a plain "forbidden"). Pure, so the rule is tested without a server.
pub fn rate_limit_wait(
    status: u16,
    retry_after: Option<u64>,
    remaining: Option<u64>,
    reset: Option<i64>,
    message: &str,
    now_unix: i64,
) -> Option<u64> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(secs) = retry_after {
        return Some(secs);
    }
    if remaining == Some(0) {
        // `reset` is when the window reopens; one second more against clock skew.
        return Some(reset.map_or(SECONDARY_LIMIT_WAIT_SECS, |r| {
            (r - now_unix).max(0) as u64 + 1
        }));
    }
    if status == 429
        || message
            .to_ascii_lowercase()
            .contains("secondary rate limit")
    {
        return Some(SECONDARY_LIMIT_WAIT_SECS);
    }
    None
}

impl GitHub {
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<GitHub, String> {
        let origin = origin(&config.api).ok_or_else(|| {
            format!(
                "GitHub API URL {:?} must be http(s)://host[:port][/path]",
                config.api
            )
        })?;
        let agent = ureq::Agent::config_builder()
            // Statuses are data (404 = absent, 304 = unchanged, 403 may be a rate limit).
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .user_agent(config.user_agent.as_str())
            // A GitHub Enterprise behind a studio CA is trusted through the OS store.
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .new_agent();
        Ok(GitHub {
            config,
            origin,
            credentials,
            agent,
            state: Mutex::new(ClientState::default()),
        })
    }

    pub fn api(&self) -> &str {
        &self.config.api
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn load_etags(&self, path: &std::path::Path) -> Result<(), String> {
        let cache = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: not an ETag cache: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => EtagCache::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        self.lock().etags = cache;
        Ok(())
    }

    pub fn save_etags(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_string(&self.lock().etags).expect("the cache serialises");
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- typed helpers -------------------------------------------------------------------------

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self.get_fetched(path)?.value)
    }

    /// A GET that says whether GitHub answered 304 (unchanged since the cached copy).
    pub fn get_fetched<T: DeserializeOwned>(&self, path: &str) -> Result<Fetched<T>> {
        let (answer, not_modified) = self.conditional_get(path)?;
        let answer = success("GET", path, answer)?;
        Ok(Fetched {
            value: decode("GET", path, &answer.body)?,
            not_modified,
        })
    }

    /// A GET of bytes that are not JSON (an artifact's zip): no ETag cache (the cache holds text), a
    /// non-2xx answer is an error.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let answer = self.request("GET", path, None, AuthAs::Default)?;
        Ok(success("GET", path, answer)?.body)
    }

    /// A GET where 404 means "absent".
    pub fn get_optional<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.get(path) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A GET as the GitHub App itself (its JWT), where 404 means "absent": the installation lookups.
    /// `Ok(None)` too when the credentials are not an App's (a token cannot ask as the App).
    pub fn app_get_optional<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        if !matches!(self.credentials, Credentials::App(_)) {
            return Ok(None);
        }
        let answer = self.request("GET", path, None, AuthAs::AppJwt)?;
        if answer.status == 404 {
            return Ok(None);
        }
        let answer = success("GET", path, answer)?;
        decode("GET", path, &answer.body).map(Some)
    }

    /// Follows `Link: rel="next"` from `path`, handing each page's items to `visit` until it breaks,
    /// the pages end, or [`ClientConfig::max_pages`] is reached. `field` names the array inside a
    /// wrapped page (`workflow_runs`), `None` for a top-level array.
    pub fn for_each_page<T: DeserializeOwned>(
        &self,
        path: &str,
        field: Option<&str>,
        mut visit: impl FnMut(Vec<T>) -> ControlFlow<()>,
    ) -> Result<usize> {
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages >= self.config.max_pages {
                break;
            }
            let (answer, _) = self.conditional_get(&url)?;
            let answer = success("GET", &url, answer)?;
            pages += 1;
            let items: Vec<T> = match field {
                None => decode("GET", &url, &answer.body)?,
                Some(field) => {
                    let mut page: serde_json::Value = decode("GET", &url, &answer.body)?;
                    let items = page
                        .get_mut(field)
                        .map(serde_json::Value::take)
                        .ok_or_else(|| Error::Decode {
                            method: "GET".into(),
                            path: url.clone(),
                            detail: format!("no `{field}` array"),
                        })?;
                    serde_path_to_error::deserialize(items).map_err(|e| Error::Decode {
                        method: "GET".into(),
                        path: url.clone(),
                        detail: format!("{field}.{}: {}", e.path(), e.inner()),
                    })?
                }
            };
            if visit(items).is_break() {
                break;
            }
            next = answer.link.as_deref().and_then(link::next_url);
        }
        Ok(pages)
    }

    /// Every item of a listing, at most `limit`; `field` as in [`GitHub::for_each_page`].
    pub fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        field: Option<&str>,
        limit: usize,
    ) -> Result<Vec<T>> {
        let mut all = Vec::new();
        self.for_each_page(path, field, |items: Vec<T>| {
            all.extend(items);
            if all.len() >= limit {
                all.truncate(limit);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(all)
    }

    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.write("POST", path, body)
    }

    /// A POST whose answer (often 202/204 without a body) is not read.
    pub fn post_no_content<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<()> {
        self.send("POST", path, Some(to_json(body))).map(drop)
    }

    pub fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.write("PUT", path, body)
    }

    pub fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.write("PATCH", path, body)
    }

    /// DELETE, with a JSON body when the endpoint wants one (contents API).
    pub fn delete<B: Serialize + ?Sized>(&self, path: &str, body: Option<&B>) -> Result<()> {
        self.send("DELETE", path, body.map(to_json)).map(drop)
    }

    /// A GraphQL query or mutation (`POST {api}/graphql`); an answer with `errors` is an error.
    pub fn graphql<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<T> {
        #[derive(Deserialize)]
        struct GraphQlAnswer<T> {
            data: Option<T>,
            #[serde(default)]
            errors: Vec<GraphQlError>,
        }
        #[derive(Deserialize)]
        struct GraphQlError {
            message: String,
        }
        let body = serde_json::json!({ "query": query, "variables": variables });
        let answer: GraphQlAnswer<T> = self.post("/graphql", &body)?;
        if !answer.errors.is_empty() {
            return Err(Error::GraphQl {
                messages: answer.errors.into_iter().map(|e| e.message).collect(),
            });
        }
        answer.data.ok_or_else(|| Error::GraphQl {
            messages: vec!["no data".into()],
        })
    }

    /// A JSON write whose answer is decoded.
    fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let answer = self.send(method, path, Some(to_json(body)))?;
        decode(method, path, &answer.body)
    }

    /// A write as the default identity; a non-2xx answer is an error.
    fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Answer> {
        let answer = self.request(method, path, body, AuthAs::Default)?;
        success(method, path, answer)
    }

    // ---- the exchange ------------------------------------------------------------------------

    fn conditional_get(&self, path: &str) -> Result<(Answer, bool)> {
        let url = self.url(path)?;
        let cached = self.lock().etags.entries.get(&url).cloned();
        let answer = self.request_with(
            "GET",
            path,
            None,
            AuthAs::Default,
            cached.as_ref().map(|c| c.etag.as_str()),
        )?;
        match (answer.status, cached) {
            (304, Some(cached)) => {
                self.lock().stats.not_modified += 1;
                let link = answer.link.clone().or(cached.link);
                Ok((
                    Answer {
                        status: 200,
                        body: cached.body.into_bytes(),
                        link,
                        ..answer
                    },
                    true,
                ))
            }
            (200, _) => {
                if let (Some(etag), Ok(body)) = (&answer.etag, std::str::from_utf8(&answer.body)) {
                    self.lock().etags.entries.insert(
                        url,
                        CachedAnswer {
                            etag: etag.clone(),
                            body: body.to_string(),
                            link: answer.link.clone(),
                        },
                    );
                }
                Ok((answer, false))
            }
            _ => Ok((answer, false)),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        auth: AuthAs,
    ) -> Result<Answer> {
        self.request_with(method, path, body, auth, None)
    }

    /// One logical request: waits out rate limits, retries transient failures of reads, refreshes an
    /// expired installation token once.
    fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        auth: AuthAs,
        if_none_match: Option<&str>,
    ) -> Result<Answer> {
        let url = self.url(path)?;
        let idempotent = method == "GET";
        let mut transient_retries = 0;
        let mut rate_retries = 0;
        let mut refreshed_token = false;
        loop {
            self.wait_for_exhausted_window(method, path)?;
            let authorization = self.authorization(auth)?;
            let result = self.exchange(
                method,
                &url,
                body.as_deref(),
                authorization.as_ref(),
                if_none_match,
            );
            let answer = match result {
                Ok(answer) => answer,
                Err(detail) => {
                    if idempotent && transient_retries < self.config.max_retries {
                        transient_retries += 1;
                        self.backoff(transient_retries);
                        continue;
                    }
                    return Err(Error::Transport {
                        method: method.into(),
                        path: path.into(),
                        detail,
                    });
                }
            };
            if let Some(remaining) = answer.remaining {
                self.lock().rate = Some((remaining, answer.reset.unwrap_or(0)));
            }
            if answer.status == 401
                && auth == AuthAs::Default
                && matches!(self.credentials, Credentials::App(_))
                && !refreshed_token
            {
                // An installation token can be revoked or expire early: mint a new one, once.
                refreshed_token = true;
                self.lock().token = None;
                continue;
            }
            let message = error_message(&answer.body);
            if let Some(wait) = rate_limit_wait(
                answer.status,
                answer.retry_after,
                answer.remaining,
                answer.reset,
                &message,
                now_unix(),
            ) {
                if rate_retries >= MAX_RATE_LIMIT_RETRIES
                    || Duration::from_secs(wait) > self.config.max_rate_limit_wait
                {
                    return Err(Error::RateLimited {
                        method: method.into(),
                        path: path.into(),
                        wait_secs: wait,
                    });
                }
                rate_retries += 1;
                self.sleep_for_rate_limit(Duration::from_secs(wait));
                continue;
            }
            if idempotent
                && matches!(answer.status, 500 | 502 | 503 | 504)
                && transient_retries < self.config.max_retries
            {
                transient_retries += 1;
                self.backoff(transient_retries);
                continue;
            }
            return Ok(answer);
        }
    }

    /// The last answer said the window is used up: wait for it to reopen (bounded), rather than send a
    /// request GitHub will refuse.
    fn wait_for_exhausted_window(&self, method: &str, path: &str) -> Result<()> {
        let rate = self.lock().rate;
        if let Some((0, reset)) = rate {
            let wait = (reset - now_unix()).max(0) as u64;
            if wait == 0 {
                self.lock().rate = None;
                return Ok(());
            }
            if Duration::from_secs(wait) > self.config.max_rate_limit_wait {
                return Err(Error::RateLimited {
                    method: method.into(),
                    path: path.into(),
                    wait_secs: wait,
                });
            }
            self.sleep_for_rate_limit(Duration::from_secs(wait));
            self.lock().rate = None;
        }
        Ok(())
    }

    fn sleep_for_rate_limit(&self, wait: Duration) {
        {
            let mut state = self.lock();
            state.stats.rate_limit_waits += 1;
            state.stats.waited_ms += wait.as_millis() as u64;
        }
        (self.config.sleep)(wait);
    }

    fn backoff(&self, attempt: u32) {
        self.lock().stats.retries += 1;
        (self.config.sleep)(self.config.retry_backoff * 2u32.saturating_pow(attempt - 1));
    }

    fn url(&self, path: &str) -> Result<String> {
        if path.starts_with('/') {
            return Ok(format!("{}{path}", self.config.api));
        }
        // Absolute URLs come from `Link` headers. Our token goes to the configured API only.
        if origin(path).as_deref() == Some(self.origin.as_str()) {
            return Ok(path.to_string());
        }
        Err(Error::Decode {
            method: "GET".into(),
            path: path.into(),
            detail: format!("refusing to follow a URL outside {}", self.origin),
        })
    }

    /// One HTTP exchange. Errors are described without the URL's query or any header.
    fn exchange(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        authorization: Option<&Secret>,
        if_none_match: Option<&str>,
    ) -> Result<Answer, String> {
        self.lock().stats.requests += 1;
        let mut headers: Vec<(&str, String)> = vec![
            ("accept", "application/vnd.github+json".into()),
            ("x-github-api-version", "2022-11-28".into()),
        ];
        if let Some(auth) = authorization {
            headers.push(("authorization", format!("Bearer {}", auth.expose())));
        }
        if let Some(etag) = if_none_match {
            headers.push(("if-none-match", etag.to_string()));
        }
        macro_rules! with_headers {
            ($builder:expr) => {{
                let mut builder = $builder;
                for (name, value) in &headers {
                    builder = builder.header(*name, value.as_str());
                }
                builder
            }};
        }
        let result = match (method, body) {
            ("GET", _) => with_headers!(self.agent.get(url)).call(),
            ("DELETE", None) => with_headers!(self.agent.delete(url)).call(),
            ("DELETE", Some(body)) => with_headers!(self.agent.delete(url).force_send_body())
                .header("content-type", "application/json")
                .send(body),
            ("POST", body) => with_headers!(self.agent.post(url))
                .header("content-type", "application/json")
                .send(body.unwrap_or(b"{}")),
            ("PUT", body) => with_headers!(self.agent.put(url))
                .header("content-type", "application/json")
                .send(body.unwrap_or(b"{}")),
            ("PATCH", body) => with_headers!(self.agent.patch(url))
                .header("content-type", "application/json")
                .send(body.unwrap_or(b"{}")),
            (other, _) => return Err(format!("unsupported method {other}")),
        };
        let mut response = result.map_err(|e| match e {
            ureq::Error::Timeout(_) => "timed out".to_string(),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            // The OS's words ("Connection refused (os error 111)"), not only the kind, which is
            // "uncategorized error" for most DNS and socket failures.
            ureq::Error::Io(e) => format!("i/o error: {e}"),
            _ => "request failed".to_string(),
        })?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let etag = header("etag");
        let link = header("link");
        let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.trim().parse().ok());
        let reset = header("x-ratelimit-reset").and_then(|v| v.trim().parse().ok());
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|_| "the answer could not be read".to_string())?;
        Ok(Answer {
            status,
            body,
            etag,
            link,
            retry_after,
            remaining,
            reset,
        })
    }

    // ---- GitHub App ----------------------------------------------------------------------------

    fn authorization(&self, auth: AuthAs) -> Result<Option<Secret>> {
        let app = match &self.credentials {
            Credentials::None => return Ok(None),
            Credentials::Token(token) => return Ok(Some(token.clone())),
            Credentials::App(app) => app,
        };
        if auth == AuthAs::AppJwt {
            return Ok(Some(Secret::new(app.jwt(now_unix()))));
        }
        let cached = self.lock().token.clone();
        if let Some(token) = cached.filter(|t| t.usable_at(now_unix())) {
            return Ok(Some(token.token));
        }
        // Read under the lock, then released: the lookup below sends requests, which lock again.
        let known_installation = self.lock().installation_id;
        let installation_id = match (&app.installation, known_installation) {
            (Installation::Id(id), _) => *id,
            (_, Some(id)) => id,
            (Installation::Org(org), None) => {
                #[derive(Deserialize)]
                struct Found {
                    id: u64,
                }
                let path = format!("/orgs/{}/installation", segment(org));
                let answer = self.request("GET", &path, None, AuthAs::AppJwt)?;
                let found: Found = decode("GET", &path, &success("GET", &path, answer)?.body)
                    .map_err(|e| Error::Auth(e.to_string()))?;
                self.lock().installation_id = Some(found.id);
                found.id
            }
        };
        #[derive(Deserialize)]
        struct Minted {
            token: String,
            expires_at: String,
        }
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let body = if app.permissions.is_empty() {
            b"{}".to_vec()
        } else {
            to_json(&serde_json::json!({ "permissions": app.permissions }))
        };
        let answer = self.request("POST", &path, Some(body), AuthAs::AppJwt)?;
        let answer = success("POST", &path, answer).map_err(|e| Error::Auth(e.to_string()))?;
        let minted: Minted = decode("POST", &path, &answer.body)?;
        let expires_at_unix =
            crate::deliveries::parse_rfc3339_utc(&minted.expires_at).ok_or_else(|| {
                Error::Auth("installation token without a readable expires_at".into())
            })?;
        let token = InstallationToken {
            token: Secret::new(minted.token),
            expires_at_unix,
        };
        let secret = token.token.clone();
        self.lock().token = Some(token);
        Ok(Some(secret))
    }
}

fn to_json<B: Serialize + ?Sized>(body: &B) -> Vec<u8> {
    serde_json::to_vec(body).expect("request bodies serialise")
}

fn success(method: &str, path: &str, answer: Answer) -> Result<Answer> {
    if (200..300).contains(&answer.status) {
        return Ok(answer);
    }
    Err(Error::Status {
        method: method.into(),
        path: strip_query(path).into(),
        status: answer.status,
        message: error_message(&answer.body),
    })
}

fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn decode<T: DeserializeOwned>(method: &str, path: &str, body: &[u8]) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| Error::Decode {
        method: method.into(),
        path: strip_query(path).into(),
        detail: format!("{}: {}", e.path(), e.inner()),
    })
}

/// GitHub's JSON error `message` (with the first `errors[].message` when present), or the body's
/// first 200 characters.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct GitHubError {
        message: String,
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    match serde_json::from_slice::<GitHubError>(body) {
        Ok(e) => {
            let detail = e.errors.iter().find_map(|x| {
                x.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            });
            match detail {
                Some(detail) => format!("{} ({detail})", e.message),
                None => e.message,
            }
        }
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// Percent-encodes one path segment (an owner, a repository, a branch name).
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// Percent-encodes a file path, keeping its `/` separators.
pub fn file_path(path: &str) -> String {
    path.split('/').map(segment).collect::<Vec<_>>().join("/")
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_rules() {
        // Retry-After wins.
        assert_eq!(rate_limit_wait(429, Some(3), None, None, "", 0), Some(3));
        assert_eq!(
            rate_limit_wait(403, Some(5), Some(10), None, "", 0),
            Some(5)
        );
        // Primary limit: wait until the reset (+1 s).
        assert_eq!(
            rate_limit_wait(403, None, Some(0), Some(110), "", 100),
            Some(11)
        );
        assert_eq!(
            rate_limit_wait(403, None, Some(0), Some(90), "", 100),
            Some(1)
        );
        // Secondary limit without headers: a minute.
        assert_eq!(
            rate_limit_wait(
                403,
                None,
                Some(10),
                None,
                "You have exceeded a secondary rate limit",
                0
            ),
            Some(60)
        );
        assert_eq!(rate_limit_wait(429, None, None, None, "", 0), Some(60));
        // A plain 403 is not a rate limit; other statuses never are.
        assert_eq!(
            rate_limit_wait(
                403,
                None,
                Some(10),
                None,
                "Resource not accessible by integration",
                0
            ),
            None
        );
        assert_eq!(rate_limit_wait(500, Some(1), Some(0), None, "", 0), None);
    }

    #[test]
    fn names_githubs_error_message() {
        assert_eq!(
            error_message(br#"{"message": "Not Found", "documentation_url": "x"}"#),
            "Not Found"
        );
        assert_eq!(
            error_message(br#"{"message": "Validation Failed", "errors": [{"message": "A pull request already exists for o:b."}]}"#),
            "Validation Failed (A pull request already exists for o:b.)"
        );
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn origins_and_segments() {
        assert_eq!(
            origin("https://api.github.com").as_deref(),
            Some("https://api.github.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/api/v3?x").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("ftp://x"), None);
        assert_eq!(segment("feature/x y"), "feature%2Fx%20y");
        assert_eq!(
            file_path("Assets/My Pkg/package.json"),
            "Assets/My%20Pkg/package.json"
        );
    }

    #[test]
    fn refuses_to_send_the_token_elsewhere() {
        let client =
            GitHub::new(ClientConfig::new("http://127.0.0.1:9"), Credentials::None).unwrap();
        assert!(client.url("https://evil.example/next").is_err());
        assert_eq!(
            client.url("http://127.0.0.1:9/x?page=2").unwrap(),
            "http://127.0.0.1:9/x?page=2"
        );
        assert_eq!(
            client.url("/repos/o/r").unwrap(),
            "http://127.0.0.1:9/repos/o/r"
        );
        assert!(GitHub::new(ClientConfig::new("api.github.com"), Credentials::None).is_err());
    }
}

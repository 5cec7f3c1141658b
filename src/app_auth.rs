//! GitHub App authentication: the RS256 JWT that proves we are the App, and the installation access
//! token the REST calls carry, cached so the steady state costs no extra GitHub call.
//!
//! GitHub's flow ("Authenticating as a GitHub App installation"): sign a short-lived JWT with the App's
//! private key, exchange it at `POST /app/installations/{id}/access_tokens` for a token that lives one
//! hour, and send that token as `Authorization: Bearer …`. The token is kept in the isolate's memory and
//! in KV (so a fresh isolate does not mint another) and reused until 5 minutes before it expires; a 401
//! drops it and the request is retried once with a new one. With no App configured, the personal access
//! token (`GITHUB_TOKEN`) that `github::request` adds is sent as it is.
//!
//! Everything here is plain Rust tested natively except the signature itself, which the `Platform`
//! computes (WebCrypto in the Workers runtime, the `rsa` crate in the tests). The App's settings and
//! its key are read with the configuration (`config::AppCredentials`, `app_key`).

use std::cell::RefCell;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use upm_github::deliveries::parse_rfc3339_utc;

use crate::config::{AppCredentials, Config, SweepConfig};
use crate::github;
use crate::platform::{HttpRequest, HttpResponse, Platform, SendError};

/// Reuse a token until this long before GitHub's `expires_at`, so a request that starts just before the
/// expiry cannot carry a token that dies in flight (and clocks may differ by a little).
pub const REFRESH_BEFORE_EXPIRY_MS: u64 = 5 * 60 * 1000;
/// GitHub rejects a JWT whose `iat` lies in the future; backdating it absorbs clock drift (GitHub's docs
/// recommend 60 seconds).
pub const JWT_BACKDATE_SECONDS: u64 = 60;
/// GitHub rejects a JWT that expires more than 10 minutes after it is checked; 9 minutes after `now`
/// keeps a margin for clock drift the other way.
pub const JWT_LIFETIME_SECONDS: u64 = 9 * 60;

#[derive(Serialize)]
struct JwtHeader {
    alg: &'static str,
    typ: &'static str,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwtClaims {
    pub iat: u64,
    pub exp: u64,
    pub iss: Issuer,
}

/// The JWT issuer: a numeric App id goes out as a JSON number (what GitHub documented for years, and
/// what the original worker sent); a client id (`Iv1.…`) as a string.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Issuer {
    AppId(u64),
    ClientId(String),
}

impl JwtClaims {
    pub fn new(app_id: &str, now_ms: u64) -> JwtClaims {
        let now = now_ms / 1000;
        JwtClaims {
            iat: now.saturating_sub(JWT_BACKDATE_SECONDS),
            exp: now + JWT_LIFETIME_SECONDS,
            iss: app_id
                .parse()
                .map(Issuer::AppId)
                .unwrap_or_else(|_| Issuer::ClientId(app_id.to_string())),
        }
    }
}

/// `base64url(header) . base64url(claims)`: the bytes RS256 signs (RFC 7515 section 5.1).
pub fn jwt_signing_input(claims: &JwtClaims) -> String {
    let header = serde_json::to_vec(&JwtHeader {
        alg: "RS256",
        typ: "JWT",
    })
    .expect("the header serialises");
    let claims = serde_json::to_vec(claims).expect("the claims serialise");
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

pub fn jwt(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An installation access token and when it stops working.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    pub expires_at_ms: u64,
    pub installation_id: u64,
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationToken")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

impl InstallationToken {
    /// Reused until 5 minutes before GitHub's `expires_at`.
    pub fn is_reusable(&self, now_ms: u64) -> bool {
        now_ms.saturating_add(REFRESH_BEFORE_EXPIRY_MS) < self.expires_at_ms
    }

    /// How long KV should keep it: until it stops being reusable (KV's minimum TTL is 60 s).
    pub fn kv_ttl_seconds(&self, now_ms: u64) -> u64 {
        (self
            .expires_at_ms
            .saturating_sub(REFRESH_BEFORE_EXPIRY_MS)
            .saturating_sub(now_ms)
            / 1000)
            .max(60)
    }

    pub fn to_kv(&self) -> String {
        serde_json::to_string(self).expect("a token serialises")
    }

    pub fn from_kv(value: &str) -> Option<InstallationToken> {
        serde_json::from_str(value).ok()
    }
}

/// The KV key of the App's cached token. It names the App, so changing `GITHUB_APP_ID` never serves
/// another App's token; the token itself is a secret, kept only as long as it is reusable.
pub fn kv_key(app_id: &str) -> String {
    format!("github-app-token:v1:{app_id}")
}

/// Reads GitHub's answer to `POST /app/installations/{id}/access_tokens` (201 with `token` and an
/// ISO 8601 `expires_at`).
pub fn parse_token_response(body: &str, installation_id: u64) -> Result<InstallationToken, String> {
    #[derive(Deserialize)]
    struct TokenBody {
        token: String,
        expires_at: String,
    }
    let parsed: TokenBody = serde_json::from_str(body)
        .map_err(|_| "the access token response is not GitHub's JSON".to_string())?;
    // The same reader as the deliveries listing's timestamps: one date parser for GitHub's format.
    let expires_at_ms = parse_rfc3339_utc(&parsed.expires_at)
        .and_then(|seconds| u64::try_from(seconds).ok())
        .map(|seconds| seconds * 1000)
        .ok_or("the access token response has an unreadable expires_at")?;
    if parsed.token.is_empty() {
        return Err("the access token response has an empty token".into());
    }
    Ok(InstallationToken {
        token: parsed.token,
        expires_at_ms,
        installation_id,
    })
}

/// Sets (replacing any) the `Authorization` header.
pub fn with_bearer(mut request: HttpRequest, credential: &str) -> HttpRequest {
    request.headers.retain(|(name, _)| *name != "Authorization");
    request
        .headers
        .push(("Authorization", format!("Bearer {credential}")));
    request
}

/// Where the installation id comes from when `GITHUB_APP_INSTALLATION_ID` is not set: the central
/// repository's installation (the one that must be allowed to dispatch), else the organization's.
pub fn installation_lookup_path(config: &Config) -> Option<String> {
    if let Some(central) = &config.dispatch_repo {
        return Some(format!("/repos/{}/installation", central.as_str()));
    }
    match &config.sweep {
        SweepConfig::On(settings) => Some(format!("/orgs/{}/installation", settings.org)),
        _ => None,
    }
}

thread_local! {
    // The isolate's copy: a Workers isolate runs one thread and serves many requests (and cron events),
    // so this saves the KV read on most of them. Each native test runs on a thread of its own: a new
    // thread is a new isolate.
    static ISOLATE_TOKEN: RefCell<Option<InstallationToken>> = const { RefCell::new(None) };
}

fn remembered(now_ms: u64) -> Option<InstallationToken> {
    ISOLATE_TOKEN.with(|cell| {
        cell.borrow()
            .as_ref()
            .filter(|t| t.is_reusable(now_ms))
            .cloned()
    })
}

fn remember(token: Option<InstallationToken>) {
    ISOLATE_TOKEN.with(|cell| *cell.borrow_mut() = token);
}

/// Sends a GitHub request with the configured credential: the App's installation token when
/// `GITHUB_APP_ID` is set (a 401 drops the cached token and the request is retried once with a new
/// one), else the request as built (with the `GITHUB_TOKEN` that `github::request` adds). `Err` is a
/// network failure or a token that could not be obtained, described for the log without any secret.
pub async fn send_authorized<P: Platform>(
    config: &Config,
    platform: &P,
    request: HttpRequest,
) -> Result<HttpResponse, SendError> {
    send_authorized_for_page(config, platform, request)
        .await
        .map(|(response, _)| response)
}

/// `send_authorized`, also returning the `Link` header (the sweeper pages through deliveries).
pub async fn send_authorized_for_page<P: Platform>(
    config: &Config,
    platform: &P,
    request: HttpRequest,
) -> Result<(HttpResponse, Option<String>), SendError> {
    let Some(app) = &config.app else {
        return platform.send_for_page(request).await;
    };
    // A token that could not be had is retried like a network failure, within the delivery's
    // deadline, then a 502 that GitHub can redeliver. (`why` names the App step already.)
    let app_failure = SendError::Auth;
    let token = installation_token(config, app, platform, Minting::ReuseCached)
        .await
        .map_err(app_failure)?;
    let answer = platform
        .send_for_page(with_bearer(request.clone(), &token.token))
        .await?;
    if answer.0.status != 401 {
        return Ok(answer);
    }
    // Revoked, or expired early (an installation's permissions changed): one fresh token, one retry.
    remember(None);
    let token = installation_token(
        config,
        app,
        platform,
        Minting::Force {
            installation_id: token.installation_id,
        },
    )
    .await
    .map_err(app_failure)?;
    platform
        .send_for_page(with_bearer(request, &token.token))
        .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Minting {
    ReuseCached,
    /// A new token for the installation of the one GitHub refused.
    Force {
        installation_id: u64,
    },
}

/// The installation token through its tiers: isolate memory → KV → GitHub.
async fn installation_token<P: Platform>(
    config: &Config,
    app: &AppCredentials,
    platform: &P,
    minting: Minting,
) -> Result<InstallationToken, String> {
    let now = platform.now_ms();
    let key = kv_key(&app.app_id);
    let mut known_installation = match minting {
        Minting::Force { installation_id } => Some(installation_id),
        Minting::ReuseCached => app.installation_id,
    };
    if minting == Minting::ReuseCached {
        if let Some(token) = remembered(now) {
            return Ok(token);
        }
        // A KV failure only costs a new token.
        if let Ok(Some(value)) = platform.kv_get(&key).await {
            if let Some(token) = InstallationToken::from_kv(&value) {
                if token.is_reusable(now) {
                    remember(Some(token.clone()));
                    return Ok(token);
                }
                known_installation = known_installation.or(Some(token.installation_id));
            }
        }
    }
    let token = mint(config, app, platform, known_installation).await?;
    let _ = platform
        .kv_put(&key, &token.to_kv(), Some(token.kv_ttl_seconds(now)))
        .await;
    remember(Some(token.clone()));
    Ok(token)
}

/// Signs a JWT and exchanges it for an installation token (looking the installation up first when its
/// id is not known).
async fn mint<P: Platform>(
    config: &Config,
    app: &AppCredentials,
    platform: &P,
    installation: Option<u64>,
) -> Result<InstallationToken, String> {
    let input = jwt_signing_input(&JwtClaims::new(&app.app_id, platform.now_ms()));
    let signature = platform
        .sign_rs256(app.private_key.pkcs8_der(), input.as_bytes())
        .await
        .map_err(|why| format!("GitHub App: signing the JWT failed: {why}"))?;
    let app_jwt = jwt(&input, &signature);
    let installation_id = match installation {
        Some(id) => id,
        None => {
            let path = installation_lookup_path(config).ok_or(
                "GitHub App: set GITHUB_APP_INSTALLATION_ID (no DISPATCH_REPO or GITHUB_ORG to look it up)",
            )?;
            let request =
                github::request(config, "GET", &path, "application/vnd.github+json", None);
            let response = call(
                platform,
                with_bearer(request, &app_jwt),
                "looking up the installation",
            )
            .await?;
            installation_id_from(&response.body)?
        }
    };
    let path = format!("/app/installations/{installation_id}/access_tokens");
    let request = github::request(config, "POST", &path, "application/vnd.github+json", None);
    let response = call(
        platform,
        with_bearer(request, &app_jwt),
        "creating an installation token",
    )
    .await?;
    parse_token_response(&response.body, installation_id)
        .map_err(|why| format!("GitHub App: {why}"))
}

async fn call<P: Platform>(
    platform: &P,
    request: HttpRequest,
    what: &str,
) -> Result<HttpResponse, String> {
    let response = platform
        .send(request)
        .await
        // `public()`: this text can reach a 502 body (SendError::Auth), which never carries the
        // runtime's own error text.
        .map_err(|why| format!("GitHub App: {what}: {}", why.public()))?;
    if (200..300).contains(&response.status) {
        Ok(response)
    } else {
        Err(format!(
            "GitHub App: {what}: GitHub answered {}: {}",
            response.status,
            github::error_message(&response.body)
        ))
    }
}

fn installation_id_from(body: &str) -> Result<u64, String> {
    #[derive(Deserialize)]
    struct Installation {
        id: u64,
    }
    serde_json::from_str::<Installation>(body)
        .map(|i| i.id)
        .map_err(|_| "GitHub App: the installation response has no id".to_string())
}

#[cfg(test)]
#[path = "app_auth_tests.rs"]
mod tests;

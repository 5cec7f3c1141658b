//! auth: who the client is to GitHub — a token, or a GitHub App that mints installation tokens.
//!
//! Secrets come from the environment only and never reach a log line: [`Secret`]'s `Debug` and
//! `Display` print `***`.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;

/// A credential. Readable only through [`Secret::expose`], so printing one by mistake prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which installation of the App to act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    /// `GITHUB_APP_INSTALLATION_ID`.
    Id(u64),
    /// Looked up once with `GET /orgs/{org}/installation`.
    Org(String),
}

/// A GitHub App: its id, its private key and the installation whose token the client uses.
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: String,
    signing_key: SigningKey<Sha256>,
    pub installation: Installation,
    /// The permissions asked for each installation token (`{"contents": "read"}`), narrower than the
    /// App's own; empty: all the App has. GitHub: "POST /app/installations/{installation_id}/access_tokens"
    /// takes `permissions`, and refuses one the App lacks.
    pub permissions: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("installation", &self.installation)
            .finish_non_exhaustive()
    }
}

impl AppCredentials {
    /// `pem` is the App's private key as GitHub issues it (PKCS#1, `BEGIN RSA PRIVATE KEY`) or converted
    /// to PKCS#8 (`BEGIN PRIVATE KEY`). Secrets stored in one line often carry `\n` escapes: accepted.
    pub fn new(
        app_id: &str,
        pem: &Secret,
        installation: Installation,
    ) -> Result<AppCredentials, String> {
        let app_id = app_id.trim();
        if app_id.is_empty() || !app_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("GITHUB_APP_ID must be the App's id (or client id)".into());
        }
        let text = pem.expose().replace("\\n", "\n");
        let text = text.trim();
        let key = RsaPrivateKey::from_pkcs1_pem(text)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(text))
            // The parser's message is not printed: it could quote part of the key.
            .map_err(|_| {
                "GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM (PKCS#1 or PKCS#8)"
                    .to_string()
            })?;
        Ok(AppCredentials {
            app_id: app_id.to_string(),
            signing_key: SigningKey::<Sha256>::new(key),
            installation,
            permissions: Default::default(),
        })
    }

    /// Narrows every installation token to `spec`: comma-separated `name:level` pairs, e.g.
    /// `contents:read,metadata:read` (GitHub's permission names; levels `read`, `write`, `admin`).
    pub fn with_permissions(mut self, spec: &str) -> Result<AppCredentials, String> {
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, level) = pair.split_once(':').ok_or_else(|| {
                format!("GITHUB_APP_TOKEN_PERMISSIONS: {pair:?} is not name:level")
            })?;
            let (name, level) = (name.trim(), level.trim());
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !name_ok || !matches!(level, "read" | "write" | "admin") {
                return Err(format!(
                    "GITHUB_APP_TOKEN_PERMISSIONS: {pair:?} is not name:read, name:write or name:admin"
                ));
            }
            self.permissions.insert(name.to_string(), level.to_string());
        }
        Ok(self)
    }

    /// The App's JSON Web Token (RS256), valid for 9 minutes from a minute ago: GitHub refuses an `exp`
    /// more than 10 minutes ahead and recommends back-dating `iat` by 60 s against clock drift.
    pub fn jwt(&self, now_unix: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        // `iss` is the App id (GitHub wants a JSON number: "'Issuer' claim ('iss') must be an
        // Integer") or the App's client id (a string such as `Iv23li…`).
        let issuer = match self.app_id.parse::<u64>() {
            Ok(id) => serde_json::Value::from(id),
            Err(_) => serde_json::Value::from(self.app_id.as_str()),
        };
        let claims = serde_json::json!({
            "iat": now_unix - 60,
            "exp": now_unix + 9 * 60,
            "iss": issuer,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = self.signing_key.sign(signing_input.as_bytes()).to_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Anonymous: public data only, 60 requests an hour. For tests and reading public repositories.
    None,
    /// A personal access token or a workflow's `GITHUB_TOKEN`.
    Token(Secret),
    App(Box<AppCredentials>),
}

impl Credentials {
    /// Reads the environment: `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY` (+ `GITHUB_APP_INSTALLATION_ID`, or
    /// the installation of `org`) win over `GITHUB_TOKEN`; neither set means anonymous.
    pub fn from_env(org: Option<&str>) -> Result<Credentials, String> {
        Self::from_vars(
            |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()),
            org,
        )
    }

    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        org: Option<&str>,
    ) -> Result<Credentials, String> {
        match (var("GITHUB_APP_ID"), var("GITHUB_APP_PRIVATE_KEY")) {
            (Some(app_id), Some(key)) => {
                let installation = match var("GITHUB_APP_INSTALLATION_ID") {
                    Some(id) => Installation::Id(id.trim().parse().map_err(|_| {
                        "GITHUB_APP_INSTALLATION_ID must be a number".to_string()
                    })?),
                    None => Installation::Org(
                        org.ok_or("GITHUB_APP_INSTALLATION_ID is not set and no organization is known to look it up")?
                            .to_string(),
                    ),
                };
                let app = AppCredentials::new(&app_id, &Secret::new(key), installation)?;
                let app = match var("GITHUB_APP_TOKEN_PERMISSIONS") {
                    Some(spec) => app.with_permissions(&spec)?,
                    None => app,
                };
                Ok(Credentials::App(Box::new(app)))
            }
            (Some(_), None) | (None, Some(_)) => Err(
                "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go together: set both, or neither and GITHUB_TOKEN"
                    .into(),
            ),
            (None, None) => Ok(match var("GITHUB_TOKEN") {
                Some(token) => Credentials::Token(Secret::new(token.trim())),
                None => Credentials::None,
            }),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Credentials::None => "anonymous".into(),
            Credentials::Token(_) => "token".into(),
            Credentials::App(app) => format!("GitHub App {}", app.app_id),
        }
    }
}

/// An installation access token and when GitHub said it expires.
#[derive(Debug, Clone)]
pub struct InstallationToken {
    pub token: Secret,
    pub expires_at_unix: i64,
}

/// Installation tokens live one hour; one is reused until 5 minutes before it expires, so a long
/// operation never starts a request with a token that dies on the way.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

impl InstallationToken {
    pub fn usable_at(&self, now_unix: i64) -> bool {
        now_unix < self.expires_at_unix - TOKEN_REFRESH_MARGIN.as_secs() as i64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    /// A 2048-bit test key (generated for these tests only), in GitHub's PKCS#1 form and as PKCS#8.
    pub const TEST_KEY_PKCS1: &str = include_str!("../tests/keys/app-pkcs1.pem");
    pub const TEST_KEY_PKCS8: &str = include_str!("../tests/keys/app-pkcs8.pem");

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("ghp_abc");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        let creds = Credentials::from_vars(
            |n| (n == "GITHUB_TOKEN").then(|| "ghp_abc".to_string()),
            None,
        )
        .unwrap();
        assert!(!format!("{creds:?}").contains("ghp_abc"));
        let app =
            AppCredentials::new("42", &Secret::new(TEST_KEY_PKCS1), Installation::Id(1)).unwrap();
        assert!(!format!("{app:?}").contains("PRIVATE"));
    }

    #[test]
    fn accepts_pkcs1_and_pkcs8_and_escaped_newlines() {
        let one_line = TEST_KEY_PKCS1.replace('\n', "\\n");
        for pem in [TEST_KEY_PKCS1, TEST_KEY_PKCS8, &one_line] {
            AppCredentials::new("42", &Secret::new(pem), Installation::Id(1)).unwrap();
        }
        let err = AppCredentials::new(
            "42",
            &Secret::new("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"),
            Installation::Id(1),
        )
        .unwrap_err();
        assert!(err.contains("PKCS#1 or PKCS#8"), "{err}");
        assert!(
            AppCredentials::new("", &Secret::new(TEST_KEY_PKCS1), Installation::Id(1)).is_err()
        );
    }

    #[test]
    fn the_jwt_is_rs256_signed_with_the_apps_claims() {
        let app =
            AppCredentials::new("42", &Secret::new(TEST_KEY_PKCS1), Installation::Id(1)).unwrap();
        let jwt = app.jwt(1_000_000);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], 42, "a numeric App id is a JSON number");
        assert_eq!(claims["iat"], 1_000_000 - 60);
        assert_eq!(claims["exp"], 1_000_000 + 540);
        let key = RsaPrivateKey::from_pkcs8_pem(TEST_KEY_PKCS8).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(key.to_public_key());
        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        let by_client_id = AppCredentials::new(
            "Iv23liAbC",
            &Secret::new(TEST_KEY_PKCS1),
            Installation::Id(1),
        )
        .unwrap()
        .jwt(1_000_000);
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(by_client_id.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], "Iv23liAbC", "a client id is a string");
        let mut tampered = format!("{}.{}", parts[0], parts[1]).into_bytes();
        tampered[0] ^= 1;
        assert!(verifier.verify(&tampered, &signature).is_err());
    }

    #[test]
    fn environment_rules() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(matches!(
            Credentials::from_vars(vars(&[]), None).unwrap(),
            Credentials::None
        ));
        assert!(matches!(
            Credentials::from_vars(vars(&[("GITHUB_TOKEN", "t")]), None).unwrap(),
            Credentials::Token(_)
        ));
        let err = Credentials::from_vars(vars(&[("GITHUB_APP_ID", "1")]), None).unwrap_err();
        assert!(err.contains("go together"), "{err}");
        let err = Credentials::from_vars(
            vars(&[("GITHUB_APP_ID", "1"), ("GITHUB_APP_PRIVATE_KEY", "x")]),
            None,
        )
        .unwrap_err();
        assert!(err.contains("no organization"), "{err}");
    }

    #[test]
    fn token_permissions_are_parsed_strictly() {
        let app = |spec: &str| {
            AppCredentials::new("42", &Secret::new(TEST_KEY_PKCS1), Installation::Id(1))
                .unwrap()
                .with_permissions(spec)
        };
        let narrowed = app(" contents:read, metadata:read ,").unwrap();
        assert_eq!(
            narrowed.permissions.into_iter().collect::<Vec<_>>(),
            [
                ("contents".to_string(), "read".to_string()),
                ("metadata".to_string(), "read".to_string())
            ]
        );
        assert!(app("").unwrap().permissions.is_empty());
        for bad in ["contents", "contents:none", "Contents:read", ":read"] {
            let err = app(bad).unwrap_err();
            assert!(err.contains("GITHUB_APP_TOKEN_PERMISSIONS"), "{bad}: {err}");
        }
    }

    #[test]
    fn tokens_are_refreshed_five_minutes_before_expiry() {
        let token = InstallationToken {
            token: Secret::new("x"),
            expires_at_unix: 10_000,
        };
        assert!(token.usable_at(10_000 - 301));
        assert!(!token.usable_at(10_000 - 300));
    }
}

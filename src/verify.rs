//! verify: is this delivery signed by GitHub with one of our webhook secrets?
//!
//! GitHub signs the raw request body with HMAC-SHA256 and sends `X-Hub-Signature-256: sha256=<64 hex>`.
//! The check runs over the exact bytes received, before any parsing, so a re-serialised payload can
//! never pass.
//!
//! Two steps, so a request can be refused before its body is read: `parse_signature` checks the header
//! (strict `sha256=` prefix, 64 hex digits) from the request head alone; `verify_digest` compares the
//! digest with the body's HMAC under every configured secret. The comparison has two implementations
//! with one contract (constant time, any secret may match, checked against the same vectors in
//! `tests/fixtures/signature-vectors.json`): `hmac`'s `verify_slice` here (native, tests, fuzzing), and
//! in workerd the runtime's WebCrypto `crypto.subtle.verify("HMAC", …)` (src/glue.rs), which is
//! BoringSSL's constant-time comparison and hashes natively instead of in wasm (several times faster
//! on a large push).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";
const DIGEST_HEX_LEN: usize = 64;

/// The webhook secrets in force. Several at once let a secret be rotated without dropping deliveries:
/// add the new one, change it on GitHub, then remove the old one.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<Vec<u8>>);

impl WebhookSecrets {
    /// Parses the `WEBHOOK_SECRET` value: one secret, or several separated by commas. Blank entries are
    /// dropped so a trailing comma cannot turn into an empty (and trivially forgeable) secret.
    pub fn parse(value: &str) -> WebhookSecrets {
        WebhookSecrets(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The secrets' bytes, for an implementation of the comparison outside this module (WebCrypto).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }
}

// Never print the secrets, not even in a debug dump of the configuration.
impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} configured)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    /// Not `sha256=` followed by 64 hex digits. The detail names what is wrong, never the value.
    Malformed(&'static str),
    Mismatch,
    /// The worker has no secret configured: every delivery is refused rather than accepted unsigned.
    NoSecretConfigured,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureError::Missing => f.write_str("missing X-Hub-Signature-256 header"),
            SignatureError::Malformed(why) => {
                write!(f, "malformed X-Hub-Signature-256 header: {why}")
            }
            SignatureError::Mismatch => {
                f.write_str("X-Hub-Signature-256 does not match the body for any configured secret")
            }
            SignatureError::NoSecretConfigured => {
                f.write_str("no webhook secret is configured (set WEBHOOK_SECRET)")
            }
        }
    }
}

/// The 32-byte HMAC-SHA256 digest a delivery claims.
pub type Digest = [u8; 32];

/// Checks the signature header and the body against every configured secret (both steps at once).
pub fn verify_signature(
    secrets: &WebhookSecrets,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let digest = parse_signature(header)?;
    verify_digest(secrets, &digest, body)
}

/// The native comparison: does `digest` equal HMAC-SHA256(secret, body) for any configured secret?
/// Constant time per secret (`verify_slice`).
pub fn verify_digest(
    secrets: &WebhookSecrets,
    digest: &Digest,
    body: &[u8],
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let matches = secrets.0.iter().any(|secret| {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(body);
        mac.verify_slice(digest).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header alone: present, `sha256=`, 64 hex digits. Runs before the body is read, so a request
/// without a well-formed signature costs no body read at all.
pub fn parse_signature(header: Option<&str>) -> Result<Digest, SignatureError> {
    parse_header(header.ok_or(SignatureError::Missing)?)
}

fn parse_header(header: &str) -> Result<Digest, SignatureError> {
    let hex_digest = header
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::Malformed("expected the sha256= prefix"))?;
    if hex_digest.len() != DIGEST_HEX_LEN {
        return Err(SignatureError::Malformed("expected 64 hex digits"));
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest)
        .map_err(|_| SignatureError::Malformed("expected 64 hex digits"))?;
    Ok(digest)
}

/// The header value GitHub would send for `body` signed with `secret`. Used by tests and by the replay
/// tooling; the worker itself only verifies.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"zen":"Keep it logically awesome."}"#;

    #[test]
    fn github_documented_example_verifies() {
        // The worked example from GitHub's "Validating webhook deliveries" documentation.
        let secrets = WebhookSecrets::parse("It's a Secret to Everybody");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            header
        );
        assert_eq!(
            verify_signature(&secrets, Some(header), b"Hello, World!"),
            Ok(())
        );
    }

    #[test]
    fn accepts_any_of_the_rotated_secrets() {
        let secrets = WebhookSecrets::parse("old-secret, new-secret,");
        assert_eq!(secrets.len(), 2);
        for secret in ["old-secret", "new-secret"] {
            let header = sign(secret.as_bytes(), BODY);
            assert_eq!(verify_signature(&secrets, Some(&header), BODY), Ok(()));
        }
        let header = sign(b"retired-secret", BODY);
        assert_eq!(
            verify_signature(&secrets, Some(&header), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_body_fails() {
        let secrets = WebhookSecrets::parse("s3cret");
        let header = sign(b"s3cret", BODY);
        let mut tampered = BODY.to_vec();
        tampered[5] ^= 1;
        assert_eq!(
            verify_signature(&secrets, Some(&header), &tampered),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn odd_headers_are_errors_not_panics() {
        let secrets = WebhookSecrets::parse("s3cret");
        let valid = sign(b"s3cret", BODY);
        let cases: Vec<(String, SignatureError)> = vec![
            (
                "".into(),
                SignatureError::Malformed("expected the sha256= prefix"),
            ),
            (
                "sha1=abc".into(),
                SignatureError::Malformed("expected the sha256= prefix"),
            ),
            (
                valid.replace("sha256=", "SHA256="),
                SignatureError::Malformed("expected the sha256= prefix"),
            ),
            (
                "sha256=".into(),
                SignatureError::Malformed("expected 64 hex digits"),
            ),
            (
                format!("{valid}00"),
                SignatureError::Malformed("expected 64 hex digits"),
            ),
            (
                valid[..valid.len() - 1].to_string(),
                SignatureError::Malformed("expected 64 hex digits"),
            ),
            (
                format!("sha256={}", "zz".repeat(32)),
                SignatureError::Malformed("expected 64 hex digits"),
            ),
            // 64 bytes, but multi-byte characters: must not slice inside a character.
            (
                format!("sha256={}", "é".repeat(32)),
                SignatureError::Malformed("expected 64 hex digits"),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                verify_signature(&secrets, Some(&header), BODY),
                Err(expected),
                "{header:?}"
            );
        }
        assert_eq!(
            verify_signature(&secrets, None, BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn without_a_secret_nothing_is_accepted() {
        for value in ["", " , ,"] {
            let secrets = WebhookSecrets::parse(value);
            assert_eq!(
                verify_signature(&secrets, Some(&sign(b"", BODY)), BODY),
                Err(SignatureError::NoSecretConfigured)
            );
        }
    }

    /// The vectors the WebCrypto path is checked against in workerd (tests/workerd/http.test.mjs):
    /// one table, two implementations, one contract.
    #[test]
    fn shared_signature_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/signature-vectors.json")).unwrap();
        let vectors = vectors["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 8);
        for v in vectors {
            let secrets = WebhookSecrets::parse(v["secrets"].as_str().unwrap());
            let body = v["body"].as_str().unwrap().as_bytes();
            let header = v["header"].as_str();
            let got = match verify_signature(&secrets, header, body) {
                Ok(()) => "match",
                Err(SignatureError::Mismatch) => "mismatch",
                Err(SignatureError::Missing) | Err(SignatureError::Malformed(_)) => "malformed",
                Err(SignatureError::NoSecretConfigured) => "unconfigured",
            };
            assert_eq!(got, v["expect"].as_str().unwrap(), "{v}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secrets = WebhookSecrets::parse("top-secret-value");
        assert!(!format!("{secrets:?}").contains("top-secret-value"));
    }
}

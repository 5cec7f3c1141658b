//! The GitHub App's private key, read from the PEM text GitHub hands out into the PKCS#8 DER that
//! WebCrypto imports. It is a setting's value (`config::AppCredentials`), read once with the
//! configuration, so it sits below `config`; signing with it is `app_auth`'s, through the `Platform`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The App's private key as PKCS#8 DER, the form WebCrypto's `importKey("pkcs8", …)` takes. `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(Vec<u8>);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bytes of PKCS#8 DER)", self.0.len())
    }
}

impl PrivateKey {
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.0
    }
}

/// `rsaEncryption` (1.2.840.113549.1.1.1), the algorithm a PKCS#8 RSA key names, DER-encoded.
const RSA_ENCRYPTION_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// Reads a PEM private key. GitHub hands out PKCS#1 (`BEGIN RSA PRIVATE KEY`), which WebCrypto cannot
/// import, so it is wrapped into PKCS#8 (`BEGIN PRIVATE KEY`), which is also accepted as it is. A key
/// pasted into a one-line secret with literal `\n` sequences is read too.
pub fn parse_private_key(pem: &str) -> Result<PrivateKey, String> {
    let pem = pem.replace("\\n", "\n").replace('\r', "");
    let (label, der) = pem_block(&pem)?;
    match label {
        "RSA PRIVATE KEY" => {
            check_der_sequence(&der).map_err(|why| format!("the PKCS#1 key is not DER: {why}"))?;
            Ok(PrivateKey(pkcs1_to_pkcs8(&der)))
        }
        "PRIVATE KEY" => {
            check_der_sequence(&der).map_err(|why| format!("the PKCS#8 key is not DER: {why}"))?;
            // The AlgorithmIdentifier sits within the first few bytes; WebCrypto's RSASSA import needs RSA.
            let head = &der[..der.len().min(32)];
            if !head
                .windows(RSA_ENCRYPTION_OID.len())
                .any(|w| w == RSA_ENCRYPTION_OID)
            {
                return Err("the PKCS#8 key is not an RSA key (GitHub Apps sign with RSA)".into());
            }
            Ok(PrivateKey(der))
        }
        "ENCRYPTED PRIVATE KEY" => {
            Err("the key is encrypted; store it unencrypted, as GitHub issues it".into())
        }
        other => Err(format!(
            "a PEM `{}` block is not a private key (expected `RSA PRIVATE KEY` or `PRIVATE KEY`)",
            crate::read::truncate_for_message(other)
        )),
    }
}

/// The first PEM block: its label and its base64-decoded contents.
fn pem_block(pem: &str) -> Result<(&str, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("no `-----BEGIN …-----` line (a PEM key is expected)")?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("the BEGIN line is not closed")?;
    let label = &rest[..label_end];
    let body = &rest[label_end + "-----".len()..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body
        .find(&end_marker)
        .ok_or("no matching `-----END …-----` line")?;
    let base64_text: String = body[..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if base64_text.contains(':') {
        // `Proc-Type: 4,ENCRYPTED` headers: OpenSSL's legacy encrypted PKCS#1.
        return Err("the key is encrypted; store it unencrypted, as GitHub issues it".into());
    }
    let der = STANDARD
        .decode(base64_text)
        .map_err(|_| "the PEM body is not base64")?;
    Ok((label, der))
}

/// Checks that `der` is exactly one DER SEQUENCE (tag, definite length, nothing after it).
fn check_der_sequence(der: &[u8]) -> Result<(), String> {
    let (&tag, rest) = der.split_first().ok_or("empty")?;
    if tag != 0x30 {
        return Err("does not start with a SEQUENCE".into());
    }
    let (&first, rest) = rest.split_first().ok_or("truncated length")?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err("unsupported length encoding".into());
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (length, &rest[count..])
    };
    if length != rest.len() {
        return Err(format!(
            "the SEQUENCE says {length} bytes but {} follow",
            rest.len()
        ));
    }
    Ok(())
}

/// A DER length: short form below 128, else `0x80 | n` followed by n big-endian bytes (X.690 8.1.3).
pub(crate) fn der_length(length: usize) -> Vec<u8> {
    if length < 0x80 {
        return vec![length as u8];
    }
    let bytes: Vec<u8> = length
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Wraps a PKCS#1 `RSAPrivateKey` into a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// `SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption, NULL }, OCTET STRING { pkcs1 } }`.
pub fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x02, 0x01, 0x00]; // version 0
    inner.extend([0x30, 0x0d]); // AlgorithmIdentifier
    inner.extend(RSA_ENCRYPTION_OID);
    inner.extend([0x05, 0x00]); // parameters: NULL
    inner.push(0x04); // privateKey: OCTET STRING
    inner.extend(der_length(pkcs1.len()));
    inner.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    out.extend(der_length(inner.len()));
    out.extend(inner);
    out
}

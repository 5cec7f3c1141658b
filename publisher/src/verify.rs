//! Did the registry keep what we sent? Verdaccio can store the tarball of the upload that LOST a
//! same-version race (it writes the file before it checks the version), so after every upload, and after
//! every 409, the stored tarball is downloaded and compared with both our bytes and the registry's
//! metadata.

use base64::Engine;
use sha1::Digest as _;

use crate::registry::Dist;

/// The two digests npm records for a tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Hex SHA-1: `dist.shasum`, which Verdaccio checks on upload.
    pub shasum: String,
    /// `sha512-<base64>`: `dist.integrity`, which npm clients check on install.
    pub integrity: String,
}

impl Digests {
    pub fn of(bytes: &[u8]) -> Digests {
        let sha1 = sha1::Sha1::digest(bytes);
        let sha512 = sha2::Sha512::digest(bytes);
        Digests {
            shasum: sha1.iter().map(|b| format!("{b:02x}")).collect(),
            integrity: format!(
                "sha512-{}",
                base64::engine::general_purpose::STANDARD.encode(sha512)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Metadata and stored bytes are exactly what we sent.
    Ours,
    /// The registry is consistent, but holds someone else's tarball for this version.
    Theirs { stored: String },
    /// The stored bytes do not match the registry's own metadata: consumers will fail to install.
    Inconsistent { metadata: String, stored: String },
}

/// Compares what we sent, what the metadata says, and what the registry serves.
pub fn judge(sent: &Digests, metadata: &Dist, stored: &Digests) -> Verdict {
    let metadata_matches_stored = metadata.shasum.eq_ignore_ascii_case(&stored.shasum)
        && metadata
            .integrity
            .as_deref()
            .is_none_or(|i| i == stored.integrity);
    if !metadata_matches_stored {
        return Verdict::Inconsistent {
            metadata: metadata.shasum.clone(),
            stored: stored.shasum.clone(),
        };
    }
    if stored == sent {
        Verdict::Ours
    } else {
        Verdict::Theirs {
            stored: stored.shasum.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(d: &Digests, integrity: bool) -> Dist {
        Dist {
            shasum: d.shasum.clone(),
            integrity: integrity.then(|| d.integrity.clone()),
            tarball: String::new(),
        }
    }

    #[test]
    fn known_digests() {
        // `printf hello | sha1sum` and `| openssl dgst -sha512 -binary | base64`.
        let d = Digests::of(b"hello");
        assert_eq!(d.shasum, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(
            d.integrity,
            "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw=="
        );
    }

    #[test]
    fn verdicts() {
        let ours = Digests::of(b"ours");
        let theirs = Digests::of(b"theirs");
        assert_eq!(judge(&ours, &dist(&ours, true), &ours), Verdict::Ours);
        assert_eq!(judge(&ours, &dist(&ours, false), &ours), Verdict::Ours);
        assert_eq!(
            judge(&ours, &dist(&theirs, true), &theirs),
            Verdict::Theirs {
                stored: theirs.shasum.clone()
            }
        );
        // The race Verdaccio allows: metadata of the winner, bytes of the loser (us).
        assert_eq!(
            judge(&ours, &dist(&theirs, true), &ours),
            Verdict::Inconsistent {
                metadata: theirs.shasum.clone(),
                stored: ours.shasum.clone()
            }
        );
        // Same sha1, other integrity: the metadata lies about the bytes.
        let mut odd = dist(&ours, true);
        odd.integrity = Some(theirs.integrity.clone());
        assert!(matches!(
            judge(&ours, &odd, &ours),
            Verdict::Inconsistent { .. }
        ));
    }
}

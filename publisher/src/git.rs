//! Running git. Arguments go straight to the process (no shell), and git's messages are scrubbed of any
//! credentials a clone URL may carry before they are shown.

use std::path::Path;
use std::process::{Command, Stdio};

/// A full commit id (SHA-1, or SHA-256 for repositories that use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSha(String);

impl CommitSha {
    pub fn parse(raw: &str) -> Result<CommitSha, String> {
        let sha = raw.trim().to_ascii_lowercase();
        if (sha.len() == 40 || sha.len() == 64) && sha.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(CommitSha(sha))
        } else {
            Err(format!(
                "commit sha {raw:?} is not a full 40-character hex commit id"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Replaces `scheme://user:password@` with `scheme://***@` anywhere in `text`.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***");
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Runs `git -C dir args…` and returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        // Never wait for a password prompt in CI.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        String::from_utf8(output.stdout).map_err(|_| format!("git {} printed non-UTF-8", args[0]))
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect();
        Err(redact_credentials(&format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or(""),
            message.join(" / ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shas() {
        let sha = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(
            CommitSha::parse(sha).unwrap().as_str(),
            sha.to_ascii_lowercase()
        );
        assert!(CommitSha::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "",
            "abc123",
            "--upload-pack=evil",
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(CommitSha::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_scrubbed() {
        assert_eq!(
            redact_credentials(
                "fatal: could not read from 'https://x-access-token:ghs_abc@github.com/o/r.git'"
            ),
            "fatal: could not read from 'https://***@github.com/o/r.git'"
        );
        assert_eq!(
            redact_credentials("file:///tmp/a.git and http://h/x"),
            "file:///tmp/a.git and http://h/x"
        );
    }
}

//! Domain types shared by the stages. Names say what a thing is to GitHub and to the studio.

use std::fmt;

/// A GitHub repository as `owner/name`. GitHub treats these case-insensitively, so equality and lookups use
/// the lower-cased key while the original spelling is kept for display and for the dispatch payload.
#[derive(Debug, Clone)]
pub struct RepoName {
    full_name: String,
    key: String,
}

impl RepoName {
    /// Accepts `owner/name`, with or without a `https://github.com/` prefix, a `.git` suffix or a trailing
    /// slash, the spellings people paste into the registry file.
    pub fn parse(input: &str) -> Option<RepoName> {
        let trimmed = input.trim();
        let without_scheme = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .map(|rest| rest.strip_prefix("www.").unwrap_or(rest))
            .map(|rest| rest.strip_prefix("github.com/"))
            .unwrap_or(Some(trimmed))?;
        let path = without_scheme.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let (owner, name) = path.split_once('/')?;
        if !is_valid_segment(owner) || !is_valid_segment(name) {
            return None;
        }
        let full_name = format!("{owner}/{name}");
        let key = full_name.to_ascii_lowercase();
        Some(RepoName { full_name, key })
    }

    pub fn as_str(&self) -> &str {
        &self.full_name
    }

    /// The case-insensitive identity used for registry lookups.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// GitHub owner and repository names: ASCII letters, digits, `-`, `_`, `.`; 100 characters at most.
fn is_valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 100
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl PartialEq for RepoName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for RepoName {}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_people_paste() {
        for input in [
            "Studio/Core-Utils",
            "https://github.com/Studio/Core-Utils",
            "https://github.com/Studio/Core-Utils/",
            "https://github.com/Studio/Core-Utils.git",
            "http://www.github.com/Studio/Core-Utils",
            "  Studio/Core-Utils \n",
        ] {
            let name = RepoName::parse(input).unwrap_or_else(|| panic!("{input:?} should parse"));
            assert_eq!(name.as_str(), "Studio/Core-Utils", "{input:?}");
            assert_eq!(name.key(), "studio/core-utils", "{input:?}");
        }
    }

    #[test]
    fn compares_case_insensitively_and_keeps_the_original_spelling() {
        let a = RepoName::parse("Codertocat/Hello-World").unwrap();
        let b = RepoName::parse("codertocat/hello-world").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "Codertocat/Hello-World");
    }

    #[test]
    fn rejects_what_is_not_a_repository() {
        for input in [
            "",
            "studio",
            "studio/",
            "/repo",
            "studio/repo/extra",
            "https://gitlab.com/studio/repo",
            "studio/re po",
            "studio/..",
            "stüdio/repo",
        ] {
            assert!(
                RepoName::parse(input).is_none(),
                "{input:?} should be rejected"
            );
        }
    }
}

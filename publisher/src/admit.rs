//! May this request publish at all? A `package_publish` dispatch can come from anyone allowed to create
//! `repository_dispatch` events on the central repository (GitHub: "POST /repos/{owner}/{repo}/dispatches"
//! needs only write access), and the App can read far more repositories than the studio registered. So
//! the publish job checks the dispatched repository against `config/repositories.json` at the central
//! repository's own commit, with the worker's parser: registered and `active`, or nothing is published.

use upm_relay::model::RepoName;
use upm_relay::registry::{Lookup, Registry};

/// What the registry file says of an admitted repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Only tarballs signed by Unity's CLI may be published (`require_signed`).
    pub require_signed: bool,
}

/// `Ok` when `repository` is registered and active in the registry file `registry_text` (read from
/// `file`, named in the messages); otherwise why not, in words for the on-call engineer.
pub fn check_registered(
    registry_text: &str,
    file: &str,
    repository: &str,
) -> Result<Admitted, String> {
    let registry = Registry::parse(registry_text).map_err(|e| format!("{file} is invalid: {e}"))?;
    let name = RepoName::parse(repository)
        .ok_or_else(|| format!("repository {repository:?} is not owner/name"))?;
    match registry.lookup(&name) {
        Lookup::Active(entry) => Ok(Admitted {
            require_signed: entry.require_signed,
        }),
        Lookup::Inactive(status) => Err(format!(
            "{name} is {} in {file}: nothing is published for it (set it active to publish)",
            status.as_str()
        )),
        Lookup::NotRegistered => Err(format!(
            "{name} is not registered in {file}: nothing is published for it (add it with `upm registry add`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"$schema": "./schema.json", "repositories": [
        {"url": "https://github.com/Studio/Core", "status": "active"},
        {"url": "https://github.com/Studio/Signed.git", "status": "active", "require_signed": true},
        {"url": "https://github.com/Studio/paused", "status": "disabled"},
        {"url": "https://github.com/Studio/new", "status": "pending"}
    ]}"#;

    #[test]
    fn an_active_repository_may_publish_whatever_the_spelling() {
        for spelling in [
            "Studio/Core",
            "studio/core",
            "https://github.com/studio/core.git",
        ] {
            assert_eq!(
                check_registered(FILE, "config/repositories.json", spelling),
                Ok(Admitted {
                    require_signed: false
                })
            );
        }
    }

    #[test]
    fn require_signed_comes_from_the_repositorys_entry() {
        assert_eq!(
            check_registered(FILE, "config/repositories.json", "studio/signed"),
            Ok(Admitted {
                require_signed: true
            })
        );
    }

    #[test]
    fn a_disabled_pending_or_unknown_repository_may_not() {
        let refused = |repo| check_registered(FILE, "config/repositories.json", repo).unwrap_err();
        assert_eq!(
            refused("Studio/paused"),
            "Studio/paused is disabled in config/repositories.json: nothing is published for it (set it active to publish)"
        );
        assert!(refused("Studio/new").contains("is pending in"));
        assert_eq!(
            refused("Other/repo"),
            "Other/repo is not registered in config/repositories.json: nothing is published for it (add it with `upm registry add`)"
        );
        assert!(refused("no-slash").contains("is not owner/name"));
    }

    #[test]
    fn an_invalid_registry_file_refuses_everything_and_says_why() {
        let error = check_registered("{", "config/repositories.json", "Studio/Core").unwrap_err();
        assert!(
            error.starts_with("config/repositories.json is invalid: "),
            "{error}"
        );
    }
}

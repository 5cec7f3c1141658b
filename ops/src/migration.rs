//! migration: the decisions of `upm migrate` — is a repository ready to lose its dispatcher workflow,
//! and what the pull requests say. Pure; `cmd_migrate` gathers the facts.

use serde::Serialize;

/// The per-repository dispatcher workflows this project replaces: the dispatcher the studio installed
/// last, and the older publish workflow some repositories still carry.
pub const DISPATCHER_FILES: [&str; 2] = [
    ".github/workflows/upm-publish-dispatcher.yml",
    ".github/workflows/publish-upm.yml",
];

/// Where the rollback puts the dispatcher back.
pub const RESTORED_FILE: &str = ".github/workflows/upm-publish-dispatcher.yml";

/// Branches our pull requests come from: fixed names, so a re-run finds its own work.
pub const REMOVE_BRANCH: &str = "upm/remove-dispatchers";
pub const RESTORE_BRANCH: &str = "upm/restore-dispatcher";

/// The central workflow whose `run-name` names the repository it published.
pub const PUBLISH_WORKFLOW: &str = "handle-publish-request.yml";

/// The dispatcher template kept in this repository (templates/), with the central repository and the
/// publishing branch filled in by [`render_dispatcher`].
pub const DISPATCHER_TEMPLATE: &str = include_str!("../../templates/upm-publish-dispatcher.yml");

/// What GitHub says about one repository, gathered by `cmd_migrate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub repository: String,
    /// `active`, `disabled`, `pending`, or `None` when not registered.
    pub registered: Option<String>,
    /// When the organization hook last delivered a push of this repository with a 2xx answer.
    pub last_ok_push_delivery: Option<String>,
    /// Push deliveries of this repository in the window that no attempt delivered.
    pub failed_push_deliveries: usize,
    /// The latest central publish run naming this repository.
    pub last_central_run: Option<String>,
    pub dispatcher_files: Vec<String>,
    /// Problems gathering facts (the repository unreadable, the hook unknown…).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    #[serde(flatten)]
    pub facts: Facts,
    pub passed: bool,
    pub problems: Vec<String>,
}

/// The seed's pre-removal validation: registered and active; the organization webhook delivered this
/// repository's pushes recently, with 2xx and none left failed; the central workflow ran for it
/// recently. (The dispatcher files are reported; having none left is not a failure.)
pub fn evaluate(facts: Facts) -> Check {
    let mut problems = facts.errors.clone();
    match facts.registered.as_deref() {
        Some("active") => {}
        Some(other) => problems.push(format!("registered but {other}")),
        None => problems.push("not registered".into()),
    }
    if facts.last_ok_push_delivery.is_none() {
        problems.push("no successful webhook delivery of a push in the window".into());
    }
    if facts.failed_push_deliveries > 0 {
        problems.push(format!(
            "{} push delivery(ies) failed and were not redelivered",
            facts.failed_push_deliveries
        ));
    }
    if facts.last_central_run.is_none() {
        problems.push("no central publish run for it in the window".into());
    }
    Check {
        passed: problems.is_empty(),
        problems,
        facts,
    }
}

/// The template with the central repository and the publishing branch filled in.
pub fn render_dispatcher(central: &str, branch: &str) -> String {
    DISPATCHER_TEMPLATE
        .replace(
            "CENTRAL_REPOSITORY: The1Studio/UPMAutoPublisher",
            &format!("CENTRAL_REPOSITORY: {central}"),
        )
        .replace(
            "branches: [main]",
            &format!("branches: [{}]", yaml_scalar(branch)),
        )
}

/// A branch name as a YAML flow scalar (quoted when it could be read as something else).
fn yaml_scalar(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
        && !text.is_empty()
    {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

pub fn removal_title() -> &'static str {
    "Remove the UPM dispatcher workflow: the organization webhook publishes now"
}

pub fn removal_body(repository: &str, files: &[String], central: &str) -> String {
    let list: String = files.iter().map(|f| format!("- `{f}`\n")).collect();
    format!(
        "## What changes\n\nDeletes the per-repository dispatcher workflow:\n\n{list}\n\
         ## Why\n\nPushes of `{repository}` are now relayed by the organization webhook to `{central}`, which publishes \
         the UPM packages whose `version` changed. The dispatcher would send a second, redundant publish request for \
         every push, and it needed a token in this repository. `upm migrate check {repository}` verified before this \
         pull request that the webhook delivered this repository's pushes with 2xx and that the central workflow ran \
         for it.\n\n\
         ## How to test\n\nAfter merging, bump a package's `version` in its `package.json` and push to the publishing \
         branch. Within a minute `{central}`'s *Handle publish request* workflow runs for this repository (its \
         run name names the repository and the commit), and `upm status` shows the new version published.\n\n\
         Rollback: `upm migrate restore-dispatchers --only {repository} --apply` re-adds a dispatcher.\n"
    )
}

pub fn restore_title() -> &'static str {
    "Restore the UPM dispatcher workflow (rollback from the organization webhook)"
}

pub fn restore_body(repository: &str, central: &str) -> String {
    format!(
        "## What changes\n\nAdds `{RESTORED_FILE}`: on a push that changes a `package.json` on the publishing branch, it \
         sends a `package_publish` dispatch to `{central}` (package path `*`: the publisher finds every package and \
         publishes the versions not yet published).\n\n\
         ## Why\n\nThe organization webhook relay is being rolled back; until it is back, this workflow requests the \
         publishes for `{repository}`.\n\n\
         ## How to test\n\nThe repository needs the secret `UPM_DISPATCH_TOKEN` (a token allowed to create dispatches on \
         `{central}`). Bump a package's `version`, push, and check that `{central}`'s *Handle publish request* workflow \
         runs for this repository.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            repository: "Studio/A".into(),
            registered: Some("active".into()),
            last_ok_push_delivery: Some("2026-11-27T08:00:00Z".into()),
            failed_push_deliveries: 0,
            last_central_run: Some("2026-11-27T08:01:00Z".into()),
            dispatcher_files: vec![DISPATCHER_FILES[0].into()],
            errors: vec![],
        }
    }

    #[test]
    fn passes_only_with_every_piece_of_evidence() {
        assert!(evaluate(facts()).passed);
        let cases: Vec<(Facts, &str)> = vec![
            (
                Facts {
                    registered: None,
                    ..facts()
                },
                "not registered",
            ),
            (
                Facts {
                    registered: Some("disabled".into()),
                    ..facts()
                },
                "registered but disabled",
            ),
            (
                Facts {
                    last_ok_push_delivery: None,
                    ..facts()
                },
                "no successful webhook delivery",
            ),
            (
                Facts {
                    failed_push_deliveries: 2,
                    ..facts()
                },
                "2 push delivery(ies) failed",
            ),
            (
                Facts {
                    last_central_run: None,
                    ..facts()
                },
                "no central publish run",
            ),
            (
                Facts {
                    errors: vec!["GET /repos/Studio/A: 404".into()],
                    ..facts()
                },
                "404",
            ),
        ];
        for (facts, expected) in cases {
            let check = evaluate(facts);
            assert!(!check.passed);
            assert!(
                check.problems.iter().any(|p| p.contains(expected)),
                "{:?}",
                check.problems
            );
        }
        // No dispatcher left is not a failure: there is just nothing to remove.
        assert!(
            evaluate(Facts {
                dispatcher_files: vec![],
                ..facts()
            })
            .passed
        );
    }

    #[test]
    fn the_template_is_filled_in() {
        let text = render_dispatcher("Studio/Central", "release/2026");
        assert!(
            text.contains("CENTRAL_REPOSITORY: Studio/Central"),
            "{text}"
        );
        assert!(text.contains("branches: [release/2026]"), "{text}");
        assert!(!text.contains("The1Studio/UPMAutoPublisher"));
        assert!(render_dispatcher("S/C", "we ird").contains("branches: [\"we ird\"]"));
        // Every package: the publisher treats "*" as "find them all".
        assert!(
            DISPATCHER_TEMPLATE.contains("package_path: \"*\""),
            "the template must ask for every package"
        );
    }
}

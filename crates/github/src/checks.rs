//! checks: check runs (GitHub's REST "Checks" API, `checks: write`, GitHub Apps only), and the pure
//! rules of how a report is cut to fit them.
//!
//! Limits, from the REST description of "Create a check run" / "Update a check run":
//! - `output.summary` and `output.text`: at most 65535 characters each;
//! - `output.annotations`: at most 50 per request; "each time you update the check run, annotations are
//!   appended to the list of annotations that already exist", so more go out in further updates;
//! - `conclusion` is required when `status` is `completed`.

use serde::{Deserialize, Serialize};

use crate::client::{segment, GitHub};
use crate::error::Result;

/// GitHub's cap on `output.summary` (and `output.text`), in characters.
pub const SUMMARY_MAX_CHARS: usize = 65535;
/// GitHub's cap on `output.annotations` in one request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Neutral,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationLevel {
    Notice,
    Warning,
    Failure,
}

/// One annotation: a file of the repository (its path from the root) and the line it points at. A
/// problem that is about a whole file (a missing `.meta`) points at line 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub annotation_level: AnnotationLevel,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Output {
    pub title: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

#[derive(Debug, Clone, Serialize)]
struct Create<'a> {
    name: &'a str,
    head_sha: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Output>,
}

#[derive(Debug, Clone, Serialize)]
struct Update<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conclusion: Option<Conclusion>,
    output: Output,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<Conclusion>,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct CheckRunList {
    check_runs: Vec<CheckRun>,
}

fn repo_path(full_name: &str) -> String {
    match full_name.split_once('/') {
        Some((owner, name)) => format!("{}/{}", segment(owner), segment(name)),
        None => segment(full_name),
    }
}

/// `summary` cut to GitHub's 65535 characters, on a character boundary, saying it was cut.
pub fn fit_summary(summary: &str) -> String {
    if summary.chars().count() <= SUMMARY_MAX_CHARS {
        return summary.to_string();
    }
    const NOTE: &str = "\n\n… (cut to GitHub's 65535-character limit; the job summary has it all)";
    let keep = SUMMARY_MAX_CHARS - NOTE.chars().count();
    let mut cut: String = summary.chars().take(keep).collect();
    cut.push_str(NOTE);
    cut
}

/// The annotations in requests of at most 50: the first batch goes with the completing update, the
/// rest in further updates (GitHub appends them). At least one batch, possibly empty.
pub fn batches(annotations: &[Annotation]) -> Vec<&[Annotation]> {
    if annotations.is_empty() {
        return vec![&[]];
    }
    annotations.chunks(ANNOTATIONS_PER_REQUEST).collect()
}

impl GitHub {
    /// `POST /repos/{owner}/{repo}/check-runs` with status `in_progress`: the pull request shows the
    /// check as running until `complete_check_run`.
    pub fn start_check_run(
        &self,
        full_name: &str,
        name: &str,
        head_sha: &str,
        details_url: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<CheckRun> {
        self.post(
            &format!("/repos/{}/check-runs", repo_path(full_name)),
            &Create {
                name,
                head_sha,
                status: "in_progress",
                details_url,
                external_id,
                output: None,
            },
        )
    }

    /// Completes a check run with its conclusion and output: one `PATCH` carrying the first 50
    /// annotations, then one more per further 50. Returns the number of requests made.
    pub fn complete_check_run(
        &self,
        full_name: &str,
        check_run_id: u64,
        conclusion: Conclusion,
        title: &str,
        summary: &str,
        annotations: &[Annotation],
    ) -> Result<usize> {
        let path = format!("/repos/{}/check-runs/{check_run_id}", repo_path(full_name));
        let summary = fit_summary(summary);
        let mut requests = 0;
        for (i, batch) in batches(annotations).into_iter().enumerate() {
            let update = Update {
                status: (i == 0).then_some("completed"),
                conclusion: (i == 0).then_some(conclusion),
                output: Output {
                    title: title.to_string(),
                    summary: summary.clone(),
                    annotations: batch.to_vec(),
                },
            };
            let _: CheckRun = self.patch(&path, &update)?;
            requests += 1;
        }
        Ok(requests)
    }

    /// The check runs named `name` on a commit (`GET /repos/{owner}/{repo}/commits/{ref}/check-runs`),
    /// newest first as GitHub lists them.
    pub fn check_runs_for(
        &self,
        full_name: &str,
        git_ref: &str,
        name: &str,
    ) -> Result<Vec<CheckRun>> {
        let list: CheckRunList = self.get(&format!(
            "/repos/{}/commits/{}/check-runs?check_name={}&per_page=100",
            repo_path(full_name),
            segment(git_ref),
            segment(name)
        ))?;
        Ok(list.check_runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotation(i: usize) -> Annotation {
        Annotation {
            path: format!("Packages/a/F{i}.cs"),
            start_line: 1,
            end_line: 1,
            annotation_level: AnnotationLevel::Failure,
            message: "has no .meta".into(),
            title: None,
        }
    }

    #[test]
    fn annotations_go_in_batches_of_fifty() {
        let many: Vec<Annotation> = (0..120).map(annotation).collect();
        let sizes: Vec<usize> = batches(&many).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [50, 50, 20]);
        assert_eq!(batches(&many[..50]).len(), 1);
        assert_eq!(
            batches(&[]).len(),
            1,
            "one completing update even with none"
        );
    }

    #[test]
    fn a_long_summary_is_cut_to_the_limit_on_a_character_boundary() {
        let short = "| a | b |";
        assert_eq!(fit_summary(short), short);
        let long = "é".repeat(70_000);
        let cut = fit_summary(&long);
        assert_eq!(cut.chars().count(), SUMMARY_MAX_CHARS);
        assert!(cut.ends_with("the job summary has it all)"));
    }

    #[test]
    fn conclusions_and_levels_are_spelled_as_github_spells_them() {
        assert_eq!(
            serde_json::to_value(Conclusion::Neutral).unwrap(),
            serde_json::json!("neutral")
        );
        assert_eq!(
            serde_json::to_value(annotation(0)).unwrap()["annotation_level"],
            "failure"
        );
    }
}

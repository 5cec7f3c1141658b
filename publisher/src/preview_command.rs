//! `upm-publisher preview`: the glue around `preview` — arguments, the read-only registry client, the
//! table on stdout, the job summary, and the check run on the pull request's head.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use upm_github::checks::{self, AnnotationLevel};
use upm_github::{ClientConfig, Credentials, GitHub};

use crate::git::CommitSha;
use crate::preview::{self, Conclusion, Preview, Settings, CHECK_NAME};
use crate::registry::{Registry, RetryPolicy};

pub const AFTER_HELP: &str = "\
It reads no registry token: NPM_TOKEN is ignored, and the registry client refuses every write.
With --check-run, GITHUB_TOKEN (a GitHub App installation token with checks:write) posts the
check run `UPM publish preview` on --head-sha.

Exit status:
  0  nothing would fail (or, with --check-run, the check run carries the verdict)
  1  a package would fail to publish, or the preview could not be made
  2  usage error";

#[derive(Args)]
pub struct PreviewArgs {
    /// A checkout of the pull request's head, with the history back to the merge base.
    #[arg(long, value_name = "DIR")]
    workspace: PathBuf,

    /// The base to compare with: a ref or sha of the workspace (the pull request's base sha).
    #[arg(long, value_name = "REF")]
    base: String,

    /// The registry's base URL (read only).
    #[arg(long, env = "UPM_REGISTRY", value_name = "URL")]
    registry: String,

    /// Post the result as the check run `UPM publish preview` (needs --repository, --head-sha and
    /// GITHUB_TOKEN).
    #[arg(long, requires_all = ["repository", "head_sha"])]
    check_run: bool,

    /// The pull request's repository, `owner/name`.
    #[arg(long, env = "UPM_REPOSITORY", value_name = "OWNER/NAME")]
    repository: Option<String>,

    /// The pull request's head; the workspace must be at it.
    #[arg(long, env = "UPM_HEAD_SHA", value_name = "SHA")]
    head_sha: Option<String>,

    /// The pull request's number (names the check run's external id).
    #[arg(long, env = "UPM_PULL_REQUEST", value_name = "N")]
    pull_request: Option<u64>,

    /// GitHub's REST API.
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    github_api: String,

    /// Append the Markdown summary to this file (GitHub Actions sets GITHUB_STEP_SUMMARY).
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    summary_file: Option<PathBuf>,

    /// Write the preview as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The studio-wide GUID index cache (as for `publish`).
    #[arg(long, env = "UPM_GUID_CACHE", value_name = "FILE")]
    guid_cache: Option<PathBuf>,

    #[arg(long, env = "UPM_JOBS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    #[arg(long, env = "UPM_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    attempts: u32,

    #[arg(long, env = "UPM_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

fn github_conclusion(c: Conclusion) -> checks::Conclusion {
    match c {
        Conclusion::Success => checks::Conclusion::Success,
        Conclusion::Neutral => checks::Conclusion::Neutral,
        Conclusion::Failure => checks::Conclusion::Failure,
    }
}

fn run_url() -> Option<String> {
    crate::job::run_url(&crate::job::server_url())
}

pub fn command(args: PreviewArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("upm-publisher preview: {message}");
        ExitCode::from(2)
    };
    let policy = RetryPolicy {
        attempts: args.attempts,
        ..RetryPolicy::default()
    };
    let registry =
        match Registry::read_only(&args.registry, policy, Duration::from_secs(args.timeout)) {
            Ok(r) => r,
            Err(e) => return usage(e),
        };
    if let Some(head) = &args.head_sha {
        if let Err(e) = CommitSha::parse(head) {
            return usage(e);
        }
    }
    // The check run goes out first, `in_progress`, so the pull request shows the preview running.
    let mut check = None;
    if args.check_run {
        let repository = args.repository.clone().unwrap_or_default();
        let head = args
            .head_sha
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let credentials = match Credentials::from_env(repository.split('/').next()) {
            Ok(c) => c,
            Err(e) => return usage(e),
        };
        let mut config = ClientConfig::new(&args.github_api);
        config.timeout = Duration::from_secs(args.timeout);
        let github = match GitHub::new(config, credentials) {
            Ok(g) => g,
            Err(e) => return usage(e),
        };
        let external_id = args.pull_request.map(|n| format!("pull-request-{n}"));
        match github.start_check_run(
            &repository,
            CHECK_NAME,
            &head,
            run_url().as_deref(),
            external_id.as_deref(),
        ) {
            Ok(run) => check = Some((github, repository, run.id)),
            Err(e) => {
                eprintln!("upm-publisher preview: cannot create the check run on {repository}@{head}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let settings = Settings {
        registry: &registry,
        jobs: usize::from(args.jobs),
        guid_cache: args.guid_cache.as_deref(),
    };
    let result = crate::checkout::existing(
        &args.workspace,
        args.head_sha
            .as_deref()
            .map(CommitSha::parse)
            .transpose()
            .ok()
            .flatten()
            .as_ref(),
    )
    .and_then(|workspace| preview::preview(&workspace.root, &args.base, &settings));
    let (conclusion, title, summary, annotations) = match &result {
        Ok(p) => report(p, &args),
        Err(e) => {
            eprintln!("upm-publisher preview: FAILED: {e}");
            (
                Conclusion::Failure,
                "The preview could not be made".to_string(),
                format!("The preview could not be made: {e}\n"),
                Vec::new(),
            )
        }
    };
    let mut code = match conclusion {
        Conclusion::Failure => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    };
    if let Some((github, repository, id)) = check {
        match github.complete_check_run(
            &repository,
            id,
            github_conclusion(conclusion),
            &title,
            &summary,
            &annotations,
        ) {
            Ok(_) => {
                eprintln!(
                    "upm-publisher preview: check run {id} completed ({:?}); {} GitHub request(s)",
                    conclusion,
                    github.stats().requests
                );
                if result.is_ok() {
                    code = ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                eprintln!("upm-publisher preview: cannot complete check run {id}: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

/// Prints the table, writes the summary and the JSON, and returns what the check run says.
fn report(
    p: &Preview,
    args: &PreviewArgs,
) -> (Conclusion, String, String, Vec<checks::Annotation>) {
    print!("{}", preview::table(p));
    let summary = preview::markdown(p);
    if let Some(file) = &args.summary_file {
        crate::job::append_summary(
            file,
            &format!("## {CHECK_NAME}\n\n{summary}"),
            "upm-publisher preview",
        );
    }
    if let Some(file) = &args.json {
        if let Err(e) = std::fs::write(file, serde_json::to_vec_pretty(p).unwrap_or_default()) {
            eprintln!("upm-publisher preview: writing {}: {e}", file.display());
        }
    }
    let annotations = preview::annotations(p)
        .into_iter()
        .map(|a| checks::Annotation {
            path: a.path,
            start_line: 1,
            end_line: 1,
            annotation_level: AnnotationLevel::Failure,
            message: a.message,
            title: Some(a.title),
        })
        .collect();
    (
        preview::conclusion(&p.packages),
        preview::title(&p.packages),
        summary,
        annotations,
    )
}

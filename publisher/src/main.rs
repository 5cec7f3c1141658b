//! `upm-publisher`: publishes the UPM packages of one commit to an npm-compatible registry. Run by
//! `.github/workflows/handle-publish-request.yml` for each `package_publish` dispatch from the worker.

mod admit;
mod assets;
mod changelog;
mod checkout;
mod discover;
mod git;
mod guid_index;
mod health;
mod health_run;
mod job;
mod model;
mod notify;
mod order;
mod pack;
mod preview;
mod preview_command;
mod publish;
mod reconcile;
mod registry;
mod run;
mod signing;
mod summary;
mod sweep;
mod validate;
mod verify;
mod visible;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::discover::Request;
use crate::git::CommitSha;
use crate::job::Notification;
use crate::model::{Failed, Outcome, PackagePath, Report, Source, Stage};

const AFTER_HELP: &str = "\
Secrets come from the environment only, never from arguments (other processes can see those):
  NPM_TOKEN             registry token (sent as Bearer), needed to publish
  DISCORD_WEBHOOK_URL   Discord webhook URL; no notification when unset

Exit status:
  0  no package failed
  1  a package failed, or the run could not start (summary, audit file and failure
     notification are still written)
  2  usage error";

#[derive(Parser)]
#[command(
    name = "upm-publisher",
    version,
    about = "Publishes the UPM packages of a commit to an npm-compatible registry (Verdaccio)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Find, validate and publish the packages of one commit, then write changelogs, notify Discord and
    /// write the job summary and audit file.
    #[command(after_help = AFTER_HELP)]
    Publish(PublishArgs),
    /// Show what `publish` would pack for one package directory (files, sizes, shasum), like
    /// `npm pack --dry-run --json`, without contacting any registry.
    Pack(PackArgs),
    /// Find versions on the registered repositories' publishing branches that the registry lacks, and
    /// dispatch their publish (the net under every other net; run on a schedule).
    #[command(after_help = sweep::AFTER_HELP)]
    Reconcile(sweep::ReconcileArgs),
    /// Say what merging a pull request would publish: every package the pull request touched, validated
    /// as `publish` would, with its version change, dist-tag, files and changelog. Never writes to the
    /// registry (no token is read). With --check-run, answers on the pull request as the check run
    /// `UPM publish preview`.
    #[command(after_help = preview_command::AFTER_HELP)]
    Preview(preview_command::PreviewArgs),
    /// Check every package on every registered publishing branch with the publish path's rules and
    /// against the registry, and open one fix pull request per repository for what a machine can fix
    /// (run weekly).
    #[command(after_help = health_run::AFTER_HELP)]
    Health(health_run::HealthArgs),
}

#[derive(Args)]
struct PackArgs {
    /// The package directory (holding package.json).
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// Also write the tarball to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct PublishArgs {
    /// A checkout of the repository at the commit to publish (with history, for changelogs). With
    /// --clone: where to clone (default: a temporary directory).
    #[arg(long, env = "UPM_WORKSPACE", value_name = "DIR")]
    workspace: Option<PathBuf>,

    /// Clone this URL or local path and check out --commit-sha, instead of using a checkout.
    #[arg(
        long,
        env = "UPM_CLONE",
        value_name = "URL_OR_PATH",
        requires = "commit_sha"
    )]
    clone: Option<String>,

    /// The commit to publish (full sha). A given --workspace must be at it.
    #[arg(long, env = "UPM_COMMIT_SHA", value_name = "SHA")]
    commit_sha: Option<String>,

    /// The repository the commit belongs to, `owner/name` (for links and messages).
    #[arg(long, env = "UPM_REPOSITORY", value_name = "OWNER/NAME")]
    repository: Option<String>,

    /// The branch that was pushed (for messages).
    #[arg(long, env = "UPM_BRANCH")]
    branch: Option<String>,

    /// Comma-separated package directories relative to the repository root; `.` is the root. Absent,
    /// empty or `*`: every UPM package in the repository.
    #[arg(long, env = "UPM_PACKAGE_PATHS", value_name = "DIRS")]
    package_paths: Option<String>,

    /// The pushed commit's message (for the notification).
    #[arg(long, env = "UPM_COMMIT_MESSAGE", value_name = "TEXT")]
    commit_message: Option<String>,

    /// The pushed commit's author (for the notification).
    #[arg(long, env = "UPM_COMMIT_AUTHOR", value_name = "NAME")]
    commit_author: Option<String>,

    /// The GitHub delivery id that caused this run (recorded in the audit file).
    #[arg(long, env = "UPM_DELIVERY", value_name = "ID")]
    delivery: Option<String>,

    /// The registry's base URL, e.g. https://npm.studio.example/.
    #[arg(long, env = "UPM_REGISTRY", value_name = "URL")]
    registry: String,

    /// Append a Markdown summary to this file (GitHub Actions sets GITHUB_STEP_SUMMARY).
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    summary_file: Option<PathBuf>,

    /// Write the JSON audit (published / skipped / failed, with reasons) to this file.
    #[arg(long, env = "UPM_AUDIT_FILE", value_name = "FILE")]
    audit_file: Option<PathBuf>,

    /// Post into this thread of the webhook's channel.
    #[arg(long, env = "DISCORD_THREAD_ID", value_name = "ID")]
    discord_thread_id: Option<String>,

    /// Decide and pack everything, but upload nothing, write no changelog and send no notification.
    #[arg(long, env = "UPM_DRY_RUN")]
    dry_run: bool,

    /// Concurrent registry lookups.
    #[arg(long, env = "UPM_JOBS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Attempts per registry or Discord request (retrying 5xx, 429 and network errors).
    #[arg(long, env = "UPM_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    attempts: u32,

    /// Timeout of one HTTP request, in seconds.
    #[arg(long, env = "UPM_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,

    /// Keep the studio-wide GUID index (the GUIDs of every package on the registry, by name@version)
    /// in this file between runs, so an unchanged package is never read again.
    #[arg(long, env = "UPM_GUID_CACHE", value_name = "FILE")]
    guid_cache: Option<PathBuf>,

    /// A directory of tarballs signed by Unity's CLI (`upm pack --organization-id`), named
    /// `<name>-<version>.tgz`: such a package is published from its tarball, byte for byte.
    #[arg(long, env = "UPM_PREBUILT_TARBALLS", value_name = "DIR")]
    prebuilt_tarballs: Option<PathBuf>,

    /// The central repository's registry file (config/repositories.json): when given, `--repository`
    /// must be registered and active there or nothing is published, and its entry may say
    /// `"require_signed": true`, and then unsigned packages are refused. The publish workflow always
    /// gives it.
    #[arg(long, env = "UPM_REGISTRY_FILE", value_name = "FILE")]
    registry_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Publish(args) => publish(args),
        Command::Pack(args) => pack_dry_run(args),
        Command::Reconcile(args) => sweep::command(args),
        Command::Preview(args) => preview_command::command(args),
        Command::Health(args) => health_run::command(args),
    }
}

fn pack_dry_run(args: PackArgs) -> ExitCode {
    match pack::dry_run(&args.dir, args.out.as_deref()) {
        Ok(report) => {
            println!("{report:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("upm-publisher: {e}");
            ExitCode::FAILURE
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `owner/name` as GitHub allows it; anything else is refused before it reaches a URL or a message.
fn check_repository(repo: &str) -> Result<(), String> {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if ok(owner) && ok(name) && name != "." && name != ".." => Ok(()),
        _ => Err(format!("repository {repo:?} is not owner/name")),
    }
}

fn fatal(reason: String) -> Outcome {
    Outcome::Failed(Failed {
        path: PackagePath::root(),
        file: String::new(),
        name: None,
        version: None,
        stage: Stage::Checkout,
        problems: Vec::new(),
        reason,
    })
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn publish(args: PublishArgs) -> ExitCode {
    let started_at = now_rfc3339();
    let published_at = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let server_url = job::server_url();
    let run_url = job::run_url(&server_url);
    let mut source = Source {
        repository: non_empty(args.repository),
        commit_sha: non_empty(args.commit_sha),
        branch: non_empty(args.branch),
        commit_message: non_empty(args.commit_message),
        commit_author: non_empty(args.commit_author),
        delivery: non_empty(args.delivery),
        run_url,
        server_url,
    };
    let (registry, policy) = match job::registry(&args.registry, args.attempts, args.timeout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("upm-publisher: {e}");
            return ExitCode::from(2);
        }
    };

    let prepared = (|| {
        if let Some(repo) = &source.repository {
            check_repository(repo)?;
        }
        // The registry file (the central repository's, at this workflow's commit): the repository must be
        // registered and active there, and its entry may require signed tarballs.
        let require_signed = match &args.registry_file {
            Some(file) => {
                let repo = source
                    .repository
                    .as_deref()
                    .ok_or("--registry-file needs --repository")?;
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))?;
                admit::check_registered(&text, &file.display().to_string(), repo)?.require_signed
            }
            None => false,
        };
        let sha = source
            .commit_sha
            .as_deref()
            .map(CommitSha::parse)
            .transpose()?;
        if let Some(sha) = &sha {
            // Links and messages use the normalised form.
            source.commit_sha = Some(sha.as_str().to_string());
        }
        let workspace = match (&args.clone, &args.workspace) {
            (Some(url), into) => {
                let sha = sha.ok_or("--clone needs --commit-sha")?;
                checkout::clone(url, &sha, into.as_deref())
            }
            (None, Some(dir)) => checkout::existing(dir, sha.as_ref()),
            (None, None) => Err("give --workspace DIR or --clone URL --commit-sha SHA".to_string()),
        }?;
        Ok::<_, String>((workspace, require_signed))
    })();

    let outcomes = match prepared {
        Ok((workspace, require_signed)) => {
            eprintln!(
                "upm-publisher: publishing from {}",
                workspace.root.display()
            );
            let request = Request::parse(args.package_paths.as_deref());
            let settings = run::Settings {
                registry: &registry,
                jobs: usize::from(args.jobs),
                dry_run: args.dry_run,
                guid_cache: args.guid_cache.as_deref(),
                prebuilt: args.prebuilt_tarballs.as_deref(),
                require_signed,
                published_at: &published_at,
            };
            run::run(&workspace.root, &request, &settings)
        }
        Err(reason) => {
            eprintln!("upm-publisher: FAILED before any package: {reason}");
            vec![fatal(reason)]
        }
    };
    let report = Report {
        source,
        registry: registry::redact_url(registry.base()),
        dry_run: args.dry_run,
        finished_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        outcomes,
    };

    let how = Notification {
        thread_id: args.discord_thread_id.as_deref(),
        policy: &policy,
        timeout: args.timeout,
        dry_run: report.dry_run,
        program: "upm-publisher",
    };
    let notification = job::notify_discord(&how, || notify::build(&report));
    let timings = summary::Timings {
        started_at,
        published_at: published_at.into_inner().unwrap_or_else(|e| e.into_inner()),
        notified_at: (notification == "sent" || notification.starts_with("failed"))
            .then(now_rfc3339),
        finished_at: now_rfc3339(),
    };
    let mut ok = !report.has_failures();
    if let Some(path) = &args.summary_file {
        let mut text = summary::markdown(&report);
        text.push_str(&summary::timeline(
            report.source.delivery.as_deref(),
            &timings,
        ));
        if let Some(problem) = notification.strip_prefix("failed: ") {
            text.push_str(&format!(
                "\n> ⚠️ Discord notification failed: {}\n",
                summary::cell(problem)
            ));
        }
        job::append_summary(path, &text, "upm-publisher");
    }
    if let Some(path) = &args.audit_file {
        let mut audit = summary::audit(&report, Some(&notification));
        audit.timings = Some(&timings);
        ok &= job::write_audit(path, &audit, "upm-publisher");
    }
    let counts = (
        report.published().count(),
        report.skipped().count(),
        report.failed().count(),
    );
    eprintln!(
        "upm-publisher: {} published, {} skipped, {} failed; notification: {notification}",
        counts.0, counts.1, counts.2
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn repositories() {
        assert!(check_repository("studio/game-client").is_ok());
        assert!(check_repository("Studio.io/My_Repo").is_ok());
        for bad in ["studio", "a/b/c", "/x", "a/..", "a b/c", "a/$(x)"] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }
}

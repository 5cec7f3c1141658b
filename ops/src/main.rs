//! `upm`: operations for UPM Auto Publisher — the repository registry, the webhook's deliveries, the
//! dispatcher migration and its rollback, and one status table.
//!
//! Every subcommand that changes something is a dry run unless `--apply` is given: it prints its plan
//! and is safe to re-run after an interruption. Secrets come from the environment only
//! (`GITHUB_TOKEN`, or `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY`; `DISCORD_WEBHOOK_URL`); nothing
//! prints them. Tables by default, `--json` for machines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use upm_ops::{cmd_deliveries, cmd_migrate, cmd_registry, cmd_slo, cmd_status, cmd_trace, Context};

#[derive(Parser)]
#[command(
    name = "upm",
    version,
    about = "Operate UPM Auto Publisher: registry, deliveries, migration, status, trace, doctor"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// The registry file to read and edit.
    #[arg(
        long,
        global = true,
        env = "UPM_REGISTRY_FILE",
        default_value = "config/repositories.json"
    )]
    registry_file: PathBuf,
    /// GitHub's REST API.
    #[arg(
        long,
        global = true,
        env = "GITHUB_API",
        default_value = "https://api.github.com"
    )]
    api: String,
    /// The central repository (receives the dispatches, runs the publish workflow).
    #[arg(
        long,
        global = true,
        env = "DISPATCH_REPO",
        default_value = "The1Studio/UPMAutoPublisher"
    )]
    central: String,
    /// The organization whose webhook relays pushes (also finds the GitHub App's installation).
    #[arg(long, global = true, env = "GITHUB_ORG")]
    org: Option<String>,
    /// The organization webhook's id.
    #[arg(long, global = true, env = "HOOK_ID")]
    hook_id: Option<u64>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Keep GitHub's answers (ETags) in this file between runs: what did not change costs one 304.
    #[arg(long, global = true, env = "UPM_ETAG_CACHE")]
    etag_cache: Option<PathBuf>,
    /// Longest rate-limit wait before giving up, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    max_rate_limit_wait: u64,
}

#[derive(Subcommand)]
enum Command {
    /// The repository registry (config/repositories.json).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// The organization webhook's recent deliveries: success rate, durations, failures.
    Deliveries(DeliveriesArgs),
    /// One table: each registered repository, its packages, what is published, its last delivery.
    Status(StatusArgs),
    /// Can Unity's Package Manager see every package of the registry? Exit 1 when not, 2 when unreachable.
    Probe(upm_ops::cmd_probe::ProbeArgs),
    /// Moving repositories from per-repository dispatcher workflows to the organization webhook.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Where is my package? One bump through every stage: delivery, dispatch, run, registry,
    /// changelog, Discord; where it stopped and what to do next. Exit 3 when a bump is not published.
    Trace(TraceArgs),
    /// The success metrics: webhook first-attempt success, push → start and push → published
    /// (p50/p95/max), bumps not published within 30 minutes; overall, per repository, per day.
    Slo(SloArgs),
    /// The pre-flight: every condition a deployment depends on (worker, webhook, App, workflows,
    /// schedules, binary, runners, registry, Discord, dispatchers, secrets), one table of ok / warn /
    /// FAIL with what to do. Read-only. Exit 1 on any FAIL.
    Doctor(DoctorArgs),
}

#[derive(Args)]
struct DoctorArgs {
    /// The worker's URL (its `/health` is asked; the webhook must point at it).
    #[arg(long, env = "WORKER_URL")]
    worker_url: Option<String>,
    /// The npm-compatible registry the packages publish to.
    #[arg(long, env = "UPM_REGISTRY")]
    registry: Option<String>,
}

#[derive(Args)]
struct SloArgs {
    /// Window: e.g. 7d, 24h.
    #[arg(long, default_value = "7d")]
    since: String,
    /// Judge as of this time (RFC 3339, e.g. 2026-12-01T00:00:00Z) instead of now.
    #[arg(long, value_parser = parse_as_of)]
    as_of: Option<i64>,
    /// The npm-compatible registry the packages publish to.
    #[arg(long, env = "UPM_REGISTRY")]
    registry: Option<String>,
    /// Keep every push seen here between runs (GitHub's delivery log holds 3 days).
    #[arg(long, env = "UPM_SLO_HISTORY")]
    history: Option<PathBuf>,
    /// Append the report and the daily Mermaid charts to this Markdown file.
    #[arg(long, env = "GITHUB_STEP_SUMMARY")]
    summary: Option<PathBuf>,
    /// Post to Discord (DISCORD_WEBHOOK_URL) once per new breach and once per recovery in the alert
    /// window; exit 1 while a target is missed.
    #[arg(long)]
    alert: bool,
    #[arg(long, default_value = "24h")]
    alert_window: String,
    /// Where the alert remembers what it announced.
    #[arg(long, env = "UPM_SLO_ALERT_STATE")]
    alert_state: Option<PathBuf>,
    /// Target: webhook first-attempt success above this percentage.
    #[arg(long, default_value_t = 99.0)]
    target_webhook: f64,
    /// Target: p95 push → workflow start below this many seconds.
    #[arg(long, default_value_t = 10)]
    target_start: i64,
    /// Target: p95 push → published below this many seconds.
    #[arg(long, default_value_t = 300)]
    target_published: i64,
    /// A bump not on the registry this many minutes after its push is missed.
    #[arg(long, default_value_t = 30)]
    missing_after_minutes: i64,
}

#[derive(Args)]
struct TraceArgs {
    /// The package repository (owner/name).
    repository: String,
    /// A commit sha, or package@version. Without it: the last pushes that touched a package.json.
    target: Option<String>,
    /// The npm-compatible registry the packages publish to.
    #[arg(long, env = "UPM_REGISTRY")]
    registry: Option<String>,
    /// Without a target: how many recent pushes to trace.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=50))]
    last: u16,
    /// Trace as of this time (RFC 3339) instead of now: what the on-call engineer saw then.
    #[arg(long, value_parser = parse_as_of)]
    as_of: Option<i64>,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Every entry, in file order.
    List,
    /// Register a repository (status active unless --pending).
    Add {
        /// https://github.com/OWNER/NAME or OWNER/NAME.
        url: String,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// Register as pending (acknowledged, not yet publishing).
        #[arg(long)]
        pending: bool,
        /// Open a pull request on the central repository instead of editing the local file.
        #[arg(long)]
        open_pr: bool,
        #[arg(long)]
        apply: bool,
    },
    /// Set a repository active.
    Enable {
        repository: String,
        #[arg(long)]
        apply: bool,
    },
    /// Set a repository disabled.
    Disable {
        repository: String,
        #[arg(long)]
        apply: bool,
    },
    /// Entries waiting to be activated.
    Pending,
    /// The schema, and that each repository exists and is reachable with the configured credentials.
    Validate,
}

#[derive(Args)]
struct DeliveriesArgs {
    /// Window: e.g. 24h, 90m, 7d.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Post a Discord alert (DISCORD_WEBHOOK_URL) and exit 1 when the first-attempt success rate is
    /// below this percentage.
    #[arg(long)]
    alert_below: Option<f64>,
    /// Ask GitHub to redeliver failed push and pull request deliveries (the sweeper's rule). Dry run
    /// without --apply.
    #[arg(long)]
    redeliver_failed: bool,
    #[arg(long)]
    apply: bool,
}

#[derive(Args)]
struct StatusArgs {
    /// The npm-compatible registry to compare versions with.
    #[arg(long, env = "UPM_REGISTRY")]
    registry: Option<String>,
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// The pre-removal checks, per repository.
    Check {
        #[arg(required = true)]
        repositories: Vec<String>,
        /// How far back to look for deliveries and publish runs.
        #[arg(long, default_value = "7d")]
        since: String,
    },
    /// Remove the dispatcher workflows by pull request, in batches, from repositories that pass.
    RemoveDispatchers {
        /// Repositories to change in this run; the next run takes the next ones.
        #[arg(long, default_value_t = 5)]
        batch: usize,
        /// Only these repositories (default: every active one).
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        #[arg(long, default_value = "7d")]
        since: String,
        /// Record the pull request in the registry entry's note (local file).
        #[arg(long)]
        set_note: bool,
        #[arg(long)]
        apply: bool,
    },
    /// Emergency rollback: re-add the dispatcher workflow (templates/) to every active repository.
    RestoreDispatchers {
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// Commit straight to the publishing branch instead of opening pull requests.
        #[arg(long)]
        direct: bool,
        #[arg(long)]
        apply: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let context = match Context::new(
        &cli.global.api,
        &cli.global.central,
        cli.global.org.clone(),
        cli.global.hook_id,
        cli.global.registry_file.clone(),
        cli.global.json,
        cli.global.max_rate_limit_wait,
    ) {
        Ok(context) => context,
        Err(message) => {
            eprintln!("upm: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(cache) = &cli.global.etag_cache {
        if let Err(message) = context.github.load_etags(cache) {
            eprintln!("upm: {message}");
            return ExitCode::from(2);
        }
    }
    let result = match cli.command {
        Command::Registry(command) => match command {
            RegistryCommand::List => cmd_registry::list(&context),
            RegistryCommand::Pending => cmd_registry::pending(&context),
            RegistryCommand::Validate => cmd_registry::validate(&context),
            RegistryCommand::Add {
                url,
                branch,
                note,
                pending,
                open_pr,
                apply,
            } => cmd_registry::add(
                &context,
                &url,
                branch.as_deref(),
                note.as_deref(),
                pending,
                open_pr,
                apply,
            ),
            RegistryCommand::Enable { repository, apply } => {
                cmd_registry::set_status(&context, &repository, true, apply)
            }
            RegistryCommand::Disable { repository, apply } => {
                cmd_registry::set_status(&context, &repository, false, apply)
            }
        },
        Command::Deliveries(args) => cmd_deliveries::run(
            &context,
            &args.since,
            args.alert_below,
            args.redeliver_failed,
            args.apply,
        ),
        Command::Status(args) => cmd_status::run(&context, args.registry.as_deref()),
        Command::Slo(args) => cmd_slo::run(
            &context,
            &cmd_slo::Options {
                since: args.since,
                registry: args.registry,
                history: args.history,
                summary: args.summary,
                alert: args.alert,
                alert_window: args.alert_window,
                alert_state: args.alert_state,
                targets: upm_ops::slo::Targets {
                    webhook_success_pct: args.target_webhook,
                    start_secs: args.target_start,
                    published_secs: args.target_published,
                    missing_after_secs: args.missing_after_minutes * 60,
                },
                as_of: args.as_of,
            },
        ),
        Command::Trace(args) => cmd_trace::run(
            &context,
            &args.repository,
            args.target.as_deref(),
            args.registry.as_deref(),
            usize::from(args.last),
            args.as_of,
        ),
        Command::Doctor(args) => upm_ops::cmd_doctor::run(
            &context,
            &upm_ops::cmd_doctor::Options {
                worker_url: args.worker_url,
                // Secrets from the environment only, never flags (they would show in `ps`).
                health_token: secret_env("HEALTH_TOKEN"),
                registry: args.registry,
                npm_token: secret_env("NPM_TOKEN"),
                discord_webhook: secret_env("DISCORD_WEBHOOK_URL"),
            },
        ),
        Command::Probe(args) => upm_ops::cmd_probe::run(&context, &args),
        Command::Migrate(command) => match command {
            MigrateCommand::Check {
                repositories,
                since,
            } => cmd_migrate::check(&context, &repositories, &since),
            MigrateCommand::RemoveDispatchers {
                batch,
                only,
                since,
                set_note,
                apply,
            } => cmd_migrate::remove_dispatchers(&context, batch, &only, &since, set_note, apply),
            MigrateCommand::RestoreDispatchers {
                only,
                direct,
                apply,
            } => cmd_migrate::restore_dispatchers(&context, &only, direct, apply),
        },
    };
    if let Some(cache) = &cli.global.etag_cache {
        if let Err(message) = context.github.save_etags(cache) {
            eprintln!("upm: ETag cache not saved: {message}");
        }
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("upm: {message}");
            ExitCode::from(1)
        }
    }
}

fn secret_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_as_of(text: &str) -> Result<i64, String> {
    upm_github::deliveries::parse_rfc3339_utc(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 UTC time like 2026-12-01T00:00:00Z"))
}

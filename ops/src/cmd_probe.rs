//! `upm probe`: can Unity's Package Manager see every package of the studio registry? The hourly watch
//! runs it. It makes Unity's own listing call per scope, then for each package reads the packument and
//! downloads the `latest` tarball (the decisions are in `probe`).
//!
//! Which packages: with `--scope` (or `UPM_SCOPES`), those the scopes' searches list (paged to the end,
//! so a package past Unity's first page is found and reported invisible). Without a scope, the registry
//! is listed with an empty search text, which Verdaccio answers with every package (its matcher tests
//! `name`, `displayName` and `description` for the text, and every string contains ""); the scopes are
//! then the packages' naming scopes (`com.studio` for `com.studio.tools`), each probed with Unity's call.
//!
//! Cost: one listing call per 250 packages, one per scope, two reads per package (at most
//! `--max-packages`), each bounded by `--timeout` and retried on 429/5xx (Verdaccio answers 500 to a
//! read of a package it is creating).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use upm_unity::search::{self, Listed, MAX_PAGES};

use crate::probe::{self, Answer, Verdict};
use crate::{discord, table, Context};

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// The studio's npm registry, as Unity's scoped registry entry has it.
    #[arg(long, env = "UPM_REGISTRY")]
    pub registry: Option<String>,
    /// A scope Unity's scoped registry entry lists (repeatable; env: comma-separated). Default: the
    /// naming scopes of every package the registry lists.
    #[arg(long = "scope", env = "UPM_SCOPES", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Probe at most this many packages.
    #[arg(long, default_value_t = probe::DEFAULT_MAX_PACKAGES)]
    pub max_packages: usize,
    /// Each request's time limit, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Post one Discord alert (DISCORD_WEBHOOK_URL, DISCORD_THREAD_ID) listing the packages Unity cannot
    /// see, when there are any.
    #[arg(long)]
    pub alert: bool,
}

/// Tries per request: a 429, a 5xx or no answer is tried again after 0.3 s, then 1 s.
const ATTEMPTS: u32 = 3;
const PACKUMENT_LIMIT: u64 = 64 * 1024 * 1024;
const TARBALL_LIMIT: u64 = 1024 * 1024 * 1024;

/// A listing: the URL judged, and its packages or why Unity lists nothing.
type Page = (String, Result<Vec<Listed>, String>);

/// The registry's HTTP reads: bounded, retried, the read token sent to the registry's origin only.
struct Client {
    agent: ureq::Agent,
    origin: String,
    token: Option<String>,
    requests: Cell<usize>,
}

impl Client {
    fn get_once(&self, url: &str) -> Result<Answer, String> {
        self.requests.set(self.requests.get() + 1);
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            if probe::origin(url) == self.origin {
                request = request.header("authorization", format!("Bearer {token}"));
            }
        }
        let mut response = request
            .call()
            .map_err(|e| format!("GET {url}: no answer ({e})"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let limit = if url.ends_with(".tgz") {
            TARBALL_LIMIT
        } else {
            PACKUMENT_LIMIT
        };
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: the answer broke off ({e})"))?;
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    fn get(&self, url: &str) -> Result<Answer, String> {
        let mut attempt = 1;
        loop {
            let result = self.get_once(url);
            let transient = match &result {
                Ok(a) => a.status == 429 || a.status >= 500,
                Err(_) => true,
            };
            if !transient || attempt >= ATTEMPTS {
                return result;
            }
            std::thread::sleep(Duration::from_millis(if attempt == 1 { 300 } else { 1000 }));
            attempt += 1;
        }
    }

    /// Unity's listing of `text` at `page`: the search, or `/-/all` when the search answers 404 (as
    /// Unity falls back). Returns the URL judged and its packages, or why Unity lists nothing; `Err(Err)`
    /// when the registry gave no answer at all.
    fn listing(&self, base: &str, text: &str, page: usize) -> Result<Page, String> {
        let url = search::search_url(base, text, page);
        let answer = self.get(&url)?;
        if answer.status == 404 {
            let all = search::all_url(base);
            let answer = self.get(&all)?;
            let listed = probe::read_listing(&all, &answer, true)
                .map_err(|e| format!("GET {url} answered 404, and Unity's fallback: {e}"));
            return Ok((all, listed));
        }
        Ok((url.clone(), probe::read_listing(&url, &answer, false)))
    }

    /// Every package a search for `text` finds, paging to a short page (bounded); the first page is
    /// Unity's own call, returned as well.
    fn list_all(&self, base: &str, text: &str) -> Result<(Page, Vec<Listed>), String> {
        let (url, first) = self.listing(base, text, 0)?;
        let mut all = first.clone().unwrap_or_default();
        let fallback = url.ends_with("/-/all");
        let mut last = first.as_ref().map_or(0, Vec::len);
        let mut page = 1;
        while first.is_ok() && !fallback && !search::is_last_page(last) && page < MAX_PAGES {
            let (_, next) = self.listing(base, text, page)?;
            let next = next.unwrap_or_default();
            last = next.len();
            all.extend(next);
            page += 1;
        }
        Ok(((url, first), all))
    }
}

#[derive(Debug, Serialize)]
struct ScopeReport {
    scope: String,
    /// Unity's call for the scope (or its `/-/all` fallback).
    url: String,
    /// Entries on Unity's page; `None` when it could not be read.
    entries: Option<usize>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    registry: String,
    scopes: Vec<ScopeReport>,
    packages: Vec<Verdict>,
    warnings: Vec<String>,
    not_visible: usize,
    requests: usize,
    seconds: f64,
    summary: String,
    /// `sent`, or why the alert was not sent; absent without --alert or when all are visible.
    alert: Option<String>,
}

pub fn run(context: &Context, args: &ProbeArgs) -> Result<u8, String> {
    match probe_registry(context, args) {
        Ok(code) => Ok(code),
        Err(message) => {
            eprintln!("upm probe: {message}");
            Ok(2)
        }
    }
}

fn probe_registry(context: &Context, args: &ProbeArgs) -> Result<u8, String> {
    let started = Instant::now();
    let base = args
        .registry
        .as_deref()
        .map(|r| r.trim().trim_end_matches('/').to_string())
        .filter(|r| !r.is_empty())
        .ok_or("no registry: give --registry URL or set UPM_REGISTRY")?;
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!("--registry {base:?} is not an http(s) URL"));
    }
    if args.max_packages == 0 {
        return Err("--max-packages must be at least 1".into());
    }
    let scopes: Vec<String> = args
        .scopes
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let client = Client {
        agent: crate::http_agent(args.timeout.max(1)),
        origin: probe::origin(&base),
        token: std::env::var("NPM_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
        requests: Cell::new(0),
    };
    let unreachable =
        |e: String| format!("the registry {base} does not answer, so nothing was probed: {e}");

    // Unity's page per scope (URL, what it lists or why not), and the packages to probe.
    let mut pages: BTreeMap<String, Page> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new(); // name → scope
    if scopes.is_empty() {
        let ((_, first), all) = client.list_all(&base, "").map_err(unreachable)?;
        if let Err(e) = first {
            return Err(format!(
                "cannot list the registry's packages ({e}); name the scopes with --scope or UPM_SCOPES"
            ));
        }
        for listed in &all {
            names.insert(
                listed.name.clone(),
                probe::scope_of(&listed.name).to_string(),
            );
        }
        for scope in probe::scopes_of(all.iter().map(|l| l.name.as_str())) {
            let page = client
                .listing(&base, &scope, 0)
                .unwrap_or_else(|e| (search::search_url(&base, &scope, 0), Err(e)));
            pages.insert(scope, page);
        }
    } else {
        for (index, scope) in scopes.iter().enumerate() {
            let ((url, first), all) = match client.list_all(&base, scope) {
                Ok(found) => found,
                Err(e) if index == 0 => return Err(unreachable(e)),
                Err(e) => ((search::search_url(&base, scope, 0), Err(e)), Vec::new()),
            };
            for listed in all.iter().filter(|l| probe::in_scope(&l.name, scope)) {
                names.insert(listed.name.clone(), scope.clone());
            }
            pages.insert(scope.clone(), (url, first));
        }
    }

    let mut warnings = Vec::new();
    let mut scope_reports = Vec::new();
    let mut verdicts = Vec::new();
    for (scope, (url, page)) in &pages {
        if let Ok(listed) = page {
            warnings.extend(probe::page_warning(scope, url, listed.len()));
        }
        scope_reports.push(ScopeReport {
            scope: scope.clone(),
            url: url.clone(),
            entries: page.as_ref().ok().map(Vec::len),
            error: page.as_ref().err().cloned(),
        });
        // A scope whose listing failed and named no package: the scope itself is what Unity cannot see.
        if let Err(e) = page {
            if !names.values().any(|s| s == scope) {
                verdicts.push(Verdict {
                    name: format!("{scope} (every package of the scope)"),
                    version: None,
                    visible: false,
                    stage: Some(probe::Stage::Listing),
                    reason: Some(e.clone()),
                });
            }
        }
    }
    if names.len() > args.max_packages {
        warnings.push(format!(
            "warning: the registry lists {} packages; probed the first {} (--max-packages)",
            names.len(),
            args.max_packages
        ));
    }
    let total = names.len().min(args.max_packages);
    for (index, (name, scope)) in names.iter().take(args.max_packages).enumerate() {
        context.progress_step(index, total, name);
        let (url, page) = &pages[scope];
        let listing = (url.as_str(), page.as_deref().map_err(String::as_str));
        verdicts.push(probe::check_package(&base, name, listing, |u| {
            client.get(u)
        }));
    }

    let seconds = started.elapsed().as_secs_f64();
    let requests = client.requests.get();
    let not_visible = verdicts.iter().filter(|v| !v.visible).count();
    let summary = probe::summary_line(&verdicts, requests, seconds);
    let alert = if args.alert {
        probe::alert_message(&base, &verdicts, &warnings).map(|message| {
            match discord::post(&message) {
                Ok(()) => "sent".to_string(),
                Err(e) => e,
            }
        })
    } else {
        None
    };
    let report = Report {
        registry: base.clone(),
        scopes: scope_reports,
        packages: verdicts,
        warnings,
        not_visible,
        requests,
        seconds,
        summary,
        alert,
    };
    context.print(&report, || render(&report));
    Ok(if not_visible > 0 { 1 } else { 0 })
}

fn render(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .packages
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.version.clone().unwrap_or_else(|| "-".into()),
                if v.visible { "ok" } else { "FAIL" }.to_string(),
                v.stage.map_or("", probe::Stage::as_str).to_string(),
                v.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = table::render(&["PACKAGE", "LATEST", "UNITY", "FAILED AT", "WHY"], &rows);
    for warning in &report.warnings {
        out.push_str(warning);
        out.push('\n');
    }
    out.push_str(&report.summary);
    out.push('\n');
    if let Some(alert) = &report.alert {
        out.push_str(&format!("alert: {alert}\n"));
    }
    out
}

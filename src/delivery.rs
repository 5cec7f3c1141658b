//! The path of one request through the stages. Every decision is made by the stage modules; this file
//! only sequences them, does the I/O they ask for through the `Platform`, and collects what happened
//! into one `Reply`.

use std::cell::RefCell;

use serde_json::json;

use crate::app_auth;
use crate::classify::{classify, Event, PushEvent};
use crate::config::Config;
use crate::dedup;
use crate::dispatch::{self, after_attempt, ClientPayload, Next, RetryBudget};
use crate::filter::{self, Publish};
use crate::github;
use crate::model::RepoName;
use crate::platform::Platform;
use crate::read::{self, BodyKind, Route};
use crate::registry::{self, CachedRegistry, Lookup, Registry};
use crate::respond::{self, DeliveryFacts, Outcome, Stop};
use crate::verify::{verify_signature, SignatureError};

/// The isolate's copy of the registry: the first and cheapest tier. Workers reuse an isolate for many
/// requests, so this saves most KV reads; it is empty after every cold start.
pub type RegistryMemory = RefCell<Option<CachedRegistry>>;

/// The parts of the request the stages read, converted from the runtime's types by the glue.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub event: Option<&'a str>,
    pub delivery: Option<&'a str>,
}

/// What to do with a request before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Health,
    Webhook(BodyKind),
}

/// The response, and the log line for `wrangler tail` (none for health checks, which monitors poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub log: Option<String>,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
            log: None,
        }
    }
}

/// Route, content type and declared length: everything that can be refused without reading the body.
pub fn admit(head: &RequestHead) -> Result<Admitted, Stop> {
    match read::route(head.method, head.path)? {
        Route::Health => Ok(Admitted::Health),
        Route::Webhook => {
            let kind = read::body_kind(head.content_type)?;
            read::check_declared_length(head.content_length)?;
            Ok(Admitted::Webhook(kind))
        }
    }
}

/// A reply for a request refused by `admit`.
pub fn refuse(head: &RequestHead, stop: Stop) -> Reply {
    finish(stop, facts_from_head(head), 0, &[])
}

fn facts_from_head(head: &RequestHead) -> DeliveryFacts {
    DeliveryFacts {
        delivery: head.delivery.map(read::truncate_for_message),
        event: head.event.map(read::truncate_for_message),
        ..DeliveryFacts::default()
    }
}

fn finish(stop: Stop, facts: DeliveryFacts, elapsed_ms: u64, notes: &[String]) -> Reply {
    Reply {
        status: stop.status,
        body: respond::response_body(&stop, &facts),
        log: Some(respond::log_line(&stop, &facts, elapsed_ms, notes)),
        headers: stop.headers,
    }
}

/// One delivery's worth of context: configuration, the runtime, and the isolate's registry copy.
pub struct Relay<'a, P> {
    pub config: &'a Config,
    pub platform: &'a P,
    pub memory: &'a RegistryMemory,
    pub retry: RetryBudget,
}

impl<'a, P: Platform> Relay<'a, P> {
    pub fn new(config: &'a Config, platform: &'a P, memory: &'a RegistryMemory) -> Self {
        Relay {
            config,
            platform,
            memory,
            retry: RetryBudget::default(),
        }
    }

    /// Handles an admitted webhook delivery whose body has been read.
    pub async fn deliver(&self, head: &RequestHead<'_>, kind: BodyKind, raw: &[u8]) -> Reply {
        // In Workers the clock only moves across I/O, so this measures the time spent waiting on KV and
        // GitHub, which is what dominates a delivery.
        let started = self.platform.now_ms();
        let mut facts = facts_from_head(head);
        let mut notes = Vec::new();
        let stop = match self.run(head, kind, raw, &mut facts, &mut notes).await {
            Ok(stop) | Err(stop) => stop,
        };
        let elapsed = self.platform.now_ms().saturating_sub(started);
        finish(stop, facts, elapsed, &notes)
    }

    async fn run(
        &self,
        head: &RequestHead<'_>,
        kind: BodyKind,
        raw: &[u8],
        facts: &mut DeliveryFacts,
        notes: &mut Vec<String>,
    ) -> Result<Stop, Stop> {
        read::check_length(raw.len() as u64)?;
        verify_signature(&self.config.secrets, head.signature, raw).map_err(|err| match err {
            SignatureError::NoSecretConfigured => {
                Stop::misconfigured(format!("worker is not configured: {err}"))
            }
            other => Stop::unauthorized(other.to_string()),
        })?;
        // Only an authenticated sender learns what is wrong with our configuration.
        if !self.config.problems.is_empty() {
            return Err(Stop::misconfigured(format!(
                "worker is not configured: {}",
                self.config.problems.join("; ")
            )));
        }
        let central = self
            .config
            .dispatch_repo
            .as_ref()
            .ok_or_else(|| Stop::misconfigured("worker is not configured: DISPATCH_REPO"))?;
        let delivery = delivery_id(head.delivery)?;
        let payload = read::payload(kind, raw)?;
        let push = match classify(head.event, &payload)? {
            Event::Ping => return Ok(Stop::ignored("pong")),
            Event::Other(event) => {
                return Ok(Stop::ignored(format!(
                    "{event} events are not acted on: only push publishes"
                )))
            }
            Event::Push(push) => push,
        };
        facts.repository = Some(read::truncate_for_message(&push.repository.full_name));
        facts.branch = push
            .git_ref
            .strip_prefix("refs/heads/")
            .map(read::truncate_for_message);
        facts.commit_sha = Some(read::truncate_for_message(&push.after));

        if registry::push_touches_registry(&push, central, &self.config.registry_path) {
            match self.fetch_registry(central).await {
                Ok(_) => notes.push("registry: refreshed because this push changed it".into()),
                Err(why) => notes.push(format!("registry: refresh after an edit failed: {why}")),
            }
        }

        let candidate = filter::candidate(&push, &self.config.loop_guard)?;
        let registry = self.registry(central, notes).await?;
        let entry = match registry.lookup(&candidate.repository) {
            Lookup::Active(entry) => entry,
            Lookup::Inactive(status) => {
                return Err(Stop::ignored(format!(
                    "{} is {} in the registry",
                    candidate.repository,
                    status.as_str()
                )))
            }
            Lookup::NotRegistered => {
                return Err(Stop::ignored(format!(
                    "{} is not in the registry ({})",
                    candidate.repository, self.config.registry_path
                )))
            }
        };
        let publish = filter::on_branch(candidate, entry.branch.as_deref())?;
        self.check_not_dispatched(&delivery, notes).await?;
        self.dispatch(central, &publish, &push, &delivery, facts, notes)
            .await
    }

    async fn check_not_dispatched(
        &self,
        delivery: &str,
        notes: &mut Vec<String>,
    ) -> Result<(), Stop> {
        match self.platform.kv_get(&dedup::key(delivery)).await {
            Ok(None) => Ok(()),
            Ok(Some(record)) => Err(Stop {
                status: 200,
                outcome: Outcome::Duplicate,
                reason: dedup::reason(&record, self.platform.now_ms()),
                headers: Vec::new(),
            }),
            // Better a second dispatch (the publisher skips what is published) than a lost one.
            Err(why) => {
                notes.push(format!("dedup: KV read failed, dispatching anyway: {why}"));
                Ok(())
            }
        }
    }

    async fn dispatch(
        &self,
        central: &RepoName,
        publish: &Publish,
        push: &PushEvent,
        delivery: &str,
        facts: &mut DeliveryFacts,
        notes: &mut Vec<String>,
    ) -> Result<Stop, Stop> {
        let payload = dispatch::client_payload(publish, push, delivery);
        facts.package_path = Some(payload.package_path.clone());
        let what = describe(&payload);
        if self.config.dry_run {
            facts.dry_run = Some(true);
            facts.would_dispatch = Some(json!({
                "url": github::dispatch_url(self.config, central),
                "body": dispatch::body_json(&payload),
            }));
            return Ok(dispatched(format!("dry run: would dispatch {what}")));
        }
        let body = dispatch::body(&payload);
        let started = self.platform.now_ms();
        let mut attempt = 1;
        loop {
            let request = github::dispatch_request(self.config, central, body.clone());
            let result = app_auth::send_authorized(self.config, self.platform, request).await;
            let elapsed = self.platform.now_ms().saturating_sub(started);
            match after_attempt(attempt, &result, elapsed, self.retry) {
                Next::Done => {
                    facts.attempts = Some(attempt);
                    let record = dedup::Record::new(&payload, self.platform.now_ms()).to_kv();
                    let written = self
                        .platform
                        .kv_put(&dedup::key(delivery), &record, Some(dedup::TTL_SECONDS))
                        .await;
                    if let Err(why) = written {
                        notes.push(format!("dedup: could not record the delivery: {why}"));
                    }
                    return Ok(dispatched(format!("dispatched {what}")));
                }
                Next::RetryAfter { delay_ms, why } => {
                    notes.push(format!(
                        "dispatch attempt {attempt} failed ({why}); retrying in {delay_ms} ms"
                    ));
                    self.platform.sleep(delay_ms).await;
                    attempt += 1;
                }
                Next::GiveUp(why) => {
                    facts.attempts = Some(attempt);
                    facts.retryable = Some(respond::retryable_after(
                        result.as_ref().ok().map(|r| r.status),
                    ));
                    return Err(Stop::upstream_failed(format!(
                        "repository_dispatch to {central} failed: {why}"
                    )));
                }
            }
        }
    }

    /// The registry through its tiers (module docs of `registry`).
    async fn registry(
        &self,
        central: &RepoName,
        notes: &mut Vec<String>,
    ) -> Result<Registry, Stop> {
        let now = self.platform.now_ms();
        let ttl = self.config.registry_ttl_ms;
        let in_memory = self.memory.borrow().clone();
        if let Some(copy) = in_memory.as_ref().filter(|c| c.is_fresh(now, ttl)) {
            return Ok(copy.registry.clone());
        }
        let in_kv = match self.platform.kv_get(&self.registry_key(central)).await {
            Ok(Some(value)) => CachedRegistry::from_kv(&value)
                .map_err(|why| notes.push(format!("registry: KV copy unreadable: {why}")))
                .ok(),
            Ok(None) => None,
            Err(why) => {
                notes.push(format!("registry: KV read failed: {why}"));
                None
            }
        };
        let best = registry::newest(in_memory, in_kv);
        if let Some(copy) = best.as_ref().filter(|c| c.is_fresh(now, ttl)) {
            *self.memory.borrow_mut() = Some(copy.clone());
            return Ok(copy.registry.clone());
        }
        match self.fetch_registry(central).await {
            Ok(fresh) => Ok(fresh.registry),
            Err(why) => match best {
                Some(stale) => {
                    notes.push(format!(
                        "registry: GitHub failed ({why}); using the copy from {} s ago",
                        stale.age_ms(now) / 1000
                    ));
                    let registry = stale.registry.clone();
                    *self.memory.borrow_mut() = Some(stale);
                    Ok(registry)
                }
                None => Err(Stop::upstream_failed(format!(
                    "registry unavailable and no cached copy: {why}"
                ))),
            },
        }
    }

    /// Reads the registry file from GitHub and stores it in KV and memory.
    async fn fetch_registry(&self, central: &RepoName) -> Result<CachedRegistry, String> {
        let request = github::registry_file_request(self.config, central);
        let response = app_auth::send_authorized(self.config, self.platform, request)
            .await
            .map_err(|e| format!("network error: {e}"))?;
        if response.status != 200 {
            return Err(format!(
                "reading {} from {central}: GitHub answered {}: {}",
                self.config.registry_path,
                response.status,
                github::error_message(&response.body)
            ));
        }
        let registry = Registry::parse(&response.body).map_err(|why| {
            format!(
                "{} in {central} is invalid: {why}",
                self.config.registry_path
            )
        })?;
        let fetched_at_ms = self.platform.now_ms();
        let copy = CachedRegistry {
            fetched_at_ms,
            registry,
        };
        // A failed KV write costs only a later GitHub request; the delivery goes on.
        let _ = self
            .platform
            .kv_put(
                &self.registry_key(central),
                &CachedRegistry::to_kv(&response.body, fetched_at_ms),
                None,
            )
            .await;
        *self.memory.borrow_mut() = Some(copy.clone());
        Ok(copy)
    }

    fn registry_key(&self, central: &RepoName) -> String {
        registry::kv_key(central, &self.config.registry_path)
    }

    /// `GET /health`: what an operator checks first. Reads memory and KV only, never GitHub.
    pub async fn health(&self) -> Reply {
        let now = self.platform.now_ms();
        let in_memory = self.memory.borrow().clone();
        let copy = match (in_memory, &self.config.dispatch_repo) {
            (Some(copy), _) => Some((copy, "memory")),
            (None, Some(central)) => {
                match self.platform.kv_get(&self.registry_key(central)).await {
                    Ok(Some(value)) => CachedRegistry::from_kv(&value).ok().map(|c| (c, "kv")),
                    _ => None,
                }
            }
            (None, None) => None,
        };
        let registry = copy.map(|(copy, tier)| {
            json!({
                "entries": copy.registry.len(),
                "age_seconds": copy.age_ms(now) / 1000,
                "tier": tier,
            })
        });
        let body = json!({
            "status": if self.config.problems.is_empty() { "ok" } else { "misconfigured" },
            "service": "upm-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "dispatch_repo": self.config.dispatch_repo.as_ref().map(RepoName::as_str),
            "dry_run": self.config.dry_run,
            "registry": registry,
            "problems": self.config.problems,
        });
        Reply::json(200, body.to_string())
    }
}

fn dispatched(reason: String) -> Stop {
    Stop {
        status: 200,
        outcome: Outcome::Dispatched,
        reason,
        headers: Vec::new(),
    }
}

fn describe(payload: &ClientPayload) -> String {
    let packages = match payload.package_path.as_str() {
        dispatch::EVERY_PACKAGE => "every package".to_string(),
        paths => paths.to_string(),
    };
    let short_sha: String = payload.commit_sha.chars().take(12).collect();
    format!("{}@{short_sha} ({packages})", payload.repository)
}

/// GitHub sends a GUID; we bound what we accept because it lands in logs, KV keys and the payload.
fn delivery_id(header: Option<&str>) -> Result<String, Stop> {
    let id = header
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Stop::bad_request("missing X-GitHub-Delivery header"))?;
    if id.len() > 100 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Stop::bad_request("malformed X-GitHub-Delivery header"));
    }
    Ok(id.to_string())
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;

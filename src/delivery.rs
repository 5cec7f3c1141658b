//! The path of one request through the stages. Every decision is made by the stage modules; this file
//! only sequences them, does the I/O they ask for through the `Platform`, and collects what happened
//! into one `Reply`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use futures_util::future::join;
use serde_json::json;

use crate::app_auth;
use crate::classify::{classify, Event, PushEvent};
use crate::config::Config;
use crate::deadline;
use crate::dedup;
use crate::dispatch::{self, after_attempt, ClientPayload, Next, RetryPolicy};
use crate::filter::{self, Publish};
use crate::github;
use crate::model::RepoName;
use crate::platform::{HttpRequest, Platform};
use crate::read::{self, BodyKind, Route};
use crate::registry::{self, CachedRegistry, Lookup, Registry};
use crate::respond::{self, DeliveryFacts, Outcome, Stop};
use crate::verify::{parse_signature, Digest, SignatureError};

/// After a failed registry refresh, GitHub is not asked again for this long: an outage costs one
/// request per 30 s per isolate, not one per delivery.
pub const REFRESH_FAILURE_HOLD_MS: u64 = 30_000;

/// How many dispatched delivery ids and pushes an isolate remembers (a few hundred KB at most): enough
/// to cover the time until the KV records written after the response are readable.
const RECENT_DISPATCHES: usize = 1_000;

/// What an isolate keeps between requests: it runs one thread and serves many requests, and is
/// empty after every cold start.
#[derive(Debug, Default)]
pub struct IsolateMemory {
    /// The registry's first and cheapest tier.
    pub registry: RefCell<Option<CachedRegistry>>,
    /// The last failed refresh, while it holds (`REFRESH_FAILURE_HOLD_MS`).
    pub registry_failure: RefCell<Option<RegistryFailure>>,
    /// Dedup keys (`dedup::key`, `dedup::push_key`) of deliveries being dispatched right now.
    pub in_flight: RefCell<HashSet<String>>,
    /// Dedup keys of deliveries this isolate dispatched lately, with their records.
    pub recent: RefCell<RecentDispatches>,
}

/// Dedup keys with their records, looked up by key and forgotten oldest first. Every publishing
/// delivery looks up two keys; scanning a full list of `RECENT_DISPATCHES` entries for them took about
/// 0.1 ms per delivery in wasm (measured in workerd), as much as all of its parsing and filtering.
#[derive(Debug, Default)]
pub struct RecentDispatches {
    records: HashMap<String, Rc<str>>,
    order: VecDeque<String>,
}

impl RecentDispatches {
    /// The record remembered under the first of `keys` that has one.
    pub fn record_for(&self, keys: &[String]) -> Option<Rc<str>> {
        keys.iter().find_map(|key| self.records.get(key).cloned())
    }

    /// Remembers `record` under every key, forgetting the oldest keys beyond `RECENT_DISPATCHES`.
    pub fn remember(&mut self, keys: &[String], record: &str) {
        let record: Rc<str> = Rc::from(record);
        for key in keys {
            if self.records.insert(key.clone(), record.clone()).is_none() {
                self.order.push_back(key.clone());
            }
        }
        while self.order.len() > RECENT_DISPATCHES {
            if let Some(oldest) = self.order.pop_front() {
                self.records.remove(&oldest);
            }
        }
    }

    /// How many keys are remembered (the tests check the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

/// Kept under its old name: the memory started as the registry's tier only.
pub type RegistryMemory = IsolateMemory;

/// Why the registry could not be read from GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryFailure {
    pub at_ms: u64,
    /// Safe for a response body.
    pub public: String,
    /// For the log line's notes (may carry the runtime's text).
    pub detail: String,
    /// 401/403/404 or an invalid file: someone must change a setting or the file; retrying will not help.
    pub configuration: bool,
}

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
    pub authorization: Option<&'a str>,
}

/// What to do with a request before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Health,
    /// A delivery whose head is in order; `digest` is what its signature header claims.
    Webhook {
        kind: BodyKind,
        digest: Digest,
        /// The declared `Content-Length`, to size the body buffer once.
        length: Option<u64>,
    },
}

/// A KV write to make after the response is sent (`ctx.waitUntil` in the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvWrite {
    pub key: String,
    pub value: String,
    pub ttl_seconds: Option<u64>,
}

/// The response, and the log line for `wrangler tail` (none for health checks, which monitors poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub log: Option<String>,
    /// Writes that need not delay the response.
    pub after_response: Vec<KvWrite>,
}

/// Route, content type, declared length and the signature header: everything that can be refused
/// without reading the body. An unsigned 25 MB upload costs what refusing a header costs.
pub fn admit(head: &RequestHead) -> Result<Admitted, Stop> {
    match read::route(head.method, head.path)? {
        Route::Health => Ok(Admitted::Health),
        Route::Webhook => {
            let kind = read::body_kind(head.content_type)?;
            let length = read::check_declared_length(head.content_length)?;
            let digest =
                parse_signature(head.signature).map_err(|e| Stop::unauthorized(e.to_string()))?;
            Ok(Admitted::Webhook {
                kind,
                digest,
                length,
            })
        }
    }
}

/// A reply for a request refused by `admit`, or whose body could not be read.
pub fn refuse(head: &RequestHead, stop: Stop) -> Reply {
    finish(stop, facts_from_head(head), 0, &Notes::default())
}

fn facts_from_head(head: &RequestHead) -> DeliveryFacts {
    DeliveryFacts {
        delivery: head.delivery.map(read::truncate_for_message),
        event: head.event.map(read::truncate_for_message),
        ..DeliveryFacts::default()
    }
}

/// What the operator should know about a delivery beyond its outcome; `alarm` makes the line `error`.
#[derive(Debug, Default)]
pub struct Notes {
    pub lines: Vec<String>,
    pub alarm: bool,
}

impl Notes {
    fn push(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

fn finish(stop: Stop, facts: DeliveryFacts, elapsed_ms: u64, notes: &Notes) -> Reply {
    Reply {
        status: stop.status,
        body: respond::response_body(&stop, &facts),
        log: Some(respond::log_line(
            &stop,
            &facts,
            elapsed_ms,
            &notes.lines,
            notes.alarm,
        )),
        headers: stop.headers,
        after_response: Vec::new(),
    }
}

/// One delivery's worth of context: configuration, the runtime, and the isolate's memory.
pub struct Relay<'a, P> {
    pub config: &'a Config,
    pub platform: &'a P,
    pub memory: &'a IsolateMemory,
    pub retry: RetryPolicy,
    /// When the request started (the deadline counts from here).
    pub started_ms: u64,
    /// KV writes that need not delay the response (`Reply::after_response`).
    deferred: RefCell<Vec<KvWrite>>,
}

/// Removes a delivery's keys from the in-flight set however the delivery ends.
struct InFlight<'a> {
    memory: &'a IsolateMemory,
    keys: [String; 2],
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.memory.in_flight.borrow_mut();
        for key in &self.keys {
            in_flight.remove(key);
        }
    }
}

impl<'a, P: Platform> Relay<'a, P> {
    /// Starts the clock: create the relay when the request arrives, before its body is read.
    pub fn new(config: &'a Config, platform: &'a P, memory: &'a IsolateMemory) -> Self {
        Relay {
            config,
            platform,
            memory,
            retry: RetryPolicy::default(),
            started_ms: platform.now_ms(),
            deferred: RefCell::default(),
        }
    }

    /// What is left of the delivery's deadline.
    fn remaining_ms(&self) -> u64 {
        deadline::remaining_ms(self.started_ms, self.platform.now_ms())
    }

    /// Sends a request bounded by what is left of the deadline.
    async fn send(
        &self,
        mut request: HttpRequest,
    ) -> Result<crate::platform::HttpResponse, crate::platform::SendError> {
        let remaining = self.remaining_ms();
        if remaining == 0 {
            return Err(crate::platform::SendError::TimedOut { after_ms: 0 });
        }
        request.timeout_ms = remaining;
        app_auth::send_authorized(self.config, self.platform, request).await
    }

    /// Handles an admitted webhook delivery whose body has been read.
    pub async fn deliver(
        &self,
        head: &RequestHead<'_>,
        kind: BodyKind,
        digest: &Digest,
        raw: &[u8],
    ) -> Reply {
        let mut facts = facts_from_head(head);
        let mut notes = Notes::default();
        let stop = match self
            .run(head, kind, digest, raw, &mut facts, &mut notes)
            .await
        {
            Ok(stop) | Err(stop) => stop,
        };
        // In Workers the clock only moves across I/O, so this measures the time spent waiting on KV and
        // GitHub (and reading the body), which is what dominates a delivery.
        let elapsed = self.platform.now_ms().saturating_sub(self.started_ms);
        let mut reply = finish(stop, facts, elapsed, &notes);
        reply.after_response = self.deferred.take();
        reply
    }

    async fn run(
        &self,
        head: &RequestHead<'_>,
        kind: BodyKind,
        digest: &Digest,
        raw: &[u8],
        facts: &mut DeliveryFacts,
        notes: &mut Notes,
    ) -> Result<Stop, Stop> {
        read::check_length(raw.len() as u64)?;
        self.platform
            .verify_digest(&self.config.secrets, digest, raw)
            .await
            .map_err(|err| match err {
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
            match self.fetch_registry(central, Some(&push.after)).await {
                Ok(_) => notes.push("registry: refreshed because this push changed it"),
                Err(failure) => notes.push(format!(
                    "registry: refresh after an edit failed: {}",
                    failure.detail
                )),
            }
        }

        let candidate = filter::candidate(&push, &self.config.loop_guard)?;
        let keys = [
            dedup::key(&delivery),
            dedup::push_key(&candidate.repository, &candidate.commit_sha),
        ];
        // With the registry in memory the lookup is instant, and the dedup records are read only for a
        // push that publishes. Otherwise the registry read (KV, maybe GitHub) and the dedup reads go out
        // together: a cold isolate's first delivery waits for one round trip less.
        let now = self.platform.now_ms();
        let registry_in_memory = self
            .memory
            .registry
            .borrow()
            .as_ref()
            .is_some_and(|c| c.is_fresh(now, self.config.registry_ttl_ms));
        let (registry, early_records) = if registry_in_memory {
            (self.registry(central, notes).await, None)
        } else {
            let mut registry_notes = Notes::default();
            let (registry, records) = join(
                self.registry(central, &mut registry_notes),
                self.read_push_record(&keys[1]),
            )
            .await;
            notes.lines.extend(registry_notes.lines);
            notes.alarm |= registry_notes.alarm;
            (registry, Some(records))
        };
        let registry = registry?;
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
        let _in_flight = self.claim(&keys, &delivery)?;
        let records = match early_records {
            Some(records) => records,
            None => self.read_push_record(&keys[1]).await,
        };
        self.judge(records, &delivery, notes)?;
        let result = self
            .dispatch(central, &publish, &push, &delivery, facts, notes)
            .await;
        if let Ok((_, Some(record))) = &result {
            self.remember(&keys, record);
            // The record under the push (a copy under another delivery id finds it) and under the
            // delivery id, which is all the sweeper knows of a delivery GitHub lists as failed: one that
            // was dispatched but whose answer was lost must not be redelivered. Both after the response.
            for key in &keys {
                self.deferred.borrow_mut().push(KvWrite {
                    key: key.clone(),
                    value: record.clone(),
                    ttl_seconds: Some(dedup::TTL_SECONDS),
                });
            }
        }
        result.map(|(stop, _)| stop)
    }

    /// Refuses a delivery or push that this isolate dispatched lately or that is in flight here;
    /// otherwise marks it in flight until the returned guard is dropped.
    fn claim(&self, keys: &[String; 2], delivery: &str) -> Result<InFlight<'a>, Stop> {
        let remembered = self.memory.recent.borrow().record_for(keys);
        if let Some(record) = remembered {
            return Err(self.duplicate(&record, delivery));
        }
        if keys
            .iter()
            .any(|key| self.memory.in_flight.borrow().contains(key))
        {
            return Err(Stop::in_flight(
                "this delivery or push is being dispatched by a request still in flight; \
                 answered non-2xx so it stays redeliverable should that one fail",
            ));
        }
        self.memory
            .in_flight
            .borrow_mut()
            .extend(keys.iter().cloned());
        Ok(InFlight {
            memory: self.memory,
            keys: keys.clone(),
        })
    }

    /// The KV record under the push (`push_key`). Every record is written under both keys, and a
    /// redelivery is the same push, so this one read answers for both: one KV read per publishing
    /// delivery, not two. (The delivery-id key is for the sweeper, which knows only a delivery's id.)
    async fn read_push_record(&self, push_key: &str) -> Result<Option<String>, String> {
        self.platform.kv_get(push_key).await
    }

    /// A record under the push makes the delivery a duplicate.
    fn judge(
        &self,
        record: Result<Option<String>, String>,
        delivery: &str,
        notes: &mut Notes,
    ) -> Result<(), Stop> {
        match record {
            Ok(None) => Ok(()),
            Ok(Some(record)) => Err(self.duplicate(&record, delivery)),
            // Better a second dispatch (the publisher skips what is published) than a lost one.
            Err(why) => {
                notes.push(format!("dedup: KV read failed, dispatching anyway: {why}"));
                Ok(())
            }
        }
    }

    fn duplicate(&self, record: &str, delivery: &str) -> Stop {
        Stop {
            status: 200,
            outcome: Outcome::Duplicate,
            reason: dedup::reason(record, self.platform.now_ms(), delivery),
            headers: Vec::new(),
        }
    }

    fn remember(&self, keys: &[String; 2], record: &str) {
        self.memory.recent.borrow_mut().remember(keys, record);
    }

    /// The dispatch with its retries. Returns the dedup record to write when GitHub accepted it.
    async fn dispatch(
        &self,
        central: &RepoName,
        publish: &Publish,
        push: &PushEvent,
        delivery: &str,
        facts: &mut DeliveryFacts,
        notes: &mut Notes,
    ) -> Result<(Stop, Option<String>), Stop> {
        let payload = dispatch::client_payload(publish, push, delivery);
        facts.package_path = Some(payload.package_path.clone());
        let what = describe(&payload);
        if self.config.dry_run {
            facts.dry_run = Some(true);
            facts.would_dispatch = Some(json!({
                "url": github::dispatch_url(self.config, central),
                "body": dispatch::body_json(&payload),
            }));
            return Ok((dispatched(format!("dry run: would dispatch {what}")), None));
        }
        let body = dispatch::body(&payload);
        let mut attempt = 1;
        loop {
            let request = github::dispatch_request(self.config, central, body.clone());
            let result = self.send(request).await;
            if let Err(error) = &result {
                notes.push(format!("dispatch attempt {attempt}: {}", error.detail()));
            }
            match after_attempt(attempt, &result, self.remaining_ms(), self.retry) {
                Next::Done => {
                    facts.attempts = Some(attempt);
                    let record = dedup::Record::new(&payload, self.platform.now_ms()).to_kv();
                    return Ok((dispatched(format!("dispatched {what}")), Some(record)));
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

    /// The registry through its tiers (module docs of `registry`): memory, KV, GitHub; a stale copy
    /// when GitHub fails, and no second request to GitHub within 30 s of a failed one.
    async fn registry(&self, central: &RepoName, notes: &mut Notes) -> Result<Registry, Stop> {
        let now = self.platform.now_ms();
        let ttl = self.config.registry_ttl_ms;
        // The common case, a fresh copy in memory, clones the registry once (not the cached copy too).
        if let Some(copy) = self.memory.registry.borrow().as_ref() {
            if copy.is_fresh(now, ttl) {
                return Ok(copy.registry.clone());
            }
        }
        let in_memory = self.memory.registry.borrow().clone();
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
            *self.memory.registry.borrow_mut() = Some(copy.clone());
            return Ok(copy.registry.clone());
        }
        let held = self
            .memory
            .registry_failure
            .borrow()
            .clone()
            .filter(|f| now.saturating_sub(f.at_ms) < REFRESH_FAILURE_HOLD_MS);
        let failure = match held {
            Some(failure) => {
                notes.push(format!(
                    "registry: not asking GitHub again within {} s of a failed refresh",
                    REFRESH_FAILURE_HOLD_MS / 1000
                ));
                failure
            }
            None => match self.fetch_registry(central, None).await {
                Ok(fresh) => return Ok(fresh.registry),
                Err(failure) => failure,
            },
        };
        notes.push(format!("registry: {}", failure.detail));
        if failure.configuration {
            notes.alarm = true;
        }
        match best {
            Some(stale) => {
                let age_ms = stale.age_ms(now);
                notes.push(format!(
                    "registry: using the copy from {} s ago",
                    age_ms / 1000
                ));
                if age_ms > self.config.registry_max_stale_ms {
                    notes.alarm = true;
                    notes.push(format!(
                        "registry: the copy is older than REGISTRY_MAX_STALE_SECONDS ({} s)",
                        self.config.registry_max_stale_ms / 1000
                    ));
                }
                let registry = stale.registry.clone();
                *self.memory.registry.borrow_mut() = Some(stale);
                Ok(registry)
            }
            None if failure.configuration => Err(Stop::misconfigured(format!(
                "worker is not configured: {}",
                failure.public
            ))),
            None => Err(Stop::upstream_failed(format!(
                "registry unavailable and no cached copy: {}",
                failure.public
            ))),
        }
    }

    /// Reads the registry file from GitHub (as of `at_commit` if given) and stores it in KV and memory;
    /// a failure is remembered for `REFRESH_FAILURE_HOLD_MS`.
    async fn fetch_registry(
        &self,
        central: &RepoName,
        at_commit: Option<&str>,
    ) -> Result<CachedRegistry, RegistryFailure> {
        let result = self.try_fetch_registry(central, at_commit).await;
        match &result {
            Ok(copy) => {
                *self.memory.registry.borrow_mut() = Some(copy.clone());
                *self.memory.registry_failure.borrow_mut() = None;
            }
            Err(failure) => *self.memory.registry_failure.borrow_mut() = Some(failure.clone()),
        }
        result
    }

    async fn try_fetch_registry(
        &self,
        central: &RepoName,
        at_commit: Option<&str>,
    ) -> Result<CachedRegistry, RegistryFailure> {
        let path = &self.config.registry_path;
        let failure = |public: String, detail: String, configuration: bool| RegistryFailure {
            at_ms: self.platform.now_ms(),
            public,
            detail,
            configuration,
        };
        let request = github::registry_file_request(self.config, central, at_commit);
        let response = self.send(request).await.map_err(|error| {
            failure(
                format!("reading {path} from {central}: {}", error.public()),
                format!("reading {path} from {central}: {}", error.detail()),
                false,
            )
        })?;
        if response.status != 200 {
            let why = format!(
                "reading {path} from {central}: GitHub answered {}: {}",
                response.status,
                github::error_message(&response.body)
            );
            // Not an outage: the repository, the path or the token's access is wrong.
            let configuration = matches!(response.status, 401 | 403 | 404);
            let why = if configuration {
                format!("{why} (check DISPATCH_REPO, REGISTRY_PATH and the token's access)")
            } else {
                why
            };
            return Err(failure(why.clone(), why, configuration));
        }
        let registry = Registry::parse(&response.body).map_err(|why| {
            let why = format!("{path} in {central} is invalid: {why}");
            failure(why.clone(), why, true)
        })?;
        let fetched_at_ms = self.platform.now_ms();
        // For other isolates, after the response: a failed or late KV write costs only a later
        // GitHub request.
        self.deferred.borrow_mut().push(KvWrite {
            key: self.registry_key(central),
            value: CachedRegistry::to_kv(&response.body, fetched_at_ms),
            ttl_seconds: None,
        });
        Ok(CachedRegistry {
            fetched_at_ms,
            registry,
        })
    }

    fn registry_key(&self, central: &RepoName) -> String {
        registry::kv_key(central, &self.config.registry_path)
    }

    /// `GET /health`, answered from the isolate's memory (no KV read, no GitHub request). Anyone learns
    /// `status` and `version`; the details need `Authorization: Bearer <HEALTH_TOKEN>`.
    pub fn health(&self, authorization: Option<&str>) -> Reply {
        let now = self.platform.now_ms();
        let copy = self.memory.registry.borrow().clone();
        let failure = self.memory.registry_failure.borrow().clone();
        let stale = copy
            .as_ref()
            .is_some_and(|c| c.age_ms(now) > self.config.registry_max_stale_ms);
        let status = if !self.config.problems.is_empty() {
            "misconfigured"
        } else if stale {
            "stale"
        } else {
            "ok"
        };
        let body = if health_authorized(self.config.health_token.as_deref(), authorization) {
            json!({
                "status": status,
                "service": "upm-relay",
                "version": env!("CARGO_PKG_VERSION"),
                "dispatch_repo": self.config.dispatch_repo.as_ref().map(RepoName::as_str),
                "dry_run": self.config.dry_run,
                "registry": copy.map(|copy| json!({
                    "entries": copy.registry.len(),
                    "age_seconds": copy.age_ms(now) / 1000,
                    "tier": "memory",
                })),
                "registry_error": failure.map(|f| f.public),
                "problems": self.config.problems,
            })
        } else {
            json!({ "status": status, "version": env!("CARGO_PKG_VERSION") })
        };
        Reply {
            status: 200,
            // Monitors and proxies must not serve an old answer.
            headers: vec![("Cache-Control", "no-store".to_string())],
            body: body.to_string(),
            log: None,
            after_response: Vec::new(),
        }
    }
}

/// `Authorization: Bearer <token>` against HEALTH_TOKEN, compared in constant time.
fn health_authorized(token: Option<&str>, authorization: Option<&str>) -> bool {
    let (Some(token), Some(presented)) = (token, authorization) else {
        return false;
    };
    let Some(presented) = presented.trim().strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (token.as_bytes(), presented.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

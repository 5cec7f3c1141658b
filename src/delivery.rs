//! The path of one request through the stages. Every decision is made by the stage modules; this file
//! only sequences them, does the I/O they ask for through the `Platform`, and collects what happened
//! into one `Reply`.

use futures_util::future::join;
use serde_json::json;

use crate::classify::{classify, Event, PullRequestEvent, PushEvent};
use crate::config::Config;
use crate::dedup;
use crate::dispatch::{self, after_attempt, ClientPayload, Next, RetryPolicy};
use crate::filter::{self, Publish};
use crate::github;
use crate::health;
use crate::isolate::{InFlight, IsolateMemory};
use crate::model::RepoName;
use crate::outbound::Outbound;
use crate::platform::Platform;
use crate::preview;
use crate::read::{self, BodyKind, Route};
use crate::registry::{self, Lookup};
use crate::registry_tiers::RegistryTiers;
use crate::respond::{self, finish, DeliveryFacts, KvWrite, Notes, Outcome, Reply, Stop};
use crate::verify::{parse_signature, Digest, SignatureError};

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

/// One delivery's worth of context: configuration, the runtime, and the isolate's memory. The
/// registry's tiers (`registry_tiers`), the deadline-bound requests and deferred writes (`outbound`)
/// and `/health` (`health`) are modules of their own; the relay sequences the stages and owns the
/// dedup checks and the dispatch's retries.
pub struct Relay<'a, P> {
    pub config: &'a Config,
    pub platform: &'a P,
    pub memory: &'a IsolateMemory,
    pub retry: RetryPolicy,
    /// The delivery's GitHub requests under its deadline, and its KV writes for after the response.
    outbound: Outbound<'a, P>,
}

impl<'a, P: Platform> Relay<'a, P> {
    /// Starts the clock: create the relay when the request arrives, before its body is read.
    pub fn new(config: &'a Config, platform: &'a P, memory: &'a IsolateMemory) -> Self {
        Relay {
            config,
            platform,
            memory,
            retry: RetryPolicy::default(),
            outbound: Outbound::new(config, platform),
        }
    }

    /// The registry's tiers as this delivery sees them.
    fn registry_tiers(&self) -> RegistryTiers<'_, P> {
        RegistryTiers {
            outbound: &self.outbound,
            memory: self.memory,
        }
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
        let elapsed = self
            .platform
            .now_ms()
            .saturating_sub(self.outbound.started_ms);
        let mut reply = finish(stop, facts, elapsed, &notes);
        reply.after_response = self.outbound.take_deferred();
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
            Event::PullRequest(pr) => {
                return self
                    .pull_request(central, &pr, &delivery, facts, notes)
                    .await
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
            match self
                .registry_tiers()
                .fetch(central, Some(&push.after))
                .await
            {
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
            (self.registry_tiers().read(central, notes).await, None)
        } else {
            let mut registry_notes = Notes::default();
            let (registry, records) = join(
                self.registry_tiers().read(central, &mut registry_notes),
                self.read_push_record(&keys[1]),
            )
            .await;
            notes.lines.extend(registry_notes.lines);
            notes.alarm |= registry_notes.alarm;
            (registry, Some(records))
        };
        let registry = registry?;
        let entry = self.active_entry(&registry, &candidate.repository)?;
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
            self.record_dispatch(&keys, record);
        }
        result.map(|(stop, _)| stop)
    }

    /// Remembers an accepted dispatch in the isolate at once, and in KV after the response: under the
    /// push or pull request head (a copy under another delivery id finds it) and under the delivery id,
    /// which is all the sweeper knows of a delivery GitHub lists as failed: one that was dispatched but
    /// whose answer was lost must not be redelivered.
    fn record_dispatch(&self, keys: &[String; 2], record: &str) {
        self.remember(keys, record);
        for key in keys {
            self.outbound.defer(KvWrite {
                key: key.clone(),
                value: record.to_string(),
                ttl_seconds: Some(dedup::TTL_SECONDS),
            });
        }
    }

    /// The registry entry of an active repository. An inactive or unregistered one is answered 200
    /// ignored with the reason, for pushes and pull requests alike.
    fn active_entry<'r>(
        &self,
        registry: &'r registry::Registry,
        repository: &RepoName,
    ) -> Result<&'r registry::Entry, Stop> {
        match registry.lookup(repository) {
            Lookup::Active(entry) => Ok(entry),
            Lookup::Inactive(status) => Err(Stop::ignored(format!(
                "{repository} is {} in the registry",
                status.as_str()
            ))),
            Lookup::NotRegistered => Err(Stop::ignored(format!(
                "{repository} is not in the registry ({})",
                self.config.registry_path
            ))),
        }
    }

    /// Refuses a delivery or push that this isolate dispatched lately or that is in flight here;
    /// otherwise marks it in flight until the returned guard is dropped.
    fn claim(&self, keys: &[String; 2], delivery: &str) -> Result<InFlight<'a>, Stop> {
        let remembered = self.memory.recent.borrow().record_for(keys);
        if let Some(record) = remembered {
            return Err(self.duplicate(&record, delivery));
        }
        self.memory.claim_in_flight(keys).ok_or_else(|| {
            Stop::in_flight(
                "this delivery or push is being dispatched by a request still in flight; \
                 answered non-2xx so it stays redeliverable should that one fail",
            )
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

    /// The publish dispatch of a push.
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
        let outgoing = Outgoing {
            what: describe(&payload),
            body: dispatch::body(&payload),
            body_json: self.config.dry_run.then(|| dispatch::body_json(&payload)),
            record: dedup::Record::new(&payload, 0),
        };
        self.send(central, outgoing, facts, notes).await
    }

    /// A `pull_request` delivery: the same verification, registry, dedup and dispatch as a push, with
    /// `preview` deciding instead of `filter`, and a `package_preview` dispatch.
    async fn pull_request(
        &self,
        central: &RepoName,
        event: &PullRequestEvent,
        delivery: &str,
        facts: &mut DeliveryFacts,
        notes: &mut Notes,
    ) -> Result<Stop, Stop> {
        facts.repository = Some(read::truncate_for_message(&event.repository.full_name));
        facts.pull_request = Some(event.number);
        facts.branch = Some(read::truncate_for_message(&event.pull_request.base.git_ref));
        facts.commit_sha = Some(read::truncate_for_message(&event.pull_request.head.sha));
        let candidate = preview::candidate(event)?;
        let registry = self.registry_tiers().read(central, notes).await?;
        let entry = self.active_entry(&registry, &candidate.repository)?;
        let preview = preview::on_base(candidate, entry.branch.as_deref())?;
        let keys = [
            dedup::key(delivery),
            dedup::preview_key(
                &preview.repository,
                preview.number,
                &preview.head_sha,
                &preview.base_sha,
            ),
        ];
        let _in_flight = self.claim(&keys, delivery)?;
        let records = self.read_push_record(&keys[1]).await;
        self.judge(records, delivery, notes)?;
        let payload = dispatch::preview_payload(&preview, delivery);
        let outgoing = Outgoing {
            what: format!(
                "the preview of {}#{} at {}{}",
                payload.repository,
                payload.pull_request,
                &payload.head_sha[..12],
                if payload.fork { " (from a fork)" } else { "" }
            ),
            body: dispatch::preview_body_json(&payload).to_string(),
            body_json: self
                .config
                .dry_run
                .then(|| dispatch::preview_body_json(&payload)),
            record: dedup::Record::preview(&payload, 0),
        };
        let result = self.send(central, outgoing, facts, notes).await;
        if let Ok((_, Some(record))) = &result {
            self.record_dispatch(&keys, record);
        }
        result.map(|(stop, _)| stop)
    }

    /// A dispatch with its retries. Returns the dedup record to write when GitHub accepted it.
    async fn send(
        &self,
        central: &RepoName,
        outgoing: Outgoing,
        facts: &mut DeliveryFacts,
        notes: &mut Notes,
    ) -> Result<(Stop, Option<String>), Stop> {
        let what = outgoing.what;
        if self.config.dry_run {
            facts.dry_run = Some(true);
            facts.would_dispatch = Some(json!({
                "url": github::dispatch_url(self.config, central),
                "body": outgoing.body_json,
            }));
            return Ok((dispatched(format!("dry run: would dispatch {what}")), None));
        }
        let body = outgoing.body;
        let mut attempt = 1;
        loop {
            let request = github::dispatch_request(self.config, central, body.clone());
            let result = self.outbound.send(request).await;
            if let Err(error) = &result {
                notes.push(format!("dispatch attempt {attempt}: {}", error.detail()));
            }
            match after_attempt(attempt, &result, self.outbound.remaining_ms(), self.retry) {
                Next::Done => {
                    facts.attempts = Some(attempt);
                    let record = dedup::Record {
                        dispatched_at_ms: self.platform.now_ms(),
                        ..outgoing.record
                    }
                    .to_kv();
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

    /// `GET /health`, answered from the isolate's memory (`health`).
    pub fn health(&self, authorization: Option<&str>) -> Reply {
        health::reply(
            self.config,
            self.memory,
            self.platform.now_ms(),
            authorization,
        )
    }
}

/// One dispatch to send: its body (as sent, and as a dry run shows it), how the reason names it, and the
/// dedup record to keep once GitHub accepted it (its time set then).
struct Outgoing {
    what: String,
    body: String,
    /// Only with DRY_RUN: what the log line shows instead of sending.
    body_json: Option<serde_json::Value>,
    record: dedup::Record,
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

//! The registry through its tiers (module docs of `registry`): the isolate's memory, KV, then the
//! registry file on GitHub; a stale copy when GitHub fails, and no second request to GitHub within
//! `REFRESH_FAILURE_HOLD_MS` of a failed one. `registry` decides (parsing, freshness, which copy is
//! newer); this module does the I/O those decisions ask for, for one delivery.

use crate::github;
use crate::isolate::{IsolateMemory, RegistryFailure};
use crate::model::RepoName;
use crate::outbound::Outbound;
use crate::platform::Platform;
use crate::registry::{self, CachedRegistry, Registry};
use crate::respond::{KvWrite, Notes, Stop};

/// After a failed registry refresh, GitHub is not asked again for this long: an outage costs one
/// request per 30 s per isolate, not one per delivery.
pub const REFRESH_FAILURE_HOLD_MS: u64 = 30_000;

/// One delivery's view of the tiers: its outbound requests (under its deadline) and the isolate's copy.
pub struct RegistryTiers<'r, P> {
    pub outbound: &'r Outbound<'r, P>,
    pub memory: &'r IsolateMemory,
}

impl<P: Platform> RegistryTiers<'_, P> {
    /// The registry from the cheapest tier with a fresh copy: memory, KV, GitHub; a stale copy when
    /// GitHub fails, and no second request to GitHub within 30 s of a failed one.
    pub async fn read(&self, central: &RepoName, notes: &mut Notes) -> Result<Registry, Stop> {
        let now = self.outbound.platform.now_ms();
        let ttl = self.outbound.config.registry_ttl_ms;
        // The common case, a fresh copy in memory, clones the registry once (not the cached copy too).
        if let Some(copy) = self.memory.registry.borrow().as_ref() {
            if copy.is_fresh(now, ttl) {
                return Ok(copy.registry.clone());
            }
        }
        let in_memory = self.memory.registry.borrow().clone();
        let in_kv = match self.outbound.platform.kv_get(&self.kv_key(central)).await {
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
            None => match self.fetch(central, None).await {
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
                if age_ms > self.outbound.config.registry_max_stale_ms {
                    notes.alarm = true;
                    notes.push(format!(
                        "registry: the copy is older than REGISTRY_MAX_STALE_SECONDS ({} s)",
                        self.outbound.config.registry_max_stale_ms / 1000
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
    pub async fn fetch(
        &self,
        central: &RepoName,
        at_commit: Option<&str>,
    ) -> Result<CachedRegistry, RegistryFailure> {
        let result = self.try_fetch(central, at_commit).await;
        match &result {
            Ok(copy) => {
                *self.memory.registry.borrow_mut() = Some(copy.clone());
                *self.memory.registry_failure.borrow_mut() = None;
            }
            Err(failure) => *self.memory.registry_failure.borrow_mut() = Some(failure.clone()),
        }
        result
    }

    async fn try_fetch(
        &self,
        central: &RepoName,
        at_commit: Option<&str>,
    ) -> Result<CachedRegistry, RegistryFailure> {
        let path = &self.outbound.config.registry_path;
        let failure = |public: String, detail: String, configuration: bool| RegistryFailure {
            at_ms: self.outbound.platform.now_ms(),
            public,
            detail,
            configuration,
        };
        let request = github::registry_file_request(self.outbound.config, central, at_commit);
        let response = self.outbound.send(request).await.map_err(|error| {
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
        let fetched_at_ms = self.outbound.platform.now_ms();
        // For other isolates, after the response: a failed or late KV write costs only a later
        // GitHub request.
        self.outbound.defer(KvWrite {
            key: self.kv_key(central),
            value: CachedRegistry::to_kv(&response.body, fetched_at_ms),
            ttl_seconds: None,
        });
        Ok(CachedRegistry {
            fetched_at_ms,
            registry,
        })
    }

    fn kv_key(&self, central: &RepoName) -> String {
        registry::kv_key(central, &self.outbound.config.registry_path)
    }
}

//! What an isolate keeps between requests: a Workers isolate runs one thread and serves many requests
//! (the glue leaks one `IsolateMemory` per isolate), and it is empty after every cold start. The
//! delivery reads and writes it; the bookkeeping of its sets is here, so no stage has to know it.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use crate::registry::CachedRegistry;

/// How many dispatched delivery ids and pushes an isolate remembers (a few hundred KB at most): enough
/// to cover the time until the KV records written after the response are readable.
pub const RECENT_DISPATCHES: usize = 1_000;

/// What an isolate keeps between requests: it runs one thread and serves many requests, and is
/// empty after every cold start.
#[derive(Debug, Default)]
pub struct IsolateMemory {
    /// The registry's first and cheapest tier.
    pub registry: RefCell<Option<CachedRegistry>>,
    /// The last failed refresh, while it holds (`registry_tiers::REFRESH_FAILURE_HOLD_MS`).
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
    pub(crate) fn len(&self) -> usize {
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

/// Removes a delivery's keys from the in-flight set however the delivery ends.
pub struct InFlight<'a> {
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

impl IsolateMemory {
    /// Marks a delivery's dedup keys in flight until the returned guard is dropped; `None` when one of
    /// them is in flight already (another request of this isolate is dispatching the same delivery or
    /// push).
    pub fn claim_in_flight(&self, keys: &[String; 2]) -> Option<InFlight<'_>> {
        if keys.iter().any(|key| self.in_flight.borrow().contains(key)) {
            return None;
        }
        self.in_flight.borrow_mut().extend(keys.iter().cloned());
        Some(InFlight {
            memory: self,
            keys: keys.clone(),
        })
    }
}

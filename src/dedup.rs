//! dedup: was this delivery dispatched already?
//!
//! GitHub redelivers with the same `X-GitHub-Delivery` GUID: by hand ("Redeliver" on the webhook's page),
//! or when it gave up waiting for our answer after the dispatch had gone out. Each dispatched GUID is
//! remembered in KV for longer than GitHub offers redelivery (3 days), so a second copy is answered
//! `duplicate` instead of publishing twice. The record is written only after GitHub accepted the
//! dispatch: a delivery that failed can always be redelivered. KV is eventually consistent across
//! locations (up to about a minute), so two copies arriving at once in different places can both pass;
//! the publisher skips versions already published, so that costs a workflow run, never a double publish.

use serde::{Deserialize, Serialize};

use crate::dispatch::ClientPayload;

/// GitHub keeps deliveries for redelivery for 3 days ("Redelivering webhooks" in GitHub's docs); a day
/// more covers clock differences and a redelivery that is itself retried.
pub const TTL_SECONDS: u64 = 4 * 24 * 60 * 60;
const _: () = assert!(
    TTL_SECONDS > 3 * 24 * 60 * 60,
    "must outlast GitHub's redelivery window"
);

pub fn key(delivery: &str) -> String {
    format!("delivery:{delivery}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub dispatched_at_ms: u64,
    pub repository: String,
    pub commit_sha: String,
}

impl Record {
    pub fn new(payload: &ClientPayload, now_ms: u64) -> Record {
        Record {
            dispatched_at_ms: now_ms,
            repository: payload.repository.clone(),
            commit_sha: payload.commit_sha.clone(),
        }
    }

    pub fn to_kv(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }
}

/// The `duplicate` reason for a delivery whose record is `value`. A record we cannot read still means
/// the delivery was dispatched: only a successful dispatch writes one.
pub fn reason(value: &str, now_ms: u64) -> String {
    match serde_json::from_str::<Record>(value) {
        Ok(record) => format!(
            "already dispatched {}@{} {} s ago; this is a redelivery",
            record.repository,
            record.commit_sha.chars().take(12).collect::<String>(),
            now_ms.saturating_sub(record.dispatched_at_ms) / 1000
        ),
        Err(_) => "already dispatched; this is a redelivery".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> ClientPayload {
        ClientPayload {
            repository: "Studio/Core".into(),
            commit_sha: "8f1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5".into(),
            commit_message: "feat: x".into(),
            commit_author: "Zoë".into(),
            branch: "main".into(),
            package_path: ".".into(),
            delivery: "d-1".into(),
        }
    }

    #[test]
    fn key_is_per_delivery() {
        assert_eq!(key("72d3162e-cc78"), "delivery:72d3162e-cc78");
    }

    #[test]
    fn reason_says_what_was_dispatched_and_when() {
        let value = Record::new(&payload(), 1_000_000).to_kv();
        assert_eq!(
            reason(&value, 1_090_500),
            "already dispatched Studio/Core@8f1d2c3b4a59 90 s ago; this is a redelivery"
        );
        assert_eq!(
            reason("garbage", 0),
            "already dispatched; this is a redelivery"
        );
    }
}

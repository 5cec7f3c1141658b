//! dedup: was this delivery, or this push, dispatched already?
//!
//! GitHub redelivers with the same `X-GitHub-Delivery` GUID: by hand ("Redeliver" on the webhook's page),
//! or when the sweeper asks it to. One push can also arrive twice under two GUIDs: an organization hook
//! and a repository hook, or two organization hooks during a migration. So a dispatch is remembered
//! under its push (repository, `after` sha), which a redelivery shares, and under its delivery id
//! (`delivery:<id>`, which is what the scheduled sweeper can look up for a delivery GitHub lists as
//! failed), in KV for longer than GitHub offers redelivery (3 days). A later copy is answered
//! `duplicate` when its push holds a record: a redelivery is the same push, so one KV read answers for
//! both. (Records of the worker before the push key existed are under the delivery id only; for the 4
//! days after such a deploy, a redelivery of one of them is dispatched again and the publisher skips
//! the version already published.)
//!
//! The records are written only after GitHub accepted the dispatch, so a delivery that failed can always
//! be redelivered. They are written after the response is sent (`ctx.waitUntil`), which shortens every
//! dispatched reply by a KV write; the isolate remembers the dispatch at once (`isolate::IsolateMemory`),
//! so a copy reaching the same isolate in between is still a duplicate. KV is eventually consistent
//! across locations (up to about a minute), so two copies arriving at once in different places can both
//! pass; the publisher skips versions already published, so that costs a workflow run, never a double
//! publish.

use serde::{Deserialize, Serialize};

use crate::dispatch::ClientPayload;
use crate::model::RepoName;

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

/// The push's key: repository (lower-cased, as GitHub compares names) and the commit it moved to.
pub fn push_key(repository: &RepoName, after: &str) -> String {
    format!("push:{}:{}", repository.key(), after.to_ascii_lowercase())
}

/// A pull request preview's key: the repository, the pull request, and the two commits the preview
/// compares. A redelivery shares it; a `reopened` with the same head and base is the same preview (its
/// check run still stands on that head), but a new head (`synchronize`) or a moved base is not.
pub fn preview_key(repository: &RepoName, number: u64, head_sha: &str, base_sha: &str) -> String {
    format!(
        "pr:{}:{number}:{}:{}",
        repository.key(),
        head_sha.to_ascii_lowercase(),
        base_sha.to_ascii_lowercase()
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub dispatched_at_ms: u64,
    pub repository: String,
    pub commit_sha: String,
    /// The delivery that was dispatched (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delivery: String,
}

impl Record {
    pub fn new(payload: &ClientPayload, now_ms: u64) -> Record {
        Record {
            dispatched_at_ms: now_ms,
            repository: payload.repository.clone(),
            commit_sha: payload.commit_sha.clone(),
            delivery: payload.delivery.clone(),
        }
    }

    /// The record of a preview dispatch: the head sha stands where a push's commit does.
    pub fn preview(payload: &crate::dispatch::PreviewPayload, now_ms: u64) -> Record {
        Record {
            dispatched_at_ms: now_ms,
            repository: payload.repository.clone(),
            commit_sha: payload.head_sha.clone(),
            delivery: payload.delivery.clone(),
        }
    }

    pub fn to_kv(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }
}

/// The `duplicate` reason for a delivery whose record is `value`, found under its own id or under
/// its push (`this_delivery` tells which). A record we cannot read still means the delivery was
/// dispatched: only a successful dispatch writes one.
pub fn reason(value: &str, now_ms: u64, this_delivery: &str) -> String {
    match serde_json::from_str::<Record>(value) {
        Ok(record) => {
            let what = format!(
                "already dispatched {}@{} {} s ago",
                record.repository,
                record.commit_sha.chars().take(12).collect::<String>(),
                now_ms.saturating_sub(record.dispatched_at_ms) / 1000
            );
            if record.delivery.is_empty() || record.delivery == this_delivery {
                format!("{what}; this is a redelivery")
            } else {
                format!(
                    "{what} for delivery {}; the same push arrived twice (two webhooks?)",
                    crate::read::truncate_for_message(&record.delivery)
                )
            }
        }
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
            runner: None,
        }
    }

    #[test]
    fn a_preview_is_keyed_by_its_pull_request_head_and_base() {
        let repo = RepoName::parse("Studio/Core").unwrap();
        let (head, base) = ("A".repeat(40), "b".repeat(40));
        let key = preview_key(&repo, 7, &head, &base);
        assert_eq!(key, format!("pr:studio/core:7:{}:{base}", "a".repeat(40)));
        // Another head, another base, another pull request: another preview.
        assert_ne!(key, preview_key(&repo, 7, &"c".repeat(40), &base));
        assert_ne!(key, preview_key(&repo, 7, &head, &"c".repeat(40)));
        assert_ne!(key, preview_key(&repo, 8, &head, &base));
        // Never the key of a push of the same commit: a merge's push must still publish.
        assert_ne!(key, push_key(&repo, &head));
    }

    #[test]
    fn key_is_per_delivery() {
        assert_eq!(key("72d3162e-cc78"), "delivery:72d3162e-cc78");
    }

    #[test]
    fn reason_says_what_was_dispatched_and_when() {
        let value = Record::new(&payload(), 1_000_000).to_kv();
        assert_eq!(
            reason(&value, 1_090_500, "d-1"),
            "already dispatched Studio/Core@8f1d2c3b4a59 90 s ago; this is a redelivery"
        );
        assert_eq!(
            reason(&value, 1_090_500, "d-2"),
            "already dispatched Studio/Core@8f1d2c3b4a59 90 s ago for delivery d-1; the same push arrived twice (two webhooks?)"
        );
        assert_eq!(
            reason("garbage", 0, "d-1"),
            "already dispatched; this is a redelivery"
        );
        // A record from before the delivery id was kept.
        let old = r#"{"dispatched_at_ms":1000000,"repository":"Studio/Core","commit_sha":"8f1d2c3b4a5968778695"}"#;
        assert!(reason(old, 1_000_000, "d-9").ends_with("this is a redelivery"));
    }

    #[test]
    fn push_key_ignores_case() {
        let a = RepoName::parse("Studio/Core").unwrap();
        let b = RepoName::parse("studio/CORE").unwrap();
        assert_eq!(push_key(&a, "ABC123"), push_key(&b, "abc123"));
        assert_eq!(push_key(&a, "abc"), "push:studio/core:abc");
    }
}

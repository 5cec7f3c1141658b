//! The one deadline of a delivery. It lives below every module that bounds a request by it: the
//! GitHub requests (`github::request` sets it as the default timeout), the dispatch retries (`dispatch`
//! counts what is left of it) and the delivery that starts its clock (`outbound`).

/// Every delivery is answered within this long of its request's start: GitHub records a delivery
/// as failed when it has no answer after 10 s ("Handling failed webhook deliveries" in GitHub's docs),
/// and a runtime may cancel a request GitHub has abandoned, after the dispatch went out but before the
/// dedup record is written. Every outbound request is aborted when the deadline passes.
pub const DEADLINE_MS: u64 = 8_000;

/// What is left of the deadline of a request that started at `started_ms`, at `now_ms`.
pub fn remaining_ms(started_ms: u64, now_ms: u64) -> u64 {
    (started_ms + DEADLINE_MS).saturating_sub(now_ms)
}

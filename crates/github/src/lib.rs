//! GitHub for UPM Auto Publisher: one REST client for every native tool (the `upm` operations CLI, the
//! publisher's reconcile), and the pure rules shared with the wasm worker.
//!
//! - [`deliveries`]: the organization hook's delivery log and the redelivery rule (no native deps).
//! - the client (feature `client`, on by default).

pub mod deliveries;

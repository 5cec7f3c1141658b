//! UPM Auto Publisher's webhook relay: a Cloudflare Worker that turns a signed GitHub push touching a
//! UPM package's `package.json` into a `repository_dispatch` on the central repository.
//!
//! # Layers, bottom to top
//!
//! A module names (`crate::…`) only the modules of the lines above its own, never one of its own line
//! or a later one: read down the list and each module is made of what came before, and a change to
//! one reaches only the lines after it. Test code (`#[cfg(test)]` items and the files only they
//! include) may name anything. `tests/layers.rs` checks the order and that no two modules name each
//! other, directly or through others.
//!
//! - `model`: plain domain types (repository names)
//! - `deadline`: the one time budget of a delivery
//! - `respond`: how a request ends: outcome, reply, JSON body and log line
//! - `verify`: the `X-Hub-Signature-256` HMAC
//! - `platform`: the seam to the runtime: HTTP, KV, clock, crypto
//! - `read`: method, path, content type and size of a request
//! - `classify`: which event a delivery carries
//! - `filter`: whether a push publishes, and which packages
//! - `preview`: whether a pull request gets a publish preview
//! - `registry`: the registered repositories, parsed and looked up
//! - `app_key`: the GitHub App's private key, read from PEM
//! - `config`: every setting, the App's and the sweeper's included
//! - `github`: the GitHub REST requests, decided
//! - `dispatch`: the `repository_dispatch` payload, and when to try again
//! - `dedup`: the records that make a second copy a duplicate
//! - `app_auth`: the App's JWT and installation token
//! - `sweep`: the sweeper's decisions
//! - `watchdog`: the watchdog's decisions (stuck runs, dead runner pools, stopped nets, alerts)
//! - `isolate`: what an isolate remembers between requests
//! - `health`: the `/health` answer
//! - `outbound`: a delivery's requests under its deadline, its writes after its reply
//! - `registry_tiers`: the registry through memory, KV and GitHub
//! - `delivery`, `scheduled`: the sequencers, of a request and of a sweep
//! - `glue`: the Workers runtime (wasm32 only); nothing names it
//!
//! Each stage is a plain Rust module, compiled and tested natively; only `glue` (compiled for wasm32)
//! touches the Workers runtime. The stages, in the order a delivery meets them:
//! `read` → `verify` → `classify` → `filter` → `registry` → `dedup` → `dispatch` → `respond`, sequenced by
//! `delivery` through the `platform` seam (GitHub, KV, clock).

pub mod app_auth;
pub mod app_key;
pub mod classify;
pub mod config;
pub mod deadline;
pub mod dedup;
pub mod delivery;
pub mod dispatch;
pub mod filter;
pub mod github;
pub mod health;
pub mod isolate;
pub mod model;
pub mod outbound;
pub mod platform;
pub mod preview;
pub mod read;
pub mod registry;
pub mod registry_tiers;
pub mod respond;
pub mod scheduled;
pub mod sweep;
pub mod verify;
pub mod watchdog;

#[cfg(test)]
mod fake_world;
#[cfg(test)]
mod fixtures;

#[cfg(target_arch = "wasm32")]
mod glue;

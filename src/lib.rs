//! UPM Auto Publisher's webhook relay: a Cloudflare Worker that turns a signed GitHub push touching a
//! UPM package's `package.json` into a `repository_dispatch` on the central repository.
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
pub mod read;
pub mod registry;
pub mod registry_tiers;
pub mod respond;
pub mod scheduled;
pub mod sweep;
pub mod verify;

#[cfg(test)]
mod fake_world;
#[cfg(test)]
mod fixtures;

#[cfg(target_arch = "wasm32")]
mod glue;

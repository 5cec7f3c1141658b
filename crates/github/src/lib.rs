//! GitHub for UPM Auto Publisher: one REST client for every native tool (the `upm` operations CLI, the
//! publisher's reconcile), and the pure rules shared with the wasm worker.
//!
//! - [`deliveries`]: the organization hook's delivery log and the redelivery rule (serde only, so the
//!   worker builds it with `default-features = false`).
//! - [`link`]: the pagination header (pure).
//! - With the default feature `client`: [`client::GitHub`] (blocking `ureq`), [`auth`] (token or GitHub
//!   App), [`api`] (the typed endpoints), [`checks`] (check runs), [`git_data`] (trees, commits,
//!   refs), [`settings`] (what a deployment depends on, read-only), [`error`].

pub mod deliveries;
pub mod link;

#[cfg(feature = "client")]
pub mod api;
#[cfg(feature = "client")]
pub mod auth;
#[cfg(feature = "client")]
pub mod checks;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod error;
#[cfg(feature = "client")]
pub mod git_data;
#[cfg(feature = "client")]
pub mod settings;

#[cfg(feature = "client")]
pub use auth::{Credentials, Secret};
#[cfg(feature = "client")]
pub use client::{ClientConfig, GitHub};
#[cfg(feature = "client")]
pub use error::Error;

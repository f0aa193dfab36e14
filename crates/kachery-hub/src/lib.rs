//! The kachery hub: a web and API server that knows people, their nodes and channels,
//! records who may do what, and issues short-lived credentials for each channel's bucket
//! and broker (SPEC §1, §8–§11). Phase 1 runs SQLite, the embedded bucket and the
//! embedded broker, with dev login instead of OpenID Connect.
//!
//! Entry point: [`spawn`] a hub from a [`HubConfig`] and keep the [`HubHandle`]. The
//! CLI (`kachery hub serve`) loads the config, spawns, and calls
//! [`HubHandle::shutdown`] on a signal.
//!
//! Inside: [`app`] assembles the router from [`user_api`] (JSON, bearer tokens from
//! [`auth`]), [`node_api`] (signed envelopes) and the embedded backends ([`backends`]);
//! [`db`] is the only place with SQL; [`keys`] derives every secret from the master key;
//! [`vault`] encrypts channel secrets (and [`rotate_master_key`] moves them to a new
//! master key); [`error`] maps every refusal to one status and JSON body.

mod app;
mod audit;
mod auth;
mod backends;
mod channel_buckets;
mod channel_test;
mod config;
pub mod db;
mod error;
mod extract;
pub mod keys;
mod node_api;
mod pages;
mod passcode;
mod pubsub_backends;
mod rate_limit;
mod registration;
mod revocation;
mod rotation;
mod server;
mod stats;
mod time;
mod trace;
mod user_api;
pub mod vault;
mod web;
mod web_auth;

pub use config::{ConfigError, HubConfig, OidcProviderConfig};
pub use keys::MasterKeyError;
pub use rotation::{RotateKeyError, RotationReport, read_key_file, rotate_master_key};
pub use server::{HubHandle, ServeError, StartError, spawn};

//! The kachery node daemon (SPEC §13): a node's identity, store, hub reconcile loop,
//! channel links, file exchange and local client API.
//!
//! The daemon never accepts connections from other machines: it talks to its hub's node
//! API (signed requests), to each channel's pub-sub broker (one link per channel with
//! effective roles) and to channel buckets through presigned URLs, and serves the CLI on
//! 127.0.0.1 ([`local_api`]). Start it with [`NodeDaemon::start`]; the returned
//! [`NodeHandle`] owns every task it spawned.
//!
//! Without a daemon the CLI still uses [`load_or_create_identity`] (`node id`,
//! `node register`), [`NodeConfig`], [`NodePaths`] and [`daemon_file`].
//!
//! Map of the crate:
//! - [`paths`], [`identity`], [`config`], [`client_token`], [`lock`], [`daemon_file`]: files
//!   in the node dir.
//! - [`daemon`]: start-up, shutdown and task ownership.
//! - `reconcile`: getNodeConfig → links; `link`: one broker connection per channel.
//! - `network`: the exchange's `Network` over links and the node API.
//! - `report`, `status`, `state`: what the node tells the hub and the CLI about itself.
//! - `eviction`: keeps the store under its size limit.

pub mod client_token;
pub mod config;
pub mod daemon;
pub mod daemon_file;
pub mod identity;
pub mod local_api;
pub mod lock;
pub mod paths;

mod eviction;
mod link;
mod network;
mod nonce_memory;
mod reconcile;
mod report;
mod state;
mod status;
mod timing;

pub use client_token::{
    ClientToken, ClientTokenError, load_or_create_client_token, read_client_token,
    rotate_client_token,
};
pub use config::{ConfigError, NodeConfig, NodeConfigOverrides};
pub use daemon::{DaemonOptions, NodeDaemon, NodeHandle, StartError};
pub use daemon_file::DaemonInfo;
pub use identity::{IdentityError, NodeIdentity, load_or_create_identity};
pub use lock::LockError;
pub use paths::NodePaths;

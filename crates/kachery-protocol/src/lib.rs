//! The vocabulary of kachery, shared by the hub, the node and the CLI.
//!
//! This crate holds everything two parties must agree on byte for byte: validated
//! identifiers ([`NodeId`], [`Sha1Hash`], [`ChannelName`], ...), roles and the pub-sub
//! bands they open ([`RoleSet`], [`Band`]), RFC 8785 canonical JSON ([`jcs`]),
//! domain-separated Ed25519 signatures ([`signing`]), `sha1://` URIs ([`uri`]), signed
//! subfeed messages and heads ([`feed`]), the byte-exact manifest format ([`manifest`]), bucket keys ([`bucket_key`]) and every wire
//! message of the node API ([`node_api`]), the user API ([`user_api`]) and the pub-sub
//! bands ([`pubsub`]).
//!
//! It does no I/O and reads neither the clock nor a random source: callers pass the time
//! and the nonces in, so every rule here can be tested with fixed vectors.

pub mod api_error;
pub mod bucket_key;
pub mod cli_login;
pub mod envelope;
pub mod feed;
pub mod hub_views;
pub mod ids;
pub mod jcs;
pub mod limits;
pub mod manifest;
pub mod node_api;
pub mod pubsub;
pub mod roles;
pub mod signing;
pub mod task;
pub mod uri;
pub mod user_api;

pub use envelope::SignedEnvelope;
pub use ids::{ChannelName, Email, IdError, Label, NodeId, Nonce, Sha1Hash};
pub use manifest::{CHUNK_SIZE, Manifest, ManifestChunk};
pub use roles::{Band, Role, RoleSet};
pub use signing::Purpose;
pub use uri::{FileUri, KacheryUri};

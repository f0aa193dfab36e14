//! Pub-sub for kachery: the signalling path between the nodes of a channel (SPEC §6).
//!
//! Nodes never talk to each other directly; they publish signed envelopes on a channel's
//! bands and hear the bands their roles allow. This crate has three parts:
//!
//! - [`issuer`]: the hub turns a node's capability into a short-lived broker credential
//!   ([`CredentialIssuer`], [`EmbeddedIssuer`]), carried by a MACed token ([`token`]).
//! - [`broker`]: the WebSocket broker embedded in the hub ([`EmbeddedBroker`]), which
//!   enforces the token's bands, the sender check and the size and rate limits, and
//!   applies revocations at once (SPEC §5.5).
//! - [`client`]: the node's connection ([`PubsubConnection`]) with batching publishers
//!   and a stream of [`Incoming`] events.
//!
//! - [`nats`]: a channel's own `nats-server` in JWT mode: user JWTs minted by the hub
//!   ([`nats::NatsIssuer`]) and the node's NATS driver behind the same connection handle.
//! - [`ably`]: Ably token requests signed with the channel's API key.
//!
//! Every backend sits behind the same [`CredentialIssuer`] and [`PubsubClient`] seams. Signatures are not checked here:
//! receivers run `kachery_protocol::pubsub::check_received` on every message.

pub mod ably;
pub mod broker;
pub mod client;
pub mod error_code;
pub mod issuer;
pub mod nats;
pub mod token;

pub use broker::{BrokerLimits, EmbeddedBroker};
pub use client::{
    ClientOptions, ConnectError, Incoming, PublishError, Publisher, PubsubClient, PubsubConnection,
    Ready, ReauthError,
};
pub use error_code::BrokerErrorCode;
pub use issuer::{CredentialIssuer, CredentialRequest, EmbeddedIssuer, IssuedCredential};
pub use token::{BrokerTokenKey, TokenClaims, TokenError};

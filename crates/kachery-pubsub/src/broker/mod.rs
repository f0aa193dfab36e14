//! The embedded pub-sub broker: a WebSocket endpoint inside the hub process (SPEC §6.2).
//!
//! Nodes connect to `GET /pubsub/ws`, present a token from [`crate::issuer::EmbeddedIssuer`]
//! in their first frame, subscribe to the bands the token allows and publish batches of
//! signed envelopes, which reach every *other* connection subscribed to the same
//! `<channel>/<band>`. The broker checks sizes, rates and that each envelope's sender is
//! the token's node; signatures are left to receivers (SPEC §6.3).
//!
//! The hub tells the broker about revocations ([`EmbeddedBroker::update_capability`],
//! [`EmbeddedBroker::close_channel`]) and they apply at once (SPEC §5.5). The broker holds
//! all state in memory, so it serves a single hub replica; multi-replica deployments use
//! NATS or Ably.
//!
//! Layout: `registry` holds connections, rights and topics; `connection` runs one socket
//! from handshake to close; `session` applies the frame rules; `rate` has the token
//! buckets.

mod connection;
mod rate;
mod registry;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::get;

use kachery_protocol::limits::MAX_BROKER_MESSAGE_BYTES;
use kachery_protocol::roles::Capability;
use kachery_protocol::{Band, ChannelName, Email, NodeId};

use crate::error_code::{REVOKED_ROLES_CHANGED, REVOKED_ROLES_REMOVED};
use crate::token::BrokerTokenKey;

use self::registry::Registry;

/// Per-connection limits of the embedded broker (SPEC §21). Envelope and frame sizes are
/// protocol constants and live in `kachery_protocol::limits`.
#[derive(Debug, Clone)]
pub struct BrokerLimits {
    /// How long a new socket may wait before sending `auth`. Default 10 s.
    pub auth_timeout: Duration,
    /// Sustained frames per second from one connection. Default 50.
    pub frames_per_second: u32,
    /// Frames a connection may send at once before the rate applies. Default 200.
    pub frame_burst: u32,
    /// Sustained bytes per second from one connection. Default 1 MiB.
    pub bytes_per_second: u32,
    /// Bytes a connection may send at once before the byte rate applies. Default 4 MiB.
    pub byte_burst: u32,
    /// Frames queued for one reader before further frames to it are dropped. Default 256.
    pub outbox_frames: usize,
    /// How long one write to a socket may take before the reader is dropped. Default 10 s.
    pub write_timeout: Duration,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(10),
            frames_per_second: 50,
            frame_burst: 200,
            bytes_per_second: 1 << 20,
            byte_burst: 4 << 20,
            outbox_frames: 256,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The broker; share it as `Arc<EmbeddedBroker>` between the router and the hub's
/// revocation hooks.
#[derive(Debug)]
pub struct EmbeddedBroker {
    token_key: BrokerTokenKey,
    limits: BrokerLimits,
    registry: Mutex<Registry>,
    next_connection_id: AtomicU64,
    dropped_frames: AtomicU64,
}

impl EmbeddedBroker {
    /// A broker accepting tokens MACed with `token_key`.
    pub fn new(token_key: BrokerTokenKey, limits: BrokerLimits) -> Arc<Self> {
        Arc::new(Self {
            token_key,
            limits,
            registry: Mutex::new(Registry::default()),
            next_connection_id: AtomicU64::new(1),
            dropped_frames: AtomicU64::new(0),
        })
    }

    /// Routes `GET /pubsub/ws`; merge it into the hub's router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/pubsub/ws", get(accept))
            .with_state(Arc::clone(self))
    }

    /// Applies a reduction of what one node record may do on `channel` (SPEC §5.5): a
    /// connection whose bands are not all within `allowed` stops receiving at once and is
    /// closed with `revoked{reason}`: `roles_removed` when nothing is left, else
    /// `roles_changed`, so the node fetches a fresh credential that matches its new
    /// effective roles. Connections already within `allowed` are untouched; rights are
    /// never widened here (a wider capability needs a new token). Returns the number of
    /// connections of that node record on the channel.
    pub fn update_capability(
        &self,
        channel: &ChannelName,
        node_id: &NodeId,
        owner: &Email,
        allowed: Capability,
    ) -> usize {
        let n_connections = self.registry().narrow(
            channel,
            node_id,
            owner,
            &allowed,
            REVOKED_ROLES_REMOVED,
            REVOKED_ROLES_CHANGED,
        );
        tracing::info!(
            node = %node_id.short(),
            %channel,
            publish = ?allowed.publish,
            subscribe = ?allowed.subscribe,
            n_connections,
            "narrowed broker rights"
        );
        n_connections
    }

    /// Sends `revoked{reason}` to every connection of `channel` and closes them, e.g.
    /// when the channel is deleted. Returns how many were closed.
    pub fn close_channel(&self, channel: &ChannelName, reason: &str) -> usize {
        let n_connections = self.registry().revoke_channel(Some(channel), reason);
        tracing::info!(%channel, reason, n_connections, "closed channel on broker");
        n_connections
    }

    /// Sends `revoked{reason}` to every connection and closes them, for shutdown
    /// (reason `going_away`, SPEC §20).
    pub fn close_all(&self, reason: &str) -> usize {
        let n_connections = self.registry().revoke_channel(None, reason);
        tracing::info!(reason, n_connections, "closed all broker connections");
        n_connections
    }

    /// Authenticated connections right now.
    pub fn connection_count(&self) -> usize {
        self.registry().len()
    }

    /// Connections subscribed to `<channel>/<band>` right now.
    pub fn subscriber_count(&self, channel: &ChannelName, band: Band) -> usize {
        self.registry().subscriber_count(channel, band)
    }

    /// Frames not delivered because a reader's queue was full, since start.
    pub fn dropped_frame_count(&self) -> u64 {
        self.dropped_frames.load(Ordering::Relaxed)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain maps behind, still consistent
        // enough to keep serving, so a poisoned lock is not fatal.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn accept(State(broker): State<Arc<EmbeddedBroker>>, upgrade: WebSocketUpgrade) -> Response {
    // Let frames somewhat over the limit through so the broker can answer
    // `frame_too_large` instead of the socket failing with a protocol error.
    let transport_limit = 4 * MAX_BROKER_MESSAGE_BYTES;
    upgrade
        .max_message_size(transport_limit)
        .max_frame_size(transport_limit)
        .on_upgrade(move |socket| connection::serve(broker, socket))
}

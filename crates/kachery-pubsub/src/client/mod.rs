//! The node side of pub-sub: one connection per channel (SPEC §6.2, §6.3).
//!
//! [`PubsubConnection::open`] picks a driver by the credential's backend: a WebSocket to
//! the embedded broker ([`PubsubConnection::connect`] sends `auth` and waits for `ready`)
//! or a NATS client (`crate::nats`). A background task then owns the connection. The connection handle subscribes, renews with
//! [`PubsubConnection::reauth`] and yields [`Incoming`] events; any number of cloned
//! [`Publisher`]s queue envelopes, which the task batches per band (150 ms or 32,000
//! bytes, whichever comes first). Dropping the handle flushes what is queued and closes
//! the socket. The task never panics on a vanished broker: it reports
//! [`Incoming::Closed`] and stops, and the link code reconnects.
//!
//! Every method is cancel-safe: a cancelled call has either queued its command or not.

pub(crate) mod batch;
pub(crate) mod driver;
mod handle;

pub use handle::{Publisher, PubsubConnection};

use std::time::Duration;

use kachery_protocol::Band;
use kachery_protocol::node_api::PubsubCredential;
use kachery_protocol::pubsub::PubsubEnvelope;

use crate::nats::NatsUserKey;

/// Knobs for a client connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long envelopes wait for company before their batch is sent. Default 150 ms;
    /// tests and latency benchmarks may shrink it.
    pub flush_delay: Duration,
    /// How long connecting plus `auth`, or a `reauth`, may take. Default 10 s.
    pub handshake_timeout: Duration,
    /// Events buffered for a reader that falls behind; further messages are dropped and
    /// counted. Default 1024.
    pub incoming_capacity: usize,
    /// Commands (publishes, subscribes) buffered before callers wait. Default 256.
    pub command_capacity: usize,
    /// The link's user nkey, required for NATS credentials (its public half went to the
    /// hub as `natsUserKey`). Default none.
    pub nats_user_key: Option<NatsUserKey>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            flush_delay: Duration::from_millis(150),
            handshake_timeout: Duration::from_secs(10),
            incoming_capacity: 1024,
            command_capacity: 256,
            nats_user_key: None,
        }
    }
}

/// The broker accepted a token; these bands are allowed until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Unix ms.
    pub expires_at: i64,
    pub publish: Vec<Band>,
    pub subscribe: Vec<Band>,
}

/// Something the broker sent, in arrival order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// One envelope from another node; not yet checked (run `check_received`).
    Message {
        band: Band,
        envelope: PubsubEnvelope,
    },
    /// The broker refused one of our frames; the connection stays open. `code` is one of
    /// [`crate::error_code::BrokerErrorCode`].
    Refused { code: String, message: String },
    /// The broker withdrew the session (`expired`, `roles_removed`, ...); `Closed` follows.
    Revoked { reason: String },
    /// The connection ended; the last event. `error` is `None` when the broker closed it
    /// in an orderly way.
    Closed { error: Option<DisconnectError> },
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("failed to open a websocket to the broker")]
    Transport(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("broker refused the token ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("broker revoked the session before it was ready: {reason}")]
    Revoked { reason: String },
    #[error("broker closed the connection before it was ready")]
    ClosedBeforeReady,
    #[error("broker sent something other than ready or err in reply to auth")]
    UnexpectedFrame,
    #[error("a NATS credential needs the link's user nkey (ClientOptions::nats_user_key)")]
    MissingNatsUserKey,
    #[error("the credential cannot be used: {0}")]
    BadCredential(String),
    #[error("this build has no client for the {0} backend")]
    UnsupportedBackend(&'static str),
}

/// Why a `reauth` did not renew the session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReauthError {
    #[error("broker refused the new token ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("broker did not answer reauth within {0:?}")]
    Timeout(Duration),
    #[error("the pub-sub connection is closed")]
    Closed,
    #[error("another reauth is still waiting for its answer")]
    AlreadyPending,
    #[error("the new credential is for another broker backend than the open connection")]
    WrongBackend,
}

/// Why an envelope was not queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("envelope is {len} bytes; pub-sub envelopes are at most {max} bytes")]
    EnvelopeTooLarge { len: usize, max: usize },
    #[error("the pub-sub connection is closed")]
    Closed,
}

/// A command for a connection that has already ended.
#[derive(Debug, thiserror::Error)]
#[error("the pub-sub connection is closed")]
pub struct ConnectionClosed;

/// Why an open connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectError {
    #[error("websocket to the broker failed")]
    Transport(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("broker ended the stream without a close frame")]
    Vanished,
    #[error("NATS connection ended: {0}")]
    Nats(String),
}

/// The node-side seam over broker backends (SPEC §6.2): what a channel link needs from an
/// open connection, whatever the broker. Exchanges see only bands and envelopes.
/// [`PubsubConnection`] implements it for the embedded broker and NATS, picking the
/// driver by credential backend.
pub trait PubsubClient: Send {
    /// Starts receiving a band the credential allows.
    fn subscribe(&self, band: Band) -> impl Future<Output = Result<(), ConnectionClosed>> + Send;

    /// Renews the session with a fresh credential from getPubsubCredential.
    fn renew(
        &self,
        credential: &PubsubCredential,
    ) -> impl Future<Output = Result<Ready, ReauthError>> + Send;

    /// A cloneable handle for publishing envelopes.
    fn publisher(&self) -> Publisher;

    /// Messages, refusals, revocations and finally the close.
    fn incoming(&mut self) -> &mut tokio::sync::mpsc::Receiver<Incoming>;
}

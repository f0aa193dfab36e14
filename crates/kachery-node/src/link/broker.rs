//! The link's view of a broker connection: open with a credential, subscribe, renew, and
//! read events, over `kachery_pubsub`'s client (embedded WebSocket or NATS alike). Refusals of single frames (a denied
//! subscribe, a rate-limited publish) are logged here and do not end the session; a
//! revocation or a closed socket does.

use kachery_protocol::Band;
use kachery_protocol::node_api::PubsubCredentialResponse;
use kachery_protocol::pubsub::PubsubEnvelope;
use kachery_pubsub::{
    ClientOptions, ConnectError, Incoming, PubsubClient as _, PubsubConnection, ReauthError,
};

pub(crate) use kachery_pubsub::Publisher as BrokerPublisher;
use kachery_pubsub::nats::NatsUserKey;

/// Why a broker step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Reauth(#[from] ReauthError),
    #[error(transparent)]
    Publish(#[from] kachery_pubsub::PublishError),
    #[error("the broker connection closed")]
    Closed(#[source] Option<kachery_pubsub::client::DisconnectError>),
}

impl BrokerError {
    /// Whether the broker refused the credential itself, so the hub's view may have
    /// changed and a reconcile is worth running.
    pub(crate) fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            BrokerError::Connect(ConnectError::Refused { .. })
                | BrokerError::Reauth(ReauthError::Refused { .. })
        )
    }
}

/// What a session reacts to.
pub(crate) enum BrokerEvent {
    Message {
        band: Band,
        envelope: PubsubEnvelope,
    },
    Revoked {
        reason: String,
    },
    Closed {
        error: BrokerError,
    },
}

pub(crate) struct BrokerConnection {
    connection: PubsubConnection,
}

impl BrokerConnection {
    /// Connects with the credential's backend URL and token and waits for `ready`.
    pub(crate) async fn open(
        credential: &PubsubCredentialResponse,
        nats_user_key: Option<NatsUserKey>,
    ) -> Result<Self, BrokerError> {
        let options = ClientOptions {
            nats_user_key,
            ..ClientOptions::default()
        };
        let (connection, _ready) = PubsubConnection::open(&credential.credential, options).await?;
        Ok(Self { connection })
    }

    pub(crate) async fn subscribe(&self, band: Band) -> Result<(), BrokerError> {
        self.connection
            .subscribe(band)
            .await
            .map_err(|_closed| BrokerError::Closed(None))
    }

    /// Renews the session on the open socket.
    pub(crate) async fn reauth(
        &self,
        credential: &PubsubCredentialResponse,
    ) -> Result<(), BrokerError> {
        self.connection.renew(&credential.credential).await?;
        Ok(())
    }

    pub(crate) fn publisher(&self) -> BrokerPublisher {
        self.connection.publisher()
    }

    /// The next event that matters to the session. Cancel-safe.
    pub(crate) async fn next_event(&mut self) -> BrokerEvent {
        loop {
            let Some(incoming) = self.connection.incoming().recv().await else {
                return BrokerEvent::Closed {
                    error: BrokerError::Closed(None),
                };
            };
            match incoming {
                Incoming::Message { band, envelope } => {
                    return BrokerEvent::Message { band, envelope };
                }
                Incoming::Revoked { reason } => return BrokerEvent::Revoked { reason },
                Incoming::Closed { error } => {
                    return BrokerEvent::Closed {
                        error: BrokerError::Closed(error),
                    };
                }
                Incoming::Refused { code, message } => {
                    tracing::debug!(%code, %message, "broker refused a frame");
                }
                other => tracing::debug!(event = ?other, "ignoring an unknown broker event"),
            }
        }
    }
}

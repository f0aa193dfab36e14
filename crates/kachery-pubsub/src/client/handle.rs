//! The handles a node holds: [`PubsubConnection`] for one channel's socket and the
//! cloneable [`Publisher`]. Both only pass commands to the task in [`super::driver`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use kachery_protocol::Band;
use kachery_protocol::limits::MAX_PUBSUB_ENVELOPE_BYTES;
use kachery_protocol::node_api::PubsubCredential;
use kachery_protocol::pubsub::{BrokerClientFrame, BrokerServerFrame, PubsubEnvelope};

use super::driver::{Command, Driver, Socket};
use super::{
    ClientOptions, ConnectError, ConnectionClosed, Incoming, PublishError, PubsubClient, Ready,
    ReauthError,
};
use crate::nats::driver::{NatsDriver, NatsDriverParts};

/// One authenticated connection to a channel's broker (embedded WebSocket or NATS).
/// Dropping it flushes queued envelopes and closes the connection.
#[derive(Debug)]
pub struct PubsubConnection {
    commands: mpsc::Sender<Command>,
    incoming: mpsc::Receiver<Incoming>,
    handshake_timeout: Duration,
    dropped_incoming: Arc<AtomicU64>,
    /// Dropped with the handle, which tells the task to stop.
    _shutdown: oneshot::Sender<()>,
}

impl PubsubConnection {
    /// Connects to `url` and authenticates with `token`, with default options.
    pub async fn connect(url: &str, token: &str) -> Result<(Self, Ready), ConnectError> {
        Self::connect_with_options(url, token, ClientOptions::default()).await
    }

    /// Connects with the credential from getPubsubCredential.
    pub async fn open(
        credential: &PubsubCredential,
        options: ClientOptions,
    ) -> Result<(Self, Ready), ConnectError> {
        match credential {
            PubsubCredential::Embedded { url, token } => {
                Self::connect_with_options(url, token, options).await
            }
            PubsubCredential::Nats { servers, jwt } => {
                Self::connect_nats(servers, jwt, options).await
            }
            // FIXME: no Ably client on nodes yet (token exchange + realtime socket); matters
            // once an Ably channel must carry kachery traffic rather than legacy clients'.
            PubsubCredential::Ably { .. } => Err(ConnectError::UnsupportedBackend("ably")),
        }
    }

    /// Connects to a NATS server with a user JWT, answering its challenge with
    /// `options.nats_user_key`.
    async fn connect_nats(
        servers: &[String],
        jwt: &str,
        options: ClientOptions,
    ) -> Result<(Self, Ready), ConnectError> {
        let user_key = options
            .nats_user_key
            .clone()
            .ok_or(ConnectError::MissingNatsUserKey)?;
        let (commands_tx, commands_rx) = mpsc::channel(options.command_capacity.max(1));
        let (incoming_tx, incoming_rx) = mpsc::channel(options.incoming_capacity.max(1));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let dropped_incoming = Arc::new(AtomicU64::new(0));
        let parts = NatsDriverParts {
            commands: commands_rx,
            incoming: incoming_tx,
            shutdown: shutdown_rx,
            flush_delay: options.flush_delay,
            handshake_timeout: options.handshake_timeout,
            dropped_incoming: Arc::clone(&dropped_incoming),
        };
        let (driver, ready) = NatsDriver::connect(servers, jwt, user_key, parts).await?;
        tracing::debug!(
            expires_at = ready.expires_at,
            "NATS pub-sub connection ready"
        );
        tokio::spawn(driver.run().instrument(tracing::info_span!("pubsub_nats")));

        let connection = Self {
            commands: commands_tx,
            incoming: incoming_rx,
            handshake_timeout: options.handshake_timeout,
            dropped_incoming,
            _shutdown: shutdown_tx,
        };
        Ok((connection, ready))
    }

    /// Connects to `url`, sends `auth{token}` and waits for `ready`, all within
    /// `options.handshake_timeout`.
    pub async fn connect_with_options(
        url: &str,
        token: &str,
        options: ClientOptions,
    ) -> Result<(Self, Ready), ConnectError> {
        let handshake = async {
            let (mut socket, _response) = tokio_tungstenite::connect_async(url)
                .await
                .map_err(ConnectError::Transport)?;
            let auth = BrokerClientFrame::Auth {
                token: token.to_owned(),
            };
            let auth_text = serde_json::to_string(&auth).expect("client frames serialize to JSON");
            socket
                .send(Message::text(auth_text))
                .await
                .map_err(ConnectError::Transport)?;
            let ready = await_ready(&mut socket).await?;
            Ok::<_, ConnectError>((socket, ready))
        };
        let (socket, ready) = tokio::time::timeout(options.handshake_timeout, handshake)
            .await
            .map_err(|_| ConnectError::Timeout(options.handshake_timeout))??;
        tracing::debug!(
            url,
            expires_at = ready.expires_at,
            "pub-sub connection ready"
        );

        let (commands_tx, commands_rx) = mpsc::channel(options.command_capacity.max(1));
        let (incoming_tx, incoming_rx) = mpsc::channel(options.incoming_capacity.max(1));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let dropped_incoming = Arc::new(AtomicU64::new(0));
        let driver = Driver::new(
            socket,
            commands_rx,
            incoming_tx,
            shutdown_rx,
            options.flush_delay,
            Arc::clone(&dropped_incoming),
        );
        tokio::spawn(
            driver
                .run()
                .instrument(tracing::info_span!("pubsub_client", url)),
        );

        let connection = Self {
            commands: commands_tx,
            incoming: incoming_rx,
            handshake_timeout: options.handshake_timeout,
            dropped_incoming,
            _shutdown: shutdown_tx,
        };
        Ok((connection, ready))
    }

    /// Asks the broker for a band's messages. A refusal arrives later as
    /// [`Incoming::Refused`] with code `subscribe_denied`.
    pub async fn subscribe(&self, band: Band) -> Result<(), ConnectionClosed> {
        self.commands
            .send(Command::Subscribe { band })
            .await
            .map_err(|_| ConnectionClosed)
    }

    /// Renews the session on the open socket with a fresh token for the same node and
    /// channel; returns the new allow lists and expiry.
    pub async fn reauth(&self, token: &str) -> Result<Ready, ReauthError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let command = Command::Reauth {
            token: token.to_owned(),
            reply: reply_tx,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| ReauthError::Closed)?;
        match tokio::time::timeout(self.handshake_timeout, reply_rx).await {
            Err(_elapsed) => Err(ReauthError::Timeout(self.handshake_timeout)),
            Ok(Err(_dropped)) => Err(ReauthError::Closed),
            Ok(Ok(outcome)) => outcome,
        }
    }

    /// A cloneable handle for publishing on this connection.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            commands: self.commands.clone(),
        }
    }

    /// Events from the broker; ends after [`Incoming::Closed`].
    pub fn incoming(&mut self) -> &mut mpsc::Receiver<Incoming> {
        &mut self.incoming
    }

    /// Messages dropped because [`Self::incoming`] was not read fast enough.
    pub fn dropped_incoming_count(&self) -> u64 {
        self.dropped_incoming.load(Ordering::Relaxed)
    }
}

/// Queues envelopes on a connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    commands: mpsc::Sender<Command>,
}

impl Publisher {
    /// Queues `envelope` for `band`; it is sent with its batch (SPEC §6.3). Waits only
    /// when the command queue is full.
    pub async fn publish(&self, band: Band, envelope: PubsubEnvelope) -> Result<(), PublishError> {
        let encoded_len = serde_json::to_vec(&envelope).map_or(usize::MAX, |bytes| bytes.len());
        if encoded_len > MAX_PUBSUB_ENVELOPE_BYTES {
            return Err(PublishError::EnvelopeTooLarge {
                len: encoded_len,
                max: MAX_PUBSUB_ENVELOPE_BYTES,
            });
        }
        let command = Command::Publish {
            band,
            envelope,
            encoded_len,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| PublishError::Closed)
    }

    /// Sends every queued batch now and waits until they are written to the socket.
    pub async fn flush(&self) -> Result<(), PublishError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.commands
            .send(Command::Flush { reply: reply_tx })
            .await
            .map_err(|_| PublishError::Closed)?;
        reply_rx.await.map_err(|_| PublishError::Closed)
    }
}

/// Reads the broker's answer to `auth`.
async fn await_ready(socket: &mut Socket) -> Result<Ready, ConnectError> {
    loop {
        let message = match socket.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(ConnectError::ClosedBeforeReady),
            Some(Err(error)) => return Err(ConnectError::Transport(error)),
            Some(Ok(message)) => message,
        };
        let Message::Text(text) = message else {
            continue;
        };
        return match serde_json::from_str::<BrokerServerFrame>(&text) {
            Ok(BrokerServerFrame::Ready {
                expires_at,
                publish,
                subscribe,
            }) => Ok(Ready {
                expires_at,
                publish,
                subscribe,
            }),
            Ok(BrokerServerFrame::Err { code, message }) => {
                Err(ConnectError::Refused { code, message })
            }
            Ok(BrokerServerFrame::Revoked { reason }) => Err(ConnectError::Revoked { reason }),
            Ok(BrokerServerFrame::Msg { .. }) | Err(_) => Err(ConnectError::UnexpectedFrame),
        };
    }
}

impl PubsubClient for PubsubConnection {
    async fn subscribe(&self, band: Band) -> Result<(), ConnectionClosed> {
        PubsubConnection::subscribe(self, band).await
    }

    async fn renew(&self, credential: &PubsubCredential) -> Result<Ready, ReauthError> {
        match credential {
            PubsubCredential::Embedded { token, .. } => self.reauth(token).await,
            PubsubCredential::Nats { servers, jwt } => {
                let (reply_tx, reply_rx) = oneshot::channel();
                let command = Command::RenewNats {
                    servers: servers.clone(),
                    jwt: jwt.clone(),
                    reply: reply_tx,
                };
                self.commands
                    .send(command)
                    .await
                    .map_err(|_| ReauthError::Closed)?;
                // Connecting and subscribing anew: two handshakes at most.
                let limit = self.handshake_timeout * 2;
                match tokio::time::timeout(limit, reply_rx).await {
                    Err(_elapsed) => Err(ReauthError::Timeout(limit)),
                    Ok(Err(_dropped)) => Err(ReauthError::Closed),
                    Ok(Ok(outcome)) => outcome,
                }
            }
            PubsubCredential::Ably { .. } => Err(ReauthError::WrongBackend),
        }
    }

    fn publisher(&self) -> Publisher {
        PubsubConnection::publisher(self)
    }

    fn incoming(&mut self) -> &mut mpsc::Receiver<Incoming> {
        PubsubConnection::incoming(self)
    }
}

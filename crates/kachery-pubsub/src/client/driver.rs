//! The task that owns a client socket: it writes commands and due batches, reads broker
//! frames into [`Incoming`] events, and reports the end of the connection exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use kachery_protocol::Band;
use kachery_protocol::pubsub::{BrokerBatch, BrokerClientFrame, BrokerServerFrame, PubsubEnvelope};

use super::batch::PendingBatches;
use super::{DisconnectError, Incoming, Ready, ReauthError};
use crate::error_code::BrokerErrorCode;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the final close handshake may take once the connection is over.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handles ask of the task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        band: Band,
        envelope: PubsubEnvelope,
        encoded_len: usize,
    },
    Subscribe {
        band: Band,
    },
    Reauth {
        token: String,
        reply: oneshot::Sender<Result<Ready, ReauthError>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    /// Move a NATS connection to a fresh user JWT.
    RenewNats {
        servers: Vec<String>,
        jwt: String,
        reply: oneshot::Sender<Result<Ready, ReauthError>>,
    },
}

/// How the task's loop ended.
enum End {
    /// The connection handle was dropped; nobody listens any more.
    HandleDropped,
    /// The broker or the network ended the connection.
    Closed(Option<DisconnectError>),
}

pub(crate) struct Driver {
    socket: Socket,
    commands: mpsc::Receiver<Command>,
    incoming: mpsc::Sender<Incoming>,
    shutdown: oneshot::Receiver<()>,
    batches: PendingBatches,
    pending_reauth: Option<oneshot::Sender<Result<Ready, ReauthError>>>,
    dropped_incoming: Arc<AtomicU64>,
}

impl Driver {
    pub(crate) fn new(
        socket: Socket,
        commands: mpsc::Receiver<Command>,
        incoming: mpsc::Sender<Incoming>,
        shutdown: oneshot::Receiver<()>,
        flush_delay: Duration,
        dropped_incoming: Arc<AtomicU64>,
    ) -> Self {
        Self {
            socket,
            commands,
            incoming,
            shutdown,
            batches: PendingBatches::new(flush_delay),
            pending_reauth: None,
            dropped_incoming,
        }
    }

    pub(crate) async fn run(mut self) {
        let end = self.serve().await;

        match end {
            End::HandleDropped => {
                // Best effort: what publishers queued still goes out before the close,
                // including commands the loop had not read yet.
                self.commands.close();
                while let Ok(command) = self.commands.try_recv() {
                    if self.apply(command).await.is_err() {
                        break;
                    }
                }
                for (band, batch) in self.batches.take_all() {
                    if self.send_batch(band, batch).await.is_err() {
                        break;
                    }
                }
                tracing::debug!("pub-sub connection closed by its owner");
            }
            End::Closed(error) => {
                if let Some(reply) = self.pending_reauth.take() {
                    let _ = reply.send(Err(ReauthError::Closed));
                }
                match &error {
                    Some(error) => tracing::info!(%error, "pub-sub connection lost"),
                    None => tracing::info!("pub-sub connection closed by the broker"),
                }
                // Waits for the reader; ends at once if the handle is gone.
                let _ = self.incoming.send(Incoming::Closed { error }).await;
            }
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.close(None)).await;
    }

    async fn serve(&mut self) -> End {
        loop {
            let deadline = self.batches.next_deadline();
            let flush_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut self.shutdown => return End::HandleDropped,
                command = self.commands.recv() => {
                    let Some(command) = command else { return End::HandleDropped };
                    if let Err(error) = self.apply(command).await {
                        return End::Closed(Some(error));
                    }
                }
                () = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                    for (band, batch) in self.batches.take_due(Instant::now()) {
                        if let Err(error) = self.send_batch(band, batch).await {
                            return End::Closed(Some(error));
                        }
                    }
                }
                received = self.socket.next() => match received {
                    Some(Ok(Message::Text(text))) => self.on_frame(&text).await,
                    Some(Ok(Message::Close(_))) => return End::Closed(None),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return End::Closed(Some(DisconnectError::Transport(error))),
                    None => return End::Closed(Some(DisconnectError::Vanished)),
                },
            }
        }
    }

    async fn apply(&mut self, command: Command) -> Result<(), DisconnectError> {
        match command {
            Command::Publish {
                band,
                envelope,
                encoded_len,
            } => {
                let full = self
                    .batches
                    .push(band, envelope, encoded_len, Instant::now());
                if let Some(batch) = full {
                    self.send_batch(band, batch).await?;
                }
            }
            Command::Subscribe { band } => {
                self.send_frame(&BrokerClientFrame::Sub { band }).await?;
            }
            Command::Reauth { token, reply } => {
                let waiting = self
                    .pending_reauth
                    .as_ref()
                    .is_some_and(|other| !other.is_closed());
                if waiting {
                    let _ = reply.send(Err(ReauthError::AlreadyPending));
                    return Ok(());
                }
                self.pending_reauth = Some(reply);
                self.send_frame(&BrokerClientFrame::Reauth { token })
                    .await?;
            }
            Command::Flush { reply } => {
                for (band, batch) in self.batches.take_all() {
                    self.send_batch(band, batch).await?;
                }
                let _ = reply.send(());
            }
            Command::RenewNats { reply, .. } => {
                let _ = reply.send(Err(ReauthError::WrongBackend));
            }
        }
        Ok(())
    }

    async fn on_frame(&mut self, text: &str) {
        let frame = match serde_json::from_str::<BrokerServerFrame>(text) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, "ignored a broker frame of unknown shape");
                return;
            }
        };

        match frame {
            BrokerServerFrame::Msg { band, batch } => {
                for envelope in batch.messages {
                    self.offer(Incoming::Message { band, envelope });
                }
            }
            BrokerServerFrame::Ready {
                expires_at,
                publish,
                subscribe,
            } => {
                let ready = Ready {
                    expires_at,
                    publish,
                    subscribe,
                };
                match self.pending_reauth.take() {
                    Some(reply) => {
                        let _ = reply.send(Ok(ready));
                    }
                    None => tracing::debug!("ignored a ready frame nobody asked for"),
                }
            }
            BrokerServerFrame::Err { code, message } => {
                tracing::debug!(%code, %message, "broker refused a frame");
                let ends_session =
                    BrokerErrorCode::parse(&code).is_some_and(BrokerErrorCode::closes_connection);
                if let Some(reply) = self.pending_reauth.take_if(|_| ends_session) {
                    let refused = ReauthError::Refused {
                        code: code.clone(),
                        message: message.clone(),
                    };
                    let _ = reply.send(Err(refused));
                }
                self.offer(Incoming::Refused { code, message });
            }
            BrokerServerFrame::Revoked { reason } => {
                tracing::info!(%reason, "broker revoked the session");
                // Rare and important: wait for room rather than drop it.
                let _ = self.incoming.send(Incoming::Revoked { reason }).await;
            }
        }
    }

    /// Hands an event to the reader, or drops and counts it when the reader lags.
    fn offer(&self, event: Incoming) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.incoming.try_send(event) {
            let n_dropped = self.dropped_incoming.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                n_dropped,
                "pub-sub reader is behind; dropped an incoming event"
            );
        }
    }

    async fn send_batch(&mut self, band: Band, batch: BrokerBatch) -> Result<(), DisconnectError> {
        tracing::trace!(%band, n_envelopes = batch.messages.len(), "sending batch");
        self.send_frame(&BrokerClientFrame::Pub { band, batch })
            .await
    }

    async fn send_frame(&mut self, frame: &BrokerClientFrame) -> Result<(), DisconnectError> {
        let text = serde_json::to_string(frame).expect("client frames serialize to JSON");
        self.socket
            .send(Message::text(text))
            .await
            .map_err(DisconnectError::Transport)
    }
}

//! The task that owns a node's NATS connection: the same commands, batching and
//! [`Incoming`] events as the WebSocket driver, over `async-nats`.
//!
//! Renewal never leaves a gap: the new connection (new JWT, same user nkey) subscribes
//! to every band and round-trips a flush before it replaces the old one, and the old one
//! is drained (its subscriptions end only after what the server already sent them), so
//! each message reaches at least one of the two. Messages that reach both are dropped by
//! the receivers' nonce memory.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use futures_util::stream::{SelectAll, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use kachery_protocol::limits::MAX_BROKER_MESSAGE_BYTES;
use kachery_protocol::pubsub::BrokerBatch;
use kachery_protocol::{Band, ChannelName};

use super::{NatsUserKey, band_of_subject, subject};
use crate::client::batch::PendingBatches;
use crate::client::driver::Command;
use crate::client::{ConnectError, DisconnectError, Incoming, Ready, ReauthError};

type BandMessages = Pin<Box<dyn Stream<Item = (Band, async_nats::Message)> + Send>>;

/// What a user JWT grants, read from its claims (the server enforces them; the node only
/// needs to know the channel, the bands and the expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub channel: ChannelName,
    pub ready: Ready,
}

/// Reads the channel, bands and expiry out of a user JWT's claims. No signature check:
/// the JWT came from the hub over an authenticated call, and the server checks it.
pub(crate) fn read_grant(jwt: &str) -> Result<Grant, String> {
    let claims_part = jwt.split('.').nth(1).ok_or("not a JWT")?;
    let claims_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims_part)
        .map_err(|_| "JWT claims are not base64url")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&claims_bytes).map_err(|_| "JWT claims are not JSON")?;
    let expires_at = claims["exp"].as_i64().ok_or("JWT has no exp")? * 1000;

    let allowed = |kind: &str| -> Vec<String> {
        claims["nats"][kind]["allow"]
            .as_array()
            .map(|subjects| {
                subjects
                    .iter()
                    .filter_map(|subject| subject.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (publish_subjects, subscribe_subjects) = (allowed("pub"), allowed("sub"));

    // Every subject is `kachery.<channel>.<band>`; the band is the last segment.
    let first = publish_subjects
        .iter()
        .chain(&subscribe_subjects)
        .next()
        .ok_or("JWT allows no subjects")?;
    let channel_text = first
        .strip_prefix("kachery.")
        .and_then(|rest| rest.rsplit_once('.'))
        .map(|(channel, _band)| channel)
        .ok_or("JWT subject is not a kachery band")?;
    let channel = ChannelName::parse(channel_text).map_err(|_| "JWT names no valid channel")?;
    let bands = |subjects: &[String]| -> Result<Vec<Band>, String> {
        subjects
            .iter()
            .map(|subject| {
                band_of_subject(&channel, subject)
                    .ok_or_else(|| format!("JWT subject {subject:?} is not a band of {channel}"))
            })
            .collect()
    };
    let ready = Ready {
        expires_at,
        publish: bands(&publish_subjects)?,
        subscribe: bands(&subscribe_subjects)?,
    };
    Ok(Grant { channel, ready })
}

/// One authenticated NATS client and the events it reports.
struct NatsLink {
    client: async_nats::Client,
    events: mpsc::UnboundedReceiver<async_nats::Event>,
}

/// Connects with `jwt`, answering the server's challenge with `user_key`.
async fn connect(
    servers: &[String],
    jwt: &str,
    user_key: &NatsUserKey,
    timeout: Duration,
) -> Result<NatsLink, async_nats::ConnectError> {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let signer = user_key.clone();
    let options = async_nats::ConnectOptions::with_jwt(jwt.to_owned(), move |nonce| {
        let signer = signer.clone();
        async move { signer.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .event_callback(move |event| {
        let events_tx = events_tx.clone();
        async move {
            let _ = events_tx.send(event);
        }
    })
    .connection_timeout(timeout)
    // A lost connection ends the session; the link fetches a fresh credential rather
    // than retrying one that may have expired.
    .max_reconnects(1);
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .filter_map(|server| server.parse().ok())
        .collect();
    let client = options.connect(addrs.as_slice()).await?;
    Ok(NatsLink {
        client,
        events: events_rx,
    })
}

enum End {
    HandleDropped,
    Closed(Option<DisconnectError>),
}

pub(crate) struct NatsDriver {
    channel: ChannelName,
    user_key: NatsUserKey,
    handshake_timeout: Duration,
    link: NatsLink,
    subscribed: Vec<Band>,
    messages: SelectAll<BandMessages>,
    commands: mpsc::Receiver<Command>,
    incoming: mpsc::Sender<Incoming>,
    shutdown: oneshot::Receiver<()>,
    batches: PendingBatches,
    dropped_incoming: Arc<AtomicU64>,
}

/// The pieces a connected driver needs from the handle.
pub(crate) struct NatsDriverParts {
    pub commands: mpsc::Receiver<Command>,
    pub incoming: mpsc::Sender<Incoming>,
    pub shutdown: oneshot::Receiver<()>,
    pub flush_delay: Duration,
    pub handshake_timeout: Duration,
    pub dropped_incoming: Arc<AtomicU64>,
}

impl NatsDriver {
    /// Connects and returns the driver with what the JWT grants.
    pub(crate) async fn connect(
        servers: &[String],
        jwt: &str,
        user_key: NatsUserKey,
        parts: NatsDriverParts,
    ) -> Result<(Self, Ready), ConnectError> {
        let grant = read_grant(jwt).map_err(ConnectError::BadCredential)?;
        let link = tokio::time::timeout(
            parts.handshake_timeout,
            connect(servers, jwt, &user_key, parts.handshake_timeout),
        )
        .await
        .map_err(|_| ConnectError::Timeout(parts.handshake_timeout))?
        .map_err(|error| ConnectError::Refused {
            code: format!("{:?}", error.kind()),
            message: error.to_string(),
        })?;

        let driver = Self {
            channel: grant.channel,
            user_key,
            handshake_timeout: parts.handshake_timeout,
            link,
            subscribed: Vec::new(),
            messages: SelectAll::new(),
            commands: parts.commands,
            incoming: parts.incoming,
            shutdown: parts.shutdown,
            batches: PendingBatches::new(parts.flush_delay),
            dropped_incoming: parts.dropped_incoming,
        };
        Ok((driver, grant.ready))
    }

    pub(crate) async fn run(mut self) {
        let end = self.serve().await;
        match end {
            End::HandleDropped => {
                self.commands.close();
                while let Ok(command) = self.commands.try_recv() {
                    if self.apply(command).await.is_err() {
                        break;
                    }
                }
                let _ = self.send_all().await;
                let _ = self.link.client.flush().await;
                tracing::debug!("NATS connection closed by its owner");
            }
            End::Closed(error) => {
                match &error {
                    Some(error) => tracing::info!(%error, "NATS connection lost"),
                    None => tracing::info!("NATS connection closed"),
                }
                let _ = self.incoming.send(Incoming::Closed { error }).await;
            }
        }
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
                Some((band, message)) = self.messages.next(), if !self.messages.is_empty() => {
                    self.on_message(band, &message.payload);
                }
                event = self.link.events.recv() => match event {
                    None => return End::Closed(None),
                    Some(event) => {
                        if let Some(end) = self.on_event(event) {
                            return end;
                        }
                    }
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
                let stream = subscribe(&self.link.client, &self.channel, band)
                    .await
                    .map_err(|error| DisconnectError::Nats(error.to_string()))?;
                self.messages.push(stream);
                self.subscribed.push(band);
            }
            Command::Flush { reply } => {
                self.send_all().await?;
                self.link
                    .client
                    .flush()
                    .await
                    .map_err(|error| DisconnectError::Nats(error.to_string()))?;
                let _ = reply.send(());
            }
            Command::Reauth { reply, .. } => {
                let _ = reply.send(Err(ReauthError::WrongBackend));
            }
            Command::RenewNats {
                servers,
                jwt,
                reply,
            } => {
                let outcome = self.renew(&servers, &jwt).await;
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// Opens the successor connection, subscribes it, then drains the old one.
    async fn renew(&mut self, servers: &[String], jwt: &str) -> Result<Ready, ReauthError> {
        let grant = read_grant(jwt).map_err(|message| ReauthError::Refused {
            code: "bad_credential".to_owned(),
            message,
        })?;
        if grant.channel != self.channel {
            return Err(ReauthError::Refused {
                code: "bad_credential".to_owned(),
                message: format!("credential is for {}, not {}", grant.channel, self.channel),
            });
        }

        let link = tokio::time::timeout(
            self.handshake_timeout,
            connect(servers, jwt, &self.user_key, self.handshake_timeout),
        )
        .await
        .map_err(|_| ReauthError::Timeout(self.handshake_timeout))?
        .map_err(|error| ReauthError::Refused {
            code: format!("{:?}", error.kind()),
            message: error.to_string(),
        })?;
        let bands: Vec<Band> = self
            .subscribed
            .iter()
            .copied()
            .filter(|band| grant.ready.subscribe.contains(band))
            .collect();
        let mut streams = Vec::with_capacity(bands.len());
        for band in &bands {
            let stream = subscribe(&link.client, &self.channel, *band)
                .await
                .map_err(|_| ReauthError::Closed)?;
            streams.push(stream);
        }
        // The server has every new subscription once this round trip returns.
        link.client.flush().await.map_err(|_| ReauthError::Closed)?;

        let old = std::mem::replace(&mut self.link, link);
        self.messages.extend(streams);
        self.subscribed = bands;
        tokio::spawn(async move {
            // Unsubscribes and lets what the server already sent arrive; the old
            // streams then end by themselves.
            if let Err(error) = old.client.drain().await {
                tracing::debug!(%error, "draining the previous NATS connection failed");
            }
        });
        tracing::debug!(
            expires_at = grant.ready.expires_at,
            "NATS connection renewed"
        );
        Ok(grant.ready)
    }

    fn on_event(&mut self, event: async_nats::Event) -> Option<End> {
        match event {
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                Some(End::Closed(Some(DisconnectError::Nats(event.to_string()))))
            }
            async_nats::Event::ServerError(error) => {
                tracing::debug!(%error, "NATS server refused something");
                let (code, ends) = match &error {
                    async_nats::ServerError::AuthorizationViolation => ("expired", true),
                    async_nats::ServerError::Other(text)
                        if text.to_lowercase().contains("permissions violation") =>
                    {
                        ("permission_denied", false)
                    }
                    async_nats::ServerError::Other(text)
                        if text.to_lowercase().contains("expired") =>
                    {
                        ("expired", true)
                    }
                    _ => ("server_error", false),
                };
                self.offer(Incoming::Refused {
                    code: code.to_owned(),
                    message: error.to_string(),
                });
                ends.then(|| End::Closed(Some(DisconnectError::Nats(error.to_string()))))
            }
            other => {
                tracing::debug!(event = %other, "NATS client event");
                None
            }
        }
    }

    fn on_message(&self, band: Band, payload: &[u8]) {
        if payload.len() > MAX_BROKER_MESSAGE_BYTES {
            tracing::debug!(%band, len = payload.len(), "dropped an oversized NATS message");
            return;
        }
        match serde_json::from_slice::<BrokerBatch>(payload) {
            Ok(batch) => {
                for envelope in batch.messages {
                    self.offer(Incoming::Message { band, envelope });
                }
            }
            Err(error) => tracing::debug!(%band, %error, "dropped a NATS message of unknown shape"),
        }
    }

    fn offer(&self, event: Incoming) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.incoming.try_send(event) {
            let n_dropped = self.dropped_incoming.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                n_dropped,
                "pub-sub reader is behind; dropped an incoming event"
            );
        }
    }

    async fn send_all(&mut self) -> Result<(), DisconnectError> {
        for (band, batch) in self.batches.take_all() {
            self.send_batch(band, batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&mut self, band: Band, batch: BrokerBatch) -> Result<(), DisconnectError> {
        tracing::trace!(%band, n_envelopes = batch.messages.len(), "sending NATS batch");
        let payload = serde_json::to_vec(&batch).expect("batches serialize to JSON");
        self.link
            .client
            .publish(subject(&self.channel, band), payload.into())
            .await
            .map_err(|error| DisconnectError::Nats(error.to_string()))
    }
}

async fn subscribe(
    client: &async_nats::Client,
    channel: &ChannelName,
    band: Band,
) -> Result<BandMessages, async_nats::SubscribeError> {
    let subscriber = client.subscribe(subject(channel, band)).await?;
    Ok(Box::pin(subscriber.map(move |message| (band, message))))
}

//! The rules for an authenticated broker connection: what each client frame may do, the
//! rate limits, renewal with `reauth`, and delivery to other subscribers (SPEC §6.2, §21).
//!
//! The session loop waits on four things: a revocation from the hub, the token's expiry,
//! frames other connections queued for this one, and frames from its client. Publishing
//! only queues onto other connections' bounded outboxes, so a slow reader can stall
//! nobody but itself.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use tokio::sync::{mpsc, oneshot};

use kachery_protocol::Band;
use kachery_protocol::limits::{MAX_BROKER_MESSAGE_BYTES, MAX_PUBSUB_ENVELOPE_BYTES};
use kachery_protocol::pubsub::{BrokerBatch, BrokerClientFrame, BrokerServerFrame};

use super::EmbeddedBroker;
use super::connection::{
    SocketGone, expiry_instant, now_ms, token_refusal, write_frame, write_message,
};
use super::rate::TokenBucket;
use super::registry::ConnectionId;
use crate::error_code::{BrokerErrorCode, REVOKED_EXPIRED};
use crate::token::TokenClaims;

/// Why the session loop stopped.
pub(super) enum End {
    /// The client closed, the socket failed, or the client is too slow to write to.
    Gone,
    /// The hub revoked the connection or the token expired; send `revoked`.
    Revoked(String),
    /// The client broke an auth rule; send `err` and close.
    Refused(BrokerErrorCode, String),
}

pub(super) struct Session<'a> {
    broker: &'a EmbeddedBroker,
    id: ConnectionId,
    claims: TokenClaims,
    expiry: tokio::time::Instant,
    frame_bucket: TokenBucket,
    byte_bucket: TokenBucket,
    /// Whether `rate_limited` was already sent for the current run of dropped frames.
    reported_rate_limit: bool,
}

impl<'a> Session<'a> {
    pub(super) fn new(broker: &'a EmbeddedBroker, id: ConnectionId, claims: TokenClaims) -> Self {
        let now = Instant::now();
        let limits = &broker.limits;
        Self {
            broker,
            id,
            expiry: expiry_instant(claims.exp),
            claims,
            frame_bucket: TokenBucket::new(limits.frames_per_second, limits.frame_burst, now),
            byte_bucket: TokenBucket::new(limits.bytes_per_second, limits.byte_burst, now),
            reported_rate_limit: false,
        }
    }

    pub(super) async fn run(
        &mut self,
        socket: &mut WebSocket,
        mut outbox: mpsc::Receiver<Utf8Bytes>,
        mut revoke: oneshot::Receiver<String>,
    ) -> End {
        loop {
            tokio::select! {
                biased;
                reason = &mut revoke => {
                    return reason.map_or(End::Gone, End::Revoked);
                }
                () = tokio::time::sleep_until(self.expiry) => {
                    return End::Revoked(REVOKED_EXPIRED.to_owned());
                }
                queued = outbox.recv() => {
                    let Some(frame) = queued else {
                        // The registry dropped us; a revocation sent just before is the reason.
                        return revoke.try_recv().map_or(End::Gone, End::Revoked);
                    };
                    if self.write_text(socket, frame).await.is_err() {
                        return End::Gone;
                    }
                }
                received = socket.recv() => {
                    let handled = match received {
                        Some(Ok(Message::Text(text))) => self.handle(&text),
                        Some(Ok(Message::Binary(bytes))) => self.handle_binary(bytes.len()),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Gone,
                    };
                    match handled {
                        Handled::Quiet => {}
                        Handled::Reply(frame) => {
                            if self.write(socket, &frame).await.is_err() {
                                return End::Gone;
                            }
                        }
                        Handled::End(end) => return end,
                    }
                }
            }
        }
    }

    /// Charges a frame of `len` bytes to the rate limits; returns what to do with it
    /// when it is over them. Only the first frame of a run over the limit gets an `err`.
    fn over_rate(&mut self, len: usize) -> Option<Handled> {
        let now = Instant::now();
        let within_rate =
            self.frame_bucket.try_take(1.0, now) && self.byte_bucket.try_take(len as f64, now);
        if within_rate {
            self.reported_rate_limit = false;
            return None;
        }

        tracing::debug!("dropped frame over the rate limit");
        if std::mem::replace(&mut self.reported_rate_limit, true) {
            return Some(Handled::Quiet);
        }
        Some(refusal(
            BrokerErrorCode::RateLimited,
            "too many frames; slow down",
        ))
    }

    fn handle_binary(&mut self, len: usize) -> Handled {
        self.over_rate(len)
            .unwrap_or_else(|| refusal(BrokerErrorCode::MalformedFrame, "frames are JSON text"))
    }

    /// Applies one client frame.
    fn handle(&mut self, text: &str) -> Handled {
        if let Some(handled) = self.over_rate(text.len()) {
            return handled;
        }

        if text.len() > MAX_BROKER_MESSAGE_BYTES {
            return refusal(
                BrokerErrorCode::FrameTooLarge,
                "frames are at most 32000 bytes",
            );
        }
        let frame = match serde_json::from_str::<BrokerClientFrame>(text) {
            Ok(frame) => frame,
            Err(_) => return refusal(BrokerErrorCode::MalformedFrame, "not a known frame"),
        };

        match frame {
            BrokerClientFrame::Auth { .. } => Handled::End(End::Refused(
                BrokerErrorCode::AuthRequired,
                "already authenticated; use reauth".to_owned(),
            )),
            BrokerClientFrame::Reauth { token } => self.reauth(&token),
            BrokerClientFrame::Sub { band } => {
                if self.broker.registry().subscribe(self.id, band) {
                    tracing::debug!(%band, "subscribed");
                    Handled::Quiet
                } else {
                    refusal(
                        BrokerErrorCode::SubscribeDenied,
                        "band not in your subscribe list",
                    )
                }
            }
            BrokerClientFrame::Pub { band, batch } => self.publish(band, batch),
        }
    }

    fn reauth(&mut self, token: &str) -> Handled {
        let claims = match self.broker.token_key.verify(token, now_ms()) {
            Ok(claims) => claims,
            Err(error) => {
                let (code, message) = token_refusal(error);
                return Handled::End(End::Refused(code, message));
            }
        };
        let same_identity = claims.node_id == self.claims.node_id
            && claims.owner == self.claims.owner
            && claims.channel == self.claims.channel;
        if !same_identity {
            return Handled::End(End::Refused(
                BrokerErrorCode::IdentityChanged,
                "reauth must name the same node, owner and channel".to_owned(),
            ));
        }

        self.broker.registry().reauthorize(self.id, &claims);
        self.expiry = expiry_instant(claims.exp);
        tracing::info!(jti = %claims.jti, expires_at = claims.exp, "broker session renewed");
        self.claims = claims;
        Handled::Reply(self.ready_frame())
    }

    fn publish(&mut self, band: Band, batch: BrokerBatch) -> Handled {
        if !self.broker.registry().may_publish(self.id, band) {
            return refusal(
                BrokerErrorCode::PublishDenied,
                "band not in your publish list",
            );
        }
        for envelope in &batch.messages {
            if envelope.from_node_id != self.claims.node_id {
                return refusal(
                    BrokerErrorCode::WrongSender,
                    "fromNodeId must be your node id",
                );
            }
            let encoded_len = serde_json::to_vec(envelope).map_or(usize::MAX, |bytes| bytes.len());
            if encoded_len > MAX_PUBSUB_ENVELOPE_BYTES {
                return refusal(
                    BrokerErrorCode::EnvelopeTooLarge,
                    "envelopes are at most 16384 bytes",
                );
            }
        }

        let n_envelopes = batch.messages.len();
        let outgoing = BrokerServerFrame::Msg { band, batch };
        let text = serde_json::to_string(&outgoing).expect("server frames serialize to JSON");
        let delivery = self
            .broker
            .registry()
            .deliver(self.id, band, &Utf8Bytes::from(text));
        if delivery.dropped > 0 {
            self.broker
                .dropped_frames
                .fetch_add(delivery.dropped as u64, Ordering::Relaxed);
            tracing::debug!(%band, dropped = delivery.dropped, "readers too slow, frames dropped");
        }
        tracing::trace!(%band, n_envelopes, queued = delivery.queued, "published");
        Handled::Quiet
    }

    pub(super) fn ready_frame(&self) -> BrokerServerFrame {
        let registry = self.broker.registry();
        // The registry may already have narrowed the token's bands.
        let (publish, subscribe) = registry.allowed(self.id).unwrap_or_default();
        BrokerServerFrame::Ready {
            expires_at: self.claims.exp,
            publish,
            subscribe,
        }
    }

    pub(super) async fn write(
        &self,
        socket: &mut WebSocket,
        frame: &BrokerServerFrame,
    ) -> Result<(), SocketGone> {
        write_frame(socket, frame, self.broker.limits.write_timeout).await
    }

    async fn write_text(&self, socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), SocketGone> {
        write_message(
            socket,
            Message::Text(text),
            self.broker.limits.write_timeout,
        )
        .await
    }
}

/// What a client frame asks of the session loop.
enum Handled {
    Quiet,
    Reply(BrokerServerFrame),
    End(End),
}

fn refusal(code: BrokerErrorCode, message: &str) -> Handled {
    tracing::debug!(%code, "refused frame");
    Handled::Reply(BrokerServerFrame::Err {
        code: code.to_string(),
        message: message.to_owned(),
    })
}

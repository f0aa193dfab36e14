//! One WebSocket on the embedded broker, from the `auth` handshake to the close: the task
//! that owns the socket, authentication, registration and the final `revoked`/`err`.
//! The rules for frames after `ready` are in [`super::session`].
//!
//! Every write has a deadline (`write_timeout`): a reader that stops reading is dropped
//! rather than left holding the task.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, field};

use kachery_protocol::pubsub::{BrokerClientFrame, BrokerServerFrame};

use super::EmbeddedBroker;
use super::registry::{ConnectionId, Member};
use super::session::{End, Session};
use crate::error_code::BrokerErrorCode;
use crate::token::{TokenClaims, TokenError};

/// WebSocket close codes: normal end, and policy violation for refused credentials.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;

/// Serves one upgraded socket until it closes, inside a span naming node and channel.
pub(super) async fn serve(broker: Arc<EmbeddedBroker>, socket: WebSocket) {
    let id = broker.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "broker_connection",
        conn = id,
        node = field::Empty,
        channel = field::Empty
    );
    run(broker, socket, id).instrument(span).await;
}

async fn run(broker: Arc<EmbeddedBroker>, mut socket: WebSocket, id: ConnectionId) {
    let Some(claims) = authenticate(&broker, &mut socket).await else {
        return;
    };
    let span = tracing::Span::current();
    span.record("node", field::display(claims.node_id.short()));
    span.record("channel", field::display(&claims.channel));

    let (outbox_tx, outbox_rx) = mpsc::channel(broker.limits.outbox_frames.max(1));
    let (revoke_tx, revoke_rx) = oneshot::channel();
    broker
        .registry()
        .insert(id, Member::new(&claims, outbox_tx, revoke_tx));
    tracing::info!(jti = %claims.jti, "broker connection ready");

    let limits = &broker.limits;
    let mut session = Session::new(&broker, id, claims);
    let ready = session.ready_frame();
    let end = match session.write(&mut socket, &ready).await {
        Ok(()) => session.run(&mut socket, outbox_rx, revoke_rx).await,
        Err(SocketGone) => End::Gone,
    };

    broker.registry().remove(id);
    let close = match end {
        End::Gone => None,
        End::Revoked(reason) => {
            tracing::info!(%reason, "broker connection revoked");
            let frame = BrokerServerFrame::Revoked { reason };
            Some((session.write(&mut socket, &frame).await, CLOSE_NORMAL))
        }
        End::Refused(code, message) => {
            tracing::debug!(%code, %message, "broker connection refused");
            let frame = BrokerServerFrame::Err {
                code: code.to_string(),
                message,
            };
            Some((session.write(&mut socket, &frame).await, CLOSE_POLICY))
        }
    };
    if let Some((Ok(()), close_code)) = close {
        let _ = send_close(&mut socket, close_code, limits.write_timeout).await;
    }
    tracing::info!("broker connection closed");
}

/// Waits for the `auth` frame and checks its token; on failure answers `err` and closes.
async fn authenticate(broker: &EmbeddedBroker, socket: &mut WebSocket) -> Option<TokenClaims> {
    let first = tokio::time::timeout(broker.limits.auth_timeout, next_text(socket)).await;
    let outcome = match first {
        Err(_elapsed) => Err((
            BrokerErrorCode::AuthTimeout,
            "no auth frame in time".to_owned(),
        )),
        Ok(None) => return None,
        Ok(Some(text)) => match serde_json::from_str::<BrokerClientFrame>(&text) {
            Ok(BrokerClientFrame::Auth { token }) => broker
                .token_key
                .verify(&token, now_ms())
                .map_err(token_refusal),
            _ => Err((
                BrokerErrorCode::AuthRequired,
                "the first frame must be auth".to_owned(),
            )),
        },
    };

    match outcome {
        Ok(claims) => Some(claims),
        Err((code, message)) => {
            tracing::debug!(%code, "broker authentication failed");
            let frame = BrokerServerFrame::Err {
                code: code.to_string(),
                message,
            };
            let timeout = broker.limits.write_timeout;
            if write_frame(socket, &frame, timeout).await.is_ok() {
                let _ = send_close(socket, CLOSE_POLICY, timeout).await;
            }
            None
        }
    }
}

/// The socket failed or the reader is too slow; nothing more can be sent.
#[derive(Debug)]
pub(super) struct SocketGone;

/// The `err` code and message for a refused token.
pub(super) fn token_refusal(error: TokenError) -> (BrokerErrorCode, String) {
    let code = match error {
        TokenError::Expired { .. } => BrokerErrorCode::TokenExpired,
        _ => BrokerErrorCode::InvalidToken,
    };
    (code, error.to_string())
}

/// The next text frame, skipping pings; `None` once the socket is closed or failed.
async fn next_text(socket: &mut WebSocket) -> Option<Utf8Bytes> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(text)) => return Some(text),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Binary(_)) => return Some(Utf8Bytes::from_static("")),
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

pub(super) async fn write_frame(
    socket: &mut WebSocket,
    frame: &BrokerServerFrame,
    timeout: Duration,
) -> Result<(), SocketGone> {
    let text = serde_json::to_string(frame).expect("server frames serialize to JSON");
    write_message(socket, Message::Text(text.into()), timeout).await
}

async fn send_close(
    socket: &mut WebSocket,
    code: u16,
    timeout: Duration,
) -> Result<(), SocketGone> {
    let close = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    };
    write_message(socket, Message::Close(Some(close)), timeout).await
}

/// Writes one message; a failed or too slow write means the reader is gone.
pub(super) async fn write_message(
    socket: &mut WebSocket,
    message: Message,
    timeout: Duration,
) -> Result<(), SocketGone> {
    match tokio::time::timeout(timeout, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::debug!(%error, "broker write failed");
            Err(SocketGone)
        }
        Err(_elapsed) => {
            tracing::debug!("broker write timed out; dropping slow reader");
            Err(SocketGone)
        }
    }
}

/// The monotonic instant of a wall-clock expiry in Unix ms.
pub(super) fn expiry_instant(exp_ms: i64) -> tokio::time::Instant {
    let remaining_ms = u64::try_from(exp_ms.saturating_sub(now_ms())).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(remaining_ms)
}

pub(super) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).expect("the clock is before year 292 million")
}

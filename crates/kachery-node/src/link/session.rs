//! The life of one link: sessions (credential → connect → subscribe → up → renew …) and the
//! waits between them.
//!
//! A session ends when the link is closed, when the membership's effective roles change
//! (a new session starts at once, with a new credential), or when something fails (the
//! link backs off 1 s, 2 s, 4 s … up to the configured cap, then starts over). Renewal
//! failures while the hub is unreachable do not end a session: the connection keeps
//! working until the credential actually expires, retrying the renewal meanwhile.

use std::sync::Arc;
use std::time::Duration;

use kachery_client::ApiError;
use kachery_protocol::Band;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::MembershipConfig;
use kachery_protocol::node_api::PubsubCredentialResponse;
use kachery_protocol::pubsub::{PubsubEnvelope, check_received};
use kachery_pubsub::nats::NatsUserKey;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::broker::{BrokerConnection, BrokerError, BrokerEvent};
use super::{LinkContext, LinkShared, LinkState};
use crate::timing::{backoff, ms_after, now_ms};

/// Why a session ended.
enum SessionEnd {
    Cancelled,
    RolesChanged,
    Failed(Failure),
}

/// A failed session step, classified for the wait that follows.
struct Failure {
    message: String,
    /// The hub or broker withdrew access: show `revoked` rather than `backoff`.
    revoked: bool,
    /// The hub's view may have changed: ask the reconcile loop to look now.
    needs_reconcile: bool,
}

impl Failure {
    fn from_hub(error: &ApiError) -> Self {
        let code = error.code();
        let refused_for_access = matches!(
            code,
            Some(
                ErrorCode::NoRoles
                    | ErrorCode::NodeNotRegistered
                    | ErrorCode::ChannelNotFound
                    | ErrorCode::Forbidden
                    | ErrorCode::NotFound
            )
        );
        Self {
            message: format!("getPubsubCredential failed: {error}"),
            revoked: code == Some(ErrorCode::NoRoles),
            needs_reconcile: refused_for_access,
        }
    }

    fn from_broker(step: &str, error: &BrokerError) -> Self {
        Self {
            message: format!("broker {step} failed: {error}"),
            revoked: false,
            needs_reconcile: error.is_auth_failure(),
        }
    }
}

/// Runs the link until `cancel` fires.
pub(super) async fn run_link(
    context: LinkContext,
    shared: Arc<LinkShared>,
    cancel: CancellationToken,
) {
    let mut membership_rx = shared.membership.subscribe();
    let mut failures = 0u32;

    loop {
        membership_rx.mark_unchanged();
        shared.set_state(LinkState::Connecting);
        let ended = tokio::select! {
            () = cancel.cancelled() => SessionEnd::Cancelled,
            ended = run_session(&context, &shared, &mut membership_rx, &mut failures) => ended,
        };
        shared.set_disconnected();

        let failure = match ended {
            SessionEnd::Cancelled => break,
            SessionEnd::RolesChanged => {
                tracing::debug!("effective roles changed; starting a new session");
                continue;
            }
            SessionEnd::Failed(failure) => failure,
        };

        failures += 1;
        if failure.needs_reconcile {
            context.reconcile.request();
        }
        let delay = backoff(failures, context.max_backoff);
        let until_ms = ms_after(delay);
        tracing::debug!(error = %failure.message, delay_ms = delay.as_millis() as u64, "link down");
        shared.set_state(if failure.revoked {
            LinkState::Revoked {
                until_ms,
                reason: failure.message,
            }
        } else {
            LinkState::Backoff {
                until_ms,
                error: failure.message,
            }
        });

        // A membership change cuts the wait short: new roles deserve a prompt try.
        tokio::select! {
            () = cancel.cancelled() => break,
            () = sleep(delay) => {}
            changed = membership_rx.changed() => if changed.is_err() { break },
        }
    }
    shared.set_disconnected();
    tracing::debug!("link closed");
}

async fn run_session(
    context: &LinkContext,
    shared: &LinkShared,
    membership_rx: &mut watch::Receiver<MembershipConfig>,
    failures: &mut u32,
) -> SessionEnd {
    let roles_at_start = membership_rx.borrow().effective_roles;
    let nats_user_key =
        (membership_rx.borrow().pubsub.backend == "nats").then(|| shared.nats_user_key.clone());

    let credential = match fetch_credential(context, shared, nats_user_key.as_ref()).await {
        Ok(credential) => credential,
        Err(failure) => return SessionEnd::Failed(failure),
    };
    let mut connection = match BrokerConnection::open(&credential, nats_user_key.clone()).await {
        Ok(connection) => connection,
        Err(error) => return SessionEnd::Failed(Failure::from_broker("connect", &error)),
    };
    for band in &credential.subscribe {
        if let Err(error) = connection.subscribe(*band).await {
            return SessionEnd::Failed(Failure::from_broker("subscribe", &error));
        }
    }

    shared.set_connected(
        connection.publisher(),
        credential.publish.clone(),
        credential.expires_at,
    );
    *failures = 0;
    tracing::info!(
        publish = ?credential.publish,
        subscribe = ?credential.subscribe,
        "link up"
    );

    let mut bands = (credential.publish.clone(), credential.subscribe.clone());
    let mut expires_at = credential.expires_at;
    let mut renew_at = renewal_instant(expires_at);
    let mut renew_failures = 0u32;
    loop {
        tokio::select! {
            changed = membership_rx.changed() => {
                if changed.is_err() {
                    return SessionEnd::Cancelled;
                }
                if membership_rx.borrow_and_update().effective_roles != roles_at_start {
                    return SessionEnd::RolesChanged;
                }
            }
            () = sleep_until(renew_at) => {
                shared.set_state(LinkState::Renewing);
                match renew(context, shared, nats_user_key.as_ref(), &mut connection).await {
                    Ok(renewed) => {
                        if (renewed.publish.clone(), renewed.subscribe.clone()) != bands {
                            return SessionEnd::RolesChanged;
                        }
                        bands = (renewed.publish, renewed.subscribe);
                        expires_at = renewed.expires_at;
                        renew_at = renewal_instant(expires_at);
                        renew_failures = 0;
                        shared.snapshot.send_modify(|s| s.token_expires_at = Some(expires_at));
                        shared.set_state(LinkState::Up);
                    }
                    Err(failure) if failure.needs_reconcile || now_ms() >= expires_at => {
                        return SessionEnd::Failed(failure);
                    }
                    Err(failure) => {
                        renew_failures += 1;
                        let retry = backoff(renew_failures, context.max_backoff);
                        tracing::debug!(error = %failure.message, "renewal failed; retrying");
                        renew_at = (Instant::now() + retry).min(expiry_instant(expires_at));
                        shared.set_state(LinkState::Up);
                    }
                }
            }
            event = connection.next_event() => match event {
                BrokerEvent::Message { band, envelope } => deliver(context, shared, band, envelope),
                BrokerEvent::Revoked { reason } => {
                    tracing::info!(%reason, "broker revoked the link");
                    return SessionEnd::Failed(Failure {
                        message: format!("revoked by the broker: {reason}"),
                        revoked: true,
                        needs_reconcile: true,
                    });
                }
                BrokerEvent::Closed { error } => {
                    return SessionEnd::Failed(Failure::from_broker("connection", &error));
                }
            },
        }
    }
}

/// A credential from the hub, bound to the link's NATS user key on NATS channels.
async fn fetch_credential(
    context: &LinkContext,
    shared: &LinkShared,
    nats_user_key: Option<&NatsUserKey>,
) -> Result<PubsubCredentialResponse, Failure> {
    context
        .hub
        .pubsub_credential_for(&shared.channel, nats_user_key.map(NatsUserKey::public_key))
        .await
        .map_err(|error| Failure::from_hub(&error))
}

/// Fetches a fresh credential and hands it to the open connection (on NATS: a new
/// connection subscribed before the old one is drained).
async fn renew(
    context: &LinkContext,
    shared: &LinkShared,
    nats_user_key: Option<&NatsUserKey>,
    connection: &mut BrokerConnection,
) -> Result<PubsubCredentialResponse, Failure> {
    let credential = fetch_credential(context, shared, nats_user_key).await?;
    connection
        .reauth(&credential)
        .await
        .map_err(|error| Failure::from_broker("reauth", &error))?;
    Ok(credential)
}

/// Runs the receive checks on one envelope and hands what passes to the exchange.
fn deliver(context: &LinkContext, shared: &LinkShared, band: Band, envelope: PubsubEnvelope) {
    // Our own messages come back on bands we also subscribe to; they are not news.
    if envelope.from_node_id == context.node_id {
        return;
    }
    let now = now_ms();
    let checked = check_received(&envelope, band, &shared.channel, now, |sender, nonce| {
        let mut nonces = context
            .nonces
            .lock()
            .expect("nonce memory lock is not poisoned");
        nonces.check_and_record(sender, nonce, now)
    });
    match checked {
        Ok(body) => {
            tracing::trace!(%band, from = %envelope.from_node_id.short(), "message accepted");
            let (channel, from) = (&shared.channel, envelope.from_node_id);
            match band {
                Band::RequestTasks | Band::ProvideTasks => {
                    context.tasks.on_message(channel, from, body.message)
                }
                _ if kachery_feeds::is_feed_message(&body.message) => {
                    context.feeds.on_message(channel, from, body.message)
                }
                _ => context.exchange.on_message(channel, from, body.message),
            }
        }
        // FIXME: drops are only logged; count them by reason once the node exports metrics.
        Err(reason) => {
            let from = envelope.from_node_id.short();
            tracing::debug!(%band, %from, %reason, "message dropped");
        }
    }
}

/// Never renew sooner than this after connecting or renewing, so a clock far off the
/// hub's cannot turn renewal into a busy loop. Short enough for hubs configured with
/// credentials of a few seconds (tests of renewal).
const MIN_RENEWAL_DELAY: Duration = Duration::from_secs(2);

/// When to renew a credential expiring at `expires_at`: after 80 % of its remaining life.
fn renewal_instant(expires_at: i64) -> Instant {
    let remaining_ms = u64::try_from(expires_at - now_ms()).unwrap_or(0);
    let delay = Duration::from_millis(remaining_ms * 4 / 5).max(MIN_RENEWAL_DELAY);
    Instant::now() + delay
}

fn expiry_instant(expires_at: i64) -> Instant {
    let remaining_ms = u64::try_from(expires_at - now_ms()).unwrap_or(0);
    Instant::now() + Duration::from_millis(remaining_ms)
}

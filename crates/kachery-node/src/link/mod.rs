//! Channel links (SPEC §13.3): one task per channel with effective roles, holding the
//! node's pub-sub connection to that channel's broker.
//!
//! A link fetches a credential (getPubsubCredential), connects, subscribes to the bands the
//! credential allows and is then `up`; at 80 % of the credential's life it renews on the
//! open connection (`renewing`). When the broker revokes or closes the connection, or a
//! step fails, the link waits (`backoff`, or `revoked`) and starts over, and asks the
//! reconcile loop to look again when the hub refused it. A change of the membership's
//! effective roles restarts the session with a fresh credential and subscriptions.
//!
//! The reconcile loop owns links through [`LinkHandle`]; the exchange reaches them through
//! the daemon's `Network`, which publishes with [`LinkShared::publish`]. The session itself
//! lives in [`session`], the broker client calls in [`broker`].

mod broker;
mod session;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use kachery_client::node_api::NodeApiClient;
use kachery_exchange::FileExchange;
use kachery_feeds::FeedExchange;
use kachery_protocol::node_api::MembershipConfig;
use kachery_protocol::pubsub::{PubsubBody, PubsubEnvelope, PubsubMessage};
use kachery_protocol::{Band, ChannelName, NodeId};
use kachery_tasks::TaskExchange;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::nonce_memory::NonceMemory;
use crate::reconcile::ReconcileTrigger;
use crate::timing::{now_ms, random_nonce};

pub use broker::BrokerError;

/// Where a link is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Fetching a credential, connecting or subscribing.
    Connecting,
    /// Connected and subscribed; messages flow.
    Up,
    /// Up, and fetching a fresh credential to extend the connection.
    Renewing,
    /// Waiting until `until_ms` after `error` before trying again.
    Backoff { until_ms: i64, error: String },
    /// The broker or hub withdrew the node's access; retried at `until_ms`.
    Revoked { until_ms: i64, reason: String },
}

impl LinkState {
    /// The state's wire name, as in `node status` and the hub report.
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Renewing => "renewing",
            LinkState::Backoff { .. } => "backoff",
            LinkState::Revoked { .. } => "revoked",
        }
    }

    /// Whether messages can flow right now.
    pub fn is_up(&self) -> bool {
        matches!(self, LinkState::Up | LinkState::Renewing)
    }
}

/// What status shows of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSnapshot {
    pub state: LinkState,
    /// Expiry of the credential in use (ms), while connected.
    pub token_expires_at: Option<i64>,
    /// Bands the current credential allows publishing on.
    pub publish: Vec<Band>,
}

/// Why a message could not be published on a link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("the link to channel {0} is not up")]
    NotUp(ChannelName),
    #[error("the credential for channel {channel} does not allow publishing on band {band}")]
    BandNotAllowed { channel: ChannelName, band: Band },
    #[error("failed to draw a random nonce")]
    Random(#[source] getrandom::Error),
    #[error("the broker connection for channel {channel} failed to take the message")]
    Broker {
        channel: ChannelName,
        #[source]
        source: BrokerError,
    },
}

/// What every link needs from the daemon.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub node_id: NodeId,
    pub hub: NodeApiClient,
    pub exchange: Arc<FileExchange>,
    pub feeds: Arc<FeedExchange>,
    pub tasks: Arc<TaskExchange>,
    pub nonces: Arc<Mutex<NonceMemory>>,
    pub reconcile: ReconcileTrigger,
    /// Poked on every state change, so the report loop can tell the hub.
    pub changes: Arc<Notify>,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

/// The part of a link that others read: membership, state and the publisher.
pub(crate) struct LinkShared {
    channel: ChannelName,
    membership: watch::Sender<MembershipConfig>,
    snapshot: watch::Sender<LinkSnapshot>,
    publisher: Mutex<Option<broker::BrokerPublisher>>,
    changes: Arc<Notify>,
    /// The link's own NATS user nkey, used only on NATS channels: the server challenges
    /// it, never the node key (SPEC §6.2). It lives as long as the link.
    nats_user_key: kachery_pubsub::nats::NatsUserKey,
}

impl LinkShared {
    pub(crate) fn snapshot(&self) -> LinkSnapshot {
        self.snapshot.borrow().clone()
    }

    fn set_state(&self, state: LinkState) {
        let changed = self.snapshot.send_if_modified(|snapshot| {
            let changed = snapshot.state != state;
            snapshot.state = state;
            changed
        });
        if changed {
            self.changes.notify_one();
        }
    }

    fn set_connected(
        &self,
        publisher: broker::BrokerPublisher,
        publish: Vec<Band>,
        expires_at: i64,
    ) {
        *self
            .publisher
            .lock()
            .expect("link publisher lock is not poisoned") = Some(publisher);
        self.snapshot.send_modify(|snapshot| {
            snapshot.state = LinkState::Up;
            snapshot.token_expires_at = Some(expires_at);
            snapshot.publish = publish;
        });
        self.changes.notify_one();
    }

    fn set_disconnected(&self) {
        *self
            .publisher
            .lock()
            .expect("link publisher lock is not poisoned") = None;
        self.snapshot.send_modify(|snapshot| {
            snapshot.token_expires_at = None;
            snapshot.publish.clear();
        });
    }

    /// Sends what is queued for the broker now (the batching window is not waited out).
    /// Nothing to do when the link is down.
    pub(crate) async fn flush(&self) {
        let publisher = self
            .publisher
            .lock()
            .expect("link publisher lock is not poisoned")
            .clone();
        if let Some(publisher) = publisher {
            if let Err(error) = publisher.flush().await {
                tracing::debug!(channel = %self.channel, %error, "flush at shutdown failed");
            }
        }
    }

    /// Signs `message` for this channel and queues it on its band, if the credential in
    /// use allows publishing there (defence in depth: the broker checks too).
    pub(crate) async fn publish(
        &self,
        key: &SigningKey,
        message: PubsubMessage,
    ) -> Result<(), PublishError> {
        let band = message.band();
        let publisher = {
            let snapshot = self.snapshot.borrow();
            if !snapshot.state.is_up() {
                return Err(PublishError::NotUp(self.channel.clone()));
            }
            if !snapshot.publish.contains(&band) {
                let channel = self.channel.clone();
                return Err(PublishError::BandNotAllowed { channel, band });
            }
            let publisher = self
                .publisher
                .lock()
                .expect("link publisher lock is not poisoned");
            publisher
                .clone()
                .ok_or_else(|| PublishError::NotUp(self.channel.clone()))?
        };

        let body = PubsubBody {
            channel: self.channel.clone(),
            timestamp: now_ms(),
            nonce: random_nonce().map_err(PublishError::Random)?,
            message,
        };
        let envelope = PubsubEnvelope::seal(key, &body);
        publisher
            .publish(band, envelope)
            .await
            .map_err(|source| PublishError::Broker {
                channel: self.channel.clone(),
                source: BrokerError::Publish(source),
            })
    }
}

/// Owns one link task; the reconcile loop keeps one per channel with effective roles.
pub(crate) struct LinkHandle {
    shared: Arc<LinkShared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl LinkHandle {
    /// Starts a link for `membership`.
    pub(crate) fn spawn(context: LinkContext, membership: MembershipConfig) -> Self {
        let channel = membership.channel.clone();
        let initial = LinkSnapshot {
            state: LinkState::Connecting,
            token_expires_at: None,
            publish: vec![],
        };
        let shared = Arc::new(LinkShared {
            channel: channel.clone(),
            membership: watch::Sender::new(membership),
            snapshot: watch::Sender::new(initial),
            publisher: Mutex::new(None),
            changes: context.changes.clone(),
            nats_user_key: kachery_pubsub::nats::NatsUserKey::generate(),
        });
        let cancel = CancellationToken::new();

        let span = tracing::info_span!("link", channel = %channel, node = %context.node_id.short());
        let task = tokio::spawn(
            session::run_link(context, shared.clone(), cancel.clone()).instrument(span),
        );
        Self {
            shared,
            cancel,
            task,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<LinkShared> {
        &self.shared
    }

    /// Hands the link the hub's latest view of its membership; a change in effective roles
    /// makes it fetch a new credential and resubscribe.
    pub(crate) fn update(&self, membership: MembershipConfig) {
        self.shared.membership.send_if_modified(|current| {
            let changed = *current != membership;
            *current = membership;
            changed
        });
    }

    /// Stops the link and waits for its task to end.
    pub(crate) async fn close(self) {
        self.cancel.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(channel = %self.shared.channel, %error, "link task ended abnormally");
        }
    }
}

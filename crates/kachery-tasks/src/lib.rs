//! The task exchange of kachery (SPEC §17): asking a channel to run a function, and
//! running functions for other nodes through local worker processes.
//!
//! A *requester* publishes `requestTask` on its channels' `requestTasks` band; a
//! *provider* with a worker for that function answers `taskStatus{claimed}`; the requester
//! accepts the first claim (the file exchange's [`Arbiter`] rules: standby, start and
//! stall timers, up to three attempts) and follows `queued`, `running`, then `finished`
//! or `error{message}`. Results of pure calculations and queries are stored in the
//! channel's bucket as a payload blob plus a signed result record, so a later request
//! for the same pure task is answered from the bucket without any provider, and a query
//! nobody answers falls back to the last cached answer. Actions run at most once per
//! request and store nothing.
//!
//! Workers are ordinary processes that long-poll the node's local API for jobs
//! (`docs/TASKS.md`); the [`TaskExchange`] holds their registrations and job queue.
//!
//! Module map: `requester` (one request: cache, arbitration, fallback), `requests` (the
//! requester's views for the local API), `provider` (claims, jobs, heartbeats), `workers`
//! (registrations and long-poll queue), `results` (reading and writing cached results
//! with verification), `bucket` (presigned HTTP), `error`, `options`.
//!
//! [`Arbiter`]: kachery_exchange::arbiter::Arbiter

mod bucket;
mod error;
mod job;
mod options;
mod provider;
mod requester;
mod requests;
mod results;
mod workers;

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use kachery_exchange::Network;
use kachery_exchange::router::{Routed, StatusRouter};
use kachery_protocol::pubsub::{PubsubMessage, RequestId};
use kachery_protocol::task::TaskState;
use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use kachery_store::Store;
use tracing::Instrument;

pub use error::{ReportError, TaskError};
pub use options::TaskOptions;

/// One `taskStatus` as a waiting request sees it.
#[derive(Debug, Clone)]
pub(crate) struct TaskEvent {
    pub channel: ChannelName,
    pub provider: NodeId,
    pub request_id: RequestId,
    pub task_hash: Sha1Hash,
    pub status: TaskState,
}

impl Routed for TaskEvent {
    fn request_id(&self) -> RequestId {
        self.request_id
    }
}

/// The task exchange of one node: requester, provider and worker queue.
pub struct TaskExchange {
    store: Store,
    network: Arc<dyn Network>,
    /// Signs result records (purpose `task-result`); never leaves this struct.
    signing_key: SigningKey,
    options: TaskOptions,
    node_id: NodeId,
    http: reqwest::Client,
    status_router: StatusRouter<TaskEvent>,
    workers: workers::WorkerRegistry,
    provider: provider::ProviderState,
    requests: requests::RequestRegistry,
}

impl TaskExchange {
    /// A task exchange storing results in `store`. Must be called inside a tokio runtime.
    pub fn new(
        store: Store,
        network: Arc<dyn Network>,
        signing_key: SigningKey,
        options: TaskOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            node_id: network.node_id(),
            network,
            signing_key,
            options,
            http: reqwest::Client::new(),
            status_router: StatusRouter::default(),
            workers: workers::WorkerRegistry::default(),
            provider: provider::ProviderState::default(),
            requests: requests::RequestRegistry::default(),
        })
    }

    /// Takes one message a channel link accepted on a task band. Never blocks: provider
    /// work is spawned, status messages are queued for their request.
    pub fn on_message(
        self: &Arc<Self>,
        channel: &ChannelName,
        from: NodeId,
        message: PubsubMessage,
    ) {
        if from == self.node_id {
            return;
        }
        match message {
            PubsubMessage::RequestTask {
                request_id,
                task_hash,
                function_id,
                function_type,
                kwargs,
                exclude,
            } => {
                let span = tracing::debug_span!(
                    "provide_task",
                    channel = %channel,
                    request_id = %request_id,
                    function = %function_id,
                );
                let call = provider::Call {
                    task_hash,
                    function_id,
                    function_type,
                    kwargs,
                };
                let exchange = Arc::clone(self);
                let channel = channel.clone();
                tokio::spawn(
                    exchange
                        .on_request_task(channel, from, request_id, call, exclude)
                        .instrument(span),
                );
            }
            PubsubMessage::AcceptClaim {
                request_id,
                provider,
                task_hash: Some(task_hash),
            } if provider == self.node_id => {
                self.on_accept_claim(channel, from, request_id, task_hash);
            }
            PubsubMessage::TaskStatus {
                request_id,
                task_hash,
                status,
            } => {
                tracing::trace!(channel = %channel, request_id = %request_id, ?status, "task status");
                self.status_router.deliver(TaskEvent {
                    channel: channel.clone(),
                    provider: from,
                    request_id,
                    task_hash,
                    status,
                });
            }
            PubsubMessage::ProbeTaskFunctions { probe_id } => {
                let exchange = Arc::clone(self);
                let channel = channel.clone();
                tokio::spawn(async move { exchange.answer_probe(&channel, probe_id).await });
            }
            // File and feed messages belong to their exchanges; function lists are not
            // used yet.
            PubsubMessage::AcceptClaim { .. }
            | PubsubMessage::TaskFunctions { .. }
            | PubsubMessage::RequestFile { .. }
            | PubsubMessage::FileStatus { .. }
            | PubsubMessage::Probe { .. }
            | PubsubMessage::SubscribeToSubfeed { .. }
            | PubsubMessage::NewSubfeedMessages { .. }
            | PubsubMessage::SubfeedUploaded { .. } => {}
        }
    }
}

/// The first 8 hex characters of a hash, for log fields.
pub(crate) fn short(sha1: &Sha1Hash) -> String {
    sha1.to_hex()[..8].to_owned()
}

/// A fresh 16-byte request id from the operating system's random source.
pub(crate) fn new_request_id() -> RequestId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    kachery_protocol::Nonce::from_bytes(bytes)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

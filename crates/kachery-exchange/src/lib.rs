//! The file exchange of kachery (SPEC §15): how a node loads a file it does not hold, and
//! how it serves files it does hold to other nodes of its channels.
//!
//! Nodes never talk to each other. A requester first looks for a copy in each channel's
//! bucket; failing that it publishes `requestFile` on the channels' pub-sub bands, accepts
//! the first provider's claim, waits while that provider uploads the object to the bucket,
//! then downloads it. Every byte read is verified against its SHA-1 before the store keeps
//! it (§7.3), and corrupt bucket objects are reported (§7.5). Files over one chunk travel
//! as a manifest plus chunks fetched in parallel and assembled in a resumable partial file.
//!
//! [`FileExchange`] is the one entry point: [`FileExchange::load`] for requesters,
//! [`FileExchange::on_message`] for everything arriving from the channel links, and
//! [`FileExchange::transfers`] for status. What it needs from the outside world (channels,
//! publishing, presigned URLs) comes through the [`Network`] trait.
//!
//! Module map: `load` (entry and channel choice), `requester` (one object: request and
//! arbitrate), `bucket_read` (probe, verified download, corrupt reports), `chunked`
//! (manifest and chunks), `provider` (claims), `upload` (shared uploads), `transfer`
//! (HTTP with verification), `batcher` (coalesced URL calls), `progress` (meters and
//! reports), and two public modules the task exchange reuses: `arbiter` (the claim
//! arbitration state machine) and `router` (status message delivery by request id).

pub mod arbiter;
mod batcher;
mod bucket_read;
mod chunked;
mod error;
mod load;
pub mod network;
mod options;
mod progress;
mod provider;
mod requester;
pub mod router;
mod transfer;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{DownloadUrls, PresignedRequest, UploadItem};
use kachery_protocol::pubsub::PubsubMessage;
use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use kachery_store::Store;
use tracing::Instrument;

pub use error::LoadError;
pub use network::{ChannelView, Network, NetworkError};
pub use options::{ExchangeOptions, MAX_PARALLEL_CHUNKS};
pub use progress::{LoadProgress, Loaded, PROGRESS_INTERVAL, TransferDirection, TransferInfo};

use batcher::Batcher;
use provider::ProviderState;
use router::{StatusEvent, StatusRouter};

/// How long upload-URL requests are collected into one createUploadUrls call (SPEC §15.3).
const UPLOAD_URL_WINDOW: Duration = Duration::from_millis(100);

/// How long download-URL requests are collected into one createDownloadUrls call: short,
/// because a probe waits for it, but long enough to merge the parallel chunks of a load.
const DOWNLOAD_URL_WINDOW: Duration = Duration::from_millis(20);

/// The file exchange of one node: requester and provider over all its channels.
pub struct FileExchange {
    store: Store,
    network: Arc<dyn Network>,
    options: ExchangeOptions,
    node_id: NodeId,
    /// One client for every bucket request, so connections are reused.
    http: reqwest::Client,
    status_router: StatusRouter<StatusEvent>,
    download_urls: Arc<Batcher<BucketKey, DownloadUrls>>,
    upload_urls: Arc<Batcher<UploadItem, PresignedRequest>>,
    provider: ProviderState,
    transfers: progress::TransferRegistry,
    file_locks: load::FileLocks,
}

impl FileExchange {
    /// An exchange serving from and loading into `store`. Must be called inside a tokio
    /// runtime. The options are clamped to their valid ranges.
    pub fn new(store: Store, network: Arc<dyn Network>, options: ExchangeOptions) -> Arc<Self> {
        let download_network = Arc::clone(&network);
        let download_urls = Batcher::new(
            DOWNLOAD_URL_WINDOW,
            Arc::new(move |channel: ChannelName, keys| {
                let network = Arc::clone(&download_network);
                Box::pin(async move { network.download_urls(&channel, keys).await })
            }),
        );
        let upload_network = Arc::clone(&network);
        let upload_urls = Batcher::new(
            UPLOAD_URL_WINDOW,
            Arc::new(move |channel: ChannelName, items| {
                let network = Arc::clone(&upload_network);
                Box::pin(async move { network.upload_urls(&channel, items).await })
            }),
        );

        Arc::new(Self {
            store,
            node_id: network.node_id(),
            network,
            options: options.normalized(),
            http: reqwest::Client::new(),
            status_router: StatusRouter::default(),
            download_urls,
            upload_urls,
            provider: ProviderState::default(),
            transfers: progress::TransferRegistry::default(),
            file_locks: load::FileLocks::default(),
        })
    }

    /// Takes one message a channel link accepted (after the receive checks of SPEC §6.3).
    /// Never blocks: provider work is spawned, status messages are queued for their load.
    /// Messages from this node itself are ignored.
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
            PubsubMessage::RequestFile {
                request_id,
                file_key,
                exclude,
            } => {
                let span = tracing::debug_span!(
                    "provide",
                    channel = %channel,
                    request_id = %request_id,
                    sha1 = %short(&file_key.sha1),
                );
                let exchange = Arc::clone(self);
                let channel = channel.clone();
                tokio::spawn(
                    exchange
                        .on_request_file(channel, from, request_id, file_key, exclude)
                        .instrument(span),
                );
            }
            PubsubMessage::AcceptClaim {
                request_id,
                provider,
                task_hash: None,
            } => {
                if provider == self.node_id {
                    self.on_accept_claim(channel, from, request_id);
                }
            }
            PubsubMessage::FileStatus {
                request_id,
                file_key,
                status,
            } => {
                tracing::trace!(channel = %channel, request_id = %request_id, ?status, "file status");
                self.status_router.deliver(StatusEvent {
                    channel: channel.clone(),
                    provider: from,
                    request_id,
                    file_key,
                    status,
                });
            }
            // Feed and other messages are for the other exchanges; the link routes them.
            _ => {}
        }
    }

    /// Loads and uploads in flight, oldest first.
    pub fn transfers(&self) -> Vec<TransferInfo> {
        self.transfers.list()
    }
}

/// The first 8 hex characters of a hash, for log fields.
pub(crate) fn short(sha1: &Sha1Hash) -> String {
    sha1.to_hex()[..8].to_owned()
}

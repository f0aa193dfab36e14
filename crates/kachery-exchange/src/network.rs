//! What the exchanges see of the outside world: the channels this node is linked to, a way to
//! publish on their bands, and the hub's presigned-URL services.
//!
//! The node daemon implements [`Network`] over its channel links and its node-API client;
//! the exchanges never see sockets, tokens or the hub itself. Incoming messages flow the
//! other way: a link that accepted a message (after `pubsub::check_received`) hands it to
//! [`crate::FileExchange::on_message`].

use futures_util::future::BoxFuture;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{DownloadUrls, PresignedRequest, ReadMode, UploadItem};
use kachery_protocol::pubsub::PubsubMessage;
use kachery_protocol::{ChannelName, NodeId, RoleSet};

/// A channel the node has a membership on, as the exchanges need to know it.
#[derive(Debug, Clone)]
pub struct ChannelView {
    pub channel: ChannelName,
    /// Effective roles from the hub's last answer; the exchange acts only within them.
    pub effective: RoleSet,
    pub read_mode: ReadMode,
    /// Whether the pub-sub link is connected and subscribed right now.
    pub link_up: bool,
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    #[error("no live link to channel {0}")]
    NoLink(ChannelName),
    #[error("the hub refused: {code}: {message}")]
    Refused {
        code: kachery_protocol::api_error::ErrorCode,
        message: String,
    },
    #[error("the hub is unreachable")]
    HubUnreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Other(String),
}

pub trait Network: Send + Sync + 'static {
    /// This node's id (its own messages are ignored when they come back).
    fn node_id(&self) -> NodeId;

    /// Channels with a membership, in preference order.
    fn channels(&self) -> Vec<ChannelView>;

    /// Signs `message` for `channel` and queues it on the band it belongs to.
    fn publish(
        &self,
        channel: &ChannelName,
        message: PubsubMessage,
    ) -> BoxFuture<'_, Result<(), NetworkError>>;

    /// Presigned PUTs for `items`, in item order (node API createUploadUrls).
    fn upload_urls(
        &self,
        channel: &ChannelName,
        items: Vec<UploadItem>,
    ) -> BoxFuture<'_, Result<Vec<PresignedRequest>, NetworkError>>;

    /// Presigned GET and HEAD requests for `keys` (node API createDownloadUrls).
    fn download_urls(
        &self,
        channel: &ChannelName,
        keys: Vec<BucketKey>,
    ) -> BoxFuture<'_, Result<Vec<DownloadUrls>, NetworkError>>;

    /// Tells the hub an object in the channel's bucket failed verification.
    fn report_corrupt(
        &self,
        channel: &ChannelName,
        key: BucketKey,
    ) -> BoxFuture<'_, Result<bool, NetworkError>>;
}

//! The daemon's side of the exchange's `Network` trait: channel views from the hub's last
//! node config, publishing through the channel links, and presigned URLs from the node API.
//!
//! In local-only mode there is no hub client: the node has no channels, and every call that
//! would need the hub fails with a message saying what is missing.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use futures_util::future::BoxFuture;
use kachery_client::{ApiError, NodeApiClient};
use kachery_exchange::network::{ChannelView, Network, NetworkError};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{DownloadUrls, PresignedRequest, ReadMode, UploadItem};
use kachery_protocol::pubsub::PubsubMessage;
use kachery_protocol::{ChannelName, NodeId};

use crate::link::PublishError;
use crate::state::NodeState;

pub(crate) struct DaemonNetwork {
    state: Arc<NodeState>,
    hub: Option<NodeApiClient>,
    signing_key: SigningKey,
}

impl DaemonNetwork {
    pub(crate) fn new(
        state: Arc<NodeState>,
        hub: Option<NodeApiClient>,
        signing_key: SigningKey,
    ) -> Self {
        Self {
            state,
            hub,
            signing_key,
        }
    }

    fn hub(&self) -> Result<&NodeApiClient, NetworkError> {
        self.hub.as_ref().ok_or_else(|| {
            NetworkError::Other("the node runs local-only: no hub_url or owner configured".into())
        })
    }
}

impl DaemonNetwork {
    /// The `readBase` of a public-read channel (SPEC §7.3), whose objects are read
    /// without asking the hub; `None` for presigned channels.
    fn public_read_base(&self, channel: &ChannelName) -> Option<String> {
        self.state
            .memberships()
            .into_iter()
            .find(|membership| &membership.channel == channel)
            .filter(|membership| membership.bucket.read_mode == ReadMode::Public)
            .and_then(|membership| membership.bucket.read_base)
    }
}

/// Unsigned GET and HEAD of `key` under a public read base. They do not expire; the
/// far-future expiry keeps callers from refreshing them.
fn public_download_urls(read_base: &str, key: BucketKey) -> DownloadUrls {
    let url = format!("{}/{key}", read_base.trim_end_matches('/'));
    let request = |method: &str| PresignedRequest {
        key: key.clone(),
        method: method.to_owned(),
        url: url.clone(),
        headers: Default::default(),
        expires_at: i64::MAX,
    };
    DownloadUrls {
        get: request("GET"),
        head: request("HEAD"),
        key,
    }
}

fn from_api_error(error: ApiError) -> NetworkError {
    match error {
        ApiError::Api { code, message, .. } => NetworkError::Refused { code, message },
        error if error.is_unreachable() => NetworkError::HubUnreachable(Box::new(error)),
        error => NetworkError::Other(error.to_string()),
    }
}

fn from_publish_error(error: PublishError) -> NetworkError {
    match error {
        PublishError::NotUp(channel) => NetworkError::NoLink(channel),
        error => NetworkError::Other(error.to_string()),
    }
}

impl Network for DaemonNetwork {
    fn node_id(&self) -> NodeId {
        self.state.node_id
    }

    fn channels(&self) -> Vec<ChannelView> {
        self.state
            .memberships()
            .into_iter()
            .filter(|membership| !membership.deleted)
            .map(|membership| {
                let link_up = self
                    .state
                    .link(&membership.channel)
                    .is_some_and(|link| link.snapshot().state.is_up());
                ChannelView {
                    channel: membership.channel,
                    effective: membership.effective_roles,
                    read_mode: membership.bucket.read_mode,
                    link_up,
                }
            })
            .collect()
    }

    fn publish(
        &self,
        channel: &ChannelName,
        message: PubsubMessage,
    ) -> BoxFuture<'_, Result<(), NetworkError>> {
        let link = self.state.link(channel);
        let channel = channel.clone();
        Box::pin(async move {
            let link = link.ok_or(NetworkError::NoLink(channel))?;
            link.publish(&self.signing_key, message)
                .await
                .map_err(from_publish_error)
        })
    }

    fn upload_urls(
        &self,
        channel: &ChannelName,
        items: Vec<UploadItem>,
    ) -> BoxFuture<'_, Result<Vec<PresignedRequest>, NetworkError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let response = self.hub()?.upload_urls(&channel, items).await;
            response
                .map(|response| response.uploads)
                .map_err(from_api_error)
        })
    }

    fn download_urls(
        &self,
        channel: &ChannelName,
        keys: Vec<BucketKey>,
    ) -> BoxFuture<'_, Result<Vec<DownloadUrls>, NetworkError>> {
        if let Some(read_base) = self.public_read_base(channel) {
            let downloads = keys
                .into_iter()
                .map(|key| public_download_urls(&read_base, key))
                .collect();
            return Box::pin(std::future::ready(Ok(downloads)));
        }
        let channel = channel.clone();
        Box::pin(async move {
            let response = self.hub()?.download_urls(&channel, keys).await;
            response
                .map(|response| response.downloads)
                .map_err(from_api_error)
        })
    }

    fn report_corrupt(
        &self,
        channel: &ChannelName,
        key: BucketKey,
    ) -> BoxFuture<'_, Result<bool, NetworkError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let response = self.hub()?.report_corrupt(&channel, key).await;
            response
                .map(|response| response.deleted)
                .map_err(from_api_error)
        })
    }
}

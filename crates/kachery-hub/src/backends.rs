//! The channel backends the hub runs itself: the embedded bucket and the embedded broker.
//!
//! This module is the one place that touches `kachery-bucket` and `kachery-pubsub`
//! construction and revocation APIs; handlers ask it for "the bucket of this channel",
//! "a credential for this capability" and "narrow this node's rights". Both backends get
//! their keys from the master key ([`SubKeys`]), so a restart with the same key keeps
//! issued URLs and tokens valid. Every channel with bucket backend `embedded` shares the
//! one [`EmbeddedBucket`]: its keys already start with the channel name.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use kachery_bucket::{BucketError, EmbeddedBucket, EmbeddedBucketOptions};
use kachery_protocol::roles::Capability;
use kachery_protocol::{ChannelName, Email, NodeId};
use kachery_pubsub::error_code::{REVOKED_CHANNEL_DELETED, REVOKED_GOING_AWAY};
use kachery_pubsub::issuer::IssueError;
use kachery_pubsub::{
    BrokerLimits, BrokerTokenKey, CredentialIssuer, CredentialRequest, EmbeddedBroker,
    EmbeddedIssuer, IssuedCredential,
};
use url::Url;

use crate::channel_buckets::ChannelBuckets;
use crate::db::ChannelRecord;
use crate::keys::SubKeys;

/// The only backend name accepted for buckets and brokers in phase 1.
pub const EMBEDDED: &str = "embedded";

pub struct Backends {
    /// The bucket of each channel: embedded, S3 or GCS.
    pub buckets: ChannelBuckets,
    broker: Arc<EmbeddedBroker>,
    issuer: EmbeddedIssuer,
}

impl Backends {
    /// Opens the embedded bucket under `<data_dir>/bucket` and creates the broker.
    pub async fn open(
        data_dir: &Path,
        keys: &SubKeys,
        public_url: &Url,
        quota_bytes_per_channel: u64,
    ) -> Result<Self, BucketError> {
        let base = public_url.as_str().trim_end_matches('/');
        let options = EmbeddedBucketOptions {
            quota_bytes_per_channel,
            public_read: false,
        };
        let bucket = EmbeddedBucket::open(
            data_dir.join("bucket"),
            keys.embedded_bucket,
            format!("{base}/bucket"),
            options,
        )
        .await?;

        let token_key = BrokerTokenKey::new(keys.embedded_broker);
        let broker = EmbeddedBroker::new(token_key.clone(), BrokerLimits::default());
        let issuer = EmbeddedIssuer::new(token_key, websocket_url(public_url));
        Ok(Self {
            buckets: ChannelBuckets::new(bucket),
            broker,
            issuer,
        })
    }

    /// `/bucket/{*key}` and `/pubsub/ws`, to merge into the hub's router.
    pub fn router(&self) -> Router {
        let bucket = self.buckets.embedded();
        bucket.router().merge(self.broker.router())
    }

    /// A broker credential for `request`, or `None` for a backend this hub does not run.
    pub fn issue_credential(
        &self,
        channel: &ChannelRecord,
        request: &CredentialRequest<'_>,
    ) -> Option<Result<IssuedCredential, IssueError>> {
        (channel.pubsub_backend == EMBEDDED).then(|| self.issuer.issue(request))
    }

    /// Narrows what (node id, owner) may do on `channel`'s broker to `allowed`, at once.
    pub fn narrow(
        &self,
        channel: &ChannelName,
        node_id: &NodeId,
        owner: &Email,
        allowed: Capability,
    ) {
        self.broker
            .update_capability(channel, node_id, owner, allowed);
    }

    /// Disconnects every broker connection of a deleted channel.
    pub fn close_channel(&self, channel: &ChannelName) {
        self.broker.close_channel(channel, REVOKED_CHANNEL_DELETED);
    }

    /// Disconnects every broker connection with `going_away`, for shutdown.
    pub fn close_all(&self) {
        self.broker.close_all(REVOKED_GOING_AWAY);
    }
}

/// `ws://` or `wss://` plus `/pubsub/ws` on the public URL.
fn websocket_url(public_url: &Url) -> String {
    let base = public_url.as_str().trim_end_matches('/');
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    let scheme = if public_url.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{rest}/pubsub/ws")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_follows_the_public_scheme() {
        let http = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(websocket_url(&http), "ws://127.0.0.1:8080/pubsub/ws");
        let https = Url::parse("https://hub.example.org/").unwrap();
        assert_eq!(websocket_url(&https), "wss://hub.example.org/pubsub/ws");
    }
}

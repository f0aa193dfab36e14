//! Wire types of the local API's feed routes (SPEC §13.4, §16), shared by
//! [`super::LocalClient`] and the daemon.

use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest long-poll the daemon honours, under the client's 30 s request deadline.
pub const MAX_WAIT_MS: u64 = 20_000;

/// `POST /v1/feeds`: a new feed, or the existing one with this local name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFeedRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateFeedResponse {
    pub feed_id: NodeId,
    /// `feed://<feedId>`.
    pub uri: String,
    /// False when a feed with this name existed already.
    pub created: bool,
}

/// `POST /v1/feeds/{feedId}/subfeeds/{name}/messages`: JSON objects to sign and append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendRequest {
    pub messages: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendResponse {
    pub message_count: u64,
}

/// Query of `GET /v1/feeds/{feedId}/subfeeds/{name}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadQuery {
    /// First message number wanted; default 0.
    #[serde(default)]
    pub position: u64,
    /// Most messages returned; default 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// How long to wait for a message at `position` (ms, ≤ 20,000); default 0 reads only
    /// what the node holds.
    #[serde(default)]
    pub wait_ms: u64,
    /// Follow the subfeed on this channel only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResponse {
    pub feed_id: NodeId,
    pub subfeed_hash: Sha1Hash,
    pub position: u64,
    pub messages: Vec<FeedMessage>,
    /// Messages this node holds now.
    pub message_count: u64,
    /// Recent messages of this subfeed the node refused (gap, fork, bad signature …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Rejection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedMessage {
    pub message_number: u64,
    pub timestamp: i64,
    pub message: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_number: Option<u64>,
    pub code: String,
    pub detail: String,
    pub source: String,
    pub at: i64,
}

//! Bodies and responses of the signed node API, `POST /api/node` (SPEC §11).
//!
//! A request is a [`crate::SignedEnvelope`] (purpose `hub-request`) whose body is a
//! [`NodeRequestBody`]: the common freshness fields plus one [`NodeRequest`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bucket_key::BucketKey;
use crate::ids::{ChannelName, Email, Label, NodeId, Nonce, Sha1Hash};
use crate::roles::{Band, RoleSet};

/// The body every node-API envelope carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRequestBody {
    pub node_id: NodeId,
    pub owner: Email,
    /// The hub's public origin, binding the request to one hub.
    pub hub: String,
    pub timestamp: i64,
    pub nonce: Nonce,
    #[serde(flatten)]
    pub request: NodeRequest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum NodeRequest {
    Report(ReportRequest),
    GetNodeConfig(GetNodeConfigRequest),
    GetPubsubCredential(GetPubsubCredentialRequest),
    CreateUploadUrls(CreateUploadUrlsRequest),
    CreateDownloadUrls(CreateDownloadUrlsRequest),
    ReportCorruptObject(ReportCorruptObjectRequest),
}

impl NodeRequest {
    /// The wire name of the request type, for logs and metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeRequest::Report(_) => "report",
            NodeRequest::GetNodeConfig(_) => "getNodeConfig",
            NodeRequest::GetPubsubCredential(_) => "getPubsubCredential",
            NodeRequest::CreateUploadUrls(_) => "createUploadUrls",
            NodeRequest::CreateDownloadUrls(_) => "createDownloadUrls",
            NodeRequest::ReportCorruptObject(_) => "reportCorruptObject",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRequest {
    pub label: Label,
    pub version: String,
    pub status: NodeStatusReport,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusReport {
    pub channels: Vec<ChannelLinkReport>,
    pub store_bytes: u64,
    pub transfers_active: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelLinkReport {
    pub channel: ChannelName,
    pub link_state: String,
    pub token_expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResponse {
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetNodeConfigRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_etag: Option<String>,
}

/// The node's desired state. When `unchanged` is true, `node` and `memberships` are
/// omitted and the node keeps what it has for `etag`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfigResponse {
    pub etag: String,
    pub hub_time: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<NodeConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub label: Label,
    pub memberships: Vec<MembershipConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipConfig {
    pub channel: ChannelName,
    pub deleted: bool,
    pub requested_roles: RoleSet,
    pub effective_roles: RoleSet,
    pub bucket: BucketInfo,
    pub pubsub: PubsubInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadMode {
    /// Nodes read through short-lived presigned GET URLs from createDownloadUrls.
    #[default]
    Presigned,
    /// Anyone with the read base and a hash can read.
    Public,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketInfo {
    pub backend: String,
    pub read_mode: ReadMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_base: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PubsubInfo {
    pub backend: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPubsubCredentialRequest {
    pub channel: ChannelName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_user_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PubsubCredentialResponse {
    pub channel: ChannelName,
    pub expires_at: i64,
    pub publish: Vec<Band>,
    pub subscribe: Vec<Band>,
    pub credential: PubsubCredential,
}

/// How to connect to the channel's broker; one variant per backend.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "camelCase")]
pub enum PubsubCredential {
    /// The hub's embedded broker: a WebSocket URL and a hub-MACed token.
    Embedded { url: String, token: String },
    /// A NATS server in JWT mode: its URLs and a user JWT for the nkey the node sent as
    /// `natsUserKey` (the node answers the server's challenge with that nkey, never with
    /// its node key).
    Nats { servers: Vec<String>, jwt: String },
    /// Ably: a signed token request the node exchanges for a token.
    #[serde(rename_all = "camelCase")]
    Ably { token_request: AblyTokenRequest },
}

/// An Ably token request, signed by the hub with the channel's API key (Ably's `mac`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AblyTokenRequest {
    pub key_name: String,
    /// Token lifetime, ms.
    pub ttl: i64,
    /// JSON text mapping Ably channel names to operations.
    pub capability: String,
    pub client_id: String,
    /// Unix ms.
    pub timestamp: i64,
    pub nonce: String,
    /// base64 HMAC-SHA256 over the fields above with the key's secret.
    pub mac: String,
}

impl std::fmt::Debug for PubsubCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PubsubCredential::Embedded { url, .. } => f
                .debug_struct("Embedded")
                .field("url", url)
                .field("token", &"<redacted>")
                .finish(),
            PubsubCredential::Nats { servers, .. } => f
                .debug_struct("Nats")
                .field("servers", servers)
                .field("jwt", &"<redacted>")
                .finish(),
            PubsubCredential::Ably { token_request } => f
                .debug_struct("Ably")
                .field("keyName", &token_request.key_name)
                .field("mac", &"<redacted>")
                .finish(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUploadUrlsRequest {
    pub channel: ChannelName,
    pub items: Vec<UploadItem>,
}

/// One object a provider wants to upload; the kind decides the role and the size cap.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum UploadItem {
    #[serde(rename_all = "camelCase")]
    File { sha1: Sha1Hash, size: u64 },
    #[serde(rename_all = "camelCase")]
    TaskPayload { sha1: Sha1Hash, size: u64 },
    #[serde(rename_all = "camelCase")]
    FeedSegment {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
        start: u64,
        end: u64,
        size: u64,
    },
    #[serde(rename_all = "camelCase")]
    FeedHead {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
        size: u64,
    },
    #[serde(rename_all = "camelCase")]
    TaskResult { task_hash: Sha1Hash, size: u64 },
}

/// A request the node must send exactly as given: method, URL and headers.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedRequest {
    pub key: BucketKey,
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub expires_at: i64,
}

impl std::fmt::Debug for PresignedRequest {
    /// The URL carries a signature and is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedRequest")
            .field("key", &self.key)
            .field("method", &self.method)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadUrlsResponse {
    pub uploads: Vec<PresignedRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDownloadUrlsRequest {
    pub channel: ChannelName,
    pub keys: Vec<BucketKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadUrls {
    pub key: BucketKey,
    pub get: PresignedRequest,
    pub head: PresignedRequest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadUrlsResponse {
    pub downloads: Vec<DownloadUrls>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCorruptObjectRequest {
    pub channel: ChannelName,
    pub key: BucketKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCorruptObjectResponse {
    pub deleted: bool,
}

/// Free-form details attached to an error, e.g. the role that is missing.
pub type ErrorDetails = BTreeMap<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_flattens_the_request_type() {
        let body = NodeRequestBody {
            node_id: NodeId::parse(&"a".repeat(64)).unwrap(),
            owner: Email::parse("a@b.org").unwrap(),
            hub: "http://127.0.0.1:8080".into(),
            timestamp: 1,
            nonce: Nonce::from_bytes([0; 16]),
            request: NodeRequest::GetNodeConfig(GetNodeConfigRequest { known_etag: None }),
        };
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["type"], "getNodeConfig");
        assert_eq!(value["owner"], "a@b.org");
        let back: NodeRequestBody = serde_json::from_value(value).unwrap();
        assert!(matches!(back.request, NodeRequest::GetNodeConfig(_)));
    }

    #[test]
    fn upload_items_are_tagged_by_kind() {
        let item = UploadItem::File {
            sha1: Sha1Hash::of(b"x"),
            size: 1,
        };
        let value = serde_json::to_value(&item).unwrap();
        assert_eq!(value["kind"], "file");
        assert_eq!(value["size"], 1);
    }
}

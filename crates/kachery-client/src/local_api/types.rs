//! Wire types of a node daemon's local API (SPEC §13.4), shared by [`super::LocalClient`]
//! and the daemon's server so both sides agree on every field. JSON is camelCase; optional
//! fields are omitted when absent.

use std::path::PathBuf;

use kachery_protocol::node_api::ErrorDetails;
use kachery_protocol::{ChannelName, Email, Label, NodeId, RoleSet, Sha1Hash};
use serde::{Deserialize, Serialize};

/// `POST /v1/store` with a path the daemon reads itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreRequest {
    pub path: PathBuf,
}

/// The stored file: its `sha1://` URI, hash, size and, for chunked files, the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreResponse {
    pub uri: String,
    pub sha1: Sha1Hash,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha1: Option<Sha1Hash>,
}

/// `POST /v1/load`: fetch `uri` into the local store, asking `channels` (all joined
/// channels when empty). With `detach`, a client disconnect does not cancel the load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadRequest {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelName>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detach: bool,
}

/// One line of the NDJSON answer to `POST /v1/load`: any number of `progress` events,
/// then exactly one `done` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum LoadEvent {
    #[serde(rename_all = "camelCase")]
    Progress {
        bytes: u64,
        total: u64,
        chunks_done: u32,
        chunks_total: u32,
        providers: u32,
    },
    /// The file is complete and verified at `path` in the local store.
    #[serde(rename_all = "camelCase")]
    Done {
        path: PathBuf,
        sha1: Sha1Hash,
        size: u64,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        code: LoadErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<ErrorDetails>,
    },
}

impl LoadEvent {
    /// Whether this event ends the load (`done` or `error`).
    pub fn is_final(&self) -> bool {
        !matches!(self, LoadEvent::Progress { .. })
    }
}

/// Why a load failed; the CLI maps these to exit codes (SPEC §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoadErrorCode {
    /// No provider has the file and the bucket does not hold it.
    NotFound,
    /// The hub refused: no membership or no role for the channels asked.
    Denied,
    /// Received bytes did not match their hash.
    Integrity,
    Timeout,
    /// The hub, the broker or the bucket could not be reached.
    Unavailable,
    InvalidUri,
    Internal,
    /// A code this build does not know (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

/// `GET /v1/status`: the daemon's identity, hub link, channels, store and transfers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub node_id: NodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Email>,
    /// The hub URL, absent when running local-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    pub label: Label,
    /// What is missing (hub URL, owner) when the daemon runs local-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_only_reason: Option<String>,
    /// Unix ms of the last successful reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix ms of the next reconcile attempt after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    pub channels: Vec<ChannelStatus>,
    pub store: StoreUsage,
    pub transfers: Vec<TransferStatus>,
}

/// One membership as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub channel: ChannelName,
    pub requested_roles: RoleSet,
    pub effective_roles: RoleSet,
    /// `connecting`, `up`, `renewing`, `backoff`, `revoked` or `none` (SPEC §13.3).
    pub link_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Local store usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreUsage {
    pub blobs: u64,
    pub bytes: u64,
    pub partials: u64,
}

/// A transfer in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    pub uri: String,
    pub direction: TransferDirection,
    pub bytes: u64,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransferDirection {
    /// This node is fetching the object.
    Download,
    /// This node is providing the object to the bucket.
    Upload,
}

/// `GET /v1/transfers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransfersResponse {
    pub transfers: Vec<TransferStatus>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn load_events_are_tagged_by_event_in_camel_case() {
        let progress = LoadEvent::Progress {
            bytes: 5,
            total: 10,
            chunks_done: 1,
            chunks_total: 2,
            providers: 3,
        };
        let value = serde_json::to_value(&progress).unwrap();
        assert_eq!(
            value,
            json!({"event": "progress", "bytes": 5, "total": 10, "chunksDone": 1, "chunksTotal": 2, "providers": 3})
        );

        let error: LoadEvent = serde_json::from_value(
            json!({"event": "error", "code": "invalid_uri", "message": "bad"}),
        )
        .unwrap();
        assert_eq!(
            error,
            LoadEvent::Error {
                code: LoadErrorCode::InvalidUri,
                message: "bad".into(),
                details: None
            }
        );
        assert!(error.is_final() && !progress.is_final());

        let future: LoadEvent =
            serde_json::from_value(json!({"event": "error", "code": "new_thing", "message": "m"}))
                .unwrap();
        assert!(matches!(
            future,
            LoadEvent::Error {
                code: LoadErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn status_omits_absent_fields_and_reads_them_back() {
        let status = NodeStatus {
            node_id: NodeId::parse(&"b".repeat(64)).unwrap(),
            owner: None,
            hub: None,
            label: Label::parse("n").unwrap(),
            local_only_reason: Some("no hub_url configured".into()),
            last_reconcile_at: None,
            last_error: None,
            next_attempt_at: None,
            channels: vec![],
            store: StoreUsage {
                blobs: 1,
                bytes: 2,
                partials: 0,
            },
            transfers: vec![],
        };
        let value = serde_json::to_value(&status).unwrap();
        assert!(value.get("owner").is_none());
        assert_eq!(value["localOnlyReason"], "no hub_url configured");
        assert_eq!(value["store"]["blobs"], 1);
        assert_eq!(serde_json::from_value::<NodeStatus>(value).unwrap(), status);
    }
}

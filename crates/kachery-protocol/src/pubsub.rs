//! Messages on a channel's bands and the frames of the embedded broker (SPEC §6, §15).
//!
//! Every message a node publishes is a [`PubsubEnvelope`]: a [`PubsubBody`] signed with
//! purpose `pubsub`. Envelopes travel in batches ([`BrokerBatch`]). Receivers run
//! [`check_received`] before acting on anything.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::feed::SignedFeedObject;
use crate::ids::{ChannelName, NodeId, Nonce, Sha1Hash};
use crate::roles::Band;
use crate::signing::{self, Purpose};
use crate::task::{FunctionId, TaskFunction, TaskState, TaskType};

/// A file request id: 16 random bytes as hex.
pub type RequestId = Nonce;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PubsubEnvelope {
    pub body: Value,
    pub from_node_id: NodeId,
    pub signature: String,
}

/// One broker message: a batch of envelopes published together.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrokerBatch {
    pub messages: Vec<PubsubEnvelope>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PubsubBody {
    pub channel: ChannelName,
    pub timestamp: i64,
    pub nonce: Nonce,
    #[serde(flatten)]
    pub message: PubsubMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PubsubMessage {
    #[serde(rename_all = "camelCase")]
    RequestFile {
        request_id: RequestId,
        file_key: FileKey,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<NodeId>,
    },
    /// Accepts a provider's claim; on requestTasks when it names a task (`taskHash`),
    /// else on requestFiles.
    #[serde(rename_all = "camelCase")]
    AcceptClaim {
        request_id: RequestId,
        provider: NodeId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_hash: Option<Sha1Hash>,
    },
    #[serde(rename_all = "camelCase")]
    FileStatus {
        request_id: RequestId,
        file_key: FileKey,
        status: FileStatus,
    },
    /// Asks providers to run a task (SPEC §17).
    #[serde(rename_all = "camelCase")]
    RequestTask {
        request_id: RequestId,
        task_hash: Sha1Hash,
        function_id: FunctionId,
        function_type: TaskType,
        kwargs: serde_json::Map<String, Value>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<NodeId>,
    },
    /// Asks providers which task functions they offer.
    #[serde(rename_all = "camelCase")]
    ProbeTaskFunctions { probe_id: Nonce },
    /// A provider's claim and progress on a task request.
    #[serde(rename_all = "camelCase")]
    TaskStatus {
        request_id: RequestId,
        task_hash: Sha1Hash,
        status: TaskState,
    },
    /// A provider's answer to `probeTaskFunctions`.
    #[serde(rename_all = "camelCase")]
    TaskFunctions {
        probe_id: Nonce,
        functions: Vec<TaskFunction>,
    },
    /// The channel test's probe; only ever on the probe band.
    #[serde(rename_all = "camelCase")]
    Probe { probe_id: Nonce },
    /// A reader asks for a subfeed's messages from `position` on (SPEC §16).
    #[serde(rename_all = "camelCase")]
    SubscribeToSubfeed {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
        position: u64,
    },
    /// Signed messages pushed inline, in order; each is verified by every receiver.
    #[serde(rename_all = "camelCase")]
    NewSubfeedMessages {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
        messages: Vec<SignedFeedObject>,
    },
    /// The bucket holds the subfeed's segments up to `messageCount`.
    #[serde(rename_all = "camelCase")]
    SubfeedUploaded {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
        message_count: u64,
    },
}

impl PubsubMessage {
    /// The one band this message type may arrive on.
    pub fn band(&self) -> Band {
        match self {
            PubsubMessage::RequestFile { .. }
            | PubsubMessage::AcceptClaim {
                task_hash: None, ..
            } => Band::RequestFiles,
            PubsubMessage::FileStatus { .. } => Band::ProvideFiles,
            PubsubMessage::RequestTask { .. }
            | PubsubMessage::ProbeTaskFunctions { .. }
            | PubsubMessage::AcceptClaim {
                task_hash: Some(_), ..
            } => Band::RequestTasks,
            PubsubMessage::TaskStatus { .. } | PubsubMessage::TaskFunctions { .. } => {
                Band::ProvideTasks
            }
            PubsubMessage::Probe { .. } => Band::Probe,
            PubsubMessage::SubscribeToSubfeed { .. } => Band::RequestFeeds,
            PubsubMessage::NewSubfeedMessages { .. } | PubsubMessage::SubfeedUploaded { .. } => {
                Band::ProvideFeeds
            }
        }
    }
}

/// Names a file, or a byte range of a larger file, to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileKey {
    pub sha1: Sha1Hash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha1: Option<Sha1Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_of: Option<ChunkOf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkOf {
    pub sha1: Sha1Hash,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum FileStatus {
    Claimed,
    Uploading {
        bytes: u64,
        total: u64,
    },
    Uploaded,
    #[serde(rename_all = "camelCase")]
    Failed {
        reason: FailureReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest_sha1: Option<Sha1Hash>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    NotFound,
    NeedsManifest,
    UploadDenied,
    UploadFailed,
    LocalCorrupt,
    ShuttingDown,
}

/// Why a received envelope was dropped; counted, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    #[error("envelope too large")]
    TooLarge,
    #[error("body has the wrong shape")]
    Shape,
    #[error("message type does not belong on this band")]
    WrongBand,
    #[error("message names another channel")]
    WrongChannel,
    #[error("message is too old or from the future")]
    Stale,
    #[error("nonce seen before")]
    Replayed,
    #[error("signature does not verify")]
    BadSignature,
}

impl PubsubEnvelope {
    /// Signs `body` with the node key.
    pub fn seal(key: &ed25519_dalek::SigningKey, body: &PubsubBody) -> Self {
        let value = serde_json::to_value(body).expect("pubsub bodies serialize to JSON");
        let signature =
            signing::sign(key, Purpose::Pubsub, &value).expect("pubsub bodies are canonical");
        Self {
            body: value,
            from_node_id: signing::node_id_of(key),
            signature,
        }
    }
}

/// The receive pipeline of SPEC §6.3, cheapest check first, except the nonce check, which
/// needs the caller's memory: `seen_nonce` is asked only for messages that passed every
/// other check, and should record the nonce when it answers false.
pub fn check_received(
    envelope: &PubsubEnvelope,
    arrival_band: Band,
    channel: &ChannelName,
    now_ms: i64,
    mut seen_nonce: impl FnMut(&NodeId, &Nonce) -> bool,
) -> Result<PubsubBody, DropReason> {
    let encoded_len = serde_json::to_vec(envelope)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if encoded_len > crate::limits::MAX_PUBSUB_ENVELOPE_BYTES {
        return Err(DropReason::TooLarge);
    }
    let body: PubsubBody =
        serde_json::from_value(envelope.body.clone()).map_err(|_| DropReason::Shape)?;
    if body.message.band() != arrival_band {
        return Err(DropReason::WrongBand);
    }
    if &body.channel != channel {
        return Err(DropReason::WrongChannel);
    }
    if !signing::is_fresh(body.timestamp, now_ms, crate::limits::MAX_CLOCK_SKEW_MS) {
        return Err(DropReason::Stale);
    }
    signing::verify(
        &envelope.from_node_id,
        Purpose::Pubsub,
        &envelope.body,
        &envelope.signature,
    )
    .map_err(|_| DropReason::BadSignature)?;
    if seen_nonce(&envelope.from_node_id, &body.nonce) {
        return Err(DropReason::Replayed);
    }
    Ok(body)
}

/// Frames a client sends to the embedded broker over its WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum BrokerClientFrame {
    /// First frame: the token from getPubsubCredential.
    Auth {
        token: String,
    },
    /// A fresh token on the open socket before the old one expires.
    Reauth {
        token: String,
    },
    Sub {
        band: Band,
    },
    Pub {
        band: Band,
        batch: BrokerBatch,
    },
}

/// Frames the embedded broker sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum BrokerServerFrame {
    /// The token was accepted; these are the allowed bands until `expiresAt`.
    #[serde(rename_all = "camelCase")]
    Ready {
        expires_at: i64,
        publish: Vec<Band>,
        subscribe: Vec<Band>,
    },
    Msg {
        band: Band,
        batch: BrokerBatch,
    },
    Err {
        code: String,
        message: String,
    },
    /// The node lost its roles on this channel, or the token expired; the socket closes.
    Revoked {
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn body(channel: &str, timestamp: i64) -> PubsubBody {
        PubsubBody {
            channel: ChannelName::parse(channel).unwrap(),
            timestamp,
            nonce: Nonce::from_bytes([1; 16]),
            message: PubsubMessage::RequestFile {
                request_id: Nonce::from_bytes([2; 16]),
                file_key: FileKey {
                    sha1: Sha1Hash::of(b"x"),
                    manifest_sha1: None,
                    chunk_of: None,
                },
                exclude: vec![],
            },
        }
    }

    #[test]
    fn receive_pipeline_accepts_a_good_message_once() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let channel = ChannelName::parse("lab.one").unwrap();
        let envelope = PubsubEnvelope::seal(&key, &body("lab.one", 1_000));
        let mut seen = std::collections::HashSet::new();
        let mut remember = |node: &NodeId, nonce: &Nonce| !seen.insert((*node, *nonce));
        assert!(
            check_received(
                &envelope,
                Band::RequestFiles,
                &channel,
                2_000,
                &mut remember
            )
            .is_ok()
        );
        assert_eq!(
            check_received(
                &envelope,
                Band::RequestFiles,
                &channel,
                2_000,
                &mut remember
            )
            .unwrap_err(),
            DropReason::Replayed
        );
    }

    #[test]
    fn receive_pipeline_drops_each_bad_case() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let channel = ChannelName::parse("lab.one").unwrap();
        let never = |_: &NodeId, _: &Nonce| false;
        let good = PubsubEnvelope::seal(&key, &body("lab.one", 1_000));

        let wrong_band = check_received(&good, Band::ProvideFiles, &channel, 1_000, never);
        assert_eq!(wrong_band.unwrap_err(), DropReason::WrongBand);

        let foreign = PubsubEnvelope::seal(&key, &body("lab.two", 1_000));
        let wrong_channel = check_received(&foreign, Band::RequestFiles, &channel, 1_000, never);
        assert_eq!(wrong_channel.unwrap_err(), DropReason::WrongChannel);

        let stale = check_received(&good, Band::RequestFiles, &channel, 1_000 + 301_000, never);
        assert_eq!(stale.unwrap_err(), DropReason::Stale);

        let mut forged = good.clone();
        forged.from_node_id = crate::signing::node_id_of(&SigningKey::from_bytes(&[4; 32]));
        let bad_signature = check_received(&forged, Band::RequestFiles, &channel, 1_000, never);
        assert_eq!(bad_signature.unwrap_err(), DropReason::BadSignature);
    }

    #[test]
    fn task_messages_belong_on_task_bands_and_accepts_follow_their_task_hash() {
        let request_id = Nonce::from_bytes([2; 16]);
        let provider = NodeId::from_bytes([9; 32]);
        let file_accept = PubsubMessage::AcceptClaim {
            request_id,
            provider,
            task_hash: None,
        };
        let task_accept = PubsubMessage::AcceptClaim {
            request_id,
            provider,
            task_hash: Some(Sha1Hash::of(b"t")),
        };
        assert_eq!(file_accept.band(), Band::RequestFiles);
        assert_eq!(task_accept.band(), Band::RequestTasks);
        let status = PubsubMessage::TaskStatus {
            request_id,
            task_hash: Sha1Hash::of(b"t"),
            status: TaskState::Queued,
        };
        assert_eq!(status.band(), Band::ProvideTasks);

        // A task accept arriving on the files band is dropped.
        let key = SigningKey::from_bytes(&[3; 32]);
        let channel = ChannelName::parse("lab.one").unwrap();
        let mut sent = body("lab.one", 1_000);
        sent.message = task_accept;
        let envelope = PubsubEnvelope::seal(&key, &sent);
        let never = |_: &NodeId, _: &Nonce| false;
        let wrong = check_received(&envelope, Band::RequestFiles, &channel, 1_000, never);
        assert_eq!(wrong.unwrap_err(), DropReason::WrongBand);
        assert!(check_received(&envelope, Band::RequestTasks, &channel, 1_000, never).is_ok());
    }

    #[test]
    fn file_status_wire_form() {
        let status = FileStatus::Uploading {
            bytes: 5,
            total: 10,
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"state":"uploading","bytes":5,"total":10}"#
        );
        let failed = FileStatus::Failed {
            reason: FailureReason::NeedsManifest,
            manifest_sha1: Some(Sha1Hash::of(b"m")),
        };
        let text = serde_json::to_string(&failed).unwrap();
        assert!(text.contains(r#""reason":"needs_manifest""#), "{text}");
    }
}

//! The provider side (SPEC §15.3): answering `requestFile` with a claim, and starting an
//! upload when the requester accepts it.
//!
//! A request is claimed only when the store holds the bytes (a blob, a chunk indexed in a
//! whole file, or the requested range of a whole file) and fewer than
//! `max_concurrent_uploads` uploads run. Unheld files get no answer: the requester's
//! no-claim timer turns silence into `not_found`. Claims not accepted within `standby`
//! are forgotten. Uploads themselves live in [`crate::upload`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kachery_protocol::pubsub::{FailureReason, FileKey, FileStatus, PubsubMessage, RequestId};
use kachery_protocol::{CHUNK_SIZE, ChannelName, NodeId, Role, Sha1Hash};
use kachery_store::BlobLocation;

use crate::FileExchange;
use crate::upload::UploadRegistry;

/// A claim this node published and the requester has not accepted yet.
#[derive(Debug, Clone)]
pub(crate) struct PendingClaim {
    pub channel: ChannelName,
    pub requester: NodeId,
    pub file_key: FileKey,
    pub location: BlobLocation,
}

/// Provider bookkeeping of one exchange.
#[derive(Default)]
pub(crate) struct ProviderState {
    claims: Mutex<HashMap<RequestId, PendingClaim>>,
    pub uploads: UploadRegistry,
}

/// What the store can offer for a requested key.
enum Servable {
    Bytes(BlobLocation),
    /// Held whole but larger than a chunk: the requester must use this manifest.
    NeedsManifest(Sha1Hash),
}

impl FileExchange {
    /// Handles a `requestFile` from `requester` on `channel`.
    pub(crate) async fn on_request_file(
        self: Arc<Self>,
        channel: ChannelName,
        requester: NodeId,
        request_id: RequestId,
        file_key: FileKey,
        exclude: Vec<NodeId>,
    ) {
        if exclude.contains(&self.node_id) || !self.holds_role(&channel, Role::ProvideFiles) {
            return;
        }
        let servable = match self.find_servable(&file_key).await {
            Ok(Some(servable)) => servable,
            Ok(None) => {
                tracing::trace!("requested file not held");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "store lookup for a file request failed");
                return;
            }
        };

        let location = match servable {
            Servable::Bytes(location) => location,
            Servable::NeedsManifest(manifest_sha1) => {
                tracing::debug!(manifest = %crate::short(&manifest_sha1), "asking for the manifest");
                let status = FileStatus::Failed {
                    reason: FailureReason::NeedsManifest,
                    manifest_sha1: Some(manifest_sha1),
                };
                self.publish_status(&channel, request_id, &file_key, status)
                    .await;
                return;
            }
        };
        if self.provider.uploads.n_active() >= self.options.max_concurrent_uploads {
            tracing::debug!("all upload slots busy, not claiming");
            return;
        }

        let claim = PendingClaim {
            channel: channel.clone(),
            requester,
            file_key: file_key.clone(),
            location,
        };
        self.provider
            .claims
            .lock()
            .expect("claims lock is never poisoned")
            .insert(request_id, claim);
        self.publish_status(&channel, request_id, &file_key, FileStatus::Claimed)
            .await;
        tracing::debug!(requester = %requester.short(), "claimed");

        tokio::time::sleep(self.options.standby).await;
        let expired = self
            .provider
            .claims
            .lock()
            .expect("claims lock is never poisoned")
            .remove(&request_id);
        if expired.is_some() {
            tracing::debug!("claim expired unaccepted");
        }
    }

    /// Handles an `acceptClaim` naming this node.
    pub(crate) fn on_accept_claim(
        self: &Arc<Self>,
        channel: &ChannelName,
        requester: NodeId,
        request_id: RequestId,
    ) {
        let claim = {
            let mut claims = self
                .provider
                .claims
                .lock()
                .expect("claims lock is never poisoned");
            let matches = claims
                .get(&request_id)
                .is_some_and(|claim| claim.channel == *channel && claim.requester == requester);
            if !matches {
                tracing::debug!(request_id = %request_id, "accept for an unknown or expired claim");
                return;
            }
            claims
                .remove(&request_id)
                .expect("the claim was just found")
        };
        tracing::debug!(request_id = %request_id, channel = %channel, "claim accepted");
        self.join_upload(request_id, claim);
    }

    /// Publishes one `fileStatus`; failures are logged (the requester's timers cover them).
    pub(crate) async fn publish_status(
        &self,
        channel: &ChannelName,
        request_id: RequestId,
        file_key: &FileKey,
        status: FileStatus,
    ) {
        let message = PubsubMessage::FileStatus {
            request_id,
            file_key: file_key.clone(),
            status,
        };
        if let Err(error) = self.network.publish(channel, message).await {
            tracing::warn!(channel = %channel, %error, "could not publish file status");
        }
    }

    pub(crate) fn holds_role(&self, channel: &ChannelName, role: Role) -> bool {
        self.network
            .channels()
            .iter()
            .any(|view| view.channel == *channel && view.effective.contains(role))
    }

    async fn find_servable(
        &self,
        file_key: &FileKey,
    ) -> Result<Option<Servable>, kachery_store::ReadError> {
        if let Some(location) = self.store.locate(&file_key.sha1).await? {
            let over_one_chunk = location.len() > CHUNK_SIZE;
            if over_one_chunk && file_key.chunk_of.is_none() {
                return Ok(self
                    .store
                    .manifest_of(&file_key.sha1)
                    .await?
                    .map(Servable::NeedsManifest));
            }
            return Ok(Some(Servable::Bytes(location)));
        }

        // The whole file may be here without its chunks indexed (an old store, say): serve
        // the requested range of it; the upload verifies the bytes against the chunk hash.
        let Some(chunk_of) = file_key.chunk_of else {
            return Ok(None);
        };
        let in_range = chunk_of.start < chunk_of.end && chunk_of.end - chunk_of.start <= CHUNK_SIZE;
        let Some(whole) = self
            .store
            .locate(&chunk_of.sha1)
            .await?
            .filter(|_| in_range)
        else {
            return Ok(None);
        };
        if whole.len() < chunk_of.end {
            return Ok(None);
        }
        Ok(Some(Servable::Bytes(BlobLocation {
            path: whole.path,
            start: whole.start + chunk_of.start,
            end: whole.start + chunk_of.end,
        })))
    }
}

//! Uploads a provider runs after its claim was accepted (SPEC §15.3 steps 3–4).
//!
//! One upload per (channel, blob): requesters accepted while it runs join it as
//! subscribers and get the same status messages, so a chunk wanted by several nodes
//! crosses the link once. An upload gets its URL from the batched createUploadUrls call,
//! announces `uploading{0, total}`, streams the bytes from the store while hashing,
//! reports progress every [`PROGRESS_EVERY`], and ends with `uploaded` or `failed`. Bytes
//! that do not hash to the requested name are never completed in the bucket; the blob
//! is then removed from the store, since it is corrupt on this disk.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::UploadItem;
use kachery_protocol::pubsub::{FailureReason, FileKey, FileStatus, RequestId};
use kachery_protocol::{ChannelName, Sha1Hash};
use kachery_store::BlobLocation;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::Instrument;

use crate::FileExchange;
use crate::network::NetworkError;
use crate::progress::{TransferDirection, TransferMeter};
use crate::provider::PendingClaim;
use crate::transfer::{self, UploadOutcome};

/// How often a running upload reports progress: within SPEC §15.3's 1–5 s.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The uploads running on one exchange, by (channel, blob).
#[derive(Default)]
pub(crate) struct UploadRegistry {
    active: Mutex<HashMap<(ChannelName, Sha1Hash), Arc<SharedUpload>>>,
}

impl UploadRegistry {
    pub(crate) fn n_active(&self) -> usize {
        self.active
            .lock()
            .expect("upload registry lock is never poisoned")
            .len()
    }
}

/// One upload and the requests waiting for it.
pub(crate) struct SharedUpload {
    channel: ChannelName,
    sha1: Sha1Hash,
    location: BlobLocation,
    meter: Arc<TransferMeter>,
    subscribers: Mutex<Vec<(RequestId, FileKey)>>,
}

impl FileExchange {
    /// Starts the upload for an accepted claim, or joins the one already running.
    pub(crate) fn join_upload(self: &Arc<Self>, request_id: RequestId, claim: PendingClaim) {
        let sha1 = claim.file_key.sha1;
        let mut active = self
            .provider
            .uploads
            .active
            .lock()
            .expect("upload registry lock is never poisoned");

        if let Some(upload) = active.get(&(claim.channel.clone(), sha1)) {
            upload
                .subscribers
                .lock()
                .expect("subscriber lock is never poisoned")
                .push((request_id, claim.file_key.clone()));
            upload.meter.add_peer(claim.requester);
            let status = FileStatus::Uploading {
                bytes: upload.meter.bytes.load(Ordering::Relaxed),
                total: upload.location.len(),
            };
            tracing::debug!(request_id = %request_id, "joining running upload");
            let exchange = Arc::clone(self);
            tokio::spawn(async move {
                exchange
                    .publish_status(&claim.channel, request_id, &claim.file_key, status)
                    .await;
            });
            return;
        }

        let meter =
            TransferMeter::new(TransferDirection::Upload, sha1, Some(claim.channel.clone()));
        meter.total.store(claim.location.len(), Ordering::Relaxed);
        meter.add_peer(claim.requester);
        let upload = Arc::new(SharedUpload {
            channel: claim.channel.clone(),
            sha1,
            location: claim.location,
            meter,
            subscribers: Mutex::new(vec![(request_id, claim.file_key)]),
        });
        active.insert((claim.channel.clone(), sha1), Arc::clone(&upload));
        drop(active);

        let span =
            tracing::info_span!("upload", channel = %claim.channel, sha1 = %crate::short(&sha1));
        tokio::spawn(Arc::clone(self).run_upload(upload).instrument(span));
    }

    /// Tells every requester of a running upload `failed{shutting_down}` (SPEC §20), so
    /// they turn to another provider at once instead of waiting out their stall timer.
    /// The uploads leave the registry; the daemon stops them right after. Returns how many
    /// uploads were announced.
    pub async fn announce_shutdown(&self) -> usize {
        let uploads: Vec<Arc<SharedUpload>> = self
            .provider
            .uploads
            .active
            .lock()
            .expect("upload registry lock is never poisoned")
            .drain()
            .map(|(_, upload)| upload)
            .collect();
        let status = FileStatus::Failed {
            reason: FailureReason::ShuttingDown,
            manifest_sha1: None,
        };
        for upload in &uploads {
            self.publish_to_subscribers(upload, status.clone()).await;
        }
        uploads.len()
    }

    async fn run_upload(self: Arc<Self>, upload: Arc<SharedUpload>) {
        let _registration = self.transfers.register(Arc::clone(&upload.meter));
        let status = self.perform_upload(&upload).await;

        // Removed before the final status goes out, so a request accepted from now on
        // starts a fresh upload (which finds the object present) instead of waiting here.
        self.provider
            .uploads
            .active
            .lock()
            .expect("upload registry lock is never poisoned")
            .remove(&(upload.channel.clone(), upload.sha1));
        self.publish_to_subscribers(&upload, status).await;
    }

    async fn perform_upload(self: &Arc<Self>, upload: &Arc<SharedUpload>) -> FileStatus {
        let failed = |reason| FileStatus::Failed {
            reason,
            manifest_sha1: None,
        };
        let total = upload.location.len();

        let item = UploadItem::File {
            sha1: upload.sha1,
            size: total,
        };
        let presigned = match self.upload_urls.request(&upload.channel, item).await {
            Ok(presigned) => presigned,
            Err(error) => {
                let denied = matches!(
                    &*error,
                    NetworkError::Refused {
                        code: ErrorCode::MissingRole,
                        ..
                    }
                );
                tracing::warn!(%error, "no upload url");
                return failed(if denied {
                    FailureReason::UploadDenied
                } else {
                    FailureReason::UploadFailed
                });
            }
        };
        let reader = match open_location(&upload.location).await {
            Ok(reader) => reader,
            Err(error) => {
                tracing::warn!(%error, "blob vanished after it was claimed");
                return failed(FailureReason::NotFound);
            }
        };

        self.publish_to_subscribers(upload, FileStatus::Uploading { bytes: 0, total })
            .await;
        let reporter = self.spawn_upload_reporter(Arc::clone(upload));
        let outcome = transfer::put_verified(
            &self.http,
            &presigned,
            reader,
            upload.sha1,
            total,
            Arc::clone(&upload.meter),
        )
        .await;
        reporter.abort();

        match outcome {
            UploadOutcome::Stored => {
                tracing::debug!(total, "uploaded");
                self.store.touch(&upload.sha1).await;
                FileStatus::Uploaded
            }
            UploadOutcome::LocalCorrupt => {
                let owner = blob_of_location(&upload.location);
                tracing::error!(owner = ?owner, "stored blob is corrupt on disk, removing it");
                if let Some(owner) = owner
                    && let Err(error) = self.store.remove(&owner).await
                {
                    tracing::error!(%error, "could not remove the corrupt blob");
                }
                failed(FailureReason::LocalCorrupt)
            }
            UploadOutcome::Failed(detail) => {
                tracing::warn!(%detail, "upload failed");
                failed(FailureReason::UploadFailed)
            }
        }
    }

    fn spawn_upload_reporter(
        self: &Arc<Self>,
        upload: Arc<SharedUpload>,
    ) -> tokio::task::AbortHandle {
        let exchange = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PROGRESS_EVERY);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let bytes = upload.meter.bytes.load(Ordering::Relaxed);
                let status = FileStatus::Uploading {
                    bytes,
                    total: upload.location.len(),
                };
                exchange.publish_to_subscribers(&upload, status).await;
            }
        });
        task.abort_handle()
    }

    async fn publish_to_subscribers(&self, upload: &SharedUpload, status: FileStatus) {
        let subscribers = upload
            .subscribers
            .lock()
            .expect("subscriber lock is never poisoned")
            .clone();
        for (request_id, file_key) in subscribers {
            self.publish_status(&upload.channel, request_id, &file_key, status.clone())
                .await;
        }
    }
}

/// The byte range of a stored file, ready to read.
async fn open_location(
    location: &BlobLocation,
) -> std::io::Result<tokio::io::Take<tokio::fs::File>> {
    let mut file = tokio::fs::File::open(&location.path).await?;
    file.seek(SeekFrom::Start(location.start)).await?;
    Ok(file.take(location.len()))
}

/// The whole blob a location lies in: store files are named by their SHA-1.
fn blob_of_location(location: &BlobLocation) -> Option<Sha1Hash> {
    let name = location.path.file_name()?.to_str()?;
    Sha1Hash::parse(name).ok()
}

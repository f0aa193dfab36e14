//! Task results in a channel's bucket (SPEC §7.1, §17): a payload blob under `sha1/`
//! and a signed record under `task_results/<pathify(taskHash)>`.
//!
//! Readers trust nothing they fetch: a record must parse, name the expected task and
//! carry a valid `task-result` signature by the provider it names; a payload must hash to
//! the record's `resultSha1` and have its size (the store keeps only bytes that do). A
//! record or payload that fails is reported to the hub (SPEC §7.5) and not used.
// FIXME: any provideTasks member's signed record is accepted; a per-channel list of
// trusted result providers (a SHOULD of SPEC §17) matters once channels mix labs.

use futures_util::TryStreamExt;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::UploadItem;
use kachery_protocol::task::{
    MAX_RESULT_BYTES, RESULT_RECORD_KIND, SignedTaskResult, TaskResultRecord,
};
use kachery_protocol::{ChannelName, Sha1Hash};
use kachery_store::IngestError;

use crate::TaskExchange;
use crate::bucket;
use crate::provider::Call;

/// Largest result record read or written: 4 KiB (SPEC §21).
const MAX_RECORD_BYTES: u64 = 4 * 1024;

/// What a look in one channel's cache found.
pub(crate) enum CacheRead {
    /// A verified record whose payload is now in the local store.
    Hit(TaskResultRecord),
    Missing,
    /// The record or payload failed verification; it was reported, nothing was kept.
    Corrupt(String),
}

/// Why a payload could not be brought into the local store.
pub(crate) enum PayloadError {
    Missing,
    Corrupt(String),
    Unavailable(String),
}

impl TaskExchange {
    /// Looks for a verified result of `task_hash` in `channel`'s bucket; on a hit the
    /// payload is in the local store afterwards.
    pub(crate) async fn read_cached(
        &self,
        channel: &ChannelName,
        task_hash: &Sha1Hash,
    ) -> CacheRead {
        let key = BucketKey::task_result(channel, task_hash);
        let bytes = match self.get_small(channel, &key).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return CacheRead::Missing,
            Err(detail) => {
                tracing::debug!(channel = %channel, %detail, "result record unreadable");
                return CacheRead::Missing;
            }
        };

        let verified =
            SignedTaskResult::from_bytes(&bytes).and_then(|record| record.verify(task_hash));
        let record = match verified {
            Ok(record) => record,
            Err(error) => {
                let detail =
                    format!("the result record in channel {channel} was rejected: {error}");
                tracing::warn!(channel = %channel, %error, "result record failed verification");
                self.report_corrupt(channel, key).await;
                return CacheRead::Corrupt(detail);
            }
        };

        match self
            .fetch_payload(channel, &record.result_sha1, record.result_size)
            .await
        {
            Ok(()) => CacheRead::Hit(record),
            Err(PayloadError::Corrupt(detail)) => CacheRead::Corrupt(detail),
            Err(PayloadError::Missing) => CacheRead::Missing,
            Err(PayloadError::Unavailable(detail)) => {
                tracing::debug!(channel = %channel, %detail, "cached payload unreadable");
                CacheRead::Missing
            }
        }
    }

    /// Brings payload `sha1` of `size` bytes into the local store from `channel`'s
    /// bucket, unless it is already there.
    pub(crate) async fn fetch_payload(
        &self,
        channel: &ChannelName,
        sha1: &Sha1Hash,
        size: u64,
    ) -> Result<(), PayloadError> {
        if let Ok(Some(held)) = self.store.blob_size(sha1).await
            && held == size
        {
            return Ok(());
        }
        if size > MAX_RESULT_BYTES {
            return Err(PayloadError::Corrupt(format!(
                "the record names a {size}-byte payload; results are at most {MAX_RESULT_BYTES}"
            )));
        }

        let key = BucketKey::blob(channel, sha1);
        let urls = self
            .network
            .download_urls(channel, vec![key.clone()])
            .await
            .map_err(|error| PayloadError::Unavailable(error.to_string()))?;
        let get = &urls
            .first()
            .ok_or_else(|| PayloadError::Unavailable("the hub sent no download url".into()))?
            .get;
        let response = match bucket::get_stream(&self.http, get).await {
            Ok(Some(response)) => response,
            Ok(None) => return Err(PayloadError::Missing),
            Err(detail) => return Err(PayloadError::Unavailable(detail)),
        };

        let body = response.bytes_stream().map_err(std::io::Error::other);
        let reader = tokio_util_reader(body);
        match self.store.put_verified(*sha1, Some(size), reader).await {
            Ok(_) => Ok(()),
            Err(error @ (IngestError::HashMismatch { .. } | IngestError::SizeMismatch { .. })) => {
                let detail =
                    format!("the payload {sha1} in channel {channel} was rejected: {error}");
                tracing::warn!(channel = %channel, %error, "task payload failed verification");
                self.report_corrupt(channel, key).await;
                Err(PayloadError::Corrupt(detail))
            }
            Err(error) => Err(PayloadError::Unavailable(error.to_string())),
        }
    }

    /// Uploads the payload (from the local store) and a freshly signed record to
    /// `channel`'s bucket.
    pub(crate) async fn write_result(
        &self,
        channel: &ChannelName,
        call: &Call,
        sha1: Sha1Hash,
        size: u64,
    ) -> Result<(), String> {
        let payload = self
            .store
            .read_small(&sha1, MAX_RESULT_BYTES)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("payload {sha1} is no longer in the local store"))?;

        let record = TaskResultRecord {
            kind: RESULT_RECORD_KIND.to_owned(),
            task_hash: call.task_hash,
            function_id: call.function_id.clone(),
            result_sha1: sha1,
            result_size: size,
            provider_node_id: self.node_id,
            timestamp: crate::now_ms(),
        };
        let sealed = SignedTaskResult::seal(&self.signing_key, &record);
        let record_bytes = serde_json::to_vec(&sealed).expect("a sealed record serializes");

        let items = vec![
            UploadItem::TaskPayload { sha1, size },
            UploadItem::TaskResult {
                task_hash: call.task_hash,
                size: record_bytes.len() as u64,
            },
        ];
        let uploads = self
            .network
            .upload_urls(channel, items)
            .await
            .map_err(|error| error.to_string())?;
        let [payload_put, record_put] = uploads.as_slice() else {
            return Err(format!(
                "the hub answered {} upload urls for 2 items",
                uploads.len()
            ));
        };
        // Payload first: a record must never name a payload readers cannot find.
        bucket::put(&self.http, payload_put, payload.into()).await?;
        bucket::put(&self.http, record_put, record_bytes.into()).await?;
        tracing::debug!(channel = %channel, task = %crate::short(&call.task_hash), "task result stored");
        Ok(())
    }

    async fn get_small(
        &self,
        channel: &ChannelName,
        key: &BucketKey,
    ) -> Result<Option<bytes::Bytes>, String> {
        let urls = self
            .network
            .download_urls(channel, vec![key.clone()])
            .await
            .map_err(|error| error.to_string())?;
        let get = &urls.first().ok_or("the hub sent no download url")?.get;
        bucket::get_small(&self.http, get, MAX_RECORD_BYTES).await
    }

    async fn report_corrupt(&self, channel: &ChannelName, key: BucketKey) {
        match self.network.report_corrupt(channel, key.clone()).await {
            Ok(deleted) => tracing::debug!(key = %key, deleted, "corrupt task object reported"),
            Err(error) => {
                tracing::debug!(key = %key, %error, "could not report a corrupt task object")
            }
        }
    }
}

/// A stream of byte pieces as an `AsyncRead`.
fn tokio_util_reader(
    body: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin,
) -> impl tokio::io::AsyncRead + Send + Unpin {
    tokio_util::io::StreamReader::new(body)
}

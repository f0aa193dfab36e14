//! Reading objects from channel buckets for the requester: probing every candidate
//! channel for a copy (SPEC §15.2 step 2), downloading with verification into the
//! object's destination, and reporting objects that fail verification (§7.5).

use futures_util::StreamExt;
use kachery_protocol::ChannelName;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;

use crate::FileExchange;
use crate::error::LoadError;
use crate::requester::{Destination, Fetched, ObjectRequest};
use crate::transfer::{self, DownloadError};

/// What the probe step found.
pub(crate) enum BucketCopy {
    Fetched(Fetched),
    /// No channel's bucket has it (or none could be read).
    Missing,
    /// A copy failed verification; it was reported and nothing was kept.
    Corrupt,
}

impl FileExchange {
    /// Step 2: probes every candidate channel and downloads the first copy found.
    pub(crate) async fn try_bucket_copy(
        &self,
        request: &ObjectRequest<'_>,
    ) -> Result<BucketCopy, LoadError> {
        let sha1 = request.key.sha1;
        let probes = futures_util::stream::iter(request.candidates.probe.iter().cloned())
            .map(|channel| async move {
                let key = BucketKey::blob(&channel, &sha1);
                let urls = match self.download_urls.request(&channel, key).await {
                    Ok(urls) => urls,
                    Err(error) => {
                        tracing::debug!(channel = %channel, %error, "no download url for probe");
                        return None;
                    }
                };
                match transfer::head(&self.http, &urls.head).await {
                    Ok(Some(_size)) => Some((channel, urls.get)),
                    Ok(None) => None,
                    Err(error) => {
                        tracing::debug!(channel = %channel, %error, "probe failed");
                        None
                    }
                }
            })
            .buffered(self.options.probe_concurrency);
        let Some((channel, get)) = probes.filter_map(std::future::ready).next().await else {
            return Ok(BucketCopy::Missing);
        };

        tracing::debug!(channel = %channel, "bucket copy found");
        match self.download(request, &get).await {
            Ok(fetched) => Ok(BucketCopy::Fetched(fetched)),
            Err(DownloadError::Corrupt(detail)) => {
                self.report_corrupt(&channel, request, &detail).await;
                Ok(BucketCopy::Corrupt)
            }
            Err(DownloadError::Transport(detail)) => {
                tracing::debug!(channel = %channel, %detail, "bucket copy unreadable, asking providers");
                Ok(BucketCopy::Missing)
            }
            Err(DownloadError::Store(error)) => Err(error),
        }
    }

    /// Downloads the object a provider just reported `uploaded` on `channel`.
    pub(crate) async fn download_uploaded(
        &self,
        request: &ObjectRequest<'_>,
        channel: &ChannelName,
    ) -> Result<Fetched, DownloadError> {
        let key = BucketKey::blob(channel, &request.key.sha1);
        let urls = self
            .download_urls
            .request(channel, key)
            .await
            .map_err(|error| DownloadError::Transport(format!("no download url: {error}")))?;
        self.download(request, &urls.get).await
    }

    async fn download(
        &self,
        request: &ObjectRequest<'_>,
        get: &PresignedRequest,
    ) -> Result<Fetched, DownloadError> {
        let sha1 = &request.key.sha1;
        match request.destination {
            Destination::Store { expected_size } => {
                transfer::get_verified_into_store(
                    &self.http,
                    get,
                    &self.store,
                    sha1,
                    expected_size,
                    request.meter,
                )
                .await?;
                Ok(Fetched::Stored)
            }
            Destination::Memory { size } => {
                transfer::get_verified_bytes(&self.http, get, sha1, size, request.meter)
                    .await
                    .map(Fetched::Bytes)
            }
        }
    }

    /// SPEC §7.5: tell the hub, which checks the object and deletes it if it is corrupt.
    pub(crate) async fn report_corrupt(
        &self,
        channel: &ChannelName,
        request: &ObjectRequest<'_>,
        detail: &str,
    ) {
        tracing::warn!(channel = %channel, %detail, "bucket object failed verification, reporting it");
        let key = BucketKey::blob(channel, &request.key.sha1);
        match self.network.report_corrupt(channel, key).await {
            Ok(deleted) => tracing::debug!(channel = %channel, deleted, "corrupt object reported"),
            Err(error) => {
                tracing::warn!(channel = %channel, %error, "could not report corrupt object")
            }
        }
    }
}

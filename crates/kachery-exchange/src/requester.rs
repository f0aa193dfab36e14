//! Fetching one object (a small file, a manifest or one chunk) through a channel's
//! bucket, as SPEC §15.2 steps 2–7 describe.
//!
//! First every candidate channel is probed for a bucket copy (see `bucket_read`); a hit
//! is downloaded and verified. Otherwise a `requestFile` goes out on every channel where
//! this node may ask, and the [`Arbiter`] decides which claim to accept, when a provider
//! counts as failed or stalled, and when to give up. Bytes that fail verification are reported to the hub
//! (which deletes a truly corrupt object) and the request is repeated once.

use std::sync::Arc;

use bytes::Bytes;
use kachery_protocol::pubsub::{FailureReason, FileKey, FileStatus, PubsubMessage, RequestId};
use kachery_protocol::{ChannelName, FileUri, Nonce, Role};
use tokio::time::Instant;
use tracing::Instrument;

use crate::FileExchange;
use crate::arbiter::{Action, Arbiter, Claim, GiveUp, Signal};
use crate::bucket_read::BucketCopy;
use crate::error::LoadError;
use crate::progress::TransferMeter;
use crate::transfer::DownloadError;

/// The channels one load may use, fixed when it starts.
#[derive(Debug, Clone)]
pub(crate) struct Candidates {
    /// Channels with any effective role, in preference order: probed for bucket copies.
    pub probe: Vec<ChannelName>,
    /// The subset where this node holds requestFiles and the link is up.
    pub request: Vec<ChannelName>,
    /// Channels with requestFiles whose link is down right now.
    pub request_link_down: Vec<ChannelName>,
}

/// Where the verified bytes of an object go.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Destination {
    /// Into the store as a blob; the size is checked when known.
    Store { expected_size: Option<u64> },
    /// Into memory, for a chunk of known size on its way into a partial file.
    Memory { size: u64 },
}

/// A fetched object.
#[derive(Debug)]
pub(crate) enum Fetched {
    Stored,
    Bytes(Bytes),
    /// A provider holds the file whole; it travels as the chunks of this manifest.
    NeedsManifest(kachery_protocol::Sha1Hash),
}

/// One object to fetch.
pub(crate) struct ObjectRequest<'a> {
    /// The URI being loaded, named in errors.
    pub uri: &'a FileUri,
    pub key: FileKey,
    pub destination: Destination,
    pub candidates: &'a Candidates,
    pub meter: &'a Arc<TransferMeter>,
}

impl FileExchange {
    /// Fetches one object into its destination (SPEC §15.2 steps 2–7).
    pub(crate) async fn fetch_object(
        &self,
        request: ObjectRequest<'_>,
    ) -> Result<Fetched, LoadError> {
        let span = tracing::debug_span!(
            "fetch",
            sha1 = %crate::short(&request.key.sha1),
            chunk_of = request.key.chunk_of.map(|c| crate::short(&c.sha1)),
        );
        async {
            let n_corrupt = match self.try_bucket_copy(&request).await? {
                BucketCopy::Fetched(fetched) => return Ok(fetched),
                BucketCopy::Missing => 0,
                BucketCopy::Corrupt => 1,
            };
            self.fetch_via_providers(&request, n_corrupt).await
        }
        .instrument(span)
        .await
    }

    /// Steps 3–7: request, arbitrate claims, download what the chosen provider uploads.
    async fn fetch_via_providers(
        &self,
        request: &ObjectRequest<'_>,
        mut n_corrupt: u32,
    ) -> Result<Fetched, LoadError> {
        let candidates = request.candidates;
        if candidates.request.is_empty() {
            return Err(no_request_channel(candidates));
        }

        let mut subscription = self.status_router.subscribe();
        let accepts_manifest = request.key.chunk_of.is_none()
            && matches!(request.destination, Destination::Store { .. });
        let mut arbiter = Arbiter::new(&self.options, Instant::now());
        let mut action = Action::Rerequest;
        loop {
            action = match action {
                Action::Wait => tokio::select! {
                    event = subscription.next() => {
                        if event.file_key.sha1 != request.key.sha1 {
                            Action::Wait
                        } else {
                            if let FileStatus::Uploading { total, .. } = event.status {
                                request.meter.set_total_if_unknown(total);
                            }
                            if let FileStatus::Failed {
                                reason: FailureReason::NeedsManifest,
                                manifest_sha1: Some(manifest_sha1),
                            } = event.status
                                && accepts_manifest
                            {
                                return Ok(Fetched::NeedsManifest(manifest_sha1));
                            }
                            let claim = Claim {
                                request_id: event.request_id,
                                channel: event.channel,
                                provider: event.provider,
                            };
                            arbiter.on_signal(claim, signal_of(event.status), Instant::now())
                        }
                    }
                    () = tokio::time::sleep_until(arbiter.deadline()) => {
                        arbiter.on_deadline(Instant::now())
                    }
                },
                Action::Rerequest => {
                    if let Err(give_up) = arbiter.start_round(Instant::now()) {
                        return Err(self.give_up_error(request, give_up, n_corrupt));
                    }
                    let request_id = new_request_id();
                    subscription.add(request_id);
                    self.publish_request(request, request_id, arbiter.excluded())
                        .await?;
                    Action::Wait
                }
                Action::Accept(claim) => {
                    tracing::debug!(
                        channel = %claim.channel,
                        provider = %claim.provider.short(),
                        request_id = %claim.request_id,
                        "accepting claim"
                    );
                    request.meter.add_peer(claim.provider);
                    let message = PubsubMessage::AcceptClaim {
                        request_id: claim.request_id,
                        provider: claim.provider,
                        task_hash: None,
                    };
                    match self.network.publish(&claim.channel, message).await {
                        Ok(()) => Action::Wait,
                        Err(error) => arbiter.on_provider_failed(
                            format!("could not accept claim on {}: {error}", claim.channel),
                            Instant::now(),
                        ),
                    }
                }
                Action::Completed(claim) => {
                    match self.download_uploaded(request, &claim.channel).await {
                        Ok(fetched) => return Ok(fetched),
                        Err(DownloadError::Corrupt(detail)) => {
                            self.report_corrupt(&claim.channel, request, &detail).await;
                            n_corrupt += 1;
                            if n_corrupt >= 2 {
                                return Err(LoadError::Integrity {
                                    uri: request.uri.clone(),
                                    detail: format!(
                                        "{} from channel {} failed verification twice: {detail}",
                                        describe(&request.key),
                                        claim.channel
                                    ),
                                });
                            }
                            Action::Rerequest
                        }
                        Err(DownloadError::Transport(detail)) => {
                            arbiter.on_provider_failed(detail, Instant::now())
                        }
                        Err(DownloadError::Store(error)) => return Err(error),
                    }
                }
                Action::GiveUp(give_up) => {
                    return Err(self.give_up_error(request, give_up, n_corrupt));
                }
            };
        }
    }

    async fn publish_request(
        &self,
        request: &ObjectRequest<'_>,
        request_id: RequestId,
        excluded: &[kachery_protocol::NodeId],
    ) -> Result<(), LoadError> {
        let mut n_published = 0;
        let mut last_error = None;
        for channel in &request.candidates.request {
            let message = PubsubMessage::RequestFile {
                request_id,
                file_key: request.key.clone(),
                exclude: excluded.to_vec(),
            };
            match self.network.publish(channel, message).await {
                Ok(()) => n_published += 1,
                Err(error) => {
                    tracing::warn!(channel = %channel, %error, "could not publish file request");
                    last_error = Some(format!("{channel}: {error}"));
                }
            }
        }
        tracing::debug!(request_id = %request_id, n_published, "file requested");
        if n_published == 0 {
            return Err(LoadError::Unavailable {
                detail: format!(
                    "could not publish the request on any channel ({})",
                    last_error.unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// The error for a fetch that ran out of providers. When the only copy seen was
    /// corrupt, that is the news: the user learns the bytes exist but failed verification.
    fn give_up_error(
        &self,
        request: &ObjectRequest<'_>,
        give_up: GiveUp,
        n_corrupt: u32,
    ) -> LoadError {
        match give_up {
            GiveUp::NoClaim if n_corrupt > 0 => LoadError::Integrity {
                uri: request.uri.clone(),
                detail: format!(
                    "the bucket copy of {} failed verification (hash mismatch) and was \
                     reported; no provider on channel(s) {} offered a good copy",
                    describe(&request.key),
                    channel_list(&request.candidates.request)
                ),
            },
            GiveUp::NoClaim => LoadError::NotFound {
                uri: request.uri.clone(),
                channels_tried: request.candidates.request.clone(),
            },
            GiveUp::Exhausted {
                attempts,
                last_failure,
            } => LoadError::Timeout {
                uri: request.uri.clone(),
                attempts,
                detail: format!("{}: {last_failure}", describe(&request.key)),
            },
        }
    }
}

/// What a `fileStatus` means to arbitration. A `needs_manifest` that reaches here had no
/// usable manifest (or came for a chunk), so it counts as a failure.
fn signal_of(status: FileStatus) -> Signal {
    match status {
        FileStatus::Claimed => Signal::Claimed,
        FileStatus::Uploading { .. } => Signal::Progress,
        FileStatus::Uploaded => Signal::Completed,
        FileStatus::Failed {
            reason: FailureReason::NeedsManifest,
            ..
        } => Signal::Failed("needs_manifest without a usable manifest".to_owned()),
        FileStatus::Failed { reason, .. } => Signal::Failed(
            serde_json::to_value(reason)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_else(|| "failed".to_owned()),
        ),
    }
}

/// Why no `requestFile` can be sent: no role (denied) or no live link (unavailable).
fn no_request_channel(candidates: &Candidates) -> LoadError {
    if candidates.request_link_down.is_empty() {
        LoadError::Denied {
            missing_role: Role::RequestFiles,
            channels: candidates.probe.clone(),
        }
    } else {
        let names: Vec<&str> = candidates
            .request_link_down
            .iter()
            .map(ChannelName::as_str)
            .collect();
        LoadError::Unavailable {
            detail: format!("no live pub-sub link on channel(s) {}", names.join(", ")),
        }
    }
}

fn channel_list(channels: &[ChannelName]) -> String {
    let names: Vec<&str> = channels.iter().map(ChannelName::as_str).collect();
    names.join(", ")
}

/// "chunk <sha1> (bytes a..b of <whole>)" or "blob <sha1>", for error details.
fn describe(key: &FileKey) -> String {
    match &key.chunk_of {
        Some(chunk_of) => format!(
            "chunk {} (bytes {}..{} of {})",
            key.sha1, chunk_of.start, chunk_of.end, chunk_of.sha1
        ),
        None => format!("blob {}", key.sha1),
    }
}

fn new_request_id() -> RequestId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    Nonce::from_bytes(bytes)
}

//! Loading a file larger than one chunk: its manifest, then its chunks (SPEC §14.2, §15.4).
//!
//! The manifest is fetched like any blob and must parse canonically and describe the
//! requested file. Chunks still missing from the store's [`Partial`] are then fetched with
//! up to `parallel_chunks` at once, each verified in memory and handed to
//! [`Partial::write_chunk`], which records it durably; a killed load therefore resumes from
//! the chunks already written. A chunk the store holds as part of another file is copied
//! locally instead of downloaded. [`Partial::finish`] checks the whole-file SHA-1.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use kachery_protocol::pubsub::{ChunkOf, FileKey};
use kachery_protocol::{FileUri, Manifest, ManifestChunk, Sha1Hash};
use kachery_store::{Partial, PartialError, ReadError};
use tokio::io::AsyncReadExt;

use crate::FileExchange;
use crate::error::LoadError;
use crate::progress::TransferMeter;
use crate::requester::{Candidates, Destination, Fetched, ObjectRequest};

impl FileExchange {
    /// Fetches the file of `uri` described by manifest `manifest_sha1` into the store and
    /// returns the path of the complete blob.
    pub(crate) async fn load_chunked(
        &self,
        uri: &FileUri,
        manifest_sha1: Sha1Hash,
        candidates: &Candidates,
        meter: &Arc<TransferMeter>,
    ) -> Result<PathBuf, LoadError> {
        let manifest = self
            .obtain_manifest(uri, manifest_sha1, candidates, meter)
            .await?;
        let partial = match self.store.partial(&manifest, manifest_sha1).await {
            Ok(partial) => partial,
            // Another load finished the same file meanwhile.
            Err(PartialError::AlreadyComplete { sha1 }) => return Ok(self.store.blob_path(&sha1)),
            Err(error) => return Err(LoadError::store("start assembling a download", error)),
        };

        let missing = partial.missing_chunks();
        let n_chunks = manifest.chunks.len();
        let present_bytes: u64 = (0..n_chunks)
            .filter(|idx| !missing.contains(idx))
            .map(|idx| manifest.chunks[idx].len())
            .sum();
        meter.total.store(manifest.size, Ordering::Relaxed);
        meter.chunks_total.store(n_chunks as u64, Ordering::Relaxed);
        meter
            .chunks_done
            .store((n_chunks - missing.len()) as u64, Ordering::Relaxed);
        meter.bytes.store(present_bytes, Ordering::Relaxed);
        tracing::info!(
            n_chunks,
            n_missing = missing.len(),
            size = manifest.size,
            "fetching chunks"
        );

        // FIXME: each chunk in flight is held in memory until written (20 MB per chunk, up
        // to parallel_chunks of them); matters near the 32-chunk maximum on small hosts.
        futures_util::stream::iter(missing)
            .map(|idx| self.fetch_chunk(uri, &partial, idx, candidates, meter))
            .buffer_unordered(self.options.parallel_chunks)
            .try_collect::<()>()
            .await?;

        partial.finish().await.map_err(|error| match error {
            PartialError::WholeMismatch { .. } => LoadError::Integrity {
                uri: uri.clone(),
                detail: format!("the assembled file does not match: {error}"),
            },
            error => LoadError::store("finish the download", error),
        })
    }

    /// The manifest from the store, or fetched into it; checked to describe `uri`.
    async fn obtain_manifest(
        &self,
        uri: &FileUri,
        manifest_sha1: Sha1Hash,
        candidates: &Candidates,
        meter: &Arc<TransferMeter>,
    ) -> Result<Manifest, LoadError> {
        if self
            .store
            .blob_size(&manifest_sha1)
            .await
            .map_err(read_error)?
            .is_none()
        {
            let request = ObjectRequest {
                uri,
                key: FileKey {
                    sha1: manifest_sha1,
                    manifest_sha1: None,
                    chunk_of: None,
                },
                destination: Destination::Store {
                    expected_size: None,
                },
                candidates,
                meter,
            };
            match self.fetch_object(request).await? {
                Fetched::Stored => {}
                Fetched::Bytes(_) | Fetched::NeedsManifest(_) => {
                    return Err(LoadError::Integrity {
                        uri: uri.clone(),
                        detail: format!("manifest {manifest_sha1} is announced as a chunked file"),
                    });
                }
            }
        }

        let manifest = match self.store.manifest(&manifest_sha1).await {
            Ok(Some(manifest)) => manifest,
            Ok(None) => {
                return Err(LoadError::Unavailable {
                    detail: format!("manifest {manifest_sha1} vanished from the store"),
                });
            }
            Err(ReadError::BadManifest { source, .. }) => {
                // The bytes hash correctly, so they were published this way: useless here.
                let _ = self.store.remove(&manifest_sha1).await;
                return Err(LoadError::Integrity {
                    uri: uri.clone(),
                    detail: format!("manifest {manifest_sha1} is invalid: {source}"),
                });
            }
            Err(error) => return Err(read_error(error)),
        };
        if manifest.sha1 != uri.sha1 {
            return Err(LoadError::Integrity {
                uri: uri.clone(),
                detail: format!(
                    "manifest {manifest_sha1} describes file {}, not this one",
                    manifest.sha1
                ),
            });
        }
        Ok(manifest)
    }

    /// Fetches chunk `idx` (locally when possible) and writes it into `partial`.
    async fn fetch_chunk(
        &self,
        uri: &FileUri,
        partial: &Partial,
        idx: usize,
        candidates: &Candidates,
        meter: &Arc<TransferMeter>,
    ) -> Result<(), LoadError> {
        let manifest = partial.manifest();
        let chunk = manifest.chunks[idx];

        let bytes = match self.read_local_chunk(&chunk).await {
            Some(bytes) => {
                meter.bytes.fetch_add(chunk.len(), Ordering::Relaxed);
                bytes
            }
            None => {
                let request = ObjectRequest {
                    uri,
                    key: FileKey {
                        sha1: chunk.sha1,
                        manifest_sha1: None,
                        chunk_of: Some(ChunkOf {
                            sha1: manifest.sha1,
                            start: chunk.start,
                            end: chunk.end,
                        }),
                    },
                    destination: Destination::Memory { size: chunk.len() },
                    candidates,
                    meter,
                };
                match self.fetch_object(request).await? {
                    Fetched::Bytes(bytes) => bytes,
                    Fetched::Stored | Fetched::NeedsManifest(_) => {
                        unreachable!("chunk fetches deliver bytes into memory")
                    }
                }
            }
        };

        partial
            .write_chunk(idx, &bytes)
            .await
            .map_err(|error| match error {
                PartialError::ChunkMismatch { .. } | PartialError::ChunkSize { .. } => {
                    LoadError::Integrity {
                        uri: uri.clone(),
                        detail: error.to_string(),
                    }
                }
                error => LoadError::store("write a downloaded chunk", error),
            })?;
        meter.chunks_done.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(idx, sha1 = %crate::short(&chunk.sha1), "chunk done");
        Ok(())
    }

    /// The chunk's bytes when the store holds them as part of some other file; `None`
    /// otherwise or on any error (the network is the fallback).
    async fn read_local_chunk(&self, chunk: &ManifestChunk) -> Option<Bytes> {
        let (file, len) = self.store.open_range(&chunk.sha1).await.ok()??;
        if len != chunk.len() {
            return None;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
        file.take(len).read_to_end(&mut bytes).await.ok()?;
        (Sha1Hash::of(&bytes) == chunk.sha1).then(|| Bytes::from(bytes))
    }
}

fn read_error(error: ReadError) -> LoadError {
    LoadError::store("read the store index", error)
}

//! Finding and reading blobs and chunks, and per-blob bookkeeping (SPEC §14.3, §14.4).
//!
//! The files under `sha1/` are the truth for whole blobs: a blob is present when its file
//! is. Chunks are found through the index as byte ranges of a present whole blob.

use std::io::{self, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use kachery_protocol::manifest::chunk_ranges;
use kachery_protocol::{CHUNK_SIZE, Manifest, Sha1Hash};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::ReadError;
use crate::hashing::sha1_of;
use crate::index;
use crate::{BlobLocation, Store, StoreUsage};

/// `last_access_at` of a blob is written at most this often.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Past this many remembered touches, entries older than [`TOUCH_INTERVAL`] are dropped.
const TOUCH_MEMORY_PRUNE_AT: usize = 10_000;

impl Store {
    /// Size of the complete blob `sha1`, or `None` when it is not stored.
    pub async fn blob_size(&self, sha1: &Sha1Hash) -> Result<Option<u64>, ReadError> {
        file_size(&self.blob_path(sha1)).await
    }

    /// Where the bytes of `sha1` can be read: its own blob, or the range of a whole blob
    /// holding it as a chunk. `None` when the store has neither.
    pub async fn locate(&self, sha1: &Sha1Hash) -> Result<Option<BlobLocation>, ReadError> {
        let path = self.blob_path(sha1);
        if let Some(size) = file_size(&path).await? {
            return Ok(Some(BlobLocation {
                path,
                start: 0,
                end: size,
            }));
        }

        for chunk in index::chunk_locations(self.pool(), sha1).await? {
            let path = self.blob_path(&chunk.whole_sha1);
            if file_size(&path)
                .await?
                .is_some_and(|size| size >= chunk.end)
            {
                return Ok(Some(BlobLocation {
                    path,
                    start: chunk.start,
                    end: chunk.end,
                }));
            }
        }
        Ok(None)
    }

    /// Opens the bytes of `sha1` for reading: a file positioned at their start and their
    /// length (read no further than that). `None` when the store does not have them.
    pub async fn open_range(
        &self,
        sha1: &Sha1Hash,
    ) -> Result<Option<(tokio::fs::File, u64)>, ReadError> {
        let Some(location) = self.locate(sha1).await? else {
            return Ok(None);
        };
        let io_error = |source| ReadError::Io {
            path: location.path.clone(),
            source,
        };

        let mut file = match tokio::fs::File::open(&location.path).await {
            Ok(file) => file,
            // Evicted or removed since `locate` looked.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(err)),
        };
        file.seek(SeekFrom::Start(location.start))
            .await
            .map_err(io_error)?;
        Ok(Some((file, location.len())))
    }

    /// Reads the whole of a small blob or chunk (a manifest, say). `None` when absent or
    /// larger than `max` bytes.
    pub async fn read_small(
        &self,
        sha1: &Sha1Hash,
        max: u64,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(location) = self.locate(sha1).await? else {
            return Ok(None);
        };
        if location.len() > max {
            tracing::debug!(%sha1, size = location.len(), max, "blob too large to read whole");
            return Ok(None);
        }
        let Some((file, len)) = self.open_range(sha1).await? else {
            return Ok(None);
        };

        let mut bytes = Vec::with_capacity(usize::try_from(len).expect("max fits in memory"));
        file.take(len)
            .read_to_end(&mut bytes)
            .await
            .map_err(|source| ReadError::Io {
                path: location.path,
                source,
            })?;
        Ok(Some(bytes))
    }

    /// The stored manifest blob `manifest_sha1`, parsed and checked to be canonical.
    pub async fn manifest(&self, manifest_sha1: &Sha1Hash) -> Result<Option<Manifest>, ReadError> {
        let Some(bytes) = self.read_small(manifest_sha1, CHUNK_SIZE).await? else {
            return Ok(None);
        };
        Manifest::parse_canonical(&bytes)
            .map(Some)
            .map_err(|source| ReadError::BadManifest {
                sha1: *manifest_sha1,
                source,
            })
    }

    /// The manifest hash of a stored multi-chunk file, rebuilt from the chunk index. The
    /// manifest blob is stored again if it was evicted, so the hash can always be served.
    /// `None` when the file is absent, fits in one chunk, or its chunks are not indexed.
    pub async fn manifest_of(&self, whole_sha1: &Sha1Hash) -> Result<Option<Sha1Hash>, ReadError> {
        let Some(size) = self.blob_size(whole_sha1).await? else {
            return Ok(None);
        };
        let chunks = index::chunks_of(self.pool(), whole_sha1).await?;
        let complete = chunks.len() as u64 == size.div_ceil(CHUNK_SIZE)
            && chunks
                .iter()
                .zip(chunk_ranges(size))
                .all(|(c, (start, end))| c.start == start && c.end == end);
        if size <= CHUNK_SIZE || !complete {
            return Ok(None);
        }

        let manifest = Manifest {
            size,
            sha1: *whole_sha1,
            chunks,
        };
        let manifest_sha1 = sha1_of(&manifest.to_bytes());
        if self.blob_size(&manifest_sha1).await?.is_none() {
            tracing::debug!(sha1 = %whole_sha1, %manifest_sha1, "storing manifest again");
            self.store_manifest(&manifest, false)
                .await
                .map_err(|err| ReadError::StoreManifest(Box::new(err)))?;
        }
        Ok(Some(manifest_sha1))
    }

    /// Deletes the blob `sha1` (one found corrupt, say) and forgets its chunks. Returns
    /// whether there was a file to delete.
    pub async fn remove(&self, sha1: &Sha1Hash) -> Result<bool, ReadError> {
        let path = self.blob_path(sha1);
        let existed = match tokio::fs::remove_file(&path).await {
            Ok(()) => true,
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(source) => return Err(ReadError::Io { path, source }),
        };
        index::delete_blob(self.pool(), sha1).await?;
        tracing::info!(%sha1, existed, "blob removed");
        Ok(existed)
    }

    /// Pins or unpins a stored blob. Returns false when the index has no such blob.
    pub async fn set_pinned(&self, sha1: &Sha1Hash, pinned: bool) -> Result<bool, ReadError> {
        Ok(index::set_pinned(self.pool(), sha1, pinned).await?)
    }

    /// Marks `sha1` (a blob, or a chunk of one) as just used, for eviction order. Writes
    /// at most once a minute per hash; failures are logged, never returned.
    pub async fn touch(&self, sha1: &Sha1Hash) {
        let now = Instant::now();
        {
            let mut touched = self
                .inner
                .touched
                .lock()
                .expect("touch map is never poisoned");
            if touched
                .get(sha1)
                .is_some_and(|at| now.duration_since(*at) < TOUCH_INTERVAL)
            {
                return;
            }
            if touched.len() >= TOUCH_MEMORY_PRUNE_AT {
                touched.retain(|_, at| now.duration_since(*at) < TOUCH_INTERVAL);
            }
            touched.insert(*sha1, now);
        }

        if let Err(err) = index::touch(self.pool(), sha1).await {
            tracing::warn!(%sha1, error = %err, "failed to record blob access");
        }
    }

    /// Blob and partial counts and sizes, from the index.
    pub async fn usage(&self) -> Result<StoreUsage, ReadError> {
        let (blobs, bytes, partials, partial_bytes) = index::totals(self.pool()).await?;
        Ok(StoreUsage {
            blobs,
            bytes,
            partials,
            partial_bytes,
        })
    }
}

/// Length of the regular file at `path`, or `None` when there is none.
async fn file_size(path: &Path) -> Result<Option<u64>, ReadError> {
    match tokio::fs::metadata(path).await {
        Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReadError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

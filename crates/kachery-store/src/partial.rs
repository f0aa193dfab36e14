//! Assembling a downloaded multi-chunk file in `partial/<sha1>` (SPEC §14.3, §15.4).
//!
//! The partial file is created at its full size, and each chunk is verified against the
//! manifest, written at its offset, synced, and only then recorded in the index, so a
//! killed process resumes from exactly the chunks that are safely on disk. When every
//! chunk is there, [`Partial::finish`] checks the whole-file SHA-1 in one sequential pass
//! and renames the file into `sha1/`; it is the only blob not written through `tmp/`,
//! because copying a file of many gigabytes once more would double the disk traffic.
//!
//! FIXME: two processes assembling the same file at once would reset each other's
//! progress; only the daemon downloads today, so this cannot happen yet.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kachery_protocol::{Manifest, Sha1Hash};
use sha1::{Digest, Sha1};

use crate::Store;
use crate::error::PartialError;
use crate::hashing::{COPY_BUFFER_BYTES, sha1_of};
use crate::index::{self, BlobKind};
use crate::layout::{self, sync_dir};

/// A download being assembled. Clones share progress, so concurrent chunk downloads can
/// each hold one.
#[derive(Debug, Clone)]
pub struct Partial {
    inner: Arc<PartialInner>,
}

#[derive(Debug)]
struct PartialInner {
    store: Store,
    manifest: Manifest,
    manifest_sha1: Sha1Hash,
    path: PathBuf,
    done_chunks: Mutex<Vec<bool>>,
}

impl Store {
    /// Starts assembling the file described by `manifest`, or resumes an earlier attempt
    /// with the chunks it recorded. Fails with `ManifestMismatch` unless `manifest` hashes
    /// to `manifest_sha1`, and with `AlreadyComplete` when the file is already stored.
    pub async fn partial(
        &self,
        manifest: &Manifest,
        manifest_sha1: Sha1Hash,
    ) -> Result<Partial, PartialError> {
        let actual = sha1_of(&manifest.to_bytes());
        if actual != manifest_sha1 {
            return Err(PartialError::ManifestMismatch {
                expected: manifest_sha1,
                actual,
            });
        }
        let sha1 = manifest.sha1;
        if self.blob_path(&sha1).is_file() {
            return Err(PartialError::AlreadyComplete { sha1 });
        }

        let path = self.layout().partial_path(&sha1);
        let n_chunks = manifest.chunks.len();
        let file_size = tokio::fs::metadata(&path)
            .await
            .ok()
            .map(|metadata| metadata.len());
        let resumable = index::partial(self.pool(), &sha1).await?.filter(|row| {
            row.size == manifest.size
                && row.manifest_sha1 == manifest_sha1
                && row.done_chunks.len() == n_chunks
                && file_size == Some(manifest.size)
        });

        let done_chunks = match resumable {
            Some(row) => {
                let n_done = row.done_chunks.iter().filter(|done| **done).count();
                tracing::info!(%sha1, n_done, n_chunks, "resuming partial download");
                row.done_chunks
            }
            None => {
                self.create_partial_file(&path, manifest.size).await?;
                index::reset_partial(self.pool(), &sha1, manifest.size, &manifest_sha1, n_chunks)
                    .await?;
                tracing::debug!(%sha1, n_chunks, "started partial download");
                vec![false; n_chunks]
            }
        };

        Ok(Partial {
            inner: Arc::new(PartialInner {
                store: self.clone(),
                manifest: manifest.clone(),
                manifest_sha1,
                path,
                done_chunks: Mutex::new(done_chunks),
            }),
        })
    }

    /// Creates (or empties) a sparse file of `size` bytes and makes it durable.
    async fn create_partial_file(
        &self,
        path: &std::path::Path,
        size: u64,
    ) -> Result<(), PartialError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let create = || {
                let file = File::options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(crate::layout::PRIVATE_FILE_MODE)
                    .open(&path)?;
                file.set_len(size)?;
                file.sync_all()?;
                sync_dir(path.parent().expect("partial files live in partial/"))
            };
            create().map_err(|source| PartialError::Io {
                path: path.clone(),
                source,
            })
        })
        .await
        .expect("creating a partial file does not panic")
    }
}

impl Partial {
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    pub fn manifest_sha1(&self) -> Sha1Hash {
        self.inner.manifest_sha1
    }

    /// Indexes into `manifest().chunks` of the chunks not yet written.
    pub fn missing_chunks(&self) -> Vec<usize> {
        let done_chunks = self
            .inner
            .done_chunks
            .lock()
            .expect("chunk flags are never poisoned");
        (0..done_chunks.len())
            .filter(|idx| !done_chunks[*idx])
            .collect()
    }

    /// Verifies `bytes` against chunk `idx` of the manifest, writes them at the chunk's
    /// offset, syncs, and records the chunk as done. Wrong bytes are refused and nothing
    /// is written. Writing a chunk already done is a no-op.
    pub async fn write_chunk(&self, idx: usize, bytes: &[u8]) -> Result<(), PartialError> {
        let chunks = &self.inner.manifest.chunks;
        let chunk = *chunks.get(idx).ok_or(PartialError::NoSuchChunk {
            idx,
            n_chunks: chunks.len(),
        })?;
        if bytes.len() as u64 != chunk.len() {
            return Err(PartialError::ChunkSize {
                idx,
                expected: chunk.len(),
                actual: bytes.len() as u64,
            });
        }
        if !self.missing_chunks().contains(&idx) {
            return Ok(());
        }

        let path = self.inner.path.clone();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || {
            let actual = sha1_of(&bytes);
            if actual != chunk.sha1 {
                return Err(PartialError::ChunkMismatch {
                    idx,
                    expected: chunk.sha1,
                    actual,
                });
            }
            let write = || {
                let file = File::options().write(true).open(&path)?;
                file.write_all_at(&bytes, chunk.start)?;
                file.sync_data()
            };
            write().map_err(|source| PartialError::Io {
                path: path.clone(),
                source,
            })
        })
        .await
        .expect("writing a chunk does not panic")?;

        index::mark_chunk_done(self.inner.store.pool(), &self.inner.manifest.sha1, idx).await?;
        self.inner
            .done_chunks
            .lock()
            .expect("chunk flags are never poisoned")[idx] = true;
        tracing::trace!(sha1 = %self.inner.manifest.sha1, idx, "chunk written");
        Ok(())
    }

    /// Completes the download: checks the whole-file SHA-1 in one sequential pass, moves
    /// the file into `sha1/`, indexes its chunks, stores its manifest, and returns the blob
    /// path. On a whole-file mismatch the partial file is deleted. Costs one read of the
    /// file.
    pub async fn finish(self) -> Result<PathBuf, PartialError> {
        let store = &self.inner.store;
        let manifest = &self.inner.manifest;
        let sha1 = manifest.sha1;
        let n_missing = self.missing_chunks().len();
        if n_missing > 0 {
            return Err(PartialError::Incomplete { sha1, n_missing });
        }

        let path = self.inner.path.clone();
        let (actual, size) = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .expect("hashing a partial file does not panic")
            .map_err(|source| PartialError::Io {
                path: self.inner.path.clone(),
                source,
            })?;
        if actual != sha1 || size != manifest.size {
            tracing::warn!(%sha1, %actual, size, "assembled file does not match its manifest");
            self.discard().await?;
            return Err(PartialError::WholeMismatch {
                expected: sha1,
                actual,
            });
        }

        // Chunks are indexed before the rename, as in ingest, so a crash in between leaves
        // a whole blob whose chunks are already known.
        index::insert_chunks(store.pool(), &sha1, &manifest.chunks).await?;
        let target = store.blob_path(&sha1);
        let (source, root) = (self.inner.path.clone(), store.dir().to_owned());
        let install_target = target.clone();
        tokio::task::spawn_blocking(move || {
            if !layout::move_into_place(&source, &install_target, &root)? {
                std::fs::remove_file(&source)?;
            }
            Ok::<_, io::Error>(())
        })
        .await
        .expect("installing a blob does not panic")
        .map_err(|source| PartialError::Install {
            path: target.clone(),
            source,
        })?;

        index::upsert_blob(store.pool(), &sha1, size, BlobKind::File, false).await?;
        store
            .store_manifest(manifest, false)
            .await
            .map_err(|err| PartialError::StoreManifest(Box::new(err)))?;
        index::delete_partial(store.pool(), &sha1).await?;
        tracing::info!(%sha1, size, "assembled file stored");
        Ok(target)
    }

    /// Deletes the partial file and its row.
    async fn discard(&self) -> Result<(), PartialError> {
        match tokio::fs::remove_file(&self.inner.path).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(PartialError::Io {
                    path: self.inner.path.clone(),
                    source,
                });
            }
        }
        index::delete_partial(self.inner.store.pool(), &self.inner.manifest.sha1).await?;
        Ok(())
    }
}

/// SHA-1 and length of a file, read sequentially.
fn hash_file(path: &std::path::Path) -> io::Result<(Sha1Hash, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        let n_read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n_read) => n_read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..n_read]);
        size += n_read as u64;
    }
    Ok((Sha1Hash::from_bytes(hasher.finalize().into()), size))
}

//! Adding blobs: local files, bytes in memory, and verified downloads (SPEC §14.3).
//!
//! Every path writes into `tmp/` while hashing, syncs, and only then moves the file into
//! `sha1/` (see `layout`). Files larger than one chunk get their chunks indexed before the
//! rename, so a crash never leaves a whole blob whose chunks cannot be found, and their
//! manifest stored as a blob of its own. Local files are copied with blocking `std::fs` on
//! the blocking pool, reading the source once with a large buffer.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kachery_protocol::{Manifest, Sha1Hash};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::error::IngestError;
use crate::hashing::{self, ContentHasher, CopyError, Digests};
use crate::index::{self, BlobKind};
use crate::layout::TmpFile;
use crate::{Ingested, Store};

/// Read buffer of [`Store::put_verified`]; network reads rarely fill more.
const STREAM_BUFFER_BYTES: usize = 1024 * 1024;

/// Tells a blocking copy to stop when the future waiting for it is dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Store {
    /// Copies the file at `path` into the store and returns its hash, size and (for files
    /// larger than one chunk) manifest. `progress` is called with the bytes copied so far.
    /// Pinned blobs are never evicted. Content already present is left untouched (only
    /// pinned if asked): the copy made while learning its hash is discarded.
    pub async fn ingest_file(
        &self,
        path: &Path,
        pin: bool,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Ingested, IngestError> {
        let source_path = path.to_owned();
        let source = File::open(&source_path).map_err(|source| IngestError::ReadSource {
            path: source_path.clone(),
            source,
        })?;
        let size_hint = source.metadata().ok().map(|metadata| metadata.len());
        let (tmp, digests) = self
            .copy_to_tmp(source, size_hint, Some(source_path), progress)
            .await?;
        self.commit(tmp, digests, pin).await
    }

    /// Stores `bytes` as a blob, like [`Store::ingest_file`].
    pub async fn ingest_bytes(&self, bytes: &[u8], pin: bool) -> Result<Ingested, IngestError> {
        let source = std::io::Cursor::new(bytes.to_vec());
        let size_hint = Some(bytes.len() as u64);
        let (tmp, digests) = self.copy_to_tmp(source, size_hint, None, &|_| {}).await?;
        self.commit(tmp, digests, pin).await
    }

    /// Stores a blob received from elsewhere, unpinned. It is kept only if its SHA-1 is
    /// `expected` and (when given) its size is `expected_size`; otherwise nothing is kept
    /// and the mismatch is returned. Reading stops as soon as the size is exceeded.
    pub async fn put_verified(
        &self,
        expected: Sha1Hash,
        expected_size: Option<u64>,
        mut reader: impl AsyncRead + Unpin + Send,
    ) -> Result<u64, IngestError> {
        let tmp_dir = self.layout().tmp_dir();
        let mut tmp = TmpFile::create(&tmp_dir).map_err(|source| IngestError::WriteTmp {
            path: tmp_dir.clone(),
            source,
        })?;
        let tmp_path = tmp.path().to_owned();
        let write_error = |source| IngestError::WriteTmp {
            path: tmp_path.clone(),
            source,
        };
        let std_file = tmp.file().try_clone().map_err(write_error)?;
        let mut file = tokio::fs::File::from_std(std_file);

        let mut hasher = ContentHasher::new();
        let mut buffer = vec![0u8; STREAM_BUFFER_BYTES];
        loop {
            let n_read = reader
                .read(&mut buffer)
                .await
                .map_err(IngestError::ReadStream)?;
            if n_read == 0 {
                break;
            }
            hasher.update(&buffer[..n_read]);
            if let Some(expected_size) = expected_size
                && hasher.size() > expected_size
            {
                return Err(IngestError::SizeMismatch {
                    expected: expected_size,
                    actual: hasher.size(),
                });
            }
            file.write_all(&buffer[..n_read])
                .await
                .map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        file.sync_all().await.map_err(write_error)?;
        drop(file);

        let digests = hasher.finish();
        if let Some(expected_size) = expected_size
            && digests.size != expected_size
        {
            return Err(IngestError::SizeMismatch {
                expected: expected_size,
                actual: digests.size,
            });
        }
        if digests.sha1 != expected {
            let actual = digests.sha1;
            tracing::warn!(%expected, %actual, "received blob does not match its hash");
            return Err(IngestError::HashMismatch {
                expected,
                actual: digests.sha1,
            });
        }

        let size = digests.size;
        self.commit(tmp, digests, false).await?;
        Ok(size)
    }

    /// Copies `source` into a synced file in `tmp/` on the blocking pool, reporting
    /// progress from there through a watch channel.
    async fn copy_to_tmp(
        &self,
        mut source: impl Read + Send + 'static,
        size_hint: Option<u64>,
        source_path: Option<PathBuf>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(TmpFile, Digests), IngestError> {
        let tmp_dir = self.layout().tmp_dir();
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let (progress_tx, mut progress_rx) = watch::channel(0u64);

        let copy = tokio::task::spawn_blocking(move || {
            let mut tmp = TmpFile::create(&tmp_dir).map_err(|source| IngestError::WriteTmp {
                path: tmp_dir.clone(),
                source,
            })?;
            let digests =
                hashing::copy_hashing(&mut source, tmp.file(), size_hint, &cancel, |n_done| {
                    progress_tx.send_replace(n_done);
                })
                .map_err(|err| match err {
                    CopyError::Read(source) => match &source_path {
                        Some(path) => IngestError::ReadSource {
                            path: path.clone(),
                            source,
                        },
                        None => IngestError::ReadStream(source),
                    },
                    CopyError::Write(source) => IngestError::WriteTmp {
                        path: tmp.path().to_owned(),
                        source,
                    },
                    CopyError::Cancelled => IngestError::Cancelled,
                })?;
            tmp.file()
                .sync_all()
                .map_err(|source| IngestError::WriteTmp {
                    path: tmp.path().to_owned(),
                    source,
                })?;
            Ok::<_, IngestError>((tmp, digests))
        });

        tokio::pin!(copy);
        let (tmp, digests) = loop {
            tokio::select! {
                result = &mut copy => break result.expect("copying into the store does not panic")?,
                Ok(()) = progress_rx.changed() => progress(*progress_rx.borrow_and_update()),
            }
        };
        progress(digests.size);
        Ok((tmp, digests))
    }

    /// Moves a synced temporary file into place and indexes it, with its manifest if it
    /// spans several chunks.
    async fn commit(
        &self,
        tmp: TmpFile,
        digests: Digests,
        pin: bool,
    ) -> Result<Ingested, IngestError> {
        let manifest = digests.manifest();
        self.install_blob(tmp, &digests, BlobKind::File, pin, manifest.as_ref())
            .await?;

        let manifest = match manifest {
            Some(manifest) => Some((self.store_manifest(&manifest, pin).await?, manifest)),
            None => None,
        };
        tracing::debug!(sha1 = %digests.sha1, size = digests.size, pin, "blob stored");
        Ok(Ingested {
            sha1: digests.sha1,
            size: digests.size,
            manifest,
        })
    }

    /// Stores the canonical bytes of `manifest` as a blob and returns their hash.
    pub(crate) async fn store_manifest(
        &self,
        manifest: &Manifest,
        pin: bool,
    ) -> Result<Sha1Hash, IngestError> {
        let bytes = std::io::Cursor::new(manifest.to_bytes());
        let (tmp, digests) = self.copy_to_tmp(bytes, None, None, &|_| {}).await?;
        self.install_blob(tmp, &digests, BlobKind::Manifest, pin, None)
            .await?;
        Ok(digests.sha1)
    }

    /// Indexes chunks (before the rename, see the module doc), installs the file unless an
    /// identical blob is already there, then records the blob.
    pub(crate) async fn install_blob(
        &self,
        tmp: TmpFile,
        digests: &Digests,
        kind: BlobKind,
        pin: bool,
        manifest: Option<&Manifest>,
    ) -> Result<(), IngestError> {
        if let Some(manifest) = manifest {
            index::insert_chunks(self.pool(), &digests.sha1, &manifest.chunks).await?;
        }

        let target = self.blob_path(&digests.sha1);
        let root = self.dir().to_owned();
        let installed = tokio::task::spawn_blocking({
            let target = target.clone();
            move || tmp.install(&target, &root)
        })
        .await
        .expect("installing a blob does not panic")
        .map_err(|source| IngestError::Install {
            path: target,
            source,
        })?;
        if !installed {
            tracing::debug!(sha1 = %digests.sha1, "blob already present, nothing copied");
        }

        index::upsert_blob(self.pool(), &digests.sha1, digests.size, kind, pin).await?;
        Ok(())
    }
}

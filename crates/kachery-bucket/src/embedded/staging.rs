//! Staging an upload body in `tmp/`: the network side counts frames and hands them
//! through a bounded queue to a blocking writer thread, which hashes and writes them.
//!
//! Hashing and disk I/O thus overlap with receiving and never stall the async runtime,
//! and no body is ever held whole in memory (the queue holds at most
//! `WRITE_QUEUE_FRAMES` frames). The writer fsyncs only when told the body is complete;
//! if the upload fails or its future is dropped (client gone), the queue closes, the
//! writer stops, and [`TmpFile`] removes the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use kachery_protocol::Sha1Hash;
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

use super::upload::UploadError;
use crate::backend::BucketError;

/// Frames queued between the network and the writer thread; bounds what an upload holds
/// in memory when the disk is slower than the network.
const WRITE_QUEUE_FRAMES: usize = 32;
/// Write coalescing buffer of the writer thread.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// A fully written, fsynced upload in `tmp/`.
pub(super) struct StagedUpload {
    pub(super) tmp: TmpFile,
    /// SHA-1 of the body, when hashing was asked for.
    pub(super) sha1: Option<Sha1Hash>,
}

/// Streams `body` into a new file in `tmp_dir`, hashing it with SHA-1 when `hash` is set.
/// Fails unless the body is exactly `signed` bytes.
pub(super) async fn stream_to_tmp(
    tmp_dir: &Path,
    body: Body,
    signed: u64,
    hash: bool,
) -> Result<StagedUpload, UploadError> {
    let (tmp, file) = TmpFile::create(tmp_dir)?;
    let (frame_tx, frame_rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
    let writer = tokio::task::spawn_blocking(move || write_frames(file, frame_rx, hash));

    let read_result = forward_body(body, signed, &frame_tx).await;
    if read_result.is_ok() {
        // The writer may already be gone after a write error; its result says why.
        let _ = frame_tx.send(WriterInput::End).await;
    }
    drop(frame_tx);

    let written = writer.await.expect("upload writer task does not panic");
    read_result?;
    match written.map_err(|source| BucketError::io("write", &tmp.path, source))? {
        WriteOutcome::Complete { sha1 } => Ok(StagedUpload { tmp, sha1 }),
        WriteOutcome::Abandoned => {
            let early = std::io::Error::other("writer stopped before the end of the body");
            Err(BucketError::io("write", &tmp.path, early).into())
        }
    }
}

/// Passes body frames to the writer, refusing a body that is not exactly `signed` bytes.
async fn forward_body(
    body: Body,
    signed: u64,
    frame_tx: &mpsc::Sender<WriterInput>,
) -> Result<(), UploadError> {
    let mut received = 0u64;
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let data = frame.map_err(UploadError::BodyAborted)?;
        received += data.len() as u64;
        if received > signed {
            return Err(UploadError::SizeMismatch {
                actual: received,
                signed,
            });
        }
        if frame_tx.send(WriterInput::Frame(data)).await.is_err() {
            // The writer stopped on an I/O error, reported by the caller.
            return Ok(());
        }
    }
    if received != signed {
        return Err(UploadError::SizeMismatch {
            actual: received,
            signed,
        });
    }
    Ok(())
}

enum WriterInput {
    Frame(Bytes),
    /// The body is complete: flush, fsync and report.
    End,
}

enum WriteOutcome {
    Complete {
        sha1: Option<Sha1Hash>,
    },
    /// The queue closed without `End`: the upload failed and nothing was fsynced.
    Abandoned,
}

/// Runs on a blocking thread: hashes and writes frames until `End`.
fn write_frames(
    file: std::fs::File,
    mut frames: mpsc::Receiver<WriterInput>,
    hash: bool,
) -> std::io::Result<WriteOutcome> {
    let mut writer = std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut hasher = hash.then(Sha1::new);
    loop {
        match frames.blocking_recv() {
            Some(WriterInput::Frame(data)) => {
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&data);
                }
                writer.write_all(&data)?;
            }
            Some(WriterInput::End) => break,
            None => return Ok(WriteOutcome::Abandoned),
        }
    }

    let file = writer
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    file.sync_all()?;
    let sha1 = hasher.map(|hasher| Sha1Hash::from_bytes(hasher.finalize().into()));
    Ok(WriteOutcome::Complete { sha1 })
}

/// A file in `tmp/`, removed when dropped (after a commit only its temporary name goes).
pub(super) struct TmpFile {
    pub(super) path: PathBuf,
}

impl TmpFile {
    fn create(tmp_dir: &Path) -> Result<(Self, std::fs::File), BucketError> {
        // `tmp/` is emptied at open and owned by this process, so a counter names files
        // uniquely; `create_new` would catch a second process sharing the directory.
        static NEXT_UPLOAD: AtomicU64 = AtomicU64::new(0);
        let name = format!("upload-{}", NEXT_UPLOAD.fetch_add(1, Ordering::Relaxed));
        let path = tmp_dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| BucketError::io("create", &path, source))?;
        Ok((Self { path }, file))
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        // NotFound after a rename is expected; anything else leaves a file that the next
        // open clears.
        let _ = std::fs::remove_file(&self.path);
    }
}

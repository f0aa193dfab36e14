//! Error types of the store, one per operation.
//!
//! Every variant names the path or hash it failed on and keeps the underlying error as its
//! source, so a caller printing the chain sees both what kachery tried and why it failed.

use std::io;
use std::path::PathBuf;

use kachery_protocol::Sha1Hash;
use kachery_protocol::manifest::ManifestError;

/// Why [`Store::open`](crate::Store::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("failed to create store directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("failed to lock store directory through {path}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("failed to open store index {path}")]
    OpenIndex { path: PathBuf, source: sqlx::Error },
    #[error("failed to migrate store index {path}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("failed to sweep store directory {path}")]
    Sweep { path: PathBuf, source: io::Error },
    #[error("failed to reconcile the store index with the files on disk")]
    Reconcile(#[source] sqlx::Error),
}

/// Why a blob could not be added to the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("failed to read source file {path}")]
    ReadSource { path: PathBuf, source: io::Error },
    #[error("failed to read incoming blob data")]
    ReadStream(#[source] io::Error),
    #[error("failed to write temporary file {path}")]
    WriteTmp { path: PathBuf, source: io::Error },
    #[error("failed to move blob into place at {path}")]
    Install { path: PathBuf, source: io::Error },
    #[error("received data hashes to {actual}, expected {expected}")]
    HashMismatch {
        expected: Sha1Hash,
        actual: Sha1Hash,
    },
    #[error("received {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("failed to update the store index")]
    Index(#[from] sqlx::Error),
    #[error("ingest was cancelled")]
    Cancelled,
}

/// Why the store could not answer a read or bookkeeping request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("failed to access {path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("failed to query the store index")]
    Index(#[from] sqlx::Error),
    #[error("stored manifest {sha1} is invalid")]
    BadManifest {
        sha1: Sha1Hash,
        source: ManifestError,
    },
    #[error("failed to store regenerated manifest")]
    StoreManifest(#[source] Box<IngestError>),
}

/// Why assembling a downloaded multi-chunk file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartialError {
    #[error("manifest hashes to {actual}, expected {expected}")]
    ManifestMismatch {
        expected: Sha1Hash,
        actual: Sha1Hash,
    },
    #[error("file {sha1} is already complete in the store")]
    AlreadyComplete { sha1: Sha1Hash },
    #[error("chunk index {idx} is out of range for a manifest of {n_chunks} chunks")]
    NoSuchChunk { idx: usize, n_chunks: usize },
    #[error("chunk {idx} has {actual} bytes, expected {expected}")]
    ChunkSize {
        idx: usize,
        expected: u64,
        actual: u64,
    },
    #[error("chunk {idx} hashes to {actual}, expected {expected}")]
    ChunkMismatch {
        idx: usize,
        expected: Sha1Hash,
        actual: Sha1Hash,
    },
    #[error("cannot finish file {sha1}: {n_missing} chunks are still missing")]
    Incomplete { sha1: Sha1Hash, n_missing: usize },
    #[error("assembled file hashes to {actual}, expected {expected}; partial file deleted")]
    WholeMismatch {
        expected: Sha1Hash,
        actual: Sha1Hash,
    },
    #[error("failed to access partial file {path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("failed to move assembled file into place at {path}")]
    Install { path: PathBuf, source: io::Error },
    #[error("failed to update the store index")]
    Index(#[from] sqlx::Error),
    #[error("failed to store the manifest of the assembled file")]
    StoreManifest(#[source] Box<IngestError>),
}

/// Why an eviction pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvictError {
    #[error("failed to delete evicted blob {path}")]
    Delete { path: PathBuf, source: io::Error },
    #[error("failed to query the store index")]
    Index(#[from] sqlx::Error),
}

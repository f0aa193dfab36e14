//! The local content-addressed store of a kachery node (SPEC §14).
//!
//! A [`Store`] is a directory of blobs named by their SHA-1 plus a SQLite index. Files are
//! added with [`Store::ingest_file`] (hashing the whole file and each 20,000,000-byte chunk
//! in the one pass that copies it in), downloaded blobs with [`Store::put_verified`], and
//! downloaded multi-chunk files are assembled chunk by chunk through a [`Partial`]. A chunk
//! is never stored on its own: the index maps it to a byte range of its whole file, which
//! [`Store::locate`] and [`Store::open_range`] serve.
//!
//! Guarantees: a blob under `sha1/` is always complete and hashes to its name (written to
//! `tmp/`, synced, renamed, directory synced); verified chunks of a download survive a
//! killed process; a daemon and CLI commands may open the same store at once. Unpinned
//! blobs are evicted least recently used first when `max_cache_bytes` is exceeded.
//!
//! The store does no network I/O and knows nothing about channels. It is Unix-only: locks
//! use `flock` and chunk writes use positional writes.

mod error;
mod evict;
mod hashing;
mod index;
mod ingest;
mod layout;
mod open;
mod partial;
mod read;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kachery_protocol::{Manifest, Sha1Hash};
use sqlx::SqlitePool;

pub use error::{EvictError, IngestError, OpenError, PartialError, ReadError};
pub use evict::EvictionReport;
pub use partial::Partial;

use layout::Layout;

/// Knobs of a store, set by whoever opens it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Size in bytes above which [`Store::evict_if_needed`] deletes unpinned blobs, down
    /// to 90 % of it. 0 (the default) means unlimited.
    pub max_cache_bytes: u64,
}

impl StoreOptions {
    pub fn with_max_cache_bytes(mut self, max_cache_bytes: u64) -> Self {
        self.max_cache_bytes = max_cache_bytes;
        self
    }
}

/// What an ingest stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub sha1: Sha1Hash,
    pub size: u64,
    /// The manifest hash and manifest of a file larger than one chunk.
    pub manifest: Option<(Sha1Hash, Manifest)>,
}

/// Where the bytes of a blob or chunk can be read: `[start, end)` of the file at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
}

impl BlobLocation {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// How much the store holds, from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreUsage {
    pub blobs: u64,
    pub bytes: u64,
    pub partials: u64,
    /// Full sizes of the files being assembled (their disk use grows as chunks arrive).
    pub partial_bytes: u64,
}

/// A handle to one store directory. Cheap to clone; clones share one index connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    layout: Layout,
    pool: SqlitePool,
    options: StoreOptions,
    /// Held in shared mode for the life of the store, so an opener that gets it exclusively
    /// knows nobody is writing into `tmp/` (see `open`).
    _open_lock: std::fs::File,
    /// When each blob's `last_access_at` was last written, to write it once a minute at most.
    touched: Mutex<HashMap<Sha1Hash, Instant>>,
}

impl Store {
    /// The store directory.
    pub fn dir(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Where the complete blob `sha1` is (or would be) stored: `sha1/aa/bb/cc/<sha1>`.
    pub fn blob_path(&self, sha1: &Sha1Hash) -> PathBuf {
        self.inner.layout.blob_path(sha1)
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn require_send<F: Future + Send>(_: F) {}

    /// Callers spawn store operations on a multi-threaded runtime; this only has to compile.
    #[allow(dead_code)]
    fn store_operations_are_send(store: Store, partial: Partial, sha1: Sha1Hash) {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<Partial>();

        let path = Path::new("file");
        require_send(store.ingest_file(path, true, &|_| {}));
        require_send(store.ingest_bytes(b"bytes", true));
        require_send(store.put_verified(sha1, None, tokio::io::empty()));
        require_send(store.open_range(&sha1));
        require_send(store.manifest_of(&sha1));
        require_send(store.evict_if_needed());
        require_send(partial.write_chunk(0, b"bytes"));
        require_send(partial.finish());
    }
}

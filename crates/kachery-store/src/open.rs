//! Opening a store: directories, locks, index, and the start-up sweep (SPEC §13.1, §14.4).
//!
//! Several processes may open one store (the daemon and CLI commands). Two advisory locks
//! keep them out of each other's way:
//! - `setup.lock` is held exclusively for the whole of `open`, so only one process at a
//!   time migrates the index or sweeps;
//! - `open.lock` is held shared by every open store. An opener that can take it
//!   exclusively knows no other store is open, so files in `tmp/` and `partial/` are
//!   leftovers of a crash and safe to delete; otherwise the sweep is skipped, because
//!   those files may be another process's writes in progress.
//!
//! The sweep deletes `tmp/`, drops index rows whose files are gone (or have the wrong
//! size), indexes stray blob files as unpinned, and matches `partials` rows with files.

use std::collections::HashMap;
use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kachery_protocol::Sha1Hash;
use sqlx::SqlitePool;

use crate::error::OpenError;
use crate::index::{self, BlobKind};
use crate::layout::Layout;
use crate::{Store, StoreInner, StoreOptions};

/// The locks an opener holds, taken off the async runtime.
struct Locks {
    setup: File,
    open: File,
    is_sole_user: bool,
}

impl Store {
    /// Opens the store at `dir` with default options (no size limit). See [`Store::open_with`].
    pub async fn open(dir: &Path) -> Result<Store, OpenError> {
        Self::open_with(dir, StoreOptions::default()).await
    }

    /// Opens the store at `dir`, creating its directories and index if needed. When no
    /// other process has the store open, it also sweeps `tmp/` and reconciles the index
    /// with the files on disk, which takes a directory walk of the store.
    pub async fn open_with(dir: &Path, options: StoreOptions) -> Result<Store, OpenError> {
        let layout = Layout::new(dir);
        let locks = {
            let layout = layout.clone();
            tokio::task::spawn_blocking(move || create_dirs_and_lock(&layout))
                .await
                .expect("store setup does not panic")?
        };

        let pool = index::connect(&layout.index_path()).await?;

        if locks.is_sole_user {
            sweep_tmp(&layout).await?;
            reconcile(&layout, &pool).await?;
        } else {
            tracing::debug!(dir = %dir.display(), "store already open elsewhere, skipping sweep");
        }

        let open_lock = tokio::task::spawn_blocking(move || {
            // Downgrade (or take) the shared lock, then let the next opener in.
            let result = locks.open.lock_shared().map(|()| locks.open);
            drop(locks.setup);
            result
        })
        .await
        .expect("locking does not panic")
        .map_err(|source| OpenError::Lock {
            path: layout.open_lock_path(),
            source,
        })?;

        let max_cache_bytes = options.max_cache_bytes;
        tracing::info!(dir = %dir.display(), max_cache_bytes, "store opened");
        Ok(Store {
            inner: Arc::new(StoreInner {
                layout,
                pool,
                options,
                _open_lock: open_lock,
                touched: Mutex::new(HashMap::new()),
            }),
        })
    }
}

fn create_dirs_and_lock(layout: &Layout) -> Result<Locks, OpenError> {
    // A new store root is private to this user (0700); an existing one keeps the mode
    // its owner gave it.
    let root = layout.root();
    if !root.exists() {
        if let Some(parent) = root.parent() {
            fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        match fs::DirBuilder::new().mode(0o700).create(root) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(OpenError::CreateDir {
                    path: root.to_owned(),
                    source,
                });
            }
        }
    }
    for dir in [
        layout.root().to_owned(),
        layout.blobs_dir(),
        layout.partials_dir(),
        layout.tmp_dir(),
    ] {
        fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir { path: dir, source })?;
    }

    let open_lock_file = |path: &Path| {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| OpenError::Lock {
                path: path.to_owned(),
                source,
            })
    };
    let setup = open_lock_file(&layout.setup_lock_path())?;
    setup.lock().map_err(|source| OpenError::Lock {
        path: layout.setup_lock_path(),
        source,
    })?;

    let open = open_lock_file(&layout.open_lock_path())?;
    let is_sole_user = match open.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        Err(TryLockError::Error(source)) => {
            return Err(OpenError::Lock {
                path: layout.open_lock_path(),
                source,
            });
        }
    };
    Ok(Locks {
        setup,
        open,
        is_sole_user,
    })
}

async fn sweep_tmp(layout: &Layout) -> Result<(), OpenError> {
    let tmp_dir = layout.tmp_dir();
    let n_removed = tokio::task::spawn_blocking({
        let tmp_dir = tmp_dir.clone();
        move || remove_dir_contents(&tmp_dir)
    })
    .await
    .expect("sweeping does not panic")
    .map_err(|source| OpenError::Sweep {
        path: tmp_dir.clone(),
        source,
    })?;
    if n_removed > 0 {
        tracing::info!(dir = %tmp_dir.display(), n_removed, "swept leftover temporary files");
    }
    Ok(())
}

fn remove_dir_contents(dir: &Path) -> io::Result<usize> {
    let mut n_removed = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        n_removed += 1;
    }
    Ok(n_removed)
}

/// Brings the index in line with the files: the files are the truth.
async fn reconcile(layout: &Layout, pool: &SqlitePool) -> Result<(), OpenError> {
    let (blob_files, partial_files) = tokio::task::spawn_blocking({
        let layout = layout.clone();
        move || Ok::<_, OpenError>((scan_blob_files(&layout)?, scan_partial_files(&layout)?))
    })
    .await
    .expect("scanning does not panic")?;

    reconcile_blobs(layout, pool, &blob_files)
        .await
        .map_err(OpenError::Reconcile)?;
    reconcile_partials(layout, pool, &partial_files)
        .await
        .map_err(OpenError::Reconcile)?;
    Ok(())
}

async fn reconcile_blobs(
    layout: &Layout,
    pool: &SqlitePool,
    files: &HashMap<Sha1Hash, u64>,
) -> Result<(), sqlx::Error> {
    let rows = index::all_blobs(pool).await?;
    let mut n_dropped = 0;
    for (sha1, size) in &rows {
        match files.get(sha1) {
            Some(file_size) if file_size == size => continue,
            Some(file_size) => {
                // Blobs are never edited in place, so a changed size means damage.
                tracing::warn!(%sha1, size, file_size, "blob has the wrong size, deleting it");
                remove_quietly(&layout.blob_path(sha1));
            }
            None => {}
        }
        index::delete_blob(pool, sha1).await?;
        n_dropped += 1;
    }

    let indexed: HashMap<Sha1Hash, u64> = rows.into_iter().collect();
    let mut n_added = 0;
    for (sha1, size) in files {
        if !indexed.contains_key(sha1) {
            index::upsert_blob(pool, sha1, *size, BlobKind::File, false).await?;
            n_added += 1;
        }
    }

    let n_orphan_chunks = index::delete_orphan_chunks(pool).await?;
    if n_dropped + n_added + n_orphan_chunks > 0 {
        tracing::info!(
            n_dropped,
            n_added,
            n_orphan_chunks,
            "reconciled store index with files"
        );
    }
    Ok(())
}

async fn reconcile_partials(
    layout: &Layout,
    pool: &SqlitePool,
    files: &HashMap<Sha1Hash, u64>,
) -> Result<(), sqlx::Error> {
    let rows: HashMap<Sha1Hash, u64> = index::all_partials(pool).await?.into_iter().collect();
    for (sha1, size) in &rows {
        if files.get(sha1) != Some(size) {
            tracing::info!(%sha1, "dropping partial download whose file is missing or resized");
            remove_quietly(&layout.partial_path(sha1));
            index::delete_partial(pool, sha1).await?;
        }
    }
    for sha1 in files.keys().filter(|sha1| !rows.contains_key(sha1)) {
        tracing::info!(%sha1, "deleting partial file with no index row");
        remove_quietly(&layout.partial_path(sha1));
    }
    Ok(())
}

/// Blob files under `sha1/aa/bb/cc/`, by hash. Files elsewhere are left alone.
fn scan_blob_files(layout: &Layout) -> Result<HashMap<Sha1Hash, u64>, OpenError> {
    let blobs_dir = layout.blobs_dir();
    let sweep_error = |source| OpenError::Sweep {
        path: blobs_dir.clone(),
        source,
    };
    let mut files = HashMap::new();
    walk_files(&blobs_dir, 3, &mut |path, size| {
        let Some(sha1) = path
            .file_name()
            .and_then(|name| Sha1Hash::parse(name.to_str()?).ok())
        else {
            return;
        };
        if layout.blob_path(&sha1) == path {
            files.insert(sha1, size);
        }
    })
    .map_err(sweep_error)?;
    Ok(files)
}

fn scan_partial_files(layout: &Layout) -> Result<HashMap<Sha1Hash, u64>, OpenError> {
    let partials_dir = layout.partials_dir();
    let mut files = HashMap::new();
    walk_files(&partials_dir, 0, &mut |path, size| {
        if let Some(sha1) = path
            .file_name()
            .and_then(|name| Sha1Hash::parse(name.to_str()?).ok())
        {
            files.insert(sha1, size);
        }
    })
    .map_err(|source| OpenError::Sweep {
        path: partials_dir.clone(),
        source,
    })?;
    Ok(files)
}

/// Calls `visit` with every regular file exactly `depth` directories below `dir`.
fn walk_files(dir: &Path, depth: u32, visit: &mut dyn FnMut(&Path, u64)) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if depth > 0 && file_type.is_dir() {
            walk_files(&entry.path(), depth - 1, visit)?;
        } else if depth == 0 && file_type.is_file() {
            visit(&entry.path(), entry.metadata()?.len());
        }
    }
    Ok(())
}

fn remove_quietly(path: &Path) {
    if let Err(err) = fs::remove_file(path)
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %err, "failed to delete file");
    }
}

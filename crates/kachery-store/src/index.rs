//! The SQLite cache index, `index.sqlite` (SPEC §14.4).
//!
//! Three tables: `blobs` (one row per file under `sha1/`, with pinning and last access for
//! eviction), `chunks` (each chunk of a multi-chunk file as a byte range of its whole blob)
//! and `partials` (downloads being assembled, with the chunks already written).
//!
//! The schema comes from embedded, append-only migrations (`migrations/`) rather than
//! `CREATE TABLE IF NOT EXISTS` at open, so later revisions can alter tables with a
//! recorded version. Running them is safe with several processes because `open` holds
//! `setup.lock` while it does. WAL mode and a busy timeout let a daemon and CLI commands
//! use the index at the same time.

use std::path::Path;
use std::time::Duration;

use kachery_protocol::{ManifestChunk, Sha1Hash};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::OpenError;

/// How long a query waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Kind of a stored blob, kept in `blobs.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobKind {
    File,
    Manifest,
}

impl BlobKind {
    fn as_str(self) -> &'static str {
        match self {
            BlobKind::File => "file",
            BlobKind::Manifest => "manifest",
        }
    }
}

/// Where a chunk lives inside a whole blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRow {
    pub(crate) whole_sha1: Sha1Hash,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// A download being assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartialRow {
    pub(crate) sha1: Sha1Hash,
    pub(crate) size: u64,
    pub(crate) manifest_sha1: Sha1Hash,
    /// One flag per manifest chunk.
    pub(crate) done_chunks: Vec<bool>,
}

/// Opens (creating if needed) the index and brings its schema up to date. The caller
/// holds `setup.lock`, so no other process migrates at the same time.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePool, OpenError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|source| OpenError::OpenIndex {
            path: path.to_owned(),
            source,
        })?;

    let mut migrator = sqlx::migrate!("./migrations");
    // An older binary (say, a CLI not yet upgraded) may open an index a newer daemon migrated.
    migrator.set_ignore_missing(true);
    migrator
        .run(&pool)
        .await
        .map_err(|source| OpenError::Migrate {
            path: path.to_owned(),
            source,
        })?;
    Ok(pool)
}

/// Current time as Unix milliseconds, the unit of every timestamp in the index.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

fn parse_sha1(text: &str) -> Result<Sha1Hash, sqlx::Error> {
    Sha1Hash::parse(text).map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("sizes and offsets stay below 2^63 bytes")
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Records a blob now present under `sha1/`. An existing row keeps its history and only
/// ever becomes pinned, never unpinned, by a repeated ingest.
pub(crate) async fn upsert_blob(
    pool: &SqlitePool,
    sha1: &Sha1Hash,
    size: u64,
    kind: BlobKind,
    pinned: bool,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO blobs (sha1, size, kind, pinned, created_at, last_access_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (sha1) DO UPDATE SET
             size = excluded.size,
             pinned = max(blobs.pinned, excluded.pinned),
             last_access_at = excluded.last_access_at",
    )
    .bind(sha1.to_hex())
    .bind(to_i64(size))
    .bind(kind.as_str())
    .bind(pinned)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the chunks of a whole blob; already known ranges are left alone.
pub(crate) async fn insert_chunks(
    pool: &SqlitePool,
    whole_sha1: &Sha1Hash,
    chunks: &[ManifestChunk],
) -> Result<(), sqlx::Error> {
    let whole_hex = whole_sha1.to_hex();
    let mut tx = pool.begin().await?;
    for chunk in chunks {
        sqlx::query(
            "INSERT OR IGNORE INTO chunks (chunk_sha1, whole_sha1, start, \"end\")
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(chunk.sha1.to_hex())
        .bind(&whole_hex)
        .bind(to_i64(chunk.start))
        .bind(to_i64(chunk.end))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Every known place a chunk can be read from.
pub(crate) async fn chunk_locations(
    pool: &SqlitePool,
    chunk_sha1: &Sha1Hash,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT whole_sha1, start, \"end\" FROM chunks WHERE chunk_sha1 = ?1")
            .bind(chunk_sha1.to_hex())
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(whole, start, end)| {
            Ok(ChunkRow {
                whole_sha1: parse_sha1(&whole)?,
                start: to_u64(start),
                end: to_u64(end),
            })
        })
        .collect()
}

/// The chunks of a whole blob, in file order.
pub(crate) async fn chunks_of(
    pool: &SqlitePool,
    whole_sha1: &Sha1Hash,
) -> Result<Vec<ManifestChunk>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT chunk_sha1, start, \"end\" FROM chunks WHERE whole_sha1 = ?1 ORDER BY start",
    )
    .bind(whole_sha1.to_hex())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(sha1, start, end)| {
            Ok(ManifestChunk {
                sha1: parse_sha1(&sha1)?,
                start: to_u64(start),
                end: to_u64(end),
            })
        })
        .collect()
}

/// Forgets a blob and the chunks that pointed into it.
pub(crate) async fn delete_blob(pool: &SqlitePool, sha1: &Sha1Hash) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM blobs WHERE sha1 = ?1")
        .bind(sha1.to_hex())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM chunks WHERE whole_sha1 = ?1")
        .bind(sha1.to_hex())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Moves `last_access_at` of a blob, or of the whole blobs holding it as a chunk.
pub(crate) async fn touch(pool: &SqlitePool, sha1: &Sha1Hash) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE blobs SET last_access_at = ?2
         WHERE sha1 = ?1 OR sha1 IN (SELECT whole_sha1 FROM chunks WHERE chunk_sha1 = ?1)",
    )
    .bind(sha1.to_hex())
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the pin of a blob; false when the index has no such blob.
pub(crate) async fn set_pinned(
    pool: &SqlitePool,
    sha1: &Sha1Hash,
    pinned: bool,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE blobs SET pinned = ?2 WHERE sha1 = ?1")
        .bind(sha1.to_hex())
        .bind(pinned)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Every blob row as (sha1, size), for the start-up check against the files.
pub(crate) async fn all_blobs(pool: &SqlitePool) -> Result<Vec<(Sha1Hash, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sha1, size FROM blobs")
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|(sha1, size)| Ok((parse_sha1(&sha1)?, to_u64(size))))
        .collect()
}

/// Drops chunk rows whose whole blob is not indexed (left by a crash mid-ingest).
pub(crate) async fn delete_orphan_chunks(pool: &SqlitePool) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("DELETE FROM chunks WHERE whole_sha1 NOT IN (SELECT sha1 FROM blobs)")
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// Unpinned blobs, least recently used first.
pub(crate) async fn eviction_candidates(
    pool: &SqlitePool,
    limit: u32,
) -> Result<Vec<(Sha1Hash, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT sha1, size FROM blobs WHERE pinned = 0 ORDER BY last_access_at, sha1 LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(sha1, size)| Ok((parse_sha1(&sha1)?, to_u64(size))))
        .collect()
}

/// (blob count, blob bytes, partial count, partial bytes).
pub(crate) async fn totals(pool: &SqlitePool) -> Result<(u64, u64, u64, u64), sqlx::Error> {
    let (n_blobs, blob_bytes): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(size), 0) FROM blobs")
            .fetch_one(pool)
            .await?;
    let (n_partials, partial_bytes): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(size), 0) FROM partials")
            .fetch_one(pool)
            .await?;
    Ok((
        to_u64(n_blobs),
        to_u64(blob_bytes),
        to_u64(n_partials),
        to_u64(partial_bytes),
    ))
}

pub(crate) async fn partial(
    pool: &SqlitePool,
    sha1: &Sha1Hash,
) -> Result<Option<PartialRow>, sqlx::Error> {
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT size, manifest_sha1, done_chunks FROM partials WHERE sha1 = ?1")
            .bind(sha1.to_hex())
            .fetch_optional(pool)
            .await?;
    let Some((size, manifest_sha1, done_chunks)) = row else {
        return Ok(None);
    };
    Ok(Some(PartialRow {
        sha1: *sha1,
        size: to_u64(size),
        manifest_sha1: parse_sha1(&manifest_sha1)?,
        done_chunks: done_chunks.bytes().map(|flag| flag == b'1').collect(),
    }))
}

/// Every partial row, for the start-up check against the files.
pub(crate) async fn all_partials(pool: &SqlitePool) -> Result<Vec<(Sha1Hash, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sha1, size FROM partials")
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|(sha1, size)| Ok((parse_sha1(&sha1)?, to_u64(size))))
        .collect()
}

/// Starts (or restarts) a download with no chunk done.
pub(crate) async fn reset_partial(
    pool: &SqlitePool,
    sha1: &Sha1Hash,
    size: u64,
    manifest_sha1: &Sha1Hash,
    n_chunks: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO partials (sha1, size, manifest_sha1, done_chunks, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(sha1.to_hex())
    .bind(to_i64(size))
    .bind(manifest_sha1.to_hex())
    .bind("0".repeat(n_chunks))
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks one chunk done. The flag is set inside SQL, not read-modified-written here, so
/// concurrent chunk writers never undo each other's progress.
pub(crate) async fn mark_chunk_done(
    pool: &SqlitePool,
    sha1: &Sha1Hash,
    chunk_idx: usize,
) -> Result<(), sqlx::Error> {
    let idx = i64::try_from(chunk_idx).expect("chunk counts fit in i64");
    sqlx::query(
        "UPDATE partials
         SET done_chunks = substr(done_chunks, 1, ?2) || '1' || substr(done_chunks, ?2 + 2),
             updated_at = ?3
         WHERE sha1 = ?1",
    )
    .bind(sha1.to_hex())
    .bind(idx)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn delete_partial(pool: &SqlitePool, sha1: &Sha1Hash) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM partials WHERE sha1 = ?1")
        .bind(sha1.to_hex())
        .execute(pool)
        .await?;
    Ok(())
}

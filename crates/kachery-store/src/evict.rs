//! Keeping the store under `max_cache_bytes` (SPEC §14.4).
//!
//! When the blobs in the index add up to more than the limit, unpinned blobs are deleted
//! least recently used first until they add up to 90 % of it. Pinned blobs and partial
//! downloads are never deleted, and partials do not count towards the limit. A blob being
//! served when it is evicted is still read to the end: on Unix an open file outlives its
//! name. The caller decides when to run this (after each download and every 10 minutes).

use std::io;

use crate::Store;
use crate::error::EvictError;
use crate::index;

/// Candidates fetched from the index per round.
const EVICTION_BATCH: u32 = 256;

/// What an eviction pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvictionReport {
    pub n_evicted: u64,
    pub bytes_freed: u64,
    /// Total blob bytes afterwards; above the target when pinned blobs alone exceed it.
    pub bytes_after: u64,
}

impl Store {
    /// Deletes least recently used unpinned blobs if the store holds more than
    /// `max_cache_bytes`, down to 90 % of it. Does nothing when the limit is 0.
    pub async fn evict_if_needed(&self) -> Result<EvictionReport, EvictError> {
        let max_bytes = self.options().max_cache_bytes;
        let (_, mut bytes, _, _) = index::totals(self.pool()).await?;
        if max_bytes == 0 || bytes <= max_bytes {
            return Ok(EvictionReport {
                bytes_after: bytes,
                ..EvictionReport::default()
            });
        }

        let target_bytes = max_bytes - max_bytes / 10;
        let mut report = EvictionReport::default();
        'rounds: while bytes > target_bytes {
            let candidates = index::eviction_candidates(self.pool(), EVICTION_BATCH).await?;
            if candidates.is_empty() {
                break;
            }
            for (sha1, size) in candidates {
                if bytes <= target_bytes {
                    break 'rounds;
                }
                let path = self.blob_path(&sha1);
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(EvictError::Delete { path, source }),
                }
                index::delete_blob(self.pool(), &sha1).await?;
                tracing::debug!(%sha1, size, "evicted blob");

                bytes = bytes.saturating_sub(size);
                report.n_evicted += 1;
                report.bytes_freed += size;
            }
        }

        report.bytes_after = bytes;
        if bytes > target_bytes {
            tracing::warn!(
                bytes,
                max_bytes,
                "pinned blobs alone exceed the cache limit"
            );
        }
        tracing::info!(
            n_evicted = report.n_evicted,
            bytes_freed = report.bytes_freed,
            "evicted blobs"
        );
        Ok(report)
    }
}

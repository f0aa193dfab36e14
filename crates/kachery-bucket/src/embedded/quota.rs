//! Per-channel storage accounting of the embedded bucket (SPEC §7.4, 507 when full).
//!
//! Usage lives in memory: it is rebuilt by walking `objects/` when the bucket opens and
//! updated on every committed upload and delete, so a PUT costs one lock, not a scan. An
//! upload reserves its signed size before it streams, so concurrent uploads cannot
//! overshoot the quota together; the reservation becomes stored usage on commit and is
//! released when the upload fails or is dropped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::backend::BucketError;

/// Bytes stored and reserved per channel, against one limit for every channel.
#[derive(Debug)]
pub(crate) struct QuotaLedger {
    limit_bytes: u64,
    usage: Mutex<HashMap<String, ChannelUsage>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ChannelUsage {
    stored: u64,
    reserved: u64,
}

/// The upload would take the channel past its quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {channel} uses {used} of {limit_bytes} bytes; {requested} more do not fit")]
pub(crate) struct QuotaExceeded {
    pub channel: String,
    pub used: u64,
    pub requested: u64,
    pub limit_bytes: u64,
}

impl QuotaLedger {
    /// A ledger starting from the bytes already stored under `objects_dir/<channel>/`.
    pub(crate) fn scan(objects_dir: &Path, limit_bytes: u64) -> Result<Self, BucketError> {
        let mut usage = HashMap::new();
        let channels = std::fs::read_dir(objects_dir)
            .map_err(|source| BucketError::io("list", objects_dir, source))?;
        for entry in channels {
            let entry = entry.map_err(|source| BucketError::io("list", objects_dir, source))?;
            let stored = tree_size(&entry.path())?;
            let channel = entry.file_name().to_string_lossy().into_owned();
            usage.insert(
                channel,
                ChannelUsage {
                    stored,
                    reserved: 0,
                },
            );
        }
        Ok(Self {
            limit_bytes,
            usage: Mutex::new(usage),
        })
    }

    /// Holds `bytes` for an upload to `channel` until the reservation is committed or dropped.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        channel: &str,
        bytes: u64,
    ) -> Result<Reservation, QuotaExceeded> {
        let mut usage = self.usage.lock().expect("quota lock is never poisoned");
        let entry = usage.entry(channel.to_owned()).or_default();
        let used = entry.stored + entry.reserved;
        if used.saturating_add(bytes) > self.limit_bytes {
            return Err(QuotaExceeded {
                channel: channel.to_owned(),
                used,
                requested: bytes,
                limit_bytes: self.limit_bytes,
            });
        }
        entry.reserved += bytes;
        Ok(Reservation {
            ledger: Arc::clone(self),
            channel: channel.to_owned(),
            bytes,
        })
    }

    /// Records that an object of `bytes` was deleted from `channel`.
    pub(crate) fn forget(&self, channel: &str, bytes: u64) {
        let mut usage = self.usage.lock().expect("quota lock is never poisoned");
        if let Some(entry) = usage.get_mut(channel) {
            entry.stored = entry.stored.saturating_sub(bytes);
        }
    }

    /// Bytes stored in `channel`, not counting uploads in flight.
    pub(crate) fn stored(&self, channel: &str) -> u64 {
        let usage = self.usage.lock().expect("quota lock is never poisoned");
        usage.get(channel).map_or(0, |entry| entry.stored)
    }

    fn settle(&self, channel: &str, reserved: u64, stored_delta: i128) {
        let mut usage = self.usage.lock().expect("quota lock is never poisoned");
        let entry = usage.entry(channel.to_owned()).or_default();
        entry.reserved = entry.reserved.saturating_sub(reserved);
        let stored = (i128::from(entry.stored) + stored_delta).max(0);
        entry.stored = u64::try_from(stored).unwrap_or(u64::MAX);
    }
}

/// Bytes held for one upload in flight; released on drop unless committed.
#[derive(Debug)]
pub(crate) struct Reservation {
    ledger: Arc<QuotaLedger>,
    channel: String,
    bytes: u64,
}

impl Reservation {
    /// The upload became an object of the reserved size, replacing `replaced_bytes`
    /// (0 when the key was new).
    pub(crate) fn commit(mut self, replaced_bytes: u64) {
        let delta = i128::from(self.bytes) - i128::from(replaced_bytes);
        self.ledger.settle(&self.channel, self.bytes, delta);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.ledger.settle(&self.channel, self.bytes, 0);
        }
    }
}

fn tree_size(path: &Path) -> Result<u64, BucketError> {
    let metadata =
        std::fs::symlink_metadata(path).map_err(|source| BucketError::io("stat", path, source))?;
    if !metadata.is_dir() {
        return Ok(metadata.len());
    }
    let mut total = 0;
    let entries =
        std::fs::read_dir(path).map_err(|source| BucketError::io("list", path, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| BucketError::io("list", path, source))?;
        total += tree_size(&entry.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_until_committed_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lab.one/sha1")).unwrap();
        std::fs::write(dir.path().join("lab.one/sha1/x"), b"12345").unwrap();
        let ledger = Arc::new(QuotaLedger::scan(dir.path(), 10).unwrap());
        assert_eq!(ledger.stored("lab.one"), 5);

        let held = ledger.reserve("lab.one", 4).unwrap();
        assert!(
            ledger.reserve("lab.one", 2).is_err(),
            "5 stored + 4 held + 2 > 10"
        );
        drop(held);
        ledger.reserve("lab.one", 5).unwrap().commit(0);
        assert_eq!(ledger.stored("lab.one"), 10);
        assert!(
            ledger.reserve("lab.two", 10).is_ok(),
            "quota is per channel"
        );

        ledger.forget("lab.one", 5);
        ledger.reserve("lab.one", 3).unwrap().commit(2);
        assert_eq!(ledger.stored("lab.one"), 6);
    }
}

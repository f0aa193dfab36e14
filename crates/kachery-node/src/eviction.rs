//! Keeps the store under `max_cache_gib` (SPEC §14.4): an eviction pass at start and every
//! 10 minutes. The store decides what goes (least recently used unpinned blobs, never
//! partials); this loop only runs it.

use std::time::Duration;

use kachery_store::Store;
use tokio_util::sync::CancellationToken;

/// Time between eviction passes.
const EVICTION_PERIOD: Duration = Duration::from_secs(600);

// FIXME: passes run on a timer only; a burst of downloads can overshoot the limit for up to
// 10 minutes until the exchange triggers a pass after each download.
pub(crate) async fn run_eviction(store: Store, cancel: CancellationToken) {
    loop {
        match store.evict_if_needed().await {
            Ok(report) => tracing::debug!(?report, "eviction pass done"),
            Err(error) => tracing::warn!(%error, "eviction pass failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(EVICTION_PERIOD) => {}
        }
    }
}

//! What the exchange reports while it works: [`LoadProgress`] events for one load, the
//! [`Loaded`] result, and [`TransferInfo`] rows for `node status`.
//!
//! Each transfer owns a [`TransferMeter`] of atomic counters that the transfer code bumps
//! as bytes move; the [`TransferRegistry`] lists the live meters, and a reporter task turns
//! a load's meter into at most one progress event every [`PROGRESS_INTERVAL`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use tokio::sync::mpsc;

/// The shortest time between two progress events of one load.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// A snapshot of one load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProgress {
    /// Bytes held so far: verified chunks, chunks found locally, and bytes in flight.
    pub bytes: u64,
    /// The file size, once known (from the manifest, a probe or a provider).
    pub total: Option<u64>,
    pub chunks_done: u64,
    /// 1 for a file without a manifest.
    pub chunks_total: u64,
    /// Providers accepted so far, in order.
    pub providers: Vec<NodeId>,
}

/// A file now in the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub sha1: Sha1Hash,
    /// The complete blob in the store.
    pub path: PathBuf,
    pub size: u64,
    /// True when the store already held the file and nothing moved.
    pub local_hit: bool,
    /// Bytes fetched from buckets for this load (not counting chunks found locally).
    pub bytes_downloaded: u64,
    pub chunks_total: u64,
    pub providers: Vec<NodeId>,
}

/// Which way a transfer moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferDirection {
    /// A load into this node's store.
    Download,
    /// An upload this node makes as a provider.
    Upload,
}

/// One transfer in flight, as `node status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferInfo {
    pub direction: TransferDirection,
    /// The file loaded, or the blob uploaded.
    pub sha1: Sha1Hash,
    /// The channel of an upload; `None` for a load, which may use several.
    pub channel: Option<ChannelName>,
    pub bytes: u64,
    pub total: Option<u64>,
    pub chunks_done: u64,
    pub chunks_total: u64,
    pub peers: Vec<NodeId>,
    pub started_at: SystemTime,
}

/// Live counters of one transfer.
#[derive(Debug)]
pub(crate) struct TransferMeter {
    direction: TransferDirection,
    sha1: Sha1Hash,
    channel: Option<ChannelName>,
    started_at: SystemTime,
    /// See [`LoadProgress::bytes`]; for uploads, bytes read and sent.
    pub bytes: AtomicU64,
    /// Bytes that came from a bucket (the rest was local).
    pub downloaded: AtomicU64,
    /// 0 while unknown.
    pub total: AtomicU64,
    pub chunks_done: AtomicU64,
    pub chunks_total: AtomicU64,
    peers: Mutex<Vec<NodeId>>,
}

impl TransferMeter {
    pub(crate) fn new(
        direction: TransferDirection,
        sha1: Sha1Hash,
        channel: Option<ChannelName>,
    ) -> Arc<Self> {
        Arc::new(Self {
            direction,
            sha1,
            channel,
            started_at: SystemTime::now(),
            bytes: AtomicU64::new(0),
            downloaded: AtomicU64::new(0),
            total: AtomicU64::new(0),
            chunks_done: AtomicU64::new(0),
            chunks_total: AtomicU64::new(1),
            peers: Mutex::new(Vec::new()),
        })
    }

    /// Records a provider (or requester) taking part, once.
    pub(crate) fn add_peer(&self, peer: NodeId) {
        let mut peers = self.peers.lock().expect("meter lock is never poisoned");
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }

    pub(crate) fn peers(&self) -> Vec<NodeId> {
        self.peers
            .lock()
            .expect("meter lock is never poisoned")
            .clone()
    }

    pub(crate) fn set_total_if_unknown(&self, total: u64) {
        let _ = self
            .total
            .compare_exchange(0, total, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn progress(&self) -> LoadProgress {
        let total = self.total.load(Ordering::Relaxed);
        LoadProgress {
            bytes: self.bytes.load(Ordering::Relaxed),
            total: (total > 0).then_some(total),
            chunks_done: self.chunks_done.load(Ordering::Relaxed),
            chunks_total: self.chunks_total.load(Ordering::Relaxed),
            providers: self.peers(),
        }
    }

    fn info(&self) -> TransferInfo {
        let progress = self.progress();
        TransferInfo {
            direction: self.direction,
            sha1: self.sha1,
            channel: self.channel.clone(),
            bytes: progress.bytes,
            total: progress.total,
            chunks_done: progress.chunks_done,
            chunks_total: progress.chunks_total,
            peers: progress.providers,
            started_at: self.started_at,
        }
    }
}

/// The transfers in flight on one exchange.
#[derive(Default)]
pub(crate) struct TransferRegistry {
    next_id: AtomicU64,
    meters: Arc<Mutex<HashMap<u64, Arc<TransferMeter>>>>,
}

impl TransferRegistry {
    /// Lists `meter` until the returned guard is dropped.
    pub(crate) fn register(&self, meter: Arc<TransferMeter>) -> RegistrationGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.meters
            .lock()
            .expect("registry lock is never poisoned")
            .insert(id, meter);
        RegistrationGuard {
            id,
            meters: Arc::clone(&self.meters),
        }
    }

    pub(crate) fn list(&self) -> Vec<TransferInfo> {
        let meters = self.meters.lock().expect("registry lock is never poisoned");
        let mut infos: Vec<TransferInfo> = meters.values().map(|meter| meter.info()).collect();
        infos.sort_by_key(|info| info.started_at);
        infos
    }
}

/// Removes a transfer from the registry when dropped.
pub(crate) struct RegistrationGuard {
    id: u64,
    meters: Arc<Mutex<HashMap<u64, Arc<TransferMeter>>>>,
}

impl Drop for RegistrationGuard {
    fn drop(&mut self) {
        self.meters
            .lock()
            .expect("registry lock is never poisoned")
            .remove(&self.id);
    }
}

/// Sends `meter` snapshots to `progress` every [`PROGRESS_INTERVAL`] while it changes,
/// until the returned guard is dropped. A slow receiver misses snapshots rather than
/// slowing the load down.
pub(crate) fn spawn_reporter(
    meter: Arc<TransferMeter>,
    progress: mpsc::Sender<LoadProgress>,
) -> ReporterGuard {
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sent = None;
        loop {
            ticker.tick().await;
            let snapshot = meter.progress();
            if last_sent.as_ref() != Some(&snapshot) {
                if progress.is_closed() {
                    return;
                }
                let _ = progress.try_send(snapshot.clone());
                last_sent = Some(snapshot);
            }
        }
    });
    ReporterGuard(task.abort_handle())
}

/// Stops a progress reporter when dropped.
pub(crate) struct ReporterGuard(tokio::task::AbortHandle);

impl Drop for ReporterGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

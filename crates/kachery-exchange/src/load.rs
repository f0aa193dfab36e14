//! The entry point of a load (SPEC §15.2 step 1): a local hit, or a choice of channels
//! and then a single-object fetch or a chunked one. Loads of one file are serialized by
//! [`FileLocks`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use kachery_protocol::pubsub::FileKey;
use kachery_protocol::{ChannelName, FileUri, Role, Sha1Hash};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::FileExchange;
use crate::error::LoadError;
use crate::progress::{self, LoadProgress, Loaded, TransferDirection, TransferMeter};
use crate::requester::{Candidates, Destination, Fetched, ObjectRequest};

impl FileExchange {
    /// Fetches the file named by `uri` into the store and says where it is.
    ///
    /// `only_channels` narrows the channels used (the CLI's `--channel`). Progress goes to
    /// `progress` at most every 250 ms; a full or closed receiver only misses events. The
    /// load stops when the returned future is dropped; verified chunks stay recorded and a
    /// later load resumes from them.
    pub async fn load(
        self: &Arc<Self>,
        uri: &FileUri,
        only_channels: Option<Vec<ChannelName>>,
        progress: mpsc::Sender<LoadProgress>,
    ) -> Result<Loaded, LoadError> {
        let span = tracing::info_span!("load", sha1 = %crate::short(&uri.sha1));
        async {
            // One load per file at a time: two would assemble the same partial file. A
            // second caller waits here and then finds the file in the store.
            let _file_lock = self.file_locks.lock(uri.sha1).await;
            self.load_inner(uri, only_channels, progress).await
        }
        .instrument(span)
        .await
    }

    async fn load_inner(
        self: &Arc<Self>,
        uri: &FileUri,
        only_channels: Option<Vec<ChannelName>>,
        progress: mpsc::Sender<LoadProgress>,
    ) -> Result<Loaded, LoadError> {
        if let Some(loaded) = self.local_hit(uri).await? {
            tracing::debug!("local hit");
            let _ = progress.try_send(LoadProgress {
                bytes: loaded.size,
                total: Some(loaded.size),
                chunks_done: loaded.chunks_total,
                chunks_total: loaded.chunks_total,
                providers: Vec::new(),
            });
            return Ok(loaded);
        }

        let candidates = self.candidates(only_channels)?;
        let meter = TransferMeter::new(TransferDirection::Download, uri.sha1, None);
        let _registration = self.transfers.register(Arc::clone(&meter));
        let reporter = progress::spawn_reporter(Arc::clone(&meter), progress.clone());

        let path = match uri.manifest {
            Some(manifest_sha1) => {
                self.load_chunked(uri, manifest_sha1, &candidates, &meter)
                    .await?
            }
            None => {
                let request = ObjectRequest {
                    uri,
                    key: FileKey {
                        sha1: uri.sha1,
                        manifest_sha1: None,
                        chunk_of: None,
                    },
                    destination: Destination::Store {
                        expected_size: None,
                    },
                    candidates: &candidates,
                    meter: &meter,
                };
                match self.fetch_object(request).await? {
                    Fetched::Stored => self.store.blob_path(&uri.sha1),
                    Fetched::NeedsManifest(manifest_sha1) => {
                        tracing::debug!(manifest = %crate::short(&manifest_sha1), "file is chunked");
                        self.load_chunked(uri, manifest_sha1, &candidates, &meter)
                            .await?
                    }
                    Fetched::Bytes(_) => unreachable!("whole-file fetches go into the store"),
                }
            }
        };
        drop(reporter);

        let size = self
            .store
            .blob_size(&uri.sha1)
            .await
            .map_err(|error| LoadError::store("read the loaded file's size", error))?
            .ok_or_else(|| LoadError::Unavailable {
                detail: format!("{uri} was evicted from the store right after loading"),
            })?;
        meter.bytes.store(size, Ordering::Relaxed);
        meter.chunks_done.store(
            meter.chunks_total.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let final_progress = meter.progress();
        let _ = progress.try_send(final_progress.clone());
        tracing::info!(
            size,
            providers = final_progress.providers.len(),
            "file loaded"
        );

        Ok(Loaded {
            sha1: uri.sha1,
            path,
            size,
            local_hit: false,
            bytes_downloaded: meter.downloaded.load(Ordering::Relaxed),
            chunks_total: final_progress.chunks_total,
            providers: final_progress.providers,
        })
    }

    async fn local_hit(&self, uri: &FileUri) -> Result<Option<Loaded>, LoadError> {
        let size = self
            .store
            .blob_size(&uri.sha1)
            .await
            .map_err(|error| LoadError::store("look the file up", error))?;
        let Some(size) = size else { return Ok(None) };
        self.store.touch(&uri.sha1).await;
        Ok(Some(Loaded {
            sha1: uri.sha1,
            path: self.store.blob_path(&uri.sha1),
            size,
            local_hit: true,
            bytes_downloaded: 0,
            chunks_total: size.div_ceil(kachery_protocol::CHUNK_SIZE).max(1),
            providers: Vec::new(),
        }))
    }

    /// The channels this load may use: any effective role to probe, requestFiles and a
    /// live link to ask providers.
    fn candidates(&self, only_channels: Option<Vec<ChannelName>>) -> Result<Candidates, LoadError> {
        let usable: Vec<_> = self
            .network
            .channels()
            .into_iter()
            .filter(|view| !view.effective.is_empty())
            .filter(|view| {
                only_channels
                    .as_ref()
                    .is_none_or(|only| only.contains(&view.channel))
            })
            .collect();
        if usable.is_empty() {
            return Err(LoadError::NoChannels {
                requested: only_channels.unwrap_or_default(),
            });
        }

        let may_request =
            |view: &&crate::network::ChannelView| view.effective.contains(Role::RequestFiles);
        Ok(Candidates {
            probe: usable.iter().map(|view| view.channel.clone()).collect(),
            request: usable
                .iter()
                .filter(may_request)
                .filter(|view| view.link_up)
                .map(|view| view.channel.clone())
                .collect(),
            request_link_down: usable
                .iter()
                .filter(may_request)
                .filter(|view| !view.link_up)
                .map(|view| view.channel.clone())
                .collect(),
        })
    }
}

/// One async lock per file being loaded; entries disappear with their last holder.
#[derive(Default)]
pub(crate) struct FileLocks {
    held: Mutex<HashMap<Sha1Hash, Arc<tokio::sync::Mutex<()>>>>,
}

impl FileLocks {
    async fn lock(&self, sha1: Sha1Hash) -> FileLockGuard<'_> {
        let mutex = Arc::clone(
            self.held
                .lock()
                .expect("file lock map is never poisoned")
                .entry(sha1)
                .or_default(),
        );
        let guard = Arc::clone(&mutex).lock_owned().await;
        FileLockGuard {
            locks: self,
            sha1,
            mutex,
            guard: Some(guard),
        }
    }
}

struct FileLockGuard<'a> {
    locks: &'a FileLocks,
    sha1: Sha1Hash,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for FileLockGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut held = self
            .locks
            .held
            .lock()
            .expect("file lock map is never poisoned");
        // The map and this guard hold the only references: nobody else waits.
        if Arc::strong_count(&self.mutex) == 2 {
            held.remove(&self.sha1);
        }
    }
}

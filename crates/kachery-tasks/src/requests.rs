//! The requester's record of its task requests, for `GET /v1/tasks/{requestId}`: one
//! [`TaskView`] per request in a watch channel, so a reader can long-poll for the next
//! change. Finished requests are kept for [`crate::TaskOptions::keep_finished`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kachery_protocol::pubsub::RequestId;
use kachery_protocol::task::TaskView;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::TaskExchange;

struct Entry {
    view: watch::Sender<TaskView>,
    finished_at: Option<Instant>,
}

// FIXME: views live in memory only; a daemon restart forgets requests in flight, and
// their `task run` then reports that the daemon stopped answering.
#[derive(Default)]
pub(crate) struct RequestRegistry {
    entries: Arc<Mutex<HashMap<RequestId, Entry>>>,
}

/// The writing end of one request's view.
pub(crate) struct ViewUpdater {
    request_id: RequestId,
    view: watch::Sender<TaskView>,
    entries: Arc<Mutex<HashMap<RequestId, Entry>>>,
}

impl RequestRegistry {
    pub(crate) fn insert(&self, view: TaskView, keep_finished: Duration) -> ViewUpdater {
        let request_id = view.request_id;
        let sender = watch::Sender::new(view);
        let mut entries = self
            .entries
            .lock()
            .expect("requests lock is never poisoned");
        entries.retain(|_, entry| {
            entry
                .finished_at
                .is_none_or(|finished_at| finished_at.elapsed() < keep_finished)
        });
        entries.insert(
            request_id,
            Entry {
                view: sender.clone(),
                finished_at: None,
            },
        );
        ViewUpdater {
            request_id,
            view: sender,
            entries: Arc::clone(&self.entries),
        }
    }

    fn watch(&self, request_id: &RequestId) -> Option<watch::Receiver<TaskView>> {
        self.entries
            .lock()
            .expect("requests lock is never poisoned")
            .get(request_id)
            .map(|entry| entry.view.subscribe())
    }
}

impl ViewUpdater {
    /// Applies `change` and bumps the version when it changed anything.
    pub(crate) fn update(&self, change: impl FnOnce(&mut TaskView)) {
        self.view.send_if_modified(|view| {
            let before = view.clone();
            change(view);
            if *view == before {
                return false;
            }
            view.version += 1;
            true
        });
        if self.view.borrow().is_final() {
            let mut entries = self
                .entries
                .lock()
                .expect("requests lock is never poisoned");
            if let Some(entry) = entries.get_mut(&self.request_id) {
                entry.finished_at.get_or_insert_with(Instant::now);
            }
        }
    }

    pub(crate) fn current(&self) -> TaskView {
        self.view.borrow().clone()
    }
}

impl TaskExchange {
    /// The view of request `request_id`; when `since` is its current version, waits up to
    /// `wait` for the next change. `None` for unknown (or long finished) requests.
    pub async fn task_view(
        &self,
        request_id: &RequestId,
        since: Option<u64>,
        wait: Duration,
    ) -> Option<TaskView> {
        let mut view = self.requests.watch(request_id)?;
        if let Some(since) = since {
            let deadline = Instant::now() + wait.min(self.options.max_poll_wait);
            while view.borrow_and_update().version <= since {
                match tokio::time::timeout_at(deadline, view.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }
        let current = view.borrow().clone();
        Some(current)
    }
}

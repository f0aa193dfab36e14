//! Delivery of incoming `fileStatus` messages to the fetch that sent the request.
//!
//! Each object fetch holds a [`StatusSubscription`] and registers every `requestId` it
//! publishes; [`StatusRouter::deliver`] looks the id up and hands the message over without
//! blocking (the channel links call it from their receive loops). Dropping the
//! subscription unregisters its ids, so a cancelled load leaves nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kachery_protocol::pubsub::{FileKey, FileStatus, RequestId};
use kachery_protocol::{ChannelName, NodeId};
use tokio::sync::mpsc;

/// Status messages one fetch can hold before further ones are dropped. A provider sends
/// a handful per request; only a misbehaving one gets near this.
const QUEUE_CAPACITY: usize = 256;

/// One `fileStatus` message as a fetch sees it.
#[derive(Debug, Clone)]
pub(crate) struct StatusEvent {
    pub channel: ChannelName,
    pub provider: NodeId,
    pub request_id: RequestId,
    pub file_key: FileKey,
    pub status: FileStatus,
}

type Routes = Arc<Mutex<HashMap<RequestId, mpsc::Sender<StatusEvent>>>>;

/// Maps request ids to the fetches waiting for their status messages.
#[derive(Default)]
pub(crate) struct StatusRouter {
    routes: Routes,
}

impl StatusRouter {
    /// A new subscription with no request ids yet.
    pub(crate) fn subscribe(&self) -> StatusSubscription {
        let (events_tx, events_rx) = mpsc::channel(QUEUE_CAPACITY);
        StatusSubscription {
            routes: Arc::clone(&self.routes),
            request_ids: Vec::new(),
            events_tx,
            events_rx,
        }
    }

    /// Hands `event` to the fetch that owns its request id; `false` if none does.
    pub(crate) fn deliver(&self, event: StatusEvent) -> bool {
        let routes = self.routes.lock().expect("router lock is never poisoned");
        let Some(events_tx) = routes.get(&event.request_id) else {
            return false;
        };
        match events_tx.try_send(event) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "dropping file status for a full or finished fetch");
                false
            }
        }
    }
}

/// The receiving end of one fetch.
pub(crate) struct StatusSubscription {
    routes: Routes,
    request_ids: Vec<RequestId>,
    events_tx: mpsc::Sender<StatusEvent>,
    events_rx: mpsc::Receiver<StatusEvent>,
}

impl StatusSubscription {
    /// Routes status messages for `request_id` to this subscription from now on.
    pub(crate) fn add(&mut self, request_id: RequestId) {
        self.routes
            .lock()
            .expect("router lock is never poisoned")
            .insert(request_id, self.events_tx.clone());
        self.request_ids.push(request_id);
    }

    /// The next status message; pends forever when none comes (callers race it against a
    /// deadline).
    pub(crate) async fn next(&mut self) -> StatusEvent {
        // The subscription holds a sender itself, so the queue never closes.
        self.events_rx
            .recv()
            .await
            .expect("the subscription keeps its queue open")
    }
}

impl Drop for StatusSubscription {
    fn drop(&mut self) {
        let mut routes = self.routes.lock().expect("router lock is never poisoned");
        for request_id in &self.request_ids {
            routes.remove(request_id);
        }
    }
}

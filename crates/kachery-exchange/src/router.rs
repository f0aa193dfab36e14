//! Delivery of incoming status messages (`fileStatus`, and `taskStatus` in the task
//! exchange) to the request that is waiting for them.
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

/// An event routed by the request id it answers.
pub trait Routed: Send + 'static {
    fn request_id(&self) -> RequestId;
}

/// One `fileStatus` message as a fetch sees it.
#[derive(Debug, Clone)]
pub(crate) struct StatusEvent {
    pub channel: ChannelName,
    pub provider: NodeId,
    pub request_id: RequestId,
    pub file_key: FileKey,
    pub status: FileStatus,
}

impl Routed for StatusEvent {
    fn request_id(&self) -> RequestId {
        self.request_id
    }
}

type Routes<E> = Arc<Mutex<HashMap<RequestId, mpsc::Sender<E>>>>;

/// Maps request ids to the requests waiting for their status messages.
pub struct StatusRouter<E> {
    routes: Routes<E>,
}

impl<E> Default for StatusRouter<E> {
    fn default() -> Self {
        Self {
            routes: Arc::default(),
        }
    }
}

impl<E: Routed> StatusRouter<E> {
    /// A new subscription with no request ids yet.
    pub fn subscribe(&self) -> StatusSubscription<E> {
        let (events_tx, events_rx) = mpsc::channel(QUEUE_CAPACITY);
        StatusSubscription {
            routes: Arc::clone(&self.routes),
            request_ids: Vec::new(),
            events_tx,
            events_rx,
        }
    }

    /// Hands `event` to the request that owns its request id; `false` if none does.
    pub fn deliver(&self, event: E) -> bool {
        let routes = self.routes.lock().expect("router lock is never poisoned");
        let Some(events_tx) = routes.get(&event.request_id()) else {
            return false;
        };
        match events_tx.try_send(event) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "dropping a status for a full or finished request");
                false
            }
        }
    }
}

/// The receiving end of one request.
pub struct StatusSubscription<E> {
    routes: Routes<E>,
    request_ids: Vec<RequestId>,
    events_tx: mpsc::Sender<E>,
    events_rx: mpsc::Receiver<E>,
}

impl<E> StatusSubscription<E> {
    /// Routes status messages for `request_id` to this subscription from now on.
    pub fn add(&mut self, request_id: RequestId) {
        self.routes
            .lock()
            .expect("router lock is never poisoned")
            .insert(request_id, self.events_tx.clone());
        self.request_ids.push(request_id);
    }

    /// The next status message; pends forever when none comes (callers race it against a
    /// deadline).
    pub async fn next(&mut self) -> E {
        // The subscription holds a sender itself, so the queue never closes.
        self.events_rx
            .recv()
            .await
            .expect("the subscription keeps its queue open")
    }
}

impl<E> Drop for StatusSubscription<E> {
    fn drop(&mut self) {
        let mut routes = self.routes.lock().expect("router lock is never poisoned");
        for request_id in &self.request_ids {
            routes.remove(request_id);
        }
    }
}

//! Coalescing of presigned-URL requests: calls for one channel that arrive within a short
//! window go to the hub as one createUploadUrls or createDownloadUrls call.
//!
//! A 40 GB load has thousands of chunks, and a busy provider answers many of them at once;
//! one hub call per object would run into the node-API rate limit (SPEC §21). The first
//! item for a channel opens a batch and starts its timer; the batch is sent when the timer
//! fires or when it reaches [`MAX_ITEMS_PER_CALL`], whichever comes first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kachery_protocol::ChannelName;
use kachery_protocol::limits::MAX_ITEMS_PER_CALL;
use tokio::sync::oneshot;

use crate::network::NetworkError;

/// The hub call a batcher makes: all items of one channel, answers in item order.
pub(crate) type BatchCall<I, O> = Arc<
    dyn Fn(ChannelName, Vec<I>) -> BoxFuture<'static, Result<Vec<O>, NetworkError>> + Send + Sync,
>;

/// A failed batch is shared by every item in it.
pub(crate) type BatchResult<O> = Result<O, Arc<NetworkError>>;

type Waiter<I, O> = (I, oneshot::Sender<BatchResult<O>>);

/// Collects items per channel and sends them together.
pub(crate) struct Batcher<I, O> {
    window: Duration,
    call: BatchCall<I, O>,
    pending: Mutex<HashMap<ChannelName, Vec<Waiter<I, O>>>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub(crate) fn new(window: Duration, call: BatchCall<I, O>) -> Arc<Self> {
        Arc::new(Self {
            window,
            call,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Queues `item` for `channel` and waits for its answer.
    pub(crate) async fn request(
        self: &Arc<Self>,
        channel: &ChannelName,
        item: I,
    ) -> BatchResult<O> {
        let (answer_tx, answer_rx) = oneshot::channel();

        let full_batch = {
            let mut pending = self.pending.lock().expect("batcher lock is never poisoned");
            let batch = pending.entry(channel.clone()).or_default();
            batch.push((item, answer_tx));
            if batch.len() == 1 {
                self.spawn_timer(channel.clone());
            }
            if batch.len() >= MAX_ITEMS_PER_CALL {
                pending.remove(channel)
            } else {
                None
            }
        };
        if let Some(batch) = full_batch {
            tokio::spawn(send_batch(self.call.clone(), channel.clone(), batch));
        }

        answer_rx.await.unwrap_or_else(|_| {
            Err(Arc::new(NetworkError::Other(
                "url batch was dropped before it was answered".into(),
            )))
        })
    }

    fn spawn_timer(self: &Arc<Self>, channel: ChannelName) {
        let batcher = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(batcher.window).await;
            let batch = batcher
                .pending
                .lock()
                .expect("batcher lock is never poisoned")
                .remove(&channel);
            // A full batch may already have been sent, and a new one opened with its own
            // timer; this timer then finds nothing or someone else's young batch. Sending
            // the young batch early is harmless.
            if let Some(batch) = batch {
                send_batch(batcher.call.clone(), channel, batch).await;
            }
        });
    }
}

async fn send_batch<I, O>(call: BatchCall<I, O>, channel: ChannelName, batch: Vec<Waiter<I, O>>) {
    let (items, waiters): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
    let n_items = items.len();
    tracing::trace!(channel = %channel, n_items, "sending url batch");

    match call(channel, items).await {
        Ok(answers) if answers.len() == n_items => {
            for (waiter, answer) in waiters.into_iter().zip(answers) {
                let _ = waiter.send(Ok(answer));
            }
        }
        Ok(answers) => {
            let error = Arc::new(NetworkError::Other(format!(
                "the hub answered {} urls for {n_items} items",
                answers.len()
            )));
            for waiter in waiters {
                let _ = waiter.send(Err(error.clone()));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for waiter in waiters {
                let _ = waiter.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn items_within_the_window_share_one_call() {
        let n_calls = Arc::new(AtomicUsize::new(0));
        let counter = n_calls.clone();
        let call: BatchCall<u32, u32> = Arc::new(move |_channel, items: Vec<u32>| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(items.into_iter().map(|item| item * 10).collect()) })
        });
        let batcher = Batcher::new(Duration::from_millis(100), call);
        let channel = ChannelName::parse("lab.one").unwrap();

        let answers = futures_util::future::join_all((1..=3).map(|item| {
            let batcher = batcher.clone();
            let channel = channel.clone();
            async move { batcher.request(&channel, item).await.unwrap() }
        }))
        .await;

        assert_eq!(answers, vec![10, 20, 30]);
        assert_eq!(n_calls.load(Ordering::SeqCst), 1);
    }
}

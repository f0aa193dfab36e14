//! [`FeedExchange`]: creating, appending, reading and following subfeeds over channels.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kachery_exchange::{ChannelView, Network};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::feed::{self, FeedError, SignedFeedObject};
use kachery_protocol::pubsub::PubsubMessage;
use kachery_protocol::{ChannelName, NodeId, Role, Sha1Hash};
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

use crate::bucket;
use crate::keys::{FeedKeyError, FeedKeys};
use crate::log::{FeedLog, LogError, Rejected, StoredMessage, SubfeedId};
use crate::options::FeedOptions;

/// Room left in a 16 KiB pub-sub envelope for the messages themselves: the body's other
/// fields, the signature and the sender id take well under 1 KiB.
const INLINE_BUDGET_BYTES: usize = kachery_protocol::limits::MAX_PUBSUB_ENVELOPE_BYTES - 1_024;

/// Shortest time between two subscription rounds of one watched subfeed: a read that
/// finds nothing new asks again at once, but not more often than this.
const MIN_ROUND_SPACING: Duration = Duration::from_secs(1);

/// Rejections kept per subfeed for the local API.
const MAX_REJECTIONS_KEPT: usize = 32;

/// Why a feed operation of the local API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedOpError {
    #[error("this node does not own feed {0}; only the owner node appends")]
    NotOwner(NodeId),
    #[error(
        "this node holds no copy of that subfeed and has requestFeeds on no channel{scope}; \
         ask a channel's owner to grant it (kachery node join CHANNEL --roles requestFeeds)"
    )]
    NoReadChannel { scope: String },
    #[error(transparent)]
    Invalid(#[from] FeedError),
    #[error("feed keys")]
    Keys(#[from] FeedKeyError),
    #[error("local feed storage")]
    Log(#[from] LogError),
}

/// A read or long-poll of one subfeed.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub feed_id: NodeId,
    pub subfeed: String,
    /// First message number wanted.
    pub position: u64,
    /// Most messages returned.
    pub max: usize,
    /// How long to wait for a message at `position` when none is held yet; zero reads
    /// only what is held and asks no other node.
    pub wait: Duration,
    /// Channels to follow it on; empty means every channel with requestFeeds.
    pub channels: Vec<ChannelName>,
}

/// What a read returns.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub subfeed_hash: Sha1Hash,
    pub messages: Vec<StoredMessage>,
    /// Messages held locally after the read.
    pub message_count: u64,
    /// Recent refusals of messages of this subfeed, oldest first.
    pub rejections: Vec<RejectionReport>,
}

/// A message refused on receipt: why, and from where.
#[derive(Debug, Clone)]
pub struct RejectionReport {
    pub message_number: Option<u64>,
    /// Stable code: `gap`, `fork`, `bad_signature`, `broken_chain`, …
    pub code: &'static str,
    pub detail: String,
    /// `pubsub <channel> from <node>` or `bucket <key>`.
    pub source: String,
    pub at_ms: i64,
}

struct WatchEntry {
    last_wanted: Instant,
    channels: Vec<ChannelName>,
    /// Wakes the watch loop for an early round (a reader is waiting for news).
    poke: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct UploadEntry {
    scheduled: bool,
    /// Messages known to be in each channel's bucket.
    uploaded: HashMap<ChannelName, u64>,
}

/// The feed exchange of one node; see the crate docs.
pub struct FeedExchange {
    keys: FeedKeys,
    log: FeedLog,
    network: Arc<dyn Network>,
    node_id: NodeId,
    http: reqwest::Client,
    options: FeedOptions,
    watches: Mutex<HashMap<SubfeedId, WatchEntry>>,
    uploads: Mutex<HashMap<SubfeedId, UploadEntry>>,
    rejections: Mutex<HashMap<SubfeedId, VecDeque<RejectionReport>>>,
}

impl FeedExchange {
    /// An exchange with keys in `keys_dir` (`<node dir>/feeds`) and subfeeds in `log_dir`
    /// (`<store dir>/feeds`). Must be called inside a tokio runtime.
    pub fn open(
        keys_dir: std::path::PathBuf,
        log_dir: std::path::PathBuf,
        network: Arc<dyn Network>,
        options: FeedOptions,
    ) -> Result<Arc<Self>, FeedKeyError> {
        Ok(Arc::new(Self {
            keys: FeedKeys::open(keys_dir)?,
            log: FeedLog::new(log_dir),
            node_id: network.node_id(),
            network,
            http: reqwest::Client::new(),
            options,
            watches: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            rejections: Mutex::new(HashMap::new()),
        }))
    }

    /// Creates a feed (or finds the one named `name`); `true` when created now.
    pub fn create(&self, name: Option<&str>) -> Result<(NodeId, bool), FeedOpError> {
        Ok(self.keys.create(name)?)
    }

    /// Signs and appends `messages` to a subfeed of a feed this node owns, pushes them to
    /// the channels at once and schedules the bucket upload. Returns the new count.
    pub fn append(
        self: &Arc<Self>,
        feed_id: NodeId,
        subfeed: &str,
        messages: &[Value],
    ) -> Result<u64, FeedOpError> {
        let subfeed_hash = feed::subfeed_hash(subfeed)?;
        for message in messages {
            feed::check_payload(message)?;
        }
        let key = self
            .keys
            .signing_key(&feed_id)?
            .ok_or(FeedOpError::NotOwner(feed_id))?;
        let id = (feed_id, subfeed_hash);
        let before = self.log.count(&id)?;
        let now = now_ms();
        let count = self
            .log
            .append_own(&id, messages.len(), |number, previous, idx| {
                feed::sign_message(&key, subfeed_hash, number, previous, now, &messages[idx])
            })??;
        tracing::debug!(feed = %feed_id.short(), subfeed = %subfeed_hash, count, "appended");

        for view in self.channels_with(Role::ProvideFeeds, &[]) {
            let exchange = Arc::clone(self);
            tokio::spawn(async move { exchange.push(&view.channel, &id, before, count).await });
        }
        self.schedule_upload(id);
        Ok(count)
    }

    /// Reads up to `max` messages from `position`; when none is held yet and `wait` is
    /// not zero, follows the subfeed on the channels and waits for one.
    pub async fn read(self: &Arc<Self>, request: ReadRequest) -> Result<ReadResult, FeedOpError> {
        let subfeed_hash = feed::subfeed_hash(&request.subfeed)?;
        let id = (request.feed_id, subfeed_hash);
        let owned = self.keys.owns(&request.feed_id);
        if !owned && self.log.count(&id)? == 0 && !self.may_request(&request.channels) {
            let scope = match request.channels.as_slice() {
                [] => String::new(),
                names => format!(
                    " among {}",
                    names
                        .iter()
                        .map(ChannelName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(FeedOpError::NoReadChannel { scope });
        }
        if !request.wait.is_zero() && !owned {
            self.want(id, &request.channels);
        }

        let mut count = self.log.watch_count(&id)?;
        let deadline = Instant::now() + request.wait;
        let mut poked = false;
        let messages = loop {
            let messages = self.log.read(&id, request.position, request.max)?;
            if !messages.is_empty() || Instant::now() >= deadline {
                break messages;
            }
            if !poked {
                self.poke(&id);
                poked = true;
            }
            tokio::select! {
                changed = count.changed() => if changed.is_err() { break messages },
                () = tokio::time::sleep_until(deadline) => {}
            }
        };
        let rejections = self
            .rejections
            .lock()
            .expect("rejection lock")
            .get(&id)
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default();
        Ok(ReadResult {
            subfeed_hash,
            messages,
            message_count: self.log.count(&id)?,
            rejections,
        })
    }

    /// Takes one feed message a channel link accepted. Never blocks: work is spawned.
    pub fn on_message(
        self: &Arc<Self>,
        channel: &ChannelName,
        from: NodeId,
        message: PubsubMessage,
    ) {
        if from == self.node_id {
            return;
        }
        let channel = channel.clone();
        let exchange = Arc::clone(self);
        match message {
            PubsubMessage::SubscribeToSubfeed {
                feed_id,
                subfeed_hash,
                position,
            } => {
                let id = (feed_id, subfeed_hash);
                let span = tracing::debug_span!("serve_subfeed", feed = %feed_id.short(), %channel);
                tokio::spawn(
                    async move { exchange.serve(&channel, &id, position).await }.instrument(span),
                );
            }
            PubsubMessage::NewSubfeedMessages {
                feed_id,
                subfeed_hash,
                messages,
            } => {
                let id = (feed_id, subfeed_hash);
                if self.is_following(&id) {
                    let source = format!("pubsub {channel} from {}", from.short());
                    self.receive(&channel, &id, &messages, source);
                }
            }
            PubsubMessage::SubfeedUploaded {
                feed_id,
                subfeed_hash,
                message_count,
            } => {
                let id = (feed_id, subfeed_hash);
                let behind = self.log.count(&id).is_ok_and(|count| count < message_count);
                if behind && self.is_following(&id) {
                    tokio::spawn(async move {
                        exchange.catch_up(&channel, &id, Some(message_count)).await;
                    });
                }
            }
            _ => {}
        }
    }

    /// Whether received messages of `id` are wanted: a subfeed of someone else's feed
    /// that is being watched, or of which this node already holds a verified copy.
    fn is_following(&self, id: &SubfeedId) -> bool {
        if self.keys.owns(&id.0) {
            return false;
        }
        let watched = self.watches.lock().expect("watch lock").contains_key(id);
        watched || self.log.holds(id)
    }

    /// Verifies and keeps pushed messages; a gap sends the node to the bucket.
    fn receive(
        self: &Arc<Self>,
        channel: &ChannelName,
        id: &SubfeedId,
        messages: &[SignedFeedObject],
        source: String,
    ) {
        let (n_new, rejected) = match self.log.append_received(id, messages) {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to store feed messages");
                return;
            }
        };
        tracing::trace!(feed = %id.0.short(), n_new, "received feed messages");
        let gap = rejected
            .iter()
            .any(|rejected| matches!(rejected.reason, feed::FeedRejection::Gap { .. }));
        self.report(id, &source, rejected);
        if gap {
            let exchange = Arc::clone(self);
            let (channel, id) = (channel.clone(), *id);
            tokio::spawn(async move { exchange.catch_up(&channel, &id, None).await });
        }
    }

    fn report(&self, id: &SubfeedId, source: &str, rejected: Vec<Rejected>) {
        if rejected.is_empty() {
            return;
        }
        let mut kept = self.rejections.lock().expect("rejection lock");
        let kept = kept.entry(*id).or_default();
        for Rejected {
            message_number,
            reason,
        } in rejected
        {
            tracing::warn!(
                feed = %id.0.short(),
                subfeed = %id.1,
                message_number,
                reason = reason.code(),
                %source,
                "feed message rejected"
            );
            if kept.len() == MAX_REJECTIONS_KEPT {
                kept.pop_front();
            }
            kept.push_back(RejectionReport {
                message_number,
                code: reason.code(),
                detail: reason.to_string(),
                source: source.to_owned(),
                at_ms: now_ms(),
            });
        }
    }

    /// Asks the watch loop of `id`, if any, for an early round.
    fn poke(&self, id: &SubfeedId) {
        if let Some(entry) = self.watches.lock().expect("watch lock").get(id) {
            entry.poke.notify_one();
        }
    }

    /// Marks `id` as watched; the first watch starts the subscription loop.
    fn want(self: &Arc<Self>, id: SubfeedId, channels: &[ChannelName]) {
        let mut watches = self.watches.lock().expect("watch lock");
        if let Some(entry) = watches.get_mut(&id) {
            entry.last_wanted = Instant::now();
            entry.channels = channels.to_vec();
            return;
        }
        watches.insert(
            id,
            WatchEntry {
                last_wanted: Instant::now(),
                channels: channels.to_vec(),
                poke: Arc::new(tokio::sync::Notify::new()),
            },
        );
        let exchange = Arc::clone(self);
        let span = tracing::debug_span!("watch_subfeed", feed = %id.0.short(), subfeed = %id.1);
        tokio::spawn(async move { exchange.watch(id).await }.instrument(span));
    }

    /// Subscribes on every reader channel and checks the bucket, every
    /// `resubscribe_interval` (or sooner when poked by a waiting reader) until nobody has
    /// read the subfeed for `watch_linger`.
    async fn watch(self: Arc<Self>, id: SubfeedId) {
        loop {
            let round_started = Instant::now();
            let (channels, poke) = {
                let watches = self.watches.lock().expect("watch lock");
                let Some(entry) = watches.get(&id) else {
                    return;
                };
                (entry.channels.clone(), Arc::clone(&entry.poke))
            };
            let position = self.log.count(&id).unwrap_or(0);
            for view in self.channels_with(Role::RequestFeeds, &channels) {
                let message = PubsubMessage::SubscribeToSubfeed {
                    feed_id: id.0,
                    subfeed_hash: id.1,
                    position,
                };
                if let Err(error) = self.network.publish(&view.channel, message).await {
                    tracing::debug!(channel = %view.channel, %error, "subscription not sent");
                }
                let exchange = Arc::clone(&self);
                tokio::spawn(async move { exchange.catch_up(&view.channel, &id, None).await });
            }

            tokio::select! {
                () = tokio::time::sleep(self.options.resubscribe_interval) => {}
                () = poke.notified() => {
                    tokio::time::sleep_until(round_started + MIN_ROUND_SPACING).await;
                }
            }
            let mut watches = self.watches.lock().expect("watch lock");
            let idle = watches
                .get(&id)
                .is_none_or(|entry| entry.last_wanted.elapsed() > self.options.watch_linger);
            if idle {
                watches.remove(&id);
                return;
            }
        }
    }

    /// Answers a subscription with what this node holds beyond `position`: inline when
    /// it is a few messages, else through the bucket.
    async fn serve(self: &Arc<Self>, channel: &ChannelName, id: &SubfeedId, position: u64) {
        let may_provide =
            self.network.channels().iter().any(|view| {
                &view.channel == channel && view.effective.contains(Role::ProvideFeeds)
            });
        let count = self.log.count(id).unwrap_or(0);
        if !may_provide || count <= position {
            return;
        }
        if count - position <= self.options.max_inline_messages
            && self.push(channel, id, position, count).await
        {
            return;
        }
        self.upload_to(channel, id).await;
    }

    /// Publishes messages `from..to` in envelopes under 16 KiB; false when one message
    /// alone is too large to go inline (the bucket must carry it).
    async fn push(&self, channel: &ChannelName, id: &SubfeedId, from: u64, to: u64) -> bool {
        let Ok(objects) = self.log.signed(id, from, to) else {
            return false;
        };
        let mut batch: Vec<SignedFeedObject> = Vec::new();
        let mut batch_bytes = 0;
        for object in objects {
            let size = serde_json::to_vec(&object).map_or(usize::MAX, |bytes| bytes.len());
            if size > INLINE_BUDGET_BYTES {
                return false;
            }
            if batch_bytes + size > INLINE_BUDGET_BYTES {
                self.publish_messages(channel, id, std::mem::take(&mut batch))
                    .await;
                batch_bytes = 0;
            }
            batch_bytes += size + 1;
            batch.push(object);
        }
        self.publish_messages(channel, id, batch).await;
        true
    }

    async fn publish_messages(
        &self,
        channel: &ChannelName,
        id: &SubfeedId,
        messages: Vec<SignedFeedObject>,
    ) {
        if messages.is_empty() {
            return;
        }
        let message = PubsubMessage::NewSubfeedMessages {
            feed_id: id.0,
            subfeed_hash: id.1,
            messages,
        };
        if let Err(error) = self.network.publish(channel, message).await {
            tracing::debug!(%channel, %error, "feed messages not pushed");
        }
    }

    /// Uploads the owner's appends after a short delay, batching those that come meanwhile.
    fn schedule_upload(self: &Arc<Self>, id: SubfeedId) {
        {
            let mut uploads = self.uploads.lock().expect("upload lock");
            let entry = uploads.entry(id).or_default();
            if entry.scheduled {
                return;
            }
            entry.scheduled = true;
        }
        let exchange = Arc::clone(self);
        let span = tracing::debug_span!("upload_subfeed", feed = %id.0.short());
        tokio::spawn(
            async move {
                tokio::time::sleep(exchange.options.upload_delay).await;
                if let Some(entry) = exchange.uploads.lock().expect("upload lock").get_mut(&id) {
                    entry.scheduled = false;
                }
                for view in exchange.channels_with(Role::ProvideFeeds, &[]) {
                    exchange.upload_to(&view.channel, &id).await;
                }
            }
            .instrument(span),
        );
    }

    /// Brings the channel's bucket up to what this node holds (segments, and the head when
    /// this node owns the feed), then announces the count.
    async fn upload_to(&self, channel: &ChannelName, id: &SubfeedId) {
        let Ok(tip) = self.log.tip(id) else { return };
        let uploaded = self
            .uploads
            .lock()
            .expect("upload lock")
            .get(id)
            .and_then(|entry| entry.uploaded.get(channel).copied())
            .unwrap_or(0);
        if uploaded >= tip.count {
            self.announce(channel, id, tip.count).await;
            return;
        }

        for (start, end) in feed::segment_ranges(uploaded, tip.count) {
            let Ok(messages) = self.log.signed(id, start, end) else {
                return;
            };
            let sent =
                bucket::upload_segment(&self.http, &*self.network, channel, id, start, &messages)
                    .await;
            if let Err(error) = sent {
                tracing::warn!(%channel, start, end, error = %error_chain(&error), "segment upload failed");
                return;
            }
        }
        if let (Ok(Some(key)), Some(last)) = (self.keys.signing_key(&id.0), tip.last_signature) {
            let head = feed::sign_head(&key, id.1, tip.count, last, now_ms());
            let sent = bucket::upload_head(&self.http, &*self.network, channel, id, &head).await;
            if let Err(error) = sent {
                tracing::warn!(%channel, error = %error_chain(&error), "head upload failed");
                return;
            }
        }
        self.uploads
            .lock()
            .expect("upload lock")
            .entry(*id)
            .or_default()
            .uploaded
            .insert(channel.clone(), tip.count);
        tracing::debug!(%channel, count = tip.count, "subfeed uploaded");
        self.announce(channel, id, tip.count).await;
    }

    async fn announce(&self, channel: &ChannelName, id: &SubfeedId, message_count: u64) {
        let message = PubsubMessage::SubfeedUploaded {
            feed_id: id.0,
            subfeed_hash: id.1,
            message_count,
        };
        if let Err(error) = self.network.publish(channel, message).await {
            tracing::debug!(%channel, %error, "upload not announced");
        }
    }

    /// Reads the channel's bucket copy from what this node holds up to `target` (the
    /// bucket head's count when `None`), verifying every message before keeping it.
    async fn catch_up(&self, channel: &ChannelName, id: &SubfeedId, target: Option<u64>) {
        let target = match target {
            Some(target) => target,
            None => {
                let key = BucketKey::feed_head(channel, &id.0, &id.1);
                let source = format!("bucket {key}");
                let head = bucket::download_json::<SignedFeedObject>(
                    &self.http,
                    &*self.network,
                    channel,
                    key,
                    "signed head",
                )
                .await;
                match head {
                    Ok(Some(head)) => match feed::verify_head(&id.0, &id.1, &head) {
                        Ok(head) => head.message_count,
                        Err(reason) => {
                            let rejected = Rejected {
                                message_number: None,
                                reason,
                            };
                            self.report(id, &source, vec![rejected]);
                            return;
                        }
                    },
                    Ok(None) => return,
                    Err(error) => {
                        tracing::debug!(%channel, error = %error_chain(&error), "no bucket head");
                        return;
                    }
                }
            }
        };

        let Ok(held) = self.log.count(id) else { return };
        for (start, end) in feed::segment_ranges(held, target) {
            let key = BucketKey::feed_segment(channel, &id.0, &id.1, start, end);
            let source = format!("bucket {key}");
            let segment = bucket::download_json::<Vec<SignedFeedObject>>(
                &self.http,
                &*self.network,
                channel,
                key,
                "array of signed messages",
            )
            .await;
            let objects = match segment {
                Ok(Some(objects)) => objects,
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%channel, error = %error_chain(&error), "segment unavailable");
                    return;
                }
            };
            match self.log.append_received(id, &objects) {
                Ok((_, rejected)) if rejected.is_empty() => {}
                Ok((_, rejected)) => {
                    // FIXME: a bad segment is not reported to the hub (reportCorruptObject);
                    // matters once the hub verifies feed objects and can delete them.
                    self.report(id, &source, rejected);
                    return;
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "failed to store feed messages");
                    return;
                }
            }
        }
    }

    /// Linked channels whose effective roles include `role`, narrowed to `only` if given.
    /// Whether some channel (of `only`, when given) grants requestFeeds, link up or not:
    /// a link that is still connecting will carry the read once it is up.
    fn may_request(&self, only: &[ChannelName]) -> bool {
        self.network.channels().iter().any(|view| {
            view.effective.contains(Role::RequestFeeds)
                && (only.is_empty() || only.contains(&view.channel))
        })
    }

    fn channels_with(&self, role: Role, only: &[ChannelName]) -> Vec<ChannelView> {
        self.network
            .channels()
            .into_iter()
            .filter(|view| view.link_up && view.effective.contains(role))
            .filter(|view| only.is_empty() || only.contains(&view.channel))
            .collect()
    }
}

/// Milliseconds since the Unix epoch, the unit of every wire time.
fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds since 1970 fit in i64")
}

/// `error: cause: cause …` on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

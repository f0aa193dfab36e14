//! Timers and sizes of the feed exchange; defaults are the SPEC's, tests shorten them.

use std::time::Duration;

/// Knobs of [`crate::FeedExchange`], set in code.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// How often a watching reader re-sends `subscribeToSubfeed`. Default 30 s (SPEC §16).
    pub resubscribe_interval: Duration,
    /// How long after its last read a subfeed stays watched. Default 60 s: two
    /// subscriptions, so a follower between two long-polls never drops out.
    pub watch_linger: Duration,
    /// How long the owner collects appends before uploading segments and head. Default
    /// 500 ms: pushes are immediate, the bucket copy only serves late joiners.
    pub upload_delay: Duration,
    /// Most messages answered inline to one subscription; beyond that the answer goes
    /// through the bucket. Default 100.
    pub max_inline_messages: u64,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            resubscribe_interval: Duration::from_secs(30),
            watch_linger: Duration::from_secs(60),
            upload_delay: Duration::from_millis(500),
            max_inline_messages: 100,
        }
    }
}

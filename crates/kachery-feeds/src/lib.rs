//! Feeds of kachery (SPEC §16): signed, hash-chained, append-only subfeeds that follow
//! their owner's appends on other nodes through the channels.
//!
//! A feed is an Ed25519 key pair kept by its owner node ([`keys`]); only that node appends.
//! Every node keeps what it holds of a subfeed in a verified local log ([`log`]): nothing
//! enters it that does not verify against the feed key and chain onto what is already
//! held, whether it came from the pub-sub wire or from a bucket, and a gap, a fork or a bad
//! signature is rejected and reported instead.
//!
//! [`FeedExchange`] moves messages between nodes, seeing the world only through the file
//! exchange's `Network` trait:
//! - readers publish `subscribeToSubfeed{position}` on their channels when they start
//!   watching and every 30 s while they watch, and read the bucket head to catch up;
//! - the owner pushes `newSubfeedMessages` inline at once after each append (when the
//!   envelope stays under 16 KiB), and uploads segments and the head in batches, then
//!   announces `subfeedUploaded{messageCount}`;
//! - any node with provideFeeds holding verified messages answers a subscription beyond
//!   what the reader holds, so a replica serves while the owner is offline.
//!
//! Module map: `keys` (feed key files), `log` (verified local subfeeds), `bucket` (segment
//! and head objects), `exchange` (the protocol), `options`.

mod bucket;
mod exchange;
pub mod keys;
pub mod log;
mod options;

pub use bucket::BucketError;
pub use exchange::{FeedExchange, FeedOpError, ReadRequest, ReadResult, RejectionReport};
pub use keys::{FeedKeyError, FeedKeys};
pub use log::{FeedLog, LogError, StoredMessage, SubfeedId};
pub use options::FeedOptions;

use kachery_protocol::pubsub::PubsubMessage;

/// Whether a message belongs to the feed exchange (the link routes it here).
pub fn is_feed_message(message: &PubsubMessage) -> bool {
    matches!(
        message,
        PubsubMessage::SubscribeToSubfeed { .. }
            | PubsubMessage::NewSubfeedMessages { .. }
            | PubsubMessage::SubfeedUploaded { .. }
    )
}

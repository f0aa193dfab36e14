//! The [`BucketBackend`] trait every bucket implementation provides (SPEC §7.2).
//!
//! The hub holds one `Arc<dyn BucketBackend>` per channel and uses it to presign the
//! requests nodes send (nodes see buckets only as URLs), and to read, probe and delete
//! objects itself when it checks a corrupt-object report (§7.5). Presigning is
//! synchronous and local (an HMAC, SigV4 or GCS V4 signature); the other operations
//! talk to the store and return boxed futures so the trait stays object-safe.
//!
//! Which keys are create-only is decided here, once, from the key's kind ([`write_rule`]),
//! so every backend applies the same rule of SPEC §7.1.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use kachery_protocol::bucket_key::{BucketKey, ObjectKind};
use kachery_protocol::node_api::PresignedRequest;

/// An object store that can presign requests for nodes and serve the hub's own reads.
pub trait BucketBackend: Send + Sync {
    /// Short backend name shown in node config and logs: `"embedded"`, `"s3"`, `"gcs"`.
    fn kind(&self) -> &'static str;

    /// A PUT of exactly `exact_size` bytes to `key`, valid until `expires_at_ms` (Unix ms).
    /// Create-only keys (see [`write_rule`]) are bound as such where the backend can.
    fn presign_put(
        &self,
        key: &BucketKey,
        exact_size: u64,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError>;

    /// A GET or HEAD of `key`, valid until `expires_at_ms` (Unix ms).
    fn presign_get(
        &self,
        key: &BucketKey,
        method: ReadMethod,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError>;

    /// The size of the object, or `None` when it does not exist.
    fn head(&self, key: &BucketKey) -> BoxFuture<'_, Result<Option<u64>, BucketError>>;

    /// The whole object, or `None` when it does not exist. Fails with
    /// [`BucketError::ObjectTooLarge`] instead of reading more than `max_bytes`.
    fn get(
        &self,
        key: &BucketKey,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, BucketError>>;

    /// Deletes the object; `false` when there was nothing to delete.
    fn delete(&self, key: &BucketKey) -> BoxFuture<'_, Result<bool, BucketError>>;

    /// The unsigned URL anyone may read `key` at (`readMode = "public"`, SPEC §7.3), or
    /// `None` when this bucket serves reads only through presigned URLs (the default).
    fn public_url(&self, key: &BucketKey) -> Option<String> {
        let _ = key;
        None
    }
}

/// The HTTP method of a presigned read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadMethod {
    Get,
    Head,
}

impl ReadMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMethod::Get => "GET",
            ReadMethod::Head => "HEAD",
        }
    }
}

/// How a key may be written (SPEC §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRule {
    /// The first complete upload wins; later ones are discarded and still succeed.
    CreateOnly,
    /// A later upload replaces the object (feed heads, task result records).
    Replace,
}

/// The write rule of an object kind: blobs and feed segments are immutable once written.
pub fn write_rule(kind: &ObjectKind) -> WriteRule {
    match kind {
        ObjectKind::Blob(_) | ObjectKind::FeedSegment { .. } => WriteRule::CreateOnly,
        ObjectKind::FeedHead { .. } | ObjectKind::TaskResult(_) => WriteRule::Replace,
    }
}

/// A failure of a bucket backend operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object {key} has {size} bytes, more than the {max_bytes} allowed for this read")]
    ObjectTooLarge {
        key: BucketKey,
        size: u64,
        max_bytes: u64,
    },
    #[error("public base url {0:?} must start with http:// or https:// and have no query")]
    InvalidPublicBase(String),
    /// A setting of an S3 bucket is unusable; the message names it and what is allowed.
    #[error("invalid s3 bucket config: {0}")]
    InvalidS3Config(String),
    /// A setting or the key file of a GCS bucket is unusable; the message says which.
    #[error("invalid gcs bucket config: {0}")]
    InvalidGcsConfig(String),
    /// Signing a URL failed (a bug or a bad clock rather than a bad request).
    #[error("failed to presign a bucket request")]
    Presign(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The requested expiry is further away than the signature scheme allows.
    #[error(
        "presigned url would be valid for {expires_in_secs} s, more than the {max_secs} s \
         the store accepts"
    )]
    ExpiryTooFar { expires_in_secs: u64, max_secs: u64 },
    /// A request of the hub to a remote object store failed (network, credentials,
    /// permissions, missing bucket); the source holds the store's answer.
    #[error("failed to {action} {key} in the object store")]
    Store {
        action: &'static str,
        key: BucketKey,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BucketError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        BucketError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use kachery_protocol::{ChannelName, NodeId, Sha1Hash};

    use super::*;

    #[test]
    fn blobs_and_segments_are_create_only_heads_and_records_are_replaced() {
        let channel = ChannelName::parse("lab.one").unwrap();
        let hash = Sha1Hash::of(b"x");
        let feed_id = NodeId::parse(&"c".repeat(64)).unwrap();
        let rule_of = |key: BucketKey| write_rule(&BucketKey::parse(key.as_str()).unwrap().1);

        assert_eq!(
            rule_of(BucketKey::blob(&channel, &hash)),
            WriteRule::CreateOnly
        );
        assert_eq!(
            rule_of(BucketKey::feed_segment(&channel, &feed_id, &hash, 0, 5)),
            WriteRule::CreateOnly
        );
        assert_eq!(
            rule_of(BucketKey::feed_head(&channel, &feed_id, &hash)),
            WriteRule::Replace
        );
        assert_eq!(
            rule_of(BucketKey::task_result(&channel, &hash)),
            WriteRule::Replace
        );
    }
}

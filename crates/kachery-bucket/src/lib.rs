//! Bucket backends of kachery (SPEC §7): where a channel's objects live and how nodes are
//! given narrowly scoped, short-lived access to them.
//!
//! The hub talks to every backend through [`BucketBackend`]: it presigns PUT, GET and
//! HEAD requests for nodes (who see buckets only as URLs) and reads, probes and deletes
//! objects itself when it checks a corrupt-object report. [`write_rule`] decides, from the
//! key alone, which objects are create-only.
//!
//! Backends:
//! - [`EmbeddedBucket`]: files under the hub's data directory, served by the hub's own
//!   HTTP server with HMAC-signed URLs; it checks size and SHA-1 while an upload streams,
//!   so it never holds a wrong blob.
//! - S3-compatible and GCS backends will sit behind the same trait (SigV4 and V4 signed
//!   URLs binding the exact size and create-only headers, SPEC §7.2).
//!
//! Keys are always [`BucketKey`](kachery_protocol::bucket_key::BucketKey)s built or parsed
//! by `kachery-protocol`, so no backend is ever asked about an arbitrary path.

mod backend;
mod embedded;

pub use backend::{BucketBackend, BucketError, ReadMethod, WriteRule, write_rule};
pub use embedded::{DEFAULT_QUOTA_BYTES_PER_CHANNEL, EmbeddedBucket, EmbeddedBucketOptions};

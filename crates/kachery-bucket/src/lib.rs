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
//! - [`S3Bucket`] (cargo feature `s3`, on by default): any S3-compatible store, with
//!   SigV4 URLs binding the exact key, size, content type and create-only header; it
//!   cannot check content at write time, so readers verify (see the `s3` module doc).
//! - [`GcsBucket`] (cargo feature `gcs`, on by default): Google Cloud Storage, with V4
//!   signed URLs binding key, exact size (`x-goog-content-length-range`), content type
//!   and create-only (`x-goog-if-generation-match: 0`); also signs the hub's own reads.
//!
//! Keys are always [`BucketKey`](kachery_protocol::bucket_key::BucketKey)s built or parsed
//! by `kachery-protocol`, so no backend is ever asked about an arbitrary path.

mod backend;
mod embedded;
#[cfg(feature = "gcs")]
mod gcs;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3-test-server")]
pub mod s3_test_server;

pub use backend::{BucketBackend, BucketError, ReadMethod, WriteRule, write_rule};
pub use embedded::{DEFAULT_QUOTA_BYTES_PER_CHANNEL, EmbeddedBucket, EmbeddedBucketOptions};
#[cfg(feature = "gcs")]
pub use gcs::{GCS_ENDPOINT, GcsBucket, GcsBucketConfig, GcsServiceAccount};
#[cfg(feature = "s3")]
pub use s3::{S3Bucket, S3BucketConfig, S3SecretKey};

//! Protocol constants and default limits (SPEC §4.3, §21). Times are milliseconds.

/// Largest clock difference accepted on signed requests and messages.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// How long a seen nonce is remembered; must exceed twice the skew window.
pub const NONCE_MEMORY_MS: i64 = 10 * 60 * 1000;
/// How old a registration envelope may be.
pub const REGISTRATION_MAX_AGE_MS: i64 = 60 * 60 * 1000;
/// How far in the future a registration timestamp may be.
pub const REGISTRATION_MAX_AHEAD_MS: i64 = 5 * 60 * 1000;
/// Lifetime of a pub-sub credential; nodes renew at 80 %.
pub const PUBSUB_CREDENTIAL_TTL_MS: i64 = 30 * 60 * 1000;
/// Lifetime of presigned upload and download URLs.
pub const PRESIGNED_URL_TTL_MS: i64 = 15 * 60 * 1000;
/// Largest node-API request body.
pub const MAX_NODE_API_BODY_BYTES: usize = 256 * 1024;
/// Largest user-API request body.
pub const MAX_USER_API_BODY_BYTES: usize = 64 * 1024;
/// Largest single signed pub-sub envelope.
pub const MAX_PUBSUB_ENVELOPE_BYTES: usize = 16_384;
/// Largest broker message (a batch of envelopes).
pub const MAX_BROKER_MESSAGE_BYTES: usize = 32_000;
/// Items per createUploadUrls or createDownloadUrls call.
pub const MAX_ITEMS_PER_CALL: usize = 1_000;
/// Largest blob upload: one chunk.
pub const MAX_BLOB_UPLOAD_BYTES: u64 = crate::CHUNK_SIZE;

//! Knobs of the file exchange: the timers and limits of SPEC §15.4 and §18.2.
//!
//! The defaults are the SPEC values; tests shrink the timers so a not-found answer or a
//! stalled provider is seen in milliseconds rather than seconds.

use std::time::Duration;

/// The largest `parallel_chunks` accepted; larger values are clamped.
pub const MAX_PARALLEL_CHUNKS: usize = 32;

/// Timers and concurrency limits of one [`crate::FileExchange`].
#[derive(Debug, Clone)]
pub struct ExchangeOptions {
    /// How long a requester waits for the first `claimed` after publishing `requestFile`
    /// before answering `not_found`. Default 5 s.
    pub no_claim_timeout: Duration,
    /// How long later claims stay usable as a fallback, and how long a provider keeps an
    /// unaccepted claim. Default 10 s.
    pub standby: Duration,
    /// How long an accepted provider has to send its first `uploading`. Default 10 s.
    pub start_timeout: Duration,
    /// How long an upload may go without a progress message before the provider counts as
    /// stalled. Default 30 s.
    pub stall_timeout: Duration,
    /// Provider attempts per object before the load gives up with `timeout`. Default 3.
    pub max_attempts: u32,
    /// Chunks of one file fetched at the same time. Default 4, at most
    /// [`MAX_PARALLEL_CHUNKS`].
    pub parallel_chunks: usize,
    /// Uploads this node runs at once as a provider; further requests are not claimed.
    /// Default 4.
    pub max_concurrent_uploads: usize,
    /// Channels probed at once for a bucket copy. Default 4.
    pub probe_concurrency: usize,
}

impl Default for ExchangeOptions {
    fn default() -> Self {
        Self {
            no_claim_timeout: Duration::from_secs(5),
            standby: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            max_attempts: 3,
            parallel_chunks: 4,
            max_concurrent_uploads: 4,
            probe_concurrency: 4,
        }
    }
}

impl ExchangeOptions {
    /// The same options with every count brought into its valid range.
    pub(crate) fn normalized(mut self) -> Self {
        self.parallel_chunks = self.parallel_chunks.clamp(1, MAX_PARALLEL_CHUNKS);
        self.max_attempts = self.max_attempts.max(1);
        self.max_concurrent_uploads = self.max_concurrent_uploads.max(1);
        self.probe_concurrency = self.probe_concurrency.max(1);
        self
    }
}

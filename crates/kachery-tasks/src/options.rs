//! Knobs of the task exchange. The claim timers are the file exchange's (SPEC §15.4);
//! the rest are set here. Tests shorten them.

use std::time::Duration;

use kachery_exchange::ExchangeOptions;

/// Timers and limits of one [`crate::TaskExchange`].
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// No-claim, standby, start and stall timers and attempts, as for files: 5 s, 10 s,
    /// 10 s, 30 s, 3.
    pub claims: ExchangeOptions,
    /// How often a provider repeats `queued` or `running` while a job is in hand, so the
    /// requester's stall timer sees it alive. Default 5 s.
    pub heartbeat: Duration,
    /// How long a worker's functions stay registered after its last poll. Default 60 s.
    pub registration_ttl: Duration,
    /// How long a running job may go without a report from its worker before it fails.
    /// Default 5 min.
    pub job_lease: Duration,
    /// Longest long-poll a worker or reader may ask for. Default 25 s, inside the
    /// 30 s request timeout of the local API clients.
    pub max_poll_wait: Duration,
    /// Jobs waiting for a worker before new requests are no longer claimed. Default 16.
    pub max_queued_jobs: usize,
    /// How long finished requests stay visible to `GET /v1/tasks/{requestId}`.
    /// Default 10 min.
    pub keep_finished: Duration,
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            claims: ExchangeOptions::default(),
            heartbeat: Duration::from_secs(5),
            registration_ttl: Duration::from_secs(60),
            job_lease: Duration::from_secs(300),
            max_poll_wait: Duration::from_secs(25),
            max_queued_jobs: 16,
            keep_finished: Duration::from_secs(600),
        }
    }
}

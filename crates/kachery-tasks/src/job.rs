//! A job: one run of a function on this node as a provider, shared by every accepted
//! request for the same pure or query task while it is in flight.
//!
//! The job's [`JobState`] lives in a watch channel: workers move it (taken, progress,
//! finished, failed) and the provider's driver task (`provider`) follows it to publish
//! heartbeats and the final status to every subscribed request.

use std::sync::Mutex;

use kachery_protocol::pubsub::RequestId;
use kachery_protocol::task::WorkerJob;
use kachery_protocol::{ChannelName, Sha1Hash};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting for a worker to poll.
    Queued,
    /// A worker took it.
    Running {
        progress: Option<String>,
    },
    /// Done; the payload (sha1, size) is in the local store unless the type stores none.
    Finished {
        result: Option<(Sha1Hash, u64)>,
    },
    Failed {
        message: String,
    },
}

impl JobState {
    pub(crate) fn is_final(&self) -> bool {
        matches!(self, JobState::Finished { .. } | JobState::Failed { .. })
    }
}

/// A request waiting for a job's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscriber {
    pub channel: ChannelName,
    pub request_id: RequestId,
}

pub(crate) struct Job {
    pub spec: WorkerJob,
    pub state: watch::Sender<JobState>,
    subscribers: Mutex<Vec<Subscriber>>,
    /// When the worker last reported (or took the job); the lease runs from here.
    last_report: Mutex<Instant>,
}

impl Job {
    pub(crate) fn new(spec: WorkerJob, first: Subscriber) -> Self {
        Self {
            spec,
            state: watch::Sender::new(JobState::Queued),
            subscribers: Mutex::new(vec![first]),
            last_report: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn current(&self) -> JobState {
        self.state.borrow().clone()
    }

    pub(crate) fn subscribe(&self, subscriber: Subscriber) {
        self.subscribers
            .lock()
            .expect("subscribers lock is never poisoned")
            .push(subscriber);
    }

    pub(crate) fn subscribers(&self) -> Vec<Subscriber> {
        self.subscribers
            .lock()
            .expect("subscribers lock is never poisoned")
            .clone()
    }

    /// Moves to `next` unless the job already ended; returns whether it moved.
    pub(crate) fn set(&self, next: JobState) -> bool {
        self.touch();
        self.state.send_if_modified(|state| {
            if state.is_final() || *state == next {
                return false;
            }
            *state = next;
            true
        })
    }

    pub(crate) fn touch(&self) {
        *self
            .last_report
            .lock()
            .expect("lease lock is never poisoned") = Instant::now();
    }

    pub(crate) fn last_report(&self) -> Instant {
        *self
            .last_report
            .lock()
            .expect("lease lock is never poisoned")
    }
}

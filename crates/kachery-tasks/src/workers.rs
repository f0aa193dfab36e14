//! Worker processes and their jobs: registrations by long-poll, the queue of accepted
//! jobs, and the reports that move a job along (SPEC §17, local API in §13.4).
//!
//! A worker registers the functions it offers by polling `/v1/tasks/backends/poll`; the
//! registration lasts [`crate::TaskOptions::registration_ttl`] after each poll, and the
//! provider claims requests only for registered functions. A poll returns the oldest
//! queued job the worker offers, or nothing when its wait runs out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kachery_protocol::jcs::to_canonical_vec;
use kachery_protocol::pubsub::RequestId;
use kachery_protocol::task::{
    FunctionId, MAX_RESULT_BYTES, TaskFunction, TaskType, WorkerPollRequest, WorkerPollResponse,
    WorkerReport,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::TaskExchange;
use crate::error::ReportError;
use crate::job::{Job, JobState};

/// How long a poll waits when the worker does not say.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(25);

#[derive(Default)]
pub(crate) struct WorkerRegistry {
    inner: Mutex<Registry>,
    job_queued: Notify,
}

#[derive(Default)]
struct Registry {
    /// Registered functions and when their registration lapses.
    functions: HashMap<FunctionId, (TaskType, Instant)>,
    queue: VecDeque<Arc<Job>>,
    /// Jobs handed to a worker, by job id, until they end.
    taken: HashMap<RequestId, Arc<Job>>,
}

impl WorkerRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner
            .lock()
            .expect("worker registry lock is never poisoned")
    }

    fn register(&self, functions: &[TaskFunction], ttl: Duration) {
        let expires = Instant::now() + ttl;
        let mut registry = self.lock();
        for function in functions {
            registry.functions.insert(
                function.function_id.clone(),
                (function.function_type, expires),
            );
        }
    }

    /// Whether a live registration offers `function_id` with this type.
    pub(crate) fn serves(&self, function_id: &FunctionId, function_type: TaskType) -> bool {
        let now = Instant::now();
        self.lock()
            .functions
            .get(function_id)
            .is_some_and(|(registered, expires)| *registered == function_type && *expires > now)
    }

    /// Functions with a live registration.
    pub(crate) fn functions(&self) -> Vec<TaskFunction> {
        let now = Instant::now();
        let mut functions: Vec<TaskFunction> = self
            .lock()
            .functions
            .iter()
            .filter(|(_, (_, expires))| *expires > now)
            .map(|(function_id, (function_type, _))| TaskFunction {
                function_id: function_id.clone(),
                function_type: *function_type,
            })
            .collect();
        functions.sort_by(|a, b| a.function_id.cmp(&b.function_id));
        functions
    }

    pub(crate) fn n_queued(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn enqueue(&self, job: Arc<Job>) {
        self.lock().queue.push_back(job);
        self.job_queued.notify_waiters();
    }

    /// Waits up to `wait` for a queued job among `offered` and hands it out.
    async fn take(&self, offered: &[TaskFunction], wait: Duration) -> Option<Arc<Job>> {
        let deadline = Instant::now() + wait;
        loop {
            // Listen before looking, so a job queued in between is not missed.
            let queued = self.job_queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            if let Some(job) = self.try_take(offered) {
                return Some(job);
            }
            if tokio::time::timeout_at(deadline, queued).await.is_err() {
                return None;
            }
        }
    }

    fn try_take(&self, offered: &[TaskFunction]) -> Option<Arc<Job>> {
        let mut registry = self.lock();
        registry.queue.retain(|job| !job.current().is_final());
        let job_idx = registry.queue.iter().position(|job| {
            offered.iter().any(|function| {
                function.function_id == job.spec.function_id
                    && function.function_type == job.spec.function_type
            })
        })?;
        let job = registry.queue.remove(job_idx)?;
        registry.taken.insert(job.spec.job_id, Arc::clone(&job));
        job.set(JobState::Running { progress: None });
        Some(job)
    }

    fn taken(&self, job_id: &RequestId) -> Option<Arc<Job>> {
        self.lock().taken.get(job_id).cloned()
    }

    /// Drops every trace of a job that ended.
    pub(crate) fn forget(&self, job_id: &RequestId) {
        let mut registry = self.lock();
        registry.taken.remove(job_id);
        registry.queue.retain(|job| job.spec.job_id != *job_id);
    }
}

impl TaskExchange {
    /// `POST /v1/tasks/backends/poll`: registers the worker's functions and waits for a
    /// job it offers (at most [`crate::TaskOptions::max_poll_wait`]).
    pub async fn poll(&self, request: WorkerPollRequest) -> WorkerPollResponse {
        let ttl = self.options.registration_ttl;
        self.workers.register(&request.functions, ttl);
        let wait = request
            .wait_ms
            .map_or(DEFAULT_POLL_WAIT, Duration::from_millis)
            .min(self.options.max_poll_wait);

        let job = self.workers.take(&request.functions, wait).await;
        // The wait itself counts as liveness: renew from its end.
        self.workers.register(&request.functions, ttl);
        if let Some(job) = &job {
            tracing::debug!(job = %job.spec.job_id, function = %job.spec.function_id, "job handed to a worker");
        }
        WorkerPollResponse {
            job: job.map(|job| job.spec.clone()),
        }
    }

    /// `POST /v1/tasks/{jobId}/status`: a worker's progress, result or failure.
    pub async fn report(&self, job_id: RequestId, report: WorkerReport) -> Result<(), ReportError> {
        let job = self
            .workers
            .taken(&job_id)
            .ok_or_else(|| ReportError::UnknownJob(job_id.to_string()))?;
        match report {
            WorkerReport::Running { progress } => {
                job.set(JobState::Running { progress });
            }
            WorkerReport::Finished { result } => {
                let stored = if job.spec.function_type.stores_result() {
                    let bytes = to_canonical_vec(&result).map_err(|_| ReportError::NotCanonical)?;
                    if bytes.len() as u64 > MAX_RESULT_BYTES {
                        return Err(ReportError::TooLarge(bytes.len()));
                    }
                    let ingested = self
                        .store
                        .ingest_bytes(&bytes, false)
                        .await
                        .map_err(|error| ReportError::Store(error.to_string()))?;
                    Some((ingested.sha1, ingested.size))
                } else {
                    None
                };
                job.set(JobState::Finished { result: stored });
                self.workers.forget(&job_id);
            }
            WorkerReport::Error { message } => {
                job.set(JobState::Failed { message });
                self.workers.forget(&job_id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kachery_protocol::task::WorkerJob;
    use kachery_protocol::{ChannelName, Nonce, Sha1Hash};

    use super::*;
    use crate::job::Subscriber;

    fn function(id: &str, function_type: TaskType) -> TaskFunction {
        TaskFunction {
            function_id: FunctionId::parse(id).unwrap(),
            function_type,
        }
    }

    fn job(id: u8, function_id: &str) -> Arc<Job> {
        let spec = WorkerJob {
            job_id: Nonce::from_bytes([id; 16]),
            function_id: FunctionId::parse(function_id).unwrap(),
            function_type: TaskType::PureCalculation,
            task_hash: Sha1Hash::of(&[id]),
            kwargs: serde_json::Map::new(),
        };
        let subscriber = Subscriber {
            channel: ChannelName::parse("lab.one").unwrap(),
            request_id: spec.job_id,
        };
        Arc::new(Job::new(spec, subscriber))
    }

    #[tokio::test(start_paused = true)]
    async fn registrations_lapse_and_type_must_match() {
        let registry = WorkerRegistry::default();
        let add = function("f.add", TaskType::PureCalculation);
        registry.register(std::slice::from_ref(&add), Duration::from_secs(60));
        assert!(registry.serves(&add.function_id, TaskType::PureCalculation));
        assert!(!registry.serves(&add.function_id, TaskType::Action));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!registry.serves(&add.function_id, TaskType::PureCalculation));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_gets_only_jobs_it_offers_and_each_job_once() {
        let registry = WorkerRegistry::default();
        registry.enqueue(job(1, "f.other"));
        registry.enqueue(job(2, "f.add"));
        let offered = [function("f.add", TaskType::PureCalculation)];

        let taken = registry
            .take(&offered, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(taken.spec.job_id, Nonce::from_bytes([2; 16]));
        assert_eq!(taken.current(), JobState::Running { progress: None });
        assert!(
            registry
                .take(&offered, Duration::from_secs(1))
                .await
                .is_none()
        );
        assert!(registry.taken(&Nonce::from_bytes([2; 16])).is_some());
        assert_eq!(registry.n_queued(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_poll_wakes_for_a_new_job() {
        let registry = Arc::new(WorkerRegistry::default());
        let offered = vec![function("f.add", TaskType::PureCalculation)];
        let waiting = {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move { registry.take(&offered, Duration::from_secs(20)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        registry.enqueue(job(3, "f.add"));
        let taken = waiting.await.unwrap().expect("the poll got the job");
        assert_eq!(taken.spec.job_id, Nonce::from_bytes([3; 16]));
    }
}

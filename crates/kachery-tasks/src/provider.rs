//! The provider side (SPEC §17): claiming `requestTask` when a worker offers the
//! function, queueing accepted requests as jobs, heartbeats while they wait or run, and
//! storing and announcing results.
//!
//! Accepted requests for the same pure or query task share the job in flight; a pure
//! task this node already computed is answered from its store without running again.
//! Each job has one driver task that publishes `queued` / `running` every heartbeat to
//! every subscribed request, fails the job when its worker stops reporting, and at the
//! end uploads the payload and signed record to each subscriber's channel before
//! publishing `finished` (or `error{message}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kachery_protocol::pubsub::{PubsubMessage, RequestId};
use kachery_protocol::task::{FunctionId, TaskState, TaskType, WorkerJob, task_hash};
use kachery_protocol::{ChannelName, NodeId, Nonce, Role, Sha1Hash};
use serde_json::{Map, Value};

use crate::TaskExchange;
use crate::job::{Job, JobState, Subscriber};

/// A task call as requested.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub task_hash: Sha1Hash,
    pub function_id: FunctionId,
    pub function_type: TaskType,
    pub kwargs: Map<String, Value>,
}

/// A claim this node published and the requester has not accepted yet.
struct PendingClaim {
    channel: ChannelName,
    requester: NodeId,
    call: Call,
}

/// Provider bookkeeping of one task exchange.
#[derive(Default)]
pub(crate) struct ProviderState {
    claims: Mutex<HashMap<RequestId, PendingClaim>>,
    /// Pure and query jobs in flight, by task hash: later requests join them.
    shared_jobs: Mutex<HashMap<Sha1Hash, Arc<Job>>>,
    /// Pure results this node computed: task hash → payload (sha1, size) in the store.
    // FIXME: kept in memory only; after a restart the bucket copy still serves requesters.
    pure_results: Mutex<HashMap<Sha1Hash, (Sha1Hash, u64)>>,
}

impl ProviderState {
    fn pure_result(&self, task_hash: &Sha1Hash) -> Option<(Sha1Hash, u64)> {
        self.pure_results
            .lock()
            .expect("results lock is never poisoned")
            .get(task_hash)
            .copied()
    }
}

impl TaskExchange {
    /// Handles a `requestTask` from `requester` on `channel`.
    pub(crate) async fn on_request_task(
        self: Arc<Self>,
        channel: ChannelName,
        requester: NodeId,
        request_id: RequestId,
        call: Call,
        exclude: Vec<NodeId>,
    ) {
        if exclude.contains(&self.node_id) || !self.holds_role(&channel, Role::ProvideTasks) {
            return;
        }
        // The hash names the cache entry: never trust the requester's arithmetic.
        if task_hash(&call.function_id, &call.kwargs).ok() != Some(call.task_hash) {
            tracing::debug!("task hash does not match function and kwargs; ignored");
            return;
        }
        let cached = call.function_type == TaskType::PureCalculation
            && self.provider.pure_result(&call.task_hash).is_some();
        if !cached && !self.workers.serves(&call.function_id, call.function_type) {
            tracing::trace!("no worker offers this function");
            return;
        }
        if !cached && self.workers.n_queued() >= self.options.max_queued_jobs {
            tracing::debug!("job queue full, not claiming");
            return;
        }

        let task_hash = call.task_hash;
        self.provider
            .claims
            .lock()
            .expect("claims lock is never poisoned")
            .insert(
                request_id,
                PendingClaim {
                    channel: channel.clone(),
                    requester,
                    call,
                },
            );
        self.publish_state(&channel, request_id, task_hash, TaskState::Claimed)
            .await;
        tracing::debug!(requester = %requester.short(), "task claimed");

        tokio::time::sleep(self.options.claims.standby).await;
        let expired = self
            .provider
            .claims
            .lock()
            .expect("claims lock is never poisoned")
            .remove(&request_id);
        if expired.is_some() {
            tracing::debug!("task claim expired unaccepted");
        }
    }

    /// Handles an `acceptClaim` for a task naming this node.
    pub(crate) fn on_accept_claim(
        self: &Arc<Self>,
        channel: &ChannelName,
        requester: NodeId,
        request_id: RequestId,
        task_hash: Sha1Hash,
    ) {
        let claim = {
            let mut claims = self
                .provider
                .claims
                .lock()
                .expect("claims lock is never poisoned");
            let matches = claims.get(&request_id).is_some_and(|claim| {
                claim.channel == *channel
                    && claim.requester == requester
                    && claim.call.task_hash == task_hash
            });
            if !matches {
                tracing::debug!(request_id = %request_id, "accept for an unknown or expired task claim");
                return;
            }
            claims
                .remove(&request_id)
                .expect("the claim was just found")
        };
        tracing::debug!(request_id = %request_id, channel = %channel, "task claim accepted");
        let subscriber = Subscriber {
            channel: claim.channel,
            request_id,
        };
        let exchange = Arc::clone(self);
        let span = tracing::debug_span!("task_job", request_id = %request_id, function = %claim.call.function_id);
        tokio::spawn(tracing::Instrument::instrument(
            exchange.run_accepted(subscriber, claim.call),
            span,
        ));
    }

    /// Answers one accepted request: from a stored pure result, by joining a job in
    /// flight, or with a new job.
    async fn run_accepted(self: Arc<Self>, subscriber: Subscriber, call: Call) {
        if call.function_type == TaskType::PureCalculation {
            if let Some((sha1, size)) = self.provider.pure_result(&call.task_hash) {
                tracing::debug!("answering from a result this node computed");
                self.deliver_result(&[subscriber], &call, Some((sha1, size)))
                    .await;
                return;
            }
        }

        let job = {
            let mut shared = self
                .provider
                .shared_jobs
                .lock()
                .expect("shared jobs lock is never poisoned");
            let running = shared
                .get(&call.task_hash)
                .filter(|job| !job.current().is_final());
            if let Some(job) = running {
                tracing::debug!(job = %job.spec.job_id, "joining the run in flight");
                job.subscribe(subscriber.clone());
                None
            } else {
                let spec = WorkerJob {
                    job_id: subscriber.request_id,
                    function_id: call.function_id.clone(),
                    function_type: call.function_type,
                    task_hash: call.task_hash,
                    kwargs: call.kwargs.clone(),
                };
                let job = Arc::new(Job::new(spec, subscriber.clone()));
                if call.function_type != TaskType::Action {
                    shared.insert(call.task_hash, Arc::clone(&job));
                }
                Some(job)
            }
        };

        match job {
            Some(job) => {
                self.workers.enqueue(Arc::clone(&job));
                self.drive_job(job, call).await;
            }
            None => {
                // The joined job's driver heartbeats to us from its next beat; say so now.
                self.publish_state(
                    &subscriber.channel,
                    subscriber.request_id,
                    call.task_hash,
                    TaskState::Queued,
                )
                .await;
            }
        }
    }

    /// Follows one job to its end, publishing heartbeats and the outcome.
    // FIXME: a daemon shutdown ends jobs without telling their requesters; they see a
    // stall after 30 s (an action then ends with `timeout`, as it must not be rerun).
    async fn drive_job(&self, job: Arc<Job>, call: Call) {
        let mut changes = job.state.subscribe();
        let final_state = loop {
            let state = changes.borrow_and_update().clone();
            let status = match &state {
                JobState::Queued => TaskState::Queued,
                JobState::Running { progress } => TaskState::Running {
                    progress: progress.clone(),
                },
                JobState::Finished { .. } | JobState::Failed { .. } => break state,
            };
            self.publish_to(&job.subscribers(), call.task_hash, status)
                .await;

            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break job.current() },
                () = tokio::time::sleep(self.options.heartbeat) => self.check_job_health(&job),
            }
        };

        if let JobState::Finished {
            result: Some(result),
        } = &final_state
            && call.function_type == TaskType::PureCalculation
        {
            self.provider
                .pure_results
                .lock()
                .expect("results lock is never poisoned")
                .insert(call.task_hash, *result);
        }
        // From here on no request can join: subscribers are complete.
        self.provider
            .shared_jobs
            .lock()
            .expect("shared jobs lock is never poisoned")
            .remove(&call.task_hash);
        self.workers.forget(&job.spec.job_id);

        let subscribers = job.subscribers();
        match final_state {
            JobState::Finished { result } => {
                self.deliver_result(&subscribers, &call, result).await;
            }
            JobState::Failed { message } => {
                tracing::debug!(%message, "task failed");
                self.publish_to(&subscribers, call.task_hash, TaskState::Error { message })
                    .await;
            }
            JobState::Queued | JobState::Running { .. } => {}
        }
    }

    /// Fails a job whose worker went quiet, or that no worker can take any more.
    fn check_job_health(&self, job: &Job) {
        match job.current() {
            JobState::Running { .. } if job.last_report().elapsed() > self.options.job_lease => {
                let message = format!(
                    "the worker stopped reporting on this job for {} s",
                    self.options.job_lease.as_secs()
                );
                job.set(JobState::Failed { message });
            }
            JobState::Queued
                if !self
                    .workers
                    .serves(&job.spec.function_id, job.spec.function_type) =>
            {
                let message = format!(
                    "no worker on the provider offers {} any more",
                    job.spec.function_id
                );
                job.set(JobState::Failed { message });
            }
            _ => {}
        }
    }

    /// Stores the result in each subscriber's channel and announces it there.
    async fn deliver_result(
        &self,
        subscribers: &[Subscriber],
        call: &Call,
        result: Option<(Sha1Hash, u64)>,
    ) {
        let Some((sha1, size)) = result else {
            let finished = TaskState::Finished {
                result_sha1: None,
                result_size: None,
            };
            self.publish_to(subscribers, call.task_hash, finished).await;
            return;
        };

        let mut channels: Vec<&ChannelName> = subscribers.iter().map(|s| &s.channel).collect();
        channels.sort();
        channels.dedup();
        for channel in channels {
            let here: Vec<Subscriber> = subscribers
                .iter()
                .filter(|subscriber| subscriber.channel == *channel)
                .cloned()
                .collect();
            let status = match self.write_result(channel, call, sha1, size).await {
                Ok(()) => TaskState::Finished {
                    result_sha1: Some(sha1),
                    result_size: Some(size),
                },
                Err(detail) => {
                    tracing::warn!(channel = %channel, %detail, "could not store a task result");
                    TaskState::Error {
                        message: format!("the provider could not store the result: {detail}"),
                    }
                }
            };
            self.publish_to(&here, call.task_hash, status).await;
        }
    }

    /// Answers `probeTaskFunctions` with the functions workers offer here.
    pub(crate) async fn answer_probe(&self, channel: &ChannelName, probe_id: Nonce) {
        let functions = self.workers.functions();
        if functions.is_empty() || !self.holds_role(channel, Role::ProvideTasks) {
            return;
        }
        let message = PubsubMessage::TaskFunctions {
            probe_id,
            functions,
        };
        if let Err(error) = self.network.publish(channel, message).await {
            tracing::debug!(channel = %channel, %error, "could not answer a function probe");
        }
    }

    async fn publish_to(&self, subscribers: &[Subscriber], task_hash: Sha1Hash, state: TaskState) {
        for subscriber in subscribers {
            self.publish_state(
                &subscriber.channel,
                subscriber.request_id,
                task_hash,
                state.clone(),
            )
            .await;
        }
    }

    /// Publishes one `taskStatus`; failures are logged (the requester's timers cover them).
    async fn publish_state(
        &self,
        channel: &ChannelName,
        request_id: RequestId,
        task_hash: Sha1Hash,
        status: TaskState,
    ) {
        let message = PubsubMessage::TaskStatus {
            request_id,
            task_hash,
            status,
        };
        if let Err(error) = self.network.publish(channel, message).await {
            tracing::warn!(channel = %channel, %error, "could not publish task status");
        }
    }

    pub(crate) fn holds_role(&self, channel: &ChannelName, role: Role) -> bool {
        self.network
            .channels()
            .iter()
            .any(|view| view.channel == *channel && view.effective.contains(role))
    }
}

//! The requester side (SPEC §17): one task request from start to result.
//!
//! 1. Pure calculations look for a verified cached result in each usable channel's
//!    bucket first; a hit needs no provider at all.
//! 2. Otherwise `requestTask` goes out on every channel where this node holds
//!    requestTasks and the link is up, and the file exchange's [`Arbiter`] picks the
//!    provider: the first claim wins, later ones stand by, a provider that never starts or
//!    stalls is replaced, except that an action is never reassigned once it started.
//! 3. `finished` brings the payload from the bucket into the local store (verified by
//!    hash and size); `error{message}` ends the request with the worker's message.
//! 4. A query nobody answers falls back to the last cached result.
//!
//! Every step shows in the request's [`TaskView`].

use std::sync::Arc;

use kachery_exchange::arbiter::{Action, Arbiter, Claim, GiveUp, Signal};
use kachery_protocol::pubsub::{PubsubMessage, RequestId};
use kachery_protocol::task::{
    TaskInputError, TaskRunRequest, TaskState, TaskType, TaskView, check_kwargs, task_hash,
};
use kachery_protocol::{ChannelName, FileUri, NodeId, Role, Sha1Hash};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::TaskError;
use crate::provider::Call;
use crate::requests::ViewUpdater;
use crate::results::{CacheRead, PayloadError};
use crate::{TaskEvent, TaskExchange};

/// Results up to this size are shown inline in the view when they are JSON.
const MAX_INLINE_RESULT_BYTES: u64 = 1 << 20;

/// The channels one request may use, fixed when it starts.
struct Candidates {
    /// Channels with any effective role: their buckets are read for cached results.
    read: Vec<ChannelName>,
    /// Channels with requestTasks and a live link.
    request: Vec<ChannelName>,
    /// Channels with requestTasks whose link is down right now.
    request_link_down: Vec<ChannelName>,
}

/// A request's result.
struct Outcome {
    result: Option<(Sha1Hash, u64)>,
    provider: Option<NodeId>,
    channel: Option<ChannelName>,
    from_cache: bool,
}

/// What looking through the caches found.
enum CacheLookup {
    Found(Outcome),
    Corrupt(String),
    Missing,
}

impl TaskExchange {
    /// Starts a task request in the background and returns its first view.
    pub fn start_request(self: &Arc<Self>, request: TaskRunRequest) -> Result<TaskView, TaskError> {
        let kwargs = check_kwargs(&request.kwargs)?.clone();
        let task_hash = task_hash(&request.function_id, &kwargs)
            .map_err(|_| TaskInputError::KwargsNotCanonical)?;
        let request_id = crate::new_request_id();
        let view = TaskView {
            request_id,
            task_hash,
            function_id: request.function_id.clone(),
            function_type: request.function_type,
            state: "requested".to_owned(),
            version: 1,
            progress: None,
            provider_node_id: None,
            channel: None,
            result_uri: None,
            result: None,
            from_cache: false,
            error_code: None,
            message: None,
        };
        let updater = self
            .requests
            .insert(view.clone(), self.options.keep_finished);
        let call = Call {
            task_hash,
            function_id: request.function_id,
            function_type: request.function_type,
            kwargs,
        };

        let span = tracing::debug_span!(
            "task_request",
            request_id = %request_id,
            function = %call.function_id,
            task = %crate::short(&task_hash),
        );
        let exchange = Arc::clone(self);
        tokio::spawn(
            async move {
                let outcome = exchange.resolve(&call, &request.channels, &updater).await;
                exchange.conclude(&updater, outcome).await;
            }
            .instrument(span),
        );
        Ok(view)
    }

    async fn resolve(
        &self,
        call: &Call,
        only: &[ChannelName],
        view: &ViewUpdater,
    ) -> Result<Outcome, TaskError> {
        let candidates = self.candidates(only);
        let mut corrupt_cache = None;
        if call.function_type == TaskType::PureCalculation {
            match self.find_cached(call, &candidates.read).await {
                CacheLookup::Found(outcome) => return Ok(outcome),
                CacheLookup::Corrupt(detail) => corrupt_cache = Some(detail),
                CacheLookup::Missing => {}
            }
        }
        if candidates.request.is_empty() {
            if let Some(detail) = corrupt_cache {
                return Err(integrity(call, detail));
            }
            return Err(no_request_channel(&candidates));
        }

        let asked = self.arbitrate(call, &candidates, view).await;
        match asked {
            // A query whose live run did not come through (no provider, a timeout, or a
            // provider that failed it, e.g. because its worker died) answers from the
            // last verified result for the same arguments, when there is one.
            Err(
                TaskError::NotFound { .. }
                | TaskError::Timeout { .. }
                | TaskError::TaskFailed { .. }
                | TaskError::Unavailable { .. },
            ) if call.function_type == TaskType::Query => {
                tracing::debug!("the query got no live answer; trying the cache");
                match self.find_cached(call, &candidates.read).await {
                    CacheLookup::Found(outcome) => Ok(outcome),
                    CacheLookup::Corrupt(detail) => Err(integrity(call, detail)),
                    CacheLookup::Missing => match asked {
                        Err(TaskError::NotFound {
                            function_id,
                            function_type,
                            channels_tried,
                            ..
                        }) => Err(TaskError::NotFound {
                            function_id,
                            function_type,
                            channels_tried,
                            cache_checked: true,
                        }),
                        other => other,
                    },
                }
            }
            Err(TaskError::NotFound { .. }) if corrupt_cache.is_some() => {
                Err(integrity(call, corrupt_cache.unwrap_or_default()))
            }
            other => other,
        }
    }

    /// Reads each channel's cache in preference order; the first verified hit wins.
    async fn find_cached(&self, call: &Call, channels: &[ChannelName]) -> CacheLookup {
        let mut corrupt = None;
        for channel in channels {
            match self.read_cached(channel, &call.task_hash).await {
                CacheRead::Hit(record) => {
                    tracing::debug!(channel = %channel, "cached result found");
                    return CacheLookup::Found(Outcome {
                        result: Some((record.result_sha1, record.result_size)),
                        provider: Some(record.provider_node_id),
                        channel: Some(channel.clone()),
                        from_cache: true,
                    });
                }
                CacheRead::Corrupt(detail) => corrupt = Some(detail),
                CacheRead::Missing => {}
            }
        }
        corrupt.map_or(CacheLookup::Missing, CacheLookup::Corrupt)
    }

    /// Requests the task and follows the chosen provider to its outcome.
    async fn arbitrate(
        &self,
        call: &Call,
        candidates: &Candidates,
        view: &ViewUpdater,
    ) -> Result<Outcome, TaskError> {
        let mut subscription = self.status_router.subscribe();
        let mut arbiter = Arbiter::new(&self.options.claims, Instant::now());
        if call.function_type == TaskType::Action {
            arbiter = arbiter.without_reassignment_after_start();
        }

        let mut action = Action::Rerequest;
        loop {
            action = match action {
                Action::Wait => tokio::select! {
                    event = subscription.next() => {
                        if event.task_hash == call.task_hash {
                            let claim = Claim {
                                request_id: event.request_id,
                                channel: event.channel.clone(),
                                provider: event.provider,
                            };
                            let signal = signal_of(&event, arbiter.active() == Some(&claim), view);
                            match arbiter.on_signal(claim, signal, Instant::now()) {
                                Action::Completed(claim) => {
                                    return self.take_result(call, claim, event.status).await;
                                }
                                next => next,
                            }
                        } else {
                            Action::Wait
                        }
                    }
                    () = tokio::time::sleep_until(arbiter.deadline()) => {
                        arbiter.on_deadline(Instant::now())
                    }
                },
                Action::Rerequest => {
                    if let Err(give_up) = arbiter.start_round(Instant::now()) {
                        return Err(give_up_error(call, candidates, give_up));
                    }
                    let request_id = crate::new_request_id();
                    subscription.add(request_id);
                    self.publish_request(call, candidates, request_id, arbiter.excluded())
                        .await?;
                    view.update(|view| view.state = "requested".to_owned());
                    Action::Wait
                }
                Action::Accept(claim) => {
                    tracing::debug!(
                        channel = %claim.channel,
                        provider = %claim.provider.short(),
                        "accepting task claim"
                    );
                    view.update(|view| {
                        view.state = "claimed".to_owned();
                        view.provider_node_id = Some(claim.provider);
                        view.channel = Some(claim.channel.clone());
                    });
                    let message = PubsubMessage::AcceptClaim {
                        request_id: claim.request_id,
                        provider: claim.provider,
                        task_hash: Some(call.task_hash),
                    };
                    match self.network.publish(&claim.channel, message).await {
                        Ok(()) => Action::Wait,
                        Err(error) => arbiter.on_provider_failed(
                            format!("could not accept claim on {}: {error}", claim.channel),
                            Instant::now(),
                        ),
                    }
                }
                // Completion is handled where the status message is at hand.
                Action::Completed(_) => Action::Wait,
                Action::GiveUp(give_up) => return Err(give_up_error(call, candidates, give_up)),
            };
        }
    }

    /// The accepted provider is done: bring its result home.
    async fn take_result(
        &self,
        call: &Call,
        claim: Claim,
        status: TaskState,
    ) -> Result<Outcome, TaskError> {
        let outcome = |result| Outcome {
            result,
            provider: Some(claim.provider),
            channel: Some(claim.channel.clone()),
            from_cache: false,
        };
        match status {
            TaskState::Finished {
                result_sha1: Some(sha1),
                result_size: Some(size),
            } => match self.fetch_payload(&claim.channel, &sha1, size).await {
                Ok(()) => Ok(outcome(Some((sha1, size)))),
                Err(PayloadError::Corrupt(detail)) => Err(integrity(call, detail)),
                Err(PayloadError::Missing) => Err(TaskError::Unavailable {
                    detail: format!(
                        "provider {} reported a result, but channel {}'s bucket has no payload {sha1}",
                        claim.provider.short(),
                        claim.channel
                    ),
                }),
                Err(PayloadError::Unavailable(detail)) => Err(TaskError::Unavailable { detail }),
            },
            TaskState::Finished { .. } if call.function_type.stores_result() => {
                Err(TaskError::Unavailable {
                    detail: format!(
                        "provider {} finished without naming a result",
                        claim.provider.short()
                    ),
                })
            }
            TaskState::Finished { .. } => Ok(outcome(None)),
            TaskState::Error { message } => Err(TaskError::TaskFailed {
                function_id: call.function_id.clone(),
                message,
            }),
            TaskState::Claimed | TaskState::Queued | TaskState::Running { .. } => {
                unreachable!("only final states complete a request")
            }
        }
    }

    async fn publish_request(
        &self,
        call: &Call,
        candidates: &Candidates,
        request_id: RequestId,
        excluded: &[NodeId],
    ) -> Result<(), TaskError> {
        let mut n_published = 0;
        let mut last_error = String::new();
        for channel in &candidates.request {
            let message = PubsubMessage::RequestTask {
                request_id,
                task_hash: call.task_hash,
                function_id: call.function_id.clone(),
                function_type: call.function_type,
                kwargs: call.kwargs.clone(),
                exclude: excluded.to_vec(),
            };
            match self.network.publish(channel, message).await {
                Ok(()) => n_published += 1,
                Err(error) => {
                    tracing::warn!(channel = %channel, %error, "could not publish task request");
                    last_error = format!("{channel}: {error}");
                }
            }
        }
        tracing::debug!(request_id = %request_id, n_published, "task requested");
        if n_published == 0 {
            return Err(TaskError::Unavailable {
                detail: format!("could not publish the request on any channel ({last_error})"),
            });
        }
        Ok(())
    }

    fn candidates(&self, only: &[ChannelName]) -> Candidates {
        let views: Vec<_> = self
            .network
            .channels()
            .into_iter()
            .filter(|view| only.is_empty() || only.contains(&view.channel))
            .filter(|view| !view.effective.is_empty())
            .collect();
        let may_request =
            |view: &&kachery_exchange::ChannelView| view.effective.contains(Role::RequestTasks);
        Candidates {
            read: views.iter().map(|view| view.channel.clone()).collect(),
            request: views
                .iter()
                .filter(may_request)
                .filter(|view| view.link_up)
                .map(|view| view.channel.clone())
                .collect(),
            request_link_down: views
                .iter()
                .filter(may_request)
                .filter(|view| !view.link_up)
                .map(|view| view.channel.clone())
                .collect(),
        }
    }

    /// Writes the outcome into the view, with the result inline when it is small JSON.
    async fn conclude(&self, view: &ViewUpdater, outcome: Result<Outcome, TaskError>) {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::debug!(code = error.code(), %error, "task request failed");
                view.update(|view| {
                    view.state = "error".to_owned();
                    view.error_code = Some(error.code().to_owned());
                    view.message = Some(error.to_string());
                });
                return;
            }
        };

        let mut inline = None;
        if let Some((sha1, size)) = outcome.result
            && size <= MAX_INLINE_RESULT_BYTES
            && let Ok(Some(bytes)) = self.store.read_small(&sha1, MAX_INLINE_RESULT_BYTES).await
        {
            inline = serde_json::from_slice(&bytes).ok();
        }
        let function_id = view.current().function_id;
        view.update(|view| {
            view.state = "finished".to_owned();
            view.progress = None;
            view.provider_node_id = outcome.provider.or(view.provider_node_id);
            view.channel = outcome.channel.or(view.channel.take());
            view.from_cache = outcome.from_cache;
            view.result_uri = outcome.result.map(|(sha1, _)| {
                let label = format!("{function_id}.json");
                FileUri::new(sha1, Some(&label), None).to_string()
            });
            view.result = inline;
        });
    }
}

/// What a `taskStatus` means to arbitration; the active provider's `queued` and
/// `running` also show in the view.
fn signal_of(event: &TaskEvent, from_active: bool, view: &ViewUpdater) -> Signal {
    match &event.status {
        TaskState::Claimed => Signal::Claimed,
        TaskState::Queued | TaskState::Running { .. } => {
            if from_active {
                view.update(|view| match &event.status {
                    TaskState::Running { progress } => {
                        view.state = "running".to_owned();
                        view.progress = progress.clone();
                    }
                    _ => view.state = "queued".to_owned(),
                });
            }
            Signal::Progress
        }
        TaskState::Finished { .. } | TaskState::Error { .. } => Signal::Completed,
    }
}

fn integrity(call: &Call, detail: String) -> TaskError {
    TaskError::Integrity {
        function_id: call.function_id.clone(),
        detail,
    }
}

fn give_up_error(call: &Call, candidates: &Candidates, give_up: GiveUp) -> TaskError {
    match give_up {
        GiveUp::NoClaim => TaskError::NotFound {
            function_id: call.function_id.clone(),
            function_type: call.function_type,
            channels_tried: candidates.request.clone(),
            cache_checked: call.function_type == TaskType::PureCalculation,
        },
        GiveUp::Exhausted {
            attempts,
            last_failure,
        } => TaskError::Timeout {
            function_id: call.function_id.clone(),
            attempts,
            detail: last_failure,
        },
    }
}

/// Why no `requestTask` can be sent: no role (denied) or no live link (unavailable).
fn no_request_channel(candidates: &Candidates) -> TaskError {
    if candidates.request_link_down.is_empty() {
        TaskError::Denied {
            channels: candidates.read.clone(),
        }
    } else {
        let names: Vec<&str> = candidates
            .request_link_down
            .iter()
            .map(ChannelName::as_str)
            .collect();
        TaskError::Unavailable {
            detail: format!("no live pub-sub link on channel(s) {}", names.join(", ")),
        }
    }
}

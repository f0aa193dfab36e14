//! The reconcile loop (SPEC §13.2): make the open links match the hub's node config.
//!
//! It runs at start, every `interval` (60 s, ±10 % jitter), when `POST /v1/reconcile`
//! asks (the caller waits for that run's result), and when a link reports that the hub
//! refused it. Each run asks getNodeConfig (with the last etag, so an unchanged config
//! costs little), opens a link for every membership with effective roles, hands changed
//! roles to existing links and closes links whose membership is gone, deleted or empty.
//! Failures (hub down, node not registered yet) back off 1 s → `interval` with jitter and
//! are shown in status; the loop never gives up, so a node started before the hub or before
//! its registration becomes active by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kachery_client::{ApiError, NodeApiClient};
use kachery_protocol::ChannelName;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::MembershipConfig;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::link::{LinkContext, LinkHandle};
use crate::state::NodeState;
use crate::timing::{backoff, jittered, ms_after, now_ms};

/// Hub clock differences above this are worth a warning (SPEC §4.3).
const SKEW_WARNING_MS: i64 = 60_000;

/// The result of one reconcile run, as the caller of `POST /v1/reconcile` sees it.
pub(crate) type ReconcileOutcome = Result<(), String>;

type Request = Option<oneshot::Sender<ReconcileOutcome>>;

/// Asks the reconcile loop for a run; cheap to clone.
#[derive(Clone)]
pub(crate) struct ReconcileTrigger {
    requests: mpsc::Sender<Request>,
}

/// The receiving end, handed to `Reconciler::run`.
pub(crate) struct ReconcileRequests(mpsc::Receiver<Request>);

pub(crate) fn channel() -> (ReconcileTrigger, ReconcileRequests) {
    let (requests, receiver) = mpsc::channel(64);
    (ReconcileTrigger { requests }, ReconcileRequests(receiver))
}

impl ReconcileTrigger {
    /// Asks for a run soon, without waiting. A full queue already holds a request.
    pub(crate) fn request(&self) {
        let _ = self.requests.try_send(None);
    }

    /// Asks for a run and waits for its result.
    pub(crate) async fn run_now(&self) -> ReconcileOutcome {
        let (reply, result) = oneshot::channel();
        if self.requests.send(Some(reply)).await.is_err() {
            return Err("no reconcile loop is running (local-only mode)".to_owned());
        }
        result
            .await
            .unwrap_or_else(|_| Err("the daemon is shutting down".to_owned()))
    }
}

/// Owns the open links; lives inside the reconcile task.
pub(crate) struct Reconciler {
    pub state: Arc<NodeState>,
    pub hub: NodeApiClient,
    pub link_context: LinkContext,
    /// Time between runs; also the cap of the failure backoff.
    pub interval: Duration,
}

impl Reconciler {
    /// Runs until `cancel` fires, then closes every link.
    pub(crate) async fn run(self, requests: ReconcileRequests, cancel: CancellationToken) {
        let ReconcileRequests(mut requests) = requests;
        let mut links: BTreeMap<ChannelName, LinkHandle> = BTreeMap::new();
        let mut etag: Option<String> = None;
        let mut failures = 0u32;
        let mut waiting: Vec<oneshot::Sender<ReconcileOutcome>> = Vec::new();

        loop {
            let outcome = self.reconcile_once(&mut links, &mut etag).await;

            let mut status = self.state.reconcile_status();
            let delay = match &outcome {
                Ok(()) => {
                    failures = 0;
                    status.last_success_at = Some(now_ms());
                    status.last_error = None;
                    jittered(self.interval)
                }
                Err(error) => {
                    failures += 1;
                    tracing::debug!(%error, failures, "reconcile failed");
                    status.last_error = Some(error.clone());
                    backoff(failures, self.interval)
                }
            };
            status.next_attempt_at = Some(ms_after(delay));
            self.state.set_reconcile_status(status);
            for reply in waiting.drain(..) {
                let _ = reply.send(outcome.clone());
            }

            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
                Some(request) = requests.recv() => {
                    waiting.extend(request);
                    // Requests that piled up meanwhile are served by the same run.
                    while let Ok(request) = requests.try_recv() {
                        waiting.extend(request);
                    }
                }
            }
        }

        for (_, link) in std::mem::take(&mut links) {
            link.close().await;
        }
        self.state.set_links(BTreeMap::new());
    }

    async fn reconcile_once(
        &self,
        links: &mut BTreeMap<ChannelName, LinkHandle>,
        etag: &mut Option<String>,
    ) -> ReconcileOutcome {
        let response = self
            .hub
            .node_config(etag.clone())
            .await
            .map_err(|e| describe(&e))?;

        let skew_ms = now_ms() - response.hub_time;
        if skew_ms.abs() > SKEW_WARNING_MS {
            tracing::warn!(
                skew_ms,
                "this machine's clock differs from the hub's by over a minute"
            );
        }
        if response.unchanged {
            return Ok(());
        }
        let Some(config) = response.config else {
            return Err("the hub answered getNodeConfig without a config".to_owned());
        };

        self.apply(links, config.memberships).await;
        *etag = Some(response.etag);
        Ok(())
    }

    /// Opens, updates and closes links to match `memberships`.
    async fn apply(
        &self,
        links: &mut BTreeMap<ChannelName, LinkHandle>,
        memberships: Vec<MembershipConfig>,
    ) {
        let wanted: BTreeMap<ChannelName, &MembershipConfig> = memberships
            .iter()
            .filter(|membership| !membership.deleted && !membership.effective_roles.is_empty())
            .map(|membership| (membership.channel.clone(), membership))
            .collect();

        let unwanted: Vec<ChannelName> = links
            .keys()
            .filter(|channel| !wanted.contains_key(*channel))
            .cloned()
            .collect();
        for channel in unwanted {
            let link = links.remove(&channel).expect("the channel was just listed");
            tracing::info!(%channel, "closing link: membership gone or without roles");
            link.close().await;
        }

        for (channel, membership) in &wanted {
            match links.get(channel) {
                Some(link) => link.update((*membership).clone()),
                None => {
                    tracing::info!(%channel, roles = %membership.effective_roles, "opening link");
                    let link = LinkHandle::spawn(self.link_context.clone(), (*membership).clone());
                    links.insert(channel.clone(), link);
                }
            }
        }

        self.state.set_memberships(memberships);
        self.state.set_links(
            links
                .iter()
                .map(|(channel, link)| (channel.clone(), link.shared().clone()))
                .collect(),
        );
    }
}

/// A status line for a failed getNodeConfig, with the fix where there is one.
fn describe(error: &ApiError) -> String {
    match error.code() {
        Some(ErrorCode::NodeNotRegistered) => format!(
            "this node is not registered with the hub for its owner; \
             run `kachery node register` ({error})"
        ),
        _ => format!("getNodeConfig failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_now_without_a_loop_says_local_only() {
        let (trigger, requests) = channel();
        drop(requests);
        let outcome = trigger.run_now().await;
        assert!(outcome.unwrap_err().contains("local-only"));
    }
}

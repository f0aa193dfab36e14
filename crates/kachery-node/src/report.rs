//! The `report` loop: tells the hub the node's label, version and link states at start,
//! every `period` (5 min), and when a link changes state, at most once per `min_spacing`
//! (10 s) so a flapping link cannot flood the hub. Failures are logged and retried at the
//! next occasion; the report is informational and never blocks anything else.

use std::sync::Arc;
use std::time::Duration;

use kachery_client::NodeApiClient;
use kachery_exchange::FileExchange;
use kachery_protocol::node_api::ReportRequest;
use kachery_store::Store;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::state::NodeState;
use crate::status::report_status;

pub(crate) struct Reporter {
    pub state: Arc<NodeState>,
    pub hub: NodeApiClient,
    pub store: Store,
    pub exchange: Arc<FileExchange>,
    /// Poked by links on every state change.
    pub changes: Arc<Notify>,
    pub period: Duration,
    pub min_spacing: Duration,
}

impl Reporter {
    pub(crate) async fn run(self, cancel: CancellationToken) {
        loop {
            let sent_at = Instant::now();
            self.send_report().await;

            tokio::select! {
                () = cancel.cancelled() => break,
                () = sleep(self.period) => {}
                () = self.changes.notified() => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = sleep_until(sent_at + self.min_spacing) => {}
            }
        }
    }

    async fn send_report(&self) {
        let report = ReportRequest {
            label: self.state.config.label.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            status: report_status(&self.state, &self.store, &self.exchange).await,
        };
        match self.hub.report(report).await {
            Ok(_) => tracing::debug!("report sent"),
            Err(error) => tracing::debug!(%error, "report failed"),
        }
    }
}

//! The daemon's shared view of itself: what the hub last said (memberships), how the
//! reconcile loop is doing, and the links that are open.
//!
//! The reconcile loop writes here; the local API, the report loop and the exchange's
//! `Network` read. Locks are plain `std::sync::Mutex`es held for a copy only, never across
//! an `.await`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kachery_protocol::node_api::MembershipConfig;
use kachery_protocol::{ChannelName, NodeId};

use crate::config::NodeConfig;
use crate::link::LinkShared;

/// How the reconcile loop is doing, for `node status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReconcileStatus {
    /// Unix ms of the last successful getNodeConfig.
    pub last_success_at: Option<i64>,
    /// The last attempt's error; cleared by a success.
    pub last_error: Option<String>,
    /// Unix ms of the next scheduled attempt.
    pub next_attempt_at: Option<i64>,
}

pub(crate) struct NodeState {
    pub node_id: NodeId,
    pub config: NodeConfig,
    reconcile: Mutex<ReconcileStatus>,
    /// The hub's last list of memberships, in its order (the exchange's preference order).
    memberships: Mutex<Vec<MembershipConfig>>,
    links: Mutex<BTreeMap<ChannelName, Arc<LinkShared>>>,
}

impl NodeState {
    pub(crate) fn new(node_id: NodeId, config: NodeConfig) -> Self {
        Self {
            node_id,
            config,
            reconcile: Mutex::default(),
            memberships: Mutex::default(),
            links: Mutex::default(),
        }
    }

    pub(crate) fn reconcile_status(&self) -> ReconcileStatus {
        self.reconcile
            .lock()
            .expect("reconcile status lock is not poisoned")
            .clone()
    }

    pub(crate) fn set_reconcile_status(&self, status: ReconcileStatus) {
        *self
            .reconcile
            .lock()
            .expect("reconcile status lock is not poisoned") = status;
    }

    pub(crate) fn memberships(&self) -> Vec<MembershipConfig> {
        self.memberships
            .lock()
            .expect("memberships lock is not poisoned")
            .clone()
    }

    pub(crate) fn set_memberships(&self, memberships: Vec<MembershipConfig>) {
        *self
            .memberships
            .lock()
            .expect("memberships lock is not poisoned") = memberships;
    }

    pub(crate) fn link(&self, channel: &ChannelName) -> Option<Arc<LinkShared>> {
        self.links
            .lock()
            .expect("links lock is not poisoned")
            .get(channel)
            .cloned()
    }

    /// Flushes every link's queued messages to its broker.
    pub(crate) async fn flush_links(&self) {
        let links: Vec<Arc<LinkShared>> = self
            .links
            .lock()
            .expect("links lock is not poisoned")
            .values()
            .cloned()
            .collect();
        for link in links {
            link.flush().await;
        }
    }

    pub(crate) fn set_links(&self, links: BTreeMap<ChannelName, Arc<LinkShared>>) {
        *self.links.lock().expect("links lock is not poisoned") = links;
    }
}

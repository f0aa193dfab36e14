//! Pushing reductions of rights to the embedded broker right after they commit (SPEC §5.5).
//!
//! The database stays the only source of truth: after a change, the hub recomputes E for
//! the affected (node id, owner, channel) with the same query every check uses and tells
//! the broker to narrow that node's live connections to E's capability. If the query
//! fails, the broker is narrowed to nothing: a lost revocation is worse than a node that
//! has to reconnect.

use kachery_protocol::{ChannelName, Email, NodeId, RoleSet};

use crate::app::AppState;
use crate::error::error_chain;

/// Narrows the broker rights of (node id, owner) on `channel` to its current E.
pub async fn narrow_to_effective(
    state: &AppState,
    node_id: &NodeId,
    owner: &Email,
    channel: &ChannelName,
) {
    let effective = match state.db.membership(node_id, owner, channel).await {
        Ok(membership) => membership.map_or(RoleSet::EMPTY, |membership| membership.effective),
        Err(error) => {
            tracing::warn!(
                node_id = %node_id.short(),
                %channel,
                error = %error_chain(&error),
                "failed to recompute roles; narrowing broker rights to none"
            );
            RoleSet::EMPTY
        }
    };
    state
        .backends
        .narrow(channel, node_id, owner, effective.capability());
}

//! `GET /v1/status` and the hub `report`: one picture of the node built from the shared
//! state, the store and the exchange.

use kachery_client::local_api::types::{
    ChannelStatus, NodeStatus, StoreUsage, TransferDirection, TransferStatus,
};
use kachery_exchange::FileExchange;
use kachery_exchange::{TransferDirection as ExchangeDirection, TransferInfo};
use kachery_protocol::FileUri;
use kachery_protocol::node_api::{ChannelLinkReport, NodeStatusReport};
use kachery_store::Store;

use crate::link::LinkState;
use crate::state::NodeState;

/// Everything `node status` shows.
pub(crate) async fn node_status(
    state: &NodeState,
    store: &Store,
    exchange: &FileExchange,
) -> NodeStatus {
    let reconcile = state.reconcile_status();
    let config = &state.config;
    NodeStatus {
        node_id: state.node_id,
        owner: config.owner.clone(),
        hub: config.hub_url.as_ref().map(|url| url.to_string()),
        label: config.label.clone(),
        local_only_reason: local_only_reason(&config.missing_for_hub()),
        last_reconcile_at: reconcile.last_success_at,
        last_error: reconcile.last_error,
        next_attempt_at: reconcile.next_attempt_at,
        channels: channel_statuses(state),
        store: store_usage(store).await,
        transfers: exchange
            .transfers()
            .into_iter()
            .map(transfer_status)
            .collect(),
    }
}

/// The status part of the hub `report`.
pub(crate) async fn report_status(
    state: &NodeState,
    store: &Store,
    exchange: &FileExchange,
) -> NodeStatusReport {
    let channels = channel_statuses(state)
        .into_iter()
        .map(|channel| ChannelLinkReport {
            channel: channel.channel,
            link_state: channel.link_state,
            token_expires_at: channel.token_expires_at,
        })
        .collect();
    let transfers_active = u32::try_from(exchange.transfers().len()).unwrap_or(u32::MAX);
    NodeStatusReport {
        channels,
        store_bytes: store_usage(store).await.bytes,
        transfers_active,
    }
}

fn local_only_reason(missing: &[&str]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "running local-only: no {} configured (set it in node.toml, the environment, \
         or with `kachery node start --hub URL --owner EMAIL`)",
        missing.join(" and no ")
    ))
}

fn channel_statuses(state: &NodeState) -> Vec<ChannelStatus> {
    state
        .memberships()
        .into_iter()
        .filter(|membership| !membership.deleted)
        .map(|membership| {
            let snapshot = state.link(&membership.channel).map(|link| link.snapshot());
            let last_error = snapshot
                .as_ref()
                .and_then(|snapshot| match &snapshot.state {
                    LinkState::Backoff { error, .. } => Some(error.clone()),
                    LinkState::Revoked { reason, .. } => Some(reason.clone()),
                    _ => None,
                });
            ChannelStatus {
                channel: membership.channel,
                requested_roles: membership.requested_roles,
                effective_roles: membership.effective_roles,
                link_state: snapshot
                    .as_ref()
                    .map_or("none", |snapshot| snapshot.state.name())
                    .to_owned(),
                token_expires_at: snapshot.and_then(|snapshot| snapshot.token_expires_at),
                last_error,
            }
        })
        .collect()
}

async fn store_usage(store: &Store) -> StoreUsage {
    match store.usage().await {
        Ok(usage) => StoreUsage {
            blobs: usage.blobs,
            bytes: usage.bytes,
            partials: usage.partials,
        },
        Err(error) => {
            tracing::warn!(%error, "failed to read store usage");
            StoreUsage::default()
        }
    }
}

fn transfer_status(info: TransferInfo) -> TransferStatus {
    TransferStatus {
        uri: FileUri::new(info.sha1, None, None).to_string(),
        direction: match info.direction {
            ExchangeDirection::Download => TransferDirection::Download,
            ExchangeDirection::Upload => TransferDirection::Upload,
        },
        bytes: info.bytes,
        total: info.total.unwrap_or(0),
        channel: info.channel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_only_reason_names_what_is_missing() {
        assert_eq!(local_only_reason(&[]), None);
        let both = local_only_reason(&["hub_url", "owner"]).unwrap();
        assert!(
            both.contains("no hub_url and no owner configured"),
            "{both}"
        );
    }
}

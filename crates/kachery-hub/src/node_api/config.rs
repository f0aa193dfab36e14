//! `report` and `getNodeConfig`: what the node tells the hub, and the desired state the
//! hub sends back for the node's reconcile loop (SPEC §13.2).

use axum::Json;
use kachery_protocol::jcs::to_canonical_vec;
use kachery_protocol::node_api::{
    BucketInfo, GetNodeConfigRequest, MembershipConfig, NodeConfig, NodeConfigResponse, PubsubInfo,
    ReadMode, ReportRequest, ReportResponse,
};
use sha2::{Digest, Sha256};

use super::VerifiedRequest;
use crate::app::AppState;
use crate::channel_buckets::BucketConfig;
use crate::db::ChannelRecord;
use crate::error::{ApiError, ApiResult};

/// Stores the report as the hub re-serializes it from the typed request, so no unknown
/// client fields ever reach the database.
pub async fn report(
    state: &AppState,
    request: &VerifiedRequest,
    report: &ReportRequest,
) -> ApiResult<Json<ReportResponse>> {
    let report_json = serde_json::to_string(report).expect("a typed report serializes to JSON");
    state
        .db
        .store_report(&request.node, &report_json, request.now)
        .await?;
    Ok(Json(ReportResponse { ok: true }))
}

/// The node's memberships with E per channel, and an etag over them so an unchanged
/// config costs the node one small response.
pub async fn node_config(
    state: &AppState,
    request: &VerifiedRequest,
    get: &GetNodeConfigRequest,
) -> ApiResult<Json<NodeConfigResponse>> {
    let memberships = state.db.memberships_of(&request.node).await?;
    let config = NodeConfig {
        label: request.node.label.clone(),
        memberships: memberships
            .into_iter()
            .map(|membership| MembershipConfig {
                channel: membership.channel.name.clone(),
                deleted: membership.channel.deleted,
                requested_roles: membership.requested,
                effective_roles: membership.effective,
                bucket: BucketInfo {
                    backend: membership.channel.bucket_backend.clone(),
                    read_mode: membership.channel.read_mode,
                    read_base: public_read_base(&membership.channel),
                },
                pubsub: PubsubInfo {
                    backend: membership.channel.pubsub_backend.clone(),
                },
            })
            .collect(),
    };

    let canonical = to_canonical_vec(&config)
        .map_err(|error| ApiError::internal("node config has no canonical form", &error))?;
    let etag = hex::encode(Sha256::digest(&canonical));
    let unchanged = get.known_etag.as_deref() == Some(etag.as_str());
    Ok(Json(NodeConfigResponse {
        etag,
        hub_time: request.now,
        unchanged,
        config: (!unchanged).then_some(config),
    }))
}

/// Where nodes read a public-read channel's objects without asking the hub (SPEC §7.3).
fn public_read_base(channel: &ChannelRecord) -> Option<String> {
    if channel.read_mode != ReadMode::Public {
        return None;
    }
    let config = BucketConfig::from_stored(&channel.bucket_backend, &channel.bucket_config);
    config.ok()?.read_base()
}

//! `/api/v1/nodes/{nodeId}/memberships[/{channel}]`: joining, changing requested roles,
//! leaving. Any change is pushed to the broker after it commits, since lowering the
//! requested roles lowers E.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kachery_protocol::ChannelName;
use kachery_protocol::user_api::{JoinChannelRequest, MembershipView, UpdateMembershipRequest};

use super::{membership_view, own_node, parse_path, passcodes, refuse_deleted};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::{DbError, NodeRecord};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::revocation::narrow_to_effective;
use crate::time::now_ms;

/// `POST /api/v1/nodes/{nodeId}/memberships {channel, requestedRoles}`.
pub async fn join(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(node_id): Path<String>,
    ApiJson(request): ApiJson<JoinChannelRequest>,
) -> ApiResult<(StatusCode, Json<MembershipView>)> {
    let node = own_node(&state, &user, &node_id).await?;
    let channel = state
        .db
        .channel(&request.channel)
        .await?
        .ok_or_else(|| super::channel_not_found(&request.channel))?;
    refuse_deleted(&channel)?;

    let audit = user
        .actor()
        .audit("membership.join", now_ms(), user.request_id.clone())
        .channel(channel.id)
        .target(node.node_id)
        .details(serde_json::json!({ "requestedRoles": request.requested_roles }));
    let passcode_hashes = request
        .passcodes
        .iter()
        .map(|typed| passcodes::hash_typed(&state, typed))
        .collect::<ApiResult<Vec<_>>>()?;
    if !passcode_hashes.is_empty() {
        passcodes::check_entry_rate(&state, &user)?;
    }
    match state
        .db
        .join_channel(
            &node,
            &channel,
            request.requested_roles,
            &passcode_hashes,
            now_ms(),
            audit,
        )
        .await
    {
        Ok(()) => {}
        // The channel was deleted between the lookup and the insert.
        Err(DbError::NotFound) => return Err(super::channel_not_found(&request.channel)),
        Err(other) => return Err(other.into()),
    }

    let view = current_membership(&state, &node, &request.channel).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PATCH /api/v1/nodes/{nodeId}/memberships/{channel} {requestedRoles}`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((node_id, channel)): Path<(String, String)>,
    ApiJson(request): ApiJson<UpdateMembershipRequest>,
) -> ApiResult<Json<MembershipView>> {
    let node = own_node(&state, &user, &node_id).await?;
    let channel: ChannelName = parse_path(&channel)?;
    let channel_id = state.db.channel(&channel).await?.map(|record| record.id);

    let mut audit = user
        .actor()
        .audit("membership.update", now_ms(), user.request_id.clone())
        .target(node.node_id)
        .details(serde_json::json!({ "requestedRoles": request.requested_roles }));
    audit.channel_id = channel_id;
    state
        .db
        .update_membership(&node, &channel, request.requested_roles, now_ms(), audit)
        .await
        .map_err(|error| not_a_member(error, &node, &channel))?;

    narrow_to_effective(&state, &node.node_id, &node.owner, &channel).await;
    Ok(Json(current_membership(&state, &node, &channel).await?))
}

/// `DELETE /api/v1/nodes/{nodeId}/memberships/{channel}`.
pub async fn leave(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((node_id, channel)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let node = own_node(&state, &user, &node_id).await?;
    let channel: ChannelName = parse_path(&channel)?;
    let channel_id = state.db.channel(&channel).await?.map(|record| record.id);

    let mut audit = user
        .actor()
        .audit("membership.leave", now_ms(), user.request_id.clone())
        .target(node.node_id);
    audit.channel_id = channel_id;
    state
        .db
        .leave_channel(&node, &channel, audit)
        .await
        .map_err(|error| not_a_member(error, &node, &channel))?;

    narrow_to_effective(&state, &node.node_id, &node.owner, &channel).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn current_membership(
    state: &AppState,
    node: &NodeRecord,
    channel: &ChannelName,
) -> ApiResult<MembershipView> {
    let record = state
        .db
        .membership(&node.node_id, &node.owner, channel)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("node {} left {channel}", node.node_id.short()))
        })?;
    let linked = state.db.linked_passcodes(node, now_ms()).await?;
    Ok(membership_view(&record, &linked))
}

fn not_a_member(error: DbError, node: &NodeRecord, channel: &ChannelName) -> ApiError {
    match error {
        DbError::NotFound => ApiError::not_found(format!(
            "node {} is not a member of {channel}",
            node.node_id.short()
        )),
        other => other.into(),
    }
}

//! `/api/v1/nodes[/{nodeId}]`: the caller's node records; registration by signed envelope.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kachery_protocol::user_api::{ListResponse, NodeView, RegisterNodeRequest, UpdateNodeRequest};

use super::{node_view, own_node};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::{ConflictKind, DbError, NewNode};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::registration::{RegistrationError, check_registration, nonce_expiry};
use crate::revocation::narrow_to_effective;
use crate::time::now_ms;

/// `GET /api/v1/nodes`: the caller's live node records.
pub async fn list(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
) -> ApiResult<Json<ListResponse<NodeView>>> {
    // FIXME: no pagination; fine while users stay under the 100-node limit of SPEC §21.
    let mut items = Vec::new();
    for node in state.db.nodes_of(&user.email).await? {
        items.push(node_view(&state, node, false).await?);
    }
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// `POST /api/v1/nodes {registration}`: the checks of SPEC §3.3, then one transaction
/// inserting the record, consuming the nonce and auditing.
pub async fn register(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    ApiJson(request): ApiJson<RegisterNodeRequest>,
) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let now = now_ms();
    let body = check_registration(&request.registration, &state.origin, &user.email, now)?;

    let audit = user
        .actor()
        .audit("node.register", now, user.request_id.clone())
        .target(body.node_id)
        .details(serde_json::json!({ "label": body.label.as_str() }));
    let new_node = NewNode {
        node_id: body.node_id,
        owner: body.owner.clone(),
        label: body.label.clone(),
        nonce: body.nonce,
        nonce_expires_at: nonce_expiry(&body),
        now,
    };
    let node = match state.db.register_node(new_node, audit).await {
        Ok(node) => node,
        Err(DbError::Conflict(ConflictKind::Nonce)) => {
            return Err(RegistrationError::NonceReused.into());
        }
        Err(other) => return Err(other.into()),
    };

    tracing::info!(node_id = %node.node_id.short(), "node registered");
    Ok((
        StatusCode::CREATED,
        Json(node_view(&state, node, false).await?),
    ))
}

/// `GET /api/v1/nodes/{nodeId}`: the record, its last report and memberships.
pub async fn show(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(node_id): Path<String>,
) -> ApiResult<Json<NodeView>> {
    let node = own_node(&state, &user, &node_id).await?;
    Ok(Json(node_view(&state, node, true).await?))
}

/// `PATCH /api/v1/nodes/{nodeId} {label}`.
pub async fn rename(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(node_id): Path<String>,
    ApiJson(request): ApiJson<UpdateNodeRequest>,
) -> ApiResult<Json<NodeView>> {
    let node = own_node(&state, &user, &node_id).await?;
    let audit = user
        .actor()
        .audit("node.rename", now_ms(), user.request_id.clone())
        .target(node.node_id)
        .details(serde_json::json!({ "from": node.label.as_str(), "to": request.label.as_str() }));
    state.db.rename_node(&node, &request.label, audit).await?;

    let renamed = crate::db::NodeRecord {
        label: request.label,
        ..node
    };
    Ok(Json(node_view(&state, renamed, true).await?))
}

/// `DELETE /api/v1/nodes/{nodeId}`: soft-deletes the record and drops its memberships;
/// grants stay with their channels. Broker connections of the node close at once.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(node_id): Path<String>,
) -> ApiResult<StatusCode> {
    let node = own_node(&state, &user, &node_id).await?;
    let now = now_ms();
    let audit = user
        .actor()
        .audit("node.delete", now, user.request_id.clone())
        .target(node.node_id);
    let channels = state.db.delete_node(&node, now, audit).await?;

    for channel in &channels {
        narrow_to_effective(&state, &node.node_id, &node.owner, channel).await;
    }
    tracing::info!(node_id = %node.node_id.short(), n_channels = channels.len(), "node deleted");
    Ok(StatusCode::NO_CONTENT)
}

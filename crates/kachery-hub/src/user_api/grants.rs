//! `/api/v1/channels/{name}/authorizations[/{nodeId}/{owner}]` and `/members`: the
//! channel owner's grants and view of member nodes.
//!
//! Only the owner grants or revokes (admins moderate by deleting, they do not grant);
//! owners and admins may read. Grants are keyed by (node id, owner), so they may exist
//! before the node registers. Every change is pushed to the broker once committed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::{AuthorizationView, GrantRequest, ListResponse, MemberView};
use kachery_protocol::{Email, NodeId};

use super::{find_channel, is_owner_or_admin, parse_path, refuse_deleted};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::{ChannelRecord, DbError, GrantRecord, NewGrant};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::revocation::narrow_to_effective;
use crate::time::now_ms;

/// `GET /api/v1/channels/{name}/members` (owner, admin).
pub async fn members(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ListResponse<MemberView>>> {
    let channel = readable_channel(&state, &user, &name).await?;
    let items = state
        .db
        .members_of(channel.id)
        .await?
        .into_iter()
        .map(|member| MemberView {
            node_id: member.node_id,
            owner: member.owner,
            label: member.label,
            last_report_at: member.last_report_at,
            requested_roles: member.requested,
            granted_roles: member.granted,
            effective_roles: member.effective,
        })
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// `GET /api/v1/channels/{name}/authorizations` (owner, admin).
pub async fn list(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ListResponse<AuthorizationView>>> {
    let channel = readable_channel(&state, &user, &name).await?;
    // FIXME: no pagination; matters past a few thousand grants in one channel.
    let items = state
        .db
        .grants_of(channel.id)
        .await?
        .into_iter()
        .map(grant_view)
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// `PUT /api/v1/channels/{name}/authorizations/{nodeId}/{owner} {roles}` (owner only).
pub async fn put(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((name, node_id, owner)): Path<(String, String, String)>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> ApiResult<Json<AuthorizationView>> {
    let channel = owned_channel(&state, &user, &name).await?;
    refuse_deleted(&channel)?;
    let node_id: NodeId = parse_path(&node_id)?;
    let owner: Email = parse_path(&owner)?;

    let now = now_ms();
    let audit = user
        .actor()
        .audit("grant.put", now, user.request_id.clone())
        .channel(channel.id)
        .target(format!("{node_id}/{owner}"))
        .details(serde_json::json!({ "roles": request.roles }));
    let grant = NewGrant {
        channel_id: channel.id,
        node_id,
        owner: owner.clone(),
        roles: request.roles,
        updated_by: user.email.clone(),
        now,
    };
    let record = state.db.put_grant(grant, audit).await?;

    // A replaced grant may be smaller than the old one.
    narrow_to_effective(&state, &node_id, &owner, &channel.name).await;
    Ok(Json(grant_view(record)))
}

/// `DELETE /api/v1/channels/{name}/authorizations/{nodeId}/{owner}` (owner only).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((name, node_id, owner)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let channel = owned_channel(&state, &user, &name).await?;
    let node_id: NodeId = parse_path(&node_id)?;
    let owner: Email = parse_path(&owner)?;

    let audit = user
        .actor()
        .audit("grant.revoke", now_ms(), user.request_id.clone())
        .channel(channel.id)
        .target(format!("{node_id}/{owner}"));
    match state
        .db
        .delete_grant(channel.id, &node_id, &owner, audit)
        .await
    {
        Ok(()) => {}
        Err(DbError::NotFound) => {
            return Err(ApiError::not_found(format!(
                "{} has no grant for node {} of {owner}",
                channel.name,
                node_id.short()
            )));
        }
        Err(other) => return Err(other.into()),
    }

    narrow_to_effective(&state, &node_id, &owner, &channel.name).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The channel, if the caller may read its members and grants.
pub async fn readable_channel(
    state: &AppState,
    user: &AuthedUser,
    name: &str,
) -> ApiResult<ChannelRecord> {
    let channel = find_channel(state, name).await?;
    if !is_owner_or_admin(user, &channel) {
        return Err(ApiError::new(
            ErrorCode::NotOwner,
            format!(
                "only the owner of {} ({}) or an admin may see this",
                channel.name, channel.owner
            ),
        ));
    }
    Ok(channel)
}

/// The channel, if the caller owns it (admins included only as owners).
pub async fn owned_channel(
    state: &AppState,
    user: &AuthedUser,
    name: &str,
) -> ApiResult<ChannelRecord> {
    let channel = find_channel(state, name).await?;
    if user.email != channel.owner {
        return Err(not_owner(&channel));
    }
    Ok(channel)
}

fn not_owner(channel: &ChannelRecord) -> ApiError {
    ApiError::new(
        ErrorCode::NotOwner,
        format!(
            "only the owner of {} ({}) may do this",
            channel.name, channel.owner
        ),
    )
}

fn grant_view(record: GrantRecord) -> AuthorizationView {
    AuthorizationView {
        node_id: record.node_id,
        owner: record.owner,
        granted_roles: record.granted,
        updated_at: record.updated_at,
    }
}

//! Owner and admin reports (SPEC §10.2): a channel's stats and audit log, and the admin
//! lists of every channel and user. Admins read everything but secrets (SPEC §10.3).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::hub_views::{AdminUserView, AuditView, ChannelStats, StatCounter};
use kachery_protocol::user_api::{ChannelView, ListResponse};
use serde::Deserialize;

use super::channel_view;
use super::grants::readable_channel;
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::AuditRecord;
use crate::error::{ApiError, ApiResult};
use crate::stats::CHANNEL_SCOPE;
use crate::time::now_ms;

/// Default and largest page of a list (SPEC §10.1).
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=` of paginated lists; the cursor is opaque to clients.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminChannelsQuery {
    #[serde(default)]
    pub deleted: bool,
}

/// `GET /api/v1/channels/{name}/stats` (owner, admin).
pub async fn stats(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ChannelStats>> {
    Ok(Json(channel_stats(&state, &user, &name).await?))
}

/// The stats of a channel the caller may read.
pub async fn channel_stats(
    state: &AppState,
    user: &AuthedUser,
    name: &str,
) -> ApiResult<ChannelStats> {
    let channel = readable_channel(state, user, name).await?;
    let members = state.db.members_of(channel.id).await?;
    let grants = state.db.grants_of(channel.id).await?;
    let now = now_ms();
    let passcodes = state.db.passcodes_of(channel.id).await?;
    let counters = state
        .db
        .counters_of(CHANNEL_SCOPE, channel.name.as_str())
        .await?
        .into_iter()
        .map(|(counter, value)| StatCounter { counter, value })
        .collect();
    Ok(ChannelStats {
        channel: channel.name,
        n_members: members.len() as i64,
        n_grants: grants.len() as i64,
        n_active_passcodes: passcodes
            .iter()
            .filter(|record| record.state(now) == "active")
            .count() as i64,
        counters,
    })
}

/// `GET /api/v1/channels/{name}/audit?limit&cursor` (owner, admin), newest first.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Json<ListResponse<AuditView>>> {
    Ok(Json(audit_page(&state, &user, &name, &page).await?))
}

/// One page of a readable channel's audit log.
pub async fn audit_page(
    state: &AppState,
    user: &AuthedUser,
    name: &str,
    page: &Page,
) -> ApiResult<ListResponse<AuditView>> {
    let channel = readable_channel(state, user, name).await?;
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let before_id = match &page.cursor {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
            ApiError::validation("cursor is not one this hub handed out; start without it")
        })?),
    };

    // One extra row tells whether another page follows.
    let mut records = state.db.audit_of(channel.id, before_id, limit + 1).await?;
    let next_cursor = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|record| record.id.to_string())
    } else {
        None
    };
    Ok(ListResponse {
        items: records.into_iter().map(audit_view).collect(),
        next_cursor,
    })
}

fn audit_view(record: AuditRecord) -> AuditView {
    AuditView {
        id: record.id,
        at: record.at,
        actor_kind: record.actor_kind,
        actor: record.actor,
        action: record.action,
        target: record.target,
        details: serde_json::from_str(&record.details).unwrap_or(serde_json::Value::Null),
        dev_login: record.dev_login,
    }
}

/// `GET /api/v1/admin/channels[?deleted=true]` (admin).
pub async fn channels(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Query(query): Query<AdminChannelsQuery>,
) -> ApiResult<Json<ListResponse<ChannelView>>> {
    require_admin(&user)?;
    // FIXME: no pagination; fine for the hundreds of channels SPEC §1.2 aims at.
    let items = state
        .db
        .all_channels(query.deleted)
        .await?
        .iter()
        .map(|channel| channel_view(channel, true))
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// `GET /api/v1/admin/users` (admin).
pub async fn users(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
) -> ApiResult<Json<ListResponse<AdminUserView>>> {
    require_admin(&user)?;
    let items = state
        .db
        .users()
        .await?
        .into_iter()
        .map(|summary| AdminUserView {
            email: summary.email,
            created_at: summary.created_at,
            last_login_at: summary.last_login_at,
            n_nodes: summary.n_nodes,
            n_channels: summary.n_channels,
        })
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

pub fn require_admin(user: &AuthedUser) -> ApiResult<()> {
    if !user.admin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only hub admins may see this (admins are listed in the hub config)",
        ));
    }
    Ok(())
}

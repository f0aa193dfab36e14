//! The user API under `/api/v1` (SPEC §10): JSON in and out, bearer-token auth.
//!
//! Handlers are split by resource: [`nodes`] (the caller's node records), [`memberships`]
//! (their channel memberships), [`channels`], [`grants`] and [`secrets`] (channel owners'
//! decisions and credentials).
//! "Node" paths always act on the caller's own record (node id, caller e-mail), so another
//! user's node is simply not found. This module holds the shared lookups and the
//! conversions from database records to wire views.

// FIXME: the per-user limits of SPEC §21 (10 req/s, 100 nodes, 100 channels, 100
// memberships per node, dev login 20/min per IP) are not enforced; matters once the hub
// is shared beyond trusted users.

pub mod admin;
pub mod channel_test;
pub mod channels;
pub mod grants;
pub mod memberships;
pub mod nodes;
pub mod passcodes;
pub mod secrets;
pub mod tokens;

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::hub_views::LinkedPasscodeView;
use kachery_protocol::user_api::MissingRoleView;
use kachery_protocol::user_api::{
    BucketSettings, ChannelView, MeResponse, MembershipView, NodeView, SecretView,
};
use kachery_protocol::{ChannelName, NodeId, Role};

use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::{ChannelRecord, LinkedPasscode, MembershipRecord, NodeRecord, SecretRecord};
use crate::error::{ApiError, ApiResult};
use crate::time::now_ms;

/// `GET /api/v1/me`.
pub async fn me(State(state): State<Arc<AppState>>, user: AuthedUser) -> Json<MeResponse> {
    Json(MeResponse {
        email: user.email,
        admin: user.admin,
        dev_login: state.config.dev_login,
    })
}

/// Parses a path segment with the type's own validation; 422 naming what was expected.
pub fn parse_path<T: FromStr>(text: &str) -> ApiResult<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|error: T::Err| ApiError::validation(error.to_string()))
}

/// The caller's live record of `node_id_text`, else 404.
pub async fn own_node(
    state: &AppState,
    user: &AuthedUser,
    node_id_text: &str,
) -> ApiResult<NodeRecord> {
    let node_id: NodeId = parse_path(node_id_text)?;
    state.db.node(&node_id, &user.email).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "you ({}) have no registered node {}; see GET /api/v1/nodes",
            user.email,
            node_id.short()
        ))
    })
}

/// The channel named `name_text`, deleted or not, else 404 `channel_not_found`.
pub async fn find_channel(state: &AppState, name_text: &str) -> ApiResult<ChannelRecord> {
    let name: ChannelName = parse_path(name_text)?;
    state
        .db
        .channel(&name)
        .await?
        .ok_or_else(|| channel_not_found(&name))
}

pub fn channel_not_found(name: &ChannelName) -> ApiError {
    ApiError::new(
        ErrorCode::ChannelNotFound,
        format!("there is no channel {name}"),
    )
}

/// 404 for mutations on a soft-deleted channel.
pub fn refuse_deleted(channel: &ChannelRecord) -> ApiResult<()> {
    if channel.deleted {
        return Err(ApiError::new(
            ErrorCode::ChannelNotFound,
            format!("channel {} is deleted", channel.name),
        ));
    }
    Ok(())
}

/// Whether the caller sees everything about the channel but its secrets (SPEC §10.3).
pub fn is_owner_or_admin(user: &AuthedUser, channel: &ChannelRecord) -> bool {
    user.admin || user.email == channel.owner
}

/// A membership with its role sets side by side, the passcodes entered on it (`linked`
/// may hold other channels' links too) and why each missing role is missing.
pub fn membership_view(record: &MembershipRecord, linked: &[LinkedPasscode]) -> MembershipView {
    let passcodes = linked
        .iter()
        .filter(|link| link.channel_id == record.channel.id)
        .map(|link| LinkedPasscodeView {
            id: link.passcode_id,
            hint: link.hint.clone(),
            roles: link.roles,
            valid: link.valid,
        })
        .collect();
    MembershipView {
        channel: record.channel.name.clone(),
        channel_deleted: record.channel.deleted,
        requested_roles: record.requested,
        granted_roles: record.granted,
        passcode_roles: record.passcode,
        effective_roles: record.effective,
        passcodes,
        missing_roles: missing_roles(record),
    }
}

/// Each role outside E with the first reason that keeps it out (SPEC §10.2).
pub fn missing_roles(record: &MembershipRecord) -> Vec<MissingRoleView> {
    Role::ALL
        .into_iter()
        .filter(|role| !record.effective.contains(*role))
        .map(|role| {
            let reason = if record.channel.deleted {
                "the channel is deleted"
            } else if !record.requested.contains(role) {
                "not requested by this node"
            } else {
                "requested, but neither granted by the channel owner nor given by a passcode"
            };
            MissingRoleView {
                role,
                reason: reason.to_owned(),
            }
        })
        .collect()
}

/// A node record with its memberships; `with_report` adds the last report.
pub async fn node_view(
    state: &AppState,
    node: NodeRecord,
    with_report: bool,
) -> ApiResult<NodeView> {
    let memberships = state.db.memberships_of(&node).await?;
    let linked = state.db.linked_passcodes(&node, now_ms()).await?;
    let last_report = match (&node.last_report, with_report) {
        (Some(text), true) => serde_json::from_str(text).ok(),
        _ => None,
    };
    Ok(NodeView {
        node_id: node.node_id,
        owner: node.owner,
        label: node.label,
        created_at: node.created_at,
        last_report_at: node.last_report_at,
        last_report,
        memberships: memberships
            .iter()
            .map(|record| membership_view(record, &linked))
            .collect(),
    })
}

/// A channel; backend kinds only when `show_backends` (owner, admin, member's owner).
pub fn channel_view(channel: &ChannelRecord, show_backends: bool) -> ChannelView {
    ChannelView {
        name: channel.name.clone(),
        owner: channel.owner.clone(),
        deleted: channel.deleted,
        bucket: show_backends.then(|| BucketSettings {
            backend: channel.bucket_backend.clone(),
            config: None,
            read_mode: channel.read_mode,
        }),
        pubsub: show_backends.then(|| crate::pubsub_backends::settings_view(channel)),
        created_at: channel.created_at,
        secrets: None,
    }
}

/// [`channel_view`] plus the masked secrets, for the owner and admins only (SPEC §10.3).
pub async fn full_channel_view(
    state: &AppState,
    channel: &ChannelRecord,
) -> ApiResult<ChannelView> {
    let secrets = state.db.secrets_of(channel.id).await?;
    let mut view = channel_view(channel, true);
    if let Some(bucket) = &mut view.bucket {
        bucket.config = crate::channel_buckets::BucketConfig::from_stored(
            &channel.bucket_backend,
            &channel.bucket_config,
        )
        .ok()
        .and_then(|config| config.view());
    }
    Ok(ChannelView {
        secrets: Some(secrets.iter().map(secret_view).collect()),
        ..view
    })
}

pub fn secret_view(record: &SecretRecord) -> SecretView {
    SecretView {
        kind: record.kind,
        fingerprint: record.fingerprint.clone(),
        hint: record.hint.clone(),
        updated_at: record.updated_at,
        updated_by: record.updated_by.clone(),
    }
}

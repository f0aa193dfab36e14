//! Passcodes (SPEC §5.3, §10.2): the channel owner mints, lists and revokes them under
//! `/api/v1/channels/{name}/passcodes`; a node's owner enters or removes them on a
//! membership under `/api/v1/nodes/{nodeId}/memberships/{channel}/passcodes`.
//!
//! The plain code leaves the hub once, in the reply to minting. Every way entering can
//! fail (unknown, other channel, revoked, expired, used up) is the same 422
//! `invalid_passcode`, and entries are rate limited per user, so the answer teaches a
//! guesser nothing. Revoking and unlinking narrow the broker rights of the affected nodes
//! at once; expiry is seen by the next credential.
//!
//! The `mint`, `revoke` and `enter` functions are shared with the web pages.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kachery_protocol::ChannelName;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::hub_views::{
    CreatePasscodeRequest, CreatedPasscode, EnterPasscodeRequest, LinkedPasscodeView, PasscodeView,
};
use kachery_protocol::user_api::ListResponse;

use super::grants::{owned_channel, readable_channel};
use super::{own_node, parse_path, refuse_deleted};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::{DbError, NewPasscode, NodeRecord, PasscodeRecord};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::passcode::{self, MAX_LABEL_CHARS, PasscodeSettingsError};
use crate::revocation::narrow_to_effective;
use crate::time::now_ms;

/// `GET /api/v1/channels/{name}/passcodes` (owner, admin): hints, uses, expiry.
pub async fn list(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ListResponse<PasscodeView>>> {
    let channel = readable_channel(&state, &user, &name).await?;
    let now = now_ms();
    let items = state
        .db
        .passcodes_of(channel.id)
        .await?
        .iter()
        .map(|record| passcode_view(record, now))
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// `POST /api/v1/channels/{name}/passcodes` (owner): the code, shown this once.
pub async fn create(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<CreatePasscodeRequest>,
) -> ApiResult<(StatusCode, Json<CreatedPasscode>)> {
    let created = mint(&state, &user, &name, &request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `DELETE /api/v1/channels/{name}/passcodes/{id}` (owner).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let passcode_id: i64 = parse_path(&id)?;
    revoke(&state, &user, &name, passcode_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/nodes/{nodeId}/memberships/{channel}/passcodes {passcode}` (node owner).
pub async fn enter_on_membership(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((node_id, channel)): Path<(String, String)>,
    ApiJson(request): ApiJson<EnterPasscodeRequest>,
) -> ApiResult<(StatusCode, Json<LinkedPasscodeView>)> {
    let node = own_node(&state, &user, &node_id).await?;
    let view = enter(&state, &user, &node, &channel, &request.passcode).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/v1/nodes/{nodeId}/memberships/{channel}/passcodes/{id}` (node owner).
pub async fn unlink(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path((node_id, channel, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let node = own_node(&state, &user, &node_id).await?;
    let channel = super::find_channel(&state, &channel).await?;
    let passcode_id: i64 = parse_path(&id)?;

    let audit = user
        .actor()
        .audit("passcode.unlink", now_ms(), user.request_id.clone())
        .channel(channel.id)
        .target(node.node_id)
        .details(serde_json::json!({ "passcode": passcode_id }));
    state
        .db
        .unlink_passcode(&node, &channel, passcode_id, audit)
        .await
        .map_err(|error| match error {
            DbError::NotFound => ApiError::not_found(format!(
                "passcode {passcode_id} is not entered on node {} in {}",
                node.node_id.short(),
                channel.name
            )),
            other => other.into(),
        })?;

    narrow_to_effective(&state, &node.node_id, &node.owner, &channel.name).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the owner's settings, mints a code and stores its hash.
pub async fn mint(
    state: &AppState,
    user: &AuthedUser,
    channel_name: &str,
    request: &CreatePasscodeRequest,
) -> ApiResult<CreatedPasscode> {
    let channel = owned_channel(state, user, channel_name).await?;
    refuse_deleted(&channel)?;
    let now = now_ms();
    let settings_error = |error: PasscodeSettingsError| {
        ApiError::validation(format!("{}: {error}", error.field()))
            .with_detail("field", error.field())
    };
    let prefix = passcode::checked_prefix(request.prefix.as_deref()).map_err(settings_error)?;
    let label = request
        .label
        .as_deref()
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(str::to_owned);
    if label
        .as_ref()
        .is_some_and(|label| label.chars().count() > MAX_LABEL_CHARS)
    {
        return Err(settings_error(PasscodeSettingsError::Label));
    }
    if request.roles.is_empty() {
        return Err(settings_error(PasscodeSettingsError::NoRoles));
    }
    if request.max_uses.is_some_and(|max| max < 1) {
        return Err(settings_error(PasscodeSettingsError::MaxUses));
    }
    if request.expires_at.is_some_and(|at| at <= now) {
        return Err(settings_error(PasscodeSettingsError::Expiry));
    }

    // FIXME: the limit of 1,000 active passcodes per channel (SPEC §21) is not enforced;
    // matters only for owners minting in bulk.
    let code = passcode::generate(&prefix)
        .map_err(|error| ApiError::internal("no randomness for a passcode", &error))?;
    let hint = passcode::hint(&code);
    let audit = user
        .actor()
        .audit("passcode.create", now, user.request_id.clone())
        .channel(channel.id)
        .details(serde_json::json!({
            "hint": hint,
            "roles": request.roles,
            "expiresAt": request.expires_at,
            "maxUses": request.max_uses,
        }));
    let new_passcode = NewPasscode {
        channel_id: channel.id,
        hash: state.passcode_hasher.hash(&code),
        hint,
        label,
        roles: request.roles,
        expires_at: request.expires_at,
        max_uses: request.max_uses,
        created_by: user.email.clone(),
        now,
    };
    let record = state
        .db
        .create_passcode(new_passcode, audit)
        .await
        .map_err(|error| match error {
            DbError::NotFound => super::channel_not_found(&channel.name),
            other => other.into(),
        })?;
    tracing::info!(channel = %channel.name, passcode = record.id, "passcode minted");
    Ok(CreatedPasscode {
        passcode: code,
        view: passcode_view(&record, now),
    })
}

/// Revokes one of the channel's passcodes and narrows every node that had entered it.
pub async fn revoke(
    state: &AppState,
    user: &AuthedUser,
    channel_name: &str,
    passcode_id: i64,
) -> ApiResult<()> {
    let channel = owned_channel(state, user, channel_name).await?;
    let now = now_ms();
    let audit = user
        .actor()
        .audit("passcode.revoke", now, user.request_id.clone())
        .channel(channel.id)
        .target(passcode_id);
    let affected = state
        .db
        .revoke_passcode(channel.id, passcode_id, now, audit)
        .await
        .map_err(|error| match error {
            DbError::NotFound => ApiError::not_found(format!(
                "{} has no active passcode {passcode_id}",
                channel.name
            )),
            other => other.into(),
        })?;
    for node in &affected {
        narrow_to_effective(state, &node.node_id, &node.owner, &channel.name).await;
    }
    tracing::info!(channel = %channel.name, passcode = passcode_id, n_nodes = affected.len(), "passcode revoked");
    Ok(())
}

/// Enters a typed passcode on `node`'s membership of `channel_name`.
pub async fn enter(
    state: &AppState,
    user: &AuthedUser,
    node: &NodeRecord,
    channel_name: &str,
    typed: &str,
) -> ApiResult<LinkedPasscodeView> {
    check_entry_rate(state, user)?;
    let channel_name: ChannelName = parse_path(channel_name)?;
    let channel = state
        .db
        .channel(&channel_name)
        .await?
        .ok_or_else(|| super::channel_not_found(&channel_name))?;
    refuse_deleted(&channel)?;
    let hash = hash_typed(state, typed)?;

    let audit = user
        .actor()
        .audit("passcode.use", now_ms(), user.request_id.clone())
        .channel(channel.id)
        .target(node.node_id);
    let linked = state
        .db
        .enter_passcode(node, &channel, &hash, now_ms(), audit)
        .await
        .map_err(|error| match error {
            DbError::NotFound => ApiError::not_found(format!(
                "node {} is not a member of {}; join first",
                node.node_id.short(),
                channel.name
            )),
            other => other.into(),
        })?;
    Ok(LinkedPasscodeView {
        id: linked.passcode_id,
        hint: linked.hint,
        roles: linked.roles,
        valid: linked.valid,
    })
}

/// The stored hash of what a person typed; a malformed code is `invalid_passcode` too.
pub fn hash_typed(state: &AppState, typed: &str) -> ApiResult<String> {
    let normalized = passcode::normalize(typed).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidPasscode,
            "this is not a passcode: expected <prefix>-<26 letters and digits>",
        )
    })?;
    Ok(state.passcode_hasher.hash(&normalized))
}

/// SPEC §21: 10 passcode entries a minute per user.
pub fn check_entry_rate(state: &AppState, user: &AuthedUser) -> ApiResult<()> {
    state
        .passcode_rate_limit
        .check(&user.email)
        .map_err(|wait| rate_limited("passcode entries", wait))
}

pub fn rate_limited(what: &str, wait: std::time::Duration) -> ApiError {
    let seconds = wait.as_secs().max(1);
    let mut error = ApiError::new(
        ErrorCode::RateLimited,
        format!("too many {what}; try again in {seconds} s"),
    );
    error.retry_after_secs = Some(seconds);
    error
}

pub fn passcode_view(record: &PasscodeRecord, now: i64) -> PasscodeView {
    PasscodeView {
        id: record.id,
        hint: record.hint.clone(),
        label: record.label.clone(),
        roles: record.roles,
        expires_at: record.expires_at,
        max_uses: record.max_uses,
        use_count: record.use_count,
        created_at: record.created_at,
        created_by: record.created_by.clone(),
        revoked_at: record.revoked_at,
        state: record.state(now).to_owned(),
    }
}

//! `getPubsubCredential`: a 30-minute broker credential whose bands come from E alone.

use axum::Json;
use kachery_protocol::RoleSet;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::{GetPubsubCredentialRequest, PubsubCredentialResponse};
use kachery_pubsub::CredentialRequest;

use super::VerifiedRequest;
use crate::app::AppState;
use crate::db::MembershipRecord;
use crate::error::{ApiError, ApiResult};
use crate::pubsub_backends;

// FIXME: the per-(node, channel) limit of 10 credentials a minute (SPEC §21) is not
// enforced yet; only the node-wide 20/s applies.
pub async fn pubsub_credential(
    state: &AppState,
    request: &VerifiedRequest,
    get: &GetPubsubCredentialRequest,
) -> ApiResult<Json<PubsubCredentialResponse>> {
    let membership = effective_membership(state, request, &get.channel).await?;
    let capability = membership.effective.capability();

    let credential_request = CredentialRequest {
        node_id: &request.node.node_id,
        owner: &request.node.owner,
        channel: &get.channel,
        capability: &capability,
        now_ms: request.now,
        nats_user_key: get.nats_user_key.as_deref(),
    };
    let issued = pubsub_backends::issue(state, &membership.channel, &credential_request)
        .await
        .ok_or_else(|| unsupported_backend(&membership.channel.pubsub_backend))??;

    let audit = request
        .actor()
        .audit("credential.pubsub", request.now, request.request_id.clone())
        .channel(membership.channel.id)
        .target(request.node.node_id)
        .details(serde_json::json!({
            "backend": membership.channel.pubsub_backend,
            "publish": capability.publish,
            "subscribe": capability.subscribe,
            "expiresAt": issued.expires_at,
        }));
    state.db.append_audit(audit).await?;

    Ok(Json(PubsubCredentialResponse {
        channel: get.channel.clone(),
        expires_at: issued.expires_at,
        publish: capability.publish,
        subscribe: capability.subscribe,
        credential: issued.credential,
    }))
}

/// The node's membership of `channel`, if E ≠ ∅; else 403 `no_roles` saying why.
pub async fn effective_membership(
    state: &AppState,
    request: &VerifiedRequest,
    channel: &kachery_protocol::ChannelName,
) -> ApiResult<MembershipRecord> {
    let membership = state
        .db
        .membership(&request.node.node_id, &request.node.owner, channel)
        .await?;
    let reason = match &membership {
        None => "it is not a member (join the channel first)".to_owned(),
        Some(found) if found.channel.deleted => "the channel is deleted".to_owned(),
        Some(found) if found.effective.is_empty() => format!(
            "it requests {} and the channel owner granted {}; effective roles are the overlap",
            found.requested, found.granted
        ),
        Some(_) => String::new(),
    };
    match membership {
        Some(found) if !found.effective.is_empty() => Ok(found),
        _ => Err(ApiError::new(
            ErrorCode::NoRoles,
            format!(
                "node {} has no roles in {channel}: {reason}",
                request.node.node_id.short()
            ),
        )
        .with_detail(
            "effectiveRoles",
            serde_json::to_value(RoleSet::EMPTY).expect("roles serialize"),
        )),
    }
}

pub fn unsupported_backend(backend: &str) -> ApiError {
    ApiError::internal(
        "channel uses a backend this hub does not run",
        &std::io::Error::other(format!("backend {backend:?}")),
    )
}

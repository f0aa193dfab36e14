//! `/api/v1/channels[/{name}]`: creating, listing, viewing and soft-deleting channels.
//!
//! Phase 1 runs only the embedded bucket and broker, so other backends are refused at
//! creation with 422 rather than stored and failing later. Secrets given at creation are
//! encrypted and stored in the channel's own transaction (see [`super::secrets`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::ReadMode;
use kachery_protocol::user_api::{
    BucketSettings, ChannelView, CreateChannelRequest, ListResponse, SecretKind,
};

use super::{channel_view, find_channel, full_channel_view, is_owner_or_admin};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::channel_buckets::BucketConfig;
use crate::db::NewChannel;
use crate::error::{ApiError, ApiResult};
use crate::extract::SecretJson;
use crate::pubsub_backends::check_pubsub_settings;
use crate::time::now_ms;
use crate::user_api::secrets::checked_secret;
use crate::vault::SecretString;

/// `GET /api/v1/channels[?member=true]`: owned channels, plus joined ones on request.
pub async fn list(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ListResponse<ChannelView>>> {
    let include_joined = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .any(|pair| pair == "member=true" || pair == "member=1");

    // FIXME: no pagination; fine while users stay under the 100-channel limit of SPEC §21.
    let channels = state.db.channels_for(&user.email, include_joined).await?;
    // Every listed channel is owned or joined by the caller, so backend kinds are visible.
    // Secrets are left out of lists; GET the channel for them.
    let items = channels
        .iter()
        .map(|channel| channel_view(channel, true))
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// `POST /api/v1/channels {name, bucket?, pubsub?, secrets?}`: defaults to embedded
/// backends with presigned reads. Names are unique forever, deleted channels included.
pub async fn create(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    SecretJson(request): SecretJson<CreateChannelRequest>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let secrets = request
        .secrets
        .into_iter()
        .map(|(kind, value)| Ok((kind, checked_secret(kind, value)?)))
        .collect::<ApiResult<Vec<_>>>()?;

    let bucket = request.bucket.unwrap_or_default();
    let bucket_config = checked_bucket(&bucket, &secrets)?;
    let bucket_backend = bucket_config.backend_name().to_owned();
    let pubsub = check_pubsub_settings(request.pubsub, &secrets)?;
    let pubsub_backend = pubsub.backend;

    let now = now_ms();
    let audit = user
        .actor()
        .audit("channel.create", now, user.request_id.clone())
        .target(&request.name)
        .details(serde_json::json!({ "bucket": bucket_backend, "pubsub": pubsub_backend }));
    let new_channel = NewChannel {
        name: request.name,
        owner: user.email.clone(),
        bucket_backend,
        bucket_config: bucket_config.stored_json(),
        read_mode: bucket.read_mode,
        pubsub_backend,
        pubsub_config: pubsub.config,
        now,
    };
    let cipher = state.vault.cipher();
    let seal = |channel_id| {
        secrets
            .iter()
            .map(|(kind, value)| Ok((*kind, cipher.seal(channel_id, *kind, value)?)))
            .collect()
    };
    let channel = state.db.create_channel(new_channel, &seal, audit).await?;
    drop(secrets);
    tracing::info!(channel = %channel.name, "channel created");
    let view = full_channel_view(&state, &channel).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /api/v1/channels/{name}`: everyone signed in sees name, owner and deleted flag
/// (to join); owners, admins and owners of member nodes also see the backend kinds; owners
/// and admins also see each secret's fingerprint and hint.
pub async fn show(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    let channel = find_channel(&state, &name).await?;
    if is_owner_or_admin(&user, &channel) {
        return Ok(Json(full_channel_view(&state, &channel).await?));
    }
    let show_backends = state.db.has_member_node_of(channel.id, &user.email).await?;
    Ok(Json(channel_view(&channel, show_backends)))
}

/// `DELETE /api/v1/channels/{name}`: soft delete by the owner or an admin. E becomes
/// empty for every member at once and broker connections close.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let channel = find_channel(&state, &name).await?;
    if !is_owner_or_admin(&user, &channel) {
        return Err(ApiError::new(
            ErrorCode::NotOwner,
            format!(
                "only the owner of {} or an admin may delete it",
                channel.name
            ),
        ));
    }
    super::refuse_deleted(&channel)?;

    let now = now_ms();
    let audit = user
        .actor()
        .audit("channel.delete", now, user.request_id.clone())
        .channel(channel.id)
        .target(&channel.name);
    state.db.soft_delete_channel(channel.id, now, audit).await?;

    state.backends.close_channel(&channel.name);
    tracing::info!(channel = %channel.name, "channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks `bucket` of a create request against the secrets given with it: the settings,
/// the one secret the backend signs with (no other bucket secret), and a public base URL
/// for public reads. Building the backend with the real secret proves they fit together
/// without any network I/O.
fn checked_bucket(
    bucket: &BucketSettings,
    secrets: &[(SecretKind, SecretString)],
) -> ApiResult<BucketConfig> {
    let config = BucketConfig::parse(&bucket.backend, bucket.config.as_ref())
        .map_err(|error| ApiError::validation(error.to_string()))?;
    let needed = config.secret_kind();
    for (kind, _) in secrets {
        let is_bucket_kind = matches!(
            kind,
            SecretKind::S3SecretAccessKey | SecretKind::GcsServiceAccount
        );
        if is_bucket_kind && Some(*kind) != needed {
            return Err(ApiError::validation(format!(
                "secret {kind} does not belong to a {} bucket",
                config.backend_name()
            )));
        }
    }
    if let Some(kind) = needed {
        let secret = secrets
            .iter()
            .find(|(given, _)| *given == kind)
            .map(|(_, value)| value)
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "{} buckets need secrets.{kind}",
                    config.backend_name()
                ))
            })?;
        config
            .build(Some(secret))
            .map_err(|error| ApiError::validation(error.to_string()))?;
    }

    // FIXME: the embedded bucket cannot serve unsigned reads per channel yet; matters for
    // channels shared with the original kachery, which read publicly.
    if bucket.read_mode == ReadMode::Public && config.read_base().is_none() {
        return Err(ApiError::validation(format!(
            "bucket.readMode \"public\" needs bucket.config.publicBaseUrl; the {} bucket \
             has none",
            config.backend_name()
        )));
    }
    Ok(config)
}

/// `POST /api/v1/channels/{name}/restore`: the owner undoes a soft delete (SPEC §5.5).
/// Members get their roles back at their next reconcile.
pub async fn restore(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    let channel = find_channel(&state, &name).await?;
    if user.email != channel.owner {
        return Err(ApiError::new(
            ErrorCode::NotOwner,
            format!("only the owner of {} may restore it", channel.name),
        ));
    }
    let audit = user
        .actor()
        .audit("channel.restore", now_ms(), user.request_id.clone())
        .channel(channel.id)
        .target(&channel.name);
    state
        .db
        .restore_channel(channel.id, audit)
        .await
        .map_err(|error| match error {
            crate::db::DbError::NotFound => {
                ApiError::bad_request(format!("channel {} is not deleted", channel.name))
            }
            other => other.into(),
        })?;
    tracing::info!(channel = %channel.name, "channel restored");
    let restored = find_channel(&state, &name).await?;
    Ok(Json(full_channel_view(&state, &restored).await?))
}

//! `POST /api/v1/channels/{name}/test` (owner, admin): runs the channel test of SPEC §10.2
//! ([`crate::channel_test`]) and audits its outcome. Rate limited to 6 a minute per user,
//! since each run writes to the bucket and opens broker connections.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use kachery_protocol::hub_views::ChannelTestResponse;

use super::grants::readable_channel;
use super::passcodes::rate_limited;
use super::refuse_deleted;
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::time::now_ms;

pub async fn run(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(name): Path<String>,
) -> ApiResult<Json<ChannelTestResponse>> {
    Ok(Json(test_channel(&state, &user, &name).await?))
}

/// Runs the test on a live channel the caller owns or administers.
pub async fn test_channel(
    state: &AppState,
    user: &AuthedUser,
    name: &str,
) -> ApiResult<ChannelTestResponse> {
    let channel = readable_channel(state, user, name).await?;
    refuse_deleted(&channel)?;
    state
        .channel_test_rate_limit
        .check(&user.email)
        .map_err(|wait| rate_limited("channel tests", wait))?;

    let response = crate::channel_test::run(state, &channel, &user.email).await;
    let audit = user
        .actor()
        .audit("channel.test", now_ms(), user.request_id.clone())
        .channel(channel.id)
        .target(&channel.name)
        .details(serde_json::json!({
            "bucketOk": response.bucket.ok,
            "pubsubOk": response.pubsub.ok,
        }));
    state.db.append_audit(audit).await?;
    tracing::info!(
        channel = %channel.name,
        bucket_ok = response.bucket.ok,
        pubsub_ok = response.pubsub.ok,
        "channel tested"
    );
    Ok(response)
}

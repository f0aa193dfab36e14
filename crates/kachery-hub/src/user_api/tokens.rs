//! `GET /api/v1/tokens` and `DELETE /api/v1/tokens/{id}`: the caller's API tokens (SPEC
//! §9.3, §10.2). Lists show labels and times, never the tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kachery_protocol::cli_login::TokenView;
use kachery_protocol::user_api::ListResponse;

use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::time::now_ms;
use crate::user_api::parse_path;

pub async fn list(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
) -> ApiResult<Json<ListResponse<TokenView>>> {
    let tokens = state.db.api_tokens_of(&user.email).await?;
    let items = tokens
        .into_iter()
        .map(|token| TokenView {
            id: token.id,
            label: token.label,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            dev_login: token.dev_login,
        })
        .collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

pub async fn revoke(
    State(state): State<Arc<AppState>>,
    user: AuthedUser,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    let token_id: i64 = parse_path(&token_id)?;
    let now = now_ms();
    let audit = user
        .actor()
        .audit("token.revoke", now, user.request_id.clone())
        .target(token_id);
    state
        .db
        .revoke_api_token(token_id, &user.email, now, audit)
        .await
        .map_err(|error| match error {
            crate::db::DbError::NotFound => ApiError::not_found(format!(
                "you have no active API token {token_id}; see GET /api/v1/tokens"
            )),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

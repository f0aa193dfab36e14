//! Who is calling the user API: bearer API tokens, the [`AuthedUser`] extractor, and dev
//! login's token endpoint (SPEC §9.2, §9.3).
//!
//! A token is `kat_` plus 43 base64url characters (256 random bits). The hub stores only
//! its SHA-256, so a database dump yields no usable tokens. Browser sessions
//! ([`crate::web_auth`]) are the second way to produce an [`AuthedUser`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kachery_protocol::Email;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::{ApiTokenResponse, DevTokenRequest};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::audit::Actor;
use crate::db::NewApiToken;
use crate::error::{ApiError, ApiResult};
use crate::extract::{RequestId, parse_json};
use crate::time::now_ms;
use crate::web_auth::{BrowserSession, csrf, session};

/// Prefix of every API token, so leaked tokens are easy to recognise and scan for.
const TOKEN_PREFIX: &str = "kat_";
/// Default API-token lifetime: 90 days.
const TOKEN_TTL_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// A signed-in user, resolved from the request's bearer token or browser session.
#[derive(Debug, Clone)]
pub struct AuthedUser {
    pub email: Email,
    /// From hub config, evaluated on every request.
    pub admin: bool,
    /// Signed in through dev login; flags audit entries.
    pub dev_login: bool,
    pub request_id: Option<String>,
}

impl AuthedUser {
    /// The audit actor for this user.
    pub fn actor(&self) -> Actor {
        Actor::User {
            email: self.email.clone(),
            dev_login: self.dev_login,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for AuthedUser {
    type Rejection = ApiError;

    /// A bearer token if the request has an `Authorization` header, else the browser
    /// session of its cookie, CSRF-checked on state-changing methods (SPEC §9.1).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let RequestId(request_id) = RequestId::from_request_parts(parts, state)
            .await
            .expect("reading the request id cannot fail");
        if let Some(header_value) = parts.headers.get(header::AUTHORIZATION) {
            return from_bearer(state, header_value, request_id).await;
        }

        let Some(live) = session::load(state, &parts.headers).await? else {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "sign in: send `Authorization: Bearer <api token>` (see `kachery login`) \
                 or sign in to the hub in a browser",
            ));
        };
        if csrf::is_state_changing(&parts.method) {
            csrf::check_origin(&parts.headers, &state.origin)?;
            csrf::check_token(&live.record.csrf_secret, csrf::header_token(&parts.headers))?;
        }
        Ok(BrowserSession::from_live(state, live, request_id).user)
    }
}

/// The user of an `Authorization: Bearer kat_…` header.
async fn from_bearer(
    state: &AppState,
    header_value: &HeaderValue,
    request_id: Option<String>,
) -> Result<AuthedUser, ApiError> {
    let unauthenticated = |message: &str| ApiError::new(ErrorCode::Unauthenticated, message);
    let token = header_value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| token.starts_with(TOKEN_PREFIX))
        .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer kat_…`"))?;

    let now = now_ms();
    let record = state
        .db
        .api_token(&token_hash(token), now)
        .await?
        .filter(|record| !record.revoked)
        .ok_or_else(|| unauthenticated("unknown or revoked API token; run `kachery login`"))?;
    if record.expires_at <= now {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            "this API token has expired; run `kachery login` for a new one",
        ));
    }
    Ok(AuthedUser {
        admin: state.config.is_admin(&record.email),
        email: record.email,
        dev_login: record.dev_login,
        request_id,
    })
}

/// A fresh random token.
fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What the database stores for a token: SHA-256, lowercase hex.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a user's API token and stores its hash; returns the token, shown once.
pub async fn issue_token(
    state: &AppState,
    email: &Email,
    label: &str,
    dev_login: bool,
    request_id: Option<String>,
) -> ApiResult<ApiTokenResponse> {
    let now = now_ms();
    let user_id = state.db.touch_user(email, now).await?;
    let token =
        new_token().map_err(|error| ApiError::internal("no randomness for a token", &error))?;
    let expires_at = now + TOKEN_TTL_MS;

    let actor = Actor::User {
        email: email.clone(),
        dev_login,
    };
    let audit = actor
        .audit("token.create", now, request_id)
        .details(serde_json::json!({ "label": label, "expiresAt": expires_at }));
    let new_token = NewApiToken {
        user_id,
        token_hash: token_hash(&token),
        label: label.to_owned(),
        dev_login,
        created_at: now,
        expires_at,
    };
    state.db.insert_api_token(new_token, audit).await?;
    Ok(ApiTokenResponse { token, expires_at })
}

/// `POST /api/v1/dev/token {email}`: any e-mail, no questions, on a dev-login hub only.
pub async fn dev_token(
    State(state): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    body: Bytes,
) -> ApiResult<axum::Json<ApiTokenResponse>> {
    // Checked before the body, so a hub without dev login never hints at the endpoint.
    if !state.config.dev_login {
        return Err(ApiError::not_found("dev login is not enabled on this hub"));
    }
    let request: DevTokenRequest = parse_json(&body)?;
    tracing::debug!(email = %request.email, "dev login issued an api token");
    let response = issue_token(&state, &request.email, "dev login", true, request_id).await?;
    Ok(axum::Json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape() {
        let token = new_token().unwrap();
        assert!(token.starts_with("kat_"));
        assert_eq!(token.len(), 4 + 43);
        assert_ne!(token, new_token().unwrap());
        assert_eq!(token_hash(&token).len(), 64);
    }
}

//! Extractors for browser pages: [`BrowserSession`] for any page that needs a signed-in
//! user, [`SessionForm`] for the forms those pages post (CSRF-checked).
//!
//! Signed out, a page GET is redirected to `/login?return_to=<this page>`; any other
//! method gets 401 `unauthenticated`. The JSON API uses [`crate::auth::AuthedUser`]
//! instead, which also accepts bearer tokens.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use kachery_protocol::api_error::ErrorCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::csrf::{check_origin, check_token, header_token};
use super::session::{self, LiveSession};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::error::ApiError;
use crate::extract::{RequestId, read_body};

/// The signed-in user of a browser request and what its pages need to post forms.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub user: AuthedUser,
    /// Put this in every form as the hidden field `csrf` (or send it as `X-CSRF-Token`).
    pub csrf_token: String,
    /// Identifies the session row (its id hash), e.g. for logout.
    pub(crate) id_hash: String,
    pub(crate) user_id: i64,
}

impl BrowserSession {
    pub(crate) fn from_live(
        state: &AppState,
        live: LiveSession,
        request_id: Option<String>,
    ) -> Self {
        let record = live.record;
        let user_id = record.user_id;
        Self {
            user: AuthedUser {
                admin: state.config.is_admin(&record.email),
                email: record.email,
                dev_login: record.dev_login,
                request_id,
            },
            csrf_token: record.csrf_secret,
            id_hash: live.id_hash,
            user_id,
        }
    }
}

/// Why a page could not be shown to a signed-out browser.
#[derive(Debug)]
pub enum SignInRequired {
    /// A page view: go and sign in, then come back here.
    Redirect(String),
    /// Anything else, or the session lookup failed.
    Refused(ApiError),
}

impl IntoResponse for SignInRequired {
    fn into_response(self) -> Response {
        match self {
            Self::Redirect(location) => Redirect::to(&location).into_response(),
            Self::Refused(error) => error.into_response(),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for BrowserSession {
    type Rejection = SignInRequired;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, SignInRequired> {
        let live = session::load(state, &parts.headers)
            .await
            .map_err(|error| SignInRequired::Refused(error.into()))?;
        let RequestId(request_id) = RequestId::from_request_parts(parts, state)
            .await
            .expect("reading the request id cannot fail");
        match live {
            Some(live) => Ok(BrowserSession::from_live(state, live, request_id)),
            None if matches!(parts.method, Method::GET | Method::HEAD) => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |path_and_query| path_and_query.as_str());
                Err(SignInRequired::Redirect(login_url(here)))
            }
            None => Err(SignInRequired::Refused(ApiError::new(
                ErrorCode::Unauthenticated,
                "your session has ended; sign in again",
            ))),
        }
    }
}

/// `/login?return_to=<here>`.
pub fn login_url(return_to: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("/login?{query}")
}

/// A urlencoded form posted by a signed-in browser, after the CSRF checks: the request
/// comes from this hub's origin and carries the session's token (field `csrf` or header
/// `X-CSRF-Token`). `T` must not deny unknown fields, since `csrf` is one of them.
#[derive(Debug)]
pub struct SessionForm<T> {
    pub session: BrowserSession,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for SessionForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = BrowserSession::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        check_origin(&parts.headers, &state.origin).map_err(IntoResponse::into_response)?;

        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let csrf_header = header_token(&parts.headers).map(str::to_owned);
        let bytes = read_body(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !is_form && !bytes.is_empty() {
            return Err(ApiError::bad_request(
                "send this form as application/x-www-form-urlencoded",
            )
            .into_response());
        }

        let field: CsrfField = serde_urlencoded::from_bytes(&bytes)
            .map_err(|error| ApiError::bad_request(format!("malformed form: {error}")))
            .map_err(IntoResponse::into_response)?;
        let presented = field.csrf.or(csrf_header);
        check_token(&session.csrf_token, presented.as_deref())
            .map_err(IntoResponse::into_response)?;

        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|error| ApiError::validation(format!("invalid form: {error}")))
            .map_err(IntoResponse::into_response)?;
        Ok(SessionForm { session, form })
    }
}

//! `kachery login` on the hub side (SPEC §9.3): the loopback flow's Approve page, the
//! device flow's code page, and `POST /api/v1/cli/device` and `/api/v1/cli/token`.
//!
//! Loopback: the CLI listens on `127.0.0.1:<port>` and opens
//! `/cli/authorize?port&state&code_challenge`. A signed-in user approves (a CSRF-checked
//! form); the hub stores a single-use code (by its SHA-256, with the challenge) for 5
//! minutes and redirects to `http://127.0.0.1:<port>/callback?code&state`. The CLI
//! redeems code + PKCE verifier for an API token. The redirect only ever goes to
//! 127.0.0.1, so the code cannot be sent to another machine.
//!
//! Device: the CLI gets a device code (kept secret) and a short user code (shown); the
//! user types the user code at `/device`, and the CLI's polls with the device code turn
//! into a token once approved. Both codes expire after 10 minutes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::cli_login::{CliTokenRequest, DeviceCodeResponse};
use kachery_protocol::user_api::ApiTokenResponse;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::extract::{BrowserSession, SessionForm};
use super::html::{csrf_field, escape, page};
use super::session::{random_token, sha256_hex};
use crate::app::AppState;
use crate::auth::issue_token;
use crate::db::{AuthFlow, FlowKind};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, RequestId};
use crate::time::now_ms;

/// An approved loopback code must be redeemed within 5 minutes.
const LOOPBACK_CODE_TTL_MS: i64 = 5 * 60 * 1000;
/// Device codes live 10 minutes (the CLI's polling limit).
const DEVICE_CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Seconds between device-code polls.
const POLL_INTERVAL_SECS: u64 = 5;
/// User codes use consonants only: no words, no 0/O or 1/I confusion. 8 of them are
/// 20^8 ≈ 2.6·10^10 values, against guesses that need a signed-in user.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Marks a flow approved from a dev-login session, so its token is flagged too.
const APPROVED_BY_DEV_LOGIN: &str = "dev-login";
/// Label of tokens made by `kachery login`.
const TOKEN_LABEL: &str = "kachery login";

/// What the CLI puts in `/cli/authorize`; echoed by the Approve form.
#[derive(Debug, Deserialize)]
pub struct AuthorizeRequest {
    port: u16,
    state: String,
    code_challenge: String,
}

impl AuthorizeRequest {
    fn validate(&self) -> ApiResult<()> {
        if self.port < 1024 {
            return Err(ApiError::validation("port: must be 1024 or above"));
        }
        let is_token = |text: &str| {
            text.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        };
        if self.state.is_empty() || self.state.len() > 128 || !is_token(&self.state) {
            return Err(ApiError::validation(
                "state: must be 1-128 base64url characters",
            ));
        }
        if self.code_challenge.len() != 43 || !is_token(&self.code_challenge) {
            return Err(ApiError::validation(
                "code_challenge: must be the 43-character base64url SHA-256 of the verifier",
            ));
        }
        Ok(())
    }

    fn callback_url(&self, query: &[(&str, &str)]) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        serializer.extend_pairs(query);
        serializer.append_pair("state", &self.state);
        format!(
            "http://127.0.0.1:{}/callback?{}",
            self.port,
            serializer.finish()
        )
    }
}

/// `GET /cli/authorize`: asks the signed-in user to approve a CLI token.
pub async fn authorize_page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Query(request): Query<AuthorizeRequest>,
) -> ApiResult<Html<String>> {
    request.validate()?;
    let body = format!(
        "<p>The <code>kachery</code> command line on this computer asks for an API token \
         to act as <strong>{email}</strong>. Approve only if you just ran \
         <code>kachery login</code>.</p>\
         <form method=\"post\" action=\"/cli/authorize\">{csrf}\
         <input type=\"hidden\" name=\"port\" value=\"{port}\">\
         <input type=\"hidden\" name=\"state\" value=\"{cli_state}\">\
         <input type=\"hidden\" name=\"code_challenge\" value=\"{challenge}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        email = escape(session.user.email.as_str()),
        csrf = csrf_field(&session.csrf_token),
        port = request.port,
        cli_state = escape(&request.state),
        challenge = escape(&request.code_challenge),
    );
    Ok(page(
        "Approve command-line sign-in",
        state.config.dev_login,
        &body,
    ))
}

/// The Approve form: the request's fields and the decision. Not `#[serde(flatten)]`:
/// flattened fields reach serde as strings, and `port` would no longer parse.
#[derive(Debug, Deserialize)]
pub struct AuthorizeForm {
    port: u16,
    state: String,
    code_challenge: String,
    decision: String,
}

/// `POST /cli/authorize`: on Approve, a single-use code for the CLI's loopback port.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    SessionForm { session, form }: SessionForm<AuthorizeForm>,
) -> ApiResult<Response> {
    let request = AuthorizeRequest {
        port: form.port,
        state: form.state,
        code_challenge: form.code_challenge,
    };
    request.validate()?;
    if form.decision != "approve" {
        let url = request.callback_url(&[("error", "access_denied")]);
        return Ok(Redirect::to(&url).into_response());
    }

    let code = random_token()?;
    let now = now_ms();
    let flow = AuthFlow {
        state: sha256_hex(&code),
        kind: FlowKind::Cli,
        provider: session
            .user
            .dev_login
            .then(|| APPROVED_BY_DEV_LOGIN.to_owned()),
        pkce_verifier: None,
        code_challenge: Some(request.code_challenge.clone()),
        oidc_nonce: None,
        user_code: None,
        return_to: None,
        user_id: Some(session.user_id),
        created_at: now,
        expires_at: now + LOOPBACK_CODE_TTL_MS,
    };
    state.db.insert_auth_flow(flow).await?;
    tracing::debug!(email = %session.user.email, "cli login approved");
    Ok(Redirect::to(&request.callback_url(&[("code", &code)])).into_response())
}

/// `POST /api/v1/cli/device`: a new device code and user code.
pub async fn start_device(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<DeviceCodeResponse>> {
    let device_code = random_token()?;
    let user_code = new_user_code()?;
    let now = now_ms();
    let flow = AuthFlow {
        state: sha256_hex(&device_code),
        kind: FlowKind::Device,
        provider: None,
        pkce_verifier: None,
        code_challenge: None,
        oidc_nonce: None,
        user_code: Some(user_code.clone()),
        return_to: None,
        user_id: None,
        created_at: now,
        expires_at: now + DEVICE_CODE_TTL_MS,
    };
    state.db.insert_auth_flow(flow).await?;
    Ok(Json(DeviceCodeResponse {
        device_code,
        user_code,
        verification_url: format!("{}/device", state.origin),
        interval: POLL_INTERVAL_SECS,
        expires_in: u64::try_from(DEVICE_CODE_TTL_MS / 1000).expect("a positive constant"),
    }))
}

/// `XXXX-XXXX` from [`USER_CODE_ALPHABET`].
fn new_user_code() -> ApiResult<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|error| ApiError::internal("no randomness for a user code", &error))?;
    // 256 is not a multiple of 20, so bytes at or above 240 would favour the first
    // letters; drawing fresh bytes for those keeps the choice uniform.
    let mut letters = Vec::with_capacity(8);
    let mut pool = bytes.to_vec();
    while letters.len() < 8 {
        let Some(byte) = pool.pop() else {
            let mut more = [0u8; 8];
            getrandom::fill(&mut more)
                .map_err(|error| ApiError::internal("no randomness for a user code", &error))?;
            pool.extend_from_slice(&more);
            continue;
        };
        if byte < 240 {
            letters.push(USER_CODE_ALPHABET[usize::from(byte) % USER_CODE_ALPHABET.len()]);
        }
    }
    let text = String::from_utf8(letters).expect("the alphabet is ASCII");
    Ok(format!("{}-{}", &text[..4], &text[4..]))
}

/// A typed user code in canonical form: uppercase, `-` in the middle, spaces ignored.
fn normalize_user_code(typed: &str) -> String {
    let letters: String = typed
        .chars()
        .filter(|character| character.is_ascii_alphanumeric())
        .map(|character| character.to_ascii_uppercase())
        .collect();
    if letters.len() == 8 {
        format!("{}-{}", &letters[..4], &letters[4..])
    } else {
        letters
    }
}

#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    code: Option<String>,
}

/// `GET /device`: the form for the code `kachery login --device` shows.
pub async fn device_page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Query(query): Query<DeviceQuery>,
) -> Html<String> {
    device_form(&state, &session, query.code.as_deref().unwrap_or(""), None)
}

fn device_form(
    state: &AppState,
    session: &BrowserSession,
    code: &str,
    error: Option<&str>,
) -> Html<String> {
    let error = error
        .map(|message| {
            format!(
                "<p role=\"alert\" id=\"code-error\">{}</p>",
                escape(message)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<p>Enter the code <code>kachery login --device</code> shows, to give that command \
         an API token acting as <strong>{email}</strong>.</p>{error}\
         <form method=\"post\" action=\"/device\">{csrf}\
         <p><label for=\"user_code\">Code</label> \
         <input id=\"user_code\" name=\"user_code\" value=\"{code}\" required \
         autocomplete=\"off\" autocapitalize=\"characters\"> \
         <button type=\"submit\">Approve</button></p></form>",
        email = escape(session.user.email.as_str()),
        csrf = csrf_field(&session.csrf_token),
        code = escape(code),
    );
    page("Approve a device", state.config.dev_login, &body)
}

#[derive(Debug, Deserialize)]
pub struct DeviceForm {
    user_code: String,
}

/// `POST /device`: approves the device code with this user code.
pub async fn approve_device(
    State(state): State<Arc<AppState>>,
    SessionForm { session, form }: SessionForm<DeviceForm>,
) -> ApiResult<Response> {
    let user_code = normalize_user_code(&form.user_code);
    let approved_via = session.user.dev_login.then_some(APPROVED_BY_DEV_LOGIN);
    let approved = state
        .db
        .approve_device_flow(&user_code, session.user_id, approved_via, now_ms())
        .await?;
    if !approved {
        let message = "that code is unknown, expired or already used; check it, or run \
                       `kachery login --device` again";
        let page = device_form(&state, &session, &form.user_code, Some(message));
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    tracing::debug!(email = %session.user.email, "device login approved");
    let body = "<p>Approved. Return to your terminal: <code>kachery login</code> finishes \
                by itself.</p>";
    Ok(page("Device approved", state.config.dev_login, body).into_response())
}

/// `POST /api/v1/cli/token`: redeems a loopback code or a device code for an API token.
pub async fn token(
    State(state): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    ApiJson(request): ApiJson<CliTokenRequest>,
) -> ApiResult<Json<ApiTokenResponse>> {
    let now = now_ms();
    let flow = match request {
        CliTokenRequest::Loopback(loopback) => {
            // Taken (deleted) before the verifier is checked: a wrong guess burns the code.
            let flow = state
                .db
                .take_auth_flow(&sha256_hex(&loopback.code), FlowKind::Cli, now)
                .await?
                .ok_or_else(|| unknown_code("this code is unknown, expired or already used"))?;
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(loopback.code_verifier));
            if flow.code_challenge.as_deref() != Some(challenge.as_str()) {
                return Err(unknown_code(
                    "the code verifier does not match the challenge",
                ));
            }
            flow
        }
        CliTokenRequest::Device(device) => {
            let state_key = sha256_hex(&device.device_code);
            let pending = state
                .db
                .auth_flow(&state_key, FlowKind::Device, now)
                .await?
                .ok_or_else(|| {
                    unknown_code("this device code is unknown or expired; start again")
                })?;
            if pending.user_id.is_none() {
                return Err(ApiError::new(
                    ErrorCode::AuthorizationPending,
                    format!(
                        "waiting for the code {} to be entered at {}/device",
                        pending.user_code.as_deref().unwrap_or("?"),
                        state.origin
                    ),
                ));
            }
            state
                .db
                .take_auth_flow(&state_key, FlowKind::Device, now)
                .await?
                .ok_or_else(|| unknown_code("this device code was already used"))?
        }
    };

    let user_id = flow
        .user_id
        .ok_or_else(|| unknown_code("this code was never approved"))?;
    let email = state
        .db
        .user_email(user_id)
        .await?
        .ok_or_else(|| unknown_code("the approving user no longer exists"))?;
    let dev_login = flow.provider.as_deref() == Some(APPROVED_BY_DEV_LOGIN);
    let response = issue_token(&state, &email, TOKEN_LABEL, dev_login, request_id).await?;
    tracing::debug!(email = %email, "cli login issued an api token");
    Ok(Json(response))
}

fn unknown_code(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typed_back_in_any_case_and_spacing() {
        let code = new_user_code().unwrap();
        assert_eq!(code.len(), 9);
        assert_eq!(
            normalize_user_code(&code.to_lowercase().replace('-', " ")),
            code
        );
        assert!(
            code.bytes()
                .all(|byte| byte == b'-' || USER_CODE_ALPHABET.contains(&byte))
        );
    }
}

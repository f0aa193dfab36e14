//! The sign-in page, dev login's form handler and logout (SPEC §9.1, §9.2).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, http::HeaderValue};
use kachery_protocol::Email;
use serde::Deserialize;

use super::csrf::check_origin;
use super::extract::SessionForm;
use super::html::{csrf_field, escape, page};
use super::session;
use crate::app::AppState;
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::RequestId;
use crate::time::now_ms;

/// Where to go after signing in: only a path on this hub (SPEC §9.1), else `/`.
/// Rejects absolute and scheme-relative URLs (`//evil`, `/\evil`) and control characters.
pub fn safe_return_to(raw: Option<&str>) -> String {
    let Some(raw) = raw else {
        return "/".to_owned();
    };
    let is_local_path = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && !raw
            .chars()
            .any(|character| character.is_control() || character == '\\');
    if is_local_path {
        raw.to_owned()
    } else {
        "/".to_owned()
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /login`: one button per configured provider, and the dev form when enabled;
/// when already signed in, who and a sign-out button.
pub async fn page_handler(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> ApiResult<Html<String>> {
    let return_to = safe_return_to(query.return_to.as_deref());
    let return_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &return_to)
        .finish();

    let mut body = String::new();
    if let Some(live) = session::load(&state, &headers).await? {
        body.push_str(&format!(
            "<p>You are signed in as <strong>{email}</strong>.</p>\
             <form method=\"post\" action=\"/logout\">{csrf}\
             <button type=\"submit\">Sign out</button></form>\
             <p>Sign in as someone else:</p>",
            email = escape(live.record.email.as_str()),
            csrf = csrf_field(&live.record.csrf_secret),
        ));
    }
    for provider in super::providers(&state) {
        body.push_str(&format!(
            "<p><a href=\"/login/oidc/{name}?{query}\">Sign in with {label}</a></p>",
            name = escape(provider.name),
            query = escape(&return_query),
            label = escape(provider.label),
        ));
    }
    if state.config.dev_login {
        body.push_str(&dev_form(&return_to, "", None));
    }
    if super::providers(&state).is_empty() && !state.config.dev_login {
        body.push_str(
            "<p role=\"alert\">No sign-in method is configured on this hub: \
             the operator must add an <code>[[oidc]]</code> provider.</p>",
        );
    }
    Ok(page("Sign in", state.config.dev_login, &body))
}

#[derive(Debug, Deserialize)]
pub struct DevLoginForm {
    email: String,
    return_to: Option<String>,
}

/// The dev-login form, with what was typed and the error about it after a refusal.
fn dev_form(return_to: &str, email: &str, error: Option<&str>) -> String {
    let (described, message) = match error {
        Some(error) => (
            " aria-describedby=\"email-error\" aria-invalid=\"true\"",
            format!(
                "<p class=\"field-error\" id=\"email-error\" role=\"alert\">{}</p>",
                escape(error)
            ),
        ),
        None => ("", String::new()),
    };
    format!(
        "<form method=\"post\" action=\"/login/dev\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{return_to}\">\
         <p><label for=\"email\">Sign in as (any e-mail, no password)</label> \
         <input id=\"email\" name=\"email\" type=\"email\" value=\"{email}\" required \
         autocomplete=\"email\"{described}> \
         <button type=\"submit\">Sign in</button></p>{message}</form>",
        return_to = escape(return_to),
        email = escape(email),
    )
}

/// `POST /login/dev`: signs in as the given e-mail on a dev-login hub. No CSRF token
/// (there is no session yet), but the Origin check applies, so another site cannot sign
/// a visitor in as someone else.
pub async fn dev_login(
    State(state): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Form(form): Form<DevLoginForm>,
) -> ApiResult<Response> {
    if !state.config.dev_login {
        return Err(ApiError::not_found("dev login is not enabled on this hub"));
    }
    check_origin(&headers, &state.origin)?;
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(error) => {
            // The form again, with the error beside the field, as every other form does.
            let return_to = safe_return_to(form.return_to.as_deref());
            let body = dev_form(&return_to, &form.email, Some(&format!("E-mail: {error}")));
            let page = page("Sign in", state.config.dev_login, &body);
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };

    end_previous_session(&state, &headers).await?;
    let user_id = state.db.touch_user(&email, now_ms()).await?;
    let cookie = session::start(&state, user_id, true).await?;
    audit_sign_in(&state, &email, true, "dev", request_id).await?;
    tracing::debug!(email = %email, "dev login started a session");
    Ok(redirect_with_cookie(
        &safe_return_to(form.return_to.as_deref()),
        cookie,
    ))
}

/// `POST /logout` (CSRF-checked): deletes the session and the cookie.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    SessionForm { session, .. }: SessionForm<serde::de::IgnoredAny>,
) -> ApiResult<Response> {
    state.db.delete_session(&session.id_hash).await?;
    tracing::debug!(email = %session.user.email, "signed out");
    Ok(redirect_with_cookie("/", session::clear_cookie(&state)))
}

/// A sign-in replaces whatever session the browser had.
pub async fn end_previous_session(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    if let Some(old_id) = session::session_id(headers) {
        state
            .db
            .delete_session(&session::sha256_hex(old_id))
            .await?;
    }
    Ok(())
}

/// Appends a `user.sign_in` audit entry naming the method.
pub async fn audit_sign_in(
    state: &AppState,
    email: &Email,
    dev_login: bool,
    method: &str,
    request_id: Option<String>,
) -> ApiResult<()> {
    let actor = Actor::User {
        email: email.clone(),
        dev_login,
    };
    let audit = actor
        .audit("user.sign_in", now_ms(), request_id)
        .details(serde_json::json!({ "method": method }));
    state.db.append_audit(audit).await?;
    Ok(())
}

/// A 303 to `location` that also sets (or clears) the session cookie.
pub fn redirect_with_cookie(location: &str, cookie: HeaderValue) -> Response {
    let mut response = Redirect::to(location).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return_to(Some("/nodes?x=1")), "/nodes?x=1");
        assert_eq!(safe_return_to(None), "/");
        for hostile in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\nb",
            "nodes",
        ] {
            assert_eq!(safe_return_to(Some(hostile)), "/", "{hostile}");
        }
    }
}

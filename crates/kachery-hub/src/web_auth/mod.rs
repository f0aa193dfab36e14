//! Signing people in from a browser (SPEC §9.1, §9.2): sessions, CSRF checks, the sign-in
//! page, dev login, logout and the security headers every response carries.
//!
//! For page code: take a [`BrowserSession`] to require a signed-in user (a signed-out GET
//! is redirected to `/login?return_to=…`), put [`BrowserSession::csrf_token`] in every
//! form as the hidden field `csrf` ([`html::csrf_field`]), and take a [`SessionForm`] in
//! the handler the form posts to: it checks the token and the Origin before `T` is
//! parsed. The JSON API's [`crate::auth::AuthedUser`] accepts these sessions too, with
//! the token in `X-CSRF-Token` on state-changing methods.
//!
//! Inside: [`session`] (cookie, id hashing, expiry), [`csrf`] (Origin and token checks),
//! [`extract`] (the two extractors), [`login`] (pages and form handlers), [`headers`]
//! (CSP and friends), [`html`] (bare page markup).

pub mod csrf;
pub mod extract;
pub mod headers;
pub mod html;
pub mod login;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::AppState;

pub use extract::{BrowserSession, SessionForm, SignInRequired};

/// Form bodies of the sign-in routes are small.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A sign-in choice shown on `/login`.
#[derive(Debug, Clone, Copy)]
pub struct ProviderLink<'a> {
    /// Path segment: `/login/oidc/{name}`.
    pub name: &'a str,
    /// Shown on the button.
    pub label: &'a str,
}

/// The configured OpenID Connect providers, in config order.
pub fn providers(_state: &AppState) -> Vec<ProviderLink<'_>> {
    Vec::new()
}

/// The sign-in routes: `/login`, `/login/dev`, `/logout`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login::page_handler))
        .route("/login/dev", post(login::dev_login))
        .route("/logout", post(login::logout))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// Wraps the whole app in the security-headers middleware.
pub fn with_security_headers(app: Router, origin: &str) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        headers::SecurityHeaders::for_origin(origin),
        headers::add,
    ))
}

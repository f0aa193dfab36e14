//! Signing people in (SPEC §9): browser sessions, CSRF checks, OpenID Connect, dev
//! login, logout, the command line's login flows, and the security headers every
//! response carries.
//!
//! For page code: take a [`BrowserSession`] to require a signed-in user (a signed-out GET
//! is redirected to `/login?return_to=…`), put [`BrowserSession::csrf_token`] in every
//! form as the hidden field `csrf` ([`html::csrf_field`]), and take a [`SessionForm`] in
//! the handler the form posts to: it checks the token and the Origin before `T` is
//! parsed. The JSON API's [`crate::auth::AuthedUser`] accepts these sessions too, with
//! the token in `X-CSRF-Token` on state-changing methods.
//!
//! Inside: [`session`] (cookie, id hashing, expiry), [`csrf`] (Origin and token checks),
//! [`extract`] (the two extractors), [`login`] (sign-in page, dev login, logout),
//! [`oidc`] (OpenID Connect), [`cli`] (`kachery login`'s loopback and device flows),
//! [`headers`] (CSP and friends), [`html`] (bare page markup).

pub mod cli;
pub mod csrf;
pub mod extract;
pub mod headers;
pub mod html;
pub mod login;
pub mod oidc;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::AppState;

pub use extract::{BrowserSession, SessionForm};

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
pub fn providers(state: &AppState) -> Vec<ProviderLink<'_>> {
    state
        .config
        .oidc
        .iter()
        .map(|provider| ProviderLink {
            name: &provider.name,
            label: oidc::label(provider),
        })
        .collect()
}

/// The sign-in routes: `/login…`, `/logout`, the CLI's `/cli/authorize` and `/device`
/// pages, and the CLI's two JSON endpoints under `/api/v1/cli`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login::page_handler))
        .route("/login/dev", post(login::dev_login))
        .route("/login/oidc/{name}", get(oidc::start))
        .route("/login/oidc/{name}/callback", get(oidc::callback))
        .route("/logout", post(login::logout))
        .route(
            "/cli/authorize",
            get(cli::authorize_page).post(cli::authorize),
        )
        .route("/device", get(cli::device_page).post(cli::approve_device))
        .route("/api/v1/cli/device", post(cli::start_device))
        .route("/api/v1/cli/token", post(cli::token))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// Wraps the whole app in the security-headers middleware.
pub fn with_security_headers(app: Router, origin: &str) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        headers::SecurityHeaders::for_origin(origin),
        headers::add,
    ))
}

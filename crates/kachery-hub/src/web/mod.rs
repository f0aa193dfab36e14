//! The hub's web site (SPEC §12): server-rendered HTML from askama templates in
//! `crates/kachery-hub/templates/`, one style sheet and one small optional script served
//! from `/static/`.
//!
//! Every page works without JavaScript: forms post, and a successful post redirects (303)
//! to the page that shows the result; a refused one renders the form again with each error
//! beside its field and a `role="alert"` summary on top. Sessions, CSRF checks and sign-in
//! come from [`crate::web_auth`]: pages take a [`BrowserSession`], forms a [`SessionForm`].
//! The pages change nothing themselves: they call the user-API functions, so the web site
//! and the JSON API enforce the same rules (SPEC §10.3).
//!
//! Modules: [`home`] (`/`), [`nodes`] (`/nodes`, `/nodes/{id}`), [`register`]
//! (`/nodes/register`), [`channels`] (`/channels/{name}` and its forms), [`channel_forms`]
//! (`/channels/new`, `/channels/join`), [`admin`] (`/admin`); [`form`] holds the form
//! plumbing (errors beside fields, role checkboxes).

mod admin;
mod channel_forms;
mod channels;
mod form;
mod home;
mod nodes;
mod register;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kachery_protocol::api_error::ErrorCode;

use crate::app::AppState;
use crate::error::{ApiError, status_of};
use crate::web_auth::BrowserSession;

/// Form bodies are small; the largest is a channel with a pasted service-account key.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The page routes, to merge into the hub's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home::page))
        .route("/static/kachery.css", get(style_sheet))
        .route("/static/kachery.js", get(script))
        .route("/nodes", get(nodes::list))
        .route(
            "/nodes/register",
            get(register::page).post(register::confirm),
        )
        .route("/nodes/{node_id}", get(nodes::page))
        .route("/nodes/{node_id}/rename", post(nodes::rename))
        .route(
            "/nodes/{node_id}/memberships/{channel}/roles",
            post(nodes::update_roles),
        )
        .route(
            "/nodes/{node_id}/memberships/{channel}/leave",
            post(nodes::leave),
        )
        .route(
            "/nodes/{node_id}/memberships/{channel}/passcodes",
            post(nodes::enter_passcode),
        )
        .route(
            "/nodes/{node_id}/memberships/{channel}/passcodes/{id}/remove",
            post(nodes::unlink_passcode),
        )
        .route(
            "/channels/new",
            get(channel_forms::new_page).post(channel_forms::create),
        )
        .route(
            "/channels/join",
            get(channel_forms::join_page).post(channel_forms::join),
        )
        .route("/channels/{name}", get(channels::page))
        .route("/channels/{name}/grants", post(channels::grant))
        .route("/channels/{name}/grants/revoke", post(channels::revoke))
        .route("/channels/{name}/passcodes", post(channels::mint_passcode))
        .route(
            "/channels/{name}/passcodes/{id}/revoke",
            post(channels::revoke_passcode),
        )
        .route("/channels/{name}/secrets", post(channels::replace_secret))
        .route("/channels/{name}/test", post(channels::test))
        .route("/channels/{name}/delete", post(channels::delete))
        .route("/channels/{name}/restore", post(channels::restore))
        .route("/admin", get(admin::page))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

async fn style_sheet() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/kachery.css"),
    )
}

async fn script() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/kachery.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// What the shared page frame needs: the banner, who is signed in, the CSRF token for
/// the sign-out form.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dev_login: bool,
    pub email: Option<String>,
    pub admin: bool,
    pub csrf: String,
}

impl Layout {
    pub fn signed_in(state: &AppState, session: &BrowserSession) -> Self {
        Self {
            dev_login: state.config.dev_login,
            email: Some(session.user.email.to_string()),
            admin: session.user.admin,
            csrf: session.csrf_token.clone(),
        }
    }

    pub fn signed_out(state: &AppState) -> Self {
        Self {
            dev_login: state.config.dev_login,
            email: None,
            admin: false,
            csrf: String::new(),
        }
    }
}

/// Renders a page with `status`.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => ApiError::internal("failed to render a page", &error).into_response(),
    }
}

/// Redirect-after-post: the browser GETs `location`.
pub fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// A refusal shown as a page: the status of the error code and its message.
pub struct PageError {
    layout: Layout,
    error: ApiError,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: &'a Layout,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.error.code {
            ErrorCode::NotFound | ErrorCode::ChannelNotFound => "Not found",
            ErrorCode::NotOwner | ErrorCode::Forbidden => "Not allowed",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::Internal => "Something went wrong",
            _ => "Refused",
        };
        let page = ErrorPage {
            layout: &self.layout,
            title,
            message: &self.error.message,
        };
        render(status_of(self.error.code), &page)
    }
}

pub type PageResult = Result<Response, PageError>;

/// Turns an API refusal into a [`PageError`] with the page frame of `layout`.
pub trait OrPage<T> {
    fn or_page(self, layout: &Layout) -> Result<T, PageError>;
}

impl<T> OrPage<T> for Result<T, ApiError> {
    fn or_page(self, layout: &Layout) -> Result<T, PageError> {
        self.map_err(|error| PageError {
            layout: layout.clone(),
            error,
        })
    }
}

/// Short display of Unix ms as UTC, `2026-12-03 19:27`.
pub fn when(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        in_day / 3600,
        (in_day % 3600) / 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_show_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_796_326_043_000), "2026-12-03 19:27 UTC");
    }
}

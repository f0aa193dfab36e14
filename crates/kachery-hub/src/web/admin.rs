//! `/admin`: every channel (deleted ones too) and every user, with a search box that
//! narrows both lists. Admins read everything but secrets and cannot grant (SPEC §10.3).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{Layout, OrPage, PageResult, render, when};
use crate::app::AppState;
use crate::error::ApiError;
use crate::user_api::admin::require_admin;
use crate::web_auth::BrowserSession;

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    query: String,
    channels: Vec<(String, String, bool)>,
    users: Vec<(String, String, i64, i64)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdminQuery {
    q: Option<String>,
}

// FIXME: suspending users (SPEC §12 `/admin`) is not offered; matters once a hub is open
// to people its admins do not know.
pub async fn page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Query(query): Query<AdminQuery>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    require_admin(&session.user).or_page(&layout)?;
    let needle = query.q.unwrap_or_default().trim().to_lowercase();
    let matches = |text: &str| needle.is_empty() || text.to_lowercase().contains(&needle);

    let channels = state
        .db
        .all_channels(true)
        .await
        .map_err(ApiError::from)
        .or_page(&layout)?
        .into_iter()
        .filter(|channel| matches(channel.name.as_str()) || matches(channel.owner.as_str()))
        .map(|channel| {
            (
                channel.name.to_string(),
                channel.owner.to_string(),
                channel.deleted,
            )
        })
        .collect();
    let users = state
        .db
        .users()
        .await
        .map_err(ApiError::from)
        .or_page(&layout)?
        .into_iter()
        .filter(|user| matches(user.email.as_str()))
        .map(|user| {
            let last = user.last_login_at.map_or_else(|| "never".into(), when);
            (user.email.to_string(), last, user.n_nodes, user.n_channels)
        })
        .collect();
    let page = AdminPage {
        layout,
        query: needle,
        channels,
        users,
    };
    Ok(render(StatusCode::OK, &page))
}

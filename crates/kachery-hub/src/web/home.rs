//! `/`: sign-in for visitors (a link per OpenID Connect provider, the dev form when
//! enabled); for a signed-in person their nodes, the channels they own and those their
//! nodes joined, and the admin link.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{Layout, OrPage, PageResult, render, when};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::RequestId;
use crate::web_auth::BrowserSession;
use crate::web_auth::session;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    nodes: Vec<NodeRow>,
    owned: Vec<ChannelRow>,
    joined: Vec<ChannelRow>,
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    layout: Layout,
    /// `(name, label)` of each configured OpenID Connect provider, in config order.
    providers: Vec<(String, String)>,
}

pub struct NodeRow {
    pub node_id: String,
    pub short_id: String,
    pub label: String,
    pub last_report: String,
    pub n_channels: usize,
}

pub struct ChannelRow {
    pub name: String,
    pub owner: String,
    pub deleted: bool,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
) -> PageResult {
    let signed_out = Layout::signed_out(&state);
    let live = session::load(&state, &headers)
        .await
        .map_err(ApiError::from)
        .or_page(&signed_out)?;
    let Some(live) = live else {
        let providers = crate::web_auth::providers(&state)
            .into_iter()
            .map(|provider| (provider.name.to_owned(), provider.label.to_owned()))
            .collect();
        let welcome = WelcomePage {
            layout: signed_out,
            providers,
        };
        return Ok(render(StatusCode::OK, &welcome));
    };
    let browser = BrowserSession::from_live(&state, live, request_id);
    let layout = Layout::signed_in(&state, &browser);
    let email = &browser.user.email;

    let mut nodes = Vec::new();
    for node in state
        .db
        .nodes_of(email)
        .await
        .map_err(ApiError::from)
        .or_page(&layout)?
    {
        let memberships = state
            .db
            .memberships_of(&node)
            .await
            .map_err(ApiError::from)
            .or_page(&layout)?;
        nodes.push(NodeRow {
            node_id: node.node_id.to_string(),
            short_id: node.node_id.short(),
            label: node.label.to_string(),
            last_report: node.last_report_at.map_or_else(|| "never".to_owned(), when),
            n_channels: memberships.len(),
        });
    }

    let channels = state
        .db
        .channels_for(email, true)
        .await
        .map_err(ApiError::from)
        .or_page(&layout)?;
    let (owned, joined): (Vec<_>, Vec<_>) = channels
        .into_iter()
        .map(|channel| ChannelRow {
            name: channel.name.to_string(),
            owner: channel.owner.to_string(),
            deleted: channel.deleted,
        })
        .partition(|row| row.owner == email.as_str());
    let page = HomePage {
        layout,
        nodes,
        owned,
        joined,
    };
    Ok(render(StatusCode::OK, &page))
}

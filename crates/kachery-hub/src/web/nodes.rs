//! `/nodes` and `/nodes/{id}`: the signed-in person's node records. The node page shows
//! each membership's requested (editable), granted, passcode and effective roles side by
//! side with why each missing role is missing, and has the forms to rename, change
//! requested roles, enter or remove passcodes, and leave.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kachery_protocol::Label;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::{
    MembershipView, NodeView, UpdateMembershipRequest, UpdateNodeRequest,
};

use super::form::{self, Fields, FormErrors, RoleBox, role_boxes, role_names};
use super::{Layout, OrPage, PageResult, render, see_other, when};
use crate::app::AppState;
use crate::extract::ApiJson;
use crate::user_api::{self, memberships, own_node, passcodes};
use crate::web_auth::{BrowserSession, SessionForm};

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    layout: Layout,
    nodes: Vec<NodeSummary>,
}

struct NodeSummary {
    node_id: String,
    short_id: String,
    label: String,
    last_report: String,
    version: String,
}

#[derive(Template)]
#[template(path = "node.html")]
struct NodePage {
    layout: Layout,
    node_id: String,
    label: String,
    created: String,
    last_report: String,
    report_json: Option<String>,
    memberships: Vec<MembershipRow>,
    errors: FormErrors,
    label_value: String,
}

struct MembershipRow {
    channel: String,
    /// Id of the membership's passcode input, where its errors are shown.
    passcode_field: String,
    deleted: bool,
    requested_boxes: Vec<RoleBox>,
    requested: String,
    granted: String,
    passcode_roles: String,
    effective: String,
    missing: Vec<(String, String)>,
    passcodes: Vec<PasscodeLink>,
}

struct PasscodeLink {
    id: i64,
    hint: String,
    roles: String,
    valid: bool,
}

/// `GET /nodes`.
pub async fn list(State(state): State<Arc<AppState>>, session: BrowserSession) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let views = user_api::nodes::list(State(state.clone()), session.user.clone())
        .await
        .or_page(&layout)?
        .0
        .items;
    let nodes = views
        .into_iter()
        .map(|view| NodeSummary {
            short_id: view.node_id.short(),
            node_id: view.node_id.to_string(),
            label: view.label.to_string(),
            last_report: view.last_report_at.map_or_else(|| "never".into(), when),
            version: String::new(),
        })
        .collect();
    // The list view carries no reports; versions come from each node's own record.
    let mut page = NodesPage { layout, nodes };
    for summary in &mut page.nodes {
        let Ok(node_id) = summary.node_id.parse() else {
            continue;
        };
        if let Ok(Some(node)) = state.db.node(&node_id, &session.user.email).await {
            summary.version = report_version(node.last_report.as_deref());
        }
    }
    Ok(render(StatusCode::OK, &page))
}

fn report_version(report: Option<&str>) -> String {
    report
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|value| {
            value
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "—".to_owned())
}

/// `GET /nodes/{id}`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Path(node_id): Path<String>,
) -> PageResult {
    node_page(&state, &session, &node_id, FormErrors::new(), None).await
}

async fn node_page(
    state: &Arc<AppState>,
    session: &BrowserSession,
    node_id: &str,
    errors: FormErrors,
    label_value: Option<String>,
) -> PageResult {
    let layout = Layout::signed_in(state, session);
    let Json(view): Json<NodeView> = user_api::nodes::show(
        State(state.clone()),
        session.user.clone(),
        Path(node_id.to_owned()),
    )
    .await
    .or_page(&layout)?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = NodePage {
        layout,
        node_id: view.node_id.to_string(),
        label_value: label_value.unwrap_or_else(|| view.label.to_string()),
        label: view.label.to_string(),
        created: when(view.created_at),
        last_report: view.last_report_at.map_or_else(|| "never".into(), when),
        report_json: view
            .last_report
            .as_ref()
            .and_then(|report| serde_json::to_string_pretty(report).ok()),
        memberships: view.memberships.iter().map(membership_row).collect(),
        errors,
    };
    Ok(render(status, &page))
}

fn membership_row(view: &MembershipView) -> MembershipRow {
    MembershipRow {
        channel: view.channel.to_string(),
        passcode_field: passcode_field(view.channel.as_str()),
        deleted: view.channel_deleted,
        requested_boxes: role_boxes(view.requested_roles),
        requested: role_names(view.requested_roles),
        granted: role_names(view.granted_roles),
        passcode_roles: role_names(view.passcode_roles),
        effective: role_names(view.effective_roles),
        missing: view
            .missing_roles
            .iter()
            .map(|missing| (missing.role.name().to_owned(), missing.reason.clone()))
            .collect(),
        passcodes: view
            .passcodes
            .iter()
            .map(|link| PasscodeLink {
                id: link.id,
                hint: link.hint.clone(),
                roles: role_names(link.roles),
                valid: link.valid,
            })
            .collect(),
    }
}

fn passcode_field(channel: &str) -> String {
    format!("passcode-{channel}")
}

/// `POST /nodes/{id}/rename {label}`.
pub async fn rename(
    State(state): State<Arc<AppState>>,
    Path(node_id): Path<String>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let typed = form::field(&form, "label").to_owned();
    let label = match Label::parse(&typed) {
        Ok(label) => label,
        Err(error) => {
            let mut errors = FormErrors::new();
            errors.add("label", format!("Label: {error}"));
            return node_page(&state, &session, &node_id, errors, Some(typed)).await;
        }
    };
    let layout = Layout::signed_in(&state, &session);
    let _renamed = user_api::nodes::rename(
        State(state.clone()),
        session.user.clone(),
        Path(node_id.clone()),
        ApiJson(UpdateNodeRequest { label }),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/nodes/{node_id}")))
}

/// `POST /nodes/{id}/memberships/{channel}/roles {role…}`.
pub async fn update_roles(
    State(state): State<Arc<AppState>>,
    Path((node_id, channel)): Path<(String, String)>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let requested_roles = form::roles(&form, "role");
    let _updated = memberships::update(
        State(state.clone()),
        session.user.clone(),
        Path((node_id.clone(), channel)),
        ApiJson(UpdateMembershipRequest { requested_roles }),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/nodes/{node_id}")))
}

/// `POST /nodes/{id}/memberships/{channel}/leave`.
pub async fn leave(
    State(state): State<Arc<AppState>>,
    Path((node_id, channel)): Path<(String, String)>,
    SessionForm { session, .. }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    memberships::leave(
        State(state.clone()),
        session.user.clone(),
        Path((node_id.clone(), channel)),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/nodes/{node_id}")))
}

/// `POST /nodes/{id}/memberships/{channel}/passcodes {passcode}`: a refused passcode is
/// shown beside the membership's passcode field.
pub async fn enter_passcode(
    State(state): State<Arc<AppState>>,
    Path((node_id, channel)): Path<(String, String)>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let node = own_node(&state, &session.user, &node_id)
        .await
        .or_page(&layout)?;
    let typed = form::field(&form, "passcode");
    match passcodes::enter(&state, &session.user, &node, &channel, typed).await {
        Ok(_) => Ok(see_other(&format!("/nodes/{node_id}"))),
        Err(error)
            if error.code == ErrorCode::InvalidPasscode || error.code == ErrorCode::RateLimited =>
        {
            let mut errors = FormErrors::new();
            errors.add(
                &passcode_field(&channel),
                format!("Passcode: {}", error.message),
            );
            node_page(&state, &session, &node_id, errors, None).await
        }
        Err(error) => Err(error).or_page(&layout),
    }
}

/// `POST /nodes/{id}/memberships/{channel}/passcodes/{pid}/remove`.
pub async fn unlink_passcode(
    State(state): State<Arc<AppState>>,
    Path((node_id, channel, passcode_id)): Path<(String, String, String)>,
    SessionForm { session, .. }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    passcodes::unlink(
        State(state.clone()),
        session.user.clone(),
        Path((node_id.clone(), channel, passcode_id)),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/nodes/{node_id}")))
}

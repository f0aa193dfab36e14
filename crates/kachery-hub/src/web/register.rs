//! `/nodes/register?req=…` (SPEC §3.3): the page `kachery node register` links to. GET only
//! shows the result of each check of the signed registration; Confirm posts it (with the
//! CSRF token) to the same checks in the user API, which insert the record, consume the
//! nonce and audit in one transaction.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kachery_protocol::SignedEnvelope;
use kachery_protocol::user_api::{RegisterNodeRequest, RegistrationBody};
use serde::Deserialize;

use super::form::{self, Fields};
use super::{Layout, PageResult, render, see_other};
use crate::app::AppState;
use crate::extract::ApiJson;
use crate::registration::check_registration;
use crate::time::now_ms;
use crate::user_api;
use crate::web_auth::{BrowserSession, SessionForm};

/// The checks in the order the page lists them.
const CHECKS: [(&str, &str); 5] = [
    ("signature", "Signed by the node's key"),
    ("hub", "Made for this hub"),
    ("timestamp", "Made within the last hour"),
    ("nonce", "Not used before"),
    ("owner", "Names you as the owner"),
];

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    layout: Layout,
    req: String,
    node_id: Option<String>,
    label: Option<String>,
    owner: Option<String>,
    checks: Vec<CheckRow>,
    all_passed: bool,
    /// A refusal from Confirm, shown on top.
    refusal: Option<String>,
}

struct CheckRow {
    title: &'static str,
    /// `passed`, `failed` or `not checked`.
    outcome: &'static str,
    detail: String,
}

#[derive(Debug, Deserialize)]
pub struct RegisterQuery {
    req: Option<String>,
}

/// `GET /nodes/register?req=…`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Query(query): Query<RegisterQuery>,
) -> PageResult {
    let req = query.req.unwrap_or_default();
    let page = review(&state, &session, req, None).await;
    let status = if page.all_passed {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(render(status, &page))
}

/// `POST /nodes/register {req}`: Confirm.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let req = form::field(&form, "req").to_owned();
    let Ok(envelope) = decode(&req) else {
        let page = review(&state, &session, req, None).await;
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let registered = user_api::nodes::register(
        State(state.clone()),
        session.user.clone(),
        ApiJson(RegisterNodeRequest {
            registration: envelope,
        }),
    )
    .await;
    match registered {
        Ok((_, Json(view))) => Ok(see_other(&format!("/nodes/{}", view.node_id))),
        Err(error) => {
            let page = review(&state, &session, req, Some(error.message)).await;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

fn decode(req: &str) -> Result<SignedEnvelope, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(req.trim())
        .map_err(|_| "the link is damaged: its req parameter is not base64url".to_owned())?;
    serde_json::from_slice(&bytes)
        .map_err(|_| "the link is damaged: it does not hold a signed registration".to_owned())
}

/// Runs every check that can be run and lays the results out in [`CHECKS`] order.
async fn review(
    state: &AppState,
    session: &BrowserSession,
    req: String,
    refusal: Option<String>,
) -> RegisterPage {
    let layout = Layout::signed_in(state, session);
    let mut page = RegisterPage {
        layout,
        req,
        node_id: None,
        label: None,
        owner: None,
        checks: Vec::new(),
        all_passed: false,
        refusal,
    };
    let envelope = match decode(&page.req) {
        Ok(envelope) => envelope,
        Err(message) => {
            page.refusal.get_or_insert(message);
            return page;
        }
    };
    // What the link claims, shown even when a check fails.
    if let Ok(body) = serde_json::from_value::<RegistrationBody>(envelope.body.clone()) {
        page.node_id = Some(body.node_id.to_string());
        page.label = Some(body.label.to_string());
        page.owner = Some(body.owner.to_string());
    }

    let now = now_ms();
    let (failed_check, failure) =
        match check_registration(&envelope, &state.origin, &session.user.email, now) {
            Ok(body) => {
                let seen = state.db.nonce_seen(&body.node_id, &body.nonce, now).await;
                match seen {
                    Ok(false) => (None, String::new()),
                    Ok(true) => (
                        Some("nonce"),
                        "this link was already used; run `kachery node register` again".to_owned(),
                    ),
                    Err(_) => (
                        Some("nonce"),
                        "the hub could not check it; try again".to_owned(),
                    ),
                }
            }
            Err(error) => (Some(error.check()), error.to_string()),
        };

    // check_registration stops at the first failure, in the order signature, hub,
    // timestamp, owner; the nonce is looked up only when those pass.
    let order = ["shape", "signature", "hub", "timestamp", "owner", "nonce"];
    let failed_at = failed_check.and_then(|check| order.iter().position(|name| *name == check));
    for (check, title) in CHECKS {
        let position = order
            .iter()
            .position(|name| *name == check)
            .expect("listed");
        let (outcome, detail) = match failed_at {
            Some(at) if at == position || (check == "signature" && at == 0) => {
                ("failed", failure.clone())
            }
            Some(at) if at < position => ("not checked", String::new()),
            _ => ("passed", String::new()),
        };
        page.checks.push(CheckRow {
            title,
            outcome,
            detail,
        });
    }
    page.all_passed = failed_check.is_none() && page.refusal.is_none();
    page
}

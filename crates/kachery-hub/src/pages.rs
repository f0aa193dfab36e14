//! The plain pages: a short description of the hub at `/`, and the health probes.
//!
//! The full web UI (sign-in, nodes, channels, registration confirmation) is phase 2.
//! `/healthz` says the process serves HTTP; `/readyz` also checks the database (the
//! master key and migrations are checked before the listener starts).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::error::error_chain;

pub async fn home(State(state): State<Arc<AppState>>) -> Html<String> {
    let banner = if state.config.dev_login {
        "<p style=\"background:#b00020;color:#fff;padding:0.5em\"><strong>Dev login is on:</strong> \
         anyone who can reach this hub can act as any user. For local try-outs only.</p>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>kachery hub</title></head><body>{banner}\
         <h1>kachery hub</h1>\
         <p>This hub knows people, their nodes and channels, and issues short-lived \
         credentials for each channel's bucket and pub-sub broker. Nodes talk to it through \
         the signed node API at <code>/api/node</code>; people and the <code>kachery</code> \
         command line use the user API under <code>/api/v1</code>.</p>\
         <p>Public URL: <code>{origin}</code></p></body></html>\n",
        origin = state.origin,
    ))
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.db.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

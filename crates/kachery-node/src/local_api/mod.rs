//! The local client API (SPEC §13.4): HTTP/1.1 on 127.0.0.1 only, for the CLI and local
//! scripts.
//!
//! Every request passes `guard` first: the `Host` header must name a loopback address
//! (a web page that rebinds its DNS name to 127.0.0.1 still sends its own name), and every
//! route but `/healthz` needs `Authorization: Bearer <client token>`. No CORS headers are
//! ever sent, so browsers keep other origins out. No endpoint returns keys, secrets or hub
//! credentials. Request and response bodies are the wire types of
//! `kachery_client::local_api::types`, so the CLI's `LocalClient` matches by construction.
//!
//! | route | handler |
//! |---|---|
//! | GET `/healthz` | liveness, open |
//! | GET `/v1/status`, POST `/v1/reconcile` | `handlers` |
//! | POST `/v1/store`, GET `/v1/files/{sha1}`, GET `/v1/transfers` | `handlers` |
//! | POST `/v1/load` | `load` (NDJSON stream) |
//! | POST `/v1/feeds`, POST/GET `/v1/feeds/{feedId}/subfeeds/{name}/messages` | `feeds` |
//! | POST `/v1/tasks`, GET `/v1/tasks/{requestId}` | `tasks` (requesters) |
//! | POST `/v1/tasks/backends/poll`, POST `/v1/tasks/{jobId}/status` | `tasks` (workers) |

pub use crate::client_token::read_client_token;

mod error;
mod feeds;
mod guard;
mod handlers;
mod load;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kachery_exchange::FileExchange;
use kachery_feeds::FeedExchange;
use kachery_store::Store;
use kachery_tasks::TaskExchange;
use tokio_util::sync::CancellationToken;

use crate::client_token::ClientToken;
use crate::reconcile::ReconcileTrigger;
use crate::state::NodeState;

/// What the handlers share.
pub(crate) struct ApiState {
    pub node: Arc<NodeState>,
    pub store: Store,
    pub exchange: Arc<FileExchange>,
    pub feeds: Arc<FeedExchange>,
    pub tasks: Arc<TaskExchange>,
    pub reconcile: ReconcileTrigger,
    pub token: ClientToken,
    /// The node directory; `/v1/store` refuses paths inside it (the node key lives there).
    pub node_dir: std::path::PathBuf,
    /// Fires at shutdown, so long-running load streams end and the server can stop.
    pub shutdown: CancellationToken,
}

/// The local API's routes behind the Host check and the bearer-token check.
pub(crate) fn router(state: Arc<ApiState>) -> Router {
    let authenticated = Router::new()
        .route("/v1/status", get(handlers::status))
        .route("/v1/reconcile", post(handlers::reconcile))
        .route("/v1/store", post(handlers::store))
        .route("/v1/files/{sha1}", get(handlers::file_bytes))
        .route("/v1/transfers", get(handlers::transfers))
        .route("/v1/load", post(load::load))
        .route("/v1/feeds", post(feeds::create))
        .route(
            "/v1/feeds/{feed_id}/subfeeds/{name}/messages",
            post(feeds::append).get(feeds::read),
        )
        .route("/v1/tasks", post(tasks::run))
        .route("/v1/tasks/{request_id}", get(tasks::view))
        .route("/v1/tasks/backends/poll", post(tasks::poll))
        .route(
            "/v1/tasks/{request_id}/status",
            post(tasks::report).layer(DefaultBodyLimit::max(tasks::MAX_REPORT_BODY_BYTES)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_token,
        ));

    Router::new()
        .route("/healthz", get(handlers::healthz))
        .merge(authenticated)
        .layer(axum::middleware::from_fn(guard::require_loopback_host))
        .with_state(state)
}

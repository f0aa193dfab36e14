//! The hub's shared state, [`AppState`], and the assembly of its router.
//!
//! Routes: the user API under `/api/v1` (64 KiB bodies), the node API at `/api/node`
//! (256 KiB), the embedded bucket at `/bucket/{*key}` (bodies bounded by the signed size,
//! so no limit here), the broker at `/pubsub/ws`, and the plain pages `/`, `/healthz`,
//! `/readyz`. Body limits are set per router so none of them reaches the bucket route.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use kachery_protocol::limits::{MAX_NODE_API_BODY_BYTES, MAX_USER_API_BODY_BYTES};
use kachery_protocol::{Email, NodeId};
use url::Url;

use crate::backends::Backends;
use crate::config::HubConfig;
use crate::db::HubDb;
use crate::error::ApiError;
use crate::passcode::PasscodeHasher;
use crate::rate_limit::RateLimiter;
use crate::vault::Vault;
use crate::{auth, node_api, pages, trace, user_api, web, web_auth};

/// Node-API requests per second per node id, sustained and burst (SPEC §21).
const NODE_API_PER_SECOND: u32 = 20;
const NODE_API_BURST: u32 = 100;
/// Passcode entries and channel tests per user and minute (SPEC §21).
const PASSCODE_ENTRIES_PER_MINUTE: u32 = 10;
const CHANNEL_TESTS_PER_MINUTE: u32 = 6;

/// Everything a handler needs; shared as `Arc<AppState>`.
pub struct AppState {
    pub config: HubConfig,
    /// `scheme://host[:port]` of `public_url`: the `hub` field of signed bodies.
    pub origin: String,
    pub db: Arc<dyn HubDb>,
    pub backends: Backends,
    /// Channel secrets: encrypts what owners set, decrypts for backends.
    pub vault: Vault,
    pub node_rate_limit: RateLimiter<NodeId>,
    /// Hashes passcodes under the pepper sub-key (SPEC §5.3).
    pub passcode_hasher: PasscodeHasher,
    /// Passcode entries and channel tests per user (SPEC §21).
    pub passcode_rate_limit: RateLimiter<Email>,
    pub channel_test_rate_limit: RateLimiter<Email>,
}

impl AppState {
    pub fn new(
        config: HubConfig,
        public_url: &Url,
        db: Arc<dyn HubDb>,
        backends: Backends,
        vault: Vault,
        passcode_hasher: PasscodeHasher,
    ) -> Self {
        Self {
            config,
            origin: public_url.origin().ascii_serialization(),
            db,
            backends,
            vault,
            node_rate_limit: RateLimiter::new(NODE_API_PER_SECOND, NODE_API_BURST),
            passcode_hasher,
            passcode_rate_limit: RateLimiter::per_minute(PASSCODE_ENTRIES_PER_MINUTE),
            channel_test_rate_limit: RateLimiter::per_minute(CHANNEL_TESTS_PER_MINUTE),
        }
    }
}

/// The complete router of one hub.
pub fn router(state: Arc<AppState>) -> Router {
    let user_api = Router::new()
        .route("/api/v1/me", get(user_api::me))
        .route("/api/v1/dev/token", post(auth::dev_token))
        .route("/api/v1/tokens", get(user_api::tokens::list))
        .route(
            "/api/v1/tokens/{token_id}",
            axum::routing::delete(user_api::tokens::revoke),
        )
        .route(
            "/api/v1/nodes",
            get(user_api::nodes::list).post(user_api::nodes::register),
        )
        .route(
            "/api/v1/nodes/{node_id}",
            get(user_api::nodes::show)
                .patch(user_api::nodes::rename)
                .delete(user_api::nodes::delete),
        )
        .route(
            "/api/v1/nodes/{node_id}/memberships",
            post(user_api::memberships::join),
        )
        .route(
            "/api/v1/nodes/{node_id}/memberships/{channel}",
            axum::routing::patch(user_api::memberships::update)
                .delete(user_api::memberships::leave),
        )
        .route(
            "/api/v1/nodes/{node_id}/memberships/{channel}/passcodes",
            post(user_api::passcodes::enter_on_membership),
        )
        .route(
            "/api/v1/nodes/{node_id}/memberships/{channel}/passcodes/{id}",
            delete(user_api::passcodes::unlink),
        )
        .route(
            "/api/v1/channels/{name}/passcodes",
            get(user_api::passcodes::list).post(user_api::passcodes::create),
        )
        .route(
            "/api/v1/channels/{name}/passcodes/{id}",
            delete(user_api::passcodes::delete),
        )
        .route(
            "/api/v1/channels/{name}/restore",
            post(user_api::channels::restore),
        )
        .route(
            "/api/v1/channels/{name}/test",
            post(user_api::channel_test::run),
        )
        .route("/api/v1/channels/{name}/stats", get(user_api::admin::stats))
        .route("/api/v1/channels/{name}/audit", get(user_api::admin::audit))
        .route("/api/v1/admin/channels", get(user_api::admin::channels))
        .route("/api/v1/admin/users", get(user_api::admin::users))
        .route(
            "/api/v1/channels",
            get(user_api::channels::list).post(user_api::channels::create),
        )
        .route(
            "/api/v1/channels/{name}",
            get(user_api::channels::show).delete(user_api::channels::delete),
        )
        .route(
            "/api/v1/channels/{name}/secrets/{kind}",
            put(user_api::secrets::put),
        )
        .route(
            "/api/v1/channels/{name}/members",
            get(user_api::grants::members),
        )
        .route(
            "/api/v1/channels/{name}/authorizations",
            get(user_api::grants::list),
        )
        .route(
            "/api/v1/channels/{name}/authorizations/{node_id}/{owner}",
            put(user_api::grants::put).delete(user_api::grants::delete),
        )
        .layer(DefaultBodyLimit::max(MAX_USER_API_BODY_BYTES));

    let node_api = Router::new()
        .route("/api/node", post(node_api::handle))
        .layer(DefaultBodyLimit::max(MAX_NODE_API_BODY_BYTES));

    let pages = Router::new()
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz));

    let hub_routes = user_api
        .merge(node_api)
        .merge(pages)
        .merge(web_auth::routes())
        .merge(web::routes())
        .with_state(state.clone());
    let app = hub_routes
        .merge(state.backends.router())
        .fallback(|| async { ApiError::not_found("no such endpoint on this hub") });
    let app = web_auth::with_security_headers(app, &state.origin);
    trace::layer(app)
}

//! The signed node API, `POST /api/node` (SPEC §11).
//!
//! [`verify`] runs the checks of SPEC §11.1 in their fixed order, cheapest first, each
//! with its own error code, and yields a [`VerifiedRequest`]: a typed body whose
//! signature, freshness, nonce and node record all checked out. The signature is verified
//! over the body JSON value as received, never over a re-serialized struct. Then
//! [`dispatch`] hands it to the type's handler in [`config`], [`credentials`] or
//! [`objects`].

mod config;
mod credentials;
mod objects;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::limits::{MAX_CLOCK_SKEW_MS, NONCE_MEMORY_MS};
use kachery_protocol::node_api::{NodeRequest, NodeRequestBody};
use kachery_protocol::{Purpose, SignedEnvelope};
use tracing::Span;

use crate::app::AppState;
use crate::audit::Actor;
use crate::db::NodeRecord;
use crate::error::{ApiError, ApiResult};
use crate::extract::{REQUEST_ID_HEADER, read_body};
use crate::time::now_ms;

/// The window of the node-API limit that all replicas of one database share, and the
/// requests a node may make in it: the burst of 100 plus 20/s, as the per-replica bucket.
const SHARED_RATE_WINDOW_MS: i64 = 5_000;
const SHARED_RATE_LIMIT: i64 = 100 + 20 * 5;

/// Wire names of the request types, for the `unknown_request_type` message.
const REQUEST_TYPES: [&str; 6] = [
    "report",
    "getNodeConfig",
    "getPubsubCredential",
    "createUploadUrls",
    "createDownloadUrls",
    "reportCorruptObject",
];

/// A request that passed checks 1–8: the node record exists and signed it just now.
pub struct VerifiedRequest {
    pub body: NodeRequestBody,
    pub node: NodeRecord,
    pub request_id: Option<String>,
    pub now: i64,
}

impl VerifiedRequest {
    pub fn actor(&self) -> Actor {
        Actor::Node {
            node_id: self.node.node_id,
            owner: self.node.owner.clone(),
        }
    }
}

/// `POST /api/node`.
pub async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let result = async {
        let bytes = read_body(request, &state).await?;
        let verified = verify(&state, &bytes, request_id).await?;
        dispatch(&state, verified).await
    }
    .await;

    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.code.to_string(),
    };
    Span::current().record("outcome", outcome.as_str());
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Checks 1–8 of SPEC §11.1, in order.
async fn verify(
    state: &AppState,
    bytes: &[u8],
    request_id: Option<String>,
) -> ApiResult<VerifiedRequest> {
    // (1) Size was bounded by the route's body limit; now the shape.
    let envelope = parse_envelope(bytes)?;
    let body = parse_body(&envelope)?;
    Span::current().record("node_id", envelope.node_id.short().as_str());
    Span::current().record("msg_type", body.request.type_name());

    // (2) The body names the signer.
    if body.node_id != envelope.node_id {
        return Err(ApiError::bad_request(
            "body nodeId differs from the envelope nodeId; sign with the node's own key",
        ));
    }

    // (3) The request is meant for this hub.
    if body.hub.trim_end_matches('/') != state.origin {
        return Err(ApiError::new(
            ErrorCode::WrongHub,
            format!(
                "request is addressed to hub {}, but this hub is {}; check hub_url in node.toml",
                body.hub, state.origin
            ),
        ));
    }

    // (4) Freshness.
    let now = now_ms();
    let skew_ms = body.timestamp - now;
    if skew_ms.abs() > MAX_CLOCK_SKEW_MS {
        let direction = if skew_ms > 0 { "ahead of" } else { "behind" };
        return Err(ApiError::new(
            ErrorCode::StaleRequest,
            format!(
                "request timestamp is {} s {direction} the hub's clock (limit 300 s); \
                 check the node's clock (NTP) or resend",
                (skew_ms.abs() + 500) / 1000
            ),
        )
        .with_detail("hubTime", now));
    }

    // (5) Signature, over the body exactly as received.
    envelope.verify(Purpose::HubRequest).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidSignature,
            format!(
                "signature does not verify for node {}",
                envelope.node_id.short()
            ),
        )
    })?;

    // (6) Replay: the nonce is recorded only now that the signature holds.
    let is_new = state
        .db
        .record_nonce(
            &body.node_id,
            &body.nonce,
            Purpose::HubRequest.name(),
            now,
            now + NONCE_MEMORY_MS,
        )
        .await?;
    if !is_new {
        return Err(ApiError::new(
            ErrorCode::ReplayedRequest,
            "this request (node id, nonce) was already received; send a fresh nonce",
        ));
    }

    // (7) Rate limit per node id: this replica's token bucket, then the node's requests
    // on every replica of the database in the last few seconds (its remembered nonces).
    let rate_limited = |wait_secs: u64| {
        let mut error = ApiError::new(
            ErrorCode::RateLimited,
            "too many node-api requests from this node (limit 20/s, burst 100); slow down",
        );
        error.retry_after_secs = Some(wait_secs.max(1));
        error
    };
    if let Err(wait) = state.node_rate_limit.check(&body.node_id) {
        return Err(rate_limited(wait.as_secs()));
    }
    let recent = state
        .db
        .count_recent_nonces(
            &body.node_id,
            Purpose::HubRequest.name(),
            now + NONCE_MEMORY_MS - SHARED_RATE_WINDOW_MS,
        )
        .await?;
    if recent > SHARED_RATE_LIMIT {
        return Err(rate_limited(SHARED_RATE_WINDOW_MS as u64 / 1000));
    }

    // (8) The (node id, owner) record exists.
    let node = state
        .db
        .node(&body.node_id, &body.owner)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NodeNotRegistered,
                format!(
                    "node {} is not registered to {} on this hub; run `kachery node register` \
                 and confirm the link while signed in as {}",
                    body.node_id.short(),
                    body.owner,
                    body.owner
                ),
            )
        })?;

    Ok(VerifiedRequest {
        body,
        node,
        request_id,
        now,
    })
}

fn parse_envelope(bytes: &[u8]) -> ApiResult<SignedEnvelope> {
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::bad_request(format!(
            "body is not a signed envelope {{body, nodeId, signature}}: {error}"
        )),
        _ => ApiError::new(
            ErrorCode::InvalidJson,
            format!("request body is not JSON: {error}"),
        ),
    })
}

fn parse_body(envelope: &SignedEnvelope) -> ApiResult<NodeRequestBody> {
    let request_type = envelope.body.get("type").and_then(|value| value.as_str());
    match request_type {
        None => {
            return Err(ApiError::bad_request(
                "envelope body has no string field `type`",
            ));
        }
        Some(name) if !REQUEST_TYPES.contains(&name) => {
            return Err(ApiError::new(
                ErrorCode::UnknownRequestType,
                format!(
                    "unknown request type {name:?}; this hub knows {}",
                    REQUEST_TYPES.join(", ")
                ),
            ));
        }
        Some(_) => {}
    }
    serde_json::from_value(envelope.body.clone())
        .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))
}

/// (9) Type-specific checks and the work itself.
async fn dispatch(state: &AppState, request: VerifiedRequest) -> ApiResult<Response> {
    let response = match &request.body.request {
        NodeRequest::Report(report) => config::report(state, &request, report)
            .await?
            .into_response(),
        NodeRequest::GetNodeConfig(get) => config::node_config(state, &request, get)
            .await?
            .into_response(),
        NodeRequest::GetPubsubCredential(get) => {
            credentials::pubsub_credential(state, &request, get)
                .await?
                .into_response()
        }
        NodeRequest::CreateUploadUrls(create) => objects::upload_urls(state, &request, create)
            .await?
            .into_response(),
        NodeRequest::CreateDownloadUrls(create) => objects::download_urls(state, &request, create)
            .await?
            .into_response(),
        NodeRequest::ReportCorruptObject(report) => {
            objects::report_corrupt(state, &request, report)
                .await?
                .into_response()
        }
    };
    crate::stats::count_node_request(state, &request.body.request).await;
    Ok(response)
}

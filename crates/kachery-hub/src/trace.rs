//! Request ids and one tracing span per HTTP request (SPEC §20).
//!
//! The span carries the method, the route template (never the raw path, which may hold
//! node ids or bucket keys), and the request id that is also sent back as `x-request-id`.
//! Handlers add `node_id` (short form) and `outcome`. Responses are logged at debug for
//! 4xx and warn for 5xx. Query strings are never logged: presigned URLs keep their
//! signatures there.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request, Response};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::extract::REQUEST_ID_HEADER;

/// Random 64-bit request ids in hex.
#[derive(Clone, Copy, Default)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).ok()?;
        hex::encode(bytes).parse().ok().map(RequestId::new)
    }
}

/// Wraps `router` with request ids and per-request spans.
pub fn layer(router: Router) -> Router {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let trace = TraceLayer::new_for_http()
        .make_span_with(make_span)
        .on_request(())
        .on_response(on_response)
        .on_failure(());
    // Router::layer wraps inside-out: the request-id layers run first.
    router
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, RandomRequestId))
}

fn make_span(request: &Request<Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    tracing::info_span!(
        "http",
        method = %request.method(),
        route,
        request_id,
        node_id = tracing::field::Empty,
        msg_type = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

fn on_response(response: &Response<Body>, latency: Duration, _span: &Span) {
    let status = response.status().as_u16();
    let duration_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    if response.status().is_server_error() {
        tracing::warn!(status, duration_ms, "request failed");
    } else if response.status().is_client_error() {
        tracing::debug!(status, duration_ms, "request refused");
    } else {
        tracing::debug!(status, duration_ms, "request done");
    }
}

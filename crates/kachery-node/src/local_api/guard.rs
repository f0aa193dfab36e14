//! The two checks in front of every local API route: a loopback `Host` header (against DNS
//! rebinding) and, for all but `/healthz`, the bearer client token.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kachery_protocol::api_error::ErrorCode;

use super::ApiState;
use super::error::ApiFailure;

/// Refuses requests whose `Host` is not 127.0.0.1, ::1 or localhost (any port).
pub(crate) async fn require_loopback_host(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    if !host.is_some_and(is_loopback_host) {
        tracing::debug!(host = ?host, "refused a request with a non-loopback host");
        let message = "the local api only answers requests addressed to a loopback host";
        return ApiFailure::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
            .into_response();
    }
    next.run(request).await
}

/// Refuses requests without `Authorization: Bearer <client token>`.
pub(crate) async fn require_token(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !presented.is_some_and(|token| state.token.matches(token.trim())) {
        let message = "missing or wrong client token: send `Authorization: Bearer` with the \
                       contents of <node dir>/client-token";
        return ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            message,
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether a `Host` header value names a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(bracketed) = host.strip_prefix('[') {
        // [::1] or [::1]:port
        match bracketed.split_once(']') {
            Some((address, rest)) if rest.is_empty() || rest.starts_with(':') => address,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:20431",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:20431",
            "10.0.0.1:1",
            "127.0.0.1.nip.io",
            "[::2]:1",
            "localhost:x",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}

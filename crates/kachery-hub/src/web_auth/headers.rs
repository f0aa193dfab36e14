//! Security headers on every response (SPEC §9.1): a same-origin content security policy
//! (no inline script), no framing, same-origin referrers, no MIME sniffing, and HSTS when
//! the hub is served over HTTPS.
//!
//! No `form-action` directive: the CLI approval form redirects to the CLI's loopback
//! port, and browsers apply `form-action` to the redirect target too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// One year, in seconds.
const HSTS_VALUE: &str = "max-age=31536000";

/// Whether the public origin is HTTPS (so HSTS is sent).
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    pub https: bool,
}

impl SecurityHeaders {
    pub fn for_origin(origin: &str) -> Arc<Self> {
        Arc::new(Self {
            https: origin.starts_with("https://"),
        })
    }
}

/// Middleware adding the headers; handlers may set their own values first.
pub async fn add(
    State(settings): State<Arc<SecurityHeaders>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set_default = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set_default(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set_default(header::X_FRAME_OPTIONS, "DENY");
    set_default(header::REFERRER_POLICY, "same-origin");
    set_default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if settings.https {
        set_default(header::STRICT_TRANSPORT_SECURITY, HSTS_VALUE);
    }
    response
}

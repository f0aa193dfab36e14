//! Cross-site request forgery defences for cookie-authenticated requests (SPEC §9.1).
//!
//! A state-changing request signed in by cookie must (1) come from a page of this hub, as
//! its `Origin` (or, failing that, `Referer`) header says, and (2) carry the session's CSRF
//! token in the form field `csrf` or the `X-CSRF-Token` header. SameSite=Lax already keeps
//! the cookie off most cross-site posts; these checks do not rely on it. Bearer requests
//! are exempt: a browser never adds an `Authorization` header on its own.

use axum::http::{HeaderMap, Method, header};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::ApiError;
use kachery_protocol::api_error::ErrorCode;

/// The header a script sends the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// GET, HEAD and OPTIONS never change state, so they skip the checks.
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a request whose `Origin` (else `Referer`) is not `hub_origin`, or that has
/// neither header.
pub fn check_origin(headers: &HeaderMap, hub_origin: &str) -> Result<(), ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .filter(|origin| *origin != "null");
    let referer_origin = || {
        let referer = headers.get(header::REFERER)?.to_str().ok()?;
        Some(Url::parse(referer).ok()?.origin().ascii_serialization())
    };
    let claimed = match origin {
        Some(origin) => origin.to_owned(),
        None => referer_origin().ok_or_else(|| {
            csrf_failed(
                "the request has neither an Origin nor a Referer header; send it from a hub page",
            )
        })?,
    };
    if claimed != hub_origin {
        tracing::debug!(claimed = %claimed, "cross-origin request refused");
        return Err(csrf_failed(&format!(
            "the request comes from {claimed}, not from this hub ({hub_origin})"
        )));
    }
    Ok(())
}

/// Compares the presented token with the session's, without leaking where they differ:
/// both are hashed first, so timing can only reveal facts about the digests.
pub fn check_token(expected: &str, presented: Option<&str>) -> Result<(), ApiError> {
    let Some(presented) = presented else {
        return Err(csrf_failed(
            "the CSRF token is missing: send the page's `csrf` form field or the X-CSRF-Token header",
        ));
    };
    if Sha256::digest(expected.as_bytes()) != Sha256::digest(presented.as_bytes()) {
        return Err(csrf_failed(
            "the CSRF token does not match this session; reload the page and try again",
        ));
    }
    Ok(())
}

/// The token from the `X-CSRF-Token` header, if any.
pub fn header_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER)?.to_str().ok()
}

pub fn csrf_failed(message: &str) -> ApiError {
    ApiError::new(ErrorCode::CsrfFailed, message)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const HUB: &str = "http://127.0.0.1:8080";

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn origin_then_referer_else_refused() {
        assert!(check_origin(&headers(header::ORIGIN, "http://127.0.0.1:8080"), HUB).is_ok());
        assert!(check_origin(&headers(header::ORIGIN, "http://evil.example"), HUB).is_err());
        assert!(check_origin(&headers(header::ORIGIN, "http://127.0.0.1:8081"), HUB).is_err());
        let referer = headers(header::REFERER, "http://127.0.0.1:8080/nodes?x=1");
        assert!(check_origin(&referer, HUB).is_ok());
        let foreign = headers(header::REFERER, "http://127.0.0.1.evil.example/");
        assert!(check_origin(&foreign, HUB).is_err());
        assert!(check_origin(&HeaderMap::new(), HUB).is_err());
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(check_token("abc", Some("abc")).is_ok());
        assert!(check_token("abc", Some("abd")).is_err());
        assert!(check_token("abc", None).is_err());
    }
}

//! Request extractors whose rejections are [`ApiError`]s, so a malformed request gets the
//! same JSON error body as every other refusal instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use kachery_protocol::api_error::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The header carrying the request id, set (or kept) by the request-id layer.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A JSON body: bad syntax is 400 `invalid_json`; a well-formed body with unknown fields
/// or invalid values is 422 `validation_failed`; a body over the route's limit is 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Reads the whole body under the route's `DefaultBodyLimit`.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "request body is larger than this endpoint accepts",
                )
            } else {
                ApiError::bad_request("failed to read the request body")
            }
        })
}

/// Parses JSON with the error split described on [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::validation(error.to_string()),
        _ => ApiError::new(
            ErrorCode::InvalidJson,
            format!("request body is not JSON: {error}"),
        ),
    })
}

/// The request id of the current request, for audit rows and error messages.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(RequestId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
    }

    #[test]
    fn syntax_errors_and_unknown_fields_get_different_codes() {
        let syntax = parse_json::<Sample>(b"{\"name\":").unwrap_err();
        assert_eq!(syntax.code, ErrorCode::InvalidJson);
        let unknown = parse_json::<Sample>(br#"{"name":"a","extra":1}"#).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::ValidationFailed);
        assert!(unknown.message.contains("extra"));
    }
}

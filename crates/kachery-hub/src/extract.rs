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

/// [`ApiJson`] for bodies that may hold secret values: a malformed value is reported by
/// position only, because serde's own message quotes the string it could not use.
pub struct SecretJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for SecretJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        parse_secret_json(&bytes).map(SecretJson)
    }
}

/// Parses JSON like [`parse_json`], but never echoes a string from the body.
pub fn parse_secret_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        match error.classify() {
            // Unknown fields and kinds are named by serde in backticks: safe to echo.
            serde_json::error::Category::Data if !error.to_string().contains('"') => {
                ApiError::validation(error.to_string())
            }
            serde_json::error::Category::Data => ApiError::validation(format!(
                "a value has the wrong type or form at line {line} column {column} (not \
                 quoted here, as it may be a secret); secrets are JSON strings"
            )),
            _ => ApiError::new(
                ErrorCode::InvalidJson,
                format!("request body is not JSON (error at line {line} column {column})"),
            ),
        }
    })
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

    #[test]
    fn secret_bodies_never_echo_their_strings() {
        let misplaced = parse_secret_json::<Sample>(br#"{"name":{"x":"hunter2-hunter2"}}"#);
        let error = misplaced.unwrap_err();
        assert_eq!(error.code, ErrorCode::ValidationFailed);
        assert!(!error.message.contains("hunter2"), "{}", error.message);

        let broken = parse_secret_json::<Sample>(br#"{"name":"hunter2-hunter2"#).unwrap_err();
        assert_eq!(broken.code, ErrorCode::InvalidJson);
        assert!(!broken.message.contains("hunter2"), "{}", broken.message);

        let unknown = parse_secret_json::<Sample>(br#"{"name":"a","extra":1}"#).unwrap_err();
        assert!(unknown.message.contains("extra"));
    }
}

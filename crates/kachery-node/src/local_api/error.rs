//! Error responses of the local API: the hub's `{"error":{"code","message"}}` shape with a
//! stable [`ErrorCode`], so the CLI reads both servers' errors the same way.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kachery_protocol::api_error::{ErrorBody, ErrorCode};

/// A refused local API request.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiFailure {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A server-side failure: the message is logged in full and sent in short form.
    pub(crate) fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %error_chain(error), "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("{context}: {}", error_chain(error)),
        )
    }
}

/// `error: cause: cause …`, the whole source chain on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

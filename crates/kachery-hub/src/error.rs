//! [`ApiError`]: every refusal the hub sends, as `{"error":{"code","message","details"?}}`.
//!
//! The HTTP status is a function of the [`ErrorCode`] alone, decided in one match in
//! [`status_of`]. Internal failures carry their cause only into the log (at warn, with the
//! request id); the client sees a generic message it can quote back to the operator.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kachery_protocol::api_error::{ErrorBody, ErrorCode, ErrorInfo};
use kachery_protocol::node_api::ErrorDetails;

use crate::db::{ConflictKind, DbError};

/// A refusal with a stable code and a message a person can act on.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<ErrorDetails>,
    /// Seconds, sent as `Retry-After` with `rate_limited`.
    pub retry_after_secs: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    /// Adds one `details` entry (e.g. `role` for `missing_role`).
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details
            .get_or_insert_with(ErrorDetails::new)
            .insert(key.to_owned(), value.into());
        self
    }

    /// A 500 whose cause is logged here and not sent to the client.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %error_chain(error), "{context}");
        Self::new(
            ErrorCode::Internal,
            "internal error; the hub log has the details",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }
}

/// The HTTP status for each code: the one place this mapping lives.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidJson
        | ErrorCode::UnknownRequestType
        | ErrorCode::AuthorizationPending => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated
        | ErrorCode::InvalidSignature
        | ErrorCode::StaleRequest
        | ErrorCode::ReplayedRequest
        | ErrorCode::WrongHub
        | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden
        | ErrorCode::NotOwner
        | ErrorCode::MissingRole
        | ErrorCode::NoRoles
        | ErrorCode::CsrfFailed
        | ErrorCode::UrlExpired => StatusCode::FORBIDDEN,
        ErrorCode::NotFound | ErrorCode::ChannelNotFound | ErrorCode::NodeNotRegistered => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::Conflict
        | ErrorCode::ChannelExists
        | ErrorCode::NodeExists
        | ErrorCode::AlreadyMember => StatusCode::CONFLICT,
        ErrorCode::LengthRequired => StatusCode::LENGTH_REQUIRED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::ValidationFailed
        | ErrorCode::InvalidPasscode
        | ErrorCode::RegistrationInvalid
        | ErrorCode::SecretInvalid
        | ErrorCode::HashMismatch
        | ErrorCode::SizeMismatch => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        // ErrorCode is non-exhaustive: a code added to the protocol before the hub maps
        // it is a hub bug, reported as such rather than guessed.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<DbError> for ApiError {
    /// Conflicts get their specific 409 code; anything else is internal.
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict(ConflictKind::Channel) => ApiError::new(
                ErrorCode::ChannelExists,
                "a channel with this name, or one differing only in letter case, exists or \
                 existed; channel names are never reused",
            ),
            DbError::Conflict(ConflictKind::Node) => ApiError::new(
                ErrorCode::NodeExists,
                "this node is already registered to this owner",
            ),
            DbError::Conflict(ConflictKind::Membership) => {
                ApiError::new(ErrorCode::AlreadyMember, "this node is already a member")
            }
            DbError::Conflict(ConflictKind::Nonce) => {
                ApiError::new(ErrorCode::Conflict, "this request was already used")
            }
            DbError::NotFound => ApiError::not_found("nothing to change: the record is gone"),
            DbError::InvalidPasscode => ApiError::new(
                ErrorCode::InvalidPasscode,
                "this passcode cannot be used here; ask the channel owner for a current one",
            ),
            other => ApiError::internal("database operation failed", &other),
        }
    }
}

/// The error and its sources on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec_table() {
        assert_eq!(
            status_of(ErrorCode::ReplayedRequest),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status_of(ErrorCode::MissingRole), StatusCode::FORBIDDEN);
        assert_eq!(
            status_of(ErrorCode::NodeNotRegistered),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status_of(ErrorCode::AlreadyMember), StatusCode::CONFLICT);
        assert_eq!(
            status_of(ErrorCode::RegistrationInvalid),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status_of(ErrorCode::RateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

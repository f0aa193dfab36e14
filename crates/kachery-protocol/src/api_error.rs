//! The error body shared by every hub endpoint: `{"error":{"code","message","details"?}}`
//! with a stable machine-readable [`ErrorCode`] (SPEC §10.1).

use serde::{Deserialize, Serialize};

use crate::node_api::ErrorDetails;

/// Stable error codes. The hub maps each to one HTTP status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    BadRequest,
    InvalidJson,
    UnknownRequestType,
    Unauthenticated,
    InvalidSignature,
    StaleRequest,
    ReplayedRequest,
    WrongHub,
    TokenExpired,
    /// A device code is valid but not approved yet: poll again later (SPEC §9.3).
    AuthorizationPending,
    Forbidden,
    NotOwner,
    MissingRole,
    NoRoles,
    CsrfFailed,
    UrlExpired,
    NotFound,
    ChannelNotFound,
    NodeNotRegistered,
    Conflict,
    ChannelExists,
    NodeExists,
    AlreadyMember,
    LengthRequired,
    PayloadTooLarge,
    ValidationFailed,
    InvalidPasscode,
    RegistrationInvalid,
    SecretInvalid,
    HashMismatch,
    SizeMismatch,
    RateLimited,
    InsufficientStorage,
    Internal,
    Timeout,
    /// A code this build does not know (sent by a newer hub).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorInfo {
                code,
                message: message.into(),
                details: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_unknown_is_tolerated() {
        assert_eq!(ErrorCode::ReplayedRequest.as_str(), "replayed_request");
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"brand_new","message":"m"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
    }
}

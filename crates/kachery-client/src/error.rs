//! [`ApiError`]: every way a call to the hub or to a node daemon can fail, shared by the
//! three clients.
//!
//! The variants separate "nobody answered" ([`ApiError::Unreachable`]) from "the server
//! said no" ([`ApiError::Api`], with the stable [`ErrorCode`] of SPEC §10.1) and from
//! "the server said something we do not understand". Messages name URLs without their
//! query string and never carry bearer tokens or presigned URLs.

use kachery_protocol::api_error::{ErrorBody, ErrorCode};
use kachery_protocol::jcs::CanonicalError;
use kachery_protocol::node_api::ErrorDetails;
use reqwest::StatusCode;

/// How many characters of an unexpected body an error keeps.
const BODY_SNIPPET_CHARS: usize = 200;

/// Why a request to the hub or a node daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Connection refused, DNS failure or timeout: the server is down or unreachable.
    #[error("cannot reach {url}: the server is not running, not reachable or not answering")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The server refused the request with a structured error body.
    #[error("{message} ({code}, http {status})")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
        details: Option<ErrorDetails>,
    },

    /// The server answered with a status and body that are not a kachery error.
    #[error("unexpected http {status} response from {url}: {body_snippet:?}")]
    UnexpectedResponse {
        url: String,
        status: u16,
        body_snippet: String,
    },

    /// The server accepted the connection but sent no response headers in time.
    #[error("{url} accepted the connection but did not answer within {after_secs} s")]
    TimedOut { url: String, after_secs: u64 },

    /// A successful response whose body does not have the expected shape.
    #[error("failed to decode the response from {url}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },

    /// The response began but broke off before it was complete.
    #[error("the response from {url} broke off before it was complete")]
    Interrupted {
        url: String,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The request body could not be put in canonical form for signing.
    #[error("failed to sign the node-api request")]
    Seal(#[from] CanonicalError),
}

impl ApiError {
    /// The hub's error code, when the server answered with a structured error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } | ApiError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Whether the server could not be reached (as opposed to refusing the request).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ApiError::Unreachable { .. } | ApiError::TimedOut { .. }
        )
    }

    /// Turns a non-success response body into [`ApiError::Api`] when it is a kachery
    /// error body, else into [`ApiError::UnexpectedResponse`].
    pub fn from_error_response(url: &str, status: StatusCode, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => ApiError::Api {
                status: status.as_u16(),
                code: error.code,
                message: error.message,
                details: error.details,
            },
            Err(_) => ApiError::UnexpectedResponse {
                url: url.to_owned(),
                status: status.as_u16(),
                body_snippet: snippet(body),
            },
        }
    }
}

/// The start of `body` as text, cut at a character boundary, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut snippet: String = text.chars().take(BODY_SNIPPET_CHARS).collect();
    if text.chars().count() > BODY_SNIPPET_CHARS {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kachery_error_bodies_become_api_errors_with_code_and_details() {
        let body = br#"{"error":{"code":"missing_role","message":"node lacks a role","details":{"role":"provideFiles"}}}"#;
        let error =
            ApiError::from_error_response("http://hub/api/node", StatusCode::FORBIDDEN, body);

        assert_eq!(error.code(), Some(ErrorCode::MissingRole));
        assert_eq!(error.status(), Some(403));
        let ApiError::Api {
            message, details, ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(message, "node lacks a role");
        assert_eq!(details.as_ref().unwrap()["role"], "provideFiles");
        assert_eq!(
            error.to_string(),
            "node lacks a role (missing_role, http 403)"
        );
    }

    #[test]
    fn codes_from_a_newer_hub_are_kept_as_unknown() {
        let body = br#"{"error":{"code":"quota_exceeded","message":"too much"}}"#;
        let error = ApiError::from_error_response("u", StatusCode::CONFLICT, body);
        assert_eq!(error.code(), Some(ErrorCode::Unknown));
    }

    #[test]
    fn other_bodies_become_unexpected_responses_with_a_short_snippet() {
        let body = "<html>".to_owned() + &"x".repeat(1000);
        let error =
            ApiError::from_error_response("http://hub/x", StatusCode::BAD_GATEWAY, body.as_bytes());

        assert_eq!(error.code(), None);
        let ApiError::UnexpectedResponse {
            status,
            body_snippet,
            url,
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!((*status, url.as_str()), (502, "http://hub/x"));
        assert!(body_snippet.starts_with("<html>xx"));
        assert_eq!(body_snippet.chars().count(), BODY_SNIPPET_CHARS + 1);
    }
}

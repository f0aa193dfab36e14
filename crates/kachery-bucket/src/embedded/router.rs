//! The HTTP face of the embedded bucket: one route, `/bucket/{*key}`, and the JSON error
//! replies shared by its handlers.
//!
//! The hub merges this router into its own. The default 2 MB body limit of axum is off
//! for this route: uploads are bounded by the signed size instead, which the upload
//! handler enforces while it streams.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use kachery_protocol::api_error::{ErrorBody, ErrorCode};

use super::signature::UrlCheckError;
use super::{EmbeddedBucket, download, upload};

impl EmbeddedBucket {
    /// Routes PUT, GET and HEAD on `/bucket/{*key}` to this bucket.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/bucket/{*key}",
                put(upload::put_object)
                    .get(download::get_object)
                    .head(download::head_object),
            )
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(self))
    }
}

/// A JSON error reply `{"error":{"code","message"}}`.
pub(super) fn error_response(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// The status and code for a URL that does not authorize the request.
pub(super) fn url_error_status(error: &UrlCheckError) -> (StatusCode, ErrorCode) {
    match error {
        UrlCheckError::Expired => (StatusCode::FORBIDDEN, ErrorCode::UrlExpired),
        UrlCheckError::InvalidSignature | UrlCheckError::MalformedQuery => {
            (StatusCode::FORBIDDEN, ErrorCode::InvalidSignature)
        }
    }
}

//! GET and HEAD on the embedded bucket: check the URL for that exact method, then stream
//! the committed file with its `Content-Length` (SPEC §7.3, §7.4).
//!
//! Objects in `objects/` are complete and verified by construction (see `upload`), so a
//! read is an open and a stream; a HEAD answers the size without a body. With
//! [`EmbeddedBucketOptions::public_read`](super::EmbeddedBucketOptions::public_read) the
//! MAC check is skipped for reads (never for uploads).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::bucket_key::{BucketKey, BucketKeyError};
use tokio_util::io::ReaderStream;

use super::router::{error_response, url_error_status};
use super::signature::{SignedMethod, UrlCheckError};
use super::{EmbeddedBucket, now_ms};
use crate::backend::BucketError;

/// Read size of the file stream; large enough that a 1 GiB download is ~4k reads.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Why a read was refused or failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    InvalidKey(#[from] BucketKeyError),
    #[error(transparent)]
    Url(#[from] UrlCheckError),
    #[error("no object under this key")]
    NotFound,
    #[error("failed to read the object")]
    Storage(#[from] BucketError),
}

impl ReadError {
    fn status(&self) -> (StatusCode, ErrorCode) {
        match self {
            ReadError::InvalidKey(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ReadError::Url(url_error) => url_error_status(url_error),
            ReadError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ReadError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

/// `GET /bucket/{*key}`.
pub(super) async fn get_object(
    State(bucket): State<Arc<EmbeddedBucket>>,
    Path(key_text): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    serve(&bucket, &key_text, query.as_deref(), SignedMethod::Get).await
}

/// `HEAD /bucket/{*key}`.
pub(super) async fn head_object(
    State(bucket): State<Arc<EmbeddedBucket>>,
    Path(key_text): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    serve(&bucket, &key_text, query.as_deref(), SignedMethod::Head).await
}

async fn serve(
    bucket: &EmbeddedBucket,
    key_text: &str,
    query: Option<&str>,
    method: SignedMethod,
) -> Response {
    let (file, size) = match open_object(bucket, key_text, query, method).await {
        Ok(opened) => opened,
        Err(error) => {
            let (status, code) = error.status();
            if status.is_server_error() {
                let error = &error as &dyn std::error::Error;
                tracing::warn!(key = ?key_text, method = method.as_str(), error, "bucket read failed");
            } else {
                tracing::debug!(key = ?key_text, method = method.as_str(), %code, reason = %error, "bucket read refused");
            }
            return error_response(status, code, error.to_string());
        }
    };

    let body = match method {
        SignedMethod::Get => Body::from_stream(ReaderStream::with_capacity(file, READ_CHUNK_BYTES)),
        _ => Body::empty(),
    };
    let headers = [
        (header::CONTENT_LENGTH, size.to_string()),
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
    ];
    (StatusCode::OK, headers, body).into_response()
}

async fn open_object(
    bucket: &EmbeddedBucket,
    key_text: &str,
    query: Option<&str>,
    method: SignedMethod,
) -> Result<(tokio::fs::File, u64), ReadError> {
    let key = BucketKey::try_from_str(key_text)?;
    if !bucket.options.public_read {
        bucket.signer.check(method, key_text, query, now_ms())?;
    }

    let path = bucket.object_path(&key);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::NotFound);
        }
        Err(source) => return Err(BucketError::io("open", path, source).into()),
    };
    let metadata = file
        .metadata()
        .await
        .map_err(|source| BucketError::io("stat", &path, source))?;
    Ok((file, metadata.len()))
}

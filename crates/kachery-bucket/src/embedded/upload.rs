//! PUT on the embedded bucket (SPEC §7.4): authorize, stream the body to `tmp/` while
//! counting and hashing, verify, then make the object visible in one step.
//!
//! Checks run cheapest first and before any byte of the body is read: key shape (400),
//! URL MAC and expiry (403), `Content-Length` against the signed size (411/413/422) and
//! the channel quota (507). The body is then staged in `tmp/` (see `staging`). Only after the size is exact, the
//! SHA-1 of a blob equals its name (422 `hash_mismatch`) and the file is fsynced does the
//! upload get linked (create-only) or renamed (replaced) into `objects/`. Every failure,
//! including a client that disconnects mid-body, drops the temporary file and the quota
//! reservation.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kachery_protocol::Sha1Hash;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::bucket_key::{BucketKey, BucketKeyError, ObjectKind};

use super::quota::{QuotaExceeded, Reservation};
use super::router::{error_response, url_error_status};
use super::signature::{SignedMethod, UrlCheckError};
use super::staging::{StagedUpload, stream_to_tmp};
use super::{EmbeddedBucket, now_ms};
use crate::backend::{BucketError, WriteRule, write_rule};

/// Why an upload was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum UploadError {
    #[error(transparent)]
    InvalidKey(#[from] BucketKeyError),
    #[error(transparent)]
    Url(#[from] UrlCheckError),
    #[error("content-length is required and must equal the signed size {signed}")]
    LengthRequired { signed: u64 },
    #[error("content-length header is not a decimal byte count")]
    BadContentLength,
    #[error("content-length {declared} exceeds the signed size {signed}")]
    TooLarge { declared: u64, signed: u64 },
    #[error("body of {actual} bytes does not match the signed size {signed}")]
    SizeMismatch { actual: u64, signed: u64 },
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error("body hashes to {actual}, not to the sha1 {expected} named by the key")]
    HashMismatch {
        expected: Sha1Hash,
        actual: Sha1Hash,
    },
    #[error("upload body was cut off")]
    BodyAborted(#[source] axum::Error),
    #[error("failed to store the upload")]
    Storage(#[from] BucketError),
}

impl UploadError {
    fn status(&self) -> (StatusCode, ErrorCode) {
        match self {
            UploadError::InvalidKey(_) | UploadError::BadContentLength => {
                (StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
            }
            UploadError::Url(url_error) => url_error_status(url_error),
            UploadError::LengthRequired { .. } => {
                (StatusCode::LENGTH_REQUIRED, ErrorCode::LengthRequired)
            }
            UploadError::TooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            UploadError::SizeMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::SizeMismatch)
            }
            UploadError::HashMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::HashMismatch)
            }
            UploadError::Quota(_) => (
                StatusCode::INSUFFICIENT_STORAGE,
                ErrorCode::InsufficientStorage,
            ),
            UploadError::BodyAborted(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            UploadError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

/// How an accepted upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Committed {
    Created,
    Replaced,
    /// A create-only object already existed; the upload was discarded.
    AlreadyPresent,
}

/// `PUT /bucket/{*key}`.
pub(super) async fn put_object(
    State(bucket): State<Arc<EmbeddedBucket>>,
    Path(key_text): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive(&bucket, &key_text, query.as_deref(), &headers, body).await {
        Ok(committed) => {
            tracing::debug!(key = ?key_text, ?committed, "bucket upload accepted");
            StatusCode::OK.into_response()
        }
        Err(error) => {
            let (status, code) = error.status();
            if status.is_server_error() {
                let error = &error as &dyn std::error::Error;
                tracing::warn!(key = ?key_text, error, "bucket upload failed");
            } else {
                tracing::debug!(key = ?key_text, %code, reason = %error, "bucket upload refused");
            }
            error_response(status, code, error.to_string())
        }
    }
}

async fn receive(
    bucket: &EmbeddedBucket,
    key_text: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Committed, UploadError> {
    let (channel, kind) = BucketKey::parse(key_text)?;
    let signed = bucket
        .signer
        .check(SignedMethod::Put, key_text, query, now_ms())?
        .ok_or(UrlCheckError::InvalidSignature)?;

    let declared = content_length(headers)?.ok_or(UploadError::LengthRequired { signed })?;
    if declared > signed {
        return Err(UploadError::TooLarge { declared, signed });
    }
    if declared < signed {
        return Err(UploadError::SizeMismatch {
            actual: declared,
            signed,
        });
    }
    let reservation = bucket.quota.reserve(channel.as_str(), signed)?;

    let expected_sha1 = match &kind {
        ObjectKind::Blob(sha1) => Some(*sha1),
        // FIXME: feed heads, segments and task records are stored unverified (SPEC §7.4
        // SHOULD); readers still verify them, so this only matters for wasted space.
        _ => None,
    };
    let staged = stream_to_tmp(&bucket.tmp_dir, body, signed, expected_sha1.is_some()).await?;
    if let (Some(expected), Some(actual)) = (expected_sha1, staged.sha1)
        && expected != actual
    {
        return Err(UploadError::HashMismatch { expected, actual });
    }

    let destination = bucket.objects_dir.join(key_text);
    let rule = write_rule(&kind);
    tokio::task::spawn_blocking(move || commit(staged, &destination, rule, reservation))
        .await
        .expect("upload commit task does not panic")
        .map_err(UploadError::from)
}

/// The declared body length; `None` when the header is absent (e.g. chunked encoding).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, UploadError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| UploadError::BadContentLength)?;
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| UploadError::BadContentLength)
}

/// Makes a staged upload visible under `destination`. Runs on a blocking thread.
fn commit(
    staged: StagedUpload,
    destination: &FsPath,
    rule: WriteRule,
    reservation: Reservation,
) -> Result<Committed, BucketError> {
    let parent = destination
        .parent()
        .expect("object paths sit below objects/");
    std::fs::create_dir_all(parent).map_err(|source| BucketError::io("create", parent, source))?;

    let committed = match rule {
        // A hard link creates the name only if it is absent, atomically; the temporary
        // name is then dropped with `staged`.
        // FIXME: needs a filesystem with hard links; matters only for odd data dirs (FAT, some
        // network mounts).
        WriteRule::CreateOnly => match std::fs::hard_link(&staged.tmp.path, destination) {
            Ok(()) => {
                reservation.commit(0);
                Committed::Created
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Committed::AlreadyPresent);
            }
            Err(source) => return Err(BucketError::io("link", destination, source)),
        },
        WriteRule::Replace => {
            // FIXME: two concurrent replacements of one key can both credit the same old
            // size, so usage drifts slightly until the next open rescans; harmless for quotas.
            let replaced = std::fs::metadata(destination)
                .map(|metadata| metadata.len())
                .ok();
            std::fs::rename(&staged.tmp.path, destination)
                .map_err(|source| BucketError::io("rename", destination, source))?;
            reservation.commit(replaced.unwrap_or(0));
            if replaced.is_some() {
                Committed::Replaced
            } else {
                Committed::Created
            }
        }
    };

    // Persist the new directory entry too, so a crash cannot lose an acknowledged upload.
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| BucketError::io("sync", parent, source))?;
    Ok(committed)
}

//! The request/response handlers of the local API; loads stream from `super::load`.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kachery_client::local_api::types::{
    NodeStatus, StoreRequest, StoreResponse, TransfersResponse,
};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::{FileUri, Sha1Hash};
use kachery_store::IngestError;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::ApiState;
use super::error::ApiFailure;
use crate::status::node_status;

/// Liveness, open to any local caller. Names the node so a second daemon that finds the
/// port taken can say whose it is.
pub(crate) async fn healthz(State(state): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "nodeId": state.node.node_id }))
}

pub(crate) async fn status(State(state): State<Arc<ApiState>>) -> Json<NodeStatus> {
    Json(node_status(&state.node, &state.store, &state.exchange).await)
}

/// Runs a reconcile now and answers with the status after it; a failed run shows in
/// `lastError`, as it would in `node status`.
pub(crate) async fn reconcile(State(state): State<Arc<ApiState>>) -> Json<NodeStatus> {
    if let Err(error) = state.reconcile.run_now().await {
        tracing::debug!(%error, "requested reconcile did not succeed");
    }
    Json(node_status(&state.node, &state.store, &state.exchange).await)
}

pub(crate) async fn transfers(State(state): State<Arc<ApiState>>) -> Json<TransfersResponse> {
    let status = node_status(&state.node, &state.store, &state.exchange).await;
    Json(TransfersResponse {
        transfers: status.transfers,
    })
}

/// Adds a file the daemon reads from `path` to the store, pinned.
pub(crate) async fn store(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<StoreRequest>,
) -> Result<Json<StoreResponse>, ApiFailure> {
    let path = request.path;
    if !path.is_absolute() {
        return Err(ApiFailure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            format!(
                "path {} must be absolute: the daemon does not share your working directory",
                path.display()
            ),
        ));
    }

    // The daemon reads with its own rights: never let the API copy its key material out.
    if let (Ok(real_path), Ok(node_dir)) = (path.canonicalize(), state.node_dir.canonicalize()) {
        if real_path.starts_with(&node_dir) {
            return Err(ApiFailure::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!(
                    "refusing to store {}: it is inside the node directory, which holds the node key",
                    path.display()
                ),
            ));
        }
    }

    let ingested = state
        .store
        .ingest_file(&path, true, &|_| {})
        .await
        .map_err(|error| match &error {
            IngestError::ReadSource { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ApiFailure::not_found(format!("no file at {}", path.display()))
            }
            IngestError::ReadSource { .. } => ApiFailure::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!(
                    "the daemon cannot read {}: {}",
                    path.display(),
                    super::error::error_chain(&error)
                ),
            ),
            _ => ApiFailure::internal("failed to store the file", &error),
        })?;

    let manifest_sha1 = ingested.manifest.as_ref().map(|(sha1, _)| *sha1);
    let uri = FileUri::new(ingested.sha1, file_label(&path).as_deref(), manifest_sha1);
    tracing::debug!(sha1 = %ingested.sha1, size = ingested.size, "stored file");
    Ok(Json(StoreResponse {
        uri: uri.to_string(),
        sha1: ingested.sha1,
        size: ingested.size,
        manifest_sha1,
    }))
}

/// The URI label for a stored file: its base name.
fn file_label(path: &Path) -> Option<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ByteRange {
    start: Option<u64>,
    end: Option<u64>,
}

/// Streams local bytes `start..end` of a blob or chunk; 404 when the store lacks them.
pub(crate) async fn file_bytes(
    State(state): State<Arc<ApiState>>,
    UrlPath(sha1_text): UrlPath<String>,
    Query(range): Query<ByteRange>,
) -> Result<Response, ApiFailure> {
    let sha1 =
        Sha1Hash::parse(&sha1_text).map_err(|error| ApiFailure::bad_request(error.to_string()))?;
    let opened = state
        .store
        .open_range(&sha1)
        .await
        .map_err(|error| ApiFailure::internal("failed to open the blob", &error))?;
    let Some((mut file, len)) = opened else {
        return Err(ApiFailure::not_found(format!(
            "this node's store does not hold {sha1}"
        )));
    };

    let start = range.start.unwrap_or(0);
    let end = range.end.unwrap_or(len).min(len);
    if start > end {
        return Err(ApiFailure::bad_request(format!(
            "byte range {start}..{end} is outside the blob of {len} bytes"
        )));
    }
    if start > 0 {
        file.seek(std::io::SeekFrom::Current(
            i64::try_from(start).unwrap_or(i64::MAX),
        ))
        .await
        .map_err(|error| ApiFailure::internal("failed to seek in the blob", &error))?;
    }
    state.store.touch(&sha1).await;

    let body = Body::from_stream(ReaderStream::new(file.take(end - start)));
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, (end - start).to_string()),
    ];
    Ok((headers, body).into_response())
}

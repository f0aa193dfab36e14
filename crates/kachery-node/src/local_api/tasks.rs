//! The task routes of the local API (SPEC §13.4, §17; protocol in `docs/TASKS.md`).
//!
//! Requesters: `POST /v1/tasks` starts a request and answers with its first view;
//! `GET /v1/tasks/{requestId}?since=N&waitMs=M` answers at once, or, when `since` is the
//! current version, as soon as the view changes (at most `waitMs`, capped at 30 s).
//! Workers: `POST /v1/tasks/backends/poll` registers functions and long-polls for a
//! job; `POST /v1/tasks/{jobId}/status` reports on it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kachery_protocol::Nonce;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::task::{
    TaskRunRequest, TaskView, WorkerPollRequest, WorkerPollResponse, WorkerReport,
};
use kachery_tasks::{ReportError, TaskError};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiFailure;

/// Largest worker report body: a 20,000,000-byte result plus JSON escaping headroom.
pub(crate) const MAX_REPORT_BODY_BYTES: usize = 48 << 20;

pub(crate) async fn run(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<TaskRunRequest>,
) -> Result<(StatusCode, Json<TaskView>), ApiFailure> {
    match state.tasks.start_request(request) {
        Ok(view) => Ok((StatusCode::ACCEPTED, Json(view))),
        Err(error @ TaskError::Invalid(_)) => Err(ApiFailure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            error.to_string(),
        )),
        Err(error) => Err(ApiFailure::internal(
            "failed to start the task request",
            &error,
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewQuery {
    since: Option<u64>,
    wait_ms: Option<u64>,
}

pub(crate) async fn view(
    State(state): State<Arc<ApiState>>,
    Path(request_id): Path<String>,
    Query(query): Query<ViewQuery>,
) -> Result<Json<TaskView>, ApiFailure> {
    let request_id = parse_id(&request_id)?;
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0));
    state
        .tasks
        .task_view(&request_id, query.since, wait)
        .await
        .map(Json)
        .ok_or_else(|| {
            ApiFailure::not_found(format!(
                "no task request {request_id} on this node (unknown, or finished long ago)"
            ))
        })
}

pub(crate) async fn poll(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<WorkerPollRequest>,
) -> Json<WorkerPollResponse> {
    Json(state.tasks.poll(request).await)
}

pub(crate) async fn report(
    State(state): State<Arc<ApiState>>,
    Path(job_id): Path<String>,
    Json(report): Json<WorkerReport>,
) -> Result<Json<serde_json::Value>, ApiFailure> {
    let job_id = parse_id(&job_id)?;
    state
        .tasks
        .report(job_id, report)
        .await
        .map_err(|error| match error {
            ReportError::UnknownJob(_) => ApiFailure::not_found(error.to_string()),
            ReportError::TooLarge(_) => ApiFailure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                error.to_string(),
            ),
            ReportError::NotCanonical => ApiFailure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                error.to_string(),
            ),
            _ => ApiFailure::internal("failed to take the worker's report", &error),
        })?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

fn parse_id(text: &str) -> Result<Nonce, ApiFailure> {
    Nonce::parse(text).map_err(|_| {
        ApiFailure::bad_request(format!("{text:?} is not a request id (32 lowercase hex)"))
    })
}

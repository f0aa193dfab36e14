//! Feed routes of the local API (SPEC §13.4, §16): create a feed, append to a subfeed the
//! node owns, read or long-poll any subfeed. Feed keys never appear in any answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kachery_client::local_api::feeds::{
    AppendRequest, AppendResponse, CreateFeedRequest, CreateFeedResponse, FeedMessage, MAX_WAIT_MS,
    ReadQuery, ReadResponse, Rejection,
};
use kachery_feeds::{FeedOpError, ReadRequest};
use kachery_protocol::NodeId;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::uri::FeedUri;

use super::ApiState;
use super::error::ApiFailure;

/// Most messages one read returns.
const MAX_READ_MESSAGES: u64 = 1_000;

pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<CreateFeedRequest>,
) -> Result<Json<CreateFeedResponse>, ApiFailure> {
    let (feed_id, created) = state
        .feeds
        .create(request.name.as_deref())
        .map_err(failure)?;
    let uri = FeedUri {
        feed_id,
        subfeed: None,
    };
    Ok(Json(CreateFeedResponse {
        feed_id,
        uri: uri.to_string(),
        created,
    }))
}

pub(crate) async fn append(
    State(state): State<Arc<ApiState>>,
    Path((feed_id, subfeed)): Path<(String, String)>,
    Json(request): Json<AppendRequest>,
) -> Result<Json<AppendResponse>, ApiFailure> {
    let feed_id = parse_feed_id(&feed_id)?;
    let message_count = state
        .feeds
        .append(feed_id, &subfeed, &request.messages)
        .map_err(failure)?;
    Ok(Json(AppendResponse { message_count }))
}

pub(crate) async fn read(
    State(state): State<Arc<ApiState>>,
    Path((feed_id, subfeed)): Path<(String, String)>,
    Query(query): Query<ReadQuery>,
) -> Result<Json<ReadResponse>, ApiFailure> {
    let feed_id = parse_feed_id(&feed_id)?;
    let max = query
        .max
        .unwrap_or(MAX_READ_MESSAGES)
        .min(MAX_READ_MESSAGES);
    let request = ReadRequest {
        feed_id,
        subfeed,
        position: query.position,
        max: usize::try_from(max).expect("1,000 fits in usize"),
        wait: Duration::from_millis(query.wait_ms.min(MAX_WAIT_MS)),
        channels: query.channel.into_iter().collect(),
    };

    let read = tokio::select! {
        read = state.feeds.read(request) => read.map_err(failure)?,
        () = state.shutdown.cancelled() => {
            return Err(ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Timeout,
                "the node daemon is shutting down",
            ));
        }
    };
    let messages = read
        .messages
        .into_iter()
        .map(|stored| FeedMessage {
            message_number: stored.message_number,
            timestamp: stored.timestamp,
            message: stored.message,
        })
        .collect();
    let rejections = read
        .rejections
        .into_iter()
        .map(|report| Rejection {
            message_number: report.message_number,
            code: report.code.to_owned(),
            detail: report.detail,
            source: report.source,
            at: report.at_ms,
        })
        .collect();
    Ok(Json(ReadResponse {
        feed_id,
        subfeed_hash: read.subfeed_hash,
        position: query.position,
        messages,
        message_count: read.message_count,
        rejections,
    }))
}

fn parse_feed_id(text: &str) -> Result<NodeId, ApiFailure> {
    NodeId::parse(text).map_err(|_| {
        ApiFailure::bad_request(format!(
            "{text:?} is not a feed id: expected 64 lowercase hex characters"
        ))
    })
}

fn failure(error: FeedOpError) -> ApiFailure {
    match error {
        FeedOpError::NotOwner(_) => ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NotOwner,
            error.to_string(),
        ),
        FeedOpError::NoReadChannel { .. } => ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::MissingRole,
            error.to_string(),
        ),
        FeedOpError::Invalid(_) => ApiFailure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            error.to_string(),
        ),
        error => ApiFailure::internal("feed operation failed", &error),
    }
}

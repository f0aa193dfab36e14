//! `POST /v1/load`: fetch a file into the store, answering with NDJSON `LoadEvent`s —
//! `progress` lines while it runs, then one `done` or `error`.
//!
//! The load runs in its own task, so the exchange is never polled from inside the HTTP
//! body. Unless the request says `detach`, dropping the response body (the client went
//! away) aborts that task. At shutdown every load ends with an `unavailable` error event.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kachery_client::local_api::types::{LoadErrorCode, LoadEvent, LoadRequest};
use kachery_exchange::{FileExchange, LoadError, LoadProgress, Loaded};
use kachery_protocol::{ChannelName, FileUri};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ApiState;

/// Progress events buffered for a slow client; older ones are dropped, not waited for.
const EVENT_BUFFER: usize = 32;

pub(crate) async fn load(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<LoadRequest>,
) -> Response {
    let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);

    let uri = match FileUri::parse(&request.uri) {
        Ok(uri) => uri,
        Err(error) => {
            let event = LoadEvent::Error {
                code: LoadErrorCode::InvalidUri,
                message: error.to_string(),
                details: None,
            };
            events_tx
                .try_send(event)
                .expect("a fresh channel has room for one event");
            drop(events_tx);
            return ndjson_response(events_rx, None);
        }
    };

    let span = tracing::debug_span!("load_request", sha1 = %uri.sha1);
    let task = tokio::spawn(
        run_load(
            state.exchange.clone(),
            uri,
            request.channels,
            events_tx,
            state.shutdown.clone(),
        )
        .instrument(span),
    );
    let abort_on_drop = (!request.detach).then(|| AbortOnDrop(task.abort_handle()));
    ndjson_response(events_rx, abort_on_drop)
}

/// Aborts the load task when the response body is dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn ndjson_response(events: mpsc::Receiver<LoadEvent>, guard: Option<AbortOnDrop>) -> Response {
    let lines = futures_util::stream::unfold((events, guard), |(mut events, guard)| async move {
        let event = events.recv().await?;
        let mut line = serde_json::to_vec(&event).expect("load events serialize to JSON");
        line.push(b'\n');
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(line)),
            (events, guard),
        ))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

async fn run_load(
    exchange: Arc<FileExchange>,
    uri: FileUri,
    channels: Vec<ChannelName>,
    events: mpsc::Sender<LoadEvent>,
    shutdown: CancellationToken,
) {
    let (progress_tx, mut progress_rx) = mpsc::channel(EVENT_BUFFER);
    let only_channels = (!channels.is_empty()).then_some(channels);
    let load = exchange.load(&uri, only_channels, progress_tx);
    tokio::pin!(load);

    let outcome = loop {
        tokio::select! {
            outcome = &mut load => break outcome,
            Some(progress) = progress_rx.recv() => {
                // A full buffer means a slow client: it gets the next snapshot instead.
                let _ = events.try_send(progress_event(&progress));
            }
            () = shutdown.cancelled() => {
                let _ = events.send(LoadEvent::Error {
                    code: LoadErrorCode::Unavailable,
                    message: "the node daemon is shutting down".to_owned(),
                    details: None,
                }).await;
                return;
            }
        }
    };

    let final_event = match outcome {
        Ok(loaded) => done_event(loaded),
        Err(error) => {
            tracing::debug!(code = error.code(), %error, "load failed");
            error_event(&error)
        }
    };
    let _ = events.send(final_event).await;
}

fn progress_event(progress: &LoadProgress) -> LoadEvent {
    LoadEvent::Progress {
        bytes: progress.bytes,
        total: progress.total.unwrap_or(0),
        chunks_done: u32::try_from(progress.chunks_done).unwrap_or(u32::MAX),
        chunks_total: u32::try_from(progress.chunks_total).unwrap_or(u32::MAX),
        providers: u32::try_from(progress.providers.len()).unwrap_or(u32::MAX),
    }
}

fn done_event(loaded: Loaded) -> LoadEvent {
    LoadEvent::Done {
        path: loaded.path,
        sha1: loaded.sha1,
        size: loaded.size,
    }
}

fn error_event(error: &LoadError) -> LoadEvent {
    let code = match error.code() {
        "not_found" => LoadErrorCode::NotFound,
        "denied" => LoadErrorCode::Denied,
        "integrity" => LoadErrorCode::Integrity,
        "timeout" => LoadErrorCode::Timeout,
        "unavailable" => LoadErrorCode::Unavailable,
        _ => LoadErrorCode::Internal,
    };
    let details = error.details();
    LoadEvent::Error {
        code,
        message: super::error::error_chain(error),
        details: (!details.is_empty()).then_some(details),
    }
}

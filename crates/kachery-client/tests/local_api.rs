//! LocalClient against a daemon stand-in: bearer token, NDJSON load events split at odd
//! places and delivered as they are written, streamed file bytes, typed errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use kachery_client::local_api::{LoadErrorCode, LoadEvent, StoreResponse};
use kachery_client::{ApiError, LocalClient};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::{ChannelName, Sha1Hash};
use serde_json::json;
use tokio::sync::Notify;

const TOKEN: &str = "local-client-token-for-tests";
const FILE: &[u8] = b"0123456789abcdef";

/// Lets the test release the second half of a load response.
#[derive(Clone, Default)]
struct Gate(Arc<Notify>);

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {TOKEN}");
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(&expected)
}

fn unauthenticated() -> Response {
    common::error_response(StatusCode::UNAUTHORIZED, "unauthenticated", "wrong token")
}

async fn status(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthenticated();
    }
    Json(json!({
        "nodeId": "d".repeat(64), "label": "n", "localOnlyReason": "no hub_url",
        "channels": [], "store": {"blobs": 0, "bytes": 0, "partials": 0}, "transfers": []
    }))
    .into_response()
}

async fn store(headers: HeaderMap, Json(body): Json<serde_json::Value>) -> Response {
    if !authorized(&headers) {
        return unauthenticated();
    }
    let sha1 = Sha1Hash::of(FILE);
    Json(json!({"uri": format!("sha1://{sha1}/{}", body["path"].as_str().unwrap()), "sha1": sha1, "size": 16}))
        .into_response()
}

/// Writes the first progress line and half of the next, waits until the test has seen
/// the first event, then writes the rest in pieces that cut through lines.
async fn load(
    axum::extract::State(gate): axum::extract::State<Gate>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if !authorized(&headers) {
        return unauthenticated();
    }
    let first =
        r#"{"event":"progress","bytes":0,"total":16,"chunksDone":0,"chunksTotal":1,"providers":0}"#;
    let second = r#"{"event":"progress","bytes":16,"total":16,"chunksDone":1,"chunksTotal":1,"providers":2}"#;
    let last = if body["uri"] == "sha1://missing" {
        r#"{"event":"error","code":"not_found","message":"nobody has it"}"#.to_owned()
    } else if body["uri"] == "sha1://cut" {
        String::new()
    } else {
        format!(
            r#"{{"event":"done","path":"/store/x","sha1":"{}","size":16}}"#,
            Sha1Hash::of(FILE)
        )
    };
    assert_eq!(body["channels"], json!(["lab.shared"]));

    let opening = format!("{first}\n{}", &second[..20]);
    let rest = format!("{}\r\n\n{last}\n", &second[20..]);
    let pieces: Vec<String> = rest
        .as_bytes()
        .chunks(7)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(opening)) })
            .chain(futures_util::stream::once(async move {
                gate.0.notified().await;
                Ok(Bytes::new())
            }))
            .chain(futures_util::stream::iter(
                pieces.into_iter().map(|piece| Ok(Bytes::from(piece))),
            ));
    Response::new(Body::from_stream(stream))
}

#[derive(serde::Deserialize)]
struct Range {
    start: Option<usize>,
    end: Option<usize>,
}

async fn file(
    headers: HeaderMap,
    Path(sha1): Path<String>,
    Query(range): Query<Range>,
) -> Response {
    if !authorized(&headers) {
        return unauthenticated();
    }
    if sha1 != Sha1Hash::of(FILE).to_hex() {
        return common::error_response(StatusCode::NOT_FOUND, "not_found", "no such blob");
    }
    let bytes = &FILE[range.start.unwrap_or(0)..range.end.unwrap_or(FILE.len())];
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(3)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
}

async fn daemon() -> (url::Url, Gate) {
    let gate = Gate::default();
    let router = axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/store", post(store))
        .route("/v1/load", post(load))
        .route("/v1/files/{sha1}", get(file))
        .with_state(gate.clone());
    (common::serve(router).await, gate)
}

fn channels() -> Vec<ChannelName> {
    vec![ChannelName::parse("lab.shared").unwrap()]
}

/// Fails the test instead of hanging when an event never comes.
async fn next_event<S>(events: &mut S) -> Option<Result<LoadEvent, ApiError>>
where
    S: futures_util::Stream<Item = Result<LoadEvent, ApiError>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the daemon sent the next event within 10 s")
}

#[tokio::test]
async fn load_events_arrive_as_written_even_when_lines_are_cut() {
    let (base, gate) = daemon().await;
    let client = LocalClient::new(base, TOKEN.into());
    let mut events = Box::pin(client.load("sha1://present", channels()).await.unwrap());

    // The first event must arrive while the server still holds back the rest.
    let first = next_event(&mut events).await.unwrap().unwrap();
    assert!(
        matches!(
            first,
            LoadEvent::Progress {
                bytes: 0,
                total: 16,
                ..
            }
        ),
        "{first:?}"
    );
    gate.0.notify_one();

    let second = next_event(&mut events).await.unwrap().unwrap();
    assert!(
        matches!(
            second,
            LoadEvent::Progress {
                bytes: 16,
                providers: 2,
                ..
            }
        ),
        "{second:?}"
    );
    let done = next_event(&mut events).await.unwrap().unwrap();
    assert_eq!(
        done,
        LoadEvent::Done {
            path: "/store/x".into(),
            sha1: Sha1Hash::of(FILE),
            size: 16
        }
    );
    assert!(next_event(&mut events).await.is_none());
}

#[tokio::test]
async fn a_load_error_event_carries_its_code() {
    let (base, gate) = daemon().await;
    gate.0.notify_one();
    let client = LocalClient::new(base, TOKEN.into());

    let events: Vec<_> = client
        .load("sha1://missing", channels())
        .await
        .unwrap()
        .collect()
        .await;
    let last = events.last().unwrap().as_ref().unwrap();
    assert!(
        matches!(
            last,
            LoadEvent::Error {
                code: LoadErrorCode::NotFound,
                ..
            }
        ),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_load_stream_ending_without_a_final_event_is_interrupted() {
    let (base, gate) = daemon().await;
    gate.0.notify_one();
    let client = LocalClient::new(base, TOKEN.into());

    let events: Vec<_> = client
        .load("sha1://cut", channels())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(events.len(), 3);
    assert!(
        matches!(events[2], Err(ApiError::Interrupted { .. })),
        "{:?}",
        events[2]
    );
}

#[tokio::test]
async fn file_bytes_stream_the_requested_range_or_fail_with_not_found() {
    let (base, _gate) = daemon().await;
    let client = LocalClient::new(base, TOKEN.into());

    let whole: Vec<Bytes> = client
        .file_bytes(&Sha1Hash::of(FILE), None, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(whole.concat(), FILE);
    let range: Vec<Bytes> = client
        .file_bytes(&Sha1Hash::of(FILE), Some(2), Some(11))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(range.concat(), &FILE[2..11]);

    let Err(missing) = client.file_bytes(&Sha1Hash::of(b"other"), None, None).await else {
        panic!("an absent blob must fail");
    };
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn status_and_store_use_the_token_and_typed_bodies() {
    let (base, _gate) = daemon().await;
    let client = LocalClient::new(base.clone(), TOKEN.into());

    let status = client.status().await.unwrap();
    assert_eq!(status.local_only_reason.as_deref(), Some("no hub_url"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, FILE).unwrap();
    let stored: StoreResponse = client.store_path(&path).await.unwrap();
    assert_eq!((stored.sha1, stored.size), (Sha1Hash::of(FILE), 16));
    assert!(stored.uri.ends_with("data.bin"), "{}", stored.uri);

    let wrong = LocalClient::new(base, "not-the-token".into());
    assert_eq!(
        wrong.status().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
}

#[tokio::test]
async fn a_daemon_that_is_not_running_is_unreachable_and_the_token_stays_hidden() {
    let base = common::closed_port_url().await;
    let client = LocalClient::new(base.clone(), TOKEN.into());

    let error = client.status().await.unwrap_err();
    assert!(matches!(error, ApiError::Unreachable { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!("{base}v1/status")),
        "{error}"
    );
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{client:?}"),
    ] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    let Err(load_error) = client.load("sha1://x", vec![]).await else {
        panic!("nothing listens")
    };
    assert!(load_error.is_unreachable(), "{load_error:?}");
}

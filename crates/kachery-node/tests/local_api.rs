//! The daemon's local API on a real socket: token, Host check, store and file bytes,
//! status in local-only mode, and the one-daemon-per-node-dir lock (SPEC §13.1, §13.4).

mod common;

use std::fs;

use futures_util::TryStreamExt;
use kachery_client::ApiError;
use kachery_client::local_api::{LoadErrorCode, LoadEvent};
use kachery_node::{DaemonInfo, LockError, NodeDaemon, StartError};
use kachery_protocol::api_error::ErrorCode;
use reqwest::StatusCode;

#[tokio::test]
async fn requests_without_the_token_are_refused_but_healthz_is_open() {
    let (_dir, paths) = common::temp_paths();
    let (handle, client) = common::start(&paths, common::local_only_config()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = handle.local_api_url();

    let anonymous = http
        .get(base.join("/v1/status").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let wrong = http
        .get(base.join("/v1/status").unwrap())
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let health = http
        .get(base.join("/healthz").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["nodeId"], handle.node_id().to_string());

    client.status().await.expect("the right token is accepted");
    handle.shutdown().await;
}

#[tokio::test]
async fn non_loopback_host_headers_are_refused() {
    let (_dir, paths) = common::temp_paths();
    let (handle, _client) = common::start(&paths, common::local_only_config()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = handle.local_api_url().join("/v1/status").unwrap();
    let token = handle.client_token().expose().to_owned();

    let rebound = http
        .get(url.clone())
        .header(reqwest::header::HOST, "attacker.example:20431")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    assert!(
        rebound
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let localhost = http
        .get(url)
        .header(reqwest::header::HOST, "localhost:20431")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(localhost.status(), StatusCode::OK);
    handle.shutdown().await;
}

#[tokio::test]
async fn stored_files_come_back_from_the_files_endpoint() {
    let (dir, paths) = common::temp_paths();
    let (handle, client) = common::start(&paths, common::local_only_config()).await;
    let input = dir.path().join("notes.txt");
    let content = b"kachery keeps what it is given\n".repeat(100);
    fs::write(&input, &content).unwrap();

    let stored = client.store_path(&input).await.unwrap();
    assert_eq!(stored.size, content.len() as u64);
    assert_eq!(stored.sha1, kachery_protocol::Sha1Hash::of(&content));
    assert_eq!(stored.uri, format!("sha1://{}/notes.txt", stored.sha1));

    let whole: Vec<u8> = collect(client.file_bytes(&stored.sha1, None, None).await.unwrap()).await;
    assert_eq!(whole, content);
    let middle = collect(
        client
            .file_bytes(&stored.sha1, Some(5), Some(12))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(middle, &content[5..12]);

    let absent = kachery_protocol::Sha1Hash::of(b"never stored");
    let missing = client
        .file_bytes(&absent, None, None)
        .await
        .err()
        .expect("absent blobs are 404");
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));

    let relative = client
        .store_path(std::path::Path::new("notes.txt"))
        .await
        .unwrap_err();
    assert_eq!(
        relative.code(),
        Some(ErrorCode::ValidationFailed),
        "{relative}"
    );

    // The node key must never leave through the store.
    let key = client
        .store_path(&paths.node_dir.join("private.pem"))
        .await
        .unwrap_err();
    assert_eq!(key.code(), Some(ErrorCode::Forbidden), "{key}");

    let status = client.status().await.unwrap();
    assert_eq!(status.store.blobs, 1);
    assert_eq!(status.store.bytes, content.len() as u64);
    handle.shutdown().await;
}

async fn collect(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, ApiError>>,
) -> Vec<u8> {
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn local_only_status_names_what_is_missing_and_loads_fail_cleanly() {
    let (_dir, paths) = common::temp_paths();
    let (handle, client) = common::start(&paths, common::local_only_config()).await;

    let status = client.status().await.unwrap();
    assert_eq!(status.node_id, handle.node_id());
    assert!(status.hub.is_none() && status.owner.is_none());
    let reason = status
        .local_only_reason
        .expect("local-only mode is explained");
    assert!(
        reason.contains("hub_url") && reason.contains("owner"),
        "{reason}"
    );
    assert!(status.channels.is_empty());

    // Reconcile has nothing to run against, and says so through the status.
    client.reconcile().await.unwrap();

    let events: Vec<_> = client
        .load("sha1://0123456789abcdef0123456789abcdef01234567", vec![])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let last = events.last().expect("a final event");
    assert!(matches!(last, LoadEvent::Error { .. }), "{last:?}");

    let invalid: Vec<_> = client
        .load("http://not-kachery", vec![])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        matches!(
            &invalid[..],
            [LoadEvent::Error {
                code: LoadErrorCode::InvalidUri,
                ..
            }]
        ),
        "{invalid:?}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_second_daemon_on_the_same_node_dir_is_refused_and_daemon_json_tracks_the_first() {
    let (_dir, paths) = common::temp_paths();
    let (handle, _client) = common::start(&paths, common::local_only_config()).await;

    let info = DaemonInfo::read(&paths.node_dir)
        .unwrap()
        .expect("daemon.json is written");
    assert_eq!(
        (info.port, info.node_id),
        (handle.local_api_addr().port(), handle.node_id())
    );

    let second = NodeDaemon::start(
        paths.clone(),
        common::local_only_config(),
        common::quick_options(),
    )
    .await;
    let Err(StartError::Lock(LockError::Busy { pid })) = second else {
        panic!(
            "expected a busy lock, got {:?}",
            second.map(|handle| handle.node_id())
        );
    };
    assert_eq!(pid, Some(std::process::id()));

    handle.shutdown().await;
    assert!(
        DaemonInfo::read(&paths.node_dir).unwrap().is_none(),
        "daemon.json is removed"
    );

    // The lock is free again after a clean shutdown.
    let (again, _client) = common::start(&paths, common::local_only_config()).await;
    again.shutdown().await;
}

#[tokio::test]
async fn a_busy_port_is_an_error_naming_the_port_and_the_node_there() {
    let (_dir, first_paths) = common::temp_paths();
    let (first, _client) = common::start(&first_paths, common::local_only_config()).await;

    let (_other_dir, second_paths) = common::temp_paths();
    let config = kachery_node::NodeConfig {
        port: first.local_api_addr().port(),
        ..common::local_only_config()
    };
    let error = NodeDaemon::start(second_paths, config, common::quick_options())
        .await
        .err()
        .expect("port in use");
    let message = error.to_string();
    assert!(
        message.contains(&first.local_api_addr().port().to_string()),
        "{message}"
    );
    assert!(message.contains(&first.node_id().to_string()), "{message}");
    first.shutdown().await;
}

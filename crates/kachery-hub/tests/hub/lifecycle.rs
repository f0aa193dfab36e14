//! Starting, restarting and refusing to start; the embedded bucket behind the node API.

use std::os::unix::fs::PermissionsExt;

use kachery_client::HubUserClient;
use kachery_hub::{HubConfig, StartError, spawn};
use kachery_protocol::Sha1Hash;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{PresignedRequest, UploadItem};

use crate::common::*;

on_both_backends!(
    a_second_hub_on_the_same_data_dir_is_refused_until_the_first_stops,
    upload_url_then_download_url_through_the_embedded_bucket,
    corrupt_object_reports_delete_bad_blobs,
    state_and_master_key_survive_a_restart,
    dev_login_is_refused_on_a_non_loopback_bind,
    a_hub_without_dev_login_needs_a_private_master_key_and_hides_dev_tokens,
);

/// Sends a presigned request exactly as given, with `body` for PUTs.
async fn send_presigned(request: &PresignedRequest, body: Vec<u8>) -> reqwest::Response {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut builder = http.request(method, &request.url);
    for (name, value) in &request.headers {
        if name != "content-length" {
            builder = builder.header(name, value);
        }
    }
    builder.body(body).send().await.expect("the bucket answers")
}

async fn upload_url_then_download_url_through_the_embedded_bucket(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let channel = create_channel(&alice, "lab.files").await;
    let node = register_node(&hub, &alice, &node_key(40), "alice@example.org").await;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideFiles"),
        )
        .await?;
    alice
        .join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;

    // Larger than axum's default 2 MB body limit, which must not apply to the bucket.
    let content = b"hello from the hub tests".repeat(130_000);
    let sha1 = Sha1Hash::of(&content);
    let item = UploadItem::File {
        sha1,
        size: content.len() as u64,
    };
    let uploads = node.upload_urls(&channel, vec![item]).await?.uploads;
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].key, BucketKey::blob(&channel, &sha1));
    let put = send_presigned(&uploads[0], content.clone()).await;
    assert!(
        put.status().is_success(),
        "upload refused: {}",
        put.status()
    );

    let downloads = node
        .download_urls(&channel, vec![BucketKey::blob(&channel, &sha1)])
        .await?
        .downloads;
    let get = send_presigned(&downloads[0].get, Vec::new()).await;
    assert!(get.status().is_success());
    assert_eq!(get.bytes().await?.as_ref(), content.as_slice());
    let head = send_presigned(&downloads[0].head, Vec::new()).await;
    assert!(head.status().is_success());

    // An intact object reported as corrupt stays.
    assert!(
        !node
            .report_corrupt(&channel, BucketKey::blob(&channel, &sha1))
            .await?
            .deleted
    );

    // Keys of another channel are refused.
    let foreign = BucketKey::blob(&channel_name("other.channel"), &sha1);
    assert_eq!(
        code_of(node.download_urls(&channel, vec![foreign]).await),
        ErrorCode::ValidationFailed
    );
    hub.shutdown().await?;
    Ok(())
}

async fn corrupt_object_reports_delete_bad_blobs(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let channel = create_channel(&alice, "lab.corrupt").await;
    let node = register_node(&hub, &alice, &node_key(41), "alice@example.org").await;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideFiles"),
        )
        .await?;
    alice
        .join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;

    // Plant bad bytes under a blob's name, as a broken backend or disk would.
    let sha1 = Sha1Hash::of(b"the real content");
    let key = BucketKey::blob(&channel, &sha1);
    let path = env.path().join("bucket").join("objects").join(key.as_str());
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(&path, b"something else")?;

    assert!(node.report_corrupt(&channel, key.clone()).await?.deleted);
    assert!(!path.exists());
    assert!(!node.report_corrupt(&channel, key).await?.deleted);
    hub.shutdown().await?;
    Ok(())
}

async fn state_and_master_key_survive_a_restart(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let anonymous = HubUserClient::new(hub.public_url().clone(), None);
    let token = anonymous
        .dev_token(&email("alice@example.org"))
        .await?
        .token;
    let alice = HubUserClient::new(hub.public_url().clone(), Some(token.clone()));
    let channel = create_channel(&alice, "lab.persist").await;
    let node = register_node(&hub, &alice, &node_key(42), "alice@example.org").await;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideFiles"),
        )
        .await?;
    alice
        .join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;
    let content = b"written after the restart".to_vec();
    let sha1 = Sha1Hash::of(&content);
    let item = UploadItem::File {
        sha1,
        size: content.len() as u64,
    };
    let upload = node
        .upload_urls(&channel, vec![item])
        .await?
        .uploads
        .remove(0);
    let bind = hub.local_addr();
    hub.shutdown().await?;

    // Same data directory and port, so the public URL (and the upload URL) stay valid.
    let hub = env.spawn_hub_at(bind).await;
    let alice = HubUserClient::new(hub.public_url().clone(), Some(token));
    let nodes = alice.nodes().await?;
    assert_eq!(nodes.items.len(), 1);
    assert_eq!(
        nodes.items[0].memberships[0].effective_roles,
        roles("requestFiles,provideFiles")
    );
    assert_eq!(alice.authorizations(&channel).await?.items.len(), 1);
    assert!(!alice.channel(&channel).await?.deleted);
    assert_eq!(node.pubsub_credential(&channel).await?.channel, channel);

    // The upload URL was signed with a key derived from the persisted master key.
    let put = send_presigned(&upload, content).await;
    assert!(
        put.status().is_success(),
        "a pre-restart upload URL still verifies: {}",
        put.status()
    );
    hub.shutdown().await?;
    Ok(())
}

async fn dev_login_is_refused_on_a_non_loopback_bind(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let config = HubConfig {
        bind: "0.0.0.0:0".parse()?,
        ..env.config()
    };
    let error = spawn(config)
        .await
        .err()
        .expect("dev login on 0.0.0.0 is refused");
    assert!(matches!(error, StartError::DevLoginNotLoopback { .. }));
    assert!(error.to_string().contains("0.0.0.0"), "{error}");

    let config = HubConfig {
        public_url: Some("https://hub.example.org".parse()?),
        ..env.config()
    };
    let error = spawn(config)
        .await
        .err()
        .expect("dev login with a public host is refused");
    assert!(error.to_string().contains("hub.example.org"), "{error}");
    Ok(())
}

async fn a_hub_without_dev_login_needs_a_private_master_key_and_hides_dev_tokens(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let config = |key_file| HubConfig {
        data_dir: env.path().join("data"),
        master_key_file: Some(key_file),
        dev_login: false,
        admins: Vec::new(),
        ..env.config()
    };
    let key_file = env.path().join("master.key");
    std::fs::write(&key_file, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644))?;
    let error = spawn(config(key_file.clone()))
        .await
        .err()
        .expect("a world-readable key is refused");
    assert!(error.to_string().contains("master key"), "{error}");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    let hub = spawn(config(key_file)).await?;
    let anonymous = HubUserClient::new(hub.public_url().clone(), None);
    assert_eq!(
        code_of(anonymous.dev_token(&email("a@example.org")).await),
        ErrorCode::NotFound
    );

    let response = reqwest::get(hub.public_url().join("/readyz")?).await?;
    assert!(response.status().is_success());
    assert!(response.headers().contains_key("x-request-id"));
    hub.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused_without_echoing_it() -> TestResult {
    let env = TestEnv::new(Backend::Sqlite).await;
    let config = HubConfig {
        database_url: Some("mysql://hub:hunter2@db.internal/kachery".to_owned()),
        ..env.config()
    };
    let error = spawn(config).await.err().expect("a mysql url is refused");
    assert!(matches!(error, StartError::UnsupportedDatabase { .. }));
    let message = error.to_string();
    assert!(
        message.contains("\"mysql\"") && message.contains("postgres://"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    Ok(())
}

async fn a_second_hub_on_the_same_data_dir_is_refused_until_the_first_stops(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let first = env.spawn_hub().await;

    let refused = kachery_hub::spawn(env.config())
        .await
        .err()
        .expect("refused");
    let message = refused.to_string();
    assert!(
        message.contains("another hub is already running"),
        "{message}"
    );
    assert!(
        message.contains(&env.path().display().to_string()),
        "{message}"
    );

    first.shutdown().await?;
    let second = env.spawn_hub().await;
    second.shutdown().await?;
    Ok(())
}

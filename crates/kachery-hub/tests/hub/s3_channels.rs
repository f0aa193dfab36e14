//! Channels on an S3 bucket (SPEC §7.2, §7.3, §7.5): the hub builds the channel's backend
//! from its settings and encrypted secret and presigns through it; a real,
//! signature-checking S3 server (s3s-fs, in-process on 127.0.0.1:0) judges every URL.

use std::collections::BTreeMap;

use kachery_bucket::s3_test_server::S3TestServer;
use kachery_client::{HubUserClient, NodeApiClient};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{PresignedRequest, ReadMode, UploadItem};
use kachery_protocol::user_api::{BucketSettings, CreateChannelRequest, SecretKind, SecretValue};
use kachery_protocol::{ChannelName, Sha1Hash};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

on_both_backends!(
    a_blob_travels_through_the_channel_s3_bucket,
    the_store_refuses_oversize_and_tampered_uploads,
    a_corrupt_object_is_verified_deleted_and_audited,
    a_replaced_secret_takes_effect_at_the_next_batch,
    bad_settings_and_missing_or_foreign_secrets_are_refused_at_create,
    public_read_channels_get_a_read_base_instead_of_urls,
);

const ACCESS_KEY: &str = "kachery-hub-test-access";
const SECRET_KEY: &str = "kachery-hub-test-secret-0123456789";
const BUCKET: &str = "lab-bucket";

/// An s3s-fs server, a hub, alice's S3 channel, a provider node (alice) and a
/// requester node (bob), both granted.
struct S3Channel {
    store: S3TestServer,
    _dir: tempfile::TempDir,
    hub: kachery_hub::HubHandle,
    alice: HubUserClient,
    channel: ChannelName,
    provider: NodeApiClient,
    requester: NodeApiClient,
    http: reqwest::Client,
}

impl S3Channel {
    async fn start(env: &TestEnv, name: &str) -> Self {
        Self::start_with(env, name, ReadMode::Presigned, |_| {}).await
    }

    async fn start_with(
        env: &TestEnv,
        name: &str,
        read_mode: ReadMode,
        edit: impl FnOnce(&mut Value),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = S3TestServer::spawn(
            dir.path().to_owned(),
            "127.0.0.1:0".parse().unwrap(),
            &[BUCKET],
            ACCESS_KEY,
            SECRET_KEY,
        )
        .await
        .unwrap();
        let hub = env.spawn_hub().await;
        let alice = sign_in(&hub, "alice@example.org").await;
        let bob = sign_in(&hub, "bob@example.org").await;

        let mut config = s3_config(&store);
        edit(&mut config);
        let channel = channel_name(name);
        alice
            .create_channel(&s3_channel_request(&channel, config, read_mode, SECRET_KEY))
            .await
            .expect("the s3 channel is created");

        let provider = register_node(&hub, &alice, &node_key(40), "alice@example.org").await;
        let requester = register_node(&hub, &bob, &node_key(41), "bob@example.org").await;
        alice
            .join(
                provider.node_id(),
                &channel,
                roles("requestFiles,provideFiles"),
            )
            .await
            .unwrap();
        bob.join(requester.node_id(), &channel, roles("requestFiles"))
            .await
            .unwrap();
        for node in [&provider, &requester] {
            alice
                .grant(
                    &channel,
                    node.node_id(),
                    node.owner(),
                    roles("requestFiles,provideFiles"),
                )
                .await
                .unwrap();
        }
        Self {
            store,
            _dir: dir,
            hub,
            alice,
            channel,
            provider,
            requester,
            http: reqwest::Client::new(),
        }
    }

    async fn upload_url(&self, data: &[u8]) -> PresignedRequest {
        let items = vec![UploadItem::File {
            sha1: Sha1Hash::of(data),
            size: data.len() as u64,
        }];
        let mut uploads = self
            .provider
            .upload_urls(&self.channel, items)
            .await
            .expect("the provider gets an upload url")
            .uploads;
        uploads.remove(0)
    }

    async fn download_url(&self, key: &BucketKey) -> PresignedRequest {
        let mut downloads = self
            .requester
            .download_urls(&self.channel, vec![key.clone()])
            .await
            .expect("the requester gets download urls")
            .downloads;
        downloads.remove(0).get
    }

    /// Sends a presigned request exactly as a node does, with `body`.
    async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let mut headers = request.headers.clone();
        // A node sends the true length of its body, whatever the URL was signed for.
        headers.remove("content-length");
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
        let mut builder = self.http.request(method, &request.url);
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        if request.method == "PUT" {
            builder = builder.body(body);
        }
        let response = builder.send().await.unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }

    fn object_path(&self, key: &BucketKey) -> std::path::PathBuf {
        self.store
            .root
            .join(BUCKET)
            .join("kachery")
            .join(key.as_str())
    }
}

fn s3_config(store: &S3TestServer) -> Value {
    json!({
        "endpoint": store.endpoint.as_str(),
        "region": "us-east-1",
        "bucket": BUCKET,
        "prefix": "kachery",
        "pathStyle": true,
        "accessKeyId": ACCESS_KEY,
        "allowHttp": true,
    })
}

fn s3_channel_request(
    channel: &ChannelName,
    config: Value,
    read_mode: ReadMode,
    secret: &str,
) -> CreateChannelRequest {
    CreateChannelRequest {
        name: channel.clone(),
        bucket: Some(BucketSettings {
            backend: "s3".to_owned(),
            config: Some(config),
            read_mode,
        }),
        pubsub: None,
        secrets: BTreeMap::from([(SecretKind::S3SecretAccessKey, SecretValue::new(secret))]),
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

async fn a_blob_travels_through_the_channel_s3_bucket(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let net = S3Channel::start(&env, "lab.s3").await;
    let bytes = data(70_000, 1);
    let key = BucketKey::blob(&net.channel, &Sha1Hash::of(&bytes));

    let put = net.upload_url(&bytes).await;
    assert!(
        put.url.starts_with(net.store.endpoint.as_str()),
        "not the s3 store"
    );
    assert_eq!(put.headers["content-length"], "70000");
    assert_eq!(put.headers["if-none-match"], "*");
    assert_eq!(net.send(&put, bytes.clone()).await.0, StatusCode::OK);
    assert_eq!(std::fs::read(net.object_path(&key))?, bytes);

    let get = net.download_url(&key).await;
    let (status, downloaded) = net.send(&get, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(downloaded, bytes);

    // A second upload of the same blob is refused by the store and counts as present.
    let again = net.upload_url(&bytes).await;
    assert_eq!(
        net.send(&again, bytes).await.0,
        StatusCode::PRECONDITION_FAILED
    );

    // The owner sees the settings (never the secret); the requester's owner sees the kind.
    let view = net.alice.channel(&net.channel).await?;
    let bucket = view.bucket.unwrap();
    assert_eq!(bucket.backend, "s3");
    assert_eq!(bucket.config.unwrap()["accessKeyId"], ACCESS_KEY);
    assert_eq!(view.secrets.unwrap()[0].kind, SecretKind::S3SecretAccessKey);
    let bob = sign_in(&net.hub, "bob@example.org").await;
    let bob_view = bob.channel(&net.channel).await?;
    assert_eq!(bob_view.bucket.as_ref().unwrap().backend, "s3");
    assert!(bob_view.bucket.unwrap().config.is_none());
    net.hub.shutdown().await?;
    Ok(())
}

async fn the_store_refuses_oversize_and_tampered_uploads(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let net = S3Channel::start(&env, "lab.s3.refusals").await;
    let bytes = data(4_000, 2);
    let key = BucketKey::blob(&net.channel, &Sha1Hash::of(&bytes));
    let put = net.upload_url(&bytes).await;

    // One byte more than the signed size: the store refuses, nothing is written.
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(net.send(&put, longer).await.0, StatusCode::FORBIDDEN);
    assert!(!net.object_path(&key).exists());

    // The URL moved to another key, or its signature changed: refused too.
    let other = BucketKey::blob(&net.channel, &Sha1Hash::of(b"other"));
    let mut moved = put.clone();
    moved.url = put.url.replace(key.as_str(), other.as_str());
    assert_eq!(
        net.send(&moved, bytes.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let mut tampered = put.clone();
    let signature_at = tampered.url.find("X-Amz-Signature=").unwrap() + 16;
    let flipped = if &tampered.url[signature_at..=signature_at] == "0" {
        "1"
    } else {
        "0"
    };
    tampered
        .url
        .replace_range(signature_at..=signature_at, flipped);
    assert_eq!(
        net.send(&tampered, bytes.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(!net.object_path(&key).exists());

    // The honest upload with the same URL still works.
    assert_eq!(net.send(&put, bytes).await.0, StatusCode::OK);

    // The hub's own size caps apply before anything is signed.
    let oversize = vec![UploadItem::File {
        sha1: Sha1Hash::of(b"big"),
        size: 20_000_001,
    }];
    let error = net
        .provider
        .upload_urls(&net.channel, oversize)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    net.hub.shutdown().await?;
    Ok(())
}

async fn a_corrupt_object_is_verified_deleted_and_audited(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let net = S3Channel::start(&env, "lab.s3.corrupt").await;
    let honest = data(3_000, 3);
    let junk = data(3_000, 4);
    let key = BucketKey::blob(&net.channel, &Sha1Hash::of(&honest));

    // A provider stores junk of the right size under the blob's name: S3 cannot tell.
    let put = net.upload_url(&honest).await;
    assert_eq!(net.send(&put, junk.clone()).await.0, StatusCode::OK);

    // The reader sees the mismatch, and the hub confirms it and deletes the object.
    let (_, read) = net.send(&net.download_url(&key).await, Vec::new()).await;
    assert_eq!(read, junk);
    assert_ne!(Sha1Hash::of(&read), Sha1Hash::of(&honest));
    let report = net
        .requester
        .report_corrupt(&net.channel, key.clone())
        .await?;
    assert!(report.deleted);
    assert!(!net.object_path(&key).exists());

    // Create-only no longer keeps the junk: the honest copy gets in, and verifies.
    let put = net.upload_url(&honest).await;
    assert_eq!(net.send(&put, honest.clone()).await.0, StatusCode::OK);
    let report = net
        .requester
        .report_corrupt(&net.channel, key.clone())
        .await?;
    assert!(!report.deleted);
    assert_eq!(std::fs::read(net.object_path(&key))?, honest);
    net.hub.shutdown().await?;
    Ok(())
}

async fn a_replaced_secret_takes_effect_at_the_next_batch(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let net = S3Channel::start(&env, "lab.s3.rotate").await;
    let bytes = data(100, 5);
    assert_eq!(
        net.send(&net.upload_url(&bytes).await, bytes.clone())
            .await
            .0,
        StatusCode::OK
    );

    // A wrong secret: the hub now signs with it, and the store refuses.
    put_secret(&net, "not-the-right-secret-at-all").await;
    let other = data(100, 6);
    let put = net.upload_url(&other).await;
    assert_eq!(net.send(&put, other.clone()).await.0, StatusCode::FORBIDDEN);

    // The right one again: URLs work at once, without a restart.
    put_secret(&net, SECRET_KEY).await;
    let put = net.upload_url(&other).await;
    assert_eq!(net.send(&put, other).await.0, StatusCode::OK);

    // A GCS key on an S3 channel is refused, naming the mismatch.
    let (status, body) = put_secret_raw(
        &net,
        SecretKind::GcsServiceAccount,
        "{\"type\": \"service_account\"}",
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("does not use gcsServiceAccount"), "{body}");
    net.hub.shutdown().await?;
    Ok(())
}

async fn put_secret(net: &S3Channel, value: &str) {
    let (status, body) = put_secret_raw(net, SecretKind::S3SecretAccessKey, value).await;
    assert_eq!(status, 200, "{body}");
}

async fn put_secret_raw(net: &S3Channel, kind: SecretKind, value: &str) -> (u16, String) {
    let token = net
        .alice
        .dev_token(&email("alice@example.org"))
        .await
        .unwrap()
        .token;
    let url = net
        .hub
        .public_url()
        .join(&format!("/api/v1/channels/{}/secrets/{kind}", net.channel))
        .unwrap();
    let response = net
        .http
        .put(url)
        .bearer_auth(token)
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn bad_settings_and_missing_or_foreign_secrets_are_refused_at_create(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let config = json!({
        "endpoint": "http://127.0.0.1:9", "region": "us-east-1", "bucket": BUCKET,
        "pathStyle": true, "accessKeyId": ACCESS_KEY, "allowHttp": true,
    });

    let check = |request: CreateChannelRequest, needle: &'static str| {
        let alice = &alice;
        async move {
            let error = alice.create_channel(&request).await.unwrap_err();
            assert_eq!(error.code(), Some(ErrorCode::ValidationFailed), "{error}");
            assert!(error.to_string().contains(needle), "{needle}: {error}");
            assert!(!error.to_string().contains(SECRET_KEY));
        }
    };
    let name = channel_name("lab.refused");

    let mut typo = config.clone();
    typo["pathstyle"] = json!(true);
    check(
        s3_channel_request(&name, typo, ReadMode::Presigned, SECRET_KEY),
        "pathstyle",
    )
    .await;
    let mut remote_http = config.clone();
    remote_http["endpoint"] = json!("http://minio.example.org:9000");
    check(
        s3_channel_request(&name, remote_http, ReadMode::Presigned, SECRET_KEY),
        "non-loopback",
    )
    .await;
    let mut no_secret = s3_channel_request(&name, config.clone(), ReadMode::Presigned, SECRET_KEY);
    no_secret.secrets.clear();
    check(no_secret, "secrets.s3SecretAccessKey").await;
    let mut foreign = s3_channel_request(&name, config.clone(), ReadMode::Presigned, SECRET_KEY);
    foreign.secrets.insert(
        SecretKind::GcsServiceAccount,
        SecretValue::new("{\"type\": \"service_account\"}"),
    );
    check(foreign, "gcsServiceAccount").await;
    check(
        s3_channel_request(&name, config.clone(), ReadMode::Public, SECRET_KEY),
        "publicBaseUrl",
    )
    .await;

    // Nothing of the refused attempts was stored: the name is still free.
    alice
        .create_channel(&s3_channel_request(
            &name,
            config,
            ReadMode::Presigned,
            SECRET_KEY,
        ))
        .await?;
    hub.shutdown().await?;
    Ok(())
}

async fn public_read_channels_get_a_read_base_instead_of_urls(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let net = S3Channel::start_with(&env, "lab.s3.public", ReadMode::Public, |config| {
        config["publicBaseUrl"] = json!("https://cdn.example.org/lab-bucket/");
    })
    .await;

    let config = net.requester.node_config(None).await?.config.unwrap();
    let bucket = &config.memberships[0].bucket;
    assert_eq!(bucket.backend, "s3");
    assert_eq!(bucket.read_mode, ReadMode::Public);
    assert_eq!(
        bucket.read_base.as_deref(),
        Some("https://cdn.example.org/lab-bucket/kachery")
    );

    let key = BucketKey::blob(&net.channel, &Sha1Hash::of(b"x"));
    let error = net
        .requester
        .download_urls(&net.channel, vec![key])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    assert!(error.to_string().contains("readBase"), "{error}");

    // Uploads are still presigned.
    let bytes = data(10, 7);
    assert_eq!(
        net.send(&net.upload_url(&bytes).await, bytes).await.0,
        StatusCode::OK
    );
    net.hub.shutdown().await?;
    Ok(())
}

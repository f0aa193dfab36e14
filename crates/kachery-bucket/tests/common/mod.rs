//! Test harness: a real embedded bucket in a tempdir, served by axum on 127.0.0.1:0 and
//! driven with reqwest exactly as a node would use its presigned requests.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kachery_bucket::{BucketBackend, EmbeddedBucket, EmbeddedBucketOptions, ReadMethod};
use kachery_protocol::api_error::{ErrorBody, ErrorCode};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use kachery_protocol::{ChannelName, NodeId, Sha1Hash};

pub const MAC_KEY: [u8; 32] = [9; 32];

pub struct TestBucket {
    pub bucket: Arc<EmbeddedBucket>,
    pub root: PathBuf,
    pub base_url: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestBucket {
    pub async fn start() -> Self {
        Self::start_with(EmbeddedBucketOptions::default()).await
    }

    pub async fn start_with(options: EmbeddedBucketOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bucket");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://{addr}");

        let bucket =
            EmbeddedBucket::open(root.clone(), MAC_KEY, format!("{base_url}/bucket"), options)
                .await
                .unwrap();
        let app = bucket.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        Self {
            bucket,
            root,
            base_url,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Sends a presigned request with exactly its headers and the given body.
    pub async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
        let mut builder = self.client.request(method, &request.url).body(body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder.send().await.unwrap()
    }

    /// Sends a PUT to `url` with `body`, letting reqwest set Content-Length from the body.
    pub async fn put_raw(&self, url: &str, body: Vec<u8>) -> reqwest::Response {
        self.client.put(url).body(body).send().await.unwrap()
    }

    pub fn presign_put(&self, key: &BucketKey, size: u64) -> PresignedRequest {
        self.bucket.presign_put(key, size, in_15_minutes()).unwrap()
    }

    pub fn presign_read(&self, key: &BucketKey, method: ReadMethod) -> PresignedRequest {
        self.bucket
            .presign_get(key, method, in_15_minutes())
            .unwrap()
    }

    /// Uploads `data` under `key` through a fresh presigned URL and expects 200.
    pub async fn upload(&self, key: &BucketKey, data: &[u8]) {
        let request = self.presign_put(key, data.len() as u64);
        let response = self.send(&request, data.to_vec()).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    pub fn is_visible(&self, key: &BucketKey) -> bool {
        self.bucket.object_path(key).exists()
    }

    pub fn tmp_entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.join("tmp"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect()
    }

    /// Asserts a refused upload: the status and code, nothing visible, nothing left in tmp/.
    pub async fn assert_refused(
        &self,
        response: reqwest::Response,
        status: u16,
        code: ErrorCode,
        key: &BucketKey,
    ) {
        assert_eq!(response.status(), status);
        let body: ErrorBody = response.json().await.unwrap();
        assert_eq!(body.error.code, code, "{}", body.error.message);
        assert!(!self.is_visible(key), "{key} must not become visible");
        assert_eq!(self.tmp_entries(), Vec::<PathBuf>::new());
    }
}

pub fn channel() -> ChannelName {
    ChannelName::parse("lab.one").unwrap()
}

pub fn blob_key(data: &[u8]) -> BucketKey {
    BucketKey::blob(&channel(), &Sha1Hash::of(data))
}

pub fn segment_key(start: u64) -> BucketKey {
    let feed_id = NodeId::parse(&"c".repeat(64)).unwrap();
    BucketKey::feed_segment(
        &channel(),
        &feed_id,
        &Sha1Hash::of(b"main"),
        start,
        start + 10,
    )
}

pub fn head_key() -> BucketKey {
    let feed_id = NodeId::parse(&"c".repeat(64)).unwrap();
    BucketKey::feed_head(&channel(), &feed_id, &Sha1Hash::of(b"main"))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn in_15_minutes() -> i64 {
    now_ms() + 15 * 60 * 1000
}

/// `url` with its query moved onto the path of `other`.
pub fn with_path_of(url: &str, base_url: &str, other: &BucketKey) -> String {
    let query = url.split_once('?').unwrap().1;
    format!("{base_url}/bucket/{other}?{query}")
}

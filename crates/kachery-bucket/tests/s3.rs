//! The S3 backend against a real, signature-checking S3 server: s3s-fs, run in-process on
//! 127.0.0.1:0 with its own access key. Every refusal asserted here comes from the
//! server verifying SigV4, not from our code (moto and fake-gcs-server accept tampered
//! signatures, so they could not show this).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use kachery_bucket::{
    BucketBackend, BucketError, ReadMethod, S3Bucket, S3BucketConfig, S3SecretKey,
};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use reqwest::StatusCode;
use url::Url;

const ACCESS_KEY: &str = "kachery-test-access";
const SECRET_KEY: &str = "kachery-test-secret-0123456789abcdef";
const BUCKET: &str = "kachery-test";

/// An s3s-fs server over a tempdir plus an [`S3Bucket`] pointing at it.
struct TestStore {
    bucket: Arc<S3Bucket>,
    /// Directory holding the bucket's objects (s3s-fs maps a bucket to a directory).
    bucket_dir: PathBuf,
    endpoint: Url,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestStore {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(edit: impl FnOnce(&mut S3BucketConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bucket_dir = dir.path().join(BUCKET);
        std::fs::create_dir(&bucket_dir).unwrap();
        let endpoint = spawn_s3s_fs(dir.path().to_owned()).await;

        let mut config = S3BucketConfig::new("us-east-1", BUCKET, ACCESS_KEY);
        config.endpoint = Some(endpoint.clone());
        config.path_style = true;
        config.allow_http = true;
        edit(&mut config);
        let bucket = S3Bucket::new(config, S3SecretKey::new(SECRET_KEY)).unwrap();

        Self {
            bucket,
            bucket_dir,
            endpoint,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Sends a presigned request as a node does: exactly its headers, then `body`.
    async fn send(&self, request: &PresignedRequest, body: Vec<u8>) -> reqwest::Response {
        self.send_edited(request, body, |_| {}).await
    }

    /// Like [`send`](Self::send) after `edit` changed the headers. Without a
    /// `content-length` entry reqwest sends the body's true length.
    async fn send_edited(
        &self,
        request: &PresignedRequest,
        body: Vec<u8>,
        edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) -> reqwest::Response {
        let mut headers = request.headers.clone();
        edit(&mut headers);
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        if request.method != "GET" && request.method != "HEAD" {
            builder = builder.body(body);
        }
        builder.send().await.unwrap()
    }

    fn presign_put(&self, key: &BucketKey, size: usize) -> PresignedRequest {
        self.bucket
            .presign_put(key, size as u64, in_15_minutes())
            .unwrap()
    }

    fn presign_read(&self, key: &BucketKey, method: ReadMethod) -> PresignedRequest {
        self.bucket
            .presign_get(key, method, in_15_minutes())
            .unwrap()
    }

    /// Uploads through a fresh presigned PUT and expects 200.
    async fn upload(&self, key: &BucketKey, data: &[u8]) {
        let response = self
            .send(&self.presign_put(key, data.len()), data.to_vec())
            .await;
        let status = response.status();
        assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
    }

    /// Downloads through a fresh presigned GET.
    async fn download(&self, key: &BucketKey) -> (StatusCode, Vec<u8>) {
        let response = self
            .send(&self.presign_read(key, ReadMethod::Get), Vec::new())
            .await;
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }
}

/// Runs s3s-fs (as its own binary does, minus the CLI) on 127.0.0.1:0 with SigV4 auth.
async fn spawn_s3s_fs(root: PathBuf) -> Url {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let http = ConnBuilder::new(TokioExecutor::new());
                let _ = http.serve_connection(TokioIo::new(socket), service).await;
            });
        }
    });
    Url::parse(&format!("http://{addr}")).unwrap()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn in_15_minutes() -> i64 {
    now_ms() + 15 * 60 * 1000
}

fn channel() -> ChannelName {
    ChannelName::parse("lab.one").unwrap()
}

fn blob_key(data: &[u8]) -> BucketKey {
    BucketKey::blob(&channel(), &Sha1Hash::of(data))
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Replaces the `X-Amz-Signature` value by changing its last hex digit.
fn tamper_signature(url: &str) -> String {
    let mut url = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let mut value = value.into_owned();
            if name == "X-Amz-Signature" {
                let last = value.pop().unwrap();
                value.push(if last == '0' { '1' } else { '0' });
            }
            (name.into_owned(), value)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

/// Asserts the server refused with 403 and the S3 error `code` in its XML body, so a
/// refusal is shown to be for the reason the test is about.
async fn assert_refused(response: reqwest::Response, code: &str) {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains(&format!("<Code>{code}</Code>")),
        "expected {code}: {body}"
    );
}

#[tokio::test]
async fn presigned_put_then_presigned_get_round_trips() {
    let store = TestStore::start().await;
    let bytes = data(100_000, 1);
    let key = blob_key(&bytes);

    let put = store.presign_put(&key, bytes.len());
    assert_eq!(put.method, "PUT");
    assert_eq!(put.headers["content-length"], "100000");
    assert_eq!(put.headers["content-type"], "application/octet-stream");
    assert_eq!(put.headers["if-none-match"], "*");
    let signed_headers = Url::parse(&put.url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "X-Amz-SignedHeaders")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    assert_eq!(
        signed_headers,
        "content-length;content-type;host;if-none-match"
    );
    store.upload(&key, &bytes).await;

    let (status, downloaded) = store.download(&key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(downloaded, bytes);
    assert_eq!(store.bucket.get(&key, 1 << 20).await.unwrap(), Some(bytes));
}

#[tokio::test]
async fn head_reports_the_size_presigned_and_to_the_hub() {
    let store = TestStore::start().await;
    let bytes = data(1234, 2);
    let key = blob_key(&bytes);
    assert_eq!(store.bucket.head(&key).await.unwrap(), None);
    store.upload(&key, &bytes).await;

    let head = store.presign_read(&key, ReadMethod::Head);
    assert_eq!(head.method, "HEAD");
    assert!(head.headers.is_empty());
    let response = store.send(&head, Vec::new()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "1234");
    assert_eq!(store.bucket.head(&key).await.unwrap(), Some(1234));
}

#[tokio::test]
async fn server_refuses_a_body_one_byte_longer_or_shorter_than_signed() {
    let store = TestStore::start().await;
    let bytes = data(5000, 3);
    let key = blob_key(&bytes);
    let put = store.presign_put(&key, bytes.len());

    // The node sends the true length of what it sends; it no longer matches the signature.
    for wrong_size in [bytes.len() + 1, bytes.len() - 1] {
        let response = store
            .send_edited(&put, data(wrong_size, 3), |headers| {
                headers.remove("content-length");
            })
            .await;
        assert_refused(response, "SignatureDoesNotMatch").await;
    }
    assert_eq!(store.bucket.head(&key).await.unwrap(), None);

    // The same URL with the signed size still works: the refusals were about the size.
    assert_eq!(store.send(&put, bytes).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn server_refuses_a_tampered_signature() {
    let store = TestStore::start().await;
    let bytes = data(10, 4);
    let key = blob_key(&bytes);

    let mut put = store.presign_put(&key, bytes.len());
    put.url = tamper_signature(&put.url);
    assert_refused(
        store.send(&put, bytes.clone()).await,
        "SignatureDoesNotMatch",
    )
    .await;

    store.upload(&key, &bytes).await;
    let mut get = store.presign_read(&key, ReadMethod::Get);
    get.url = tamper_signature(&get.url);
    assert_refused(store.send(&get, Vec::new()).await, "SignatureDoesNotMatch").await;
}

#[tokio::test]
async fn server_refuses_the_url_for_another_key_or_method() {
    let store = TestStore::start().await;
    let bytes = data(64, 5);
    let key = blob_key(&bytes);
    let other_key = blob_key(b"something else");
    let put = store.presign_put(&key, bytes.len());

    let mut moved = put.clone();
    moved.url = put.url.replace(key.as_str(), other_key.as_str());
    assert_ne!(moved.url, put.url);
    assert_refused(
        store.send(&moved, bytes.clone()).await,
        "SignatureDoesNotMatch",
    )
    .await;
    assert_eq!(store.bucket.head(&other_key).await.unwrap(), None);

    // A read URL does not authorize a write of the same key.
    let mut get_as_put = store.presign_read(&key, ReadMethod::Get);
    get_as_put.method = "PUT".to_owned();
    get_as_put.headers = put.headers.clone();
    assert_refused(
        store.send(&get_as_put, bytes).await,
        "SignatureDoesNotMatch",
    )
    .await;
    assert_eq!(store.bucket.head(&key).await.unwrap(), None);
}

#[tokio::test]
async fn server_refuses_other_content_types_and_dropped_create_only_headers() {
    let store = TestStore::start().await;
    let bytes = data(300, 6);
    let key = blob_key(&bytes);
    let put = store.presign_put(&key, bytes.len());

    let response = store
        .send_edited(&put, bytes.clone(), |headers| {
            headers.insert("content-type".to_owned(), "text/html".to_owned());
        })
        .await;
    assert_refused(response, "SignatureDoesNotMatch").await;

    // Dropping If-None-Match (to overwrite an existing blob) breaks the signature too.
    let response = store
        .send_edited(&put, bytes, |headers| {
            headers.remove("if-none-match");
        })
        .await;
    assert_refused(response, "SignatureDoesNotMatch").await;
}

#[tokio::test]
async fn server_refuses_an_expired_url() {
    let store = TestStore::start().await;
    let bytes = data(10, 7);
    let key = blob_key(&bytes);

    // An expiry in the past is signed as a URL that ended then (X-Amz-Date in the past).
    let asked = now_ms() - 5_000;
    let put = store.bucket.presign_put(&key, 10, asked).unwrap();
    assert!(put.expires_at <= asked);
    assert_refused(store.send(&put, bytes.clone()).await, "AccessDenied").await;

    store.upload(&key, &bytes).await;
    let get = store
        .bucket
        .presign_get(&key, ReadMethod::Get, asked)
        .unwrap();
    assert_refused(store.send(&get, Vec::new()).await, "AccessDenied").await;

    // A URL valid for one more second works now and is refused once that second is over.
    let get = store
        .bucket
        .presign_get(&key, ReadMethod::Get, now_ms() + 1_500)
        .unwrap();
    assert_eq!(store.send(&get, Vec::new()).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2_600)).await;
    assert_refused(store.send(&get, Vec::new()).await, "AccessDenied").await;
}

#[tokio::test]
async fn second_create_only_put_gets_412_and_keeps_the_first_object() {
    let store = TestStore::start().await;
    let bytes = data(2000, 8);
    let key = blob_key(&bytes);
    store.upload(&key, &bytes).await;

    // Same size, other bytes: a poisoning attempt on an existing blob.
    let put = store.presign_put(&key, bytes.len());
    let response = store.send(&put, data(2000, 9)).await;
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("<Code>PreconditionFailed</Code>")
    );
    assert_eq!(store.download(&key).await.1, bytes);
}

#[tokio::test]
async fn replaced_keys_are_signed_without_if_none_match_and_overwrite() {
    let store = TestStore::start().await;
    let feed_id = NodeId::parse(&"c".repeat(64)).unwrap();
    let key = BucketKey::feed_head(&channel(), &feed_id, &Sha1Hash::of(b"subfeed"));

    let put = store.presign_put(&key, 5);
    assert!(!put.headers.contains_key("if-none-match"));
    store.upload(&key, b"head1").await;
    store.upload(&key, b"head2").await;
    assert_eq!(store.download(&key).await.1, b"head2");
}

#[tokio::test]
async fn create_only_header_can_be_turned_off() {
    let store = TestStore::start_with(|config| config.create_only_header = false).await;
    let bytes = data(10, 10);
    let key = blob_key(&bytes);

    let put = store.presign_put(&key, bytes.len());
    assert!(!put.headers.contains_key("if-none-match"));
    store.upload(&key, &bytes).await;
    store.upload(&key, &bytes).await;
}

#[tokio::test]
async fn store_accepts_wrong_bytes_under_a_blob_key_and_the_reader_sees_the_mismatch() {
    let store = TestStore::start().await;
    let honest = data(4096, 11);
    let key = blob_key(&honest);
    let junk = data(4096, 12);

    // S3 cannot check content at write time: a holder of the URL stores junk of the
    // right size under the blob's name.
    store.upload(&key, &junk).await;

    let stored = store.bucket.get(&key, 1 << 20).await.unwrap().unwrap();
    assert_eq!(stored, junk);
    assert_ne!(Sha1Hash::of(&stored), Sha1Hash::of(&honest));

    // The hub deletes the corrupt object (SPEC §7.5) and the honest upload gets in.
    assert!(store.bucket.delete(&key).await.unwrap());
    store.upload(&key, &honest).await;
    assert_eq!(store.download(&key).await.1, honest);
}

#[tokio::test]
async fn delete_removes_the_object_and_reports_missing_ones() {
    let store = TestStore::start().await;
    let bytes = data(77, 13);
    let key = blob_key(&bytes);
    assert!(!store.bucket.delete(&key).await.unwrap());

    store.upload(&key, &bytes).await;
    assert!(store.bucket.delete(&key).await.unwrap());
    assert_eq!(store.bucket.head(&key).await.unwrap(), None);
    assert_eq!(store.bucket.get(&key, 1000).await.unwrap(), None);
    assert_eq!(store.download(&key).await.0, StatusCode::NOT_FOUND);
    assert!(!store.bucket.delete(&key).await.unwrap());
}

#[tokio::test]
async fn get_refuses_objects_larger_than_asked() {
    let store = TestStore::start().await;
    let bytes = data(1001, 14);
    let key = blob_key(&bytes);
    store.upload(&key, &bytes).await;

    let error = store.bucket.get(&key, 1000).await.unwrap_err();
    assert!(
        matches!(
            error,
            BucketError::ObjectTooLarge {
                size: 1001,
                max_bytes: 1000,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.bucket.get(&key, 1001).await.unwrap(), Some(bytes));
}

#[tokio::test]
async fn prefix_is_prepended_to_every_key() {
    let store = TestStore::start_with(|config| {
        config.prefix = Some("team/kachery/".to_owned());
        config.public_base_url = Some(Url::parse("https://cdn.example.org/data/").unwrap());
    })
    .await;
    let bytes = data(50, 15);
    let key = blob_key(&bytes);
    store.upload(&key, &bytes).await;

    let object_key = format!("team/kachery/{key}");
    assert_eq!(store.bucket.object_key(&key), object_key);
    let on_disk = store.bucket_dir.join(&object_key);
    assert_eq!(std::fs::read(on_disk).unwrap(), bytes);
    assert!(!store.bucket_dir.join(key.as_str()).exists());

    let get = store.presign_read(&key, ReadMethod::Get);
    let expected_path = format!("/{BUCKET}/{object_key}");
    assert_eq!(Url::parse(&get.url).unwrap().path(), expected_path);
    assert_eq!(store.download(&key).await.1, bytes);
    assert_eq!(store.bucket.head(&key).await.unwrap(), Some(50));
    assert_eq!(
        store.bucket.public_url(&key).unwrap(),
        format!("https://cdn.example.org/data/{object_key}")
    );
}

#[tokio::test]
async fn no_public_url_without_a_public_base() {
    let store = TestStore::start().await;
    assert_eq!(store.bucket.public_url(&blob_key(b"x")), None);
}

#[tokio::test]
async fn hub_requests_with_a_wrong_secret_fail_instead_of_reading_as_missing() {
    let good = TestStore::start().await;
    let mut config = S3BucketConfig::new("us-east-1", BUCKET, ACCESS_KEY);
    config.endpoint = Some(good.endpoint.clone());
    config.path_style = true;
    config.allow_http = true;
    let bad = S3Bucket::new(config, S3SecretKey::new("not-the-secret")).unwrap();

    let error = bad.head(&blob_key(b"x")).await.unwrap_err();
    assert!(matches!(error, BucketError::Store { .. }), "{error:?}");
    let rendered = format!("{error:?} {error}");
    assert!(!rendered.contains("not-the-secret"), "{rendered}");
    assert!(!format!("{bad:?}").contains("not-the-secret"));
}

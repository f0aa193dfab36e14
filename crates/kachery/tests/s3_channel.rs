//! A channel on an S3 bucket, end to end: a real hub and two node daemons (processes of
//! the real binary) move files through a signature-checking S3 server (s3s-fs, run in
//! this test process on 127.0.0.1:0). The hub presigns with the channel's own secret;
//! the nodes see only URLs.

mod common;

use std::path::{Path, PathBuf};

use common::{kachery, network_with, sha1sum, write_random_file};
use kachery_bucket::s3_test_server::S3TestServer;

const BUCKET: &str = "e2e-bucket";
const ACCESS_KEY: &str = "kachery-e2e-access";
const SECRET_KEY: &str = "kachery-e2e-secret-0123456789abcdef";

/// The S3 server runs on its own runtime while the test drives processes synchronously.
struct S3Store {
    server: S3TestServer,
    _runtime: tokio::runtime::Runtime,
}

impl S3Store {
    fn start(root: PathBuf) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the s3 server");
        let server = runtime
            .block_on(S3TestServer::spawn(
                root,
                "127.0.0.1:0".parse().unwrap(),
                &[BUCKET],
                ACCESS_KEY,
                SECRET_KEY,
            ))
            .expect("s3s-fs starts");
        Self {
            server,
            _runtime: runtime,
        }
    }

    /// Writes the settings and secret files for `kachery channel create` into `dir`.
    fn channel_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let config = dir.join("bucket.json");
        let settings = serde_json::json!({
            "endpoint": self.server.endpoint.as_str(),
            "region": "us-east-1",
            "bucket": BUCKET,
            "prefix": "kachery",
            "pathStyle": true,
            "accessKeyId": ACCESS_KEY,
            "allowHttp": true,
        });
        std::fs::write(&config, settings.to_string()).unwrap();
        let secret = dir.join("s3-secret");
        std::fs::write(&secret, format!("{SECRET_KEY}\n")).unwrap();
        (config, secret)
    }

    /// The file s3s-fs keeps for a blob of `channel`.
    fn blob_path(&self, channel: &str, sha1: &str) -> PathBuf {
        self.server
            .root
            .join(BUCKET)
            .join("kachery")
            .join(channel)
            .join("sha1")
            .join(&sha1[0..2])
            .join(&sha1[2..4])
            .join(&sha1[4..6])
            .join(sha1)
    }
}

fn s3_network() -> (S3Store, common::Network) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = S3Store::start(dir.path().join("s3"));
    let (config, secret) = store.channel_files(dir.path());
    let args = [
        "--bucket",
        "s3",
        "--bucket-config",
        config.to_str().unwrap(),
        "--bucket-secret-file",
        secret.to_str().unwrap(),
    ];
    let net = network_with(dir, &args);
    (store, net)
}

#[test]
fn files_travel_through_the_s3_bucket_and_a_corrupt_copy_is_replaced() {
    let (store, mut net) = s3_network();

    // A two-chunk file: manifest and both chunks go through S3, none through the hub.
    let big = net.dir.path().join("big.bin");
    write_random_file(&big, 25_000_000, 31);
    let uri = net
        .a
        .run(&["store", big.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let copy = net.dir.path().join("big-copy.bin");
    net.b
        .run(&["load", &uri, "-o", copy.to_str().unwrap()])
        .ok();
    assert_eq!(sha1sum(&copy), sha1sum(&big));
    let manifest_sha1 = uri.split("manifest=").nth(1).expect("a chunked uri");
    assert!(
        store.blob_path(&net.channel, manifest_sha1).exists(),
        "manifest not in s3"
    );
    assert!(
        !net.hub.data_dir.join("bucket").join(&net.channel).exists(),
        "the embedded bucket was used"
    );

    // Junk of the right size replaces a blob in the store (S3 cannot check content).
    let small = net.dir.path().join("small.txt");
    std::fs::write(&small, b"the honest bytes of a small file").unwrap();
    let small_uri = net
        .a
        .run(&["store", small.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned();
    net.b.run(&["load", &small_uri]).ok();
    let sha1 = sha1sum(&small);
    let object = store.blob_path(&net.channel, &sha1);
    std::fs::write(&object, b"the forged bytes of a small file").unwrap();

    // B, without its copy, finds the bad object, reports it, and gets a good copy from A;
    // the hub deleted the junk, so A's create-only upload gets in.
    std::fs::remove_dir_all(net.b.home.join("store").join("sha1")).unwrap();
    let again = net.dir.path().join("small-again.txt");
    net.b
        .run(&["load", &small_uri, "-o", again.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&small).unwrap()
    );
    assert_eq!(
        std::fs::read(&object).unwrap(),
        std::fs::read(&small).unwrap()
    );
    assert!(
        net.b.process.log_text().contains("failed verification"),
        "the reader did not notice: {}",
        net.b.process.log_text()
    );

    // With A gone and the junk back, B fails with an integrity error, storing nothing.
    std::fs::write(&object, b"the forged bytes of a small file").unwrap();
    net.a.process.terminate();
    std::fs::remove_dir_all(net.b.home.join("store").join("sha1")).unwrap();
    let run = net.b.run(&["load", &small_uri]).fails_with(5);
    assert!(run.stderr.contains(&sha1), "{}", run.stderr);
}

#[test]
fn channel_create_refuses_unusable_bucket_settings_with_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let hub = common::start_hub(dir.path());
    let home = dir.path().join("alice");
    std::fs::create_dir_all(&home).unwrap();
    kachery(
        &home,
        &["login", "--hub", &hub.url, "--dev-email", common::ALICE],
    )
    .ok();

    // Settings without an access key id: refused by the hub, naming the field.
    let config = dir.path().join("bucket.json");
    std::fs::write(
        &config,
        r#"{"endpoint": "http://127.0.0.1:9", "region": "us-east-1", "bucket": "abc",
            "pathStyle": true, "allowHttp": true}"#,
    )
    .unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET_KEY).unwrap();
    let run = kachery(
        &home,
        &[
            "channel",
            "create",
            "lab.bad",
            "--bucket",
            "s3",
            "--bucket-config",
            config.to_str().unwrap(),
            "--bucket-secret-file",
            secret.to_str().unwrap(),
        ],
    )
    .fails_with(2);
    assert!(run.stderr.contains("accessKeyId"), "{}", run.stderr);
    assert!(!run.stderr.contains(SECRET_KEY));

    // No secret file: refused before anything is sent.
    let run = kachery(
        &home,
        &[
            "channel",
            "create",
            "lab.bad",
            "--bucket",
            "s3",
            "--bucket-config",
            config.to_str().unwrap(),
        ],
    )
    .fails_with(2);
    assert!(
        run.stderr.contains("--bucket-secret-file"),
        "{}",
        run.stderr
    );
}

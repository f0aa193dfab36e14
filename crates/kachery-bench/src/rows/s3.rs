//! The S3 variant of rows 2 and 3: the channels' bucket is a signature-checking S3 server
//! (s3s-fs, `kachery_bucket::s3_test_server`, the one the tests use) on loopback instead
//! of the hub's embedded bucket. Nodes and curl PUT and GET straight to it with URLs the
//! hub presigned (SigV4), so the hub only signs.
//!
//! The server runs in this process on a runtime of its own, so the benchmark's own work
//! never starves it; its CPU is therefore not in the kachery CPU column.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kachery_bucket::s3_test_server::S3TestServer;
use kachery_protocol::ChannelName;

const BUCKET: &str = "kachery-bench";
const PREFIX: &str = "kachery";
const ACCESS_KEY: &str = "bench-access-key";
const SECRET_KEY: &str = "bench-secret-key-0123456789";

/// A running s3s-fs server with one bucket.
pub struct S3Bucket {
    server: S3TestServer,
    /// Taken in `drop`, after the server has aborted its task on it.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for S3Bucket {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller's thread must not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl S3Bucket {
    /// Serves a directory under `work` on a free loopback port.
    pub fn start(work: &Path) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("s3s-fs")
            .enable_all()
            .build()
            .context("failed to start the S3 server's runtime")?;
        let root = work.join("s3");
        std::fs::create_dir_all(&root)?;
        let addr = "127.0.0.1:0".parse()?;
        let spawn = S3TestServer::spawn(root, addr, &[BUCKET], ACCESS_KEY, SECRET_KEY);
        // block_on from a plain thread: the caller may itself be running on a runtime.
        let server = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(spawn))
                .join()
                .expect("starting s3s-fs does not panic")
        })
        .context("failed to start s3s-fs")?;
        Ok(Self {
            server,
            runtime: Some(runtime),
        })
    }

    /// The createChannel request of a channel on this bucket (embedded broker).
    pub fn channel_request(&self, channel: &ChannelName) -> serde_json::Value {
        serde_json::json!({
            "name": channel,
            "bucket": {
                "backend": "s3",
                "config": {
                    "endpoint": self.server.endpoint.as_str(),
                    "region": "us-east-1",
                    "bucket": BUCKET,
                    "prefix": PREFIX,
                    "pathStyle": true,
                    "accessKeyId": ACCESS_KEY,
                    "allowHttp": true,
                },
            },
            "secrets": { "s3SecretAccessKey": SECRET_KEY },
        })
    }

    /// Where s3s-fs keeps the objects of `channel`.
    pub fn channel_dir(&self, channel: &ChannelName) -> PathBuf {
        self.server
            .root
            .join(BUCKET)
            .join(PREFIX)
            .join(channel.as_str())
    }
}

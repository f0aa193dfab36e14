//! A signature-checking S3 server on loopback: s3s-fs over a directory, with one access
//! key (cargo feature `s3-test-server`). Tests of the hub and of the real binary run it
//! in-process; `examples/s3_test_server.rs` runs it for the engines demo. Not for data
//! anyone cares about: one key, plain HTTP, no TLS.
//!
//! s3s-fs checks SigV4 signatures, so a tampered URL or a body of the wrong size is
//! refused by the server itself (moto and fake-gcs-server accept such requests).

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::task::JoinHandle;
use url::Url;

/// A running server; it stops when this is dropped.
pub struct S3TestServer {
    /// `http://127.0.0.1:<port>`: the endpoint for an `S3BucketConfig` (path style).
    pub endpoint: Url,
    /// Directory whose subdirectories are the buckets.
    pub root: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3TestServerError {
    #[error("failed to open s3s-fs at {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to create bucket directory {path}")]
    Bucket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl S3TestServer {
    /// Serves `root` on `addr` (port 0 picks a free port) and creates each of `buckets`
    /// under it. Requests must be signed with `access_key` and `secret_key`.
    pub async fn spawn(
        root: PathBuf,
        addr: SocketAddr,
        buckets: &[&str],
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, S3TestServerError> {
        for bucket in buckets {
            let path = root.join(bucket);
            std::fs::create_dir_all(&path)
                .map_err(|source| S3TestServerError::Bucket { path, source })?;
        }
        let fs = s3s_fs::FileSystem::new(&root).map_err(|error| S3TestServerError::Root {
            path: root.clone(),
            source: format!("{error:?}").into(),
        })?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();

        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| S3TestServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| S3TestServerError::Bind { addr, source })?;
        let task = tokio::spawn(async move {
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
        let endpoint = Url::parse(&format!("http://{local_addr}")).expect("an address is a URL");
        Ok(Self {
            endpoint,
            root,
            task,
        })
    }
}

//! The embedded bucket: objects on the hub's disk, served by the hub (SPEC §7.4).
//!
//! Layout under `root` (`<data_dir>/bucket`):
//!
//! ```text
//! objects/<key>   committed objects; a key's path is its bucket key, e.g.
//!                 objects/lab.one/sha1/a9/99/3e/a9993e36…
//! tmp/<random>    uploads in flight; emptied at open and on every failed upload
//! ```
//!
//! Nodes reach it only through presigned URLs `<public_base>/<key>?exp=..&size=..&sig=..`
//! (see [`signature`](self::signature) for what the MAC covers). An upload streams to
//! `tmp/`, counting and hashing as it goes, and becomes visible in one step: a hard link
//! for create-only keys (atomic "create if absent", so a second upload of a blob is
//! discarded and still answered 200), a rename for replaced keys. Readers therefore never
//! see a partial or unverified blob. Usage is tracked per channel against
//! [`EmbeddedBucketOptions::quota_bytes_per_channel`] ([`quota`](self::quota)).
//!
//! Main types: [`EmbeddedBucket`] (implements [`BucketBackend`]) and its axum
//! [`router`](EmbeddedBucket::router) (in `router`, `upload`, `download`).

mod download;
mod quota;
mod router;
mod signature;
mod staging;
mod upload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use tokio::io::AsyncReadExt;

use crate::backend::{BucketBackend, BucketError, ReadMethod};
use quota::QuotaLedger;
use signature::{SignedMethod, UrlSigner};

/// Default per-channel quota: 10 GiB.
pub const DEFAULT_QUOTA_BYTES_PER_CHANNEL: u64 = 10 * (1 << 30);

/// Knobs of the embedded bucket set by the hub.
#[derive(Debug, Clone)]
pub struct EmbeddedBucketOptions {
    /// Most bytes one channel may store, counting uploads in flight. Default 10 GiB.
    pub quota_bytes_per_channel: u64,
    /// Serve GET and HEAD without a signature (`readMode = "public"`, SPEC §7.3).
    /// Default false: reads need a presigned URL.
    pub public_read: bool,
}

impl Default for EmbeddedBucketOptions {
    fn default() -> Self {
        Self {
            quota_bytes_per_channel: DEFAULT_QUOTA_BYTES_PER_CHANNEL,
            public_read: false,
        }
    }
}

/// A bucket kept in a directory of the hub and served by its HTTP server.
#[derive(Debug)]
pub struct EmbeddedBucket {
    objects_dir: PathBuf,
    tmp_dir: PathBuf,
    public_base: String,
    signer: UrlSigner,
    options: EmbeddedBucketOptions,
    quota: Arc<QuotaLedger>,
}

impl EmbeddedBucket {
    /// Opens (creating if needed) the bucket at `root`, empties `tmp/` and measures each
    /// channel's usage. `mac_key` is derived by the hub from its master key;
    /// `public_base` is `"<hub public_url>/bucket"`. Fails on a filesystem error or a
    /// public base that is not an http(s) URL without query. Costs one walk of `objects/`.
    pub async fn open(
        root: PathBuf,
        mac_key: [u8; 32],
        public_base: String,
        options: EmbeddedBucketOptions,
    ) -> Result<Arc<Self>, BucketError> {
        let public_base = validated_public_base(public_base)?;
        let objects_dir = root.join("objects");
        let tmp_dir = root.join("tmp");

        let quota_limit = options.quota_bytes_per_channel;
        let (objects, tmp) = (objects_dir.clone(), tmp_dir.clone());
        let quota = tokio::task::spawn_blocking(move || {
            prepare_dirs(&objects, &tmp)?;
            QuotaLedger::scan(&objects, quota_limit)
        })
        .await
        .expect("bucket scan task does not panic")?;

        tracing::info!(root = %root.display(), public_read = options.public_read, "embedded bucket open");
        Ok(Arc::new(Self {
            objects_dir,
            tmp_dir,
            public_base,
            signer: UrlSigner::new(mac_key),
            options,
            quota: Arc::new(quota),
        }))
    }

    /// The filesystem path of a key's committed object (tests plant corrupt objects there).
    pub fn object_path(&self, key: &BucketKey) -> PathBuf {
        self.objects_dir.join(key.as_str())
    }

    /// The URL of a key without credentials.
    fn unsigned_url(&self, key: &BucketKey) -> String {
        format!("{}/{}", self.public_base, key.as_str())
    }

    /// Bytes committed in `channel` (uploads in flight not counted).
    pub fn stored_bytes(&self, channel: &str) -> u64 {
        self.quota.stored(channel)
    }

    fn presigned(
        &self,
        key: &BucketKey,
        method: SignedMethod,
        size: Option<u64>,
        expires_at_ms: i64,
    ) -> PresignedRequest {
        let query = self.signer.query(method, key.as_str(), size, expires_at_ms);
        let mut headers = BTreeMap::new();
        if let Some(size) = size {
            headers.insert("content-length".to_owned(), size.to_string());
            headers.insert(
                "content-type".to_owned(),
                "application/octet-stream".to_owned(),
            );
        }
        PresignedRequest {
            key: key.clone(),
            method: method.as_str().to_owned(),
            url: format!("{}?{query}", self.unsigned_url(key)),
            headers,
            expires_at: expires_at_ms,
        }
    }
}

impl BucketBackend for EmbeddedBucket {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn presign_put(
        &self,
        key: &BucketKey,
        exact_size: u64,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        Ok(self.presigned(key, SignedMethod::Put, Some(exact_size), expires_at_ms))
    }

    fn presign_get(
        &self,
        key: &BucketKey,
        method: ReadMethod,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        let method = match method {
            ReadMethod::Get => SignedMethod::Get,
            ReadMethod::Head => SignedMethod::Head,
        };
        Ok(self.presigned(key, method, None, expires_at_ms))
    }

    fn head(&self, key: &BucketKey) -> BoxFuture<'_, Result<Option<u64>, BucketError>> {
        let path = self.object_path(key);
        async move {
            match tokio::fs::metadata(&path).await {
                Ok(metadata) => Ok(Some(metadata.len())),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(BucketError::io("stat", path, source)),
            }
        }
        .boxed()
    }

    fn get(
        &self,
        key: &BucketKey,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, BucketError>> {
        let path = self.object_path(key);
        let key = key.clone();
        async move {
            let file = match tokio::fs::File::open(&path).await {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(BucketError::io("open", path, source)),
            };
            let size = file
                .metadata()
                .await
                .map_err(|source| BucketError::io("stat", &path, source))?
                .len();
            if size > max_bytes {
                return Err(BucketError::ObjectTooLarge {
                    key,
                    size,
                    max_bytes,
                });
            }

            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.take(max_bytes)
                .read_to_end(&mut bytes)
                .await
                .map_err(|source| BucketError::io("read", &path, source))?;
            Ok(Some(bytes))
        }
        .boxed()
    }

    fn delete(&self, key: &BucketKey) -> BoxFuture<'_, Result<bool, BucketError>> {
        let path = self.object_path(key);
        let channel = channel_of(key).to_owned();
        async move {
            let size = match tokio::fs::metadata(&path).await {
                Ok(metadata) => metadata.len(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(source) => return Err(BucketError::io("stat", path, source)),
            };
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    self.quota.forget(&channel, size);
                    tracing::debug!(key = %path.display(), size, "bucket object deleted");
                    Ok(true)
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(source) => Err(BucketError::io("delete", path, source)),
            }
        }
        .boxed()
    }

    fn public_url(&self, key: &BucketKey) -> Option<String> {
        self.options.public_read.then(|| self.unsigned_url(key))
    }
}

/// The channel a validated key belongs to: its first path segment.
fn channel_of(key: &BucketKey) -> &str {
    key.as_str()
        .split('/')
        .next()
        .expect("split yields at least one item")
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

fn validated_public_base(public_base: String) -> Result<String, BucketError> {
    let trimmed = public_base.trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(BucketError::InvalidPublicBase(public_base)),
    }
}

/// Creates `objects/` and `tmp/`, removing uploads a previous run left unfinished.
fn prepare_dirs(objects_dir: &Path, tmp_dir: &Path) -> Result<(), BucketError> {
    std::fs::create_dir_all(objects_dir)
        .map_err(|source| BucketError::io("create", objects_dir, source))?;
    if tmp_dir.exists() {
        std::fs::remove_dir_all(tmp_dir)
            .map_err(|source| BucketError::io("empty", tmp_dir, source))?;
    }
    std::fs::create_dir_all(tmp_dir).map_err(|source| BucketError::io("create", tmp_dir, source))
}

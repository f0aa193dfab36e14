//! S3-compatible buckets (AWS S3, MinIO, Cloudflare R2, Garage, Ceph): SPEC §7.2.
//!
//! The channel owner supplies an [`S3BucketConfig`] and a secret access key
//! ([`S3SecretKey`]); the hub builds an [`S3Bucket`] from them and uses it in two ways:
//!
//! - **Presigning** for nodes (local, synchronous, in [`presign`](self::presign) with the
//!   `aws-sigv4` crate): SigV4 query-string URLs. An upload is a `PUT` whose signature
//!   covers the exact object key (prefix + [`BucketKey`]), `content-length: <size>`,
//!   `content-type: application/octet-stream`, the host, the expiry and, for create-only
//!   keys ([`write_rule`]) when [`S3BucketConfig::create_only_header`] is on,
//!   `if-none-match: *`. Reads are presigned `GET` and `HEAD` URLs with no extra headers.
//!   [`PresignedRequest::headers`] lists every header the node must send besides `Host`
//!   (which its HTTP client derives from the URL).
//! - **The hub's own requests** (`head`, `get`, `delete`, used to check corrupt-object
//!   reports, SPEC §7.5) go through `object_store`'s S3 client with the same credentials,
//!   with retries and typed errors. It is pointed at the same bucket URL the presigner
//!   uses, so both always address the same object.
//!
//! # What protects an object, and who enforces it
//!
//! The store checks the signature, so these hold even against a hostile node holding the
//! URL (proved against a signature-checking server in `tests/s3.rs`):
//! - the request goes to that one key with that one method: another key, method or
//!   bucket breaks the signature;
//! - an upload is exactly the signed size: a different `Content-Length` breaks the
//!   signature, and the HTTP framing makes the body match its `Content-Length`;
//! - the content type is `application/octet-stream`;
//! - the URL stops working at its expiry (15 minutes as the hub asks, SPEC §7.3);
//! - with `If-None-Match: *` signed, an existing create-only object is not overwritten:
//!   the store answers 412, which the uploader counts as success.
//!
//! Nothing at write time checks the *bytes*: S3 cannot compare content with the SHA-1 in
//! the key (SPEC §7.3). A node allowed to upload can store junk of the right size under a
//! blob's name, or pre-poison a key before the honest upload (create-only then keeps the
//! junk). Those are caught by readers, who ALWAYS verify (blobs by SHA-1 and size,
//! manifests, feeds and records by their own rules) and report the object; the hub then
//! deletes it with [`BucketBackend::delete`] so a good copy can get in (SPEC §7.5,
//! §22.3). [`BucketBackend::get`] hands back stored bytes as they are; verifying is the
//! caller's job.
//!
//! Known limits (design-time): URLs are bound to `X-Amz-Date`, so nodes and store need
//! clocks within the store's skew tolerance; temporary (STS) keys are not supported, the
//! SPEC asks for long-lived keys so they do not cap URL lifetime.

mod config;
mod presign;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};

use crate::backend::{BucketBackend, BucketError, ReadMethod, WriteRule, write_rule};
use config::ResolvedS3Config;
pub use config::{S3BucketConfig, S3SecretKey};
use presign::Presigner;

const OCTET_STREAM: &str = "application/octet-stream";

/// A channel bucket in an S3-compatible object store.
pub struct S3Bucket {
    config: ResolvedS3Config,
    presigner: Presigner,
    store: AmazonS3,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Bucket")
            .field("bucket_url", &self.config.bucket_url)
            .field("prefix", &self.config.key_prefix)
            .field("access_key_id", &self.config.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Bucket {
    /// Checks `config` and prepares the signer and client. Does no network I/O, so a
    /// wrong key or missing bucket shows only at the first request (the channel test
    /// should probe with [`BucketBackend::head`]). Fails with
    /// [`BucketError::InvalidS3Config`] naming the bad setting.
    pub fn new(config: S3BucketConfig, secret: S3SecretKey) -> Result<Arc<Self>, BucketError> {
        let resolved = ResolvedS3Config::resolve(&config)?;
        let presigner = Presigner::new(&resolved.access_key_id, &secret, &resolved.region);

        // Give object_store the full bucket URL as a "virtual-hosted" endpoint: it then
        // uses that URL verbatim, exactly the one presigned URLs are built on, whichever
        // addressing style the config asked for.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&resolved.bucket_url)
            .with_virtual_hosted_style_request(true)
            .with_bucket_name(&resolved.bucket)
            .with_region(&resolved.region)
            .with_access_key_id(&resolved.access_key_id)
            .with_secret_access_key(secret.expose())
            .with_allow_http(resolved.allow_http)
            .with_retry(retry)
            .build()
            .map_err(|error| BucketError::InvalidS3Config(error.to_string()))?;

        tracing::info!(
            bucket_url = %resolved.bucket_url,
            prefix = %resolved.key_prefix,
            create_only_header = resolved.create_only_header,
            "s3 bucket configured"
        );
        Ok(Arc::new(Self {
            config: resolved,
            presigner,
            store,
        }))
    }

    /// The object's key in the store: prefix + bucket key.
    pub fn object_key(&self, key: &BucketKey) -> String {
        format!("{}{}", self.config.key_prefix, key.as_str())
    }

    /// The object's URL without a signature. Keys and prefixes hold only unreserved URL
    /// characters (checked at config time and by `BucketKey`), so nothing needs encoding.
    fn object_url(&self, key: &BucketKey) -> String {
        format!("{}/{}", self.config.bucket_url, self.object_key(key))
    }

    fn store_path(&self, key: &BucketKey) -> Result<StorePath, BucketError> {
        StorePath::parse(self.object_key(key)).map_err(|error| BucketError::Store {
            action: "address",
            key: key.clone(),
            source: Box::new(error),
        })
    }

    fn presigned(
        &self,
        key: &BucketKey,
        method: &str,
        headers: Vec<(&'static str, String)>,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        let signed = self.presigner.presign(
            method,
            &self.object_url(key),
            &headers,
            expires_at_ms,
            SystemTime::now(),
        )?;
        Ok(PresignedRequest {
            key: key.clone(),
            method: method.to_owned(),
            url: signed.url,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect::<BTreeMap<_, _>>(),
            expires_at: signed.expires_at_ms,
        })
    }

    fn is_create_only(&self, key: &BucketKey) -> bool {
        // Keys reach us only from kachery-protocol, so they parse; an unparsable one is
        // treated as replaceable, which signs fewer conditions, never a wider key.
        match BucketKey::parse(key.as_str()) {
            Ok((_, kind)) => write_rule(&kind) == WriteRule::CreateOnly,
            Err(_) => false,
        }
    }
}

fn store_error(action: &'static str, key: &BucketKey, error: object_store::Error) -> BucketError {
    BucketError::Store {
        action,
        key: key.clone(),
        source: Box::new(error),
    }
}

impl BucketBackend for S3Bucket {
    fn kind(&self) -> &'static str {
        "s3"
    }

    /// The PUT binds key, `content-length`, `content-type` and expiry, plus
    /// `if-none-match: *` for create-only keys when the config enables it. Fails with
    /// [`BucketError::ExpiryTooFar`] beyond SigV4's 7 days.
    fn presign_put(
        &self,
        key: &BucketKey,
        exact_size: u64,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        let mut headers = vec![
            ("content-length", exact_size.to_string()),
            ("content-type", OCTET_STREAM.to_owned()),
        ];
        if self.config.create_only_header && self.is_create_only(key) {
            headers.push(("if-none-match", "*".to_owned()));
        }
        self.presigned(key, "PUT", headers, expires_at_ms)
    }

    fn presign_get(
        &self,
        key: &BucketKey,
        method: ReadMethod,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        self.presigned(key, method.as_str(), Vec::new(), expires_at_ms)
    }

    fn head(&self, key: &BucketKey) -> BoxFuture<'_, Result<Option<u64>, BucketError>> {
        let key = key.clone();
        async move {
            let path = self.store_path(&key)?;
            match self.store.head(&path).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(store_error("probe", &key, error)),
            }
        }
        .boxed()
    }

    fn get(
        &self,
        key: &BucketKey,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, BucketError>> {
        let key = key.clone();
        async move {
            let path = self.store_path(&key)?;
            let result = match self.store.get_opts(&path, Default::default()).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(store_error("read", &key, error)),
            };

            // Refuse by the announced size before reading, and keep counting while
            // reading in case the store sends more than it announced.
            let too_large = |size: u64| BucketError::ObjectTooLarge {
                key: key.clone(),
                size,
                max_bytes,
            };
            if result.meta.size > max_bytes {
                return Err(too_large(result.meta.size));
            }
            let mut bytes = Vec::with_capacity(usize::try_from(result.meta.size).unwrap_or(0));
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| store_error("read", &key, error))?;
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > max_bytes {
                    return Err(too_large(bytes.len() as u64));
                }
            }
            Ok(Some(bytes))
        }
        .boxed()
    }

    /// S3 answers a DELETE the same whether or not the object existed, so this probes
    /// first to report `false` for a missing object.
    fn delete(&self, key: &BucketKey) -> BoxFuture<'_, Result<bool, BucketError>> {
        let key = key.clone();
        async move {
            if self.head(&key).await?.is_none() {
                return Ok(false);
            }
            // FIXME: an object deleted by someone else between the probe and the DELETE is
            // still reported as deleted by us; harmless for corrupt-object cleanup.
            let path = self.store_path(&key)?;
            self.store
                .delete(&path)
                .await
                .map_err(|error| store_error("delete", &key, error))?;
            Ok(true)
        }
        .boxed()
    }

    fn public_url(&self, key: &BucketKey) -> Option<String> {
        let base = self.config.public_base.as_ref()?;
        Some(format!("{base}/{}", self.object_key(key)))
    }
}

//! Google Cloud Storage buckets: SPEC §7.2.
//!
//! The channel owner supplies a [`GcsBucketConfig`] and a service-account key file
//! ([`GcsServiceAccount`]); the hub builds a [`GcsBucket`] from them. Every request, the
//! nodes' and the hub's own, is a V4 signed URL (`GOOG4-RSA-SHA256`, [`sign`]), so one
//! signing path serves both:
//!
//! - an upload is a `PUT` whose signature covers the object path, `content-type:
//!   application/octet-stream`, `x-goog-content-length-range: N,N` (GCS refuses a body of
//!   any other size) and, for create-only keys ([`write_rule`]),
//!   `x-goog-if-generation-match: 0` (GCS refuses to overwrite, answering 412, which the
//!   uploader counts as success); reads are signed `GET` and `HEAD` URLs;
//! - the hub's `head`, `get` and `delete` (corrupt-object checks, SPEC §7.5) send signed
//!   `HEAD`, `GET` and `DELETE` requests with `reqwest`. No OAuth token exchange is
//!   needed, so the hub never calls Google's token endpoint.
//!
//! As with S3, nothing checks the bytes at write time; readers verify (see the `s3`
//! module doc for the consequences). Known limit (design-time): URLs carry
//! `X-Goog-Date`, so clocks must be roughly right.

pub(crate) mod config;
pub(crate) mod sign;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use reqwest::StatusCode;

use crate::backend::{BucketBackend, BucketError, ReadMethod, WriteRule, write_rule};
use config::ResolvedGcsConfig;
pub use config::{GCS_ENDPOINT, GcsBucketConfig, GcsServiceAccount};
use sign::{SigningRequest, V4Signer};

const OCTET_STREAM: &str = "application/octet-stream";
/// Validity of the URLs the hub signs for its own requests.
const HUB_REQUEST_TTL_SECS: u64 = 60;

/// A channel bucket in Google Cloud Storage (or an emulator).
pub struct GcsBucket {
    config: ResolvedGcsConfig,
    client_email: String,
    signer: V4Signer,
    http: reqwest::Client,
}

impl std::fmt::Debug for GcsBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsBucket")
            .field("host", &self.config.host)
            .field("bucket", &self.config.bucket)
            .field("prefix", &self.config.key_prefix)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl GcsBucket {
    /// Checks `config` and prepares the signer and the hub's HTTP client. No network
    /// I/O: a wrong key or missing bucket shows at the first request.
    pub fn new(
        config: GcsBucketConfig,
        account: GcsServiceAccount,
    ) -> Result<Arc<Self>, BucketError> {
        let resolved = ResolvedGcsConfig::resolve(&config)?;
        let client_email = account.client_email().to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| BucketError::InvalidGcsConfig(format!("http client: {error}")))?;
        tracing::info!(
            host = %resolved.host,
            bucket = %resolved.bucket,
            prefix = %resolved.key_prefix,
            "gcs bucket configured"
        );
        Ok(Arc::new(Self {
            config: resolved,
            client_email,
            signer: account.into_signer(),
            http,
        }))
    }

    /// The object's name in the bucket: prefix + bucket key.
    pub fn object_name(&self, key: &BucketKey) -> String {
        format!("{}{}", self.config.key_prefix, key.as_str())
    }

    fn sign(
        &self,
        method: &str,
        key: &BucketKey,
        headers: &[(&str, &str)],
        expires_at_ms: i64,
        now: SystemTime,
    ) -> Result<(String, i64), BucketError> {
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| BucketError::Presign("the system clock is before 1970".into()))?
            .as_secs();
        let expires_at_secs = u64::try_from(expires_at_ms.div_euclid(1000)).map_err(|_| {
            BucketError::Presign(format!("expiry {expires_at_ms} ms is before 1970").into())
        })?;
        // As for S3: an expiry less than a second away (or past) becomes a one-second URL
        // ending then, so no URL is valid later than asked.
        let (signed_at_secs, expires_in_secs) = if expires_at_secs > now_secs {
            (now_secs, expires_at_secs - now_secs)
        } else {
            (expires_at_secs.saturating_sub(1), 1)
        };
        let path = format!(
            "{}/{}/{}",
            self.config.base_path,
            self.config.bucket,
            self.object_name(key)
        );
        let url = self.signer.sign(&SigningRequest {
            method,
            scheme: &self.config.scheme,
            host: &self.config.host,
            path: &path,
            headers,
            signed_at_secs,
            expires_in_secs,
        })?;
        let expires_at =
            i64::try_from((signed_at_secs + expires_in_secs) * 1000).unwrap_or(i64::MAX);
        Ok((url, expires_at))
    }

    fn presigned(
        &self,
        key: &BucketKey,
        method: &str,
        headers: Vec<(&'static str, String)>,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        let borrowed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let (url, expires_at) =
            self.sign(method, key, &borrowed, expires_at_ms, SystemTime::now())?;
        Ok(PresignedRequest {
            key: key.clone(),
            method: method.to_owned(),
            url,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect::<BTreeMap<_, _>>(),
            expires_at,
        })
    }

    /// Sends one of the hub's own signed requests.
    async fn send(
        &self,
        action: &'static str,
        method: reqwest::Method,
        key: &BucketKey,
    ) -> Result<reqwest::Response, BucketError> {
        let expires_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|now| now.as_millis() as i64)
            .unwrap_or_default()
            + (HUB_REQUEST_TTL_SECS as i64) * 1000;
        let (url, _) = self.sign(method.as_str(), key, &[], expires_at_ms, SystemTime::now())?;
        self.http
            .request(method, url)
            .send()
            .await
            .map_err(|error| store_error(action, key, Box::new(error.without_url())))
    }

    fn is_create_only(key: &BucketKey) -> bool {
        match BucketKey::parse(key.as_str()) {
            Ok((_, kind)) => write_rule(&kind) == WriteRule::CreateOnly,
            Err(_) => false,
        }
    }
}

fn store_error(
    action: &'static str,
    key: &BucketKey,
    source: Box<dyn std::error::Error + Send + Sync>,
) -> BucketError {
    BucketError::Store {
        action,
        key: key.clone(),
        source,
    }
}

/// A refusal by the store, with its status (the body may echo the URL, so it is dropped).
fn status_error(action: &'static str, key: &BucketKey, status: StatusCode) -> BucketError {
    store_error(action, key, format!("the store answered {status}").into())
}

impl BucketBackend for GcsBucket {
    fn kind(&self) -> &'static str {
        "gcs"
    }

    /// Binds object, `content-type`, `x-goog-content-length-range: N,N`, expiry and, for
    /// create-only keys, `x-goog-if-generation-match: 0`.
    fn presign_put(
        &self,
        key: &BucketKey,
        exact_size: u64,
        expires_at_ms: i64,
    ) -> Result<PresignedRequest, BucketError> {
        let mut headers = vec![
            ("content-type", OCTET_STREAM.to_owned()),
            (
                "x-goog-content-length-range",
                format!("{exact_size},{exact_size}"),
            ),
        ];
        if Self::is_create_only(key) {
            headers.push(("x-goog-if-generation-match", "0".to_owned()));
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
            let response = self.send("probe", reqwest::Method::HEAD, &key).await?;
            match response.status() {
                StatusCode::NOT_FOUND => Ok(None),
                status if status.is_success() => Ok(Some(
                    response
                        .headers()
                        .get(reqwest::header::CONTENT_LENGTH)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse().ok())
                        .unwrap_or(0),
                )),
                status => Err(status_error("probe", &key, status)),
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
            let response = self.send("read", reqwest::Method::GET, &key).await?;
            match response.status() {
                StatusCode::NOT_FOUND => return Ok(None),
                status if !status.is_success() => return Err(status_error("read", &key, status)),
                _ => {}
            }
            let too_large = |size: u64| BucketError::ObjectTooLarge {
                key: key.clone(),
                size,
                max_bytes,
            };
            if let Some(size) = response.content_length().filter(|size| *size > max_bytes) {
                return Err(too_large(size));
            }
            let mut bytes = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|error| store_error("read", &key, Box::new(error.without_url())))?;
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > max_bytes {
                    return Err(too_large(bytes.len() as u64));
                }
            }
            Ok(Some(bytes))
        }
        .boxed()
    }

    fn delete(&self, key: &BucketKey) -> BoxFuture<'_, Result<bool, BucketError>> {
        let key = key.clone();
        async move {
            let response = self.send("delete", reqwest::Method::DELETE, &key).await?;
            match response.status() {
                StatusCode::NOT_FOUND => Ok(false),
                status if status.is_success() => Ok(true),
                status => Err(status_error("delete", &key, status)),
            }
        }
        .boxed()
    }

    fn public_url(&self, key: &BucketKey) -> Option<String> {
        let base = self.config.public_base.as_ref()?;
        Some(format!("{base}/{}", self.object_name(key)))
    }
}

//! The bucket half of the channel test: upload, read back, wrong size, overwrite, delete.
//!
//! Requests go over real HTTP to the URLs the backend presigns, with exactly the headers
//! it asks for, as a node would send them. The hub's own deletes and probes use the
//! backend directly.

use std::time::{Duration, Instant};

use kachery_bucket::{BucketBackend, ReadMethod};
use kachery_protocol::Sha1Hash;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::hub_views::TestReport;
use kachery_protocol::node_api::{PresignedRequest, ReadMode};

use super::{StepOutcome, Steps};
use crate::app::AppState;
use crate::db::ChannelRecord;
use crate::error::error_chain;
use crate::time::now_ms;

/// Size of the probe blob.
const BLOB_BYTES: usize = 1024;
/// Lifetime of the test's presigned URLs.
const URL_TTL_MS: i64 = 5 * 60 * 1000;
/// Longest wait for one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(state: &AppState, channel: &ChannelRecord) -> TestReport {
    let mut steps = Steps::default();
    let started = Instant::now();
    let bucket = match state
        .backends
        .buckets
        .bucket_for(state.db.as_ref(), state.vault.cipher(), channel)
        .await
    {
        Ok(bucket) => bucket,
        Err(error) => {
            steps.record("backend", started, StepOutcome::Failed(error_chain(&error)));
            return steps.report();
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            steps.record("backend", started, StepOutcome::Failed(error_chain(&error)));
            return steps.report();
        }
    };
    let probe = Probe {
        bucket: bucket.as_ref(),
        http: &http,
    };

    let Ok(data) = random_blob() else {
        steps.record(
            "upload",
            started,
            StepOutcome::Failed("no randomness".into()),
        );
        return steps.report();
    };
    let key = BucketKey::blob(&channel.name, &Sha1Hash::of(&data));

    let started = Instant::now();
    let uploaded = probe.upload(&key, BLOB_BYTES as u64, data.clone()).await;
    if !steps.record("upload", started, uploaded.into()) {
        return steps.report();
    }

    let started = Instant::now();
    let read_back = probe.read_back(channel.read_mode, &key, &data).await;
    steps.record("read back", started, read_back.into());

    let started = Instant::now();
    let outcome = probe.wrong_size(&channel.name).await;
    steps.record("wrong size refused", started, outcome);

    let started = Instant::now();
    let outcome = probe.overwrite(channel.read_mode, &key, &data).await;
    steps.record("create-only", started, outcome);

    let started = Instant::now();
    let deleted = probe.delete(&key).await;
    steps.record("delete", started, deleted.into());
    steps.report()
}

fn random_blob() -> Result<Vec<u8>, getrandom::Error> {
    let mut data = vec![0u8; BLOB_BYTES];
    getrandom::fill(&mut data)?;
    Ok(data)
}

struct Probe<'a> {
    bucket: &'a dyn BucketBackend,
    http: &'a reqwest::Client,
}

impl Probe<'_> {
    /// Sends a presigned request with `body`; the HTTP status, or why none came back.
    async fn send(
        &self,
        request: &PresignedRequest,
        body: Option<Vec<u8>>,
        keep_content_length: bool,
    ) -> Result<(u16, Vec<u8>), String> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("backend presigned an unknown method {}", request.method))?;
        let mut builder = self.http.request(method, &request.url);
        for (name, value) in &request.headers {
            if !keep_content_length && name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            builder = builder.header(name, value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        // The URL carries a signature: errors are shown without it.
        let response = builder
            .send()
            .await
            .map_err(|error| format!("request failed: {}", error.without_url()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("reading the answer failed: {}", error.without_url()))?;
        Ok((status, bytes.to_vec()))
    }

    fn presign_put(&self, key: &BucketKey, size: u64) -> Result<PresignedRequest, String> {
        self.bucket
            .presign_put(key, size, now_ms() + URL_TTL_MS)
            .map_err(|error| error_chain(&error))
    }

    async fn upload(&self, key: &BucketKey, size: u64, data: Vec<u8>) -> Result<(), String> {
        let request = self.presign_put(key, size)?;
        let (status, _) = self.send(&request, Some(data), true).await?;
        if !(200..300).contains(&status) {
            return Err(format!("presigned PUT answered HTTP {status}"));
        }
        Ok(())
    }

    /// The object's bytes through the channel's read mode.
    async fn read(&self, read_mode: ReadMode, key: &BucketKey) -> Result<Vec<u8>, String> {
        let request = match read_mode {
            ReadMode::Presigned => self
                .bucket
                .presign_get(key, ReadMethod::Get, now_ms() + URL_TTL_MS)
                .map_err(|error| error_chain(&error))?,
            ReadMode::Public => {
                let url = self
                    .bucket
                    .public_url(key)
                    .ok_or("the channel reads publicly but the bucket has no public URL")?;
                PresignedRequest {
                    key: key.clone(),
                    method: "GET".into(),
                    url,
                    headers: Default::default(),
                    expires_at: now_ms() + URL_TTL_MS,
                }
            }
        };
        let (status, bytes) = self.send(&request, None, true).await?;
        if status != 200 {
            return Err(format!("GET answered HTTP {status}"));
        }
        Ok(bytes)
    }

    async fn read_back(
        &self,
        read_mode: ReadMode,
        key: &BucketKey,
        data: &[u8],
    ) -> Result<(), String> {
        let bytes = self.read(read_mode, key).await?;
        if bytes != data {
            return Err(format!(
                "read {} bytes that differ from the {} uploaded",
                bytes.len(),
                data.len()
            ));
        }
        Ok(())
    }

    /// A PUT of one byte more than the URL was signed for must be refused.
    async fn wrong_size(&self, channel: &kachery_protocol::ChannelName) -> StepOutcome {
        let Ok(data) = random_blob() else {
            return StepOutcome::Failed("no randomness".into());
        };
        let key = BucketKey::blob(channel, &Sha1Hash::of(&data));
        let request = match self.presign_put(&key, BLOB_BYTES as u64 - 1) {
            Ok(request) => request,
            Err(error) => return StepOutcome::Failed(error),
        };
        match self.send(&request, Some(data), false).await {
            Ok((status, _)) if (200..300).contains(&status) => {
                // Leave nothing behind from the probe.
                let _ = self.bucket.delete(&key).await;
                StepOutcome::Warning(format!(
                    "size not enforced: a PUT of the wrong size answered HTTP {status}"
                ))
            }
            // A refusal by status or by a closed connection both mean the size is bound.
            Ok(_) | Err(_) => StepOutcome::Ok,
        }
    }

    /// Different bytes under the existing key must not replace the object.
    async fn overwrite(&self, read_mode: ReadMode, key: &BucketKey, data: &[u8]) -> StepOutcome {
        let Ok(other) = random_blob() else {
            return StepOutcome::Failed("no randomness".into());
        };
        let request = match self.presign_put(key, BLOB_BYTES as u64) {
            Ok(request) => request,
            Err(error) => return StepOutcome::Failed(error),
        };
        let status = match self.send(&request, Some(other), true).await {
            Ok((status, _)) => status,
            Err(error) => return StepOutcome::Failed(error),
        };
        match self.read(read_mode, key).await {
            Ok(bytes) if bytes == data => StepOutcome::Ok,
            Ok(_) => StepOutcome::Warning(format!(
                "create-only not enforced: an overwrite answered HTTP {status} and replaced \
                 the object (readers still verify every blob)"
            )),
            Err(error) => StepOutcome::Failed(error),
        }
    }

    async fn delete(&self, key: &BucketKey) -> Result<(), String> {
        let deleted = self
            .bucket
            .delete(key)
            .await
            .map_err(|error| error_chain(&error))?;
        if !deleted {
            return Err("the bucket had no object to delete".into());
        }
        match self.bucket.head(key).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err("the object is still there after deleting it".into()),
            Err(error) => Err(error_chain(&error)),
        }
    }
}

//! The HTTP side of the exchange: presigned HEAD, GET and PUT against a channel's bucket.
//!
//! Downloads verify as they stream (SPEC §7.3): into memory for a chunk (hashed here, at
//! most the expected size is ever buffered) or straight into the store for a blob
//! ([`Store::put_verified`] hashes and discards a mismatch). Uploads stream from a byte
//! range of a stored file while hashing, and check the hash *before* handing the last
//! bytes to the connection, so a bucket that cannot check content itself (S3, GCS) never
//! receives a complete corrupt object: the request is aborted instead.
//!
//! Every request is sent exactly as presigned: method, URL and headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use kachery_protocol::Sha1Hash;
use kachery_protocol::node_api::PresignedRequest;
use kachery_store::{IngestError, Store};
use reqwest::StatusCode;
use sha1::Digest;
use tokio::io::AsyncRead;

use crate::error::LoadError;
use crate::progress::TransferMeter;

/// Why a download did not produce verified bytes.
#[derive(Debug)]
pub(crate) enum DownloadError {
    /// The object's bytes do not hash to its name or have the wrong size; nothing was kept.
    Corrupt(String),
    /// The request failed or the bucket answered with an error status.
    Transport(String),
    /// The local store failed; no retry helps.
    Store(LoadError),
}

/// How an upload ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UploadOutcome {
    /// The bucket now holds the object (written now, or present already).
    Stored,
    /// The bytes read from the store hash differently from the blob's name.
    LocalCorrupt,
    /// The bucket or the connection failed; `detail` says how.
    Failed(String),
}

/// The presigned request as given; fails only on a method that is not an HTTP token.
fn build(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
) -> Result<reqwest::RequestBuilder, String> {
    let method = reqwest::Method::from_bytes(presigned.method.as_bytes()).map_err(|_| {
        format!(
            "presigned request has an invalid method {:?}",
            presigned.method
        )
    })?;
    let mut request = client.request(method, &presigned.url);
    for (name, value) in &presigned.headers {
        request = request.header(name, value);
    }
    Ok(request)
}

/// Sends a presigned HEAD: `Some(size)` when the object exists, `None` when it does not.
pub(crate) async fn head(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
) -> Result<Option<u64>, String> {
    let response = build(client, presigned)?
        .send()
        .await
        .map_err(|error| error.to_string())?;
    match response.status() {
        status if status.is_success() => Ok(Some(response.content_length().unwrap_or(0))),
        StatusCode::NOT_FOUND => Ok(None),
        status => Err(format!("bucket answered {status} to a probe")),
    }
}

/// Downloads a chunk of exactly `size` bytes into memory and checks its SHA-1.
pub(crate) async fn get_verified_bytes(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
    sha1: &Sha1Hash,
    size: u64,
    meter: &Arc<TransferMeter>,
) -> Result<Bytes, DownloadError> {
    let response = send_get(client, presigned).await?;
    if let Some(length) = response.content_length().filter(|length| *length != size) {
        return Err(DownloadError::Corrupt(format!(
            "object has {length} bytes, expected {size}"
        )));
    }

    let in_flight = InFlight::new(meter);
    let mut hasher = sha1::Sha1::new();
    let mut buffer = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|error| DownloadError::Transport(error.to_string()))?;
        if buffer.len() as u64 + piece.len() as u64 > size {
            return Err(DownloadError::Corrupt(format!(
                "object is larger than {size} bytes"
            )));
        }
        hasher.update(&piece);
        in_flight.add(piece.len() as u64);
        buffer.extend_from_slice(&piece);
    }

    if buffer.len() as u64 != size {
        // A short body with a matching Content-Length is a broken connection, not bad data.
        return Err(DownloadError::Transport(format!(
            "download ended after {} of {size} bytes",
            buffer.len()
        )));
    }
    let actual = Sha1Hash::from_bytes(hasher.finalize().into());
    if actual != *sha1 {
        return Err(DownloadError::Corrupt(format!(
            "object hashes to {actual}, expected {sha1}"
        )));
    }
    in_flight.keep();
    Ok(buffer.freeze())
}

/// Streams a blob into the store, which keeps it only if it hashes to `sha1` and has
/// `expected_size` bytes (or, when that is unknown, the announced Content-Length).
/// Returns the size stored.
pub(crate) async fn get_verified_into_store(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
    store: &Store,
    sha1: &Sha1Hash,
    expected_size: Option<u64>,
    meter: &Arc<TransferMeter>,
) -> Result<u64, DownloadError> {
    let response = send_get(client, presigned).await?;
    let size = match (expected_size, response.content_length()) {
        (Some(expected), Some(length)) if expected != length => {
            return Err(DownloadError::Corrupt(format!(
                "object has {length} bytes, expected {expected}"
            )));
        }
        (Some(size), _) | (None, Some(size)) => size,
        (None, None) => {
            return Err(DownloadError::Transport(
                "bucket sent no Content-Length".into(),
            ));
        }
    };
    meter.set_total_if_unknown(size);

    let in_flight = InFlight::new(meter);
    let body = response
        .bytes_stream()
        .inspect_ok({
            let in_flight = in_flight.clone();
            move |piece| in_flight.add(piece.len() as u64)
        })
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(body);

    match store.put_verified(*sha1, Some(size), reader).await {
        Ok(_) => {
            in_flight.keep();
            Ok(size)
        }
        Err(IngestError::HashMismatch { actual, .. }) => Err(DownloadError::Corrupt(format!(
            "object hashes to {actual}, expected {sha1}"
        ))),
        Err(IngestError::SizeMismatch { actual, expected }) => Err(DownloadError::Corrupt(
            format!("object has {actual} bytes, expected {expected}"),
        )),
        Err(IngestError::ReadStream(error)) => Err(DownloadError::Transport(error.to_string())),
        Err(error) => Err(DownloadError::Store(LoadError::store(
            "store a downloaded blob",
            error,
        ))),
    }
}

async fn send_get(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
) -> Result<reqwest::Response, DownloadError> {
    let response = build(client, presigned)
        .map_err(DownloadError::Transport)?
        .send()
        .await
        .map_err(|error| DownloadError::Transport(error.to_string()))?;
    if !response.status().is_success() {
        return Err(DownloadError::Transport(format!(
            "bucket answered {} to a download",
            response.status()
        )));
    }
    Ok(response)
}

/// Bytes one download added to a meter. They are taken back when the last clone drops
/// unless [`InFlight::keep`] was called, so a failed attempt does not inflate progress.
#[derive(Clone)]
struct InFlight(Arc<InFlightCount>);

struct InFlightCount {
    meter: Arc<TransferMeter>,
    added: AtomicU64,
    kept: AtomicBool,
}

impl InFlight {
    fn new(meter: &Arc<TransferMeter>) -> Self {
        Self(Arc::new(InFlightCount {
            meter: Arc::clone(meter),
            added: AtomicU64::new(0),
            kept: AtomicBool::new(false),
        }))
    }

    fn add(&self, n_bytes: u64) {
        self.0.added.fetch_add(n_bytes, Ordering::Relaxed);
        self.0.meter.bytes.fetch_add(n_bytes, Ordering::Relaxed);
        self.0
            .meter
            .downloaded
            .fetch_add(n_bytes, Ordering::Relaxed);
    }

    fn keep(&self) {
        self.0.kept.store(true, Ordering::Relaxed);
    }
}

impl Drop for InFlightCount {
    fn drop(&mut self) {
        if !self.kept.load(Ordering::Relaxed) {
            let added = self.added.load(Ordering::Relaxed);
            self.meter.bytes.fetch_sub(added, Ordering::Relaxed);
            self.meter.downloaded.fetch_sub(added, Ordering::Relaxed);
        }
    }
}

/// PUTs `total` bytes from `reader` to a presigned URL, hashing as they go; the meter's
/// `bytes` counts what was handed to the connection. A 412 (create-only) counts as stored.
pub(crate) async fn put_verified(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
    reader: impl AsyncRead + Send + 'static,
    sha1: Sha1Hash,
    total: u64,
    meter: Arc<TransferMeter>,
) -> UploadOutcome {
    let local_corrupt = Arc::new(AtomicBool::new(false));
    let body = hashing_body(reader, sha1, total, meter, Arc::clone(&local_corrupt));

    let mut request = match build(client, presigned) {
        Ok(request) => request.body(reqwest::Body::wrap_stream(body)),
        Err(detail) => return UploadOutcome::Failed(detail),
    };
    if !presigned
        .headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("content-length"))
    {
        request = request.header(reqwest::header::CONTENT_LENGTH, total);
    }
    let result = request.send().await;

    if local_corrupt.load(Ordering::SeqCst) {
        return UploadOutcome::LocalCorrupt;
    }
    match result {
        Ok(response) if response.status().is_success() => UploadOutcome::Stored,
        Ok(response) if response.status() == StatusCode::PRECONDITION_FAILED => {
            UploadOutcome::Stored
        }
        Ok(response) => UploadOutcome::Failed(format!("bucket answered {}", response.status())),
        Err(error) => UploadOutcome::Failed(error.to_string()),
    }
}

/// The upload body: the reader's bytes, hashed and counted. The hash is checked when the
/// last byte arrives, before that piece is released; on a mismatch (or a wrong length)
/// the stream yields an error instead, which aborts the request.
fn hashing_body(
    reader: impl AsyncRead + Send + 'static,
    sha1: Sha1Hash,
    total: u64,
    meter: Arc<TransferMeter>,
    local_corrupt: Arc<AtomicBool>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct State<R> {
        pieces: tokio_util::io::ReaderStream<R>,
        hasher: sha1::Sha1,
        n_read: u64,
    }
    let reader = Box::pin(reader);
    let state = State {
        // 1 MiB pieces: the 4 KiB default capped uploads near 140 MB/s (docs/BENCHMARKS.md).
        pieces: tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20),
        hasher: sha1::Sha1::new(),
        n_read: 0,
    };

    futures_util::stream::unfold(Some(state), move |state| {
        let meter = Arc::clone(&meter);
        let local_corrupt = Arc::clone(&local_corrupt);
        async move {
            let mut state = state?;
            let corrupt = |detail: String| {
                local_corrupt.store(true, Ordering::SeqCst);
                Some((Err(std::io::Error::other(detail)), None))
            };
            match state.pieces.next().await {
                Some(Ok(piece)) => {
                    state.hasher.update(&piece);
                    state.n_read += piece.len() as u64;
                    if state.n_read > total {
                        return corrupt(format!("local blob {sha1} is longer than {total} bytes"));
                    }
                    if state.n_read == total {
                        let actual = Sha1Hash::from_bytes(state.hasher.clone().finalize().into());
                        if actual != sha1 {
                            return corrupt(format!("local blob {sha1} hashes to {actual}"));
                        }
                    }
                    meter.bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
                    Some((Ok(piece), Some(state)))
                }
                Some(Err(error)) => Some((Err(error), None)),
                None if total == 0 && Sha1Hash::of(b"") != sha1 => {
                    corrupt(format!("local blob {sha1} is empty but should not be"))
                }
                None if state.n_read < total => corrupt(format!(
                    "local blob {sha1} ended after {} of {total} bytes",
                    state.n_read
                )),
                None => None,
            }
        }
    })
}

//! Subfeeds in a channel's bucket (SPEC §7.1, §16): create-only segments `<start>-<end>`
//! holding JSON arrays of signed messages, and the replaced signed head.
//!
//! Segments start at multiples of 1,000 messages and the last one ends at the count
//! ([`feed::segment_ranges`]), so a reader needs only a count (from a head or a
//! `subfeedUploaded`) to name every segment. Everything read here is only bytes: the
//! caller verifies signatures and chain before keeping anything.

use kachery_exchange::{Network, NetworkError};
use kachery_protocol::ChannelName;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::feed::SignedFeedObject;
use kachery_protocol::node_api::{PresignedRequest, UploadItem};
use reqwest::StatusCode;

use crate::log::SubfeedId;

/// Why a bucket read or write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("bucket request for {key} failed: {detail}")]
    Transfer { key: String, detail: String },
    #[error("bucket object {key} is not a JSON {expected}")]
    Malformed { key: String, expected: &'static str },
}

/// Uploads `body` as one object described by `item`; an existing create-only object
/// counts as success.
pub(crate) async fn upload(
    http: &reqwest::Client,
    network: &dyn Network,
    channel: &ChannelName,
    item: UploadItem,
    body: Vec<u8>,
) -> Result<(), BucketError> {
    let mut presigned = network.upload_urls(channel, vec![item]).await?;
    let Some(request) = presigned.pop() else {
        return Err(BucketError::Network(NetworkError::Other(
            "the hub returned no upload URL".into(),
        )));
    };
    let key = request.key.to_string();
    let response = build(http, &request)?
        .body(body)
        .send()
        .await
        .map_err(|error| transfer_error(&key, error))?;
    match response.status() {
        status if status.is_success() || status == StatusCode::PRECONDITION_FAILED => Ok(()),
        status => Err(BucketError::Transfer {
            key,
            detail: format!("bucket answered {status}"),
        }),
    }
}

/// Uploads messages `start..end` (given in order) as one segment.
pub(crate) async fn upload_segment(
    http: &reqwest::Client,
    network: &dyn Network,
    channel: &ChannelName,
    id: &SubfeedId,
    start: u64,
    messages: &[SignedFeedObject],
) -> Result<(), BucketError> {
    let body = serde_json::to_vec(messages).expect("signed messages serialize");
    let item = UploadItem::FeedSegment {
        feed_id: id.0,
        subfeed_hash: id.1,
        start,
        end: start + messages.len() as u64,
        size: body.len() as u64,
    };
    upload(http, network, channel, item, body).await
}

/// Uploads (replaces) the signed head.
pub(crate) async fn upload_head(
    http: &reqwest::Client,
    network: &dyn Network,
    channel: &ChannelName,
    id: &SubfeedId,
    head: &SignedFeedObject,
) -> Result<(), BucketError> {
    let body = serde_json::to_vec(head).expect("a signed head serializes");
    let item = UploadItem::FeedHead {
        feed_id: id.0,
        subfeed_hash: id.1,
        size: body.len() as u64,
    };
    upload(http, network, channel, item, body).await
}

/// The object at `key` as JSON, or `None` when the bucket does not have it.
pub(crate) async fn download_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    network: &dyn Network,
    channel: &ChannelName,
    key: BucketKey,
    expected: &'static str,
) -> Result<Option<T>, BucketError> {
    let mut urls = network.download_urls(channel, vec![key.clone()]).await?;
    let Some(urls) = urls.pop() else {
        return Ok(None);
    };
    let key_text = key.to_string();
    // Heads are replaced in place: ask every cache on the way for the current copy.
    let response = build(http, &urls.get)?
        .header(reqwest::header::CACHE_CONTROL, "no-cache")
        .send()
        .await
        .map_err(|error| transfer_error(&key_text, error))?;
    match response.status() {
        StatusCode::NOT_FOUND => return Ok(None),
        status if !status.is_success() => {
            return Err(BucketError::Transfer {
                key: key_text,
                detail: format!("bucket answered {status}"),
            });
        }
        _ => {}
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|error| transfer_error(&key_text, error))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| BucketError::Malformed {
            key: key_text,
            expected,
        })
}

fn build(
    http: &reqwest::Client,
    presigned: &PresignedRequest,
) -> Result<reqwest::RequestBuilder, BucketError> {
    let method = reqwest::Method::from_bytes(presigned.method.as_bytes()).map_err(|_| {
        BucketError::Transfer {
            key: presigned.key.to_string(),
            detail: format!("invalid presigned method {:?}", presigned.method),
        }
    })?;
    let mut request = http.request(method, &presigned.url);
    for (name, value) in &presigned.headers {
        request = request.header(name, value);
    }
    Ok(request)
}

/// A transfer error without the URL, which carries a signature and must not be shown.
fn transfer_error(key: &str, error: reqwest::Error) -> BucketError {
    BucketError::Transfer {
        key: key.to_owned(),
        detail: error.without_url().to_string(),
    }
}

//! Presigned requests against a channel's bucket: small reads (result records) and
//! whole-object writes (payloads and records). Payload reads stream into the store,
//! which verifies them (`results`).

use bytes::Bytes;
use futures_util::StreamExt;
use kachery_protocol::node_api::PresignedRequest;
use reqwest::StatusCode;

/// The presigned request as given: method, URL and headers.
pub(crate) fn build(
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

/// GETs an object of at most `max` bytes; `None` when it does not exist. Mutable
/// objects (records) are asked for with `Cache-Control: no-cache` (SPEC §7.3).
pub(crate) async fn get_small(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
    max: u64,
) -> Result<Option<Bytes>, String> {
    let response = build(client, presigned)?
        .header(reqwest::header::CACHE_CONTROL, "no-cache")
        .send()
        .await
        .map_err(|error| error.to_string())?;
    match response.status() {
        StatusCode::NOT_FOUND => return Ok(None),
        status if !status.is_success() => {
            return Err(format!("bucket answered {status} to a read"));
        }
        _ => {}
    }
    let mut bytes = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|error| error.to_string())?;
        if (bytes.len() + piece.len()) as u64 > max {
            return Err(format!("object is larger than {max} bytes"));
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(Some(Bytes::from(bytes)))
}

/// GETs an object as a response to stream; `None` when it does not exist.
pub(crate) async fn get_stream(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
) -> Result<Option<reqwest::Response>, String> {
    let response = build(client, presigned)?
        .send()
        .await
        .map_err(|error| error.to_string())?;
    match response.status() {
        StatusCode::NOT_FOUND => Ok(None),
        status if status.is_success() => Ok(Some(response)),
        status => Err(format!("bucket answered {status} to a read")),
    }
}

/// PUTs `bytes`; a create-only 412 (the object exists) counts as success.
pub(crate) async fn put(
    client: &reqwest::Client,
    presigned: &PresignedRequest,
    bytes: Bytes,
) -> Result<(), String> {
    let mut request = build(client, presigned)?;
    if !presigned
        .headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("content-length"))
    {
        request = request.header(reqwest::header::CONTENT_LENGTH, bytes.len());
    }
    let response = request
        .body(bytes)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    match response.status() {
        status if status.is_success() || status == StatusCode::PRECONDITION_FAILED => Ok(()),
        status => Err(format!("bucket answered {status} to an upload")),
    }
}

//! Plumbing shared by the three clients: building the `reqwest::Client`, joining path
//! segments onto a base URL, naming URLs safely in errors, and turning responses into
//! values or [`ApiError`]s.

use std::time::Duration;

use futures_util::{Stream, TryStreamExt};
use reqwest::{RequestBuilder, Response};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ApiError;

/// Deadline for a whole request and response, except streamed bodies (SPEC §10.1).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Deadline for opening the TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which kind of server a client talks to; decides proxy use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// The hub, possibly behind an HTTP proxy from the environment.
    Hub,
    /// A node daemon on loopback, never reached through a proxy.
    Loopback,
}

/// One client per client object, so connections are reused. No overall timeout is set
/// here: plain requests get [`REQUEST_TIMEOUT`] each and streamed ones wait for headers
/// only (see [`send_streaming`]).
pub(crate) fn build_http_client(peer: Peer) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("kachery/", env!("CARGO_PKG_VERSION")));
    if peer == Peer::Loopback {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .expect("the built-in TLS backend and static settings always initialize")
}

/// `base` with `segments` appended as percent-encoded path segments, query dropped.
/// A trailing slash on `base` is ignored, so `http://h/` and `http://h` give the same URL.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .expect("hub and daemon URLs are http(s) URLs, which have a path")
        .pop_if_empty()
        .extend(segments);
    url
}

/// `url` as it may appear in errors and logs: without credentials, query or fragment,
/// because presigned URLs and tokens live there.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// The origin of `url` (`scheme://host[:port]`, no trailing slash): the `hub` field of
/// signed bodies (SPEC §4.3).
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn unreachable(url: &Url, source: reqwest::Error) -> ApiError {
    ApiError::Unreachable {
        url: display_url(url),
        source: source.without_url(),
    }
}

fn interrupted(url: &Url, source: reqwest::Error) -> ApiError {
    if source.is_timeout() {
        return unreachable(url, source);
    }
    ApiError::Interrupted {
        url: display_url(url),
        source: Some(source.without_url()),
    }
}

/// Sends a plain request with [`REQUEST_TIMEOUT`] and returns the successful response.
pub(crate) async fn send(request: RequestBuilder, url: &Url) -> Result<Response, ApiError> {
    let response = request.timeout(REQUEST_TIMEOUT).send().await;
    let response = response.map_err(|source| unreachable(url, source))?;
    ensure_success(response, url).await
}

/// Sends a request whose body is streamed: only the wait for the response headers is
/// bounded by [`REQUEST_TIMEOUT`], the body may take as long as the transfer does.
pub(crate) async fn send_streaming(
    request: RequestBuilder,
    url: &Url,
) -> Result<Response, ApiError> {
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, request.send()).await {
        Ok(response) => response.map_err(|source| unreachable(url, source))?,
        Err(_elapsed) => {
            return Err(ApiError::TimedOut {
                url: display_url(url),
                after_secs: REQUEST_TIMEOUT.as_secs(),
            });
        }
    };
    ensure_success(response, url).await
}

/// Passes a 2xx response through; reads any other into an [`ApiError`].
async fn ensure_success(response: Response, url: &Url) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        tracing::trace!(url = %display_url(url), status = status.as_u16(), "request succeeded");
        return Ok(response);
    }

    let body = response
        .bytes()
        .await
        .map_err(|source| interrupted(url, source))?;
    let error = ApiError::from_error_response(&display_url(url), status, &body);
    tracing::debug!(url = %display_url(url), status = status.as_u16(), %error, "request refused");
    Err(error)
}

/// Reads a successful response's JSON body as `R`.
pub(crate) async fn read_json<R: DeserializeOwned>(
    response: Response,
    url: &Url,
) -> Result<R, ApiError> {
    let body = response
        .bytes()
        .await
        .map_err(|source| interrupted(url, source))?;
    serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
        url: display_url(url),
        source,
    })
}

/// The body of a successful response as a stream of byte chunks.
pub(crate) fn byte_stream(
    response: Response,
    url: &Url,
) -> impl Stream<Item = Result<bytes::Bytes, ApiError>> + Send + use<> {
    let url = url.clone();
    response
        .bytes_stream()
        .map_err(move |source| interrupted(&url, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_append_encoded_segments_to_the_base_path() {
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        let url = endpoint(&base, &["api", "v1", "channels", "ch.one", "a b"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/api/v1/channels/ch.one/a%20b"
        );

        let prefixed = Url::parse("https://example.org/kachery?x=1").unwrap();
        assert_eq!(
            endpoint(&prefixed, &["api", "node"]).as_str(),
            "https://example.org/kachery/api/node"
        );
    }

    #[test]
    fn displayed_urls_lose_credentials_and_query() {
        let url = Url::parse("http://user:pw@host:9/blobs/x?sig=secret#f").unwrap();
        assert_eq!(display_url(&url), "http://host:9/blobs/x");
    }

    #[test]
    fn origin_has_no_trailing_slash_or_path() {
        let url = Url::parse("http://127.0.0.1:8080/some/path/").unwrap();
        assert_eq!(origin_of(&url), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of(&Url::parse("https://hub.example.org/").unwrap()),
            "https://hub.example.org"
        );
    }
}

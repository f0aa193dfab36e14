//! [`LocalClient`]: the CLI's client for a node daemon's loopback API (SPEC §13.4).
//!
//! Every request but `/healthz` carries `Authorization: Bearer <client token>`. Loads
//! answer with NDJSON [`LoadEvent`]s read line by line as they arrive, and file bytes are
//! streamed; both may run far longer than the 30 s limit of the other calls. The wire
//! types live in [`types`] so the daemon's server uses the same structs.

pub mod feeds;
mod ndjson;
pub mod types;

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use kachery_protocol::task::{
    TaskRequestId, TaskRunRequest, TaskView, WorkerPollRequest, WorkerPollResponse, WorkerReport,
};
use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

pub use self::feeds::{
    AppendRequest, AppendResponse, CreateFeedRequest, CreateFeedResponse, FeedMessage, ReadQuery,
    ReadResponse, Rejection,
};
pub use self::types::{
    ChannelStatus, LoadErrorCode, LoadEvent, LoadRequest, NodeStatus, StoreRequest, StoreResponse,
    StoreUsage, TransferDirection, TransferStatus, TransfersResponse,
};
use crate::error::ApiError;
use crate::http::{self, Peer};

/// A client for one node daemon, holding its client token.
#[derive(Clone)]
pub struct LocalClient {
    http: reqwest::Client,
    base_url: Url,
    token: String,
}

impl std::fmt::Debug for LocalClient {
    /// The client token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClient")
            .field("base_url", &http::display_url(&self.base_url))
            .finish_non_exhaustive()
    }
}

impl LocalClient {
    /// A client for the daemon at `base_url` (e.g. `http://127.0.0.1:20431`), never
    /// going through an HTTP proxy.
    pub fn new(base_url: Url, token: String) -> Self {
        Self {
            http: http::build_http_client(Peer::Loopback),
            base_url,
            token,
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Succeeds when the daemon answers its open liveness check.
    pub async fn health(&self) -> Result<(), ApiError> {
        let url = http::endpoint(&self.base_url, &["healthz"]);
        let response = http::send(self.http.get(url.clone()), &url).await?;
        let _ = response.bytes().await;
        Ok(())
    }

    /// The daemon's identity, hub link, channels, store usage and transfers.
    pub async fn status(&self) -> Result<NodeStatus, ApiError> {
        self.json(Method::GET, &["v1", "status"], None::<&()>).await
    }

    /// Adds the file at `path` to the store; the daemon reads it with its own rights.
    pub async fn store_path(&self, path: &Path) -> Result<StoreResponse, ApiError> {
        let body = StoreRequest {
            path: path.to_owned(),
        };
        self.json(Method::POST, &["v1", "store"], Some(&body)).await
    }

    /// Starts loading `uri` from `channels` (every joined channel when empty) and
    /// returns its events as they arrive. The stream ends after the `done` or `error`
    /// event; if the daemon stops before sending one, the last item is
    /// [`ApiError::Interrupted`]. Dropping the stream cancels the load.
    pub async fn load(
        &self,
        uri: &str,
        channels: Vec<ChannelName>,
    ) -> Result<impl Stream<Item = Result<LoadEvent, ApiError>> + Send + 'static, ApiError> {
        let body = LoadRequest {
            uri: uri.to_owned(),
            channels,
            detach: false,
        };
        let (response, url) = self
            .send(Method::POST, &["v1", "load"], Some(&body), Streaming::Yes)
            .await?;

        let shown_url = http::display_url(&url);
        let events = ndjson::ndjson_events::<LoadEvent, _>(
            shown_url.clone(),
            Box::pin(http::byte_stream(response, &url)),
        );
        Ok(until_final_event(events, shown_url))
    }

    /// The bytes `start..end` of the local blob `sha1` (the whole blob when both are
    /// `None`), streamed. Fails with code `not_found` when the daemon does not hold it.
    pub async fn file_bytes(
        &self,
        sha1: &Sha1Hash,
        start: Option<u64>,
        end: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static, ApiError> {
        let mut url = http::endpoint(&self.base_url, &["v1", "files", &sha1.to_hex()]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(start) = start {
                query.append_pair("start", &start.to_string());
            }
            if let Some(end) = end {
                query.append_pair("end", &end.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }

        let request = self.http.get(url.clone()).bearer_auth(&self.token);
        let response = http::send_streaming(request, &url).await?;
        Ok(http::byte_stream(response, &url))
    }

    /// Asks the daemon to reconcile with the hub now (`node status --refresh`).
    pub async fn reconcile(&self) -> Result<(), ApiError> {
        let (response, _url) = self
            .send(
                Method::POST,
                &["v1", "reconcile"],
                None::<&()>,
                Streaming::No,
            )
            .await?;
        let _ = response.bytes().await;
        Ok(())
    }

    /// Starts a task request (SPEC §17); follow it with [`LocalClient::task_view`].
    pub async fn run_task(&self, request: &TaskRunRequest) -> Result<TaskView, ApiError> {
        self.json(Method::POST, &["v1", "tasks"], Some(request))
            .await
    }

    /// The view of a task request. With `since` set to the version last seen, the daemon
    /// answers when the view changes or after `wait_ms` (at most 25 s here, so the
    /// request stays within [`crate::REQUEST_TIMEOUT`]).
    pub async fn task_view(
        &self,
        request_id: &TaskRequestId,
        since: Option<u64>,
        wait_ms: u64,
    ) -> Result<TaskView, ApiError> {
        let mut url = http::endpoint(&self.base_url, &["v1", "tasks", &request_id.to_string()]);
        if let Some(since) = since {
            url.query_pairs_mut()
                .append_pair("since", &since.to_string())
                .append_pair("waitMs", &wait_ms.min(25_000).to_string());
        }
        let request = self.http.get(url.clone()).bearer_auth(&self.token);
        let response = http::send(request, &url).await?;
        http::read_json(response, &url).await
    }

    /// A worker's long-poll for a job offering `request.functions`.
    pub async fn poll_task_job(
        &self,
        request: &WorkerPollRequest,
    ) -> Result<WorkerPollResponse, ApiError> {
        let path = ["v1", "tasks", "backends", "poll"];
        self.json(Method::POST, &path, Some(request)).await
    }

    /// A worker's report on job `job_id`.
    pub async fn report_task_job(
        &self,
        job_id: &TaskRequestId,
        report: &WorkerReport,
    ) -> Result<(), ApiError> {
        let job_id = job_id.to_string();
        let path = ["v1", "tasks", job_id.as_str(), "status"];
        let _: serde_json::Value = self.json(Method::POST, &path, Some(report)).await?;
        Ok(())
    }

    /// Transfers in progress.
    pub async fn transfers(&self) -> Result<Vec<TransferStatus>, ApiError> {
        let response: TransfersResponse = self
            .json(Method::GET, &["v1", "transfers"], None::<&()>)
            .await?;
        Ok(response.transfers)
    }

    /// Creates a feed, or finds the one this node made under `name`.
    pub async fn create_feed(&self, name: Option<&str>) -> Result<CreateFeedResponse, ApiError> {
        let body = CreateFeedRequest {
            name: name.map(str::to_owned),
        };
        self.json(Method::POST, &["v1", "feeds"], Some(&body)).await
    }

    /// Signs and appends `messages` to a subfeed of a feed this node owns.
    pub async fn append_feed_messages(
        &self,
        feed_id: &NodeId,
        subfeed: &str,
        messages: Vec<serde_json::Value>,
    ) -> Result<AppendResponse, ApiError> {
        let feed_id = feed_id.to_string();
        let segments = ["v1", "feeds", &feed_id, "subfeeds", subfeed, "messages"];
        let body = AppendRequest { messages };
        self.json(Method::POST, &segments, Some(&body)).await
    }

    /// Reads a subfeed from `query.position`, waiting up to `query.wait_ms` for news.
    pub async fn read_feed_messages(
        &self,
        feed_id: &NodeId,
        subfeed: &str,
        query: &ReadQuery,
    ) -> Result<ReadResponse, ApiError> {
        let feed_id = feed_id.to_string();
        let segments = ["v1", "feeds", &feed_id, "subfeeds", subfeed, "messages"];
        let mut url = http::endpoint(&self.base_url, &segments);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("position", &query.position.to_string());
            pairs.append_pair("waitMs", &query.wait_ms.to_string());
            if let Some(max) = query.max {
                pairs.append_pair("max", &max.to_string());
            }
            if let Some(channel) = &query.channel {
                pairs.append_pair("channel", channel.as_str());
            }
        }
        let request = self.http.get(url.clone()).bearer_auth(&self.token);
        let response = http::send(request, &url).await?;
        http::read_json(response, &url).await
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
        streaming: Streaming,
    ) -> Result<(reqwest::Response, Url), ApiError> {
        let url = http::endpoint(&self.base_url, segments);
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match streaming {
            Streaming::No => http::send(request, &url).await?,
            Streaming::Yes => http::send_streaming(request, &url).await?,
        };
        Ok((response, url))
    }

    async fn json<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<R, ApiError> {
        let (response, url) = self.send(method, segments, body, Streaming::No).await?;
        http::read_json(response, &url).await
    }
}

/// Whether a response body may outlive the 30 s request deadline.
#[derive(Debug, Clone, Copy)]
enum Streaming {
    No,
    Yes,
}

/// Passes `events` through, ending after the first final event or error, and turns an
/// input that ends without a final event into [`ApiError::Interrupted`].
fn until_final_event(
    events: impl Stream<Item = Result<LoadEvent, ApiError>> + Send + 'static,
    url: String,
) -> impl Stream<Item = Result<LoadEvent, ApiError>> + Send + 'static {
    let events = Box::pin(events);
    futures_util::stream::unfold(Some(events), move |events| {
        let url = url.clone();
        async move {
            let mut events = events?;
            match events.next().await {
                Some(Ok(event)) if event.is_final() => Some((Ok(event), None)),
                Some(Ok(event)) => Some((Ok(event), Some(events))),
                Some(Err(error)) => Some((Err(error), None)),
                None => Some((Err(ApiError::Interrupted { url, source: None }), None)),
            }
        }
    })
}

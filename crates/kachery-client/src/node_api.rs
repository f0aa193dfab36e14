//! [`NodeApiClient`]: a node's signed requests to the hub, `POST <hub>/api/node`
//! (SPEC §11).
//!
//! Each call wraps a [`NodeRequest`] in a [`NodeRequestBody`] with the node id, owner, hub
//! origin, current time and a fresh random nonce, seals it with the node key (purpose
//! `hub-request`) and posts the envelope. Tests of the hub's checks use [`NodeApiClient::body_for`],
//! [`NodeApiClient::seal_body`] and the `send_raw*` methods to send stale, replayed or
//! tampered envelopes.

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{
    CreateDownloadUrlsRequest, CreateUploadUrlsRequest, DownloadUrlsResponse, GetNodeConfigRequest,
    GetPubsubCredentialRequest, NodeConfigResponse, NodeRequest, NodeRequestBody,
    PubsubCredentialResponse, ReportCorruptObjectRequest, ReportCorruptObjectResponse,
    ReportRequest, ReportResponse, UploadItem, UploadUrlsResponse,
};
use kachery_protocol::signing::{Purpose, node_id_of};
use kachery_protocol::{ChannelName, Email, NodeId, Nonce, SignedEnvelope};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ApiError;
use crate::http::{self, Peer};

pub use crate::registration::{registration_envelope, registration_link};

/// Signs and sends node-API requests for one (node key, owner) pair to one hub.
#[derive(Clone)]
pub struct NodeApiClient {
    http: reqwest::Client,
    endpoint: Url,
    hub_origin: String,
    key: SigningKey,
    node_id: NodeId,
    owner: Email,
}

impl std::fmt::Debug for NodeApiClient {
    /// The signing key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApiClient")
            .field("endpoint", &http::display_url(&self.endpoint))
            .field("node_id", &self.node_id)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl NodeApiClient {
    /// A client for the hub at `hub_url` (an http or https URL; a path prefix is kept
    /// for the endpoint, while signed bodies name the origin only).
    pub fn new(hub_url: Url, key: SigningKey, owner: Email) -> Self {
        Self {
            http: http::build_http_client(Peer::Hub),
            endpoint: http::endpoint(&hub_url, &["api", "node"]),
            hub_origin: http::origin_of(&hub_url),
            node_id: node_id_of(&key),
            key,
            owner,
        }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    pub fn owner(&self) -> &Email {
        &self.owner
    }

    /// The `hub` field of every body: the hub URL's origin without a trailing slash.
    pub fn hub_origin(&self) -> &str {
        &self.hub_origin
    }

    /// The body for `request` at `timestamp_ms`, with a fresh random nonce.
    pub fn body_for(&self, request: NodeRequest, timestamp_ms: i64) -> NodeRequestBody {
        NodeRequestBody {
            node_id: self.node_id,
            owner: self.owner.clone(),
            hub: self.hub_origin.clone(),
            timestamp: timestamp_ms,
            nonce: random_nonce(),
            request,
        }
    }

    /// Signs `body` with this client's key for purpose `hub-request`.
    pub fn seal_body(&self, body: &NodeRequestBody) -> Result<SignedEnvelope, ApiError> {
        Ok(SignedEnvelope::seal(&self.key, Purpose::HubRequest, body)?)
    }

    /// Sends `request` stamped with the current time and a fresh nonce.
    pub async fn call<R: DeserializeOwned>(&self, request: NodeRequest) -> Result<R, ApiError> {
        let request_type = request.type_name();
        let body = self.body_for(request, now_ms());
        let envelope = self.seal_body(&body)?;

        let result = self.send_raw(&envelope).await;
        if let Err(error) = &result {
            tracing::debug!(request_type, node_id = %self.node_id.short(), %error, "node-api call failed");
        }
        result
    }

    /// Posts an already sealed envelope as is (tests replay and tamper with these).
    pub async fn send_raw<R: DeserializeOwned>(
        &self,
        envelope: &SignedEnvelope,
    ) -> Result<R, ApiError> {
        let request = self.http.post(self.endpoint.clone()).json(envelope);
        let response = http::send(request, &self.endpoint).await?;
        http::read_json(response, &self.endpoint).await
    }

    /// Posts any JSON value as the request body (tests send malformed envelopes).
    pub async fn send_raw_json<R: DeserializeOwned>(
        &self,
        value: serde_json::Value,
    ) -> Result<R, ApiError> {
        let request = self.http.post(self.endpoint.clone()).json(&value);
        let response = http::send(request, &self.endpoint).await?;
        http::read_json(response, &self.endpoint).await
    }

    /// Reports the node's label, version and link states (SPEC §11.2 `report`).
    pub async fn report(&self, report: ReportRequest) -> Result<ReportResponse, ApiError> {
        self.call(NodeRequest::Report(report)).await
    }

    /// The node's desired state; `unchanged: true` when it still matches `known_etag`.
    pub async fn node_config(
        &self,
        known_etag: Option<String>,
    ) -> Result<NodeConfigResponse, ApiError> {
        self.call(NodeRequest::GetNodeConfig(GetNodeConfigRequest {
            known_etag,
        }))
        .await
    }

    /// A short-lived broker credential for `channel`'s bands.
    pub async fn pubsub_credential(
        &self,
        channel: &ChannelName,
    ) -> Result<PubsubCredentialResponse, ApiError> {
        self.pubsub_credential_for(channel, None).await
    }

    /// Like [`Self::pubsub_credential`], naming the link's NATS user nkey (`U…`), which
    /// a NATS channel's credential is bound to.
    pub async fn pubsub_credential_for(
        &self,
        channel: &ChannelName,
        nats_user_key: Option<String>,
    ) -> Result<PubsubCredentialResponse, ApiError> {
        let request = GetPubsubCredentialRequest {
            channel: channel.clone(),
            nats_user_key,
        };
        self.call(NodeRequest::GetPubsubCredential(request)).await
    }

    /// Presigned upload requests for `items`, in item order (at most 1,000 items).
    pub async fn upload_urls(
        &self,
        channel: &ChannelName,
        items: Vec<UploadItem>,
    ) -> Result<UploadUrlsResponse, ApiError> {
        let request = CreateUploadUrlsRequest {
            channel: channel.clone(),
            items,
        };
        self.call(NodeRequest::CreateUploadUrls(request)).await
    }

    /// Presigned GET and HEAD requests for `keys` (at most 1,000 keys).
    pub async fn download_urls(
        &self,
        channel: &ChannelName,
        keys: Vec<BucketKey>,
    ) -> Result<DownloadUrlsResponse, ApiError> {
        let request = CreateDownloadUrlsRequest {
            channel: channel.clone(),
            keys,
        };
        self.call(NodeRequest::CreateDownloadUrls(request)).await
    }

    /// Tells the hub that the object at `key` failed verification (SPEC §7.5).
    pub async fn report_corrupt(
        &self,
        channel: &ChannelName,
        key: BucketKey,
    ) -> Result<ReportCorruptObjectResponse, ApiError> {
        let request = ReportCorruptObjectRequest {
            channel: channel.clone(),
            key,
        };
        self.call(NodeRequest::ReportCorruptObject(request)).await
    }
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds since 1970 fit in i64")
}

/// 16 bytes from the operating system's secure random source.
pub(crate) fn random_nonce() -> Nonce {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    Nonce::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use kachery_protocol::signing;

    use super::*;

    fn client() -> NodeApiClient {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let hub = Url::parse("http://127.0.0.1:9/prefix/").unwrap();
        NodeApiClient::new(hub, key, Email::parse("bob@example.org").unwrap())
    }

    #[test]
    fn sealed_bodies_verify_with_the_node_key_and_carry_the_common_fields() {
        let client = client();
        let request = NodeRequest::GetNodeConfig(GetNodeConfigRequest { known_etag: None });
        let body = client.body_for(request, 1_700_000_000_123);
        let envelope = client.seal_body(&body).unwrap();

        signing::verify(
            &envelope.node_id,
            Purpose::HubRequest,
            &envelope.body,
            &envelope.signature,
        )
        .unwrap();
        assert_eq!(
            envelope.node_id,
            node_id_of(&SigningKey::from_bytes(&[5u8; 32]))
        );
        assert_eq!(envelope.body["type"], "getNodeConfig");
        assert_eq!(envelope.body["nodeId"], envelope.node_id.to_string());
        assert_eq!(envelope.body["owner"], "bob@example.org");
        assert_eq!(envelope.body["hub"], "http://127.0.0.1:9");
        assert_eq!(envelope.body["timestamp"], 1_700_000_000_123i64);
        assert_eq!(envelope.body["nonce"].as_str().unwrap().len(), 32);
        assert!(envelope.verify(Purpose::RegisterNode).is_err());
    }

    #[test]
    fn every_body_gets_a_fresh_nonce() {
        let client = client();
        let request = NodeRequest::GetNodeConfig(GetNodeConfigRequest::default());
        let first = client.body_for(request.clone(), 1);
        let second = client.body_for(request, 1);
        assert_ne!(first.nonce, second.nonce);
    }

    #[test]
    fn debug_output_hides_the_key() {
        let printed = format!("{:?}", client());
        assert!(printed.contains("http://127.0.0.1:9/prefix/api/node"));
        assert!(!printed.to_lowercase().contains("key"));
    }
}

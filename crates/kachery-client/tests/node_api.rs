//! NodeApiClient against a small hub stand-in that checks envelopes the way SPEC §11.1
//! describes: signature, hub origin, nonce reuse.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ed25519_dalek::SigningKey;
use kachery_client::{ApiError, NodeApiClient};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::{
    GetNodeConfigRequest, NodeConfigResponse, NodeRequest, NodeRequestBody,
};
use kachery_protocol::signing::Purpose;
use kachery_protocol::{Email, SignedEnvelope};
use serde_json::json;

#[derive(Clone, Default)]
struct Hub {
    seen_nonces: Arc<Mutex<HashSet<String>>>,
    origin: Arc<Mutex<String>>,
}

async fn node_api(State(hub): State<Hub>, Json(envelope): Json<serde_json::Value>) -> Response {
    let Ok(envelope) = serde_json::from_value::<SignedEnvelope>(envelope) else {
        return common::error_response(StatusCode::BAD_REQUEST, "bad_request", "not an envelope");
    };
    if envelope.verify(Purpose::HubRequest).is_err() {
        return common::error_response(StatusCode::UNAUTHORIZED, "invalid_signature", "bad sig");
    }
    let body: NodeRequestBody = serde_json::from_value(envelope.body.clone()).unwrap();
    if body.node_id != envelope.node_id || body.hub != *hub.origin.lock().unwrap() {
        return common::error_response(StatusCode::UNAUTHORIZED, "wrong_hub", "wrong hub");
    }
    if !hub
        .seen_nonces
        .lock()
        .unwrap()
        .insert(body.nonce.to_string())
    {
        return common::error_response(StatusCode::UNAUTHORIZED, "replayed_request", "replayed");
    }

    match body.request {
        NodeRequest::GetNodeConfig(GetNodeConfigRequest { known_etag }) => {
            let unchanged = known_etag.as_deref() == Some("etag-1");
            let config = (!unchanged).then(|| json!({"label": "n1", "memberships": []}));
            let mut reply =
                json!({"etag": "etag-1", "hubTime": body.timestamp, "unchanged": unchanged});
            if let Some(config) = config {
                reply["config"] = config;
            }
            Json(reply).into_response()
        }
        NodeRequest::Report(_) => Json(json!({"ok": true})).into_response(),
        other => common::error_response(
            StatusCode::BAD_REQUEST,
            "unknown_request_type",
            other.type_name(),
        ),
    }
}

/// A hub stand-in under a path prefix, and a client for it with a fixed key.
async fn hub_and_client() -> NodeApiClient {
    let hub = Hub::default();
    let router = axum::Router::new()
        .route("/prefix/api/node", post(node_api))
        .with_state(hub.clone());
    let base = common::serve(router).await;
    *hub.origin.lock().unwrap() = base.origin().ascii_serialization();

    let hub_url = base.join("prefix/").unwrap();
    let key = SigningKey::from_bytes(&[11u8; 32]);
    NodeApiClient::new(hub_url, key, Email::parse("carol@example.org").unwrap())
}

#[tokio::test]
async fn node_config_is_signed_and_answered_then_unchanged_for_a_known_etag() {
    let client = hub_and_client().await;

    let config: NodeConfigResponse = client.node_config(None).await.unwrap();
    assert_eq!(config.etag, "etag-1");
    assert_eq!(config.config.unwrap().label.as_str(), "n1");

    let again = client.node_config(Some("etag-1".into())).await.unwrap();
    assert!(again.unchanged && again.config.is_none());
}

#[tokio::test]
async fn a_replayed_envelope_is_refused_with_its_code() {
    let client = hub_and_client().await;
    let request = NodeRequest::GetNodeConfig(GetNodeConfigRequest::default());
    let envelope = client
        .seal_body(&client.body_for(request, kachery_client::now_ms()))
        .unwrap();

    let first: serde_json::Value = client.send_raw(&envelope).await.unwrap();
    assert_eq!(first["etag"], "etag-1");

    let replay = client
        .send_raw::<serde_json::Value>(&envelope)
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Some(ErrorCode::ReplayedRequest));
    assert_eq!(replay.status(), Some(401));
}

#[tokio::test]
async fn tampered_and_malformed_requests_get_structured_errors() {
    let client = hub_and_client().await;
    let request = NodeRequest::GetNodeConfig(GetNodeConfigRequest::default());
    let mut envelope = client
        .seal_body(&client.body_for(request, kachery_client::now_ms()))
        .unwrap();
    envelope.body["knownEtag"] = json!("changed after signing");

    let tampered = client
        .send_raw::<serde_json::Value>(&envelope)
        .await
        .unwrap_err();
    assert_eq!(tampered.code(), Some(ErrorCode::InvalidSignature));

    let garbage = client
        .send_raw_json::<serde_json::Value>(json!({"hello": 1}))
        .await;
    let garbage = garbage.unwrap_err();
    assert_eq!(garbage.code(), Some(ErrorCode::BadRequest));
    assert!(matches!(garbage, ApiError::Api { status: 400, .. }));
}

#[tokio::test]
async fn an_unknown_route_gives_an_unexpected_response() {
    let base = common::serve(axum::Router::new()).await;
    let key = SigningKey::from_bytes(&[12u8; 32]);
    let client = NodeApiClient::new(base, key, Email::parse("d@example.org").unwrap());

    let error = client.node_config(None).await.unwrap_err();
    assert!(
        matches!(error, ApiError::UnexpectedResponse { status: 404, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_hub_that_is_down_is_reported_as_unreachable() {
    let url = common::closed_port_url().await;
    let key = SigningKey::from_bytes(&[13u8; 32]);
    let client = NodeApiClient::new(url.clone(), key, Email::parse("e@example.org").unwrap());

    let error = client.node_config(None).await.unwrap_err();
    assert!(error.is_unreachable(), "{error:?}");
    assert!(
        error.to_string().contains(&format!("{url}api/node")),
        "{error}"
    );
}

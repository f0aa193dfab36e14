//! HubUserClient against a hub stand-in that checks paths, methods and the bearer token.

mod common;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use kachery_client::{ApiError, HubUserClient};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::{ChannelName, Email, NodeId, Role, RoleSet};
use serde_json::json;

const TOKEN: &str = "kat_test-token-not-a-secret-aaaaaaaaaaaaaaaaaaaaaaaaa";

fn is_authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(format!("Bearer {TOKEN}").as_str())
}

fn unauthenticated() -> Response {
    common::error_response(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
}

async fn dev_token(headers: HeaderMap, Json(body): Json<serde_json::Value>) -> Response {
    if headers.contains_key("authorization") {
        return common::error_response(StatusCode::BAD_REQUEST, "bad_request", "no auth here");
    }
    assert_eq!(body, json!({"email": "dana@example.org"}));
    Json(json!({"token": TOKEN, "expiresAt": 99})).into_response()
}

async fn me(headers: HeaderMap) -> Response {
    if !is_authorized(&headers) {
        return unauthenticated();
    }
    Json(json!({"email": "dana@example.org", "admin": false, "devLogin": true})).into_response()
}

async fn put_grant(
    headers: HeaderMap,
    Path((channel, node_id, owner)): Path<(String, String, String)>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if !is_authorized(&headers) {
        return unauthenticated();
    }
    assert_eq!(channel, "lab.shared");
    let reply = json!({
        "nodeId": node_id, "owner": owner, "grantedRoles": body["roles"], "updatedAt": 7
    });
    Json(reply).into_response()
}

async fn delete_grant(headers: HeaderMap, Path(path): Path<(String, String, String)>) -> Response {
    if !is_authorized(&headers) || path.2 != "eve+lab@example.org" {
        return unauthenticated();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn hub() -> url::Url {
    let router = axum::Router::new()
        .route("/api/v1/dev/token", post(dev_token))
        .route("/api/v1/me", get(me))
        .route(
            "/api/v1/channels/{channel}/authorizations/{node_id}/{owner}",
            put(put_grant).delete(delete_grant),
        );
    common::serve(router).await
}

fn node_id() -> NodeId {
    NodeId::parse(&"c".repeat(64)).unwrap()
}

#[tokio::test]
async fn dev_token_needs_no_auth_and_its_token_is_then_sent_as_bearer() {
    let mut client = HubUserClient::new(hub().await, None);

    let missing = client.me().await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::Unauthenticated));

    let token = client
        .dev_token(&Email::parse("dana@example.org").unwrap())
        .await
        .unwrap();
    assert_eq!(token.expires_at, 99);
    client.set_token(Some(token.token));

    let me = client.me().await.unwrap();
    assert_eq!(me.email.as_str(), "dana@example.org");
    assert!(me.dev_login);
}

#[tokio::test]
async fn grant_and_revoke_address_the_node_record_by_id_and_owner() {
    let client = HubUserClient::new(hub().await, Some(TOKEN.into()));
    let channel = ChannelName::parse("lab.shared").unwrap();
    let owner = Email::parse("eve+lab@example.org").unwrap();
    let roles: RoleSet = [Role::RequestFiles, Role::ProvideFiles]
        .into_iter()
        .collect();

    let grant = client
        .grant(&channel, &node_id(), &owner, roles)
        .await
        .unwrap();
    assert_eq!(
        (grant.node_id, grant.owner, grant.granted_roles),
        (node_id(), owner.clone(), roles)
    );

    client.revoke(&channel, &node_id(), &owner).await.unwrap();
}

#[tokio::test]
async fn errors_never_show_the_token() {
    let client = HubUserClient::new(common::closed_port_url().await, Some(TOKEN.into()));

    let error = client.me().await.unwrap_err();
    assert!(matches!(error, ApiError::Unreachable { .. }), "{error:?}");
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{client:?}"),
    ] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }
    assert!(error.to_string().contains("/api/v1/me"), "{error}");
}

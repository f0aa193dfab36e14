//! The node API's checks against replayed, tampered and mis-signed requests (SPEC §11.1).

use kachery_client::now_ms;
use kachery_protocol::Label;
use kachery_protocol::SignedEnvelope;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::{
    GetNodeConfigRequest, NodeConfigResponse, NodeRequest, NodeStatusReport, ReportRequest,
};
use kachery_protocol::signing::{Purpose, sign};

use crate::common::*;

on_both_backends!(
    replayed_tampered_misssigned_and_stale_requests_are_refused,
    shape_hub_and_registration_checks,
);

fn get_config() -> NodeRequest {
    NodeRequest::GetNodeConfig(GetNodeConfigRequest { known_etag: None })
}

async fn replayed_tampered_misssigned_and_stale_requests_are_refused(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let node = register_node(&hub, &alice, &node_key(10), "alice@example.org").await;

    // Replay: the first send works, the identical second one does not.
    let envelope = node.seal_body(&node.body_for(get_config(), now_ms()))?;
    node.send_raw::<NodeConfigResponse>(&envelope).await?;
    assert_eq!(
        code_of(node.send_raw::<NodeConfigResponse>(&envelope).await),
        ErrorCode::ReplayedRequest
    );

    // Tampered body: a field changed after signing.
    let mut tampered = node.seal_body(&node.body_for(get_config(), now_ms()))?;
    tampered.body["knownEtag"] = serde_json::json!("x");
    assert_eq!(
        code_of(node.send_raw::<NodeConfigResponse>(&tampered).await),
        ErrorCode::InvalidSignature
    );

    // Wrong key: signed by another key while claiming the registered node id.
    let body = serde_json::to_value(node.body_for(get_config(), now_ms()))?;
    let forged = SignedEnvelope {
        signature: sign(&node_key(99), Purpose::HubRequest, &body)?,
        body,
        node_id: *node.node_id(),
    };
    assert_eq!(
        code_of(node.send_raw::<NodeConfigResponse>(&forged).await),
        ErrorCode::InvalidSignature
    );

    // A signature for another purpose does not count either.
    let body = serde_json::to_value(node.body_for(get_config(), now_ms()))?;
    let cross_purpose = SignedEnvelope {
        signature: sign(&node_key(10), Purpose::Pubsub, &body)?,
        body,
        node_id: *node.node_id(),
    };
    assert_eq!(
        code_of(node.send_raw::<NodeConfigResponse>(&cross_purpose).await),
        ErrorCode::InvalidSignature
    );

    // Ten minutes off, either way.
    for offset in [-10 * 60 * 1000, 10 * 60 * 1000] {
        let stale = node.seal_body(&node.body_for(get_config(), now_ms() + offset))?;
        let error = node
            .send_raw::<NodeConfigResponse>(&stale)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::StaleRequest));
        let message = error.to_string();
        assert!(
            message.contains(" s ahead of") || message.contains(" s behind"),
            "{message}"
        );
        assert!(
            message.contains("clock"),
            "message says what to fix: {message}"
        );
    }

    // A fresh, honest request still works after all that.
    node.node_config(None).await?;
    hub.shutdown().await?;
    Ok(())
}

async fn shape_hub_and_registration_checks(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let node = register_node(&hub, &alice, &node_key(11), "alice@example.org").await;

    // Not an envelope at all.
    let code = code_of(
        node.send_raw_json::<serde_json::Value>(serde_json::json!({"hello": 1}))
            .await,
    );
    assert_eq!(code, ErrorCode::BadRequest);

    // An unknown type, validly signed.
    let mut body = serde_json::to_value(node.body_for(get_config(), now_ms()))?;
    body["type"] = serde_json::json!("launchRockets");
    let envelope = SignedEnvelope {
        signature: sign(&node_key(11), Purpose::HubRequest, &body)?,
        body,
        node_id: *node.node_id(),
    };
    assert_eq!(
        code_of(node.send_raw::<serde_json::Value>(&envelope).await),
        ErrorCode::UnknownRequestType
    );

    // Addressed to another hub.
    let mut body = serde_json::to_value(node.body_for(get_config(), now_ms()))?;
    body["hub"] = serde_json::json!("https://other.example.org");
    let envelope = SignedEnvelope {
        signature: sign(&node_key(11), Purpose::HubRequest, &body)?,
        body,
        node_id: *node.node_id(),
    };
    assert_eq!(
        code_of(node.send_raw::<serde_json::Value>(&envelope).await),
        ErrorCode::WrongHub
    );

    // Over the 256 KiB body limit.
    let huge = serde_json::json!({ "padding": "x".repeat(300 * 1024) });
    assert_eq!(
        code_of(node.send_raw_json::<serde_json::Value>(huge).await),
        ErrorCode::PayloadTooLarge
    );

    // A report is stored and shown to the owner.
    let report = ReportRequest {
        label: Label::parse("reporting node").unwrap(),
        version: "0.1.0-test".to_owned(),
        status: NodeStatusReport {
            store_bytes: 1234,
            ..NodeStatusReport::default()
        },
    };
    assert!(node.report(report).await?.ok);
    let view = alice.node(node.node_id()).await?;
    assert!(view.last_report_at.is_some());
    assert_eq!(
        view.last_report.expect("the report is shown")["status"]["storeBytes"],
        1234
    );

    // A valid signature from a key nobody registered.
    let stranger = kachery_client::NodeApiClient::new(
        hub.public_url().clone(),
        node_key(12),
        email("alice@example.org"),
    );
    let error = stranger.node_config(None).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NodeNotRegistered));
    assert!(
        error.to_string().contains("kachery node register"),
        "{error}"
    );

    // The registered key under an owner it is not registered to.
    let wrong_owner = kachery_client::NodeApiClient::new(
        hub.public_url().clone(),
        node_key(11),
        email("bob@example.org"),
    );
    assert_eq!(
        code_of(wrong_owner.node_config(None).await),
        ErrorCode::NodeNotRegistered
    );
    hub.shutdown().await?;
    Ok(())
}

//! Who sees and changes what (SPEC §10.3): other users' channels and nodes.

use kachery_protocol::api_error::ErrorCode;

use crate::common::*;

on_both_backends!(
    another_user_cannot_read_or_change_grants_or_nodes,
    requests_without_a_valid_token_or_with_unknown_fields_are_refused,
);

async fn another_user_cannot_read_or_change_grants_or_nodes(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let mallory = sign_in(&hub, "mallory@example.org").await;
    let channel = create_channel(&alice, "lab.private").await;
    let node = register_node(&hub, &alice, &node_key(30), "alice@example.org").await;
    let mallory_node = register_node(&hub, &mallory, &node_key(31), "mallory@example.org").await;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles"),
        )
        .await?;

    // Channel: name, owner and deleted flag only; no members, grants or changes.
    let view = mallory.channel(&channel).await?;
    assert_eq!(view.owner.as_str(), "alice@example.org");
    assert!(view.bucket.is_none() && view.pubsub.is_none());
    assert_eq!(
        code_of(mallory.members(&channel).await),
        ErrorCode::NotOwner
    );
    assert_eq!(
        code_of(mallory.authorizations(&channel).await),
        ErrorCode::NotOwner
    );
    let self_grant = mallory
        .grant(
            &channel,
            mallory_node.node_id(),
            mallory_node.owner(),
            roles("provideFiles"),
        )
        .await;
    assert_eq!(code_of(self_grant), ErrorCode::NotOwner);
    assert_eq!(
        code_of(mallory.revoke(&channel, node.node_id(), node.owner()).await),
        ErrorCode::NotOwner
    );
    assert_eq!(
        code_of(mallory.delete_channel(&channel).await),
        ErrorCode::NotOwner
    );

    // Nodes: another user's record does not exist for mallory.
    assert_eq!(
        code_of(mallory.node(node.node_id()).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(mallory.delete_node(node.node_id()).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(
            mallory
                .join(node.node_id(), &channel, roles("requestFiles"))
                .await
        ),
        ErrorCode::NotFound
    );
    assert_eq!(mallory.nodes().await?.items.len(), 1);

    // Alice's view is intact and complete.
    let grants = alice.authorizations(&channel).await?;
    assert_eq!(grants.items.len(), 1);
    assert_eq!(grants.items[0].granted_roles, roles("requestFiles"));
    assert!(alice.channel(&channel).await?.bucket.is_some());
    alice.node(node.node_id()).await?;

    // An admin reads everything but may not grant.
    let admin = sign_in(&hub, "admin@example.org").await;
    assert!(admin.me().await?.admin);
    assert_eq!(admin.authorizations(&channel).await?.items.len(), 1);
    let admin_grant = admin
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("provideFiles"),
        )
        .await;
    assert_eq!(code_of(admin_grant), ErrorCode::NotOwner);
    hub.shutdown().await?;
    Ok(())
}

async fn requests_without_a_valid_token_or_with_unknown_fields_are_refused(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let anonymous = kachery_client::HubUserClient::new(hub.public_url().clone(), None);
    assert_eq!(code_of(anonymous.me().await), ErrorCode::Unauthenticated);
    let forged = kachery_client::HubUserClient::new(
        hub.public_url().clone(),
        Some(format!("kat_{}", "A".repeat(43))),
    );
    assert_eq!(code_of(forged.me().await), ErrorCode::Unauthenticated);

    // Unknown request fields are 422 with our JSON error body, not axum's plain text.
    let alice = sign_in(&hub, "alice@example.org").await;
    let me = alice.me().await?;
    assert!(me.dev_login && !me.admin);
    let http = reqwest::Client::new();
    let url = hub.public_url().join("/api/v1/dev/token")?;
    let response = http
        .post(url.clone())
        .json(&serde_json::json!({"email": "a@b.org", "admin": true}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 422);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["error"]["code"], "validation_failed");

    let response = http.post(url).body("{not json").send().await?;
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["error"]["code"], "invalid_json");
    hub.shutdown().await?;
    Ok(())
}

//! Effective roles E = requested ∩ granted, enforced at every credential (SPEC §5).

use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::UploadItem;
use kachery_protocol::{Band, Sha1Hash};

use crate::common::*;

on_both_backends!(
    only_requested_and_granted_roles_are_effective,
    revoking_a_grant_or_deleting_the_channel_leaves_no_roles,
    leaving_or_lowering_requested_roles_reduces_e,
);

async fn only_requested_and_granted_roles_are_effective(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let bob = sign_in(&hub, "bob@example.org").await;
    let channel = create_channel(&alice, "lab.roles").await;
    let node = register_node(&hub, &bob, &node_key(20), "bob@example.org").await;

    // Requested: requestFiles + provideFiles. Granted: requestFiles + provideTasks.
    // So provideFiles is requested-not-granted and provideTasks granted-not-requested.
    bob.join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideTasks"),
        )
        .await?;

    let config = node
        .node_config(None)
        .await?
        .config
        .expect("first fetch has a config");
    assert_eq!(config.memberships.len(), 1);
    assert_eq!(config.memberships[0].effective_roles, roles("requestFiles"));
    assert_eq!(
        config.memberships[0].requested_roles,
        roles("requestFiles,provideFiles")
    );

    let credential = node.pubsub_credential(&channel).await?;
    assert_eq!(credential.publish, vec![Band::RequestFiles]);
    assert_eq!(credential.subscribe, vec![Band::ProvideFiles]);

    // Without provideFiles in E, upload URLs are refused for the whole batch.
    let items = vec![UploadItem::File {
        sha1: Sha1Hash::of(b"x"),
        size: 1,
    }];
    let error = node.upload_urls(&channel, items).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::MissingRole));
    assert!(error.to_string().contains("provideFiles"), "{error}");

    // The etag makes an unchanged config cheap; a change moves it.
    let first = node.node_config(None).await?;
    let same = node.node_config(Some(first.etag.clone())).await?;
    assert!(same.unchanged && same.config.is_none());
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideFiles"),
        )
        .await?;
    let changed = node.node_config(Some(first.etag.clone())).await?;
    assert!(!changed.unchanged);
    assert_eq!(
        changed.config.unwrap().memberships[0].effective_roles,
        roles("requestFiles,provideFiles")
    );
    hub.shutdown().await?;
    Ok(())
}

async fn revoking_a_grant_or_deleting_the_channel_leaves_no_roles(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let channel = create_channel(&alice, "lab.revoke").await;
    let node = register_node(&hub, &alice, &node_key(21), "alice@example.org").await;

    // A grant made before the node joins still counts once it does.
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles"),
        )
        .await?;
    alice
        .join(node.node_id(), &channel, roles("requestFiles"))
        .await?;
    node.pubsub_credential(&channel).await?;

    alice.revoke(&channel, node.node_id(), node.owner()).await?;
    assert_eq!(
        code_of(node.pubsub_credential(&channel).await),
        ErrorCode::NoRoles
    );

    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles"),
        )
        .await?;
    node.pubsub_credential(&channel).await?;
    alice.delete_channel(&channel).await?;
    assert_eq!(
        code_of(node.pubsub_credential(&channel).await),
        ErrorCode::NoRoles
    );
    assert_eq!(
        code_of(node.download_urls(&channel, Vec::new()).await),
        ErrorCode::NoRoles
    );

    let config = node.node_config(None).await?.config.unwrap();
    assert!(config.memberships[0].deleted);
    assert!(config.memberships[0].effective_roles.is_empty());

    // Names are never reused, deleted channels included.
    let again = alice
        .create_channel(&kachery_protocol::user_api::CreateChannelRequest {
            name: channel.clone(),
            bucket: None,
            pubsub: None,
            secrets: Default::default(),
        })
        .await;
    assert_eq!(code_of(again), ErrorCode::ChannelExists);
    // Nor is one that differs only in letter case: it could pass for the other.
    let upper = channel.as_str().to_uppercase();
    let look_alike = alice
        .create_channel(&kachery_protocol::user_api::CreateChannelRequest {
            name: kachery_protocol::ChannelName::parse(&upper)?,
            bucket: None,
            pubsub: None,
            secrets: Default::default(),
        })
        .await;
    assert_eq!(code_of(look_alike), ErrorCode::ChannelExists);
    hub.shutdown().await?;
    Ok(())
}

async fn leaving_or_lowering_requested_roles_reduces_e(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let channel = create_channel(&alice, "lab.leave").await;
    let node = register_node(&hub, &alice, &node_key(22), "alice@example.org").await;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideFiles"),
        )
        .await?;
    alice
        .join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;
    assert_eq!(
        code_of(
            alice
                .join(node.node_id(), &channel, roles("requestFiles"))
                .await
        ),
        ErrorCode::AlreadyMember
    );

    let view = alice
        .update_membership(node.node_id(), &channel, roles("provideFiles"))
        .await?;
    assert_eq!(view.effective_roles, roles("provideFiles"));
    let credential = node.pubsub_credential(&channel).await?;
    assert_eq!(credential.publish, vec![Band::ProvideFiles]);

    alice.leave(node.node_id(), &channel).await?;
    assert_eq!(
        code_of(node.pubsub_credential(&channel).await),
        ErrorCode::NoRoles
    );

    // Joining a channel that does not exist.
    let missing = alice
        .join(
            node.node_id(),
            &channel_name("no.such"),
            roles("requestFiles"),
        )
        .await;
    assert_eq!(code_of(missing), ErrorCode::ChannelNotFound);
    hub.shutdown().await?;
    Ok(())
}

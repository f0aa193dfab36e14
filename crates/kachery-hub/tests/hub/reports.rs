//! The channel test, stats, audit pages and admin lists (SPEC §10.2, §10.3).

use kachery_protocol::Sha1Hash;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::UploadItem;

use crate::common::*;

on_both_backends!(
    channel_test_passes_every_step_on_embedded_backends,
    stats_and_audit_are_for_owners_and_admins,
    admin_lists_are_for_admins_only,
);

async fn channel_test_passes_every_step_on_embedded_backends(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let bob = sign_in(&hub, "bob@example.org").await;
    let channel = create_channel(&alice, "lab.test").await;

    let report = alice.test_channel(&channel).await?;
    assert!(report.bucket.ok, "{:?}", report.bucket);
    assert!(report.pubsub.ok, "{:?}", report.pubsub);
    let names: Vec<_> = report
        .bucket
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "upload",
            "read back",
            "wrong size refused",
            "create-only",
            "delete"
        ]
    );
    assert!(
        report
            .bucket
            .steps
            .iter()
            .all(|step| step.warning.is_none())
    );
    assert!(report.pubsub.steps.len() >= 3);

    assert_eq!(
        code_of(bob.test_channel(&channel).await),
        ErrorCode::NotOwner
    );
    alice.delete_channel(&channel).await?;
    assert_eq!(
        code_of(alice.test_channel(&channel).await),
        ErrorCode::ChannelNotFound
    );
    hub.shutdown().await?;
    Ok(())
}

async fn stats_and_audit_are_for_owners_and_admins(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let bob = sign_in(&hub, "bob@example.org").await;
    let admin = sign_in(&hub, "admin@example.org").await;
    let channel = create_channel(&alice, "lab.stats").await;
    let node = register_node(&hub, &alice, &node_key(50), "alice@example.org").await;
    alice
        .join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles,provideFiles"),
        )
        .await?;
    node.pubsub_credential(&channel).await?;
    let items = vec![UploadItem::File {
        sha1: Sha1Hash::of(b"y"),
        size: 1,
    }];
    node.upload_urls(&channel, items).await?;

    let stats = alice.channel_stats(&channel).await?;
    assert_eq!((stats.n_members, stats.n_grants), (1, 1));
    let counter = |name: &str| {
        stats
            .counters
            .iter()
            .find(|counter| counter.counter == name)
            .map(|counter| counter.value)
    };
    assert_eq!(counter("pubsubCredentials"), Some(1));
    assert_eq!(counter("uploadUrlItems"), Some(1));
    admin.channel_stats(&channel).await?;
    assert_eq!(
        code_of(bob.channel_stats(&channel).await),
        ErrorCode::NotOwner
    );

    // create, join, grant, pubsub credential, upload credential: five entries, in pages.
    let first = alice.channel_audit(&channel, Some(2), None).await?;
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.items[0].action, "credential.upload");
    let cursor = first.next_cursor.clone().expect("more pages follow");
    let second = alice
        .channel_audit(&channel, Some(2), Some(&cursor))
        .await?;
    assert_eq!(second.items.len(), 2);
    assert!(second.items[0].id < first.items[1].id);
    let last = alice
        .channel_audit(&channel, Some(2), second.next_cursor.as_deref())
        .await?;
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].action, "channel.create");
    assert!(last.next_cursor.is_none());
    assert_eq!(
        code_of(bob.channel_audit(&channel, None, None).await),
        ErrorCode::NotOwner
    );
    assert_eq!(
        code_of(alice.channel_audit(&channel, Some(500), None).await),
        ErrorCode::ValidationFailed
    );
    hub.shutdown().await?;
    Ok(())
}

async fn admin_lists_are_for_admins_only(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let admin = sign_in(&hub, "admin@example.org").await;
    let kept = create_channel(&alice, "lab.kept").await;
    let gone = create_channel(&alice, "lab.gone").await;
    alice.delete_channel(&gone).await?;

    let live = admin.admin_channels(false).await?.items;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].name, kept);
    let all = admin.admin_channels(true).await?.items;
    assert_eq!(all.len(), 2);

    let users = admin.admin_users().await?.items;
    let alice_row = users
        .iter()
        .find(|user| user.email.as_str() == "alice@example.org")
        .expect("alice is listed");
    assert_eq!(alice_row.n_channels, 1);

    assert_eq!(
        code_of(alice.admin_channels(false).await),
        ErrorCode::Forbidden
    );
    assert_eq!(code_of(alice.admin_users().await), ErrorCode::Forbidden);
    hub.shutdown().await?;
    Ok(())
}

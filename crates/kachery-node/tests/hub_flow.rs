//! A node started before it is registered becomes active by itself: the reconcile loop
//! keeps retrying, shows why it fails, and opens the channel link once the owner registers
//! the node, joins a channel and grants roles — all without a restart (SPEC §13.2).

mod common;

use std::future::Future;
use std::time::Duration;

use kachery_client::local_api::NodeStatus;
use kachery_client::{HubUserClient, LocalClient, now_ms, registration_envelope};
use kachery_hub::HubConfig;
use kachery_node::{NodeConfig, load_or_create_identity};
use kachery_protocol::user_api::CreateChannelRequest;
use kachery_protocol::{ChannelName, Email, Label, RoleSet};

/// Polls `status` until `done` holds; fails with the last status after a generous
/// deadline (a liveness bound, not a timing assertion).
async fn wait_for_status(
    client: &LocalClient,
    what: &str,
    done: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    let mut last = None;
    for _ in 0..300 {
        let status = client.status().await.expect("the local api answers");
        if done(&status) {
            return status;
        }
        last = Some(status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting for {what}; last status: {last:#?}");
}

async fn ok<T, E: std::fmt::Display>(call: impl Future<Output = Result<T, E>>, what: &str) -> T {
    call.await
        .unwrap_or_else(|error| panic!("{what} failed: {error}"))
}

#[tokio::test]
async fn a_node_started_before_registration_links_up_after_register_join_and_grant() {
    let (dir, paths) = common::temp_paths();
    let hub = kachery_hub::spawn(HubConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("hub"),
        dev_login: true,
        ..HubConfig::default()
    })
    .await
    .expect("the hub starts");
    let owner = Email::parse("alice@example.org").unwrap();
    let mut alice = HubUserClient::new(hub.public_url().clone(), None);
    let token = ok(alice.dev_token(&owner), "dev login").await;
    alice.set_token(Some(token.token));
    let channel = ChannelName::parse("lab.flow").unwrap();
    let create = CreateChannelRequest {
        name: channel.clone(),
        bucket: None,
        pubsub: None,
        secrets: Default::default(),
    };
    ok(alice.create_channel(&create), "channel creation").await;

    // The daemon starts first and cannot reconcile yet.
    let config = NodeConfig {
        hub_url: Some(hub.public_url().clone()),
        owner: Some(owner.clone()),
        ..common::local_only_config()
    };
    let (node, client) = common::start(&paths, config).await;
    let unregistered = wait_for_status(&client, "a reconcile error", |status| {
        status
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("kachery node register"))
    })
    .await;
    assert!(unregistered.local_only_reason.is_none());

    // Registration with the daemon's own key, then a membership without a grant.
    let identity = load_or_create_identity(&paths.node_dir).unwrap();
    assert_eq!(identity.node_id, node.node_id());
    let origin = hub.public_url().origin().ascii_serialization();
    let label = Label::parse("flow node").unwrap();
    let envelope = registration_envelope(
        &identity.signing_key,
        owner.clone(),
        label,
        &origin,
        now_ms(),
    )
    .unwrap();
    ok(alice.register_node(envelope), "registration").await;
    let roles: RoleSet = "requestFiles,provideFiles".parse().unwrap();
    ok(alice.join(&node.node_id(), &channel, roles), "join").await;

    let joined = wait_for_status(&client, "the membership", |status| {
        status.last_error.is_none() && !status.channels.is_empty()
    })
    .await;
    assert_eq!(
        joined.channels[0].link_state, "none",
        "no roles granted yet: no link"
    );
    assert!(joined.channels[0].effective_roles.is_empty());

    // The grant reaches the node at its next reconcile; the link comes up.
    ok(
        alice.grant(&channel, &node.node_id(), &owner, roles),
        "grant",
    )
    .await;
    let linked = wait_for_status(&client, "the link to come up", |status| {
        status
            .channels
            .first()
            .is_some_and(|channel| channel.link_state == "up")
    })
    .await;
    assert_eq!(linked.channels[0].effective_roles, roles);
    assert!(
        linked.channels[0]
            .token_expires_at
            .is_some_and(|expires| expires > now_ms())
    );

    // The link change is reported to the hub.
    let mut reported_up = false;
    for _ in 0..300 {
        let view = ok(alice.node(&node.node_id()), "node view").await;
        let report = view.last_report.unwrap_or_default();
        if report.to_string().contains(r#""linkState":"up""#) {
            reported_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reported_up, "the hub never heard that the link is up");

    node.shutdown().await;
    hub.shutdown().await.expect("the hub stops cleanly");
}

//! The life of a broker session: authentication, renewal, expiry, revocation by the hub,
//! rate limits, and a client whose broker disappears.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kachery_protocol::pubsub::{BrokerClientFrame, BrokerServerFrame};
use kachery_protocol::roles::Capability;
use kachery_protocol::{Band, ChannelName, RoleSet};
use kachery_pubsub::{
    BrokerLimits, BrokerTokenKey, ClientOptions, ConnectError, EmbeddedIssuer, Incoming,
    PublishError, PubsubConnection, ReauthError,
};
use tokio_tungstenite::tungstenite::Message;

use common::*;

fn refused_code(
    outcome: Result<(PubsubConnection, kachery_pubsub::Ready), ConnectError>,
) -> String {
    match outcome {
        Err(ConnectError::Refused { code, .. }) => code,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got ready"),
    }
}

#[tokio::test]
async fn bad_and_expired_tokens_are_refused() {
    let hub = spawn_hub().await;
    let node = TestNode::new(1);

    let garbage = PubsubConnection::connect(&hub.url, "not-a-token").await;
    assert_eq!(refused_code(garbage), "invalid_token");

    let foreign_issuer = EmbeddedIssuer::new(BrokerTokenKey::new([7; 32]), hub.url.clone());
    let foreign_hub = TestHub {
        issuer: foreign_issuer,
        ..spawn_hub().await
    };
    let foreign_token = foreign_hub.token(&node, "lab", "requestFiles", 60_000);
    let foreign = PubsubConnection::connect(&hub.url, &foreign_token).await;
    assert_eq!(refused_code(foreign), "invalid_token");

    let expired_token = hub.token(&node, "lab", "requestFiles", -1);
    let expired = PubsubConnection::connect(&hub.url, &expired_token).await;
    assert_eq!(refused_code(expired), "token_expired");

    let mut socket = raw_connect(&hub.url).await;
    raw_send(
        &mut socket,
        &BrokerClientFrame::Sub {
            band: Band::RequestFiles,
        },
    )
    .await;
    assert_eq!(raw_refusal(&mut socket).await, "auth_required");
    assert!(
        raw_next(&mut socket).await.is_none(),
        "the broker closes after a refused auth"
    );
    assert_eq!(hub.broker.connection_count(), 0);
}

#[tokio::test]
async fn silence_after_connecting_times_out() {
    let limits = BrokerLimits {
        auth_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let hub = spawn_hub_with(limits).await;
    let mut socket = raw_connect(&hub.url).await;
    assert_eq!(raw_refusal(&mut socket).await, "auth_timeout");
    assert!(raw_next(&mut socket).await.is_none());
}

#[tokio::test]
async fn an_unrenewed_token_expires_with_revoked() {
    let hub = spawn_hub().await;
    let token = hub.token(&TestNode::new(1), "lab", "requestFiles", 300);
    let (mut link, _) = PubsubConnection::connect(&hub.url, &token).await.unwrap();

    let Incoming::Revoked { reason } = next_event(&mut link).await else {
        panic!("expected revoked")
    };
    assert_eq!(reason, "expired");
    assert!(matches!(
        next_event(&mut link).await,
        Incoming::Closed { .. }
    ));
    assert_eq!(hub.broker.connection_count(), 0);
}

#[tokio::test]
async fn reauth_with_a_fresh_token_extends_the_session() {
    let hub = spawn_hub().await;
    let (node, listener) = (TestNode::new(1), TestNode::new(2));
    let short_token = hub.token(&node, "lab", "requestFiles", 400);
    let (link, first) = PubsubConnection::connect(&hub.url, &short_token)
        .await
        .unwrap();
    let (mut listener_link, _) = hub
        .join(&listener, "lab", "provideFiles", &[Band::RequestFiles])
        .await;

    let fresh_token = hub.token(&node, "lab", "requestFiles", 60_000);
    let renewed = link.reauth(&fresh_token).await.unwrap();
    assert!(renewed.expires_at > first.expires_at);
    assert_eq!(renewed.publish, [Band::RequestFiles]);

    // Past the first token's expiry the session still works.
    tokio::time::sleep(Duration::from_millis(500)).await;
    link.publisher()
        .publish(Band::RequestFiles, request_file(&node, "lab", 9))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut listener_link).await,
        (Band::RequestFiles, 9)
    );
    assert_eq!(hub.broker.connection_count(), 2);
}

#[tokio::test]
async fn reauth_for_another_node_closes_the_session() {
    let hub = spawn_hub().await;
    let node = TestNode::new(1);
    let (mut link, _) = hub.join(&node, "lab", "requestFiles", &[]).await;

    let other_token = hub.token(&TestNode::new(2), "lab", "requestFiles", 60_000);
    let refused = link.reauth(&other_token).await;
    assert!(
        matches!(&refused, Err(ReauthError::Refused { code, .. }) if code == "identity_changed"),
        "{refused:?}"
    );
    assert_eq!(next_refusal(&mut link).await, "identity_changed");
    assert!(matches!(
        next_event(&mut link).await,
        Incoming::Closed { .. }
    ));
}

#[tokio::test]
async fn a_partial_reduction_closes_the_link_so_the_node_fetches_its_new_roles() {
    let hub = spawn_hub().await;
    let (sender, member) = (TestNode::new(1), TestNode::new(2));
    let both = "requestFiles,provideFiles";
    let (_sender_link, _) = hub.join(&sender, "lab", both, &[]).await;
    let (mut member_link, _) = hub
        .join(
            &member,
            "lab",
            both,
            &[Band::RequestFiles, Band::ProvideFiles],
        )
        .await;

    // The member keeps only requestFiles: it loses its subscription to requestFiles at
    // once, and its connection is closed so its node asks the hub for a new credential.
    let channel = ChannelName::parse("lab").unwrap();
    let narrowed = "requestFiles".parse::<RoleSet>().unwrap().capability();
    let n_connections =
        hub.broker
            .update_capability(&channel, &member.id(), &member.owner, narrowed.clone());
    assert_eq!(n_connections, 1);
    assert_eq!(hub.subscribers("lab", Band::RequestFiles), 0);
    let Incoming::Revoked { reason } = next_event(&mut member_link).await else {
        panic!("expected revoked")
    };
    assert_eq!(reason, "roles_changed");
    assert!(matches!(
        next_event(&mut member_link).await,
        Incoming::Closed { .. }
    ));

    // A fresh token for the narrowed roles connects, and a reduction that takes nothing
    // more away leaves it alone.
    let (mut renewed_link, _) = hub
        .join(&member, "lab", "requestFiles", &[Band::ProvideFiles])
        .await;
    hub.broker
        .update_capability(&channel, &member.id(), &member.owner, narrowed);
    assert_eq!(hub.subscribers("lab", Band::ProvideFiles), 1);

    // Emptying it revokes with roles_removed.
    hub.broker
        .update_capability(&channel, &member.id(), &member.owner, Capability::default());
    let Incoming::Revoked { reason } = next_event(&mut renewed_link).await else {
        panic!("expected revoked")
    };
    assert_eq!(reason, "roles_removed");
    assert_eq!(hub.broker.connection_count(), 1);
}

#[tokio::test]
async fn closing_a_channel_revokes_only_its_connections() {
    let hub = spawn_hub().await;
    let (mut lab_link, _) = hub
        .join(&TestNode::new(1), "lab", "requestFiles", &[])
        .await;
    let (_lab_b_link, _) = hub
        .join(&TestNode::new(2), "lab.b", "requestFiles", &[])
        .await;

    let n_closed = hub
        .broker
        .close_channel(&ChannelName::parse("lab").unwrap(), "channel_deleted");
    assert_eq!(n_closed, 1);
    let Incoming::Revoked { reason } = next_event(&mut lab_link).await else {
        panic!("expected revoked")
    };
    assert_eq!(reason, "channel_deleted");
    assert_eq!(hub.broker.connection_count(), 1);
}

#[tokio::test]
async fn frames_over_the_rate_are_dropped_with_one_err() {
    let limits = BrokerLimits {
        frames_per_second: 1,
        frame_burst: 3,
        ..Default::default()
    };
    let hub = spawn_hub_with(limits).await;
    let node = TestNode::new(1);
    let mut socket = raw_connect(&hub.url).await;
    let token = hub.token(&node, "lab", "provideFiles", 60_000);
    raw_send(&mut socket, &BrokerClientFrame::Auth { token }).await;
    assert!(matches!(
        raw_next(&mut socket).await,
        Some(BrokerServerFrame::Ready { .. })
    ));

    // Two allowed frames, then a burst over the limit; the denied sub proves frames 1-2
    // were handled normally and only one rate_limited err follows for the rest.
    raw_send(
        &mut socket,
        &BrokerClientFrame::Sub {
            band: Band::RequestFiles,
        },
    )
    .await;
    raw_send(&mut socket, &BrokerClientFrame::Sub { band: Band::Probe }).await;
    assert_eq!(raw_refusal(&mut socket).await, "subscribe_denied");
    for _ in 0..5 {
        raw_send(
            &mut socket,
            &BrokerClientFrame::Sub {
                band: Band::RequestFiles,
            },
        )
        .await;
    }
    assert_eq!(raw_refusal(&mut socket).await, "rate_limited");
    assert_eq!(hub.subscribers("lab", Band::RequestFiles), 1);
}

#[tokio::test]
async fn a_vanished_broker_yields_closed_and_no_panic() {
    // A fake broker that answers auth and then drops the socket without a close frame.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/pubsub/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        let _auth = socket.next().await;
        let ready = BrokerServerFrame::Ready {
            expires_at: i64::MAX,
            publish: vec![],
            subscribe: vec![],
        };
        socket
            .send(Message::text(serde_json::to_string(&ready).unwrap()))
            .await
            .unwrap();
        drop(socket);
    });

    let options = ClientOptions {
        flush_delay: Duration::from_millis(1),
        ..Default::default()
    };
    let (mut link, _) = PubsubConnection::connect_with_options(&url, "t", options)
        .await
        .unwrap();
    let Incoming::Closed { error } = next_event(&mut link).await else {
        panic!("expected closed")
    };
    assert!(error.is_some(), "the socket ended without a close frame");
    assert!(link.incoming().recv().await.is_none());

    let node = TestNode::new(1);
    let outcome = link
        .publisher()
        .publish(Band::RequestFiles, request_file(&node, "lab", 1))
        .await;
    assert!(matches!(outcome, Err(PublishError::Closed)), "{outcome:?}");
    assert!(matches!(link.reauth("t").await, Err(ReauthError::Closed)));
}

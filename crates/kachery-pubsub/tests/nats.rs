//! The NATS backend against a real `nats-server` in operator (JWT) mode: user JWTs minted
//! the way the hub mints them, connections through the node's client.
//!
//! The server itself must refuse bands outside a node's roles, and a node that renews
//! short-lived credentials must lose no message while its old credential expires.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use kachery_protocol::pubsub::PubsubEnvelope;
use kachery_protocol::{Band, ChannelName, RoleSet};
use kachery_pubsub::nats::NatsIssuer;
use kachery_pubsub::nats::NatsUserKey;
use kachery_pubsub::nats::test_server::NatsTestServer;
use kachery_pubsub::{
    ClientOptions, CredentialIssuer, CredentialRequest, Incoming, PubsubClient, PubsubConnection,
};

use common::{TestNode, file_status, next_event, now_ms, request_file, tag_of};

const CHANNEL: &str = "lab.nats";

/// A NATS credential for `node` with `roles`, bound to `user_key`, living `ttl_ms`.
fn credential(
    server: &NatsTestServer,
    node: &TestNode,
    roles: &str,
    user_key: &NatsUserKey,
    ttl_ms: i64,
) -> kachery_protocol::node_api::PubsubCredential {
    let issuer = NatsIssuer::new(
        std::slice::from_ref(&server.url),
        &server.account,
        &server.signing_seed,
    )
    .unwrap()
    .with_ttl_ms(ttl_ms);
    let capability = roles.parse::<RoleSet>().unwrap().capability();
    let public_key = user_key.public_key();
    let request = CredentialRequest {
        node_id: &node.id(),
        owner: &node.owner,
        channel: &ChannelName::parse(CHANNEL).unwrap(),
        capability: &capability,
        now_ms: now_ms(),
        nats_user_key: Some(&public_key),
    };
    issuer.issue(&request).unwrap().credential
}

/// Connects `node` with `roles` and subscribes to `bands`.
async fn join(
    server: &NatsTestServer,
    node: &TestNode,
    roles: &str,
    bands: &[Band],
    ttl_ms: i64,
) -> (PubsubConnection, NatsUserKey) {
    let user_key = NatsUserKey::generate();
    let options = ClientOptions {
        nats_user_key: Some(user_key.clone()),
        flush_delay: Duration::from_millis(20),
        ..ClientOptions::default()
    };
    let credential = credential(server, node, roles, &user_key, ttl_ms);
    let (connection, _ready) = PubsubConnection::open(&credential, options).await.unwrap();
    for band in bands {
        connection.subscribe(*band).await.unwrap();
    }
    // A flush round-trips to the server, so the subscriptions are in place after it.
    connection.publisher().flush().await.unwrap();
    (connection, user_key)
}

/// The next message, skipping nothing: refusals and closes fail the test.
async fn next_tag(connection: &mut PubsubConnection) -> (Band, u8) {
    match next_event(connection).await {
        Incoming::Message { band, envelope } => (band, tag_of(&envelope)),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn the_server_refuses_publish_and_subscribe_outside_the_roles() {
    let server = NatsTestServer::start();
    let requester = TestNode::new(1);
    let provider = TestNode::new(2);
    let minute = 60_000;

    // requestFiles: publish requestFiles, subscribe provideFiles.
    let (mut requester_conn, _) = join(
        &server,
        &requester,
        "requestFiles",
        &[Band::ProvideFiles],
        minute,
    )
    .await;
    // provideFiles: subscribe requestFiles, publish provideFiles.
    let (mut provider_conn, _) = join(
        &server,
        &provider,
        "provideFiles",
        &[Band::RequestFiles],
        minute,
    )
    .await;

    // Allowed both ways.
    let requests = requester_conn.publisher();
    requests
        .publish(Band::RequestFiles, request_file(&requester, CHANNEL, 1))
        .await
        .unwrap();
    assert_eq!(next_tag(&mut provider_conn).await, (Band::RequestFiles, 1));
    let statuses = provider_conn.publisher();
    statuses
        .publish(Band::ProvideFiles, file_status(&provider, CHANNEL, 2))
        .await
        .unwrap();
    assert_eq!(next_tag(&mut requester_conn).await, (Band::ProvideFiles, 2));

    // The requester publishes a status, which only providers may: the server refuses it
    // and nobody hears it. The provider may not subscribe to statuses either.
    requests
        .publish(Band::ProvideFiles, file_status(&requester, CHANNEL, 3))
        .await
        .unwrap();
    requests.flush().await.unwrap();
    match next_event(&mut requester_conn).await {
        Incoming::Refused { code, message } => {
            assert_eq!(code, "permission_denied", "{message}");
            assert!(
                message.contains("kachery.lab.nats.provideFiles"),
                "{message}"
            );
        }
        other => panic!("expected the server's refusal, got {other:?}"),
    }
    provider_conn.subscribe(Band::ProvideFiles).await.unwrap();
    statuses.flush().await.unwrap();
    match next_event(&mut provider_conn).await {
        Incoming::Refused { code, message } => {
            assert_eq!(code, "permission_denied", "{message}");
        }
        other => panic!("expected the server's refusal, got {other:?}"),
    }

    // Fences: messages on one connection arrive in order, so when the next allowed
    // message arrives first, the refused ones were never delivered.
    statuses
        .publish(Band::ProvideFiles, file_status(&provider, CHANNEL, 4))
        .await
        .unwrap();
    assert_eq!(next_tag(&mut requester_conn).await, (Band::ProvideFiles, 4));
    requests
        .publish(Band::RequestFiles, request_file(&requester, CHANNEL, 5))
        .await
        .unwrap();
    assert_eq!(next_tag(&mut provider_conn).await, (Band::RequestFiles, 5));
}

#[tokio::test]
async fn renewing_short_credentials_loses_no_message() {
    let server = NatsTestServer::start();
    let requester = TestNode::new(1);
    let provider = TestNode::new(2);
    // NATS expiry has whole seconds: this credential lasts 2 to 3 s.
    let ttl_ms = 3_000;

    let (sender, sender_key) = join(&server, &requester, "requestFiles", &[], ttl_ms).await;
    let (mut receiver, receiver_key) = join(
        &server,
        &provider,
        "provideFiles",
        &[Band::RequestFiles],
        ttl_ms,
    )
    .await;

    // Publish steadily for about three credential lifetimes while both sides renew
    // every second, each time with a fresh JWT.
    let n_messages: u8 = 120;
    let publishing = tokio::spawn({
        let publisher = sender.publisher();
        async move {
            for tag in 0..n_messages {
                let envelope = request_file(&TestNode::new(1), CHANNEL, tag);
                publisher
                    .publish(Band::RequestFiles, envelope)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            publisher.flush().await.unwrap();
        }
    });
    let mut received = BTreeSet::new();
    let mut n_duplicates = 0;
    let mut n_renewals = 0;
    let mut renew_at = tokio::time::Instant::now() + Duration::from_secs(1);
    while received.len() < usize::from(n_messages) {
        tokio::select! {
            event = next_event(&mut receiver) => match event {
                Incoming::Message { envelope, .. } => {
                    if !received.insert(nonce_of(&envelope)) {
                        n_duplicates += 1;
                    }
                }
                other => panic!("expected only messages while renewing, got {other:?}"),
            },
            () = tokio::time::sleep_until(renew_at) => {
                let fresh = credential(&server, &requester, "requestFiles", &sender_key, ttl_ms);
                sender.renew(&fresh).await.unwrap();
                let fresh = credential(&server, &provider, "provideFiles", &receiver_key, ttl_ms);
                receiver.renew(&fresh).await.unwrap();
                n_renewals += 1;
                renew_at += Duration::from_secs(1);
            }
        }
    }
    assert!(
        n_renewals >= 3,
        "the test outran the credentials ({n_renewals} renewals)"
    );
    publishing.await.unwrap();
    eprintln!("received all {n_messages} messages, {n_duplicates} duplicates dropped by nonce");

    // The credentials really expire: a connection that does not renew is cut off.
    let (mut lapsing, _) = join(&server, &provider, "provideFiles", &[], ttl_ms).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match lapsing.incoming().recv().await {
                Some(Incoming::Closed { .. }) | None => return true,
                Some(_) => {}
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true), "an expired NATS credential kept working");
}

fn nonce_of(envelope: &PubsubEnvelope) -> String {
    envelope.body["nonce"].as_str().unwrap().to_owned()
}

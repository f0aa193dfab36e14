//! Who hears what: delivery between nodes, band and channel isolation, and the broker's
//! refusals of frames outside a token's rights.

mod common;

use std::collections::HashSet;

use kachery_protocol::pubsub::{BrokerBatch, BrokerClientFrame, BrokerServerFrame, check_received};
use kachery_protocol::{Band, ChannelName};
use kachery_pubsub::{Incoming, PublishError};

use common::*;

#[tokio::test]
async fn two_nodes_exchange_signed_envelopes() {
    let hub = spawn_hub().await;
    let (requester, provider) = (TestNode::new(1), TestNode::new(2));
    let (mut requester_link, ready) = hub
        .join(&requester, "lab", "requestFiles", &[Band::ProvideFiles])
        .await;
    assert_eq!(ready.publish, [Band::RequestFiles]);
    let (mut provider_link, _) = hub
        .join(&provider, "lab", "provideFiles", &[Band::RequestFiles])
        .await;

    let request = request_file(&requester, "lab", 7);
    requester_link
        .publisher()
        .publish(Band::RequestFiles, request)
        .await
        .unwrap();
    let Incoming::Message { band, envelope } = next_event(&mut provider_link).await else {
        panic!("provider expected the request");
    };
    assert_eq!(band, Band::RequestFiles);
    assert_eq!(envelope.from_node_id, requester.id());
    let channel = ChannelName::parse("lab").unwrap();
    check_received(&envelope, band, &channel, now_ms(), |_, _| false).unwrap();

    provider_link
        .publisher()
        .publish(Band::ProvideFiles, file_status(&provider, "lab", 8))
        .await
        .unwrap();
    let Incoming::Message { band, envelope } = next_event(&mut requester_link).await else {
        panic!("requester expected the status");
    };
    assert_eq!((band, tag_of(&envelope)), (Band::ProvideFiles, 8));
    check_received(&envelope, band, &channel, now_ms(), |_, _| false).unwrap();
}

#[tokio::test]
async fn a_publisher_does_not_hear_itself() {
    let hub = spawn_hub().await;
    let (alice, bob) = (TestNode::new(1), TestNode::new(2));
    let both = "requestFiles,provideFiles";
    let (mut alice_link, _) = hub.join(&alice, "lab", both, &[Band::RequestFiles]).await;
    let (mut bob_link, _) = hub.join(&bob, "lab", both, &[Band::RequestFiles]).await;

    alice_link
        .publisher()
        .publish(Band::RequestFiles, request_file(&alice, "lab", 1))
        .await
        .unwrap();
    assert_eq!(next_message(&mut bob_link).await, (Band::RequestFiles, 1));

    // Alice's own message, had it come back, would be queued before Bob's.
    bob_link
        .publisher()
        .publish(Band::RequestFiles, request_file(&bob, "lab", 2))
        .await
        .unwrap();
    assert_eq!(next_message(&mut alice_link).await, (Band::RequestFiles, 2));
}

#[tokio::test]
async fn publishing_outside_the_capability_is_refused() {
    let hub = spawn_hub().await;
    let (requester, provider) = (TestNode::new(1), TestNode::new(2));
    let (mut requester_link, _) = hub.join(&requester, "lab", "requestFiles", &[]).await;
    let (mut provider_link, _) = hub
        .join(
            &provider,
            "lab",
            "provideFiles,requestFiles",
            &[Band::ProvideFiles],
        )
        .await;

    let status = file_status(&requester, "lab", 3);
    requester_link
        .publisher()
        .publish(Band::ProvideFiles, status)
        .await
        .unwrap();
    assert_eq!(next_refusal(&mut requester_link).await, "publish_denied");

    // The refused status never arrives: the next thing the provider hears is this.
    let (other_link, _) = hub
        .join(&TestNode::new(3), "lab", "provideFiles", &[])
        .await;
    other_link
        .publisher()
        .publish(Band::ProvideFiles, file_status(&TestNode::new(3), "lab", 4))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut provider_link).await,
        (Band::ProvideFiles, 4)
    );
}

#[tokio::test]
async fn subscribing_outside_the_capability_is_refused() {
    let hub = spawn_hub().await;
    let (mut link, ready) = hub
        .join(&TestNode::new(1), "lab", "requestFiles", &[])
        .await;
    assert!(!ready.subscribe.contains(&Band::RequestFiles));

    link.subscribe(Band::RequestFiles).await.unwrap();
    assert_eq!(next_refusal(&mut link).await, "subscribe_denied");
    assert_eq!(hub.subscribers("lab", Band::RequestFiles), 0);

    link.subscribe(Band::Probe).await.unwrap();
    assert_eq!(next_refusal(&mut link).await, "subscribe_denied");
}

#[tokio::test]
async fn an_envelope_from_another_node_is_refused() {
    let hub = spawn_hub().await;
    let (mallory, victim) = (TestNode::new(1), TestNode::new(2));
    let (mut link, _) = hub.join(&mallory, "lab", "requestFiles", &[]).await;

    let forged = request_file(&victim, "lab", 5);
    link.publisher()
        .publish(Band::RequestFiles, forged)
        .await
        .unwrap();
    assert_eq!(next_refusal(&mut link).await, "wrong_sender");
}

#[tokio::test]
async fn oversize_envelopes_and_frames_are_refused() {
    let hub = spawn_hub().await;
    let node = TestNode::new(1);
    let (link, _) = hub.join(&node, "lab", "requestFiles", &[]).await;

    // The client refuses before sending.
    let mut huge = request_file(&node, "lab", 1);
    huge.body["padding"] = "x".repeat(17_000).into();
    let refused = link
        .publisher()
        .publish(Band::RequestFiles, huge.clone())
        .await;
    assert!(
        matches!(refused, Err(PublishError::EnvelopeTooLarge { .. })),
        "{refused:?}"
    );

    // The broker refuses too, for clients that do not check.
    let mut socket = raw_connect(&hub.url).await;
    let token = hub.token(&node, "lab", "requestFiles", 60_000);
    raw_send(&mut socket, &BrokerClientFrame::Auth { token }).await;
    assert!(matches!(
        raw_next(&mut socket).await,
        Some(BrokerServerFrame::Ready { .. })
    ));

    let one_huge = BrokerBatch {
        messages: vec![huge],
    };
    raw_send(
        &mut socket,
        &BrokerClientFrame::Pub {
            band: Band::RequestFiles,
            batch: one_huge,
        },
    )
    .await;
    assert_eq!(raw_refusal(&mut socket).await, "envelope_too_large");

    let mut large = request_file(&node, "lab", 2);
    large.body["padding"] = "x".repeat(12_000).into();
    let three_large = BrokerBatch {
        messages: vec![large.clone(), large.clone(), large],
    };
    raw_send(
        &mut socket,
        &BrokerClientFrame::Pub {
            band: Band::RequestFiles,
            batch: three_large,
        },
    )
    .await;
    assert_eq!(raw_refusal(&mut socket).await, "frame_too_large");
}

#[tokio::test]
async fn channel_lab_and_channel_lab_b_never_hear_each_other() {
    let hub = spawn_hub().await;
    let (lab_sender, lab_b_sender) = (TestNode::new(1), TestNode::new(2));
    let (lab_sender_link, _) = hub.join(&lab_sender, "lab", "requestFiles", &[]).await;
    let (lab_b_sender_link, _) = hub.join(&lab_b_sender, "lab.b", "requestFiles", &[]).await;
    let (mut lab_listener, _) = hub
        .join(
            &TestNode::new(3),
            "lab",
            "provideFiles",
            &[Band::RequestFiles],
        )
        .await;
    let (mut lab_b_listener, _) = hub
        .join(
            &TestNode::new(4),
            "lab.b",
            "provideFiles",
            &[Band::RequestFiles],
        )
        .await;

    let lab_publisher = lab_sender_link.publisher();
    let lab_b_publisher = lab_b_sender_link.publisher();
    lab_publisher
        .publish(Band::RequestFiles, request_file(&lab_sender, "lab", 10))
        .await
        .unwrap();
    lab_b_publisher
        .publish(Band::RequestFiles, request_file(&lab_b_sender, "lab.b", 20))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut lab_listener).await,
        (Band::RequestFiles, 10)
    );
    assert_eq!(
        next_message(&mut lab_b_listener).await,
        (Band::RequestFiles, 20)
    );

    // Both messages went through the broker; a leak would be queued before these.
    lab_publisher
        .publish(Band::RequestFiles, request_file(&lab_sender, "lab", 11))
        .await
        .unwrap();
    lab_b_publisher
        .publish(Band::RequestFiles, request_file(&lab_b_sender, "lab.b", 21))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut lab_listener).await,
        (Band::RequestFiles, 11)
    );
    assert_eq!(
        next_message(&mut lab_b_listener).await,
        (Band::RequestFiles, 21)
    );
}

#[tokio::test]
async fn a_leading_publish_goes_at_once_and_quick_followers_share_one_frame() {
    let hub = spawn_hub().await;
    let node = TestNode::new(1);
    let token = hub.token(&node, "lab", "requestFiles", 60_000);
    let options = kachery_pubsub::ClientOptions {
        flush_delay: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let (link, _) =
        kachery_pubsub::PubsubConnection::connect_with_options(&hub.url, &token, options)
            .await
            .unwrap();

    let listener = TestNode::new(2);
    let mut socket = raw_connect(&hub.url).await;
    let listener_token = hub.token(&listener, "lab", "provideFiles", 60_000);
    raw_send(
        &mut socket,
        &BrokerClientFrame::Auth {
            token: listener_token,
        },
    )
    .await;
    assert!(matches!(
        raw_next(&mut socket).await,
        Some(BrokerServerFrame::Ready { .. })
    ));
    raw_send(
        &mut socket,
        &BrokerClientFrame::Sub {
            band: Band::RequestFiles,
        },
    )
    .await;
    wait_until(|| hub.subscribers("lab", Band::RequestFiles) == 1).await;

    // The band is quiet: the first envelope is not held back.
    let publisher = link.publisher();
    publisher
        .publish(Band::RequestFiles, request_file(&node, "lab", 1))
        .await
        .unwrap();
    let Some(BrokerServerFrame::Msg { batch, .. }) = raw_next(&mut socket).await else {
        panic!("expected a msg frame");
    };
    assert_eq!(batch.messages.iter().map(tag_of).collect::<Vec<_>>(), [1]);

    // Within the 500 ms window after that frame, the next envelopes travel together.
    for tag in 2..=5 {
        publisher
            .publish(Band::RequestFiles, request_file(&node, "lab", tag))
            .await
            .unwrap();
    }
    let Some(BrokerServerFrame::Msg { band, batch }) = raw_next(&mut socket).await else {
        panic!("expected a msg frame");
    };
    assert_eq!(band, Band::RequestFiles);
    let tags: HashSet<u8> = batch.messages.iter().map(tag_of).collect();
    assert_eq!(tags, (2..=5).collect());
}

#[tokio::test]
async fn dropping_a_connection_still_sends_what_was_queued() {
    let hub = spawn_hub().await;
    let node = TestNode::new(1);
    let (mut listener, _) = hub
        .join(
            &TestNode::new(2),
            "lab",
            "provideFiles",
            &[Band::RequestFiles],
        )
        .await;
    let token = hub.token(&node, "lab", "requestFiles", 60_000);
    let options = kachery_pubsub::ClientOptions {
        flush_delay: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let (link, _) =
        kachery_pubsub::PubsubConnection::connect_with_options(&hub.url, &token, options)
            .await
            .unwrap();

    link.publisher()
        .publish(Band::RequestFiles, request_file(&node, "lab", 3))
        .await
        .unwrap();
    drop(link);
    assert_eq!(next_message(&mut listener).await, (Band::RequestFiles, 3));
}

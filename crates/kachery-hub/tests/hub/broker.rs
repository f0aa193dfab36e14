//! Reductions reach live embedded-broker connections at once (SPEC §5.5).

use std::time::Duration;

use kachery_protocol::Band;
use kachery_pubsub::{ClientOptions, Incoming, PubsubConnection};

use crate::common::*;

on_both_backends!(revoking_a_grant_and_deleting_the_channel_close_broker_connections,);

/// The next `Revoked` reason on the connection; a generous bound only guards against hangs.
async fn next_revocation(connection: &mut PubsubConnection) -> String {
    let wait = async {
        while let Some(event) = connection.incoming().recv().await {
            if let Incoming::Revoked { reason } = event {
                return reason;
            }
        }
        panic!("connection closed without a revocation");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("a revocation arrives")
}

async fn revoking_a_grant_and_deleting_the_channel_close_broker_connections(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let channel = create_channel(&alice, "lab.live").await;
    let node = register_node(&hub, &alice, &node_key(50), "alice@example.org").await;
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

    // Revoking the grant empties E: the live socket is told and closed.
    let credential = node.pubsub_credential(&channel).await?;
    let (mut connection, ready) =
        PubsubConnection::open(&credential.credential, ClientOptions::default()).await?;
    assert_eq!(ready.publish, vec![Band::RequestFiles]);
    connection.subscribe(Band::ProvideFiles).await?;
    alice.revoke(&channel, node.node_id(), node.owner()).await?;
    assert_eq!(next_revocation(&mut connection).await, "roles_removed");

    // Deleting the channel does the same to every connection of it.
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles"),
        )
        .await?;
    let credential = node.pubsub_credential(&channel).await?;
    let (mut connection, _ready) =
        PubsubConnection::open(&credential.credential, ClientOptions::default()).await?;
    connection.subscribe(Band::ProvideFiles).await?;
    alice.delete_channel(&channel).await?;
    assert_eq!(next_revocation(&mut connection).await, "channel_deleted");
    hub.shutdown().await?;
    Ok(())
}

//! Node registration with proof of possession (SPEC §3.3).

use kachery_client::{now_ms, registration_envelope};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::{Label, SignedEnvelope};

use crate::common::*;

on_both_backends!(
    valid_registration_creates_the_record,
    each_failed_check_is_registration_invalid,
    duplicate_registration_is_node_exists,
);

fn envelope(seed: u8, owner: &str, hub: &str, timestamp: i64) -> SignedEnvelope {
    let label = Label::parse("laptop").unwrap();
    registration_envelope(&node_key(seed), email(owner), label, hub, timestamp).unwrap()
}

async fn valid_registration_creates_the_record(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;

    let view = alice
        .register_node(envelope(
            1,
            "alice@example.org",
            &hub_origin(&hub),
            now_ms(),
        ))
        .await?;
    assert_eq!(view.node_id, node_id(&node_key(1)));
    assert_eq!(view.label.as_str(), "laptop");

    let listed = alice.nodes().await?;
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].node_id, node_id(&node_key(1)));
    hub.shutdown().await?;
    Ok(())
}

async fn each_failed_check_is_registration_invalid(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let origin = hub_origin(&hub);
    let now = now_ms();

    let wrong_owner = envelope(2, "bob@example.org", &origin, now);
    let wrong_hub = envelope(2, "alice@example.org", "http://127.0.0.1:1", now);
    let expired = envelope(2, "alice@example.org", &origin, now - 2 * 60 * 60 * 1000);
    let mut tampered = envelope(2, "alice@example.org", &origin, now);
    tampered.body["label"] = serde_json::json!("evil");
    for (case, bad) in [
        ("owner", wrong_owner),
        ("hub", wrong_hub),
        ("expired", expired),
        ("tampered", tampered),
    ] {
        let code = code_of(alice.register_node(bad).await);
        assert_eq!(code, ErrorCode::RegistrationInvalid, "case {case}");
    }

    // A reused nonce: the same envelope a second time.
    let once = envelope(3, "alice@example.org", &origin, now);
    alice.register_node(once.clone()).await?;
    assert_eq!(
        code_of(alice.register_node(once).await),
        ErrorCode::RegistrationInvalid
    );

    // Still refused after the record is deleted: the nonce is what is remembered.
    let reused = envelope(4, "alice@example.org", &origin, now);
    alice.register_node(reused.clone()).await?;
    alice.delete_node(&node_id(&node_key(4))).await?;
    assert_eq!(
        code_of(alice.register_node(reused).await),
        ErrorCode::RegistrationInvalid
    );

    // None of the refused ones created a record.
    let listed = alice.nodes().await?;
    assert_eq!(listed.items.len(), 1);
    hub.shutdown().await?;
    Ok(())
}

async fn duplicate_registration_is_node_exists(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let origin = hub_origin(&hub);

    alice
        .register_node(envelope(5, "alice@example.org", &origin, now_ms()))
        .await?;
    let again = alice
        .register_node(envelope(5, "alice@example.org", &origin, now_ms()))
        .await;
    assert_eq!(code_of(again), ErrorCode::NodeExists);

    // The same key under another owner is an independent record.
    let bob = sign_in(&hub, "bob@example.org").await;
    bob.register_node(envelope(5, "bob@example.org", &origin, now_ms()))
        .await?;
    hub.shutdown().await?;
    Ok(())
}

//! Channels on the owner's NATS server or Ably app (SPEC §6.2): settings checked at
//! creation, credentials minted from the vault secret and the effective roles alone.

use base64::Engine as _;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::PubsubCredential;
use kachery_protocol::user_api::CreateChannelRequest;
use kachery_pubsub::nats::NatsUserKey;

use crate::common::*;

on_both_backends!(
    nats_credentials_bind_the_link_key_and_exact_subjects,
    ably_token_requests_carry_the_node_and_its_bands,
    broken_nats_settings_are_refused_before_anything_is_stored,
);

fn create_request(value: serde_json::Value) -> CreateChannelRequest {
    serde_json::from_value(value).expect("a valid create-channel request")
}

fn jwt_claims(jwt: &str) -> serde_json::Value {
    let body = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("JWT claims are base64url");
    serde_json::from_slice(&bytes).expect("JWT claims are JSON")
}

async fn nats_credentials_bind_the_link_key_and_exact_subjects(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let account = nkeys::KeyPair::new_account();
    let signing = nkeys::KeyPair::new_account();

    let nats = |name: &str, secrets: serde_json::Value| {
        create_request(serde_json::json!({
            "name": name,
            "pubsub": {
                "backend": "nats",
                "nats": { "servers": ["nats://127.0.0.1:4222"], "account": account.public_key() },
            },
            "secrets": secrets,
        }))
    };
    let node = register_node(&hub, &alice, &node_key(40), "alice@example.org").await;
    let user_key = NatsUserKey::generate();

    // A channel whose seed is not set: credentials are refused, naming the fix.
    alice
        .create_channel(&nats("lab.noseed", serde_json::json!({})))
        .await?;
    let unseeded = channel_name("lab.noseed");
    alice
        .join(node.node_id(), &unseeded, roles("requestFiles"))
        .await?;
    alice
        .grant(
            &unseeded,
            node.node_id(),
            node.owner(),
            roles("requestFiles"),
        )
        .await?;
    let error = node
        .pubsub_credential_for(&unseeded, Some(user_key.public_key()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    assert!(error.to_string().contains("natsAccountSeed"), "{error}");

    let seed = serde_json::json!({ "natsAccountSeed": signing.seed().unwrap() });
    alice.create_channel(&nats("lab.nats", seed)).await?;
    let channel = channel_name("lab.nats");
    alice
        .join(node.node_id(), &channel, roles("requestFiles"))
        .await?;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("requestFiles"),
        )
        .await?;

    // Without the link's key there is nothing to bind the JWT to.
    let error = node.pubsub_credential(&channel).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    assert!(error.to_string().contains("natsUserKey"), "{error}");

    let response = node
        .pubsub_credential_for(&channel, Some(user_key.public_key()))
        .await?;
    let PubsubCredential::Nats { servers, jwt } = response.credential else {
        panic!("a NATS channel gives NATS credentials");
    };
    assert_eq!(servers, ["nats://127.0.0.1:4222"]);
    let claims = jwt_claims(&jwt);
    assert_eq!(claims["sub"], user_key.public_key());
    assert_eq!(claims["iss"], signing.public_key());
    assert_eq!(claims["nats"]["issuer_account"], account.public_key());
    assert_eq!(
        claims["nats"]["pub"]["allow"],
        serde_json::json!(["kachery.lab.nats.requestFiles"])
    );
    assert_eq!(
        claims["nats"]["sub"]["allow"],
        serde_json::json!(["kachery.lab.nats.provideFiles"])
    );
    assert_eq!(claims["exp"].as_i64(), Some(response.expires_at / 1000));

    // Members see the settings, never the seed.
    let view = alice.channel(&channel).await?;
    let settings = view.pubsub.expect("the owner sees backends");
    assert_eq!(settings.backend, "nats");
    assert_eq!(settings.nats.unwrap().account, account.public_key());
    Ok(())
}

async fn ably_token_requests_carry_the_node_and_its_bands(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let request = create_request(serde_json::json!({
        "name": "lab.ably",
        "pubsub": { "backend": "ably" },
        "secrets": { "ablyApiKey": "appA.keyB:not-a-real-secret-value" },
    }));
    alice.create_channel(&request).await?;
    let channel = channel_name("lab.ably");
    let node = register_node(&hub, &alice, &node_key(41), "alice@example.org").await;
    alice
        .join(node.node_id(), &channel, roles("provideFiles"))
        .await?;
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("provideFiles"),
        )
        .await?;

    let response = node.pubsub_credential(&channel).await?;
    let PubsubCredential::Ably { token_request } = response.credential else {
        panic!("an Ably channel gives token requests");
    };
    assert_eq!(token_request.key_name, "appA.keyB");
    assert_eq!(token_request.client_id, node.node_id().to_string());
    assert_eq!(token_request.ttl, 30 * 60 * 1000);
    assert_eq!(
        token_request.capability,
        r#"{"lab.ably-provideFiles":["publish"],"lab.ably-requestFiles":["subscribe"]}"#
    );
    assert!(!token_request.mac.is_empty());
    Ok(())
}

async fn broken_nats_settings_are_refused_before_anything_is_stored(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let account = nkeys::KeyPair::new_account().public_key();

    let cases = [
        (serde_json::json!({ "backend": "nats" }), "pubsub.nats"),
        (
            serde_json::json!({ "backend": "nats", "nats": { "servers": [], "account": account } }),
            "servers",
        ),
        (
            serde_json::json!({
                "backend": "nats",
                "nats": { "servers": ["http://x:1"], "account": account },
            }),
            "nats://",
        ),
        (serde_json::json!({ "backend": "mqtt" }), "not available"),
    ];
    for (pubsub, expected) in cases {
        let request = create_request(serde_json::json!({ "name": "lab.broken", "pubsub": pubsub }));
        let error = alice.create_channel(&request).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::ValidationFailed), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }

    // A user seed where an account seed belongs: refused without echoing it.
    let user_seed = nkeys::KeyPair::new_user().seed().unwrap();
    let request = create_request(serde_json::json!({
        "name": "lab.broken",
        "pubsub": {
            "backend": "nats",
            "nats": { "servers": ["nats://127.0.0.1:4222"], "account": account },
        },
        "secrets": { "natsAccountSeed": user_seed },
    }));
    let error = alice.create_channel(&request).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::SecretInvalid));
    assert!(!error.to_string().contains(&user_seed), "{error}");

    // Nothing was stored: the name is still free.
    assert_eq!(
        code_of(alice.channel(&channel_name("lab.broken")).await),
        ErrorCode::ChannelNotFound
    );
    Ok(())
}

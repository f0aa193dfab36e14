//! Passcodes (SPEC §5.2, §5.3): E = R ∩ (G ∪ P), shown once, hashed, limited, revocable.

use kachery_client::now_ms;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::hub_views::CreatePasscodeRequest;
use kachery_protocol::{Band, Role};

use crate::common::*;

on_both_backends!(
    a_passcode_adds_its_roles_until_revoked,
    expired_used_up_foreign_and_malformed_passcodes_are_refused_alike,
    joining_with_a_bad_passcode_leaves_no_membership,
);

fn mint_request(roles_text: &str) -> CreatePasscodeRequest {
    CreatePasscodeRequest {
        prefix: Some("lab".into()),
        label: Some("for bob".into()),
        roles: roles(roles_text),
        expires_at: None,
        max_uses: None,
    }
}

async fn a_passcode_adds_its_roles_until_revoked(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let bob = sign_in(&hub, "bob@example.org").await;
    let channel = create_channel(&alice, "lab.codes").await;
    let node = register_node(&hub, &bob, &node_key(40), "bob@example.org").await;
    bob.join(node.node_id(), &channel, roles("requestFiles,provideFiles"))
        .await?;
    assert_eq!(
        code_of(node.pubsub_credential(&channel).await),
        ErrorCode::NoRoles
    );

    // The code comes back once; the list shows only its hint.
    let created = alice
        .create_passcode(&channel, &mint_request("requestFiles"))
        .await?;
    assert!(created.passcode.starts_with("lab-"), "{}", created.passcode);
    assert_eq!(created.passcode.len(), "lab-".len() + 26);
    let listed = alice.passcodes(&channel).await?.items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "active");
    assert!(
        listed[0]
            .hint
            .ends_with(&created.passcode[created.passcode.len() - 4..])
    );
    let listing = serde_json::to_string(&listed)?;
    assert!(!listing.contains(&created.passcode[4..]), "{listing}");

    // Entering it (twice: idempotent, one use) makes requestFiles effective.
    let typed = created.passcode.to_lowercase();
    let linked = bob.enter_passcode(node.node_id(), &channel, &typed).await?;
    assert_eq!(linked.roles, roles("requestFiles"));
    bob.enter_passcode(node.node_id(), &channel, &created.passcode)
        .await?;
    assert_eq!(alice.passcodes(&channel).await?.items[0].use_count, 1);

    let view = bob.node(node.node_id()).await?;
    let membership = &view.memberships[0];
    assert_eq!(membership.passcode_roles, roles("requestFiles"));
    assert_eq!(membership.granted_roles, roles(""));
    assert_eq!(membership.effective_roles, roles("requestFiles"));
    assert_eq!(membership.passcodes.len(), 1);
    let missing: Vec<_> = membership.missing_roles.iter().map(|m| m.role).collect();
    assert!(missing.contains(&Role::ProvideFiles));
    assert!(!missing.contains(&Role::RequestFiles));
    let credential = node.pubsub_credential(&channel).await?;
    assert_eq!(credential.publish, vec![Band::RequestFiles]);

    // A grant and a passcode add up; revoking the passcode leaves the grant.
    alice
        .grant(
            &channel,
            node.node_id(),
            node.owner(),
            roles("provideFiles"),
        )
        .await?;
    let config = node.node_config(None).await?.config.unwrap();
    assert_eq!(
        config.memberships[0].effective_roles,
        roles("requestFiles,provideFiles")
    );
    alice.revoke_passcode(&channel, created.view.id).await?;
    let config = node.node_config(None).await?.config.unwrap();
    assert_eq!(config.memberships[0].effective_roles, roles("provideFiles"));
    assert_eq!(alice.passcodes(&channel).await?.items[0].state, "revoked");
    assert_eq!(
        code_of(alice.revoke_passcode(&channel, created.view.id).await),
        ErrorCode::NotFound
    );

    // Only the owner mints, lists or revokes.
    assert_eq!(
        code_of(
            bob.create_passcode(&channel, &mint_request("provideFiles"))
                .await
        ),
        ErrorCode::NotOwner
    );
    assert_eq!(code_of(bob.passcodes(&channel).await), ErrorCode::NotOwner);
    hub.shutdown().await?;
    Ok(())
}

async fn expired_used_up_foreign_and_malformed_passcodes_are_refused_alike(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let bob = sign_in(&hub, "bob@example.org").await;
    let channel = create_channel(&alice, "lab.limits").await;
    let other = create_channel(&alice, "lab.other").await;
    let first = register_node(&hub, &bob, &node_key(41), "bob@example.org").await;
    let second = register_node(&hub, &bob, &node_key(42), "bob@example.org").await;
    for node in [&first, &second] {
        bob.join(node.node_id(), &channel, roles("requestFiles"))
            .await?;
    }

    let single_use = alice
        .create_passcode(
            &channel,
            &CreatePasscodeRequest {
                max_uses: Some(1),
                ..mint_request("requestFiles")
            },
        )
        .await?;
    bob.enter_passcode(first.node_id(), &channel, &single_use.passcode)
        .await?;
    let used_up = bob
        .enter_passcode(second.node_id(), &channel, &single_use.passcode)
        .await;
    assert_eq!(code_of(used_up), ErrorCode::InvalidPasscode);

    let foreign = alice
        .create_passcode(&other, &mint_request("requestFiles"))
        .await?;
    let wrong_channel = bob
        .enter_passcode(second.node_id(), &channel, &foreign.passcode)
        .await;
    assert_eq!(code_of(wrong_channel), ErrorCode::InvalidPasscode);

    let guessed = bob
        .enter_passcode(second.node_id(), &channel, "lab-0123456789ABCDEFGHJKMNPQRS")
        .await;
    assert_eq!(code_of(guessed), ErrorCode::InvalidPasscode);
    let malformed = bob
        .enter_passcode(second.node_id(), &channel, "hello")
        .await;
    assert_eq!(code_of(malformed), ErrorCode::InvalidPasscode);

    // An expiry in the past is refused at minting; one that passes stops counting.
    let past = CreatePasscodeRequest {
        expires_at: Some(now_ms() - 1),
        ..mint_request("requestFiles")
    };
    assert_eq!(
        code_of(alice.create_passcode(&channel, &past).await),
        ErrorCode::ValidationFailed
    );
    let soon = CreatePasscodeRequest {
        expires_at: Some(now_ms() + 1_500),
        ..mint_request("requestFiles")
    };
    let short_lived = alice.create_passcode(&channel, &soon).await?;
    bob.enter_passcode(second.node_id(), &channel, &short_lived.passcode)
        .await?;
    second.pubsub_credential(&channel).await?;
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    assert_eq!(
        code_of(second.pubsub_credential(&channel).await),
        ErrorCode::NoRoles
    );
    let view = bob.node(second.node_id()).await?;
    assert!(!view.memberships[0].passcodes[0].valid);
    let expired = bob
        .enter_passcode(first.node_id(), &channel, &short_lived.passcode)
        .await;
    assert_eq!(code_of(expired), ErrorCode::InvalidPasscode);
    hub.shutdown().await?;
    Ok(())
}

async fn joining_with_a_bad_passcode_leaves_no_membership(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let bob = sign_in(&hub, "bob@example.org").await;
    let channel = create_channel(&alice, "lab.join").await;
    let node = register_node(&hub, &bob, &node_key(43), "bob@example.org").await;

    let refused = bob
        .join_with_passcodes(
            node.node_id(),
            &channel,
            roles("requestFiles"),
            vec!["lab-0123456789ABCDEFGHJKMNPQRS".into()],
        )
        .await;
    assert_eq!(code_of(refused), ErrorCode::InvalidPasscode);
    assert!(bob.node(node.node_id()).await?.memberships.is_empty());

    let code = alice
        .create_passcode(&channel, &mint_request("requestFiles"))
        .await?;
    let joined = bob
        .join_with_passcodes(
            node.node_id(),
            &channel,
            roles("requestFiles"),
            vec![code.passcode.clone()],
        )
        .await?;
    assert_eq!(joined.effective_roles, roles("requestFiles"));

    // Leaving takes the link with it; the passcode's use stays counted.
    bob.leave(node.node_id(), &channel).await?;
    assert_eq!(alice.passcodes(&channel).await?.items[0].use_count, 1);
    hub.shutdown().await?;
    Ok(())
}

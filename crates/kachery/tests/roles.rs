//! Roles end to end: what a node may do on a channel is what its owner requested and the
//! channel owner granted, enforced on every credential, and revocation takes effect.

mod common;

use common::{ALICE, BOB, network};

fn effective_roles(status: &serde_json::Value, channel: &str) -> Vec<String> {
    status["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| link["channel"] == channel)
        .map(|link| {
            link["effectiveRoles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|role| role.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_granted_role_that_was_not_requested_is_not_effective() {
    let net = network();
    // Alice grants B more than B's owner asked for: only the intersection counts.
    let b_id = net.b.node_id();
    net.a
        .run(&[
            "channel",
            "grant",
            &net.channel,
            &b_id,
            BOB,
            "requestFiles,provideFiles",
        ])
        .ok();
    let status = net.b.status();
    assert_eq!(effective_roles(&status, &net.channel), ["requestFiles"]);

    let members = net.a.run(&["channel", "members", &net.channel]).ok().stdout;
    assert!(members.contains("requestFiles,provideFiles"), "{members}");
}

#[test]
fn a_requested_role_that_was_not_granted_is_not_effective() {
    let net = network();
    // B's owner asks for provideFiles too; Alice never granted it.
    net.b
        .run(&[
            "node",
            "join",
            &net.channel,
            "--roles",
            "requestFiles,provideFiles",
        ])
        .ok();
    let a_status = net.a.status();
    assert_eq!(
        effective_roles(&a_status, &net.channel),
        ["requestFiles", "provideFiles"]
    );
    let b_status = net.b.status();
    assert_eq!(effective_roles(&b_status, &net.channel), ["requestFiles"]);
}

#[test]
fn revoking_a_grant_cuts_the_node_off() {
    let net = network();
    let uri = net.a.store_file(
        net.dir.path(),
        "before.txt",
        b"shared before the revocation",
    );

    let b_id = net.b.node_id();
    net.a
        .run(&["channel", "revoke", &net.channel, &b_id, BOB])
        .ok();
    let status = net.b.status();
    assert!(
        effective_roles(&status, &net.channel).is_empty(),
        "{status:#}"
    );

    let run = net.b.run(&["load", &uri]).fails_with(4);
    assert!(run.stderr.contains("requestFiles"), "{}", run.stderr);

    // A keeps working with its own grant.
    let a_status = net.a.status();
    assert!(!effective_roles(&a_status, &net.channel).is_empty());
}

/// Regression: a provider whose grant was narrowed and then restored kept a link that
/// looked up but no longer heard requests.
#[test]
fn a_narrowed_then_restored_grant_serves_again() {
    let net = network();
    let a_id = net.a.node_id();
    let uri = net.a.store_file(
        net.dir.path(),
        "after-restore.txt",
        b"provided again after the restore",
    );

    net.a
        .run(&[
            "channel",
            "grant",
            &net.channel,
            &a_id,
            ALICE,
            "requestFiles",
        ])
        .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while effective_roles(&net.a.status(), &net.channel) != ["requestFiles"] {
        assert!(
            std::time::Instant::now() < deadline,
            "A never saw its narrowed roles"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    net.b.run(&["load", &uri]).fails_with(3);

    net.a
        .run(&[
            "channel",
            "grant",
            &net.channel,
            &a_id,
            ALICE,
            "requestFiles,provideFiles",
        ])
        .ok();
    net.a.wait_for_link(&net.channel);
    assert_eq!(
        effective_roles(&net.a.status(), &net.channel),
        ["requestFiles", "provideFiles"]
    );
    assert_eq!(
        net.b.run(&["cat", &uri]).ok().stdout,
        "provided again after the restore"
    );
}

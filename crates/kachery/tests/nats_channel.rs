//! A channel whose pub-sub runs on the owner's own `nats-server` (JWT mode): real hub and
//! node processes, a file from A to B, and links that renew short-lived credentials.

mod common;

use std::time::{Duration, Instant};

use kachery_pubsub::nats::test_server::NatsTestServer;

use common::{ALICE, BOB, login, sha1sum, start_hub_with_env, start_node, write_random_file};

/// Credentials live this long on the test hub, so links renew several times per test.
const TTL_SECS: &str = "6";

#[test]
fn a_file_travels_over_a_nats_channel_and_links_renew() {
    let nats = NatsTestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub_with_env(
        dir.path(),
        "127.0.0.1:0",
        &[("KACHERY_HUB_PUBSUB__CREDENTIAL_TTL_SECS", TTL_SECS)],
    );
    let a = start_node(&dir.path().join("a"), &hub.url, ALICE, "node-a");
    let b = start_node(&dir.path().join("b"), &hub.url, BOB, "node-b");
    login(&a, &hub.url);
    login(&b, &hub.url);
    a.run(&["node", "register", "--api"]).ok();
    b.run(&["node", "register", "--api"]).ok();

    // Alice points the channel at her NATS server; the seed goes in by file.
    let seed_file = dir.path().join("account.seed");
    std::fs::write(&seed_file, &nats.signing_seed).unwrap();
    let channel = "e2e.nats";
    a.run(&[
        "channel",
        "create",
        channel,
        "--pubsub",
        "nats",
        "--nats-server",
        &nats.url,
        "--nats-account",
        &nats.account,
        "--nats-seed-file",
        seed_file.to_str().unwrap(),
    ])
    .ok();
    a.run(&[
        "node",
        "join",
        channel,
        "--roles",
        "requestFiles,provideFiles",
    ])
    .ok();
    b.run(&["node", "join", channel, "--roles", "requestFiles"])
        .ok();
    let a_id = a.node_id();
    let b_id = b.node_id();
    a.run(&[
        "channel",
        "grant",
        channel,
        &a_id,
        ALICE,
        "requestFiles,provideFiles",
    ])
    .ok();
    a.run(&["channel", "grant", channel, &b_id, BOB, "requestFiles"])
        .ok();
    a.wait_for_link(channel);
    b.wait_for_link(channel);

    // A file from A to B over the NATS bands (bytes through the embedded bucket).
    let first = dir.path().join("first.bin");
    write_random_file(&first, 300_000, 7);
    let first_uri = a.run(&["store", first.to_str().unwrap()]).ok().stdout;
    let first_copy = dir.path().join("first-copy.bin");
    b.run(&["load", first_uri.trim(), "-o", first_copy.to_str().unwrap()])
        .ok();
    assert_eq!(sha1sum(&first_copy), sha1sum(&first));

    // Outlive the first credentials: the links must have renewed (a later expiry) and
    // still carry a transfer.
    let first_expiry = token_expiry(&b, channel);
    let deadline = Instant::now() + Duration::from_secs(30);
    while token_expiry(&b, channel) <= first_expiry || now_ms() < first_expiry + 1_000 {
        assert!(
            Instant::now() < deadline,
            "B's link never renewed past {first_expiry}:\n{}",
            b.process.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let second = dir.path().join("second.bin");
    write_random_file(&second, 200_000, 8);
    let second_uri = a.run(&["store", second.to_str().unwrap()]).ok().stdout;
    let second_copy = dir.path().join("second-copy.bin");
    b.run(&[
        "load",
        second_uri.trim(),
        "-o",
        second_copy.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(sha1sum(&second_copy), sha1sum(&second));
}

#[test]
fn a_nats_channel_needs_valid_settings() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub_with_env(dir.path(), "127.0.0.1:0", &[]);
    let a = start_node(&dir.path().join("a"), &hub.url, ALICE, "node-a");
    login(&a, &hub.url);

    let run = a
        .run(&[
            "channel",
            "create",
            "e2e.badnats",
            "--pubsub",
            "nats",
            "--nats-server",
            "nats://127.0.0.1:4222",
            "--nats-account",
            "not-an-account",
        ])
        .fails_with(2);
    assert!(run.stderr.contains("pubsub.nats.account"), "{}", run.stderr);
}

/// The credential expiry B's status shows for `channel` (Unix ms).
fn token_expiry(node: &common::Node, channel: &str) -> i64 {
    let status = node.status();
    status["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| link["channel"] == channel)
        .and_then(|link| link["tokenExpiresAt"].as_i64())
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

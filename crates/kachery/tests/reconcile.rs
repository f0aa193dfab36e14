//! A node never needs a restart: started before its hub exists, and before it is
//! registered, it becomes active by itself once both happen.

mod common;

use common::{ALICE, login, start_hub_at, start_node};

#[test]
fn a_node_started_before_its_hub_becomes_active_without_restart() {
    let dir = tempfile::tempdir().unwrap();

    // Reserve a port for a hub that does not run yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub_url = format!("http://127.0.0.1:{port}");
    let node = start_node(&dir.path().join("a"), &hub_url, ALICE, "early-node");

    let status = node.status();
    assert!(
        status["lastError"].is_string(),
        "the unreachable hub is reported: {status:#}"
    );

    // Now the hub appears; the same daemon registers, joins and links up.
    let hub = start_hub_at(dir.path(), &format!("127.0.0.1:{port}"));
    login(&node, &hub.url);
    node.run(&["node", "register", "--api"]).ok();
    node.run(&["channel", "create", "early.channel"]).ok();
    node.run(&[
        "node",
        "join",
        "early.channel",
        "--roles",
        "requestFiles,provideFiles",
    ])
    .ok();
    let node_id = node.node_id();
    node.run(&[
        "channel",
        "grant",
        "early.channel",
        &node_id,
        ALICE,
        "requestFiles,provideFiles",
    ])
    .ok();
    node.wait_for_link("early.channel");

    let status = node.status();
    assert!(status["lastError"].is_null(), "{status:#}");
}

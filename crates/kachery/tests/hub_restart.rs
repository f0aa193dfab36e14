//! The hub keeps users, nodes, channels and grants across a restart, and nodes carry on.

mod common;

use common::{ALICE, network, start_hub_at};

#[test]
fn restarting_the_hub_keeps_everything() {
    let mut net = network();
    let before = net.a.run(&["channel", "members", &net.channel]).ok().stdout;

    // Restart the hub on the same port and data directory.
    let addr = net
        .hub
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    net.hub.process.terminate();
    let data_parent = net.hub.data_dir.parent().unwrap().to_path_buf();
    net.hub = start_hub_at(&data_parent, &addr);

    let after = net.a.run(&["channel", "members", &net.channel]).ok().stdout;
    assert_eq!(before, after);
    assert!(
        after.contains(ALICE) && after.contains(common::BOB),
        "{after}"
    );

    // The old API token and node records still work: a transfer succeeds.
    net.a.wait_for_link(&net.channel);
    net.b.wait_for_link(&net.channel);
    let uri = net
        .a
        .store_file(net.dir.path(), "after-restart.txt", b"still here");
    assert_eq!(net.b.run(&["cat", &uri]).ok().stdout, "still here");
}

//! Passcodes through the real binary: the owner mints one with `kachery channel passcode
//! create`, another person's node joins with `kachery node join --passcode`, the list
//! shows the use, and revoking takes the roles away.

mod common;

use common::*;

#[test]
fn a_passcode_minted_on_the_command_line_gives_its_roles_until_revoked() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hub = start_hub(dir.path());
    let a = start_node(&dir.path().join("a"), &hub.url, ALICE, "node-a");
    let b = start_node(&dir.path().join("b"), &hub.url, BOB, "node-b");
    login(&a, &hub.url);
    login(&b, &hub.url);
    b.run(&["node", "register", "--api"]).ok();
    a.run(&["channel", "create", "cli.codes"]).ok();

    let minted = a
        .run(&[
            "channel",
            "passcode",
            "create",
            "cli.codes",
            "requestFiles",
            "--prefix",
            "cli",
            "--expires-in",
            "1h",
            "--max-uses",
            "2",
        ])
        .ok();
    let passcode = minted.stdout.trim().to_owned();
    assert!(
        passcode.starts_with("cli-") && passcode.len() == 30,
        "{passcode}"
    );
    assert!(
        minted.stderr.contains("shown only now"),
        "{}",
        minted.stderr
    );

    let joined = b
        .run(&[
            "node",
            "join",
            "cli.codes",
            "--roles",
            "requestFiles",
            "--passcode",
            &passcode,
        ])
        .ok();
    assert!(
        joined.stdout.contains("effective now requestFiles"),
        "{}",
        joined.stdout
    );

    let listed = a.run(&["channel", "passcode", "list", "cli.codes"]).ok();
    assert!(
        listed.stdout.contains("active") && listed.stdout.contains("1/2"),
        "{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.contains(&passcode[4..]),
        "the list never shows the code"
    );
    let id = listed
        .stdout
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .expect("one passcode is listed")
        .to_owned();

    a.run(&["channel", "passcode", "revoke", "cli.codes", &id])
        .ok();
    let rejoined = b
        .run(&["node", "join", "cli.codes", "--roles", "requestFiles"])
        .ok();
    assert!(
        rejoined.stdout.contains("effective now (none)"),
        "{}",
        rejoined.stdout
    );

    // A revoked passcode is refused like a wrong one: denied (4) with the hub's message.
    let refused = b
        .run(&["node", "join", "cli.codes", "--passcode", &passcode])
        .fails_with(4);
    assert!(refused.stderr.contains("passcode"), "{}", refused.stderr);
    let bad_duration = a.run(&[
        "channel",
        "passcode",
        "create",
        "cli.codes",
        "requestFiles",
        "--expires-in",
        "soon",
    ]);
    bad_duration.fails_with(2);
}

//! Bad input to every command gives a one-line error and a non-zero exit, never a panic.

mod common;

use common::kachery;

#[test]
fn bad_input_gives_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    // Usage and URI errors: exit 2.
    kachery(home, &["load", "not-a-uri"]).fails_with(2);
    // A hub URL without its scheme: the error shows it with one.
    let run = kachery(
        home,
        &["login", "--hub", "127.0.0.1:8080", "--dev-email", "a@b.org"],
    )
    .fails_with(2);
    assert!(
        run.stderr.contains("http://127.0.0.1:8080"),
        "{}",
        run.stderr
    );
    kachery(home, &["load", "sha1://xyz"]).fails_with(2);
    kachery(home, &["cat", "http://example.org/file"]).fails_with(2);
    kachery(
        home,
        &["load", "sha1dir://0123456789abcdef0123456789abcdef01234567"],
    )
    .fails_with(2);
    kachery(
        home,
        &[
            "load",
            "sha1://0123456789abcdef0123456789abcdef01234567",
            "--channel",
            "x",
        ],
    )
    .fails_with(2);
    kachery(
        home,
        &[
            "channel",
            "create",
            "no spaces allowed",
            "--hub",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ],
    )
    .fails_with(2);

    // A missing file: exit 3; a directory: usage.
    kachery(home, &["store", "/definitely/not/here.dat"]).fails_with(3);
    kachery(home, &["store", home.to_str().unwrap()]).fails_with(2);
    kachery(home, &["demo", "--file", "/definitely/not/here.dat"]).fails_with(3);
    kachery(home, &["demo", "--file", home.to_str().unwrap()]).fails_with(2);

    // Impossible byte ranges and insecure hubs are usage errors.
    let hash = "sha1://0123456789abcdef0123456789abcdef01234567";
    kachery(home, &["cat", hash, "--start", "10", "--end", "5"]).fails_with(2);
    let run = kachery(
        home,
        &[
            "node",
            "start",
            "--hub",
            "http://10.1.2.3:8080",
            "--port",
            "0",
        ],
    )
    .fails_with(2);
    assert!(run.stderr.contains("http"), "{}", run.stderr);
    kachery(
        home,
        &[
            "channel",
            "grant",
            "lab.x",
            &"a".repeat(64),
            "a@b.org",
            "",
            "--hub",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ],
    )
    .fails_with(2);

    // Content the store lacks and no daemon: exit 6 with the fix.
    let run = kachery(
        home,
        &["load", "sha1://0123456789abcdef0123456789abcdef01234567"],
    )
    .fails_with(6);
    assert!(run.stderr.contains("kachery node start"), "{}", run.stderr);
    kachery(home, &["node", "status"]).fails_with(6);

    // Hub down: exit 6, naming the hub.
    let run = kachery(
        home,
        &[
            "login",
            "--hub",
            "http://127.0.0.1:9",
            "--dev-email",
            "a@b.org",
        ],
    )
    .fails_with(6);
    assert!(run.stderr.contains("127.0.0.1:9"), "{}", run.stderr);

    // No token: denied with the fix.
    let run = kachery(
        home,
        &["channel", "create", "lab.x", "--hub", "http://127.0.0.1:9"],
    )
    .fails_with(4);
    assert!(run.stderr.contains("kachery login"), "{}", run.stderr);
}

#[test]
fn dev_login_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("hub");
    let run = kachery(
        dir.path(),
        &[
            "hub",
            "serve",
            "--dev-login",
            "--bind",
            "0.0.0.0:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);
}

#[test]
fn store_prints_uris_matching_sha1sum() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("x.bin");
    common::write_random_file(&file, 1234, 3);
    let run = kachery(home.path(), &["store", file.to_str().unwrap()]).ok();
    assert_eq!(
        run.stdout.trim(),
        format!("sha1://{}/x.bin", common::sha1sum(&file))
    );
}

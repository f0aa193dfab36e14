//! Files moving between two real node daemons through a real hub: the spine of kachery.

mod common;

use std::time::{Duration, Instant};

use common::{network, sha1sum, write_random_file};

#[test]
fn small_and_chunked_files_travel_from_a_to_b() {
    let net = network();

    let small = net.dir.path().join("small.txt");
    std::fs::write(&small, b"spikes and local field potentials\n").unwrap();
    let small_uri = net
        .a
        .run(&["store", small.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert!(
        small_uri.starts_with(&format!("sha1://{}/small.txt", sha1sum(&small))),
        "{small_uri}"
    );

    let out = net.dir.path().join("small-copy.txt");
    net.b
        .run(&["load", &small_uri, "-o", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&small).unwrap());
    // The store keeps blobs private (0600), but an exported copy is an ordinary new file.
    let umask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .map(|octal| u32::from_str_radix(octal.trim(), 8).unwrap())
        .expect("Linux reports the umask");
    let mode = |path: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&out), 0o666 & !umask, "load -o output mode");

    // Into a directory: under the URI's name. Into a missing directory: refused at once.
    let into = net.dir.path().join("into");
    std::fs::create_dir(&into).unwrap();
    net.b
        .run(&["load", &small_uri, "-o", into.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(into.join("small.txt")).unwrap(),
        std::fs::read(&small).unwrap()
    );
    let missing = net.dir.path().join("no-such-dir/copy.txt");
    let run = net
        .b
        .run(&["load", &small_uri, "-o", missing.to_str().unwrap()])
        .fails_with(2);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);

    let big = net.dir.path().join("big.bin");
    write_random_file(&big, 3 * 20_000_000 - 5, 11);
    let big_uri = net
        .a
        .run(&["store", big.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert!(big_uri.contains("?manifest="), "{big_uri}");

    let big_out = net.dir.path().join("big-copy.bin");
    net.b
        .run(&["load", &big_uri, "--dest", big_out.to_str().unwrap()])
        .ok();
    assert_eq!(sha1sum(&big_out), sha1sum(&big));

    // Now a local hit: cat needs no network.
    let cat = net.b.run(&["cat", &small_uri]).ok();
    assert_eq!(cat.stdout, "spikes and local field potentials\n");
}

#[test]
fn a_uri_nobody_has_fails_within_seconds_naming_the_channel() {
    let net = network();
    let started = Instant::now();
    let missing = "sha1://0123456789abcdef0123456789abcdef01234567/nothing.bin";
    let run = net.b.run(&["load", missing]).fails_with(3);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains(&net.channel), "{}", run.stderr);
}

#[test]
fn a_requester_only_node_never_provides() {
    let net = network();
    // B holds a file, but has no provideFiles: A cannot get it from B.
    let uri = net.b.store_file(
        net.dir.path(),
        "only-b.txt",
        b"held by a requester-only node",
    );
    net.a.run(&["load", &uri]).fails_with(3);
}

#[test]
fn loading_on_a_channel_without_request_files_is_denied() {
    let net = network();
    // Alice narrows B's grant to nothing useful for files: B keeps a membership but loses requestFiles.
    let b_id = net.b.node_id();
    net.a
        .run(&[
            "channel",
            "grant",
            &net.channel,
            &b_id,
            common::BOB,
            "requestFeeds",
        ])
        .ok();
    net.b.run(&["node", "status", "--refresh"]).ok();
    let run = net.b.run(&[
        "load",
        "sha1://0123456789abcdef0123456789abcdef01234567",
        "--channel",
        &net.channel,
    ]);
    assert!(
        run.code == 4 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    assert!(
        run.stderr.contains("requestFiles") || run.stderr.contains(&net.channel),
        "{}",
        run.stderr
    );
}

#[test]
fn a_corrupt_bucket_object_is_detected_and_not_stored() {
    let net = network();
    let file = net.dir.path().join("data.txt");
    std::fs::write(&file, b"the true bytes of this file").unwrap();
    let uri = net
        .a
        .run(&["store", file.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned();
    net.b.run(&["load", &uri]).ok();

    // Find the object in the hub's embedded bucket and corrupt it; stop A so no good copy
    // can replace it; give B a fresh store.
    let sha1 = sha1sum(&file);
    let object = find_file_named(&net.hub.data_dir, &sha1).expect("the bucket holds the object");
    std::fs::write(&object, b"the fake bytes of this file").unwrap();
    let mut net = net;
    net.a.process.terminate();
    std::fs::remove_dir_all(net.b.home.join("store").join("sha1")).unwrap();

    let run = net.b.run(&["load", &uri]).fails_with(5);
    assert!(
        run.stderr.contains(&sha1),
        "the error names the URI: {}",
        run.stderr
    );
    assert!(run.stderr.contains("hash mismatch"), "{}", run.stderr);
    assert!(
        find_file_named(&net.b.home.join("store"), &sha1).is_none(),
        "corrupt bytes were stored"
    );
}

fn find_file_named(root: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file_named(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|file_name| file_name == name) {
            return Some(path);
        }
    }
    None
}

#[test]
fn a_killed_load_resumes_with_only_the_missing_chunks() {
    let mut net = network();
    let big = net.dir.path().join("resume.bin");
    write_random_file(&big, 6 * 20_000_000, 23);
    let uri = net
        .a
        .run(&["store", big.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned();

    // Start the load on B in the background and kill B's daemon once some chunks are done.
    let mut load = std::process::Command::new(common::BIN)
        .args(["load", &uri, "--json"])
        .env("KACHERY_HOME", &net.b.home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = load.stdout.take().unwrap();
    let mut chunks_before_kill = 0;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let done = event["chunksDone"].as_u64().unwrap_or(0);
        if done >= 1 {
            chunks_before_kill = done;
            net.b.process.kill();
            break;
        }
    }
    let _ = load.wait();
    assert!(
        (1..6).contains(&chunks_before_kill),
        "chunks done at kill: {chunks_before_kill}"
    );

    net.b.restart(&net.hub.url);
    net.b.wait_for_link(&net.channel);
    let run = net.b.run(&["load", &uri, "--json"]).ok();
    let first_progress: serde_json::Value = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|event| event["event"] == "progress" && event["chunksTotal"] == 6)
        .expect("the resumed load reports progress on the chunks");
    assert!(
        first_progress["chunksDone"].as_u64().unwrap() >= chunks_before_kill,
        "resume started from scratch: {first_progress}"
    );
    let copy = net.dir.path().join("resumed.bin");
    net.b
        .run(&["load", &uri, "-o", copy.to_str().unwrap()])
        .ok();
    assert_eq!(sha1sum(&copy), sha1sum(&big));
}

//! `kachery demo` end to end: the README's main command, small and multi-chunk.

mod common;

use common::{BIN, sha1sum, write_random_file};

fn demo(args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(BIN)
        .arg("demo")
        .arg("--json")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect("demo --json prints one JSON object")
}

#[test]
fn demo_shares_a_small_file() {
    let summary = demo(&["--size", "1000"]);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["size"], 1000);
    assert_eq!(summary["chunks"], 1);
    let uri = summary["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("sha1://") && !uri.contains("manifest="),
        "{uri}"
    );
}

#[test]
fn demo_shares_a_real_three_chunk_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("recording.dat");
    write_random_file(&input, 45_000_123, 7);

    let summary = demo(&["--file", input.to_str().unwrap()]);
    assert_eq!(summary["chunks"], 3);
    let uri = summary["uri"].as_str().unwrap();
    assert!(uri.contains("/recording.dat?manifest="), "{uri}");
    assert!(
        uri.starts_with(&format!("sha1://{}", sha1sum(&input))),
        "{uri}"
    );
}

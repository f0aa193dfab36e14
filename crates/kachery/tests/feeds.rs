//! Feeds between real node daemons through a real hub: live following, restarts, an
//! offline owner with a replica serving, a late joiner reading the bucket, and forged and
//! forked messages refused.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, Network, Node, Process, add_node, network_with_roles};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::feed::{SignedFeedObject, sign_head, sign_message, subfeed_hash};
use kachery_protocol::{ChannelName, NodeId};
use serde_json::{Value, json};

const OWNER_ROLES: &str = "requestFeeds,provideFeeds";
const READER_ROLES: &str = "requestFeeds";

/// Creates a feed on `node` and returns `feed://<id>/<subfeed>`.
fn new_subfeed(node: &Node, subfeed: &str) -> String {
    let uri = node.run(&["feed", "create", "--name", "lab"]).ok().stdout;
    format!("{}/{subfeed}", uri.trim())
}

fn append(node: &Node, uri: &str, message: Value) -> u64 {
    let (feed, subfeed) = uri.rsplit_once('/').expect("a subfeed URI");
    let out = node
        .run(&["feed", "append", feed, subfeed, &message.to_string()])
        .ok();
    out.stdout.trim().parse().expect("append prints the count")
}

/// `feed read` on `node`: the messages printed, and stderr.
fn read_all(node: &Node, uri: &str) -> (Vec<Value>, String) {
    let run = node.run(&["feed", "read", uri]).ok();
    let messages = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    (messages, run.stderr)
}

fn numbered(n: u64) -> Vec<Value> {
    (0..n).map(|idx| json!({ "n": idx })).collect()
}

/// A `feed read --follow` process whose lines arrive on a channel.
struct Follower {
    _process: Process,
    lines: mpsc::Receiver<String>,
}

fn follow(node: &Node, uri: &str) -> Follower {
    let log = node.home.join("follow.log");
    let mut child = Command::new(BIN)
        .args(["feed", "read", "--follow", uri])
        .env("KACHERY_HOME", &node.home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("the log file can be created"))
        .spawn()
        .expect("the follower starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Follower {
        _process: Process::from_child(child, log),
        lines,
    }
}

impl Follower {
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the follower prints the next message");
        serde_json::from_str(&line).expect("each line is JSON")
    }
}

/// Where the hub's embedded bucket keeps `key`.
fn bucket_path(net: &Network, key: &BucketKey) -> PathBuf {
    net.hub.data_dir.join("bucket/objects").join(key.as_str())
}

fn keys_of(net: &Network, uri: &str) -> (NodeId, ChannelName, kachery_protocol::Sha1Hash) {
    let (feed, subfeed) = uri.rsplit_once('/').expect("a subfeed URI");
    let feed_id = NodeId::parse(feed.trim_start_matches("feed://")).expect("a feed id");
    let channel = ChannelName::parse(&net.channel).expect("a channel name");
    (
        feed_id,
        channel,
        subfeed_hash(subfeed).expect("a subfeed name"),
    )
}

/// Waits until the bucket's head of `uri` says `count` messages.
fn wait_for_bucket_head(net: &Network, uri: &str, count: u64) {
    let (feed_id, channel, hash) = keys_of(net, uri);
    let path = bucket_path(net, &BucketKey::feed_head(&channel, &feed_id, &hash));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let head: Option<Value> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if head.is_some_and(|head| head["body"]["messageCount"] == count) {
            return;
        }
        assert!(Instant::now() < deadline, "the head never reached {count}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_object(net: &Network, key: &BucketKey, value: &impl serde::Serialize) {
    let path = bucket_path(net, key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(value).unwrap()).unwrap();
}

fn feed_key(node: &Node, feed_id: &NodeId) -> SigningKey {
    let path: &Path = &node.home.join("node/feeds").join(format!("{feed_id}.pem"));
    SigningKey::from_pkcs8_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_reader_follows_a_subfeed_live_and_across_restarts() {
    let mut net = network_with_roles(OWNER_ROLES, READER_ROLES);
    let uri = new_subfeed(&net.a, "main");
    assert_eq!(append(&net.a, &uri, json!({"n": 0})), 1);

    let follower = follow(&net.b, &uri);
    assert_eq!(follower.next(), json!({"n": 0}));
    append(&net.a, &uri, json!({"n": 1}));
    assert_eq!(follower.next(), json!({"n": 1}));
    drop(follower);

    // The reader restarts: what it held is still there, and it catches up on the rest.
    net.b.process.terminate();
    append(&net.a, &uri, json!({"n": 2}));
    net.b.restart(&net.hub.url);
    net.b.wait_for_link(&net.channel);
    assert_eq!(read_all(&net.b, &uri).0, numbered(3));

    // The owner restarts: its key and chain survive, and it goes on appending.
    net.a.process.terminate();
    net.a.restart(&net.hub.url);
    net.a.wait_for_link(&net.channel);
    assert_eq!(append(&net.a, &uri, json!({"n": 3})), 4);
    let (messages, stderr) = read_all(&net.b, &uri);
    assert_eq!(messages, numbered(4));
    assert!(!stderr.contains("fork"), "{stderr}");
}

#[test]
fn a_replica_serves_while_the_owner_is_offline() {
    let mut net = network_with_roles(OWNER_ROLES, OWNER_ROLES);
    let uri = new_subfeed(&net.a, "main");
    for message in numbered(3) {
        append(&net.a, &uri, message);
    }
    assert_eq!(read_all(&net.b, &uri).0, numbered(3));

    // The owner goes away and the bucket loses its copy: only B can serve now.
    wait_for_bucket_head(&net, &uri, 3);
    net.a.process.kill();
    let feeds_dir = net
        .hub
        .data_dir
        .join("bucket/objects")
        .join(&net.channel)
        .join("feeds");
    std::fs::remove_dir_all(feeds_dir).unwrap();

    let carol = add_node(&net, "c", "carol@example.org", READER_ROLES);
    assert_eq!(read_all(&carol, &uri).0, numbered(3));
}

#[test]
fn a_late_joiner_catches_up_from_the_bucket() {
    let mut net = network_with_roles(OWNER_ROLES, READER_ROLES);
    let uri = new_subfeed(&net.a, "main");
    for message in numbered(5) {
        append(&net.a, &uri, message);
    }
    wait_for_bucket_head(&net, &uri, 5);
    net.a.process.kill();

    assert_eq!(read_all(&net.b, &uri).0, numbered(5));
}

#[test]
fn forged_and_forked_messages_are_rejected_and_never_stored() {
    let mut net = network_with_roles(OWNER_ROLES, READER_ROLES);
    let uri = new_subfeed(&net.a, "main");
    append(&net.a, &uri, json!({"n": 0}));
    append(&net.a, &uri, json!({"n": 1}));
    wait_for_bucket_head(&net, &uri, 2);
    net.a.process.kill();

    let (feed_id, channel, hash) = keys_of(&net, &uri);
    let key = feed_key(&net.a, &feed_id);
    let genuine_key = BucketKey::feed_segment(&channel, &feed_id, &hash, 0, 2);
    let genuine: Vec<SignedFeedObject> =
        serde_json::from_slice(&std::fs::read(bucket_path(&net, &genuine_key)).unwrap()).unwrap();

    // A provider uploads a segment whose third message is signed by someone else.
    let stranger = SigningKey::from_bytes(&[42; 32]);
    let previous = Some(genuine[1].signature.clone());
    let mut forged =
        sign_message(&stranger, hash, 2, previous, 1, &json!({"n": "forged"})).unwrap();
    forged.body["feedId"] = json!(feed_id.to_string());
    let segment = vec![genuine[0].clone(), genuine[1].clone(), forged.clone()];
    write_object(
        &net,
        &BucketKey::feed_segment(&channel, &feed_id, &hash, 0, 3),
        &segment,
    );
    let head = sign_head(&key, hash, 3, forged.signature.clone(), 1);
    write_object(
        &net,
        &BucketKey::feed_head(&channel, &feed_id, &hash),
        &head,
    );

    let (messages, stderr) = read_all(&net.b, &uri);
    assert_eq!(messages, numbered(2));
    assert!(
        stderr.contains("rejected message 2 (bad_signature)"),
        "{stderr}"
    );

    // The key holder signs a second message 1: a fork of what B holds.
    let previous = Some(genuine[0].signature.clone());
    let fork = sign_message(&key, hash, 1, previous, 1, &json!({"n": "fork"})).unwrap();
    let next = sign_message(&key, hash, 2, Some(fork.signature.clone()), 1, &json!({})).unwrap();
    let segment = vec![genuine[0].clone(), fork, next.clone()];
    write_object(
        &net,
        &BucketKey::feed_segment(&channel, &feed_id, &hash, 0, 3),
        &segment,
    );
    let head = sign_head(&key, hash, 3, next.signature.clone(), 2);
    write_object(
        &net,
        &BucketKey::feed_head(&channel, &feed_id, &hash),
        &head,
    );

    let (messages, stderr) = read_all(&net.b, &uri);
    assert_eq!(messages, numbered(2));
    assert!(stderr.contains("rejected message 1 (fork)"), "{stderr}");
}

#[test]
fn a_read_without_requestfeeds_or_of_an_unknown_feed_says_so() {
    let net = network_with_roles(OWNER_ROLES, "requestFiles");
    let uri = new_subfeed(&net.a, "main");
    append(&net.a, &uri, json!({"n": 0}));

    // B may not read feeds on any channel: refused (4), naming the role to ask for.
    let run = net.b.run(&["feed", "read", &uri]).fails_with(4);
    assert!(run.stderr.contains("requestFeeds"), "{}", run.stderr);

    // A feed nobody has: not found (3) once the wait is over, instead of silence.
    let unknown = format!("feed://{}/main", "cd".repeat(32));
    let run = net
        .a
        .run(&["feed", "read", &unknown, "--wait-ms", "500"])
        .fails_with(3);
    assert!(run.stderr.contains("no messages"), "{}", run.stderr);
}

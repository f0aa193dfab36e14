//! Tasks between real node daemons through a real hub (SPEC §17): a provider node with
//! the shell worker of `examples/task-worker.sh` as a real process, and requesters that
//! use `kachery task run` exactly as a person would.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ALICE, BOB, Hub, Node, Run, login, start_hub, start_node};
use serde_json::Value;

const CAROL: &str = "carol@example.org";
const CHANNEL: &str = "e2e.tasks";

/// The shell worker, killed when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TaskNet {
    dir: tempfile::TempDir,
    hub: Hub,
    /// Alice's provider: requestTasks and provideTasks, with the worker attached.
    provider: Node,
    /// Bob's requester: requestTasks.
    b: Node,
    /// Carol's node, with the roles the test asked for.
    c: Node,
    worker: Option<Worker>,
}

impl TaskNet {
    fn worker_log(&self) -> PathBuf {
        self.dir.path().join("worker.log")
    }

    /// Lines the worker wrote for `function` (one per run).
    fn runs_of(&self, function: &str) -> usize {
        std::fs::read_to_string(self.worker_log())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with(&format!("{function} ")))
            .count()
    }

    fn stop_provider(&mut self) {
        self.worker.take();
        self.provider.process.terminate();
    }
}

fn task_network(c_roles: &str) -> TaskNet {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hub = start_hub(dir.path());
    let provider = start_node(&dir.path().join("a"), &hub.url, ALICE, "provider");
    let b = start_node(&dir.path().join("b"), &hub.url, BOB, "requester-b");
    let c = start_node(&dir.path().join("c"), &hub.url, CAROL, "requester-c");

    for node in [&provider, &b, &c] {
        login(node, &hub.url);
        node.run(&["node", "register", "--api"]).ok();
    }
    provider.run(&["channel", "create", CHANNEL]).ok();
    let provider_roles = "requestTasks,provideTasks";
    for (node, roles) in [
        (&provider, provider_roles),
        (&b, "requestTasks"),
        (&c, c_roles),
    ] {
        node.run(&["node", "join", CHANNEL, "--roles", roles]).ok();
        let node_id = node.node_id();
        provider
            .run(&["channel", "grant", CHANNEL, &node_id, &node.owner, roles])
            .ok();
    }
    for node in [&provider, &b, &c] {
        node.wait_for_link(CHANNEL);
    }

    let worker_log = dir.path().join("worker.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/task-worker.sh");
    let worker = Command::new("sh")
        .arg(script)
        .env("KACHERY_HOME", &provider.home)
        .env("TASK_WORKER_LOG", &worker_log)
        .env("TASK_WORKER_CLOCK_BROKEN", dir.path().join("clock-broken"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the shell worker starts");
    // The worker registers its functions with its first poll, right after it starts.
    std::thread::sleep(Duration::from_secs(2));

    TaskNet {
        dir,
        hub,
        provider,
        b,
        c,
        worker: Some(Worker(worker)),
    }
}

/// The views a `task run --json` printed, in order.
fn views(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON view"))
        .collect()
}

fn last_view(run: &Run) -> Value {
    views(run).pop().expect("at least one view")
}

fn find_file_named(root: &Path, name: &str) -> Option<PathBuf> {
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

/// The payload hash in a finished view's `resultUri` (`sha1://<hash>/…`).
fn payload_sha1(view: &Value) -> String {
    let uri = view["resultUri"]
        .as_str()
        .expect("a stored result has a URI");
    uri.trim_start_matches("sha1://")[..40].to_owned()
}

#[test]
fn a_pure_task_runs_once_then_is_served_verified_from_the_cache() {
    let mut net = task_network("requestTasks");
    let kwargs = r#"{"a": 2, "b": 3, "seconds": 1}"#;
    let args = ["task", "run", "demo.add", "--kwargs", kwargs, "--json"];

    // Two requesters at once: one run on the provider serves both.
    let (b_run, c_run) = std::thread::scope(|scope| {
        let b = scope.spawn(|| net.b.run(&args));
        let c = scope.spawn(|| net.c.run(&args));
        (b.join().unwrap().ok(), c.join().unwrap().ok())
    });
    let b_view = last_view(&b_run);
    assert_eq!(b_view["state"], "finished", "{b_view}");
    assert_eq!(b_view["result"], serde_json::json!({"sum": 5}));
    assert_eq!(last_view(&c_run)["result"], serde_json::json!({"sum": 5}));
    assert_eq!(
        net.runs_of("demo.add"),
        1,
        "the pure task ran more than once"
    );
    let task_hash = b_view["taskHash"].as_str().unwrap().to_owned();

    // A second pure result, seen only by B, for the payload check below.
    let other = net
        .b
        .run(&[
            "task",
            "run",
            "demo.add",
            "--kwargs",
            r#"{"a": 10, "b": 20}"#,
            "--json",
        ])
        .ok();
    let other_payload = payload_sha1(&last_view(&other));
    assert_eq!(net.runs_of("demo.add"), 2);

    // With the provider gone, the bucket still answers, verified.
    net.stop_provider();
    let cached = net.b.run(&args).ok();
    let cached_view = last_view(&cached);
    assert_eq!(cached_view["result"], serde_json::json!({"sum": 5}));
    assert_eq!(cached_view["fromCache"], true, "{cached_view}");
    let plain = net
        .c
        .run(&["task", "run", "demo.add", "--kwargs", kwargs])
        .ok();
    assert_eq!(plain.stdout.trim(), r#"{"sum":5}"#);

    // A tampered record is rejected by the reader (its signature no longer verifies).
    let record = find_file_named(&net.hub.data_dir, &task_hash).expect("the record is stored");
    let original = std::fs::read_to_string(&record).unwrap();
    let tampered = original.replacen("\"resultSize\":", "\"resultSize\":1", 1);
    assert_ne!(tampered, original);
    std::fs::write(&record, &tampered).unwrap();
    let run = net
        .c
        .run(&["task", "run", "demo.add", "--kwargs", kwargs])
        .fails_with(5);
    assert!(run.stderr.contains("rejected"), "{}", run.stderr);

    // A tampered payload is rejected too (C never held this one).
    let payload = find_file_named(&net.hub.data_dir, &other_payload).expect("payload stored");
    let bytes = std::fs::read(&payload).unwrap();
    std::fs::write(&payload, vec![b'x'; bytes.len()]).unwrap();
    let run = net
        .c
        .run(&[
            "task",
            "run",
            "demo.add",
            "--kwargs",
            r#"{"a": 10, "b": 20}"#,
        ])
        .fails_with(5);
    assert!(run.stderr.contains("rejected"), "{}", run.stderr);
    assert!(
        find_file_named(&net.c.home.join("store"), &other_payload).is_none(),
        "a corrupt payload was stored"
    );
}

#[test]
fn queries_actions_errors_and_roles() {
    let mut net = task_network("requestFiles");

    // Status flows back, ending with the worker's error message.
    let failed = net.b.run(&[
        "task",
        "run",
        "demo.fail",
        "--kwargs",
        r#"{"message": "the electrode map is missing"}"#,
        "--json",
    ]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("the electrode map is missing"),
        "{}",
        failed.stderr
    );
    let states: Vec<String> = views(&failed)
        .iter()
        .map(|view| view["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        states
            .iter()
            .any(|state| state == "queued" || state == "running"),
        "{states:?}"
    );
    let last = last_view(&failed);
    assert_eq!(last["state"], "error");
    assert_eq!(last["errorCode"], "task_failed");
    assert!(last["message"].as_str().unwrap().contains("electrode map"));

    // An action runs once and stores nothing.
    let action = net
        .b
        .run(&[
            "task",
            "run",
            "demo.note",
            "--type",
            "action",
            "--kwargs",
            r#"{"text": "started recording"}"#,
            "--json",
        ])
        .ok();
    let action_view = last_view(&action);
    assert_eq!(action_view["state"], "finished");
    assert!(action_view.get("resultUri").is_none(), "{action_view}");
    assert_eq!(net.runs_of("demo.note"), 1);

    // A node without requestTasks is refused, naming the role.
    let denied = net
        .c
        .run(&["task", "run", "demo.add", "--kwargs", r#"{"a": 1, "b": 1}"#])
        .fails_with(4);
    assert!(denied.stderr.contains("requestTasks"), "{}", denied.stderr);
    assert_eq!(net.runs_of("demo.add"), 0);

    // A query runs every time; with no provider left, the last answer is the fallback.
    let query = ["task", "run", "demo.clock", "--type", "query", "--json"];
    let first = last_view(&net.b.run(&query).ok());
    let second = last_view(&net.b.run(&query).ok());
    assert_eq!(net.runs_of("demo.clock"), 2);
    assert_ne!(first["result"], second["result"]);
    // A run that fails (the worker's clock breaks) falls back to the cache too, and says so.
    std::fs::write(net.dir.path().join("clock-broken"), b"").unwrap();
    let text_query = ["task", "run", "demo.clock", "--type", "query"];
    let broken = net.b.run(&text_query).ok();
    assert_eq!(net.runs_of("demo.clock"), 3);
    assert!(
        broken.stderr.contains("last cached result"),
        "{}",
        broken.stderr
    );
    let cached: Value = serde_json::from_str(broken.stdout.trim()).unwrap();
    assert_eq!(cached, second["result"]);
    net.stop_provider();
    let fallback = last_view(&net.b.run(&query).ok());
    assert_eq!(fallback["fromCache"], true, "{fallback}");
    assert_eq!(fallback["result"], second["result"]);
}

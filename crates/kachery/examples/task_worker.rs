//! A kachery task worker in Rust, serving the same demo functions as
//! `examples/task-worker.sh` to the node daemon of this machine (protocol in
//! `docs/TASKS.md`):
//!
//! - `demo.add` (pure-calculation): `{"a": 1, "b": 2, "seconds": 0}` → `{"sum": 3}`
//! - `demo.clock` (query): `{}` → `{"now": <unix seconds>}`
//! - `demo.note` (action): `{"text": "..."}`, printed to stderr
//! - `demo.fail` (pure-calculation): fails with `kwargs.message`
//!
//! Run it as the node's user: `cargo run --example task_worker` (it finds the daemon
//! through `KACHERY_HOME` like the CLI does).

use std::time::Duration;

use anyhow::Context;
use kachery_client::LocalClient;
use kachery_node::paths::NodePaths;
use kachery_protocol::task::{
    FunctionId, TaskFunction, TaskType, WorkerJob, WorkerPollRequest, WorkerReport,
};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = connect()?;
    let offered = |id: &str, function_type| TaskFunction {
        function_id: FunctionId::parse(id).expect("demo function ids are valid"),
        function_type,
    };
    let poll = WorkerPollRequest {
        functions: vec![
            offered("demo.add", TaskType::PureCalculation),
            offered("demo.clock", TaskType::Query),
            offered("demo.note", TaskType::Action),
            offered("demo.fail", TaskType::PureCalculation),
        ],
        wait_ms: Some(20_000),
    };
    eprintln!("task_worker: polling {}", client.base_url());

    loop {
        let job = match client.poll_task_job(&poll).await {
            Ok(answer) => answer.job,
            Err(error) => {
                eprintln!("task_worker: poll failed: {error}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(job) = job else { continue };
        let report = run(&job).await;
        if let Err(error) = client.report_task_job(&job.job_id, &report).await {
            eprintln!("task_worker: report on job {} failed: {error}", job.job_id);
        }
    }
}

/// Runs one demo function; failures become `error` reports with a message.
async fn run(job: &WorkerJob) -> WorkerReport {
    let kwargs = Value::Object(job.kwargs.clone());
    let finished = |result| WorkerReport::Finished { result };
    match job.function_id.as_str() {
        "demo.add" => {
            let seconds = kwargs["seconds"].as_f64().unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 60.0))).await;
            match (kwargs["a"].as_f64(), kwargs["b"].as_f64()) {
                (Some(a), Some(b)) => finished(json!({ "sum": a + b })),
                _ => WorkerReport::Error {
                    message: "demo.add needs numbers a and b".to_owned(),
                },
            }
        }
        "demo.clock" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            finished(json!({ "now": now.as_secs_f64() }))
        }
        "demo.note" => {
            eprintln!("task_worker: note: {}", kwargs["text"]);
            finished(Value::Null)
        }
        "demo.fail" => WorkerReport::Error {
            message: kwargs["message"]
                .as_str()
                .unwrap_or("demo.fail always fails")
                .to_owned(),
        },
        other => WorkerReport::Error {
            message: format!("this worker does not know {other}"),
        },
    }
}

/// A client for the daemon of this node directory, from `daemon.json` and the token.
fn connect() -> anyhow::Result<LocalClient> {
    let paths = NodePaths::from_env();
    let daemon = kachery_node::daemon_file::read(&paths.node_dir)
        .context("failed to read daemon.json")?
        .context("the node daemon is not running: start it with `kachery node start`")?;
    let token = kachery_node::read_client_token(&paths.node_dir)
        .context("failed to read the node's client token")?;
    let url: url::Url = format!("http://127.0.0.1:{}", daemon.port).parse()?;
    Ok(LocalClient::new(url, token))
}

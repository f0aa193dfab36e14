//! `kachery task run` and `kachery task status`: ask the node daemon to run a task
//! through its channels and follow the request until it ends (SPEC §17).
//!
//! The daemon does the work; this command starts the request and long-polls its view,
//! printing the result JSON (or with `--json`, each view as it changes) on stdout.

use anyhow::Context;
use kachery_client::LocalClient;
use kachery_protocol::ChannelName;
use kachery_protocol::task::{FunctionId, TaskRunRequest, TaskType, TaskView};

use crate::cli::{TaskCommand, TaskRunArgs, TaskStatusArgs};
use crate::commands::access;
use crate::exit::{Failure, FailureKind};

/// How long one long-poll for the next view change waits.
const VIEW_WAIT_MS: u64 = 20_000;

pub async fn run(command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Run(args) => run_task(args).await,
        TaskCommand::Status(args) => status(args).await,
    }
}

async fn run_task(args: TaskRunArgs) -> anyhow::Result<()> {
    let function_id =
        FunctionId::parse(&args.function).map_err(|err| Failure::usage(err.to_string()))?;
    let function_type: TaskType = args
        .task_type
        .parse()
        .map_err(|err: kachery_protocol::task::TaskInputError| Failure::usage(err.to_string()))?;
    let kwargs: serde_json::Value = serde_json::from_str(&args.kwargs)
        .map_err(|err| Failure::usage(format!("--kwargs is not valid JSON: {err}")))?;
    let channels = args
        .channels
        .iter()
        .map(|name| ChannelName::parse(name).map_err(|err| Failure::usage(err.to_string())))
        .collect::<Result<Vec<_>, _>>()?;

    let daemon = daemon()?;
    let request = TaskRunRequest {
        function_id,
        function_type,
        kwargs,
        channels,
    };
    let first = daemon.run_task(&request).await.map_err(|err| {
        if err.code() == Some(kachery_protocol::api_error::ErrorCode::ValidationFailed) {
            anyhow::Error::from(Failure::usage(err.to_string()))
        } else {
            anyhow::Error::from(err).context("failed to ask the node daemon")
        }
    })?;
    let last = follow(&daemon, first, args.json).await?;
    finish(&last, args.json)
}

async fn status(args: TaskStatusArgs) -> anyhow::Result<()> {
    let request_id = kachery_protocol::Nonce::parse(&args.request_id).map_err(|_| {
        Failure::usage(format!(
            "{:?} is not a task request id (the requestId that `kachery task run --json` \
                 prints)",
            args.request_id
        ))
    })?;
    let daemon = daemon()?;
    let view = daemon
        .task_view(&request_id, None, 0)
        .await
        .context("failed to ask the node daemon")?;
    let view = if args.wait {
        follow(&daemon, view, args.json).await?
    } else {
        if args.json {
            println!("{}", serde_json::to_string(&view)?);
        }
        view
    };
    if !args.wait && !args.json {
        eprintln!("{}", describe(&view));
        return Ok(());
    }
    finish(&view, args.json)
}

/// Long-polls the request until it ends; with `json`, prints every view it sees.
async fn follow(daemon: &LocalClient, mut view: TaskView, json: bool) -> anyhow::Result<TaskView> {
    if json {
        println!("{}", serde_json::to_string(&view)?);
    }
    while !view.is_final() {
        let next = daemon
            .task_view(&view.request_id, Some(view.version), VIEW_WAIT_MS)
            .await
            .map_err(|_| {
                Failure::unavailable(format!(
                    "the node daemon stopped answering about task request {}",
                    view.request_id
                ))
            })?;
        if json && next.version != view.version {
            println!("{}", serde_json::to_string(&next)?);
        }
        view = next;
    }
    Ok(view)
}

/// Prints the result (without `--json`) and turns an error view into an exit code.
fn finish(view: &TaskView, json: bool) -> anyhow::Result<()> {
    if view.state == "error" {
        let kind = match view.error_code.as_deref() {
            Some("not_found") => FailureKind::NotFound,
            Some("denied") => FailureKind::Denied,
            Some("integrity") => FailureKind::Integrity,
            Some("timeout" | "unavailable") => FailureKind::Unavailable,
            Some("invalid") => FailureKind::Usage,
            _ => FailureKind::Other,
        };
        let message = view.message.clone().unwrap_or_else(|| "task failed".into());
        return Err(Failure::new(kind, message).into());
    }
    if json {
        return Ok(());
    }
    // A query's cached answer may be old: say so, where it does not mix with the result.
    if view.from_cache && view.function_type == TaskType::Query {
        eprintln!(
            "kachery: no live answer to {}; this is its last cached result",
            view.function_id
        );
    }
    match (&view.result, &view.result_uri) {
        (Some(result), _) => println!("{}", serde_json::to_string(result)?),
        (None, Some(uri)) => println!("{uri}"),
        (None, None) => {}
    }
    Ok(())
}

fn describe(view: &TaskView) -> String {
    let mut text = format!(
        "{} {}: {}",
        view.function_type, view.function_id, view.state
    );
    if let Some(progress) = &view.progress {
        text.push_str(&format!(" ({progress})"));
    }
    if let Some(message) = &view.message {
        text.push_str(&format!(": {message}"));
    }
    text
}

fn daemon() -> anyhow::Result<LocalClient> {
    access::local_daemon()?.ok_or_else(|| {
        Failure::unavailable("the node daemon is not running: start it with `kachery node start`")
            .into()
    })
}

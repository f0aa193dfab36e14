//! Row 6: cached-task lookup. Node A runs the shell worker of `examples/task-worker.sh`
//! for `demo.add`; a requester asks once (A computes and stores the result in the
//! bucket), then every timed `kachery task run` of the same pure task is answered from
//! the cache: the signed record read from the bucket and verified, the payload already in
//! the requester's store. The baseline is the same CLI reading a small local blob
//! (`kachery cat`), so the difference is the lookup itself: a local-API request, a
//! download URL from the hub, the record GET and its signature check.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::cluster::{Daemon, admit};
use crate::measure::{load_average, median, ms_text, percentile};
use crate::report::{Report, Row};
use crate::rows::{Context, Network};
use crate::shell::{KillOnDrop, run_timed};

/// Timed lookups per repeat.
const N_LOOKUPS: usize = 20;
const KWARGS: &str = r#"{"a": 40, "b": 2}"#;

pub async fn run(ctx: &Context, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    let dir = ctx.work.join("tasks");
    std::fs::create_dir_all(&dir)?;
    let alice = &net.alice;
    let channel = alice.create_channel("bench.tasks").await?;
    admit(
        alice,
        alice,
        &net.a.node_id,
        &channel,
        "requestTasks,provideTasks",
    )
    .await?;
    let requester = Daemon::start(
        &ctx.kachery,
        &dir.join("requester"),
        &net.hub.url,
        &net.bob.email,
        "bench-T",
    )?;
    admit(
        alice,
        &net.bob,
        &requester.node_id,
        &channel,
        "requestTasks",
    )
    .await?;
    net.a.wait_for_link(&channel)?;
    requester.wait_for_link(&channel)?;

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/task-worker.sh");
    let _worker = KillOnDrop(
        Command::new("sh")
            .arg(script)
            .env("KACHERY_HOME", &net.a.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start the shell task worker")?,
    );
    // The worker registers with its first poll.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The one real run: A computes, stores payload and record in the bucket.
    let args = ["task", "run", "demo.add", "--kwargs", KWARGS, "--json"];
    let (_, views) = run_timed(&mut requester.cli(&args))?;
    let last: serde_json::Value =
        serde_json::from_str(views.lines().last().context("task run printed no view")?)?;
    let uri = last["resultUri"]
        .as_str()
        .context("the first run stored no result")?
        .to_owned();

    let (mut loads, mut lookups, mut cats) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ctx.repeats {
        loads.push(load_average());
        let (mut lookup_samples, mut cat_samples) = (Vec::new(), Vec::new());
        for _ in 0..N_LOOKUPS {
            let (timed, out) = run_timed(&mut requester.cli(&args))?;
            anyhow::ensure!(
                out.contains("\"fromCache\":true"),
                "a lookup was not served from the cache: {out}"
            );
            lookup_samples.push(timed.wall);
            let (timed, _) = run_timed(&mut requester.cli(&["cat", &uri]))?;
            cat_samples.push(timed.wall);
        }
        lookups.push(lookup_samples);
        cats.push(cat_samples);
    }

    let p = |runs: &[Vec<f64>], p: f64| {
        median(
            &runs
                .iter()
                .map(|samples| percentile(samples, p))
                .collect::<Vec<_>>(),
        )
    };
    let (lookup_p50, cat_p50) = (p(&lookups, 50.0), p(&cats, 50.0));
    report.rows.push(Row {
        id: "6".into(),
        what: format!(
            "cached-task lookup: `kachery task run` of a pure task whose result is in the \
             bucket (signed record fetched and verified, payload already local), CLI start \
             to exit, no provider involved (p50 / p99 of {N_LOOKUPS} per repeat)"
        ),
        kachery: format!("{} / {}", ms_text(lookup_p50), ms_text(p(&lookups, 99.0))),
        baseline: format!(
            "`kachery cat` of the same result from the local store: {} / {}",
            ms_text(cat_p50),
            ms_text(p(&cats, 99.0))
        ),
        ratio: lookup_p50 / cat_p50,
        bottleneck: format!(
            "the lookup's round trips: local API start and long-poll, createDownloadUrls \
             on the hub, the record GET and its check ({} above the CLI's own start-up)",
            ms_text(lookup_p50 - cat_p50)
        ),
        loads,
    });
    requester.discard()?;
    crate::shell::remove(&dir)
}

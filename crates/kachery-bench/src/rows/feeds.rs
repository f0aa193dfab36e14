//! Row 7: feed append-to-delivery latency. Node A owns a feed; node F (another person's,
//! requestFeeds) follows one subfeed with `kachery feed read --follow`. Each sample
//! starts `kachery feed append` on A and ends when F's follower prints that message:
//! the append CLI (sign, chain, store on A), A's push on the channel's feed band, F's
//! verification (signature, chain, number) and its print. Appends are spaced so every
//! push goes out on a quiet band, as in row 5b. The baseline is the append command
//! alone (start to exit on A), so the difference is the delivery itself.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cluster::{Daemon, admit};
use crate::measure::{load_average, median, ms_text, percentile};
use crate::report::{Report, Row};
use crate::rows::latency::QUIET_SPACING;
use crate::rows::{Context, Network};
use crate::shell::{KillOnDrop, run_timed};

/// Timed appends per repeat.
const N_APPENDS: usize = 30;
/// How long one message may take to arrive before the row fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn run(ctx: &Context, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    let dir = ctx.work.join("feeds");
    std::fs::create_dir_all(&dir)?;
    let alice = &net.alice;
    let channel = alice.create_channel("bench.feeds").await?;
    admit(
        alice,
        alice,
        &net.a.node_id,
        &channel,
        "requestFeeds,provideFeeds",
    )
    .await?;
    let reader = Daemon::start(
        &ctx.kachery,
        &dir.join("reader"),
        &net.hub.url,
        &net.bob.email,
        "bench-F",
    )?;
    admit(alice, &net.bob, &reader.node_id, &channel, "requestFeeds").await?;
    net.a.wait_for_link(&channel)?;
    reader.wait_for_link(&channel)?;

    let (_, created) = run_timed(&mut net.a.cli(&["feed", "create", "--name", "bench"]))?;
    let feed_uri = created.trim().to_owned();
    anyhow::ensure!(
        feed_uri.starts_with("feed://"),
        "feed create printed {created:?}"
    );
    let subfeed_uri = format!("{}/samples", feed_uri.trim_end_matches('/'));
    let append = |index: usize| {
        let message = format!(r#"{{"sample": {index}}}"#);
        let args = [
            "feed",
            "append",
            feed_uri.as_str(),
            "samples",
            message.as_str(),
        ];
        run_timed(&mut net.a.cli(&args))
    };

    // Message 0 opens the subfeed, so the follower has something to follow.
    append(0)?;
    let mut command = reader.cli(&[
        "feed",
        "read",
        &subfeed_uri,
        "--follow",
        "--channel",
        channel.as_str(),
    ]);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start the feed follower")?;
    let stdout = child
        .stdout
        .take()
        .context("the follower's stdout is piped")?;
    let follower = KillOnDrop(child);
    let lines = spawn_line_reader(stdout);
    wait_for_sample(&lines, 0)?;

    let (mut loads, mut deliveries, mut appends) = (Vec::new(), Vec::new(), Vec::new());
    let mut index = 0;
    for _ in 0..ctx.repeats {
        loads.push(load_average());
        let (mut delivery_samples, mut append_samples) = (Vec::new(), Vec::new());
        for _ in 0..N_APPENDS {
            index += 1;
            tokio::time::sleep(QUIET_SPACING).await;
            let started = Instant::now();
            let (timed, _) = append(index)?;
            let arrived = wait_for_sample(&lines, index)?;
            delivery_samples.push(arrived.duration_since(started).as_secs_f64());
            append_samples.push(timed.wall);
        }
        deliveries.push(delivery_samples);
        appends.push(append_samples);
    }
    drop(follower);

    let p = |runs: &[Vec<f64>], p: f64| {
        median(
            &runs
                .iter()
                .map(|samples| percentile(samples, p))
                .collect::<Vec<_>>(),
        )
    };
    let (delivery_p50, append_p50) = (p(&deliveries, 50.0), p(&appends, 50.0));
    report.rows.push(Row {
        id: "7".into(),
        what: format!(
            "feed append → delivery: `kachery feed append` on A until a `feed read --follow` \
             on another person's node F prints the message, quiet band (p50 / p99 of \
             {N_APPENDS} per repeat)"
        ),
        kachery: format!(
            "{} / {}",
            ms_text(delivery_p50),
            ms_text(p(&deliveries, 99.0))
        ),
        baseline: format!(
            "the same `kachery feed append` alone, start to exit: {} / {}",
            ms_text(append_p50),
            ms_text(p(&appends, 99.0))
        ),
        ratio: delivery_p50 / append_p50,
        bottleneck: format!(
            "the append CLI itself (process start, local API, signing, fsync); the push \
             and F's verification add {}",
            ms_text(delivery_p50 - append_p50)
        ),
        loads,
    });
    reader.discard()?;
    crate::shell::remove(&dir)
}

/// Reads the follower's lines on a thread and sends each with the time it arrived.
fn spawn_line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<(String, Instant)> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits for the line carrying sample `index` and returns when it was read.
fn wait_for_sample(
    lines: &mpsc::Receiver<(String, Instant)>,
    index: usize,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (line, at) = lines.recv_timeout(left).with_context(|| {
            format!("feed message {index} did not arrive within {DELIVERY_TIMEOUT:?}")
        })?;
        let message: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the follower printed {line:?}"))?;
        if message["sample"] == index {
            return Ok(at);
        }
    }
}

//! `kachery-bench`: measures kachery against plain tools (`sha1sum`, `cp`, `curl`, the
//! hub's `/healthz`) on this machine and writes docs/BENCHMARKS.md.
//!
//! Run it through `bench/run.sh`, which builds this binary and `kachery` in release and
//! passes their paths. Each row repeats its measurement (3 times by default) and reports
//! the median; kachery and its baseline alternate so neither always runs on a warmer
//! machine. Speed is only ever measured here, never asserted in tests.
//!
//! Modules: `cluster` (hub, daemons and in-process node identities), `shell` (timed
//! commands), `measure` (timings and statistics), `rows` (one module per table row),
//! `report` (the Markdown).

mod cluster;
mod measure;
mod report;
mod rows;
mod shell;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

/// Benchmarks kachery side by side with baselines and writes a Markdown report.
#[derive(Debug, Parser)]
struct Args {
    /// The release `kachery` binary to measure
    #[arg(long)]
    kachery: PathBuf,

    /// Where to write the report
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,

    /// Scratch directory for the big files and every hub and node; must be empty or absent
    #[arg(long)]
    work: PathBuf,

    /// Size of the big file in bytes [default: 1 GiB]
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,

    /// Repeats per measurement; the median is reported
    #[arg(long, default_value_t = 3)]
    repeats: usize,

    /// Rows to run, comma-separated (1 store, 2 transfer, 3 bucket load, 2s and 3s the
    /// same on S3, 4 node API, 5 latency (5*-nats on NATS), 6 cached-task lookup, 7 feed
    /// delivery; 2 and 3 run together, as do 2s and 3s)
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,2s,4,5,6,7")]
    rows: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Two workers: the machine has two cores, shared with the hub and daemons we measure.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("failed to create {}", args.work.display()))?;
    let ctx = rows::Context::prepare(&args.kachery, &args.work, args.size, args.repeats)?;
    let wants = |row: &str| args.rows.iter().any(|wanted| wanted == row);

    let mut report = report::Report {
        machine: report::machine_facts(&args.work),
        rows: Vec::new(),
        details: Vec::new(),
        run_seconds: 0.0,
        repeats: ctx.repeats,
        failures: 0,
    };
    if args.size != 1 << 30 {
        report.machine.push((
            "big file size (not the default 1 GiB)".into(),
            args.size.to_string(),
        ));
    }

    // A row that fails is reported as failed and the others still run: a long benchmark
    // should not lose every number to one broken row.
    if wants("1") {
        eprintln!("row 1: kachery store vs sha1sum + cp");
        let result = rows::store::run(&ctx, &mut report);
        note_failure(&mut report, "1", result);
    }
    let needs_network = ["2", "3", "2s", "3s", "4", "5", "6", "7"]
        .iter()
        .any(|row| wants(row));
    if needs_network {
        let net = rows::Network::start(&ctx).await?;
        if wants("2") || wants("3") {
            eprintln!("rows 2 and 3: channel transfer and bucket load vs curl");
            let result = rows::transfer::run(&ctx, &net, &mut report).await;
            note_failure(&mut report, "2 and 3", result);
        }
        if wants("2s") || wants("3s") {
            eprintln!("rows 2s and 3s: the same on an S3 bucket (s3s-fs) vs curl");
            let result = rows::transfer::run_s3(&ctx, &net, &mut report).await;
            note_failure(&mut report, "2s and 3s", result);
        }
        if wants("4") {
            eprintln!("row 4: node API load vs /healthz");
            let result = rows::node_api::run(&ctx, &net, &mut report).await;
            note_failure(&mut report, "4", result);
        }
        if wants("5") {
            eprintln!("row 5: request and pub-sub latency");
            let result = rows::latency::run(&ctx, &net, &mut report).await;
            note_failure(&mut report, "5", result);
        }
        if wants("6") {
            eprintln!("row 6: cached-task lookup vs kachery cat");
            let result = rows::tasks::run(&ctx, &net, &mut report).await;
            note_failure(&mut report, "6", result);
        }
        if wants("7") {
            eprintln!("row 7: feed append-to-delivery latency");
            let result = rows::feeds::run(&ctx, &net, &mut report).await;
            note_failure(&mut report, "7", result);
        }
    }

    report.rows.sort_by(|a, b| a.id.cmp(&b.id));
    report.run_seconds = started.elapsed().as_secs_f64();
    std::fs::write(&args.out, report.render())
        .with_context(|| format!("failed to write {}", args.out.display()))?;
    eprintln!(
        "wrote {} in {:.1} min",
        args.out.display(),
        report.run_seconds / 60.0
    );
    anyhow::ensure!(
        report.failures == 0,
        "{} row group(s) failed; see the report",
        report.failures
    );
    Ok(())
}

/// Records a failed row group in the report (and on stderr) instead of stopping the run.
fn note_failure(report: &mut report::Report, rows: &str, result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("row {rows} failed: {error:#}");
        report.failures += 1;
        report
            .details
            .push((format!("Row {rows}: FAILED"), vec![format!("{error:#}")]));
    }
}

//! Rows 2 and 3: moving the big file from node A to a node of another person through a
//! channel, and loading it again once it sits in the channel's bucket.
//!
//! Each repeat gets fresh channels and fresh requesting nodes, so nothing is in a bucket
//! or a store before its first timed load:
//!
//! - row 2: node B (bob, requestFiles) runs `kachery load URI`; A claims and uploads the
//!   manifest and then the 20,000,000-byte chunks, B downloads them 4 at a time. Baseline:
//!   `curl` PUTs the same manifest and chunks into another channel of the same bucket, then
//!   GETs them back, 4 at a time, each hashed as written, plus the whole-file SHA-1.
//! - row 3: node C (bob, requestFiles) loads the same URI from the same channel, where the
//!   bucket now holds every object, so it only probes and GETs. Baseline: the same GETs
//!   with `curl`, hashed the same way.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, ensure};
use kachery_protocol::{ChannelName, FileUri, Manifest, Sha1Hash};

use crate::cluster::{Daemon, Identity, admit};
use crate::measure::{
    Timed, load_average, mb_per_second, median, median_timed, ms_text, per_repeat,
    processes_cpu_seconds, seconds_text,
};
use crate::report::{Report, Row};
use crate::rows::curl::{self, CurlRun, Object};
use crate::rows::s3::S3Bucket;
use crate::rows::store::size_label;
use crate::rows::{Context, Network};
use crate::shell::{remove, run_timed, settle_writeback};

/// Pub-sub flush delay of every node client (kachery-pubsub `ClientOptions`): a band
/// sends at most one frame per this window.
pub const FLUSH_DELAY_S: f64 = 0.150;
/// Chunks one load fetches at once (ExchangeOptions::parallel_chunks default).
const PARALLEL_CHUNKS: usize = 4;

/// What the benchmark knows about the big file once A stored it.
struct Shared {
    uri: String,
    whole: Sha1Hash,
    /// The manifest and every chunk, as files for curl.
    objects: Vec<Object>,
    n_chunks: usize,
}

/// The bucket the transfer channels use.
pub enum Bucket<'a> {
    /// The hub's embedded bucket: rows 2 and 3, with the evidence for their bottlenecks.
    Embedded,
    /// A signature-checking S3 server: rows 2s and 3s.
    S3(&'a S3Bucket),
}

impl Bucket<'_> {
    fn row_suffix(&self) -> &'static str {
        match self {
            Bucket::Embedded => "",
            Bucket::S3(_) => "s",
        }
    }

    fn channel_prefix(&self) -> &'static str {
        match self {
            Bucket::Embedded => "bench",
            Bucket::S3(_) => "bench.s3",
        }
    }

    async fn create_channel(&self, net: &Network, name: &str) -> anyhow::Result<ChannelName> {
        match self {
            Bucket::Embedded => net.alice.create_channel(name).await,
            Bucket::S3(s3) => {
                let channel = ChannelName::parse(name).context("invalid channel name")?;
                net.alice
                    .create_channel_from(s3.channel_request(&channel))
                    .await?;
                Ok(channel)
            }
        }
    }

    fn channel_dir(&self, net: &Network, channel: &ChannelName) -> std::path::PathBuf {
        match self {
            Bucket::Embedded => net.hub.bucket_dir(channel),
            Bucket::S3(s3) => s3.channel_dir(channel),
        }
    }
}

pub async fn run(ctx: &Context, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    run_on(ctx, net, report, Bucket::Embedded).await
}

/// Rows 2s and 3s: the same transfer and bucket load on an S3 channel.
pub async fn run_s3(ctx: &Context, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    let s3 = S3Bucket::start(&ctx.work)?;
    run_on(ctx, net, report, Bucket::S3(&s3)).await
}

async fn run_on(
    ctx: &Context,
    net: &Network,
    report: &mut Report,
    bucket: Bucket<'_>,
) -> anyhow::Result<()> {
    let dir = ctx.work.join("transfer");
    std::fs::create_dir_all(&dir)?;
    let shared = prepare(ctx, net, &dir)?;
    let curl_node = Identity::register(&net.hub.url, &net.alice, "bench-curl").await?;

    let mut repeats = Vec::with_capacity(ctx.repeats);
    for repeat in 0..ctx.repeats {
        repeats.push(run_repeat(ctx, net, &bucket, &shared, &curl_node, &dir, repeat).await?);
    }
    let loads2 = repeats.iter().map(|r| r.load2).collect();
    let loads3 = repeats.iter().map(|r| r.load3).collect();
    let kachery2: Vec<Timed> = repeats.iter().map(|r| r.kachery2).collect();
    let kachery3: Vec<Timed> = repeats.iter().map(|r| r.kachery3).collect();
    let curl2: Vec<CurlRun> = repeats.iter().map(|r| r.curl2).collect();
    let curl3: Vec<CurlRun> = repeats.iter().map(|r| r.curl3).collect();

    // Evidence for the bottleneck column (embedded bucket only): the provider's way of
    // streaming uploads replayed alone, and how fast sha1sum (the baselines' hasher) goes.
    let first_chunks = &shared.objects[1..shared.objects.len().min(1 + PARALLEL_CHUNKS)];
    let evidence = match bucket {
        Bucket::Embedded => Some(sha1sum_rate(first_chunks)?),
        Bucket::S3(_) => None,
    };

    let total = |runs: &[CurlRun]| runs.iter().map(|run| run.total).collect::<Vec<_>>();
    let (k2, c2) = (median_timed(&kachery2), median_timed(&total(&curl2)));
    let (k3, c3) = (median_timed(&kachery3), median_timed(&total(&curl3)));
    let curl_put = median(&curl2.iter().map(|run| run.put_seconds).collect::<Vec<_>>());
    let curl_get = median(&curl2.iter().map(|run| run.get_seconds).collect::<Vec<_>>());
    let size = ctx.size;
    let rate = |timed: Timed| {
        format!(
            "{} ({:.0} MB/s)",
            seconds_text(timed.wall),
            mb_per_second(size, timed.wall)
        )
    };
    let n_objects = shared.n_chunks + 1;
    // The manifest comes first and alone, then the chunks in rounds of four.
    let rounds = 1 + shared.n_chunks.div_ceil(PARALLEL_CHUNKS);
    let cores = std::thread::available_parallelism().map_or(2, usize::from) as f64;

    let size_label = size_label(size);
    let suffix = bucket.row_suffix();
    let on = match bucket {
        Bucket::Embedded => "",
        Bucket::S3(_) => ", S3 bucket (s3s-fs, SigV4)",
    };
    let row2_bottleneck = transfer_bottleneck(k2, c2, rounds, cores, 5);
    report.rows.push(Row {
        id: format!("2{suffix}"),
        what: format!(
            "{size_label} channel transfer A→B{on} (`kachery load` on B; A claims and uploads \
             {} chunks + manifest, B downloads 4 at a time)",
            shared.n_chunks
        ),
        kachery: rate(k2),
        baseline: format!(
            "curl PUT then GET of the same {n_objects} objects, `xargs -P4`, sha1sum each + \
             whole: {}",
            rate(c2)
        ),
        ratio: k2.wall / c2.wall,
        bottleneck: row2_bottleneck,
        loads: loads2,
    });
    report.rows.push(Row {
        id: format!("3{suffix}"),
        what: format!(
            "load of a bucket-resident {size_label} file{on} (fresh node C; only probes and \
             GETs)"
        ),
        kachery: rate(k3),
        baseline: format!(
            "curl GET of the same {n_objects} objects, `xargs -P4`, sha1sum each + whole: {}",
            rate(c3)
        ),
        ratio: k3.wall / c3.wall,
        bottleneck: transfer_bottleneck(k3, c3, rounds, cores, 3),
        loads: loads3,
    });
    let (row2, row3) = (format!("row 2{suffix}"), format!("row 3{suffix}"));
    let mut details = vec![
        format!(
            "kachery CPU (user + system of hub, node A, the loading node and the CLI, \
             summed): {row2} {:.1} s in {} wall = {:.0} % of {cores:.0} cores; {row3} {:.1} \
             s in {} = {:.0} %.",
            k2.cpu,
            seconds_text(k2.wall),
            100.0 * k2.cpu / (k2.wall * cores),
            k3.cpu,
            seconds_text(k3.wall),
            100.0 * k3.cpu / (k3.wall * cores)
        ),
        format!(
            "Per repeat, in run order (kachery first in repeats 1 and 3): {row2} kachery \
             {}, curl {}; {row3} kachery {}, curl {}.",
            per_repeat(kachery2.iter().map(|t| t.wall), "s"),
            per_repeat(curl2.iter().map(|r| r.total.wall), "s"),
            per_repeat(kachery3.iter().map(|t| t.wall), "s"),
            per_repeat(curl3.iter().map(|r| r.total.wall), "s")
        ),
        format!(
            "Baseline CPU (curl, sha1sum, tee and the hub): {row2} {:.1} s, {row3} {:.1} s. \
             {row2}'s baseline phases: PUT {} ({:.0} MB/s into the bucket), GET and hash {} \
             ({:.0} MB/s).",
            c2.cpu,
            c3.cpu,
            seconds_text(curl_put),
            mb_per_second(size, curl_put),
            seconds_text(curl_get),
            mb_per_second(size, curl_get)
        ),
        format!(
            "Per round of {PARALLEL_CHUNKS} chunks ({rounds} rounds, the manifest alone \
             first): {row2} kachery {} vs curl {}; {row3} kachery {} vs curl {}. Each \
             chunk fetched from a provider is a conversation: probe (createDownloadUrls \
             in a 20 ms window, HEAD), requestFile, claimed, acceptClaim, the provider's \
             createUploadUrls (100 ms window), PUT, uploaded, createDownloadUrls, GET; \
             follow-up messages on a band wait for its next frame ({:.0} ms apart).",
            ms_text(k2.wall / rounds as f64),
            ms_text(c2.wall / rounds as f64),
            ms_text(k3.wall / rounds as f64),
            ms_text(c3.wall / rounds as f64),
            FLUSH_DELAY_S * 1e3
        ),
    ];
    match evidence {
        Some(sha1sum_rate) => details.extend([
            "The provider streams each chunk from its store file in 1 MiB pieces (commit \
             b5e722d); with tokio-util's 4 KiB default, row 2 measured 71 MB/s on \
             2026-12-03, the upload then being the bottleneck."
                .to_owned(),
            format!(
                "The baselines hash with coreutils `sha1sum`, {sha1sum_rate:.0} MB/s here \
             (no SHA extensions), while kachery's `sha1` crate uses them; that, not HTTP, \
             is what row 3's baseline waits for."
            ),
            "Hashing per byte in kachery: the provider hashes while uploading, the bucket \
         while receiving, the requester while downloading, again in \
         `Partial::write_chunk` (plus an fsync per chunk), and once more over the \
         assembled file in `Partial::finish`: 5 SHA-1 passes for row 2, 3 for row 3. \
         The curl baseline hashes twice (bucket on PUT, sha1sum per chunk) plus once for \
         the whole file."
                .into(),
            "Baseline details: the file is pre-split into the same 20,000,000-byte chunks \
         (untimed); the benchmark's own registered node identity gets presigned URLs \
         with one createUploadUrls and one createDownloadUrls call (timed), curl sends \
         exactly the presigned headers (content-type, content-length) plus an empty \
         `Expect:` so it does not wait for 100-continue. PUT and GET are two phases, \
         whereas kachery overlaps uploads of some chunks with downloads of others. Each \
         repeat uses fresh channels and fresh requesting nodes; bucket objects stay in the \
         page cache between PUT and GET."
                .into(),
        ]),
        None => details.push(
            "The S3 server (s3s-fs) runs inside the benchmark process on a runtime of its \
             own, so its CPU is in neither CPU figure; it hashes (SHA-256 of the signed \
             request, MD5 for the ETag) and writes every object to disk. Objects are deleted \
             between repeats; the same chunk files, presigned-URL calls and curl options as \
             rows 2 and 3."
                .into(),
        ),
    }
    let title = match bucket {
        Bucket::Embedded => "Rows 2 and 3: channel transfer and bucket load",
        Bucket::S3(_) => "Rows 2s and 3s: the same on an S3 bucket",
    };
    report.details.push((title.into(), details));
    remove(&dir)
}

/// What one repeat of rows 2 and 3 measured.
struct Repeat {
    load2: f64,
    kachery2: Timed,
    curl2: CurlRun,
    load3: f64,
    kachery3: Timed,
    curl3: CurlRun,
}

/// One repeat: fresh channels and requesting nodes, then row 2 (A → B through the channel,
/// and curl's PUT + GET in another channel) and row 3 (C loads what row 2 left in the
/// bucket, and curl's GET of it). Who goes first alternates between repeats.
async fn run_repeat(
    ctx: &Context,
    net: &Network,
    bucket: &Bucket<'_>,
    shared: &Shared,
    curl_node: &Identity,
    dir: &Path,
    repeat: usize,
) -> anyhow::Result<Repeat> {
    let prefix = bucket.channel_prefix();
    let xfer = bucket
        .create_channel(net, &format!("{prefix}.xfer{repeat}"))
        .await?;
    let baseline = bucket
        .create_channel(net, &format!("{prefix}.curl{repeat}"))
        .await?;
    let (alice, a) = (&net.alice, &net.a);
    admit(alice, alice, &a.node_id, &xfer, "requestFiles,provideFiles").await?;
    admit(alice, alice, &curl_node.node_id, &xfer, "requestFiles").await?;
    admit(
        alice,
        alice,
        &curl_node.node_id,
        &baseline,
        "requestFiles,provideFiles",
    )
    .await?;
    let b = requester(ctx, net, &dir.join(format!("b{repeat}")), &xfer, "bench-B").await?;
    a.wait_for_link(&xfer)?;
    let out_dir = dir.join("curl-out");
    let kachery_first = repeat.is_multiple_of(2);

    // Row 2.
    let load2 = load_average();
    let daemons = [net.hub.pid(), a.pid(), b.pid()];
    let whole = Some(shared.whole);
    let hub_pid = net.hub.pid();
    let curl2 = || {
        curl::transfer(
            curl_node,
            &baseline,
            &shared.objects,
            true,
            &out_dir,
            whole,
            hub_pid,
        )
    };
    let (kachery2, curl2) = if kachery_first {
        let kachery = kachery_load(&b, &shared.uri, &daemons)?;
        (kachery, curl2().await?)
    } else {
        let curl = curl2().await?;
        (kachery_load(&b, &shared.uri, &daemons)?, curl)
    };
    remove(&bucket.channel_dir(net, &baseline))?;
    b.discard()?;
    eprintln!(
        "  repeat {repeat} row 2{}: kachery {:.2} s, curl {:.2} s",
        bucket.row_suffix(),
        kachery2.wall,
        curl2.total.wall
    );

    // Row 3: the bucket of `xfer` now holds the manifest and every chunk.
    let c = requester(ctx, net, &dir.join(format!("c{repeat}")), &xfer, "bench-C").await?;
    let load3 = load_average();
    let daemons = [net.hub.pid(), a.pid(), c.pid()];
    let curl3 = || {
        curl::transfer(
            curl_node,
            &xfer,
            &shared.objects,
            false,
            &out_dir,
            whole,
            hub_pid,
        )
    };
    let (kachery3, curl3) = if kachery_first {
        let kachery = kachery_load(&c, &shared.uri, &daemons)?;
        (kachery, curl3().await?)
    } else {
        let curl = curl3().await?;
        (kachery_load(&c, &shared.uri, &daemons)?, curl)
    };
    c.discard()?;
    remove(&bucket.channel_dir(net, &xfer))?;
    eprintln!(
        "  repeat {repeat} row 3{}: kachery {:.2} s, curl {:.2} s",
        bucket.row_suffix(),
        kachery3.wall,
        curl3.total.wall
    );

    Ok(Repeat {
        load2,
        kachery2,
        curl2,
        load3,
        kachery3,
        curl3,
    })
}

/// MB/s of `sha1sum` over the files of `objects`, one process.
fn sha1sum_rate(objects: &[Object]) -> anyhow::Result<f64> {
    let mut command = Command::new("sha1sum");
    command.args(objects.iter().map(|object| &object.file));
    let (timed, _) = run_timed(&mut command)?;
    let bytes: u64 = objects.iter().map(|object| object.size).sum();
    Ok(mb_per_second(bytes, timed.wall))
}

/// Names row 2's or row 3's bottleneck from the evidence: CPU when the cores are busy,
/// else the per-round waiting that the baseline does not have.
fn transfer_bottleneck(
    kachery: Timed,
    curl: Timed,
    rounds: usize,
    cores: f64,
    passes: u32,
) -> String {
    let busy = kachery.cpu / (kachery.wall * cores);
    let extra_per_round = (kachery.wall - curl.wall) / rounds as f64;
    if busy > 0.75 {
        format!(
            "CPU ({:.0} % of all cores): SHA-1 ×{passes} per byte, HTTP copies, fsync per chunk",
            100.0 * busy
        )
    } else if extra_per_round > 0.05 {
        format!(
            "per-chunk coordination: {} more per round of 4 chunks than curl while CPU is \
             {:.0} % busy (pub-sub frames 150 ms apart per band, URL batching windows, \
             round trips)",
            ms_text(extra_per_round),
            100.0 * busy
        )
    } else {
        format!(
            "HTTP GETs and hashing, the same work as the baseline (CPU {:.0} % busy); the \
             baseline also pays a curl, tee and sha1sum process per chunk",
            100.0 * busy
        )
    }
}

/// A fresh requesting node of bob's in `channel`, its link up.
async fn requester(
    ctx: &Context,
    net: &Network,
    home: &Path,
    channel: &ChannelName,
    label: &str,
) -> anyhow::Result<Daemon> {
    let node = Daemon::start(&ctx.kachery, home, &net.hub.url, &net.bob.email, label)?;
    admit(&net.alice, &net.bob, &node.node_id, channel, "requestFiles").await?;
    node.wait_for_link(channel)?;
    Ok(node)
}

/// Times `kachery load URI` on `node`; CPU covers the CLI and the `daemons` meanwhile.
pub fn kachery_load(node: &Daemon, uri: &str, daemons: &[u32]) -> anyhow::Result<Timed> {
    settle_writeback()?;
    let cpu_before = processes_cpu_seconds(daemons);
    let (timed, stdout) = run_timed(&mut node.cli(&["load", uri, "--json"]))?;
    let daemon_cpu = processes_cpu_seconds(daemons) - cpu_before;
    ensure!(
        stdout.contains("\"event\":\"done\""),
        "the load did not finish: {stdout}"
    );
    Ok(Timed {
        wall: timed.wall,
        cpu: timed.cpu + daemon_cpu,
        system: 0.0,
    })
}

/// A stores the big file (untimed); the file is split into chunk files for curl and the
/// manifest is read back from A's store.
fn prepare(ctx: &Context, net: &Network, dir: &Path) -> anyhow::Result<Shared> {
    let (_, stdout) = run_timed(&mut net.a.cli(&["store", &ctx.input.display().to_string()]))?;
    let uri_text = stdout.trim().to_owned();
    let uri = FileUri::parse(&uri_text).context("kachery store printed no URI")?;
    let manifest_sha1 = uri
        .manifest
        .context("the big file was stored without a manifest")?;

    let manifest_bytes = net
        .a
        .cli(&["cat", &format!("sha1://{}", manifest_sha1.to_hex())])
        .output()
        .context("failed to read the manifest back")?
        .stdout;
    let manifest =
        Manifest::parse(&manifest_bytes).context("the stored manifest does not parse")?;
    let manifest_file = dir.join("manifest.json");
    std::fs::write(&manifest_file, &manifest_bytes)?;

    let chunks_dir = dir.join("chunks");
    std::fs::create_dir_all(&chunks_dir)?;
    let status = Command::new("split")
        .args([
            "-b",
            &kachery_protocol::CHUNK_SIZE.to_string(),
            "-d",
            "-a",
            "3",
        ])
        .arg(&ctx.input)
        .arg(chunks_dir.join("c"))
        .status()?;
    ensure!(status.success(), "split failed");

    let mut objects = vec![Object {
        sha1: manifest_sha1,
        size: manifest_bytes.len() as u64,
        file: manifest_file,
        name: "manifest".into(),
    }];
    for (idx, chunk) in manifest.chunks.iter().enumerate() {
        let file = chunks_dir.join(format!("c{idx:03}"));
        ensure!(
            crate::measure::file_size(&file) == chunk.len(),
            "split and the manifest disagree"
        );
        objects.push(Object {
            sha1: chunk.sha1,
            size: chunk.len(),
            file,
            name: format!("c{idx:03}"),
        });
    }
    Ok(Shared {
        uri: uri_text,
        whole: uri.sha1,
        objects,
        n_chunks: manifest.chunks.len(),
    })
}

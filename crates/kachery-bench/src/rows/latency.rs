//! Row 5: latency of the coordination path.
//!
//! The node's pub-sub client sends an envelope at once when its band sent nothing in the
//! last `flush_delay` (150 ms), and holds envelopes that follow within that window for the
//! band's next frame (`kachery_pubsub::client`, batch.rs). So a message's delay depends on
//! what went just before it, and the rows measure both cases:
//!
//! - 5a: requestFile → claim. An identity held by this process plays the requester: it
//!   publishes `requestFile` for a small file node A holds and times until A's `claimed`
//!   arrives. Requests are spaced so both bands are quiet, as for a lone load.
//! - 5b: pub-sub publish → receive between two identities, the default client, messages
//!   spaced beyond the window (quiet band).
//! - 5c: the same, each message published as soon as the previous one arrived (busy band:
//!   it waits out the window), as in a conversation of several hops.
//! - 5d: `kachery load` of a small file on a node with an empty store, the file held by A
//!   and not in the bucket, end to end; against presigned PUT + GET of the same bytes with
//!   curl.
//!
//! The baseline of 5a–5c is the same client with `flush_delay` zero: the broker's floor.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ed25519_dalek::SigningKey;
use kachery_protocol::pubsub::{FileKey, FileStatus, PubsubBody, PubsubEnvelope, PubsubMessage};
use kachery_protocol::{Band, ChannelName, FileUri, Nonce, Sha1Hash};
use kachery_pubsub::{ClientOptions, Incoming, PubsubConnection};

use crate::cluster::{Daemon, Identity, admit};
use crate::measure::{
    Timed, load_average, median, median_timed, ms_text, percentile, seconds_text,
};
use crate::report::{Report, Row};
use crate::rows::curl::{self, CurlRun, Object};
use crate::rows::transfer::{FLUSH_DELAY_S, kachery_load};
use crate::rows::{Context, Network, write_pseudo_random};

/// Samples per repeat of 5a.
const N_CLAIMS: usize = 30;
/// Samples per repeat of 5b and 5c, per setting.
pub(crate) const N_MESSAGES: usize = 200;
/// Size of the small file of 5a and 5d.
const SMALL_SIZE: u64 = 100_000;
/// Pause after an answer so the band is quiet again: the 150 ms window plus margin.
pub(crate) const QUIET_SPACING: Duration = Duration::from_millis(170);
/// The broker allows 50 frames/s per connection; without batching every message is a
/// frame, so the zero-delay client's messages are spaced to stay under that.
pub(crate) const UNBATCHED_SPACING: Duration = Duration::from_millis(25);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The per-repeat samples of one setting.
pub(crate) type Runs = Vec<Vec<f64>>;

/// The channel of row 5 and who takes part in it.
struct Setup {
    dir: std::path::PathBuf,
    channel: ChannelName,
    /// A channel of its own for 5d's curl baseline, so its objects never meet kachery's.
    curl_channel: ChannelName,
    /// requestFiles, default client: the requester of 5a and the sender of 5b and 5c.
    requester: Identity,
    /// requestFiles, zero flush delay: the baseline sender.
    unbatched: Identity,
    /// provideFiles: hears the requestFiles band in 5b and 5c.
    listener: Identity,
    curl_node: Identity,
    /// bob's daemon with requestFiles, loading in 5d.
    loader: Daemon,
}

pub async fn run(ctx: &Context, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    let setup = set_up(ctx, net).await?;
    let claims = measure_claims(ctx, net, &setup).await?;
    eprintln!("  5a done");
    let pubsub = measure_one_way(ctx, &setup).await?;
    eprintln!("  5b, 5c done");
    let small_loads = measure_small_loads(ctx, net, &setup).await?;
    eprintln!("  5d done");

    summarize(report, claims, pubsub, small_loads);
    crate::rows::latency_nats::run(ctx.repeats, net, report).await?;
    eprintln!("  5b-nats, 5c-nats done");
    setup.loader.discard()?;
    crate::shell::remove(&setup.dir)
}

async fn set_up(ctx: &Context, net: &Network) -> anyhow::Result<Setup> {
    let dir = ctx.work.join("latency");
    std::fs::create_dir_all(&dir)?;
    let alice = &net.alice;
    let channel = alice.create_channel("bench.latency").await?;
    let curl_channel = alice.create_channel("bench.latency-curl").await?;
    admit(
        alice,
        alice,
        &net.a.node_id,
        &channel,
        "requestFiles,provideFiles",
    )
    .await?;

    let requester = Identity::register(&net.hub.url, alice, "bench-requester").await?;
    let unbatched = Identity::register(&net.hub.url, alice, "bench-unbatched").await?;
    let listener = Identity::register(&net.hub.url, alice, "bench-listener").await?;
    let curl_node = Identity::register(&net.hub.url, alice, "bench-curl-small").await?;
    admit(alice, alice, &requester.node_id, &channel, "requestFiles").await?;
    admit(alice, alice, &unbatched.node_id, &channel, "requestFiles").await?;
    admit(alice, alice, &listener.node_id, &channel, "provideFiles").await?;
    let curl_roles = "requestFiles,provideFiles";
    admit(alice, alice, &curl_node.node_id, &curl_channel, curl_roles).await?;

    let loader_home = dir.join("loader");
    let loader = Daemon::start(
        &ctx.kachery,
        &loader_home,
        &net.hub.url,
        &net.bob.email,
        "bench-L",
    )?;
    admit(alice, &net.bob, &loader.node_id, &channel, "requestFiles").await?;
    net.a.wait_for_link(&channel)?;
    loader.wait_for_link(&channel)?;
    Ok(Setup {
        dir,
        channel,
        curl_channel,
        requester,
        unbatched,
        listener,
        curl_node,
        loader,
    })
}

/// 5a: A holds a small file; the requester asks for it and waits for A's claim.
async fn measure_claims(
    ctx: &Context,
    net: &Network,
    setup: &Setup,
) -> anyhow::Result<(Vec<f64>, Runs)> {
    let held = setup.dir.join("held.bin");
    write_pseudo_random(&held, SMALL_SIZE, 0x5a)?;
    let sha1 = store_on_a(net, &held)?.sha1;
    let (key, channel) = (&setup.requester.key, &setup.channel);
    let mut link = connect(&setup.requester, channel, ClientOptions::default()).await?;
    link.subscribe(Band::ProvideFiles).await?;
    // Lets the subscription reach the broker before the first request.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut loads, mut runs) = (Vec::new(), Runs::new());
    for _ in 0..ctx.repeats {
        loads.push(load_average());
        let mut samples = Vec::with_capacity(N_CLAIMS);
        for _ in 0..N_CLAIMS {
            samples.push(request_to_claim(&mut link, key, channel, sha1).await?);
            tokio::time::sleep(QUIET_SPACING).await;
        }
        runs.push(samples);
    }
    Ok((loads, runs))
}

/// 5b, 5c: one-way publish → receive, the listener hearing the requestFiles band. The
/// requests name a random hash nobody holds, so node A, which hears them too, ignores them.
async fn measure_one_way(ctx: &Context, setup: &Setup) -> anyhow::Result<(Vec<f64>, PubsubRuns)> {
    let channel = &setup.channel;
    let mut listener = connect(&setup.listener, channel, ClientOptions::default()).await?;
    listener.subscribe(Band::RequestFiles).await?;
    let batched = connect(&setup.requester, channel, ClientOptions::default()).await?;
    let zero_delay = ClientOptions {
        flush_delay: Duration::ZERO,
        ..ClientOptions::default()
    };
    let unbatched = connect(&setup.unbatched, channel, zero_delay).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (batched_key, unbatched_key) = (&setup.requester.key, &setup.unbatched.key);
    let mut loads = Vec::new();
    let mut runs = PubsubRuns {
        quiet: Runs::new(),
        busy: Runs::new(),
        zero: Runs::new(),
    };
    for repeat in 0..ctx.repeats {
        loads.push(load_average());
        // Rotate which setting goes first.
        for setting in 0..3 {
            let listener = &mut listener;
            match (setting + repeat) % 3 {
                0 => runs
                    .quiet
                    .push(one_way(&batched, batched_key, listener, channel, QUIET_SPACING).await?),
                1 => runs
                    .busy
                    .push(one_way(&batched, batched_key, listener, channel, Duration::ZERO).await?),
                _ => runs.zero.push(
                    one_way(
                        &unbatched,
                        unbatched_key,
                        listener,
                        channel,
                        UNBATCHED_SPACING,
                    )
                    .await?,
                ),
            }
        }
    }
    Ok((loads, runs))
}

/// 5d: a fresh small file per repeat, held only by A; the loader's store starts empty.
async fn measure_small_loads(
    ctx: &Context,
    net: &Network,
    setup: &Setup,
) -> anyhow::Result<(Vec<f64>, Vec<Timed>, Vec<CurlRun>)> {
    let (mut loads, mut kachery_runs, mut curl_runs) = (Vec::new(), Vec::new(), Vec::new());
    let out_dir = setup.dir.join("curl-out");
    let daemons = [net.hub.pid(), net.a.pid(), setup.loader.pid()];
    let hub_pid = net.hub.pid();
    for repeat in 0..ctx.repeats {
        let small = setup.dir.join(format!("small-{repeat}.bin"));
        write_pseudo_random(&small, SMALL_SIZE, 0x100 + repeat as u64)?;
        let uri = store_on_a(net, &small)?;
        let object = Object {
            sha1: uri.sha1,
            size: SMALL_SIZE,
            file: small,
            name: "c000".into(),
        };
        let uri = uri.to_string();
        let objects = std::slice::from_ref(&object);
        let (node, channel) = (&setup.curl_node, &setup.curl_channel);
        let run_curl = || curl::transfer(node, channel, objects, true, &out_dir, None, hub_pid);

        loads.push(load_average());
        if repeat.is_multiple_of(2) {
            kachery_runs.push(kachery_load(&setup.loader, &uri, &daemons)?);
            curl_runs.push(run_curl().await?);
        } else {
            curl_runs.push(run_curl().await?);
            kachery_runs.push(kachery_load(&setup.loader, &uri, &daemons)?);
        }
    }
    Ok((loads, kachery_runs, curl_runs))
}

struct PubsubRuns {
    quiet: Runs,
    busy: Runs,
    zero: Runs,
}

/// Median over repeats of each repeat's `p`-th percentile.
pub(crate) fn pct(runs: &[Vec<f64>], p: f64) -> f64 {
    median(
        &runs
            .iter()
            .map(|samples| percentile(samples, p))
            .collect::<Vec<_>>(),
    )
}

pub(crate) fn p50_p99(runs: &[Vec<f64>]) -> String {
    format!(
        "{} / {}",
        ms_text(pct(runs, 50.0)),
        ms_text(pct(runs, 99.0))
    )
}

fn summarize(
    report: &mut Report,
    (claim_loads, claim_runs): (Vec<f64>, Runs),
    (pubsub_loads, pubsub): (Vec<f64>, PubsubRuns),
    (load_loads, kachery_loads, curl_loads): (Vec<f64>, Vec<Timed>, Vec<CurlRun>),
) {
    let claim_runs = &claim_runs;
    let zero_p50 = pct(&pubsub.zero, 50.0);
    let zero_p99 = pct(&pubsub.zero, 99.0);
    let claim_p50 = pct(claim_runs, 50.0);
    let quiet_p50 = pct(&pubsub.quiet, 50.0);
    let busy_p50 = pct(&pubsub.busy, 50.0);
    let kachery_load = median_timed(&kachery_loads);
    let curl_load = median_timed(&curl_loads.iter().map(|run| run.total).collect::<Vec<_>>());
    let zero_text = format!(
        "same client with `flush_delay` 0: {}",
        p50_p99(&pubsub.zero)
    );

    // On quiet bands the claim should cost two broker hops; anything well above that is
    // a batching wait, a little above is the provider's own work.
    let above_floor = claim_p50 - 2.0 * zero_p50;
    let claim_bottleneck = if above_floor > 0.5 * FLUSH_DELAY_S {
        format!(
            "batching delay: {} above the two-hop floor",
            ms_text(above_floor)
        )
    } else if above_floor > 0.001 {
        format!(
            "provider's work between the hops (store lookup, signing): {} above the \
             two-hop floor",
            ms_text(above_floor)
        )
    } else {
        "broker hops: request and claim each cross the broker once, with no batching wait \
         on quiet bands; the provider's lookup is lost in the noise"
            .into()
    };
    report.rows.push(Row {
        id: "5a".into(),
        what: format!(
            "requestFile → claim: a requester publishes `requestFile`, node A answers \
             `claimed`, quiet bands (p50 / p99 of {N_CLAIMS} per repeat)"
        ),
        kachery: p50_p99(claim_runs),
        baseline: format!(
            "two broker hops without batching (2 × zero-delay one-way of 5b): {} / {}",
            ms_text(2.0 * zero_p50),
            ms_text(2.0 * zero_p99)
        ),
        ratio: claim_p50 / (2.0 * zero_p50),
        bottleneck: claim_bottleneck,
        loads: claim_loads,
    });
    report.rows.push(Row {
        id: "5b".into(),
        what: format!(
            "pub-sub publish → receive, node client defaults, band quiet for 150 ms before \
             each message (p50 / p99 of {N_MESSAGES} per repeat)"
        ),
        kachery: p50_p99(&pubsub.quiet),
        baseline: zero_text.clone(),
        ratio: quiet_p50 / zero_p50,
        bottleneck: if quiet_p50 > zero_p50 + 0.5 * FLUSH_DELAY_S {
            "batching delay".into()
        } else {
            "broker hop (WebSocket, JSON); no batching wait on a quiet band".into()
        },
        loads: pubsub_loads.clone(),
    });
    report.rows.push(Row {
        id: "5c".into(),
        what: format!(
            "same, each message published as soon as the previous one arrived (p50 / p99 \
             of {N_MESSAGES} per repeat)"
        ),
        kachery: p50_p99(&pubsub.busy),
        baseline: zero_text,
        ratio: busy_p50 / zero_p50,
        bottleneck: format!(
            "batching delay: a band sends at most one frame per {:.0} ms, so a follow-up \
             waits out the window",
            FLUSH_DELAY_S * 1e3
        ),
        loads: pubsub_loads,
    });
    report.rows.push(Row {
        id: "5d".into(),
        what: format!(
            "small-file `kachery load` end to end ({} kB, held by A, not in the bucket, \
             empty store; CLI start to exit)",
            SMALL_SIZE / 1000
        ),
        kachery: seconds_text(kachery_load.wall),
        baseline: format!(
            "createUploadUrls + curl PUT + createDownloadUrls + curl GET + sha1sum: {}",
            seconds_text(curl_load.wall)
        ),
        ratio: kachery_load.wall / curl_load.wall,
        bottleneck: "batching delay: follow-up hops on a band wait out its 150 ms window; \
                     upload- and download-URL windows (100 ms, 20 ms)"
            .into(),
        loads: load_loads,
    });
    report.details.push((
        "Row 5: latency".into(),
        vec![
            format!(
                "The node's pub-sub client (`kachery_pubsub::client`, batch.rs) sends an \
                 envelope at once when its band sent no frame in the last {:.0} ms, and \
                 holds envelopes that follow within that window for the band's next frame; \
                 node daemons always use this default. 5b (quiet band, {}) and 5c (busy \
                 band, {}) show both sides of that rule against the zero-delay floor ({}).",
                FLUSH_DELAY_S * 1e3,
                ms_text(quiet_p50),
                ms_text(busy_p50),
                ms_text(zero_p50)
            ),
            format!(
                "A small load that is not in any bucket is a conversation: probe (download-URL \
                 window 20 ms, createDownloadUrls, HEAD), requestFile, claimed, acceptClaim \
                 (same band as requestFile, so it waits out the 150 ms window), the \
                 provider's upload-URL window (100 ms) and createUploadUrls, PUT, uploaded \
                 (same band as claimed), download-URL window, GET. End to end: {} (CPU of \
                 the CLI, hub, A and the loader together: {:.2} s).",
                seconds_text(kachery_load.wall),
                kachery_load.cpu
            ),
            format!(
                "Messages are spaced {} after each answer for quiet bands (5a, 5b); the \
                 zero-delay client spaces them {} to stay under the broker's 50 frames/s \
                 per connection.",
                ms_text(QUIET_SPACING.as_secs_f64()),
                ms_text(UNBATCHED_SPACING.as_secs_f64())
            ),
        ],
    ));
}

/// `kachery store` on A; the file's URI.
fn store_on_a(net: &Network, path: &std::path::Path) -> anyhow::Result<FileUri> {
    let output = net
        .a
        .cli(&["store", &path.display().to_string()])
        .output()?;
    anyhow::ensure!(output.status.success(), "kachery store failed on A");
    let stdout = String::from_utf8_lossy(&output.stdout);
    FileUri::parse(stdout.trim()).context("kachery store printed no URI")
}

async fn connect(
    identity: &Identity,
    channel: &ChannelName,
    options: ClientOptions,
) -> anyhow::Result<PubsubConnection> {
    let credential = identity
        .api
        .pubsub_credential(channel)
        .await
        .context("getPubsubCredential")?;
    let (connection, _ready) = PubsubConnection::open(&credential.credential, options)
        .await
        .context("failed to connect to the broker")?;
    Ok(connection)
}

/// A signed `requestFile` for `sha1` with a fresh request id.
fn request_envelope(
    key: &SigningKey,
    channel: &ChannelName,
    sha1: Sha1Hash,
) -> (Nonce, PubsubEnvelope) {
    let request_id = random_nonce();
    let body = PubsubBody {
        channel: channel.clone(),
        timestamp: kachery_client::now_ms(),
        nonce: random_nonce(),
        message: PubsubMessage::RequestFile {
            request_id,
            file_key: FileKey {
                sha1,
                manifest_sha1: None,
                chunk_of: None,
            },
            exclude: Vec::new(),
        },
    };
    (request_id, PubsubEnvelope::seal(key, &body))
}

/// Seconds from publishing a request for `sha1` until a `claimed` for it arrives.
async fn request_to_claim(
    link: &mut PubsubConnection,
    key: &SigningKey,
    channel: &ChannelName,
    sha1: Sha1Hash,
) -> anyhow::Result<f64> {
    let (request_id, envelope) = request_envelope(key, channel, sha1);
    let started = Instant::now();
    link.publisher()
        .publish(Band::RequestFiles, envelope)
        .await?;
    wait_for(link, |message| {
        matches!(
            message,
            PubsubMessage::FileStatus { request_id: id, status: FileStatus::Claimed, .. }
                if *id == request_id
        )
    })
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// `N_MESSAGES` one-way latencies from `sender` to `receiver`, the next message published
/// `spacing` after the previous one arrived.
pub(crate) async fn one_way(
    sender: &PubsubConnection,
    key: &SigningKey,
    receiver: &mut PubsubConnection,
    channel: &ChannelName,
    spacing: Duration,
) -> anyhow::Result<Vec<f64>> {
    let publisher = sender.publisher();
    let mut samples = Vec::with_capacity(N_MESSAGES);
    for _ in 0..N_MESSAGES {
        let mut unheld = [0u8; 20];
        getrandom::fill(&mut unheld).context("no OS randomness")?;
        let (request_id, envelope) = request_envelope(key, channel, Sha1Hash::from_bytes(unheld));
        let started = Instant::now();
        publisher.publish(Band::RequestFiles, envelope).await?;
        wait_for(receiver, |message| {
            let PubsubMessage::RequestFile { request_id: id, .. } = message else {
                return false;
            };
            *id == request_id
        })
        .await?;
        samples.push(started.elapsed().as_secs_f64());
        tokio::time::sleep(spacing).await;
    }
    Ok(samples)
}

/// Reads `link` until a message satisfies `wanted`; other messages are skipped.
async fn wait_for(
    link: &mut PubsubConnection,
    wanted: impl Fn(&PubsubMessage) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, link.incoming().recv())
            .await
            .context("no answer within 5 s")?;
        match event {
            Some(Incoming::Message { envelope, .. }) => {
                let body: Result<PubsubBody, _> = serde_json::from_value(envelope.body);
                if body.is_ok_and(|body| wanted(&body.message)) {
                    return Ok(());
                }
            }
            Some(Incoming::Refused { code, message }) => {
                bail!("broker refused ({code}): {message}")
            }
            Some(Incoming::Closed { .. }) | None => bail!("the broker closed the connection"),
            Some(_) => {}
        }
    }
}

fn random_nonce() -> Nonce {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    Nonce::from_bytes(bytes)
}

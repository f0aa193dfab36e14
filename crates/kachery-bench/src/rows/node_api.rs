//! Row 4: signed node-API requests per second and their p99 latency under 64 concurrent
//! callers, against the same callers hitting the hub's unauthenticated `/healthz`.
//!
//! The hub limits each node id to 20 requests/s (burst 100), so the callers spread over
//! 128 registered node ids: that allows 2,560 req/s sustained plus 12,800 at once, more
//! than the hub serves here. Refusals (429) are counted and reported; they would mean the
//! limit, not the hub, set the number.
//!
//! To say where the time goes, two more loads stop part-way through the hub's ordered
//! checks (SPEC §11.1): envelopes with a wrong signature stop at check 5, before any
//! database access; requests from unregistered node ids pass the nonce insert (check 6)
//! and stop at the node lookup (check 8).

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use kachery_client::{NodeApiClient, now_ms};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::{GetNodeConfigRequest, NodeRequest};
use tokio::task::JoinSet;

use crate::cluster::{Identity, Person};
use crate::measure::{load_average, median, ms_text, percentile, process_cpu_seconds};
use crate::report::{Report, Row};
use crate::rows::{Context, Network};

const CONCURRENCY: usize = 64;
const N_NODE_IDS: usize = 128;
const DURATION: Duration = Duration::from_secs(5);
/// Length of each part-way load, which only supports the bottleneck column.
const PROBE_DURATION: Duration = Duration::from_secs(2);

/// How one request ended.
enum Outcome {
    /// The expected answer (for part-way loads: the expected refusal).
    Done,
    /// 429 from the per-node rate limit.
    Refused,
    Failed,
}

/// One request in flight, as the load loop drives it.
type Request = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What one load run saw.
#[derive(Debug, Default, Clone)]
struct LoadRun {
    requests_per_second: f64,
    latencies: Vec<f64>,
    n_refused: usize,
    n_failed: usize,
    /// CPU seconds per second of the hub and of this process (the load generator).
    hub_cores: f64,
    client_cores: f64,
}

pub async fn run(ctx: &Context, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    // Half the ids belong to each person, keeping both under the 100-node limit of SPEC §21.
    let mut clients = Vec::with_capacity(N_NODE_IDS);
    for idx in 0..N_NODE_IDS {
        let owner: &Person = if idx % 2 == 0 { &net.alice } else { &net.bob };
        let identity =
            Identity::register(&net.hub.url, owner, &format!("bench-load-{idx}")).await?;
        clients.push(identity.api);
    }
    let clients = Arc::new(clients);
    let strangers = Arc::new(unregistered_clients(net)?);
    let healthz = net.hub.url.join("healthz")?;
    let http = reqwest::Client::new();
    let pid = net.hub.pid();

    // One caller alone first: the latency of a request with no queue in front of it.
    let single = drive(1, Duration::from_secs(2), pid, node_config(&clients)).await?;

    let (mut loads, mut signed, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bad_signature, mut unregistered) = (Vec::new(), Vec::new());
    for repeat in 0..ctx.repeats {
        loads.push(load_average());
        if repeat.is_multiple_of(2) {
            signed.push(drive(CONCURRENCY, DURATION, pid, node_config(&clients)).await?);
            plain.push(drive(CONCURRENCY, DURATION, pid, get(&http, &healthz)).await?);
        } else {
            plain.push(drive(CONCURRENCY, DURATION, pid, get(&http, &healthz)).await?);
            signed.push(drive(CONCURRENCY, DURATION, pid, node_config(&clients)).await?);
        }
        let wrong = wrong_signature(&clients);
        bad_signature.push(drive(CONCURRENCY, PROBE_DURATION, pid, wrong).await?);
        let stranger = node_config_refused(&strangers, ErrorCode::NodeNotRegistered);
        unregistered.push(drive(CONCURRENCY, PROBE_DURATION, pid, stranger).await?);
        let (s, p) = (
            signed.last().expect("pushed"),
            plain.last().expect("pushed"),
        );
        eprintln!(
            "  repeat {repeat}: getNodeConfig {:.0} req/s, /healthz {:.0} req/s",
            s.requests_per_second, p.requests_per_second
        );
    }

    let signed_sum = Summary::of(&signed);
    let plain_sum = Summary::of(&plain);
    let bad_sum = Summary::of(&bad_signature);
    let stranger_sum = Summary::of(&unregistered);
    let n_refused: usize = signed.iter().map(|run| run.n_refused).sum();
    let n_failed: usize = [&signed, &plain, &bad_signature, &unregistered]
        .iter()
        .flat_map(|runs| runs.iter())
        .map(|run| run.n_failed)
        .sum();
    let fsync = fsync_latency(&net.hub.data_dir)?;

    // The checks are ordered: if stopping before the database is much faster and stopping
    // right after the nonce insert is about as slow as the whole request, the insert is it.
    let bottleneck =
        if bad_sum.rate > 2.0 * signed_sum.rate && stranger_sum.rate < 1.5 * signed_sum.rate {
            format!(
                "SQLite: the nonce insert every request makes. Stopping before it: {:.0} req/s; \
             stopping right after it: {:.0} req/s; hub CPU {:.2} of 2 cores",
                bad_sum.rate, stranger_sum.rate, signed_sum.hub_cores
            )
        } else if signed_sum.hub_cores + signed_sum.client_cores > 1.6 {
            format!(
                "CPU: hub {:.2} + load generator {:.2} of 2 cores (Ed25519, JSON, SQLite)",
                signed_sum.hub_cores, signed_sum.client_cores
            )
        } else {
            format!(
                "hub request path (hub CPU {:.2} of 2 cores)",
                signed_sum.hub_cores
            )
        };
    report.rows.push(Row {
        id: "4".into(),
        what: format!(
            "node API: signed `getNodeConfig`, {CONCURRENCY} concurrent callers over \
             {N_NODE_IDS} registered node ids, {} s per run",
            DURATION.as_secs()
        ),
        kachery: format!(
            "{:.0} req/s, p99 {}",
            signed_sum.rate,
            ms_text(signed_sum.p99)
        ),
        baseline: format!(
            "`GET /healthz`, same {CONCURRENCY} callers: {:.0} req/s, p99 {}",
            plain_sum.rate,
            ms_text(plain_sum.p99)
        ),
        ratio: plain_sum.rate / signed_sum.rate,
        bottleneck,
        loads,
    });
    report.details.push((
        "Row 4: node API".into(),
        vec![
            format!(
                "getNodeConfig: p50 {}, p99 {}; hub used {:.2} cores, the load generator \
                 (signing, HTTP client) {:.2}. /healthz: p50 {}, p99 {}; hub {:.2} cores, \
                 generator {:.2} (the baseline is bounded by the two cores it shares with \
                 its own load generator).",
                ms_text(signed_sum.p50),
                ms_text(signed_sum.p99),
                signed_sum.hub_cores,
                signed_sum.client_cores,
                ms_text(plain_sum.p50),
                ms_text(plain_sum.p99),
                plain_sum.hub_cores,
                plain_sum.client_cores
            ),
            format!(
                "Where the time goes ({CONCURRENCY} callers, {} s, median of the repeats): \
                 envelopes with a wrong signature, refused at check 5 before any database \
                 access: {:.0} req/s, p99 {}, hub CPU {} per request. Unregistered node ids, \
                 refused at check 8 after the nonce insert (check 6): {:.0} req/s, p99 {}, \
                 hub CPU {} per request. Full getNodeConfig: {:.0} req/s, hub CPU {} per \
                 request.",
                PROBE_DURATION.as_secs(),
                bad_sum.rate,
                ms_text(bad_sum.p99),
                ms_text(bad_sum.hub_cores / bad_sum.rate),
                stranger_sum.rate,
                ms_text(stranger_sum.p99),
                ms_text(stranger_sum.hub_cores / stranger_sum.rate),
                signed_sum.rate,
                ms_text(signed_sum.hub_cores / signed_sum.rate)
            ),
            format!(
                "One caller alone: {:.0} req/s, p50 {}, p99 {}. For scale, rewriting 4 KiB \
                 in place plus fdatasync in the hub's data directory takes {} (median of \
                 100); the hub's SQLite runs in WAL mode with sqlx's default \
                 synchronous=FULL, so every commit syncs the WAL.",
                single.requests_per_second,
                ms_text(percentile(&single.latencies, 50.0)),
                ms_text(percentile(&single.latencies, 99.0)),
                ms_text(fsync)
            ),
            format!(
                "Rate limit: 429 refusals in all repeats: {n_refused}; other failures (all \
                 loads): {n_failed}. Every request is verified (Ed25519 over the RFC 8785 \
                 form of the body), its nonce inserted into SQLite (WAL), the node looked \
                 up, its memberships read and the answer hashed for the etag."
            ),
            "Both sides use one load loop in this process (tokio, 2 workers, reqwest); each \
             node id has its own connection pool. Latency is from sending the request to \
             having the parsed response."
                .into(),
        ],
    ));
    Ok(())
}

/// Medians over repeats.
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    hub_cores: f64,
    client_cores: f64,
}

impl Summary {
    fn of(runs: &[LoadRun]) -> Self {
        let of = |value: fn(&LoadRun) -> f64| median(&runs.iter().map(value).collect::<Vec<_>>());
        Self {
            rate: of(|run| run.requests_per_second),
            p50: of(|run| percentile(&run.latencies, 50.0)),
            p99: of(|run| percentile(&run.latencies, 99.0)),
            hub_cores: of(|run| run.hub_cores),
            client_cores: of(|run| run.client_cores),
        }
    }
}

/// Request `idx` of a getNodeConfig load: client `idx` modulo the pool.
fn node_config(
    clients: &Arc<Vec<NodeApiClient>>,
) -> impl Fn(usize) -> Request + Send + Sync + 'static {
    let clients = Arc::clone(clients);
    move |idx| {
        let client = clients[idx % clients.len()].clone();
        Box::pin(async move {
            match client.node_config(None).await {
                Ok(_) => Outcome::Done,
                Err(error) if error.code() == Some(ErrorCode::RateLimited) => Outcome::Refused,
                Err(_) => Outcome::Failed,
            }
        })
    }
}

/// getNodeConfig from clients the hub must refuse with `expected`.
fn node_config_refused(
    clients: &Arc<Vec<NodeApiClient>>,
    expected: ErrorCode,
) -> impl Fn(usize) -> Request + Send + Sync + 'static {
    let clients = Arc::clone(clients);
    move |idx| {
        let client = clients[idx % clients.len()].clone();
        Box::pin(async move {
            match client.node_config(None).await {
                Err(error) if error.code() == Some(expected) => Outcome::Done,
                Err(error) if error.code() == Some(ErrorCode::RateLimited) => Outcome::Refused,
                _ => Outcome::Failed,
            }
        })
    }
}

/// getNodeConfig envelopes carrying the signature of a different body by the same key:
/// well-formed, so the hub runs the full Ed25519 verification before refusing.
fn wrong_signature(
    clients: &Arc<Vec<NodeApiClient>>,
) -> impl Fn(usize) -> Request + Send + Sync + 'static {
    let clients = Arc::clone(clients);
    move |idx| {
        let client = clients[idx % clients.len()].clone();
        Box::pin(async move {
            let request = || NodeRequest::GetNodeConfig(GetNodeConfigRequest::default());
            let sealed = client.seal_body(&client.body_for(request(), now_ms()));
            let other = client.seal_body(&client.body_for(request(), now_ms()));
            let (Ok(mut envelope), Ok(other)) = (sealed, other) else {
                return Outcome::Failed;
            };
            envelope.signature = other.signature;
            match client.send_raw::<serde_json::Value>(&envelope).await {
                Err(error) if error.code() == Some(ErrorCode::InvalidSignature) => Outcome::Done,
                _ => Outcome::Failed,
            }
        })
    }
}

/// `GET url`, a success with its body read counting as done.
fn get(
    http: &reqwest::Client,
    url: &url::Url,
) -> impl Fn(usize) -> Request + Send + Sync + 'static {
    let (http, url) = (http.clone(), url.clone());
    move |_| {
        let (http, url) = (http.clone(), url.clone());
        Box::pin(async move {
            match http.get(url).send().await {
                Ok(response) if response.status().is_success() => {
                    if response.bytes().await.is_ok() {
                        Outcome::Done
                    } else {
                        Outcome::Failed
                    }
                }
                _ => Outcome::Failed,
            }
        })
    }
}

/// Clients with fresh keys that are registered nowhere.
fn unregistered_clients(net: &Network) -> anyhow::Result<Vec<NodeApiClient>> {
    (0..N_NODE_IDS)
        .map(|_| {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).context("no OS randomness")?;
            let key = SigningKey::from_bytes(&secret);
            Ok(NodeApiClient::new(
                net.hub.url.clone(),
                key,
                net.alice.email.clone(),
            ))
        })
        .collect()
}

/// `concurrency` tasks sending requests back to back for `duration`; task `i` sends
/// requests `i, i + concurrency, …`.
async fn drive<F>(
    concurrency: usize,
    duration: Duration,
    hub_pid: u32,
    request: F,
) -> anyhow::Result<LoadRun>
where
    F: Fn(usize) -> Request + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let hub_cpu_before = process_cpu_seconds(hub_pid);
    let own_cpu_before = process_cpu_seconds(std::process::id());
    let started = Instant::now();
    let deadline = started + duration;

    let mut tasks = JoinSet::new();
    for task_idx in 0..concurrency {
        let request = Arc::clone(&request);
        tasks.spawn(async move {
            let mut run = LoadRun::default();
            let mut idx = task_idx;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match request(idx).await {
                    Outcome::Done => run.latencies.push(sent.elapsed().as_secs_f64()),
                    Outcome::Refused => run.n_refused += 1,
                    Outcome::Failed => run.n_failed += 1,
                }
                idx += concurrency;
            }
            run
        });
    }

    let mut run = LoadRun::default();
    while let Some(task) = tasks.join_next().await {
        let task = task.context("a load task panicked")?;
        run.latencies.extend(task.latencies);
        run.n_refused += task.n_refused;
        run.n_failed += task.n_failed;
    }
    let wall = started.elapsed().as_secs_f64();
    run.requests_per_second = run.latencies.len() as f64 / wall;
    run.hub_cores = (process_cpu_seconds(hub_pid) - hub_cpu_before) / wall;
    run.client_cores = (process_cpu_seconds(std::process::id()) - own_cpu_before) / wall;
    Ok(run)
}

/// Median seconds of rewriting the same 4 KiB in place plus `fdatasync`, 100 times in
/// `dir`: roughly one durable SQLite commit in WAL mode, which rewrites a file that no
/// longer grows.
fn fsync_latency(dir: &std::path::Path) -> anyhow::Result<f64> {
    use std::io::{Seek, SeekFrom};
    let path = dir.join("bench-fsync.tmp");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x42u8; 4096];
    file.write_all(&block)?;
    file.sync_all()?;
    let mut samples = Vec::with_capacity(100);
    for _ in 0..100 {
        let started = Instant::now();
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed().as_secs_f64());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(median(&samples))
}

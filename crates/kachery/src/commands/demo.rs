//! `kachery demo`: a hub and two nodes owned by two people, on loopback, sharing one file
//! through a channel end to end (SPEC §19). Every step goes over real HTTP and WebSocket,
//! exactly as separate machines would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use kachery_client::local_api::types::LoadEvent;
use kachery_client::{HubUserClient, LocalClient};
use kachery_protocol::{ChannelName, Email, FileUri, RoleSet, Sha1Hash};
use serde_json::json;

use crate::cli::DemoArgs;
use crate::commands::demo_engines::DemoEngines;
use crate::commands::demo_nodes::start_node;
use crate::exit::Failure;

const DEFAULT_SIZE: u64 = 50_000_000;

/// Prints one step per line with its duration, unless JSON output was asked for.
struct StepLog {
    json: bool,
    started: Instant,
    steps: Vec<serde_json::Value>,
}

impl StepLog {
    fn new(json: bool) -> Self {
        Self {
            json,
            started: Instant::now(),
            steps: Vec::new(),
        }
    }

    fn done(&mut self, step_started: Instant, text: impl Into<String>) {
        let text = text.into();
        let elapsed = step_started.elapsed();
        if !self.json {
            eprintln!(
                "[{:>7.2}s] {text} ({} ms)",
                self.started.elapsed().as_secs_f64(),
                elapsed.as_millis()
            );
        }
        self.steps
            .push(json!({"step": text, "durationMs": elapsed.as_millis() as u64}));
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Check the input before starting anything.
    if let Some(path) = &args.file {
        let metadata = std::fs::metadata(path)
            .map_err(|err| crate::commands::files::read_failure(path, &err))?;
        if !metadata.is_file() {
            return Err(Failure::usage(format!("{} is not a regular file", path.display())).into());
        }
        std::fs::File::open(path)
            .map_err(|err| crate::commands::files::read_failure(path, &err))?;
    }
    let engines = DemoEngines::from_args(&args.engines)?;
    let (work_dir, _temp_guard) = work_dir(&args)?;
    let mut log = StepLog::new(args.json);

    // 1. The hub, with embedded database, broker and bucket, and dev login.
    let step = Instant::now();
    let hub_config = kachery_hub::HubConfig {
        bind: "127.0.0.1:0"
            .parse()
            .expect("a literal socket address parses"),
        data_dir: work_dir.join("hub"),
        database_url: args.engines.database_url.clone(),
        dev_login: true,
        admins: vec![alice()],
        ..kachery_hub::HubConfig::default()
    };
    let hub = kachery_hub::spawn(hub_config)
        .await
        .context("failed to start the demo hub")?;
    let hub_url = hub.public_url().clone();
    log.done(
        step,
        format!(
            "hub listening at {hub_url} ({}, dev login)",
            engines.describe()
        ),
    );

    let step = Instant::now();
    let alice_hub = signed_in(&hub_url, &alice()).await?;
    let bob_hub = signed_in(&hub_url, &bob()).await?;
    log.done(
        step,
        format!("signed in {} and {} with API tokens", alice(), bob()),
    );

    // 2. Two nodes, one per person, each with its own key, store and local API.
    let step = Instant::now();
    let node_a = start_node(&work_dir.join("alice"), &hub_url, &alice(), "demo-node-A").await?;
    let node_b = start_node(&work_dir.join("bob"), &hub_url, &bob(), "demo-node-B").await?;
    log.done(
        step,
        format!(
            "started node A {} (alice) and node B {} (bob)",
            node_a.node_id.short(),
            node_b.node_id.short()
        ),
    );

    // 3. A channel owned by Alice.
    let step = Instant::now();
    let channel = ChannelName::parse(&format!("demo.{}", random_suffix()))
        .expect("demo channel names are valid");
    alice_hub
        .create_channel(&engines.channel_request(channel.clone()))
        .await
        .context("failed to create the demo channel")?;
    log.done(
        step,
        format!(
            "alice created channel {channel} on the {} bucket",
            engines.bucket_name()
        ),
    );

    // 4. Registration with proof of possession: each owner submits their node's signed envelope.
    let step = Instant::now();
    register_once(&alice_hub, node_a.registration(&hub_url)?)
        .await
        .context("failed to register node A")?;
    register_once(&bob_hub, node_b.registration(&hub_url)?)
        .await
        .context("failed to register node B")?;
    log.done(
        step,
        "registered both nodes (each signed by its node key, submitted by its owner)",
    );

    // 5. Memberships with requested roles, and Alice's grants; effective = requested ∩ granted.
    let step = Instant::now();
    let provider_roles: RoleSet = "requestFiles,provideFiles"
        .parse()
        .expect("valid role names");
    let requester_roles: RoleSet = "requestFiles".parse().expect("valid role names");
    alice_hub
        .join(&node_a.node_id, &channel, provider_roles)
        .await
        .context("node A failed to join")?;
    bob_hub
        .join(&node_b.node_id, &channel, requester_roles)
        .await
        .context("node B failed to join")?;
    alice_hub
        .grant(&channel, &node_a.node_id, &alice(), provider_roles)
        .await
        .context("failed to grant node A")?;
    alice_hub
        .grant(&channel, &node_b.node_id, &bob(), requester_roles)
        .await
        .context("failed to grant node B")?;
    node_a.wait_for_link(&channel).await?;
    node_b.wait_for_link(&channel).await?;
    log.done(
        step,
        format!("links up: A effective {provider_roles}, B effective {requester_roles}"),
    );

    // 6. The input: a real file, or seeded pseudo-random data.
    let step = Instant::now();
    let input = match &args.file {
        Some(path) => path.clone(),
        None => {
            let path = work_dir.join("demo-input.bin");
            write_seeded_file(&path, args.size.unwrap_or(DEFAULT_SIZE))?;
            path
        }
    };
    let size = std::fs::metadata(&input)
        .with_context(|| format!("cannot read {}", input.display()))?
        .len();
    log.done(step, format!("input {} ({size} bytes)", input.display()));

    let step = Instant::now();
    let stored = node_a
        .client
        .store_path(&input)
        .await
        .context("node A failed to store the input")?;
    let store_seconds = step.elapsed().as_secs_f64();
    let uri = FileUri::parse(&stored.uri).context("node A returned an invalid URI")?;
    log.done(
        step,
        format!(
            "node A stored {} ({:.0} MB/s)",
            stored.uri,
            mb_per_second(size, store_seconds)
        ),
    );

    // 7. B loads through the channel: request, claim, presigned upload, verified download.
    let step = Instant::now();
    let loaded_path = load_through_channel(&node_b.client, &uri, args.json).await?;
    let load_seconds = step.elapsed().as_secs_f64();
    log.done(
        step,
        format!(
            "node B loaded and verified it ({:.0} MB/s)",
            mb_per_second(size, load_seconds)
        ),
    );

    let step = Instant::now();
    let loaded_sha1 = sha1_of_file(Path::new(&loaded_path))?;
    if loaded_sha1 != uri.sha1 || sha1_of_file(&input)? != uri.sha1 {
        return Err(Failure::new(
            crate::exit::FailureKind::Integrity,
            "the loaded bytes differ from the input",
        )
        .into());
    }
    log.done(step, "node B's copy has the same SHA-1 as the input");

    let chunks = size.div_ceil(kachery_protocol::CHUNK_SIZE).max(1);
    let summary = json!({
        "ok": true,
        "hub": hub_url.as_str(),
        "channel": channel,
        "engines": engines.summary(),
        "uri": stored.uri,
        "size": size,
        "chunks": chunks,
        "bytesMoved": size,
        "storeSeconds": store_seconds,
        "loadSeconds": load_seconds,
        "loadMBps": mb_per_second(size, load_seconds),
        "nodeA": {"nodeId": node_a.node_id, "owner": alice(), "effectiveRoles": provider_roles},
        "nodeB": {"nodeId": node_b.node_id, "owner": bob(), "effectiveRoles": requester_roles},
        "workDir": work_dir,
        "steps": log.steps,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "\nshared {size} bytes in {chunks} chunk(s) from A to B through channel {channel} in {load_seconds:.2} s\n{}",
            stored.uri
        );
    }

    if args.keep {
        print_keep_instructions(&work_dir, &hub_url, &uri);
        crate::commands::hub::shutdown_signal().await;
    }
    node_b.shutdown().await;
    node_a.shutdown().await;
    hub.shutdown()
        .await
        .context("the hub did not shut down cleanly")?;
    Ok(())
}

/// Registers a node; one already registered by an earlier run in the same `--dir` is fine.
async fn register_once(
    hub: &HubUserClient,
    registration: kachery_protocol::SignedEnvelope,
) -> Result<(), kachery_client::ApiError> {
    match hub.register_node(registration).await {
        Err(err) if err.code() == Some(kachery_protocol::api_error::ErrorCode::NodeExists) => {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

fn alice() -> Email {
    Email::parse("alice@demo.invalid").expect("a literal e-mail parses")
}

fn bob() -> Email {
    Email::parse("bob@demo.invalid").expect("a literal e-mail parses")
}

async fn signed_in(hub_url: &url::Url, email: &Email) -> anyhow::Result<HubUserClient> {
    let token = HubUserClient::new(hub_url.clone(), None)
        .dev_token(email)
        .await
        .with_context(|| format!("dev login failed for {email}"))?;
    Ok(HubUserClient::new(hub_url.clone(), Some(token.token)))
}

/// A fresh temporary directory (removed at the end unless --keep), or the one given.
fn work_dir(args: &DemoArgs) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        return Ok((dir.clone(), None));
    }
    let temp = tempfile::Builder::new()
        .prefix("kachery-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let path = temp.path().to_path_buf();
    if args.keep {
        return Ok((temp.keep(), None));
    }
    Ok((path, Some(temp)))
}

async fn load_through_channel(
    client: &LocalClient,
    uri: &FileUri,
    json: bool,
) -> anyhow::Result<String> {
    let mut events = Box::pin(
        client
            .load(&uri.to_string(), Vec::new())
            .await
            .context("node B refused the load")?,
    );
    let mut last_report = Instant::now();
    while let Some(event) = events.next().await {
        match event.context("lost the connection to node B")? {
            LoadEvent::Progress {
                bytes,
                total,
                chunks_done,
                chunks_total,
                ..
            } => {
                if !json && last_report.elapsed() > Duration::from_millis(500) {
                    eprintln!(
                        "           … {bytes}/{total} bytes, {chunks_done}/{chunks_total} chunks"
                    );
                    last_report = Instant::now();
                }
            }
            LoadEvent::Done { path, .. } => return Ok(path.display().to_string()),
            LoadEvent::Error { code, message, .. } => {
                return Err(Failure::from_load_code(
                    code,
                    format!("node B could not load {uri}: {message}"),
                )
                .into());
            }
        }
    }
    bail!("node B ended the load without a result")
}

/// Writes `size` bytes of reproducible pseudo-random data (splitmix64, seed fixed), so two
/// runs of the demo share the same URI.
fn write_seeded_file(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut state: u64 = 0x6b61_6368_6572_7921;
    let mut written = 0u64;
    while written < size {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let bytes = z.to_le_bytes();
        let take = (size - written).min(8) as usize;
        out.write_all(&bytes[..take])?;
        written += take as u64;
    }
    out.flush()?;
    Ok(())
}

fn sha1_of_file(path: &Path) -> anyhow::Result<Sha1Hash> {
    use sha1::Digest;
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = sha1::Sha1::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(Sha1Hash::from_bytes(hasher.finalize().into()))
}

fn mb_per_second(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        bytes as f64 / 1e6 / seconds
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

fn print_keep_instructions(work_dir: &Path, hub_url: &url::Url, uri: &FileUri) {
    let alice_home = work_dir.join("alice");
    let bob_home = work_dir.join("bob");
    eprintln!(
        "\nThe hub and both nodes keep running until Ctrl-C. In another terminal:\n\
         \n  KACHERY_HOME={a} kachery node status\
         \n  KACHERY_HOME={b} kachery node status\
         \n  KACHERY_HOME={b} kachery cat '{uri}' | wc -c\
         \n  KACHERY_HOME={a} kachery store SOME_FILE      # then load it on B:\
         \n  KACHERY_HOME={b} kachery load URI -o copy.bin\
         \n\nHub: {hub_url} (dev login; API tokens: kachery login --hub {hub_url} --dev-email alice@demo.invalid)\n",
        a = alice_home.display(),
        b = bob_home.display(),
    );
}

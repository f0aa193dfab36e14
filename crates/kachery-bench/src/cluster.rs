//! The network under test, on loopback: a `kachery hub serve` process, `kachery node start`
//! daemons each in its own `KACHERY_HOME`, and in-process node identities that call the
//! node API directly (to get presigned URLs for the curl baselines, to load the hub, to
//! time pub-sub). Processes are the release binary, as a person would run them; logs go
//! to files in the work directory at the binary's default level (warn), so logging costs
//! what it costs in real use.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use kachery_client::{HubUserClient, NodeApiClient};
use kachery_protocol::user_api::CreateChannelRequest;
use kachery_protocol::{ChannelName, Email, Label, NodeId, RoleSet};
use url::Url;

/// How long a process may take to come up or a link to go live.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process killed (and reaped) when dropped.
struct Process(Child);

/// Makes the kernel send SIGTERM to a spawned daemon when the spawning thread dies, so a
/// crashed benchmark leaves no hub or node running. Daemons are spawned from the main or
/// a runtime worker thread, which live as long as the benchmark (never from
/// `spawn_blocking`, whose threads come and go).
fn die_with_parent(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running hub with dev login, SQLite, the embedded broker and bucket.
pub struct Hub {
    process: Process,
    pub url: Url,
    pub data_dir: PathBuf,
}

impl Hub {
    /// Starts `kachery hub serve` on a free loopback port and waits for its address.
    pub fn start(kachery: &Path, dir: &Path) -> anyhow::Result<Self> {
        let data_dir = dir.join("hub");
        let mut child = die_with_parent(&mut Command::new(kachery))
            .args([
                "hub",
                "serve",
                "--dev-login",
                "--bind",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&data_dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start the hub")?;

        // The hub prints its address on stderr; the rest of stderr goes to a log file.
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_path = dir.join("hub.log");
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok(mut log) = std::fs::File::create(&log_path) else {
                return;
            };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(url) = line.split("public URL ").nth(1) {
                    let _ = url_tx.send(url.trim_end_matches(')').to_owned());
                }
            }
        });
        let process = Process(child);
        let url = url_rx
            .recv_timeout(STARTUP_TIMEOUT)
            .context("the hub did not print its address; see hub.log")?;
        let url = Url::parse(&url).context("the hub printed an invalid URL")?;
        Ok(Self {
            process,
            url,
            data_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Where the embedded bucket keeps the objects of `channel`.
    pub fn bucket_dir(&self, channel: &ChannelName) -> PathBuf {
        self.data_dir
            .join("bucket")
            .join("objects")
            .join(channel.as_str())
    }
}

/// A `kachery node start` daemon, registered to its owner on the hub.
pub struct Daemon {
    process: Process,
    kachery: PathBuf,
    pub home: PathBuf,
    pub node_id: NodeId,
}

impl Daemon {
    /// Starts a daemon in `home`, logs its owner in with dev login and registers the node
    /// through the API, as `kachery node register --api` does.
    pub fn start(
        kachery: &Path,
        home: &Path,
        hub: &Url,
        owner: &Email,
        label: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(home)
            .with_context(|| format!("failed to create {}", home.display()))?;
        let log = std::fs::File::create(home.join("daemon.log"))?;
        let child = die_with_parent(&mut Command::new(kachery))
            .args([
                "node",
                "start",
                "--hub",
                hub.as_str(),
                "--owner",
                owner.as_str(),
            ])
            .args(["--label", label, "--port", "0"])
            .env("KACHERY_HOME", home)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("failed to start a node daemon")?;
        let process = Process(child);

        let cli = |args: &[&str]| cli(kachery, home, args);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !cli(&["node", "status", "--json"])
            .output()?
            .status
            .success()
        {
            if Instant::now() > deadline {
                bail!(
                    "node {label} did not start; see {}/daemon.log",
                    home.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        run_ok(cli(&[
            "login",
            "--hub",
            hub.as_str(),
            "--dev-email",
            owner.as_str(),
        ]))?;
        run_ok(cli(&["node", "register", "--api"]))?;
        let node_id = run_ok(cli(&["node", "id"]))?;
        let node_id = NodeId::parse(node_id.trim()).context("`kachery node id` printed no id")?;

        Ok(Self {
            process,
            kachery: kachery.to_owned(),
            home: home.to_owned(),
            node_id,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// `kachery ARGS` run as this node (its `KACHERY_HOME`).
    pub fn cli(&self, args: &[&str]) -> Command {
        cli(&self.kachery, &self.home, args)
    }

    /// Reconciles until the daemon's link on `channel` is up.
    pub fn wait_for_link(&self, channel: &ChannelName) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let status = run_ok(self.cli(&["node", "status", "--json", "--refresh"]))?;
            let status: serde_json::Value = serde_json::from_str(&status)?;
            let is_up = status["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|link| link["channel"] == channel.as_str() && link["linkState"] == "up");
            if is_up {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "link of {} to {channel} never came up: {status}",
                    self.home.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the daemon and deletes its home (its store may hold a GiB).
    pub fn discard(self) -> anyhow::Result<()> {
        let home = self.home.clone();
        drop(self);
        crate::shell::remove(&home)
    }
}

fn cli(kachery: &Path, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(kachery);
    command
        .args(args)
        .env("KACHERY_HOME", home)
        .env_remove("KACHERY_HUB_URL")
        .env_remove("KACHERY_HUB_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs a setup command (not timed) and returns its stdout.
fn run_ok(mut command: Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("failed to run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A person with an API token from dev login.
pub struct Person {
    pub email: Email,
    pub api: HubUserClient,
}

impl Person {
    pub async fn sign_in(hub: &Url, email: &str) -> anyhow::Result<Self> {
        let email = Email::parse(email).context("invalid e-mail")?;
        let token = HubUserClient::new(hub.clone(), None)
            .dev_token(&email)
            .await
            .with_context(|| format!("dev login failed for {email}"))?;
        Ok(Self {
            email,
            api: HubUserClient::new(hub.clone(), Some(token.token)),
        })
    }

    pub async fn create_channel(&self, name: &str) -> anyhow::Result<ChannelName> {
        let channel = ChannelName::parse(name).context("invalid channel name")?;
        // Built from JSON, so the request keeps compiling as optional fields are added to
        // the wire type: a channel with every default (embedded bucket and broker).
        let request: CreateChannelRequest =
            serde_json::from_value(serde_json::json!({ "name": channel }))
                .context("a channel request with only a name is valid")?;
        self.api
            .create_channel(&request)
            .await
            .with_context(|| format!("failed to create channel {channel}"))?;
        Ok(channel)
    }

    /// Creates a channel from a full createChannel request in JSON (bucket, pub-sub,
    /// secrets).
    pub async fn create_channel_from(&self, request: serde_json::Value) -> anyhow::Result<()> {
        let name = request["name"].clone();
        let request: CreateChannelRequest =
            serde_json::from_value(request).context("not a createChannel request")?;
        self.api
            .create_channel(&request)
            .await
            .with_context(|| format!("failed to create channel {name}"))?;
        Ok(())
    }
}

/// Puts node `node_id` of `owner` into `channel` with `roles`: the owner asks to join,
/// the channel's owner grants. Effective roles are the intersection, so both say `roles`.
pub async fn admit(
    channel_owner: &Person,
    owner: &Person,
    node_id: &NodeId,
    channel: &ChannelName,
    roles: &str,
) -> anyhow::Result<()> {
    let roles: RoleSet = roles.parse().context("invalid role list")?;
    owner
        .api
        .join(node_id, channel, roles)
        .await
        .with_context(|| format!("node {} failed to join {channel}", node_id.short()))?;
    channel_owner
        .api
        .grant(channel, node_id, &owner.email, roles)
        .await
        .with_context(|| format!("failed to grant node {} in {channel}", node_id.short()))?;
    Ok(())
}

/// A node key held by this process, registered on the hub, that signs node-API calls
/// itself instead of running a daemon.
pub struct Identity {
    pub key: SigningKey,
    pub node_id: NodeId,
    pub api: NodeApiClient,
}

impl Identity {
    /// A fresh random key registered to `owner` under `label`.
    pub async fn register(hub: &Url, owner: &Person, label: &str) -> anyhow::Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).context("no OS randomness")?;
        let key = SigningKey::from_bytes(&secret);
        let label = Label::parse(label).context("invalid label")?;
        let envelope = kachery_client::registration_envelope(
            &key,
            owner.email.clone(),
            label,
            &kachery_client::origin_of(hub),
            kachery_client::now_ms(),
        )?;
        let node = owner
            .api
            .register_node(envelope)
            .await
            .context("failed to register a node")?;
        let api = NodeApiClient::new(hub.clone(), key.clone(), owner.email.clone());
        Ok(Self {
            key,
            node_id: node.node_id,
            api,
        })
    }
}

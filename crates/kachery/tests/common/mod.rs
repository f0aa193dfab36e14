//! Harness for end-to-end tests of the real `kachery` binary: a hub process and node daemon
//! processes on loopback, each node in its own `KACHERY_HOME`, driven through the CLI exactly
//! as a person would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kachery");

/// Result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the command succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts a failure with `code` and a one-line error message that is not a panic.
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked: {}",
            self.stderr
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected a one-line error, got: {}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("kachery: "),
            "unexpected error format: {}",
            self.stderr
        );
        self
    }
}

/// Runs `kachery ARGS` with `KACHERY_HOME=home` and waits for it.
pub fn kachery(home: &Path, args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .env("KACHERY_HOME", home)
        .env_remove("KACHERY_HUB_URL")
        .env_remove("KACHERY_HUB_TOKEN")
        .env_remove("KACHERY_NODE_OWNER")
        .env_remove("KACHERY_NODE_PORT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("the kachery binary runs");
    Run::from(output)
}

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Owns `child` (killed on drop); `log` is where its stderr goes.
    pub fn from_child(child: Child, log: PathBuf) -> Self {
        Self { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Hub {
    pub process: Process,
    pub url: String,
    pub data_dir: PathBuf,
}

/// Client id and secret the test hubs use with their OpenID Connect provider `mock`.
pub const OIDC_CLIENT_ID: &str = "kachery-cli-test";
pub const OIDC_CLIENT_SECRET: &str = "cli-test-secret";

/// Starts `kachery hub serve` on a free loopback port with one OpenID Connect provider,
/// `mock`, at `issuer` (no dev login).
pub fn start_oidc_hub(dir: &Path, issuer: &str) -> Hub {
    start_oidc_hub_at(dir, issuer, "127.0.0.1:0")
}

/// [`start_oidc_hub`] on `bind`, for a provider that must know the callback beforehand.
pub fn start_oidc_hub_at(dir: &Path, issuer: &str, bind: &str) -> Hub {
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[[oidc]]\nname = \"mock\"\nissuer = \"{issuer}\"\nclient_id = \"{OIDC_CLIENT_ID}\"\n"
        ),
    )
    .expect("hub.toml can be written");
    start_hub_with(
        dir,
        &[
            "--bind",
            bind,
            "--config",
            config.to_str().expect("a UTF-8 path"),
        ],
        &[
            (
                "KACHERY_HUB_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("KACHERY_HUB_OIDC_MOCK_CLIENT_SECRET", OIDC_CLIENT_SECRET),
        ],
    )
}

/// A loopback port nothing listens on right now (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `kachery hub serve --dev-login` on a free loopback port.
pub fn start_hub(dir: &Path) -> Hub {
    start_hub_at(dir, "127.0.0.1:0")
}

pub fn start_hub_at(dir: &Path, bind: &str) -> Hub {
    start_hub_with(dir, &["--dev-login", "--bind", bind], &[])
}

/// Like [`start_hub_at`] with extra environment, e.g. `KACHERY_HUB_*` settings.
pub fn start_hub_with_env(dir: &Path, bind: &str, env: &[(&str, &str)]) -> Hub {
    start_hub_with(dir, &["--dev-login", "--bind", bind], env)
}

/// Starts `kachery hub serve ARGS --data-dir <dir>/hub` with extra environment variables.
pub fn start_hub_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Hub {
    let data_dir = dir.join("hub");
    let log = dir.join(format!("hub-{}.log", std::process::id()));
    let mut child = Command::new(BIN)
        .args(["hub", "serve"])
        .args(args)
        .arg("--data-dir")
        .arg(&data_dir)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hub starts");

    // The hub announces its address on stderr; the rest of its log goes to a file.
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let log_path = log.clone();
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(&log_path).expect("the log file can be created");
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            use std::io::Write;
            let _ = writeln!(file, "{line}");
            if let (false, Some(url)) = (sent, line.split("public URL ").nth(1)) {
                let _ = tx.send(url.trim_end_matches(')').to_owned());
                sent = true;
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the hub did not announce its address; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    Hub {
        process: Process { child, log },
        url,
        data_dir,
    }
}

pub struct Node {
    pub process: Process,
    pub home: PathBuf,
    pub owner: String,
}

/// Starts `kachery node start` in `home` and waits until its local API answers.
pub fn start_node(home: &Path, hub_url: &str, owner: &str, label: &str) -> Node {
    std::fs::create_dir_all(home).expect("node home can be created");
    let log = home.join("daemon.log");
    let child = Command::new(BIN)
        .args([
            "node", "start", "--hub", hub_url, "--owner", owner, "--label", label, "--port", "0",
        ])
        .env("KACHERY_HOME", home)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("the log file can be created"))
        .spawn()
        .expect("the node starts");
    let node = Node {
        process: Process { child, log },
        home: home.to_path_buf(),
        owner: owner.to_owned(),
    };
    node.wait_until_running();
    node
}

impl Node {
    pub fn restart(&mut self, hub_url: &str) {
        let log = self.home.join("daemon-restarted.log");
        let child = Command::new(BIN)
            .args(["node", "start", "--hub", hub_url, "--port", "0"])
            .env("KACHERY_HOME", &self.home)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the log file can be created"))
            .spawn()
            .expect("the node restarts");
        self.process = Process { child, log };
        self.wait_until_running();
    }

    fn wait_until_running(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = kachery(&self.home, &["node", "status", "--json"]);
            if run.code == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node did not start: {}\n{}",
                run.stderr,
                self.process.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        kachery(&self.home, args)
    }

    /// Writes `bytes` to `dir/name`, stores it on this node and returns its URI.
    pub fn store_file(&self, dir: &Path, name: &str, bytes: &[u8]) -> String {
        let file = dir.join(name);
        std::fs::write(&file, bytes).expect("the test file can be written");
        let run = self
            .run(&["store", file.to_str().expect("temp paths are UTF-8")])
            .ok();
        run.stdout.trim().to_owned()
    }

    pub fn node_id(&self) -> String {
        self.run(&["node", "id"]).ok().stdout.trim().to_owned()
    }

    pub fn status(&self) -> serde_json::Value {
        let run = self.run(&["node", "status", "--json", "--refresh"]).ok();
        serde_json::from_str(&run.stdout).expect("status is JSON")
    }

    /// Reconciles until the node's link on `channel` is up.
    pub fn wait_for_link(&self, channel: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status();
            let up = status["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|link| link["channel"] == channel && link["linkState"] == "up");
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "link to {channel} never came up: {status:#}\n{}",
                self.process.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A hub, two nodes (A owned by alice with request+provide, B owned by bob with request
/// only) and a channel with both granted and linked.
pub struct Network {
    pub dir: tempfile::TempDir,
    pub hub: Hub,
    pub a: Node,
    pub b: Node,
    pub channel: String,
}

pub const ALICE: &str = "alice@example.org";
pub const BOB: &str = "bob@example.org";

pub fn network() -> Network {
    network_with_roles("requestFiles,provideFiles", "requestFiles")
}

/// Like [`network`], with A and B joined and granted `a_roles` and `b_roles`.
pub fn network_with_roles(a_roles: &str, b_roles: &str) -> Network {
    let dir = tempfile::tempdir().expect("a temporary directory");
    network_in(dir, &[], a_roles, b_roles)
}

/// Like [`network`], in `dir`, with `create_args` added to `kachery channel create` (e.g.
/// `--bucket s3 …`).
pub fn network_with(dir: tempfile::TempDir, create_args: &[&str]) -> Network {
    network_in(
        dir,
        create_args,
        "requestFiles,provideFiles",
        "requestFiles",
    )
}

fn network_in(
    dir: tempfile::TempDir,
    create_args: &[&str],
    a_roles: &str,
    b_roles: &str,
) -> Network {
    let hub = start_hub(dir.path());
    let a = start_node(&dir.path().join("a"), &hub.url, ALICE, "node-a");
    let b = start_node(&dir.path().join("b"), &hub.url, BOB, "node-b");
    let channel = "e2e.shared".to_owned();

    login(&a, &hub.url);
    login(&b, &hub.url);
    a.run(&["node", "register", "--api"]).ok();
    b.run(&["node", "register", "--api"]).ok();
    let mut create = vec!["channel", "create", channel.as_str()];
    create.extend_from_slice(create_args);
    a.run(&create).ok();
    join_and_grant(&a, &a, &channel, a_roles);
    join_and_grant(&a, &b, &channel, b_roles);
    a.wait_for_link(&channel);
    b.wait_for_link(&channel);
    Network {
        dir,
        hub,
        a,
        b,
        channel,
    }
}

/// `node` (registered and logged in) joins `channel` asking for `roles`, and the channel
/// owner, logged in on `channel_owner`, grants them.
pub fn join_and_grant(channel_owner: &Node, node: &Node, channel: &str, roles: &str) {
    node.run(&["node", "join", channel, "--roles", roles]).ok();
    channel_owner
        .run(&[
            "channel",
            "grant",
            channel,
            &node.node_id(),
            &node.owner,
            roles,
        ])
        .ok();
}

/// Starts one more node owned by `owner`, registers it and links it to the network's
/// channel with `roles`.
pub fn add_node(net: &Network, name: &str, owner: &str, roles: &str) -> Node {
    let node = start_node(&net.dir.path().join(name), &net.hub.url, owner, name);
    login(&node, &net.hub.url);
    node.run(&["node", "register", "--api"]).ok();
    join_and_grant(&net.a, &node, &net.channel, roles);
    node.wait_for_link(&net.channel);
    node
}

pub fn login(node: &Node, hub_url: &str) {
    node.run(&["login", "--hub", hub_url, "--dev-email", &node.owner])
        .ok();
}

/// Writes `size` bytes of seeded pseudo-random data.
pub fn write_random_file(path: &Path, size: usize, seed: u64) {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    std::fs::write(path, bytes).expect("the test file can be written");
}

pub fn sha1sum(path: &Path) -> String {
    let output = Command::new("sha1sum")
        .arg(path)
        .output()
        .expect("sha1sum runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

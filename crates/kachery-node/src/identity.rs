//! The node's Ed25519 identity (SPEC §3.1).
//!
//! The key is made once, from 32 bytes of the operating system's random source, and kept in
//! the node dir as `private.pem` (PKCS#8, RFC 8410, mode 0600) beside `public.pem` and
//! `node-id` (64 hex of the raw public key). Every later start loads the same key. The
//! node dir must be 0700 and the private key 0600: when either grants group or other any
//! access, loading refuses with an error naming the file and the `chmod` that fixes it,
//! because anyone who can read the key can act as this node.
//!
//! Unix only: permissions are read and set through `std::os::unix`.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use kachery_protocol::NodeId;
use kachery_protocol::signing::node_id_of;

/// The node's signing key and the id derived from it.
pub struct NodeIdentity {
    pub signing_key: SigningKey,
    pub node_id: NodeId,
}

impl std::fmt::Debug for NodeIdentity {
    /// Shows the node id only: the key must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id.to_string())
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

/// Why the node identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error(
        "{path} is readable by other users (mode {mode:o}); fix it with `chmod {fix} {path}`",
        path = path.display()
    )]
    LoosePermissions {
        path: PathBuf,
        mode: u32,
        fix: &'static str,
    },
    #[error("failed to {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} does not hold a PKCS#8 Ed25519 private key", path = path.display())]
    MalformedKey {
        path: PathBuf,
        #[source]
        source: ed25519_dalek::pkcs8::Error,
    },
    #[error("failed to draw random bytes for a new node key")]
    Random(#[source] getrandom::Error),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IdentityError {
    let path = path.to_owned();
    move |source| IdentityError::Io {
        action,
        path,
        source,
    }
}

/// Loads the node key from `node_dir`, creating the dir (0700) and the key files on first
/// use. Refuses when the dir or `private.pem` grants group or other any permission.
pub fn load_or_create_identity(node_dir: &Path) -> Result<NodeIdentity, IdentityError> {
    ensure_private_dir(node_dir)?;

    let private_path = node_dir.join("private.pem");
    let signing_key = match fs::symlink_metadata(&private_path) {
        Ok(_) => read_private_key(&private_path)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => create_private_key(&private_path)?,
        Err(error) => return Err(io_error("inspect", &private_path)(error)),
    };
    let node_id = node_id_of(&signing_key);

    // The public files are derived data: rewrite them whenever they are missing or stale.
    let public_pem = signing_key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key always encodes as SPKI");
    write_if_changed(&node_dir.join("public.pem"), public_pem.as_bytes())?;
    write_if_changed(&node_dir.join("node-id"), format!("{node_id}\n").as_bytes())?;

    Ok(NodeIdentity {
        signing_key,
        node_id,
    })
}

/// Refuses a node dir or key file whose mode grants group or other any permission.
pub fn check_private_mode(path: &Path, fix: &'static str) -> Result<(), IdentityError> {
    let metadata = fs::metadata(path).map_err(io_error("inspect", path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::LoosePermissions {
            path: path.to_owned(),
            mode,
            fix,
        });
    }
    Ok(())
}

pub(crate) fn ensure_private_dir(node_dir: &Path) -> Result<(), IdentityError> {
    if !node_dir.exists() {
        if let Some(parent) = node_dir.parent() {
            fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        }
        let created = DirBuilder::new().mode(0o700).create(node_dir);
        match created {
            Ok(()) => {}
            // Another process made it between our check and create; its mode is checked below.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error("create", node_dir)(error)),
        }
    }
    check_private_mode(node_dir, "700")
}

fn read_private_key(path: &Path) -> Result<SigningKey, IdentityError> {
    check_private_mode(path, "600")?;
    let pem = fs::read_to_string(path).map_err(io_error("read", path))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|source| IdentityError::MalformedKey {
        path: path.to_owned(),
        source,
    })
}

/// Writes a fresh key to a temporary file and hard-links it into place, so two processes
/// starting at once agree on one key: the loser of the race reads the winner's.
fn create_private_key(path: &Path) -> Result<SigningKey, IdentityError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(IdentityError::Random)?;
    let signing_key = SigningKey::from_bytes(&seed);
    let pem = signing_key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key always encodes as PKCS#8");

    let temp_path = path.with_extension(format!("pem.tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp_path)
        .map_err(io_error("create", &temp_path))?;
    file.write_all(pem.as_bytes())
        .map_err(io_error("write", &temp_path))?;
    file.sync_all().map_err(io_error("sync", &temp_path))?;
    drop(file);

    let linked = fs::hard_link(&temp_path, path);
    let _ = fs::remove_file(&temp_path);
    match linked {
        Ok(()) => {
            tracing::info!(node = %node_id_of(&signing_key).short(), "created a new node key");
            Ok(signing_key)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read_private_key(path),
        Err(error) => Err(io_error("create", path)(error)),
    }
}

fn write_if_changed(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    if fs::read(path).is_ok_and(|existing| existing == contents) {
        return Ok(());
    }
    fs::write(path, contents).map_err(io_error("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacting_debug_hides_the_key() {
        let signing_key = SigningKey::from_bytes(&[9; 32]);
        let identity = NodeIdentity {
            node_id: node_id_of(&signing_key),
            signing_key,
        };
        let shown = format!("{identity:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("0909"), "{shown}");
    }
}

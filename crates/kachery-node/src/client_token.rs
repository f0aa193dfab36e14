//! The local API bearer token (SPEC §13.4).
//!
//! 256 random bits as 64 hex in `<node dir>/client-token`, mode 0600, created once and kept
//! across restarts so scripts and the CLI keep working; [`rotate_client_token`] replaces it
//! (`kachery node rotate-token`). Only processes that can read the file, normally the same
//! Unix user, can use the local API.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::identity::{IdentityError, check_private_mode};

/// A bearer token for the local API; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientToken(String);

impl ClientToken {
    /// The token text, for the `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is, so response
    /// timing does not reveal a prefix of the token.
    pub fn matches(&self, presented: &str) -> bool {
        let expected = self.0.as_bytes();
        let presented = presented.as_bytes();
        if expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientToken(<redacted>)")
    }
}

/// Why the client token could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientTokenError {
    #[error("failed to {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} does not hold a 64-hex client token; run `kachery node rotate-token`",
        path = path.display()
    )]
    Malformed { path: PathBuf },
    #[error(transparent)]
    Permissions(#[from] IdentityError),
    #[error("failed to draw random bytes for a client token")]
    Random(#[source] getrandom::Error),
}

/// Reads `<node_dir>/client-token`, creating it (0600) on first use.
pub fn load_or_create_client_token(node_dir: &Path) -> Result<ClientToken, ClientTokenError> {
    let path = node_dir.join("client-token");
    match fs::read_to_string(&path) {
        Ok(text) => {
            check_private_mode(&path, "600")?;
            parse_token(&path, &text)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => write_new_token(&path, false),
        Err(source) => Err(ClientTokenError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// Reads `<node_dir>/client-token` without creating it (the CLI, talking to a running
/// daemon); refuses a file readable by others.
pub fn read_client_token(node_dir: &Path) -> Result<String, ClientTokenError> {
    let path = node_dir.join("client-token");
    let text = fs::read_to_string(&path).map_err(|source| ClientTokenError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    check_private_mode(&path, "600")?;
    Ok(parse_token(&path, &text)?.0)
}

/// Replaces the client token with a fresh one; clients holding the old one get 401.
pub fn rotate_client_token(node_dir: &Path) -> Result<ClientToken, ClientTokenError> {
    write_new_token(&node_dir.join("client-token"), true)
}

fn parse_token(path: &Path, text: &str) -> Result<ClientToken, ClientTokenError> {
    let token = text.trim();
    let is_hex = token
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if token.len() != 64 || !is_hex {
        return Err(ClientTokenError::Malformed {
            path: path.to_owned(),
        });
    }
    Ok(ClientToken(token.to_owned()))
}

fn write_new_token(path: &Path, replace: bool) -> Result<ClientToken, ClientTokenError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(ClientTokenError::Random)?;
    let token = hex::encode(secret);

    // Write beside the target and rename, so a reader never sees a half-written token.
    let temp_path = path.with_extension(format!("tmp-{}", std::process::id()));
    let io_error = |action, path: &Path| {
        let path = path.to_owned();
        move |source| ClientTokenError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp_path)
        .map_err(io_error("create", &temp_path))?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(io_error("write", &temp_path))?;
    file.sync_all().map_err(io_error("sync", &temp_path))?;
    drop(file);

    if replace {
        fs::rename(&temp_path, path).map_err(io_error("replace", path))?;
        return Ok(ClientToken(token));
    }
    // First creation: a concurrent creator may win; then both use its token.
    let linked = fs::hard_link(&temp_path, path);
    let _ = fs::remove_file(&temp_path);
    match linked {
        Ok(()) => Ok(ClientToken(token)),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(io_error("read", path))?;
            parse_token(path, &text)
        }
        Err(source) => Err(ClientTokenError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_stable_until_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_client_token(dir.path()).unwrap();
        assert_eq!(first.expose().len(), 64);
        assert_eq!(load_or_create_client_token(dir.path()).unwrap(), first);

        let rotated = rotate_client_token(dir.path()).unwrap();
        assert_ne!(rotated, first);
        assert_eq!(load_or_create_client_token(dir.path()).unwrap(), rotated);
        assert!(rotated.matches(rotated.expose()));
        assert!(!rotated.matches(first.expose()));
        assert!(!format!("{rotated:?}").contains(rotated.expose()));
        assert_eq!(read_client_token(dir.path()).unwrap(), rotated.expose());
    }
}

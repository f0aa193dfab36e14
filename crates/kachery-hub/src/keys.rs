//! The master key and the sub-keys derived from it (SPEC §8.2).
//!
//! The master key is 32 random bytes, base64 encoded, read from `master_key_file` (which
//! must be readable by its owner only) or from `KACHERY_HUB_MASTER_KEY`. A dev-login hub
//! without either generates `<data_dir>/master.key` once and reuses it, so restarts keep
//! their tokens and bucket URLs valid. Each use gets its own HKDF-SHA256 sub-key, so no
//! two subsystems ever share key material.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;

/// Environment variable holding the base64 master key.
pub const MASTER_KEY_ENV: &str = "KACHERY_HUB_MASTER_KEY";
/// File name of the generated dev-mode master key inside the data directory.
pub const DEV_MASTER_KEY_FILE: &str = "master.key";

/// Why the master key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    #[error(
        "no master key: set master_key_file, or {MASTER_KEY_ENV} to 32 random bytes in \
         base64 (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    Missing,
    #[error("failed to read master key file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("master key from {source_name} is not base64 of exactly 32 bytes")]
    Malformed { source_name: String },
    #[error("failed to write a new master key to {path}")]
    Generate {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The 32-byte master key. Never printed.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Loads the key from the file, else the environment, else (dev login only) the
    /// generated key in `data_dir`, creating it on first start.
    pub fn load(
        key_file: Option<&Path>,
        env_value: Option<String>,
        dev_login: bool,
        data_dir: &Path,
    ) -> Result<Self, MasterKeyError> {
        if let Some(path) = key_file {
            return Self::from_file(path);
        }
        if let Some(value) = env_value {
            return Self::decode(&value, MASTER_KEY_ENV);
        }
        if !dev_login {
            return Err(MasterKeyError::Missing);
        }

        let path = data_dir.join(DEV_MASTER_KEY_FILE);
        if path.exists() {
            return Self::from_file(&path);
        }
        Self::generate(&path)
    }

    /// Reads a key file: base64 of 32 bytes, readable by its owner only.
    pub fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        Self::from_file(path)
    }

    fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let read_error = |source| MasterKeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_error)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::Permissions {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Self::decode(&text, &path.display().to_string())
    }

    fn decode(text: &str, source_name: &str) -> Result<Self, MasterKeyError> {
        let malformed = || MasterKeyError::Malformed {
            source_name: source_name.to_owned(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| malformed())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        Ok(Self(bytes))
    }

    fn generate(path: &Path) -> Result<Self, MasterKeyError> {
        let generate_error = |source| MasterKeyError::Generate {
            path: path.to_owned(),
            source,
        };
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|error| generate_error(std::io::Error::other(error.to_string())))?;

        // create_new: never overwrite a key another process just wrote.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(generate_error)?;
        writeln!(file, "{}", STANDARD.encode(bytes)).map_err(generate_error)?;
        file.sync_all().map_err(generate_error)?;
        tracing::info!(path = %path.display(), "generated a dev-mode master key");
        Ok(Self(bytes))
    }

    /// Derives the sub-keys the hub uses.
    pub fn derive(&self) -> SubKeys {
        SubKeys {
            embedded_bucket: self.sub_key("kachery-v1:embedded-bucket"),
            embedded_broker: self.sub_key("kachery-v1:embedded-broker"),
            passcode_pepper: self.sub_key("kachery-v1:passcode-pepper"),
            secrets: self.sub_key("kachery-v1:secrets"),
        }
    }

    fn sub_key(&self, info: &str) -> [u8; 32] {
        let mut output = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.0)
            .expand(info.as_bytes(), &mut output)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        output
    }
}

/// One 32-byte key per subsystem, all derived from the master key.
pub struct SubKeys {
    pub embedded_bucket: [u8; 32],
    pub embedded_broker: [u8; 32],
    /// The key of [`crate::passcode::PasscodeHasher`].
    pub passcode_pepper: [u8; 32],
    /// The key of [`crate::vault::SecretCipher`].
    pub secrets: [u8; 32],
}

impl std::fmt::Debug for SubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_is_generated_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load(None, None, true, dir.path()).unwrap();
        let path = dir.path().join(DEV_MASTER_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = MasterKey::load(None, None, true, dir.path()).unwrap();
        assert_eq!(first.0, second.0);
    }

    #[test]
    fn missing_key_without_dev_login_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let result = MasterKey::load(None, None, false, dir.path());
        assert!(matches!(result, Err(MasterKeyError::Missing)));
    }

    #[test]
    fn group_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, STANDARD.encode([1u8; 32])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let result = MasterKey::load(Some(&path), None, false, dir.path());
        assert!(matches!(
            result,
            Err(MasterKeyError::Permissions { mode: 0o640, .. })
        ));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        MasterKey::load(Some(&path), None, false, dir.path()).unwrap();
    }

    #[test]
    fn sub_keys_differ_per_purpose() {
        let keys = MasterKey([3u8; 32]).derive();
        assert_ne!(keys.embedded_bucket, keys.embedded_broker);
        assert_ne!(keys.passcode_pepper, keys.secrets);
    }
}

//! Feed keys: one Ed25519 key pair per feed this node owns, in `<node dir>/feeds/`.
//!
//! `<feedId>.pem` holds the PKCS#8 private key (0600, refused when group or others may read
//! it, like the node key), and `names.json` maps local feed names to feed ids so `feed
//! create --name N` is idempotent. Keys never leave this module except as signatures: no
//! API returns them.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use kachery_protocol::NodeId;
use kachery_protocol::signing::node_id_of;

/// Why a feed key could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedKeyError {
    #[error("failed to {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is readable by other users (mode {mode:o}); fix it with `chmod 600 {path}`",
        path = path.display()
    )]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("{path} does not hold a PKCS#8 Ed25519 private key", path = path.display())]
    Malformed { path: PathBuf },
    #[error("{path} is not a valid feed name map", path = path.display())]
    NameMap { path: PathBuf },
    #[error("failed to draw random bytes for a new feed key")]
    Random(#[source] getrandom::Error),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FeedKeyError {
    let path = path.to_owned();
    move |source| FeedKeyError::Io {
        action,
        path,
        source,
    }
}

/// The node's feed keys; loaded keys are cached in memory.
pub struct FeedKeys {
    dir: PathBuf,
    cache: Mutex<HashMap<NodeId, SigningKey>>,
    /// Serializes creation, so two `create --name N` calls make one feed.
    create_lock: Mutex<()>,
}

impl std::fmt::Debug for FeedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedKeys")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FeedKeys {
    /// Keys under `dir` (`<node dir>/feeds`), created 0700 when missing.
    pub fn open(dir: PathBuf) -> Result<Self, FeedKeyError> {
        if !dir.exists() {
            let created = DirBuilder::new().recursive(true).mode(0o700).create(&dir);
            created.map_err(io_error("create", &dir))?;
        }
        Ok(Self {
            dir,
            cache: Mutex::new(HashMap::new()),
            create_lock: Mutex::new(()),
        })
    }

    /// The feed named `name` (made if new), or a new unnamed feed; `true` when created now.
    pub fn create(&self, name: Option<&str>) -> Result<(NodeId, bool), FeedKeyError> {
        let _guard = self
            .create_lock
            .lock()
            .expect("feed key lock is not poisoned");
        let mut names = self.names()?;
        if let Some(feed_id) = name.and_then(|name| names.get(name)) {
            return Ok((*feed_id, false));
        }

        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(FeedKeyError::Random)?;
        let key = SigningKey::from_bytes(&seed);
        let feed_id = node_id_of(&key);
        self.write_key(&feed_id, &key)?;
        if let Some(name) = name {
            names.insert(name.to_owned(), feed_id);
            self.write_names(&names)?;
        }
        self.cache
            .lock()
            .expect("feed key cache is not poisoned")
            .insert(feed_id, key);
        tracing::info!(feed = %feed_id.short(), "created a feed");
        Ok((feed_id, true))
    }

    /// The signing key of `feed_id` when this node owns that feed.
    pub fn signing_key(&self, feed_id: &NodeId) -> Result<Option<SigningKey>, FeedKeyError> {
        if let Some(key) = self.cache.lock().expect("cache lock").get(feed_id) {
            return Ok(Some(key.clone()));
        }
        let path = self.key_path(feed_id);
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("inspect", &path)(error)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(FeedKeyError::LoosePermissions { path, mode });
        }
        let pem = fs::read_to_string(&path).map_err(io_error("read", &path))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .ok()
            .filter(|key| node_id_of(key) == *feed_id)
            .ok_or(FeedKeyError::Malformed { path })?;
        self.cache
            .lock()
            .expect("cache lock")
            .insert(*feed_id, key.clone());
        Ok(Some(key))
    }

    /// Whether this node owns `feed_id`.
    pub fn owns(&self, feed_id: &NodeId) -> bool {
        matches!(self.signing_key(feed_id), Ok(Some(_)))
    }

    fn key_path(&self, feed_id: &NodeId) -> PathBuf {
        self.dir.join(format!("{feed_id}.pem"))
    }

    fn names_path(&self) -> PathBuf {
        self.dir.join("names.json")
    }

    fn names(&self) -> Result<BTreeMap<String, NodeId>, FeedKeyError> {
        let path = self.names_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| FeedKeyError::NameMap { path }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(error) => Err(io_error("read", &path)(error)),
        }
    }

    fn write_names(&self, names: &BTreeMap<String, NodeId>) -> Result<(), FeedKeyError> {
        let path = self.names_path();
        let bytes = serde_json::to_vec_pretty(names).expect("a name map serializes");
        write_private(&path, &bytes)
    }

    fn write_key(&self, feed_id: &NodeId, key: &SigningKey) -> Result<(), FeedKeyError> {
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key always encodes as PKCS#8");
        write_private(&self.key_path(feed_id), pem.as_bytes())
    }
}

/// Writes `bytes` to `path` through a 0600 temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FeedKeyError> {
    let temp_path = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp_path)
        .map_err(io_error("create", &temp_path))?;
    file.write_all(bytes)
        .map_err(io_error("write", &temp_path))?;
    file.sync_all().map_err(io_error("sync", &temp_path))?;
    drop(file);
    fs::rename(&temp_path, path).map_err(io_error("rename", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_feeds_are_created_once_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = FeedKeys::open(dir.path().join("feeds")).unwrap();
        let (feed_id, created) = keys.create(Some("lab notes")).unwrap();
        assert!(created);
        assert_eq!(keys.create(Some("lab notes")).unwrap(), (feed_id, false));
        assert_ne!(keys.create(None).unwrap().0, feed_id);

        let path = dir.path().join("feeds").join(format!("{feed_id}.pem"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let reopened = FeedKeys::open(dir.path().join("feeds")).unwrap();
        assert!(reopened.owns(&feed_id));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let loose = FeedKeys::open(dir.path().join("feeds")).unwrap();
        assert!(matches!(
            loose.signing_key(&feed_id),
            Err(FeedKeyError::LoosePermissions { .. })
        ));
    }
}

//! API tokens the CLI remembers per hub URL, in `$KACHERY_HOME/cli/credentials.toml` (0600).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    hubs: BTreeMap<String, HubCredential>,
}

#[derive(Serialize, Deserialize)]
struct HubCredential {
    token: String,
    expires_at: i64,
}

impl std::fmt::Debug for HubCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCredential")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn credentials_path() -> PathBuf {
    kachery_node::paths::kachery_home()
        .join("cli")
        .join("credentials.toml")
}

fn normalize(hub_url: &str) -> String {
    hub_url.trim_end_matches('/').to_owned()
}

fn read_file() -> anyhow::Result<CredentialsFile> {
    let path = credentials_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CredentialsFile::default());
        }
        Err(err) => return Err(err).with_context(|| format!("failed to read {}", path.display())),
    };
    toml::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
}

/// The saved token for `hub_url`, if any.
pub fn token_for(hub_url: &str) -> anyhow::Result<Option<String>> {
    Ok(read_file()?
        .hubs
        .get(&normalize(hub_url))
        .map(|credential| credential.token.clone()))
}

/// Every hub URL `kachery login` saved a token for, sorted.
pub fn saved_hubs() -> anyhow::Result<Vec<String>> {
    Ok(read_file()?.hubs.into_keys().collect())
}

/// Saves `token` for `hub_url`, replacing an earlier one.
pub fn save_token(hub_url: &str, token: &str, expires_at: i64) -> anyhow::Result<PathBuf> {
    let path = credentials_path();
    let dir = path
        .parent()
        .expect("credentials path has a parent directory");
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to restrict {}", dir.display()))?;

    let mut file: CredentialsFile = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).unwrap_or_default(),
        Err(_) => CredentialsFile::default(),
    };
    file.hubs.insert(
        normalize(hub_url),
        HubCredential {
            token: token.to_owned(),
            expires_at,
        },
    );
    let text = toml::to_string(&file).context("failed to encode credentials")?;

    let tmp = path.with_extension("toml.tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("failed to write {}", tmp.display()))?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}

//! The node's settings (SPEC §13.1, §18.2), layered: defaults < `<node dir>/node.toml` <
//! environment (`KACHERY_HUB_URL`, `KACHERY_NODE_OWNER`, `KACHERY_NODE_PORT`) < flags.
//!
//! [`NodeConfig::load`] builds the effective config; [`NodeConfigOverrides::persist`] writes the
//! flags `node start` got (`--hub`, `--owner`, `--label`) into `node.toml`, keeping every other
//! key, so later starts need no flags. A plain `http://` hub is refused unless its host is a
//! loopback address: node-API bodies and pub-sub credentials must not cross a network in
//! clear text.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use kachery_protocol::{Email, Label};
use serde::Deserialize;
use url::Url;

use crate::paths::NodePaths;

/// The default local API port, kept from the original kachery.
pub const DEFAULT_PORT: u16 = 20431;

/// The effective node settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// The hub's public URL; none = local-only.
    pub hub_url: Option<Url>,
    /// The e-mail this node acts for in every node-API request; none = local-only.
    pub owner: Option<Email>,
    /// Shown on the hub; default: the host name, sanitized.
    pub label: Label,
    /// Local API port on 127.0.0.1; default 20431, 0 lets the OS choose.
    pub port: u16,
    /// Store size limit in GiB (2^30 bytes); 0 (default) = unlimited.
    pub max_cache_gib: u64,
    /// Chunks fetched at once for one large file; default 4, at most 32.
    pub parallel_chunks: u32,
    /// Uploads this node serves at once as a provider; default 4.
    pub max_concurrent_uploads: u32,
}

/// Values from command-line flags, applied last. The CLI parses them into validated
/// types; the plain-http check still runs when they are applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeConfigOverrides {
    pub hub_url: Option<Url>,
    pub owner: Option<Email>,
    pub label: Option<Label>,
    pub port: Option<u16>,
}

/// The keys `node.toml` may hold, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    hub_url: Option<String>,
    owner: Option<String>,
    label: Option<String>,
    port: Option<u16>,
    max_cache_gib: Option<u64>,
    parallel_chunks: Option<u32>,
    max_concurrent_uploads: Option<u32>,
}

/// Why the node config could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("failed to {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not valid node config", path = path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid {key} from {origin}: {reason}")]
    Invalid {
        origin: &'static str,
        key: &'static str,
        reason: String,
    },
    #[error(
        "refusing plain-http hub {url}: use https, or http only with a loopback host \
         (127.0.0.1, ::1, localhost)"
    )]
    InsecureHub { url: String },
}

impl NodeConfig {
    /// Loads the config of the node in `paths` with the process environment and `flags`.
    pub fn load(paths: &NodePaths, flags: NodeConfigOverrides) -> Result<Self, ConfigError> {
        Self::load_with_env(&paths.node_dir, &flags, |name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
    }

    /// Writes the hub, owner and label `flags` into `node.toml` (see
    /// [`NodeConfigOverrides::persist`]), then loads the config: `kachery node start`.
    pub fn load_and_persist(
        paths: &NodePaths,
        flags: NodeConfigOverrides,
    ) -> Result<Self, ConfigError> {
        flags.persist(&paths.node_dir)?;
        Self::load(paths, flags)
    }

    /// Like [`NodeConfig::load`] with a custom environment lookup (for tests).
    pub fn load_with_env(
        node_dir: &Path,
        flags: &NodeConfigOverrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = read_config_file(&node_dir.join("node.toml"))?;
        let mut config = Self::defaults();

        if let Some(port) = file.port {
            config.port = port;
        }
        if let Some(gib) = file.max_cache_gib {
            config.max_cache_gib = gib;
        }
        if let Some(parallel) = file.parallel_chunks {
            config.parallel_chunks = check_range("node.toml", "parallel_chunks", parallel, 1, 32)?;
        }
        if let Some(uploads) = file.max_concurrent_uploads {
            config.max_concurrent_uploads =
                check_range("node.toml", "max_concurrent_uploads", uploads, 1, 1024)?;
        }
        config.apply_text("node.toml", file.hub_url, file.owner, file.label)?;

        let env_port = env("KACHERY_NODE_PORT")
            .map(|text| {
                text.trim()
                    .parse::<u16>()
                    .map_err(|error| ConfigError::Invalid {
                        origin: "KACHERY_NODE_PORT",
                        key: "port",
                        reason: error.to_string(),
                    })
            })
            .transpose()?;
        if let Some(port) = env_port {
            config.port = port;
        }
        config.apply_text(
            "environment",
            env("KACHERY_HUB_URL"),
            env("KACHERY_NODE_OWNER"),
            None,
        )?;

        config.apply(flags.clone())?;
        Ok(config)
    }

    /// Built-in defaults: local-only, label from the host name, port 20431.
    pub fn defaults() -> Self {
        Self {
            hub_url: None,
            owner: None,
            label: Label::sanitized(&host_name()),
            port: DEFAULT_PORT,
            max_cache_gib: 0,
            parallel_chunks: 4,
            max_concurrent_uploads: 4,
        }
    }

    /// What is missing for the node to talk to a hub; empty when it can.
    pub fn missing_for_hub(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.hub_url.is_none() {
            missing.push("hub_url");
        }
        if self.owner.is_none() {
            missing.push("owner");
        }
        missing
    }

    /// Applies settings read as text (node.toml, environment), validating each.
    fn apply_text(
        &mut self,
        origin: &'static str,
        hub_url: Option<String>,
        owner: Option<String>,
        label: Option<String>,
    ) -> Result<(), ConfigError> {
        let invalid = |key: &'static str| {
            move |error: kachery_protocol::IdError| ConfigError::Invalid {
                origin,
                key,
                reason: error.to_string(),
            }
        };
        let values = NodeConfigOverrides {
            hub_url: hub_url
                .map(|text| parse_hub_url(origin, &text))
                .transpose()?,
            owner: owner
                .map(|text| Email::parse(&text).map_err(invalid("owner")))
                .transpose()?,
            label: label
                .map(|text| Label::parse(&text).map_err(invalid("label")))
                .transpose()?,
            port: None,
        };
        self.apply(values)
    }

    fn apply(&mut self, values: NodeConfigOverrides) -> Result<(), ConfigError> {
        if let Some(hub_url) = values.hub_url {
            self.hub_url = Some(check_hub_url(hub_url)?);
        }
        if let Some(owner) = values.owner {
            self.owner = Some(owner);
        }
        if let Some(label) = values.label {
            self.label = label;
        }
        if let Some(port) = values.port {
            self.port = port;
        }
        Ok(())
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

impl NodeConfigOverrides {
    /// Writes the hub, owner and label flags that are set into `<node_dir>/node.toml`,
    /// keeping the file's other keys (the port is not persisted). A plain-http hub is
    /// refused first, so it never lands in the file.
    pub fn persist(&self, node_dir: &Path) -> Result<(), ConfigError> {
        let mut updates = Vec::new();
        if let Some(hub_url) = &self.hub_url {
            updates.push(("hub_url", check_hub_url(hub_url.clone())?.to_string()));
        }
        if let Some(owner) = &self.owner {
            updates.push(("owner", owner.to_string()));
        }
        if let Some(label) = &self.label {
            updates.push(("label", label.to_string()));
        }

        let path = node_dir.join("node.toml");
        let mut table = match fs::read_to_string(&path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => toml::Table::new(),
            Err(source) => {
                return Err(ConfigError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let mut changed = false;
        for (key, value) in updates {
            let value = toml::Value::String(value);
            changed |= table.get(key) != Some(&value);
            table.insert(key.to_owned(), value);
        }
        if !changed {
            return Ok(());
        }

        if !node_dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(node_dir)
                .map_err(|source| ConfigError::Io {
                    action: "create",
                    path: node_dir.to_owned(),
                    source,
                })?;
        }
        let text = toml::to_string(&table).expect("a TOML table of strings serializes");
        fs::write(&path, text).map_err(|source| ConfigError::Io {
            action: "write",
            path,
            source,
        })
    }
}

fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(source) => Err(ConfigError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

fn check_range(
    origin: &'static str,
    key: &'static str,
    value: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    Err(ConfigError::Invalid {
        origin,
        key,
        reason: format!("must be {min} to {max}"),
    })
}

/// Parses a hub URL and refuses plain http to anything but loopback (SPEC §13.1).
pub fn parse_hub_url(origin: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|error| ConfigError::Invalid {
        origin,
        key: "hub_url",
        reason: error.to_string(),
    })?;
    check_hub_url(url)
}

/// Accepts https, and http only to a loopback host.
pub fn check_hub_url(url: Url) -> Result<Url, ConfigError> {
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        "http" => Err(ConfigError::InsecureHub {
            url: url.to_string(),
        }),
        other => Err(ConfigError::Invalid {
            origin: "hub url",
            key: "hub_url",
            reason: format!("scheme {other:?} is not http or https"),
        }),
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

// FIXME: reads the Linux host name only; other systems fall back to $HOSTNAME or "node".
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_url_must_be_https_unless_loopback() {
        for good in [
            "https://hub.example.org",
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:1",
        ] {
            assert!(parse_hub_url("test", good).is_ok(), "{good}");
        }
        let refused = parse_hub_url("test", "http://hub.example.org").unwrap_err();
        assert!(
            matches!(refused, ConfigError::InsecureHub { .. }),
            "{refused}"
        );
        assert!(parse_hub_url("test", "ftp://127.0.0.1").is_err());
        assert!(parse_hub_url("test", "not a url").is_err());
    }
}

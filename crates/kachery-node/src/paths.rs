//! Where a node keeps its files (SPEC §3.1, §14.3, §18.2).
//!
//! [`NodePaths`] names the node dir (keys, `node.toml`, the client token, the daemon lock
//! and `daemon.json`) and the store dir. The daemon, the CLI and tests all build one, from
//! the environment or from explicit directories, and derive every file name from it so no
//! path is spelled twice.

use std::ffi::OsString;
use std::path::PathBuf;

/// The node dir and store dir of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// Keys, `node.toml`, the client token, the daemon lock and `daemon.json` (0700).
    pub node_dir: PathBuf,
    /// Blobs, partial downloads and the store index.
    pub store_dir: PathBuf,
}

/// The kachery home: `KACHERY_HOME`, else `~/.kachery`.
pub fn kachery_home() -> PathBuf {
    kachery_home_from(&env_lookup)
}

fn env_lookup(name: &str) -> Option<OsString> {
    match name {
        // `home_dir` also asks the password database when HOME is unset.
        "HOME" => std::env::home_dir().map(PathBuf::into_os_string),
        _ => std::env::var_os(name),
    }
    .filter(|value| !value.is_empty())
}

fn kachery_home_from(lookup: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    match lookup("KACHERY_HOME") {
        Some(home) => PathBuf::from(home),
        // FIXME: with no home directory at all the current directory is used; only
        // matters for daemons started without any user environment.
        None => lookup("HOME")
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join(".kachery"),
    }
}

impl NodePaths {
    /// Paths given explicitly, as tests and `kachery demo` use them.
    pub fn new(node_dir: impl Into<PathBuf>, store_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_dir: node_dir.into(),
            store_dir: store_dir.into(),
        }
    }

    /// Paths from the environment: `KACHERY_NODE_DIR` (default `<home>/node`) and
    /// `KACHERY_STORE_DIR` (default `<home>/store`), where home is [`kachery_home`].
    pub fn from_env() -> Self {
        Self::from_lookup(&env_lookup)
    }

    /// Like [`NodePaths::from_env`] with a custom variable lookup, so the rules are testable
    /// without touching the process environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<OsString>) -> Self {
        let home = kachery_home_from(lookup);
        let node_dir = lookup("KACHERY_NODE_DIR").map_or_else(|| home.join("node"), PathBuf::from);
        let store_dir =
            lookup("KACHERY_STORE_DIR").map_or_else(|| home.join("store"), PathBuf::from);
        Self {
            node_dir,
            store_dir,
        }
    }

    /// The node's PKCS#8 private key (0600).
    pub fn private_key(&self) -> PathBuf {
        self.node_dir.join("private.pem")
    }

    pub fn public_key(&self) -> PathBuf {
        self.node_dir.join("public.pem")
    }

    pub fn node_id_file(&self) -> PathBuf {
        self.node_dir.join("node-id")
    }

    /// The node's own settings (SPEC §18.2).
    pub fn config_file(&self) -> PathBuf {
        self.node_dir.join("node.toml")
    }

    /// The local API bearer token (0600, SPEC §13.4).
    pub fn client_token(&self) -> PathBuf {
        self.node_dir.join("client-token")
    }

    /// Held exclusively by the running daemon.
    pub fn lock_file(&self) -> PathBuf {
        self.node_dir.join("node.lock")
    }

    /// Written by the running daemon so the CLI finds its port.
    pub fn daemon_file(&self) -> PathBuf {
        self.node_dir.join("daemon.json")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn paths_with(vars: &[(&str, &str)]) -> NodePaths {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), OsString::from(value)))
            .collect();
        NodePaths::from_lookup(&|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_live_under_the_home_directory() {
        let paths = paths_with(&[("HOME", "/home/ann")]);
        assert_eq!(paths.node_dir, Path::new("/home/ann/.kachery/node"));
        assert_eq!(paths.store_dir, Path::new("/home/ann/.kachery/store"));
    }

    #[test]
    fn kachery_home_and_explicit_dirs_win() {
        let paths = paths_with(&[("HOME", "/h"), ("KACHERY_HOME", "/k")]);
        assert_eq!(paths.node_dir, Path::new("/k/node"));

        let paths = paths_with(&[("KACHERY_HOME", "/k"), ("KACHERY_STORE_DIR", "/s")]);
        assert_eq!(paths.store_dir, Path::new("/s"));
        assert_eq!(paths.config_file(), Path::new("/k/node/node.toml"));

        let homeless = paths_with(&[]);
        assert_eq!(homeless.node_dir, Path::new("./.kachery/node"));
    }
}

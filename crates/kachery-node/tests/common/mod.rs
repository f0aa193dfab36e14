//! Helpers shared by the integration tests: a daemon in a temporary directory.

#![allow(dead_code)]

use std::time::Duration;

use kachery_client::LocalClient;
use kachery_node::{DaemonOptions, NodeConfig, NodeDaemon, NodeHandle, NodePaths};
use tempfile::TempDir;

/// Node and store dirs under a fresh temporary directory.
pub fn temp_paths() -> (TempDir, NodePaths) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let paths = NodePaths::new(dir.path().join("node"), dir.path().join("store"));
    (dir, paths)
}

/// A config without hub or owner, on an OS-assigned port.
pub fn local_only_config() -> NodeConfig {
    NodeConfig {
        port: 0,
        ..NodeConfig::defaults()
    }
}

/// Options with short loops, so tests see reconciles and retries within seconds.
pub fn quick_options() -> DaemonOptions {
    DaemonOptions {
        reconcile_interval: Duration::from_millis(500),
        link_max_backoff: Duration::from_millis(500),
        report_min_spacing: Duration::from_millis(100),
        ..DaemonOptions::default()
    }
}

/// Starts a daemon and returns it with a client holding its token.
pub async fn start(paths: &NodePaths, config: NodeConfig) -> (NodeHandle, LocalClient) {
    let handle = NodeDaemon::start(paths.clone(), config, quick_options())
        .await
        .expect("the daemon starts");
    let client = LocalClient::new(
        handle.local_api_url(),
        handle.client_token().expose().to_owned(),
    );
    (handle, client)
}

//! `<node dir>/daemon.json`: how the CLI finds the running daemon.
//!
//! Written once the local API listens, as `{port, pid, nodeId}`, by writing a temporary
//! file and renaming it so readers never see half a file; removed on clean shutdown.

use std::fs;
use std::io;
use std::path::Path;

use kachery_protocol::NodeId;
use serde::{Deserialize, Serialize};

/// What `daemon.json` holds: how the CLI reaches the running daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonInfo {
    pub port: u16,
    pub pid: u32,
    pub node_id: NodeId,
}

/// Reads `<node_dir>/daemon.json`; see [`DaemonInfo::read`].
pub fn read(node_dir: &Path) -> io::Result<Option<DaemonInfo>> {
    DaemonInfo::read(node_dir)
}

impl DaemonInfo {
    /// Reads `<node_dir>/daemon.json`; `None` when no daemon has announced itself. A daemon
    /// killed without a clean shutdown leaves the file behind: check that `pid` still runs.
    pub fn read(node_dir: &Path) -> io::Result<Option<Self>> {
        match fs::read(node_dir.join("daemon.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub(crate) fn write(&self, node_dir: &Path) -> io::Result<()> {
        let path = node_dir.join("daemon.json");
        let temp_path = node_dir.join(format!("daemon.json.tmp-{}", self.pid));
        let bytes = serde_json::to_vec_pretty(self).expect("daemon info serializes");
        fs::write(&temp_path, bytes)?;
        fs::rename(&temp_path, &path)
    }

    pub(crate) fn remove(node_dir: &Path) {
        let _ = fs::remove_file(node_dir.join("daemon.json"));
    }
}

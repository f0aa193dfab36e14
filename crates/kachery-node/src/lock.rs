//! One daemon per node dir: the `node.lock` file lock.
//!
//! The daemon holds an exclusive lock on `<node dir>/node.lock` for its whole life (the
//! operating system drops it if the process dies, so a crash never leaves a stale lock)
//! and writes its pid into the file, so a second daemon can say who is running.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held while the daemon runs; dropping it releases the lock.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

/// Why the daemon lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error("another daemon is running for this node dir ({pid})", pid = describe_pid(*.pid))]
    Busy { pid: Option<u32> },
    #[error("failed to {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn describe_pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
}

impl DaemonLock {
    /// Takes the lock without waiting, or says which process holds it.
    pub fn acquire(lock_path: &Path) -> Result<Self, LockError> {
        let io_error = |action| {
            let path = lock_path.to_owned();
            move |source| LockError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(lock_path)
            .map_err(io_error("open"))?;

        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Busy {
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error("lock")(source)),
        }

        file.set_len(0).map_err(io_error("truncate"))?;
        file.rewind().map_err(io_error("rewind"))?;
        writeln!(file, "{}", std::process::id()).map_err(io_error("write"))?;
        Ok(Self { _file: file })
    }
}

//! Running the commands we time (the `kachery` CLI, `sha1sum`, `cp`, `curl`): wall time
//! from spawn to exit, CPU time from the kernel's accounting of waited-for children.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::measure::{Timed, children_cpu_seconds};

/// A helper process (a task worker, a feed follower) killed when the row ends, however it
/// ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` to completion and returns its timing and stdout; fails on a non-zero
/// exit with the command's stderr.
pub fn run_timed(command: &mut Command) -> anyhow::Result<(Timed, String)> {
    let (cpu_before, system_before) = children_cpu_seconds();
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {command:?}"))?;
    let wall = started.elapsed().as_secs_f64();
    let (cpu_after, system_after) = children_cpu_seconds();
    let (cpu, system) = (cpu_after - cpu_before, system_after - system_before);

    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok((
        Timed { wall, cpu, system },
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

/// A `bash -c` command running `script` with strict error handling; `args` become `$1…`.
pub fn bash(script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .arg("bash");
    for arg in args {
        command.arg(arg);
    }
    command
}

/// Flushes dirty pages of every file before a timed step, so the writeback of the previous
/// step's output does not land on the next one. Caches are kept (nothing is dropped).
pub fn settle_writeback() -> anyhow::Result<()> {
    let status = Command::new("sync")
        .status()
        .context("failed to run sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// Removes a file or directory tree if it exists.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("failed to remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

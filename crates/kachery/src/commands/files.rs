//! `kachery store`, `load` and `cat`.
//!
//! `store` and local reads open the store directly (its SQLite index tolerates a running
//! daemon), so they work without one. Fetching content the store lacks goes through the
//! daemon, which holds the channel links.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use kachery_client::local_api::types::LoadEvent;
use kachery_node::paths::NodePaths;
use kachery_protocol::{ChannelName, FileUri};
use kachery_store::Store;
use tokio::io::AsyncReadExt;

use crate::cli::{CatArgs, LoadArgs, StoreArgs};
use crate::commands::access;
use crate::exit::{Failure, FailureKind};

async fn open_store() -> anyhow::Result<Store> {
    let paths = NodePaths::from_env();
    Store::open(&paths.store_dir)
        .await
        .with_context(|| format!("failed to open the store at {}", paths.store_dir.display()))
}

fn parse_uri(text: &str) -> anyhow::Result<FileUri> {
    FileUri::parse(text).map_err(|err| Failure::usage(err.to_string()).into())
}

fn byte_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("the progress template is valid")
        .progress_chars("=> "),
    );
    bar
}

pub async fn store(args: StoreArgs) -> anyhow::Result<()> {
    let store = open_store().await?;
    for path in &args.paths {
        let metadata = std::fs::metadata(path).map_err(|err| {
            Failure::new(
                FailureKind::NotFound,
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        if !metadata.is_file() {
            return Err(Failure::usage(format!("{} is not a regular file", path.display())).into());
        }

        let bar = byte_bar(metadata.len(), args.json || metadata.len() < 64 << 20);
        bar.set_message(file_label(path));
        let progress_bar = bar.clone();
        let ingested = store
            .ingest_file(path, !args.cache, &move |done| {
                progress_bar.set_position(done)
            })
            .await
            .with_context(|| format!("failed to store {}", path.display()))?;
        bar.finish_and_clear();

        let manifest_sha1 = ingested.manifest.as_ref().map(|(sha1, _)| *sha1);
        let uri = FileUri::new(ingested.sha1, Some(&file_label(path)), manifest_sha1);
        if args.json {
            let line = serde_json::json!({
                "path": path, "uri": uri.to_string(), "sha1": ingested.sha1,
                "size": ingested.size, "manifestSha1": manifest_sha1,
            });
            println!("{line}");
        } else {
            println!("{uri}");
        }
    }
    Ok(())
}

/// A missing file is "not found" (exit 3), one we may not read is "denied" (exit 4).
pub fn read_failure(path: &Path, err: &std::io::Error) -> Failure {
    let kind = match err.kind() {
        std::io::ErrorKind::PermissionDenied => FailureKind::Denied,
        std::io::ErrorKind::NotFound => FailureKind::NotFound,
        _ => FailureKind::Other,
    };
    Failure::new(kind, format!("cannot read {}: {err}", path.display()))
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let uri = parse_uri(&args.uri)?;
    let channels = args
        .channels
        .iter()
        .map(|name| ChannelName::parse(name).map_err(|err| Failure::usage(err.to_string())))
        .collect::<Result<Vec<_>, _>>()?;

    // Checked before the transfer, which may be long, rather than after it.
    let dest = args
        .dest
        .as_deref()
        .map(|dest| output_path(dest, &uri))
        .transpose()?;

    let output = if args.json {
        LoadOutput::Json
    } else {
        LoadOutput::Bar
    };
    let path = fetch(&uri, channels, output).await?;
    if let Some(dest) = &dest {
        copy_out(&path, dest).await?;
        eprintln!("wrote {}", dest.display());
    } else if !args.json {
        println!("{}", path.display());
    }
    Ok(())
}

/// Where `-o DEST` puts the file: DEST itself, or inside it when DEST is a directory (or
/// ends in `/`), under the URI's file name (its hash when it has none). The directory it
/// goes in must exist.
fn output_path(dest: &Path, uri: &FileUri) -> anyhow::Result<PathBuf> {
    let names_a_directory = dest.is_dir() || dest.as_os_str().as_encoded_bytes().ends_with(b"/");
    let path = if names_a_directory {
        let name = uri
            .label
            .as_deref()
            .and_then(|label| Path::new(label).file_name())
            .map(|name| name.to_owned())
            .unwrap_or_else(|| uri.sha1.to_hex().into());
        dest.join(name)
    } else {
        dest.to_owned()
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Failure::usage(format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            parent.display()
        ))
        .into());
    }
    Ok(path)
}

/// How a load reports progress: a bar on stderr, JSON events on stdout, or nothing (cat).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LoadOutput {
    Bar,
    Json,
    Quiet,
}

/// Makes sure the store holds `uri`, asking the daemon to fetch it when it does not, and
/// returns the blob's path.
async fn fetch(
    uri: &FileUri,
    channels: Vec<ChannelName>,
    output: LoadOutput,
) -> anyhow::Result<PathBuf> {
    let store = open_store().await?;
    if store.blob_size(&uri.sha1).await?.is_some() {
        return Ok(store.blob_path(&uri.sha1));
    }
    let Some(daemon) = access::local_daemon()? else {
        return Err(Failure::unavailable(format!(
            "{uri} is not in the local store and the node daemon is not running: \
             start it with `kachery node start`"
        ))
        .into());
    };

    let mut events = Box::pin(
        daemon
            .load(&uri.to_string(), channels)
            .await
            .context("failed to ask the node daemon")?,
    );
    let bar = byte_bar(0, output != LoadOutput::Bar);
    bar.set_message("loading");
    while let Some(event) = events.next().await {
        let event = event.map_err(|_| {
            Failure::unavailable(
                "the node daemon stopped during the load: start it again with \
                 `kachery node start` and repeat the load (verified chunks are kept)",
            )
        })?;
        if output == LoadOutput::Json {
            println!("{}", serde_json::to_string(&event)?);
        }
        match event {
            LoadEvent::Progress { bytes, total, .. } => {
                bar.set_length(total);
                bar.set_position(bytes);
            }
            LoadEvent::Done { path, .. } => {
                bar.finish_and_clear();
                return Ok(path);
            }
            LoadEvent::Error { code, message, .. } => {
                bar.finish_and_clear();
                return Err(Failure::from_load_code(code, message).into());
            }
        }
    }
    Err(Failure::unavailable("the node daemon ended the load without a result").into())
}

/// Copies a stored blob to `dest` through a temporary name. The copy is a new file (the
/// user's umask decides its mode), not a clone of the store's private 0600 blob.
async fn copy_out(from: &Path, dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension("kachery-partial");
    let (source, target) = (from.to_owned(), tmp.clone());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut reader = std::fs::File::open(&source)?;
        let mut writer = std::fs::File::create(&target)?;
        // std's copy between two files uses copy_file_range on Linux.
        std::io::copy(&mut reader, &mut writer)?;
        writer.sync_all()
    })
    .await
    .context("the copy task panicked")?
    .with_context(|| format!("failed to write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, dest)
        .await
        .with_context(|| format!("failed to write {}", dest.display()))?;
    Ok(())
}

pub async fn cat(args: CatArgs) -> anyhow::Result<()> {
    let uri = parse_uri(&args.uri)?;
    if let (Some(start), Some(end)) = (args.start, args.end) {
        if start > end {
            return Err(Failure::usage(format!("--start {start} is after --end {end}")).into());
        }
    }
    let path = fetch(&uri, Vec::new(), LoadOutput::Quiet).await?;

    let mut file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("failed to open {}", path.display()))?;
    let size = file.metadata().await?.len();
    if args.start.is_some_and(|start| start > size) {
        return Err(Failure::usage(format!(
            "--start is past the end of the file ({size} bytes)"
        ))
        .into());
    }
    let start = args.start.unwrap_or(0).min(size);
    let end = args.end.unwrap_or(size).clamp(start, size);
    use tokio::io::AsyncSeekExt;
    file.seek(std::io::SeekFrom::Start(start)).await?;

    let mut remaining = end - start;
    let mut buffer = vec![0u8; 1 << 20];
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while remaining > 0 {
        let want = remaining.min(buffer.len() as u64) as usize;
        let read = file.read(&mut buffer[..want]).await?;
        if read == 0 {
            break;
        }
        out.write_all(&buffer[..read])?;
        remaining -= read as u64;
    }
    out.flush()?;
    Ok(())
}

//! Evidence for row 2: how fast the provider's way of uploading can go.
//!
//! `kachery-exchange` uploads a chunk by streaming a `tokio::fs::File` through
//! `tokio_util::io::ReaderStream::new`, whose default read size is 4 KiB, into a reqwest
//! body. This module replays that (the same reads from the same kind of file, without the
//! hashing) for four chunks at once, once with 4 KiB reads and once with 1 MiB reads,
//! against the same embedded bucket.
//! The gap between the two, next to curl's PUT rate, says whether the piece size is what
//! holds uploads back.

use std::time::Instant;

use anyhow::{Context as _, ensure};
use futures_util::future::try_join_all;
use kachery_protocol::ChannelName;
use kachery_protocol::node_api::{PresignedRequest, UploadItem};
use tokio::io::AsyncReadExt;

use crate::cluster::Identity;
use crate::measure::{mb_per_second, median};
use crate::rows::curl::Object;

/// Read sizes compared: tokio-util's default, and a size that makes syscalls and body
/// frames rare.
pub const SMALL_PIECE: usize = 4 * 1024;
pub const LARGE_PIECE: usize = 1 << 20;

/// Median MB/s of uploading `chunks` in parallel with each piece size, over `repeats`
/// alternating runs; each run uses a fresh channel so every upload is a real write.
pub async fn compare(
    node: &Identity,
    net: &crate::rows::Network,
    chunks: &[Object],
    repeats: usize,
) -> anyhow::Result<(f64, f64)> {
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for repeat in 0..repeats {
        for piece in [SMALL_PIECE, LARGE_PIECE] {
            let name = format!("bench.pieces{}-{repeat}", piece / 1024);
            let channel = net.alice.create_channel(&name).await?;
            crate::cluster::admit(
                &net.alice,
                &net.alice,
                &node.node_id,
                &channel,
                "provideFiles",
            )
            .await?;
            let rate = upload_all(node, &channel, chunks, piece).await?;
            crate::shell::remove(&net.hub.bucket_dir(&channel))?;
            if piece == SMALL_PIECE {
                small.push(rate)
            } else {
                large.push(rate)
            }
        }
    }
    Ok((median(&small), median(&large)))
}

/// Uploads every chunk at once, reading `piece` bytes at a time; returns MB/s.
async fn upload_all(
    node: &Identity,
    channel: &ChannelName,
    chunks: &[Object],
    piece: usize,
) -> anyhow::Result<f64> {
    let items = chunks.iter().map(|chunk| UploadItem::File {
        sha1: chunk.sha1,
        size: chunk.size,
    });
    let uploads = node
        .api
        .upload_urls(channel, items.collect())
        .await
        .context("createUploadUrls")?;
    let http = reqwest::Client::new();

    let started = Instant::now();
    let puts = chunks
        .iter()
        .zip(&uploads.uploads)
        .map(|(chunk, upload)| put_file(&http, upload, chunk, piece));
    try_join_all(puts).await?;
    let bytes: u64 = chunks.iter().map(|chunk| chunk.size).sum();
    Ok(mb_per_second(bytes, started.elapsed().as_secs_f64()))
}

/// One PUT whose body streams from the file as the provider's does.
async fn put_file(
    http: &reqwest::Client,
    upload: &PresignedRequest,
    chunk: &Object,
    piece: usize,
) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(&chunk.file).await?;
    // One read of at most `piece` bytes per body frame, as ReaderStream does.
    let body = futures_util::stream::try_unfold(file, move |mut file| async move {
        let mut buffer = vec![0u8; piece];
        let n_read = file.read(&mut buffer).await?;
        if n_read == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buffer.truncate(n_read);
        Ok(Some((buffer, file)))
    });
    let mut request = http.put(&upload.url).body(reqwest::Body::wrap_stream(body));
    for (name, value) in &upload.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.context("PUT to the bucket")?;
    ensure!(
        response.status().is_success(),
        "bucket answered {}",
        response.status()
    );
    Ok(())
}

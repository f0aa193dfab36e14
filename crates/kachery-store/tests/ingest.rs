//! Ingest: fixed chunking vectors checked against `sha1sum`, chunk serving by range,
//! single storage of chunked files, no-op re-ingest, and verified puts.

mod common;

use std::io::Cursor;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use common::{bytes_under, files_under, seeded_bytes, sha1sum, write_file};
use kachery_protocol::{CHUNK_SIZE, Manifest, Sha1Hash};
use kachery_store::{IngestError, Store};
use tokio::io::AsyncReadExt;

const C: usize = CHUNK_SIZE as usize;

/// Ingests `len` seeded bytes and checks hashes, manifest, chunk index and disk use.
async fn check_ingest(len: usize, expected_n_chunks: usize) {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let data = seeded_bytes(len as u64, len);
    let source = write_file(work.path(), "source.bin", &data);

    let last_progress = Mutex::new(0u64);
    let ingested = store
        .ingest_file(&source, true, &|n_done| {
            *last_progress.lock().unwrap() = n_done
        })
        .await
        .unwrap();

    assert_eq!(ingested.sha1, sha1sum(&data), "whole hash for {len} bytes");
    assert_eq!(ingested.size, len as u64);
    assert_eq!(*last_progress.lock().unwrap(), len as u64);
    assert_eq!(
        std::fs::read(store.blob_path(&ingested.sha1)).unwrap(),
        data
    );
    assert!(
        files_under(&store.dir().join("tmp")).is_empty(),
        "tmp/ is left empty"
    );

    let chunk_slices: Vec<&[u8]> = data.chunks(C).collect();
    assert_eq!(chunk_slices.len(), expected_n_chunks);
    if expected_n_chunks <= 1 {
        assert_eq!(ingested.manifest, None, "no manifest for {len} bytes");
        assert_eq!(store.manifest_of(&ingested.sha1).await.unwrap(), None);
        assert_eq!(bytes_under(&store.dir().join("sha1")), len as u64);
        return;
    }

    // The manifest lists chunk hashes that agree with sha1sum and is stored as a blob.
    let (manifest_sha1, manifest) = ingested
        .manifest
        .clone()
        .expect("multi-chunk file has a manifest");
    for (idx, (chunk, slice)) in manifest.chunks.iter().zip(&chunk_slices).enumerate() {
        assert_eq!(chunk.sha1, sha1sum(slice), "chunk {idx} of {len} bytes");
        assert_eq!(chunk.start, (idx * C) as u64);
        assert_eq!(chunk.len(), slice.len() as u64);
    }
    let manifest_bytes = store
        .read_small(&manifest_sha1, CHUNK_SIZE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sha1sum(&manifest_bytes), manifest_sha1);
    assert_eq!(
        Manifest::parse_canonical(&manifest_bytes).unwrap(),
        manifest
    );
    assert_eq!(
        store.manifest(&manifest_sha1).await.unwrap(),
        Some(manifest.clone())
    );
    assert_eq!(
        store.manifest_of(&ingested.sha1).await.unwrap(),
        Some(manifest_sha1)
    );

    // Each chunk is served as a range of the whole blob.
    for (chunk, slice) in manifest.chunks.iter().zip(&chunk_slices) {
        let location = store.locate(&chunk.sha1).await.unwrap().unwrap();
        assert_eq!(location.path, store.blob_path(&ingested.sha1));
        assert_eq!((location.start, location.end), (chunk.start, chunk.end));

        let (file, range_len) = store.open_range(&chunk.sha1).await.unwrap().unwrap();
        let mut served = Vec::new();
        file.take(range_len).read_to_end(&mut served).await.unwrap();
        assert!(
            served == *slice,
            "bytes served for chunk at {}",
            chunk.start
        );
    }

    // Chunks take no space of their own: only the whole file and the manifest are stored.
    assert_eq!(files_under(&store.dir().join("sha1")).len(), 2);
    assert_eq!(
        bytes_under(&store.dir().join("sha1")),
        len as u64 + manifest_bytes.len() as u64
    );
    let usage = store.usage().await.unwrap();
    assert_eq!(
        (usage.blobs, usage.bytes),
        (2, len as u64 + manifest_bytes.len() as u64)
    );
}

#[tokio::test]
async fn empty_file() {
    check_ingest(0, 0).await;
}

#[tokio::test]
async fn exactly_one_chunk() {
    check_ingest(C, 1).await;
}

#[tokio::test]
async fn one_byte_over_one_chunk() {
    check_ingest(C + 1, 2).await;
}

#[tokio::test]
async fn three_chunks() {
    check_ingest(45_000_000, 3).await;
}

#[tokio::test]
async fn ingesting_present_content_does_not_touch_the_blob() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();

    let first = store.ingest_bytes(b"same bytes", false).await.unwrap();
    let blob_path = store.blob_path(&first.sha1);
    let inode_before = blob_path.metadata().unwrap().ino();

    let source = write_file(work.path(), "copy", b"same bytes");
    let second = store.ingest_file(&source, true, &|_| {}).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(
        blob_path.metadata().unwrap().ino(),
        inode_before,
        "blob was not replaced"
    );
    assert!(files_under(&store.dir().join("tmp")).is_empty());
    assert_eq!(store.usage().await.unwrap().blobs, 1);
}

#[tokio::test]
async fn missing_source_file_is_reported_with_its_path() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let missing = work.path().join("nope");

    let err = store
        .ingest_file(&missing, true, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IngestError::ReadSource { path, .. } if *path == missing),
        "{err}"
    );
}

#[tokio::test]
async fn put_verified_keeps_only_matching_bytes() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let good = seeded_bytes(7, 3_000_000);
    let sha1 = sha1sum(&good);

    let mut bad = good.clone();
    bad[1_234_567] ^= 1;
    let err = store
        .put_verified(sha1, Some(good.len() as u64), Cursor::new(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::HashMismatch { expected, .. } if expected == sha1),
        "{err}"
    );
    assert!(
        files_under(&store.dir().join("tmp")).is_empty(),
        "nothing left in tmp/"
    );
    assert_eq!(store.blob_size(&sha1).await.unwrap(), None);
    assert_eq!(store.usage().await.unwrap().blobs, 0);

    let err = store
        .put_verified(sha1, Some(10), Cursor::new(good.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::SizeMismatch { expected: 10, .. }),
        "{err}"
    );
    let err = store
        .put_verified(sha1, Some(good.len() as u64 + 1), Cursor::new(good.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::SizeMismatch { .. }), "{err}");
    assert!(files_under(&store.dir().join("tmp")).is_empty());

    let size = store
        .put_verified(sha1, Some(good.len() as u64), Cursor::new(good.clone()))
        .await
        .unwrap();
    assert_eq!(size, good.len() as u64);
    assert_eq!(std::fs::read(store.blob_path(&sha1)).unwrap(), good);
    assert_eq!(
        store.blob_size(&sha1).await.unwrap(),
        Some(good.len() as u64)
    );
}

#[tokio::test]
async fn read_small_refuses_large_blobs_and_absent_hashes() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let ingested = store.ingest_bytes(b"0123456789", true).await.unwrap();

    assert_eq!(
        store.read_small(&ingested.sha1, 10).await.unwrap(),
        Some(b"0123456789".to_vec())
    );
    assert_eq!(store.read_small(&ingested.sha1, 9).await.unwrap(), None);
    let absent = Sha1Hash::of(b"absent");
    assert_eq!(store.read_small(&absent, 100).await.unwrap(), None);
    assert_eq!(store.locate(&absent).await.unwrap(), None);
    assert!(store.open_range(&absent).await.unwrap().is_none());
}

#[tokio::test]
async fn remove_deletes_blob_and_its_chunk_index() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let data = seeded_bytes(3, C + 10);
    let ingested = store.ingest_bytes(&data, true).await.unwrap();
    let (_, manifest) = ingested.manifest.unwrap();

    assert!(store.remove(&ingested.sha1).await.unwrap());
    assert!(!store.blob_path(&ingested.sha1).exists());
    assert_eq!(store.locate(&manifest.chunks[1].sha1).await.unwrap(), None);
    assert!(
        !store.remove(&ingested.sha1).await.unwrap(),
        "second remove finds nothing"
    );
}

#[tokio::test]
async fn a_new_store_and_its_blobs_are_private_to_the_user() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let store = Store::open(&root).await.unwrap();
    let source = write_file(work.path(), "source.bin", b"a lab's unpublished data");
    let ingested = store.ingest_file(&source, true, &|_| {}).await.unwrap();

    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().mode() & 0o777;
    assert_eq!(mode(&root), 0o700, "store root");
    assert_eq!(mode(&store.blob_path(&ingested.sha1)), 0o600, "blob");
}

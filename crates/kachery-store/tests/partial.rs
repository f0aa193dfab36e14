//! Assembling downloaded multi-chunk files: resume after a restart, chunk and whole-file
//! verification, and what a finished download leaves in the store.

mod common;

use common::{files_under, seeded_bytes, sha1sum};
use kachery_protocol::manifest::chunk_ranges;
use kachery_protocol::{CHUNK_SIZE, Manifest, ManifestChunk, Sha1Hash};
use kachery_store::{PartialError, Store};

/// A 3-chunk file and a manifest of it built from `sha1sum`, independent of the store.
fn three_chunk_file(seed: u64) -> (Vec<u8>, Manifest) {
    let data = seeded_bytes(seed, 45_000_000);
    let chunks = chunk_ranges(data.len() as u64)
        .map(|(start, end)| ManifestChunk {
            start,
            end,
            sha1: sha1sum(&data[start as usize..end as usize]),
        })
        .collect();
    let manifest = Manifest {
        size: data.len() as u64,
        sha1: sha1sum(&data),
        chunks,
    };
    (data, manifest)
}

fn chunk_bytes<'a>(data: &'a [u8], manifest: &Manifest, idx: usize) -> &'a [u8] {
    let chunk = manifest.chunks[idx];
    &data[chunk.start as usize..chunk.end as usize]
}

#[tokio::test]
async fn download_resumes_after_restart_and_finishes() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let (data, manifest) = three_chunk_file(11);
    let manifest_sha1 = sha1sum(&manifest.to_bytes());

    // Two chunks written, concurrently through clones, then the process "dies".
    {
        let store = Store::open(&dir).await.unwrap();
        let partial = store.partial(&manifest, manifest_sha1).await.unwrap();
        assert_eq!(partial.missing_chunks(), vec![0, 1, 2]);
        let other = partial.clone();
        let (first, second) = tokio::join!(
            partial.write_chunk(0, chunk_bytes(&data, &manifest, 0)),
            other.write_chunk(1, chunk_bytes(&data, &manifest, 1)),
        );
        first.unwrap();
        second.unwrap();
        assert_eq!(partial.missing_chunks(), vec![2]);
    }

    let store = Store::open(&dir).await.unwrap();
    let partial = store.partial(&manifest, manifest_sha1).await.unwrap();
    assert_eq!(partial.missing_chunks(), vec![2]);
    assert_eq!(store.usage().await.unwrap().partials, 1);

    // Wrong bytes for the last chunk are refused and change nothing.
    let mut wrong = chunk_bytes(&data, &manifest, 2).to_vec();
    wrong[0] ^= 0xff;
    let err = partial.write_chunk(2, &wrong).await.unwrap_err();
    assert!(
        matches!(err, PartialError::ChunkMismatch { idx: 2, .. }),
        "{err}"
    );
    let err = partial.write_chunk(2, &wrong[1..]).await.unwrap_err();
    assert!(
        matches!(err, PartialError::ChunkSize { idx: 2, .. }),
        "{err}"
    );
    let err = partial.write_chunk(3, &wrong).await.unwrap_err();
    assert!(
        matches!(
            err,
            PartialError::NoSuchChunk {
                idx: 3,
                n_chunks: 3
            }
        ),
        "{err}"
    );
    assert_eq!(partial.missing_chunks(), vec![2]);
    let err = partial.clone().finish().await.unwrap_err();
    assert!(
        matches!(err, PartialError::Incomplete { n_missing: 1, .. }),
        "{err}"
    );

    partial
        .write_chunk(2, chunk_bytes(&data, &manifest, 2))
        .await
        .unwrap();
    assert!(partial.missing_chunks().is_empty());
    let path = partial.finish().await.unwrap();

    assert_eq!(path, store.blob_path(&manifest.sha1));
    assert!(
        std::fs::read(&path).unwrap() == data,
        "assembled bytes match the source"
    );
    assert!(files_under(&dir.join("partial")).is_empty());
    assert_eq!(store.usage().await.unwrap().partials, 0);

    // The node can now serve the manifest and every chunk.
    assert_eq!(
        store.manifest_of(&manifest.sha1).await.unwrap(),
        Some(manifest_sha1)
    );
    assert_eq!(
        store.manifest(&manifest_sha1).await.unwrap(),
        Some(manifest.clone())
    );
    let location = store
        .locate(&manifest.chunks[2].sha1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((location.start, location.end), (2 * CHUNK_SIZE, 45_000_000));

    let err = store.partial(&manifest, manifest_sha1).await.unwrap_err();
    assert!(matches!(err, PartialError::AlreadyComplete { .. }), "{err}");
}

#[tokio::test]
async fn whole_file_mismatch_deletes_the_partial() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let (data, mut manifest) = three_chunk_file(12);

    // Every chunk checks out, but the manifest names a different whole file.
    manifest.sha1 = Sha1Hash::of(b"some other file");
    let manifest_sha1 = sha1sum(&manifest.to_bytes());
    let partial = store.partial(&manifest, manifest_sha1).await.unwrap();
    for idx in 0..3 {
        partial
            .write_chunk(idx, chunk_bytes(&data, &manifest, idx))
            .await
            .unwrap();
    }

    let err = partial.finish().await.unwrap_err();
    let data_sha1 = sha1sum(&data);
    assert!(
        matches!(err, PartialError::WholeMismatch { expected, actual }
            if expected == manifest.sha1 && actual == data_sha1),
        "{err}"
    );
    assert!(files_under(&store.dir().join("partial")).is_empty());
    assert!(files_under(&store.dir().join("sha1")).is_empty());
    assert_eq!(store.usage().await.unwrap().partials, 0);
}

#[tokio::test]
async fn manifest_must_match_its_hash() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    let (_, manifest) = three_chunk_file(13);

    let err = store
        .partial(&manifest, Sha1Hash::of(b"not it"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PartialError::ManifestMismatch { .. }),
        "{err}"
    );
    assert!(files_under(&store.dir().join("partial")).is_empty());
}

#[tokio::test]
async fn a_partial_file_lost_while_stopped_restarts_from_scratch() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let (data, manifest) = three_chunk_file(14);
    let manifest_sha1 = sha1sum(&manifest.to_bytes());
    {
        let store = Store::open(&dir).await.unwrap();
        let partial = store.partial(&manifest, manifest_sha1).await.unwrap();
        partial
            .write_chunk(1, chunk_bytes(&data, &manifest, 1))
            .await
            .unwrap();
    }
    std::fs::remove_file(dir.join("partial").join(manifest.sha1.to_hex())).unwrap();

    let store = Store::open(&dir).await.unwrap();
    assert_eq!(
        store.usage().await.unwrap().partials,
        0,
        "row without file dropped at open"
    );
    let partial = store.partial(&manifest, manifest_sha1).await.unwrap();
    assert_eq!(partial.missing_chunks(), vec![0, 1, 2]);
}

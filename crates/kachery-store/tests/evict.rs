//! Eviction: least recently used unpinned blobs go first, down to 90 % of the limit;
//! pinned blobs and partial downloads stay.

mod common;

use std::time::Duration;

use common::{seeded_bytes, sha1sum};
use kachery_protocol::manifest::chunk_ranges;
use kachery_protocol::{Manifest, ManifestChunk};
use kachery_store::{EvictionReport, Store, StoreOptions};

/// Lets the millisecond clock of `last_access_at` move on between steps.
async fn next_millisecond() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

#[tokio::test]
async fn least_recently_used_unpinned_blobs_go_first() {
    let work = tempfile::tempdir().unwrap();
    let options = StoreOptions::default().with_max_cache_bytes(1000);
    let store = Store::open_with(&work.path().join("store"), options)
        .await
        .unwrap();

    let pinned = store
        .ingest_bytes(&seeded_bytes(1, 300), true)
        .await
        .unwrap()
        .sha1;
    let mut unpinned = Vec::new();
    for seed in 2..5 {
        next_millisecond().await;
        unpinned.push(
            store
                .ingest_bytes(&seeded_bytes(seed, 300), false)
                .await
                .unwrap()
                .sha1,
        );
    }
    next_millisecond().await;
    store.touch(&unpinned[0]).await;

    // 1200 bytes > 1000: the least recently used (unpinned[1]) goes, leaving 900 = 90 %.
    let report = store.evict_if_needed().await.unwrap();
    assert_eq!(
        report,
        EvictionReport {
            n_evicted: 1,
            bytes_freed: 300,
            bytes_after: 900
        }
    );
    assert_eq!(store.blob_size(&unpinned[1]).await.unwrap(), None);
    for present in [pinned, unpinned[0], unpinned[2]] {
        assert_eq!(store.blob_size(&present).await.unwrap(), Some(300));
    }

    // Under the limit nothing happens.
    let report = store.evict_if_needed().await.unwrap();
    assert_eq!(
        report,
        EvictionReport {
            n_evicted: 0,
            bytes_freed: 0,
            bytes_after: 900
        }
    );
}

#[tokio::test]
async fn pinned_blobs_and_partials_are_never_evicted() {
    let work = tempfile::tempdir().unwrap();
    let options = StoreOptions::default().with_max_cache_bytes(100);
    let store = Store::open_with(&work.path().join("store"), options)
        .await
        .unwrap();

    let pinned = store
        .ingest_bytes(&seeded_bytes(1, 300), true)
        .await
        .unwrap()
        .sha1;
    let cached = store
        .ingest_bytes(&seeded_bytes(2, 300), false)
        .await
        .unwrap()
        .sha1;
    assert!(store.set_pinned(&pinned, true).await.unwrap());

    let data = seeded_bytes(3, 25_000_000);
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
    let partial = store
        .partial(&manifest, manifest.manifest_sha1())
        .await
        .unwrap();
    partial.write_chunk(1, &data[20_000_000..]).await.unwrap();

    let report = store.evict_if_needed().await.unwrap();
    assert_eq!(
        report,
        EvictionReport {
            n_evicted: 1,
            bytes_freed: 300,
            bytes_after: 300
        }
    );
    assert_eq!(store.blob_size(&cached).await.unwrap(), None);
    assert_eq!(store.blob_size(&pinned).await.unwrap(), Some(300));
    assert_eq!(partial.missing_chunks(), vec![0]);
    assert!(
        store
            .dir()
            .join("partial")
            .join(manifest.sha1.to_hex())
            .is_file()
    );

    // Unpinning makes it evictable.
    assert!(store.set_pinned(&pinned, false).await.unwrap());
    assert_eq!(store.evict_if_needed().await.unwrap().n_evicted, 1);
    assert_eq!(store.usage().await.unwrap().blobs, 0);
}

#[tokio::test]
async fn no_limit_means_no_eviction() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).await.unwrap();
    store
        .ingest_bytes(&seeded_bytes(1, 5000), false)
        .await
        .unwrap();
    assert_eq!(store.evict_if_needed().await.unwrap().n_evicted, 0);
}

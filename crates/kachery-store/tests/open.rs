//! Opening a store: the start-up sweep, reconciling the index with the files, and two
//! handles (as a daemon and a CLI process would hold) working on one directory.

mod common;

use common::{files_under, seeded_bytes, sha1sum};
use kachery_protocol::Sha1Hash;
use kachery_store::{Store, StoreOptions};

#[tokio::test]
async fn open_creates_the_layout_and_sweeps_tmp() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    drop(Store::open(&dir).await.unwrap());
    for sub in ["sha1", "partial", "tmp"] {
        assert!(dir.join(sub).is_dir(), "{sub}/ exists");
    }
    assert!(dir.join("index.sqlite").is_file());
    let store = Store::open(&dir).await.unwrap();
    assert!(
        dir.join("index.sqlite-wal").is_file(),
        "index runs in WAL mode"
    );
    drop(store);

    std::fs::write(dir.join("tmp/leftover.tmp"), b"half a blob").unwrap();
    std::fs::create_dir(dir.join("tmp/leftover-dir")).unwrap();
    let store = Store::open(&dir).await.unwrap();
    assert!(files_under(&dir.join("tmp")).is_empty());
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    assert_eq!(store.dir(), dir);
}

#[tokio::test]
async fn open_reconciles_the_index_with_the_files() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let (kept, lost, stray_bytes) = {
        let store = Store::open(&dir).await.unwrap();
        let kept = store.ingest_bytes(b"kept", true).await.unwrap().sha1;
        let lost = store.ingest_bytes(b"lost", true).await.unwrap().sha1;
        std::fs::remove_file(store.blob_path(&lost)).unwrap();

        // A blob that made it to sha1/ without a row, as after a crash.
        let stray_bytes = b"stray".to_vec();
        let stray_path = store.blob_path(&sha1sum(&stray_bytes));
        std::fs::create_dir_all(stray_path.parent().unwrap()).unwrap();
        std::fs::write(&stray_path, &stray_bytes).unwrap();
        (kept, lost, stray_bytes)
    };

    let store = Store::open_with(&dir, StoreOptions::default().with_max_cache_bytes(1))
        .await
        .unwrap();
    let usage = store.usage().await.unwrap();
    assert_eq!(
        (usage.blobs, usage.bytes),
        (2, 4 + 5),
        "kept + stray, not lost"
    );
    assert_eq!(store.blob_size(&lost).await.unwrap(), None);

    // The stray blob is indexed unpinned, so it is the one eviction may take.
    let report = store.evict_if_needed().await.unwrap();
    assert_eq!(report.n_evicted, 1);
    assert_eq!(store.blob_size(&sha1sum(&stray_bytes)).await.unwrap(), None);
    assert_eq!(store.blob_size(&kept).await.unwrap(), Some(4));
}

#[tokio::test]
async fn two_handles_share_one_store() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let daemon = Store::open(&dir).await.unwrap();

    // A write in progress in the first handle's tmp/ must survive the second handle opening.
    let in_progress = dir.join("tmp/in-progress.tmp");
    std::fs::write(&in_progress, b"still being written").unwrap();
    let cli = Store::open(&dir).await.unwrap();
    assert!(
        in_progress.exists(),
        "second opener does not sweep a store in use"
    );
    std::fs::remove_file(&in_progress).unwrap();

    let data_a = seeded_bytes(1, 5_000_000);
    let data_b = seeded_bytes(2, 5_000_000);
    let tasks_a = (0..4u64).map(|idx| {
        let daemon = daemon.clone();
        let bytes = [&data_a[..], &idx.to_le_bytes()].concat();
        tokio::spawn(async move { daemon.ingest_bytes(&bytes, false).await.unwrap().sha1 })
    });
    let tasks_b = (0..4u64).map(|idx| {
        let cli = cli.clone();
        let bytes = [&data_b[..], &idx.to_le_bytes()].concat();
        tokio::spawn(async move { cli.ingest_bytes(&bytes, true).await.unwrap().sha1 })
    });
    let mut hashes: Vec<Sha1Hash> = Vec::new();
    for task in tasks_a.chain(tasks_b).collect::<Vec<_>>() {
        hashes.push(task.await.unwrap());
    }

    for sha1 in &hashes {
        assert_eq!(daemon.blob_size(sha1).await.unwrap(), Some(5_000_008));
        assert_eq!(cli.blob_size(sha1).await.unwrap(), Some(5_000_008));
    }
    assert_eq!(daemon.usage().await.unwrap(), cli.usage().await.unwrap());
    assert_eq!(cli.usage().await.unwrap().blobs, 8);

    // The same content from both handles at once ends as one blob.
    let same = seeded_bytes(3, 1_000_000);
    let (from_daemon, from_cli) = tokio::join!(
        daemon.ingest_bytes(&same, false),
        cli.ingest_bytes(&same, true)
    );
    assert_eq!(from_daemon.unwrap().sha1, from_cli.unwrap().sha1);
    assert_eq!(cli.usage().await.unwrap().blobs, 9);
}

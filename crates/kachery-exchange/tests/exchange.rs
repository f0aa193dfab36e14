//! End-to-end file exchange between two nodes through a real embedded bucket.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use common::{Call, TestHub, TestNode, channel, roles, seeded_bytes};
use kachery_exchange::{LoadError, LoadProgress, Loaded};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::pubsub::{FailureReason, FileStatus, PubsubMessage};
use kachery_protocol::{FileUri, Role, Sha1Hash};
use tokio::sync::mpsc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// About 2.05 chunks: three chunks, the last one small.
const THREE_CHUNK_SIZE: usize = 41_000_000;

async fn provider_and_requester() -> (std::sync::Arc<TestHub>, TestNode, TestNode) {
    let hub = TestHub::start().await;
    let provider = hub
        .add_node(1, roles(&[Role::RequestFiles, Role::ProvideFiles]))
        .await;
    let requester = hub.add_node(2, roles(&[Role::RequestFiles])).await;
    (hub, provider, requester)
}

/// Stores `data` on `node` and returns the URI `kachery store` would print.
async fn store_on(node: &TestNode, data: &[u8]) -> FileUri {
    let ingested = node
        .store
        .ingest_bytes(data, true)
        .await
        .expect("ingest test data");
    FileUri::new(
        ingested.sha1,
        Some("data.bin"),
        ingested.manifest.map(|(sha1, _)| sha1),
    )
}

async fn load(node: &TestNode, uri: &FileUri) -> Result<Loaded, LoadError> {
    let (progress_tx, _progress_rx) = mpsc::channel::<LoadProgress>(64);
    node.exchange.load(uri, None, progress_tx).await
}

/// Chunk hashes a node asked about, in probes or requests.
fn chunk_hashes_asked(hub: &TestHub, node: &TestNode) -> BTreeSet<Sha1Hash> {
    let mut asked = BTreeSet::new();
    for call in hub.calls_by(node.node_id) {
        match call {
            Call::Published(_, PubsubMessage::RequestFile { file_key, .. })
                if file_key.chunk_of.is_some() =>
            {
                asked.insert(file_key.sha1);
            }
            Call::DownloadUrls(_, keys) => {
                for key in keys {
                    if let Ok((_, kachery_protocol::bucket_key::ObjectKind::Blob(sha1))) =
                        BucketKey::parse(key.as_str())
                    {
                        asked.insert(sha1);
                    }
                }
            }
            _ => {}
        }
    }
    asked
}

#[tokio::test]
async fn small_file_moves_from_provider_to_requester_then_hits_locally() -> TestResult {
    let (_hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(1, 300_000);
    let uri = store_on(&provider, &data).await;

    let loaded = load(&requester, &uri).await?;
    assert!(!loaded.local_hit);
    assert_eq!(loaded.size, data.len() as u64);
    assert_eq!(loaded.providers, vec![provider.node_id]);
    assert_eq!(std::fs::read(&loaded.path)?, data);

    let again = load(&requester, &uri).await?;
    assert!(again.local_hit);
    assert_eq!(again.bytes_downloaded, 0);
    assert_eq!(again.path, loaded.path);
    assert!(
        requester.exchange.transfers().is_empty(),
        "finished loads are no longer listed"
    );
    Ok(())
}

#[tokio::test]
async fn three_chunk_file_arrives_whole_and_progress_is_reported() -> TestResult {
    let (_hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(2, THREE_CHUNK_SIZE);
    let uri = store_on(&provider, &data).await;
    assert!(
        uri.manifest.is_some(),
        "a file over one chunk has a manifest"
    );

    let (progress_tx, mut progress_rx) = mpsc::channel::<LoadProgress>(1024);
    let loaded = requester.exchange.load(&uri, None, progress_tx).await?;

    assert_eq!(loaded.chunks_total, 3);
    assert_eq!(loaded.size, THREE_CHUNK_SIZE as u64);
    assert!(
        std::fs::read(&loaded.path)? == data,
        "loaded bytes differ from the original"
    );
    let mut last = None;
    while let Ok(progress) = progress_rx.try_recv() {
        last = Some(progress);
    }
    let last = last.expect("at least the final progress event");
    assert_eq!((last.chunks_done, last.chunks_total), (3, 3));
    assert_eq!(last.total, Some(THREE_CHUNK_SIZE as u64));
    Ok(())
}

#[tokio::test]
async fn uri_without_manifest_learns_it_from_the_provider() -> TestResult {
    let (_hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(3, 20_000_123);
    let uri = store_on(&provider, &data).await;
    let bare_uri = FileUri::new(uri.sha1, None, None);

    let loaded = load(&requester, &bare_uri).await?;

    assert_eq!(loaded.chunks_total, 2);
    assert!(
        std::fs::read(&loaded.path)? == data,
        "loaded bytes differ from the original"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_file_is_not_found_naming_the_channel() -> TestResult {
    let (_hub, _provider, requester) = provider_and_requester().await;
    let uri = FileUri::new(Sha1Hash::of(b"nobody has this"), None, None);

    let error = load(&requester, &uri)
        .await
        .expect_err("nobody holds the file");

    match &error {
        LoadError::NotFound { channels_tried, .. } => assert_eq!(channels_tried, &vec![channel()]),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(error.to_string().contains("lab.test"), "{error}");
    assert_eq!(error.exit_code(), 3);
    Ok(())
}

#[tokio::test]
async fn requester_without_request_role_is_denied() -> TestResult {
    let hub = TestHub::start().await;
    let provider = hub.add_node(1, roles(&[Role::ProvideFiles])).await;
    let feeds_only = hub.add_node(2, roles(&[Role::RequestFeeds])).await;
    let uri = store_on(&provider, b"a file only a provider holds").await;

    let error = load(&feeds_only, &uri)
        .await
        .expect_err("no channel grants requestFiles");

    assert!(
        matches!(&error, LoadError::Denied { missing_role: Role::RequestFiles, channels } if channels == &vec![channel()]),
        "{error:?}"
    );
    assert_eq!(error.exit_code(), 4);
    let published = hub
        .calls_by(feeds_only.node_id)
        .into_iter()
        .filter(|call| matches!(call, Call::Published(..)));
    assert_eq!(published.count(), 0, "a denied node publishes nothing");
    Ok(())
}

/// Writes `bytes` as the committed bucket object for `sha1`, bypassing upload checks.
fn plant_object(hub: &TestHub, sha1: &Sha1Hash, bytes: &[u8]) -> BucketKey {
    let key = BucketKey::blob(&channel(), sha1);
    let path = hub.bucket.object_path(&key);
    std::fs::create_dir_all(path.parent().expect("object paths have a parent"))
        .expect("create object dir");
    std::fs::write(&path, bytes).expect("plant object");
    key
}

#[tokio::test]
async fn corrupt_bucket_object_is_reported_and_replaced_by_a_provider_upload() -> TestResult {
    let (hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(4, 50_000);
    let uri = store_on(&provider, &data).await;
    let mut corrupt = data.clone();
    corrupt[100] ^= 0xff;
    let key = plant_object(&hub, &uri.sha1, &corrupt);

    let loaded = load(&requester, &uri).await?;

    assert_eq!(*hub.corrupt_reports.lock().unwrap(), vec![key]);
    assert_eq!(std::fs::read(&loaded.path)?, data);
    Ok(())
}

#[tokio::test]
async fn corrupt_object_the_hub_keeps_ends_in_integrity_error_and_nothing_stored() -> TestResult {
    let (hub, provider, requester) = provider_and_requester().await;
    hub.delete_on_report.store(false, Ordering::SeqCst);
    let data = seeded_bytes(5, 50_000);
    let uri = store_on(&provider, &data).await;
    let mut corrupt = data.clone();
    corrupt[0] ^= 0x01;
    let key = plant_object(&hub, &uri.sha1, &corrupt);

    let error = load(&requester, &uri)
        .await
        .expect_err("the bucket keeps serving bad bytes");

    assert!(
        matches!(&error, LoadError::Integrity { uri: named, .. } if *named == uri),
        "{error:?}"
    );
    assert!(error.to_string().contains(&uri.sha1.to_string()), "{error}");
    assert_eq!(error.exit_code(), 5);
    assert_eq!(*hub.corrupt_reports.lock().unwrap(), vec![key.clone(), key]);
    assert_eq!(
        requester.store.blob_size(&uri.sha1).await?,
        None,
        "unverified bytes were stored"
    );
    Ok(())
}

#[tokio::test]
async fn partial_download_fetches_only_the_missing_chunks() -> TestResult {
    let (hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(6, THREE_CHUNK_SIZE);
    let ingested = provider.store.ingest_bytes(&data, true).await?;
    let (manifest_sha1, manifest) = ingested
        .manifest
        .clone()
        .expect("three chunks have a manifest");
    let uri = FileUri::new(ingested.sha1, None, Some(manifest_sha1));

    // The requester already holds the manifest and chunks 0 and 2, as after a killed load.
    requester
        .store
        .ingest_bytes(&manifest.to_bytes(), false)
        .await?;
    let partial = requester.store.partial(&manifest, manifest_sha1).await?;
    for idx in [0, 2] {
        let chunk = manifest.chunks[idx];
        partial
            .write_chunk(idx, &data[chunk.start as usize..chunk.end as usize])
            .await?;
    }
    drop(partial);

    let loaded = load(&requester, &uri).await?;

    assert!(
        std::fs::read(&loaded.path)? == data,
        "loaded bytes differ from the original"
    );
    let asked = chunk_hashes_asked(&hub, &requester);
    assert_eq!(asked, BTreeSet::from([manifest.chunks[1].sha1]));
    Ok(())
}

#[tokio::test]
async fn provider_with_a_corrupt_local_blob_uploads_nothing_and_drops_it() -> TestResult {
    let (hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(7, 80_000);
    let uri = store_on(&provider, &data).await;
    let blob_path = provider.store.blob_path(&uri.sha1);
    let mut on_disk = std::fs::read(&blob_path)?;
    on_disk[79_999] ^= 0x80;
    let mut permissions = std::fs::metadata(&blob_path)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&blob_path, permissions)?;
    std::fs::write(&blob_path, &on_disk)?;

    let error = load(&requester, &uri)
        .await
        .expect_err("the only copy is corrupt");

    assert!(
        matches!(&error, LoadError::Timeout { attempts: 1, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("local_corrupt"), "{error}");
    assert_eq!(
        provider.store.blob_size(&uri.sha1).await?,
        None,
        "the corrupt blob stays in the store"
    );
    let key = BucketKey::blob(&channel(), &uri.sha1);
    assert!(
        !hub.bucket.object_path(&key).exists(),
        "corrupt bytes reached the bucket"
    );
    assert_eq!(requester.store.blob_size(&uri.sha1).await?, None);
    Ok(())
}

#[tokio::test]
async fn concurrent_loads_of_one_chunked_file_both_succeed() -> TestResult {
    let (_hub, provider, requester) = provider_and_requester().await;
    let data = seeded_bytes(8, 20_000_123);
    let uri = store_on(&provider, &data).await;

    let (first, second) = tokio::join!(load(&requester, &uri), load(&requester, &uri));
    let (first, second) = (first?, second?);

    assert_eq!(first.path, second.path);
    assert!(
        first.local_hit != second.local_hit,
        "exactly one load should move the bytes"
    );
    assert!(
        std::fs::read(&first.path)? == data,
        "loaded bytes differ from the original"
    );
    Ok(())
}

#[tokio::test]
async fn a_provider_shutting_down_tells_the_requester_of_its_running_upload() -> TestResult {
    let (hub, provider, requester) = provider_and_requester().await;
    let uri = store_on(&provider, &seeded_bytes(9, THREE_CHUNK_SIZE)).await;
    let loading = {
        let exchange = requester.exchange.clone();
        let uri = uri.clone();
        tokio::spawn(async move {
            let (progress_tx, _progress_rx) = mpsc::channel::<LoadProgress>(64);
            exchange.load(&uri, None, progress_tx).await
        })
    };

    // Catch the provider while one of its uploads runs, as a daemon stopping would.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut announced = 0;
    while announced == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no upload ever ran");
        announced = provider.exchange.announce_shutdown().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }

    let told = hub.calls_by(provider.node_id).into_iter().any(|call| {
        matches!(
            call,
            Call::Published(
                _,
                PubsubMessage::FileStatus {
                    status: FileStatus::Failed {
                        reason: FailureReason::ShuttingDown,
                        ..
                    },
                    ..
                }
            )
        )
    });
    assert!(told, "no failed{{shutting_down}} was published");
    // The provider is still up here, so the requester's next round succeeds.
    let loaded = tokio::time::timeout(std::time::Duration::from_secs(60), loading).await???;
    assert_eq!(loaded.sha1, uri.sha1);
    Ok(())
}

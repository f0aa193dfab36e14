//! GET and HEAD through presigned URLs, the backend's own reads, and reopening a bucket.

mod common;

use common::{TestBucket, blob_key, with_path_of};
use kachery_bucket::{
    BucketBackend, BucketError, EmbeddedBucket, EmbeddedBucketOptions, ReadMethod,
};
use kachery_protocol::api_error::{ErrorBody, ErrorCode};

async fn assert_error(response: reqwest::Response, status: u16, code: ErrorCode) {
    assert_eq!(response.status(), status);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error.code, code);
}

#[tokio::test]
async fn head_gives_the_size_without_a_body() {
    let test = TestBucket::start().await;
    let data = vec![1u8; 12_345];
    let key = blob_key(&data);
    test.upload(&key, &data).await;

    let head = test.presign_read(&key, ReadMethod::Head);
    assert_eq!(head.method, "HEAD");
    let response = test.send(&head, Vec::new()).await;

    assert_eq!(response.status(), 200);
    // reqwest's content_length() reports the (empty) body of a HEAD reply; read the header.
    let length = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .unwrap();
    assert_eq!(length.to_str().unwrap(), "12345");
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn absent_object_is_not_found() {
    let test = TestBucket::start().await;
    let key = blob_key(b"never uploaded");

    for method in [ReadMethod::Get, ReadMethod::Head] {
        let response = test
            .send(&test.presign_read(&key, method), Vec::new())
            .await;
        assert_eq!(response.status(), 404);
    }
    let get = test.presign_read(&key, ReadMethod::Get);
    assert_error(test.send(&get, Vec::new()).await, 404, ErrorCode::NotFound).await;
}

#[tokio::test]
async fn reads_need_a_url_signed_for_that_method_and_key() {
    let test = TestBucket::start().await;
    let key = blob_key(b"secret");
    test.upload(&key, b"secret").await;
    let other_key = blob_key(b"other");
    test.upload(&other_key, b"other").await;

    let head = test.presign_read(&key, ReadMethod::Head);
    let response = test.client.get(&head.url).send().await.unwrap();
    assert_error(response, 403, ErrorCode::InvalidSignature).await;

    let put = test.presign_put(&key, 6);
    let response = test.client.get(&put.url).send().await.unwrap();
    assert_error(response, 403, ErrorCode::InvalidSignature).await;

    let get = test.presign_read(&key, ReadMethod::Get);
    let url = with_path_of(&get.url, &test.base_url, &other_key);
    let response = test.client.get(&url).send().await.unwrap();
    assert_error(response, 403, ErrorCode::InvalidSignature).await;

    assert_eq!(test.bucket.public_url(&key), None);
    let unsigned = format!("{}/bucket/{key}", test.base_url);
    let response = test.client.get(&unsigned).send().await.unwrap();
    assert_error(response, 403, ErrorCode::InvalidSignature).await;

    let expired = test
        .bucket
        .presign_get(&key, ReadMethod::Get, common::now_ms() - 1)
        .unwrap();
    let response = test.client.get(&expired.url).send().await.unwrap();
    assert_error(response, 403, ErrorCode::UrlExpired).await;
}

#[tokio::test]
async fn public_read_serves_without_a_signature_but_uploads_still_need_one() {
    let options = EmbeddedBucketOptions {
        public_read: true,
        ..Default::default()
    };
    let test = TestBucket::start_with(options).await;
    let key = blob_key(b"open data");
    test.upload(&key, b"open data").await;

    let public_url = test.bucket.public_url(&key).unwrap();
    let response = test.client.get(&public_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"open data");

    let other = blob_key(b"sneaky");
    let url = test.bucket.public_url(&other).unwrap();
    let response = test.put_raw(&url, b"sneaky".to_vec()).await;
    test.assert_refused(response, 403, ErrorCode::InvalidSignature, &other)
        .await;
}

#[tokio::test]
async fn backend_head_get_and_delete() {
    let test = TestBucket::start().await;
    let key = blob_key(b"hub side");
    assert_eq!(test.bucket.head(&key).await.unwrap(), None);
    assert_eq!(test.bucket.get(&key, 100).await.unwrap(), None);
    assert!(!test.bucket.delete(&key).await.unwrap());

    test.upload(&key, b"hub side").await;

    assert_eq!(test.bucket.head(&key).await.unwrap(), Some(8));
    assert_eq!(
        test.bucket.get(&key, 8).await.unwrap().as_deref(),
        Some(&b"hub side"[..])
    );
    assert!(matches!(
        test.bucket.get(&key, 7).await,
        Err(BucketError::ObjectTooLarge {
            size: 8,
            max_bytes: 7,
            ..
        })
    ));
    assert!(test.bucket.delete(&key).await.unwrap());
    assert!(!test.is_visible(&key));
    assert_eq!(test.bucket.stored_bytes("lab.one"), 0);
}

#[tokio::test]
async fn planted_corrupt_object_is_served_as_is_for_readers_to_verify() {
    let test = TestBucket::start().await;
    let key = blob_key(b"original");
    let path = test.bucket.object_path(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"corrupted").unwrap();

    let get = test.presign_read(&key, ReadMethod::Get);
    let response = test.send(&get, Vec::new()).await;

    assert_eq!(response.bytes().await.unwrap().as_ref(), b"corrupted");
}

#[tokio::test]
async fn reopening_counts_stored_bytes_and_empties_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    let open = || {
        let options = EmbeddedBucketOptions::default();
        EmbeddedBucket::open(
            root.clone(),
            [1; 32],
            "http://127.0.0.1:1/bucket".into(),
            options,
        )
    };
    let bucket = open().await.unwrap();
    let key = blob_key(b"persisted");
    let path = bucket.object_path(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"persisted").unwrap();
    std::fs::write(root.join("tmp/upload-0"), b"left over").unwrap();
    drop(bucket);

    let bucket = open().await.unwrap();

    assert_eq!(bucket.stored_bytes("lab.one"), 9);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert_eq!(bucket.kind(), "embedded");
}

#[tokio::test]
async fn public_base_must_be_an_http_url() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedBucketOptions::default();
    let result = EmbeddedBucket::open(dir.path().into(), [1; 32], "bucket".into(), options).await;
    assert!(matches!(result, Err(BucketError::InvalidPublicBase(_))));
}

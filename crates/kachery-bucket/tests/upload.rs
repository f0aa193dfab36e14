//! PUT through presigned URLs: accepted uploads, and every refusal leaving nothing behind.

mod common;

use common::{TestBucket, blob_key, head_key, segment_key, with_path_of};
use kachery_bucket::{BucketBackend, EmbeddedBucketOptions, ReadMethod};
use kachery_protocol::api_error::ErrorCode;

#[tokio::test]
async fn put_then_get_round_trip() {
    let test = TestBucket::start().await;
    let data = b"hello, bucket".to_vec();
    let key = blob_key(&data);

    test.upload(&key, &data).await;

    let get = test.presign_read(&key, ReadMethod::Get);
    let response = test.send(&get, Vec::new()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(data.len() as u64));
    assert_eq!(response.bytes().await.unwrap().to_vec(), data);
    assert_eq!(test.bucket.stored_bytes("lab.one"), data.len() as u64);
    assert!(test.tmp_entries().is_empty());
}

#[tokio::test]
async fn empty_blob_round_trip() {
    let test = TestBucket::start().await;
    let key = blob_key(b"");

    test.upload(&key, b"").await;

    let get = test.presign_read(&key, ReadMethod::Get);
    let response = test.send(&get, Vec::new()).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn accepts_a_full_chunk_despite_the_default_body_limit() {
    let test = TestBucket::start().await;
    let data: Vec<u8> = (0..20_000_000u32)
        .map(|index| (index % 251) as u8)
        .collect();
    let key = blob_key(&data);

    test.upload(&key, &data).await;

    assert_eq!(std::fs::read(test.bucket.object_path(&key)).unwrap(), data);
}

#[tokio::test]
async fn wrong_bytes_of_the_right_size_are_a_hash_mismatch() {
    let test = TestBucket::start().await;
    let key = blob_key(b"expected");
    let request = test.presign_put(&key, 8);

    let response = test.send(&request, b"imposter".to_vec()).await;

    test.assert_refused(response, 422, ErrorCode::HashMismatch, &key)
        .await;
}

#[tokio::test]
async fn shorter_body_than_signed_is_a_size_mismatch() {
    let test = TestBucket::start().await;
    let data = b"0123456789";
    let key = blob_key(data);
    let request = test.presign_put(&key, data.len() as u64);

    let response = test.put_raw(&request.url, data[..9].to_vec()).await;

    test.assert_refused(response, 422, ErrorCode::SizeMismatch, &key)
        .await;
}

#[tokio::test]
async fn longer_body_than_signed_is_too_large() {
    let test = TestBucket::start().await;
    let data = b"0123456789";
    let key = blob_key(data);
    let request = test.presign_put(&key, data.len() as u64);

    let response = test.put_raw(&request.url, b"0123456789!".to_vec()).await;

    test.assert_refused(response, 413, ErrorCode::PayloadTooLarge, &key)
        .await;
}

#[tokio::test]
async fn chunked_body_without_content_length_is_refused() {
    let test = TestBucket::start().await;
    let data = b"streamed".to_vec();
    let key = blob_key(&data);
    let request = test.presign_put(&key, data.len() as u64);

    let frames = futures_util::stream::iter([Ok::<_, std::io::Error>(data)]);
    let response = test
        .client
        .put(&request.url)
        .body(reqwest::Body::wrap_stream(frames))
        .send()
        .await
        .unwrap();

    test.assert_refused(response, 411, ErrorCode::LengthRequired, &key)
        .await;
}

#[tokio::test]
async fn expired_url_is_refused() {
    let test = TestBucket::start().await;
    let data = b"late".to_vec();
    let key = blob_key(&data);
    let request = test
        .bucket
        .presign_put(&key, 4, common::now_ms() - 1)
        .unwrap();

    let response = test.send(&request, data).await;

    test.assert_refused(response, 403, ErrorCode::UrlExpired, &key)
        .await;
}

#[tokio::test]
async fn query_reused_on_another_key_is_refused() {
    let test = TestBucket::start().await;
    let signed_key = blob_key(b"aaaa");
    let other_key = blob_key(b"bbbb");
    let request = test.presign_put(&signed_key, 4);

    let url = with_path_of(&request.url, &test.base_url, &other_key);
    let response = test.put_raw(&url, b"bbbb".to_vec()).await;

    test.assert_refused(response, 403, ErrorCode::InvalidSignature, &other_key)
        .await;
}

#[tokio::test]
async fn tampered_signature_is_refused() {
    let test = TestBucket::start().await;
    let data = b"payload".to_vec();
    let key = blob_key(&data);
    let mut request = test.presign_put(&key, data.len() as u64);
    let last = request.url.pop().unwrap();
    request.url.push(if last == '0' { '1' } else { '0' });

    let response = test.send(&request, data).await;

    test.assert_refused(response, 403, ErrorCode::InvalidSignature, &key)
        .await;
}

#[tokio::test]
async fn read_url_cannot_upload() {
    let test = TestBucket::start().await;
    let data = b"payload".to_vec();
    let key = blob_key(&data);
    let get = test.presign_read(&key, ReadMethod::Get);

    let response = test.put_raw(&get.url, data).await;

    test.assert_refused(response, 403, ErrorCode::InvalidSignature, &key)
        .await;
}

#[tokio::test]
async fn malformed_key_is_a_bad_request() {
    let test = TestBucket::start().await;
    let url = format!(
        "{}/bucket/lab.one/other/abc?exp=1&size=1&sig=00",
        test.base_url
    );

    let response = test.put_raw(&url, b"x".to_vec()).await;

    assert_eq!(response.status(), 400);
    assert!(test.tmp_entries().is_empty());
}

#[tokio::test]
async fn body_cut_off_mid_upload_leaves_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let test = TestBucket::start().await;
    let data = vec![7u8; 100_000];
    let key = blob_key(&data);
    let request = test.presign_put(&key, data.len() as u64);
    let path_and_query = request.url.strip_prefix(&test.base_url).unwrap();

    let addr = test.base_url.strip_prefix("http://").unwrap();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path_and_query} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
        data.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&data[..50_000]).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut reply = Vec::new();
    let _ = socket.read_to_end(&mut reply).await;

    // The server may close before its handler has dropped the temporary file.
    for _ in 0..200 {
        if test.tmp_entries().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(test.tmp_entries().is_empty());
    assert!(!test.is_visible(&key));
    assert_eq!(test.bucket.stored_bytes("lab.one"), 0);
}

#[tokio::test]
async fn second_put_of_a_create_only_key_succeeds_and_changes_nothing() {
    let test = TestBucket::start().await;
    let key = segment_key(0);
    test.upload(&key, b"first").await;

    test.upload(&key, b"other").await;

    assert_eq!(
        std::fs::read(test.bucket.object_path(&key)).unwrap(),
        b"first"
    );
    assert_eq!(test.bucket.stored_bytes("lab.one"), 5);
    assert!(test.tmp_entries().is_empty());

    let blob = blob_key(b"same blob");
    test.upload(&blob, b"same blob").await;
    test.upload(&blob, b"same blob").await;
    assert_eq!(test.bucket.stored_bytes("lab.one"), 5 + 9);
}

#[tokio::test]
async fn feed_head_is_replaced() {
    let test = TestBucket::start().await;
    let key = head_key();
    test.upload(&key, b"head v1").await;

    test.upload(&key, b"head v2 longer").await;

    assert_eq!(
        std::fs::read(test.bucket.object_path(&key)).unwrap(),
        b"head v2 longer"
    );
    assert_eq!(test.bucket.stored_bytes("lab.one"), 14);
}

#[tokio::test]
async fn quota_exceeded_is_insufficient_storage() {
    let options = EmbeddedBucketOptions {
        quota_bytes_per_channel: 12,
        ..Default::default()
    };
    let test = TestBucket::start_with(options).await;
    let first = blob_key(b"12345678");
    test.upload(&first, b"12345678").await;

    let second = blob_key(b"abcdefgh");
    let request = test.presign_put(&second, 8);
    let response = test.send(&request, b"abcdefgh".to_vec()).await;
    test.assert_refused(response, 507, ErrorCode::InsufficientStorage, &second)
        .await;

    assert!(test.bucket.delete(&first).await.unwrap());
    test.upload(&second, b"abcdefgh").await;
}

//! Serves an embedded bucket on 127.0.0.1 and prints curl commands that upload and
//! download one file through presigned URLs; for measuring throughput by hand.
//!
//! `cargo run -p kachery-bucket --example serve_embedded_bucket -- FILE [DATA_DIR]`

use std::time::{SystemTime, UNIX_EPOCH};

use kachery_bucket::{BucketBackend, EmbeddedBucket, EmbeddedBucketOptions, ReadMethod};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::PresignedRequest;
use kachery_protocol::{ChannelName, Sha1Hash};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .expect("usage: serve_embedded_bucket FILE [DATA_DIR]");
    let data_dir = args
        .next()
        .map_or_else(std::env::temp_dir, Into::into)
        .join("bench-bucket");

    let bytes = std::fs::read(&file).expect("the file to upload is readable");
    let key = BucketKey::blob(
        &ChannelName::parse("bench").expect("valid"),
        &Sha1Hash::of(&bytes),
    );
    drop(bytes);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("can bind");
    let base = format!("http://{}/bucket", listener.local_addr().expect("bound"));
    let options = EmbeddedBucketOptions {
        quota_bytes_per_channel: u64::MAX,
        public_read: false,
    };
    let bucket = EmbeddedBucket::open(data_dir, [42; 32], base, options)
        .await
        .expect("bucket opens");

    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
        + 3_600_000;
    let size = std::fs::metadata(&file).expect("file exists").len();
    let put = bucket.presign_put(&key, size, expires).expect("presigns");
    let get = bucket
        .presign_get(&key, ReadMethod::Get, expires)
        .expect("presigns");
    println!("{}", curl(&put, &format!("-T {file}")));
    println!("{}", curl(&get, "-o /dev/null"));
    println!("object path: {}", bucket.object_path(&key).display());

    axum::serve(listener, bucket.router())
        .await
        .expect("server runs");
}

fn curl(request: &PresignedRequest, extra: &str) -> String {
    let headers: String = request
        .headers
        .iter()
        .map(|(name, value)| format!(" -H '{name}: {value}'"))
        .collect();
    let method = if request.method == "PUT" {
        String::new()
    } else {
        format!(" -X {}", request.method)
    };
    format!(
        "curl -sS -w '%{{http_code}} %{{speed_upload}} %{{speed_download}}\\n'{method}{headers} {extra} '{}'",
        request.url
    )
}

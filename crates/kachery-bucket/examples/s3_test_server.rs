//! Runs a signature-checking S3 server (s3s-fs) on loopback until interrupted; used by
//! `scripts/demo-engines.sh`. Dev only: one key, plain HTTP.
//!
//! `cargo run -p kachery-bucket --features s3-test-server --example s3_test_server -- \
//!     ROOT_DIR PORT BUCKET ACCESS_KEY` with the secret key in `KACHERY_S3_TEST_SECRET`.
//! Prints `endpoint <url>` once it listens.

use std::net::SocketAddr;

use kachery_bucket::s3_test_server::S3TestServer;

#[tokio::main]
async fn main() {
    let usage = "usage: s3_test_server ROOT_DIR PORT BUCKET ACCESS_KEY \
                 (secret key in KACHERY_S3_TEST_SECRET)";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, port, bucket, access_key] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(secret_key) = std::env::var("KACHERY_S3_TEST_SECRET") else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("PORT must be a number: {usage}");
        std::process::exit(2);
    };

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let server = S3TestServer::spawn(
        root.into(),
        addr,
        &[bucket.as_str()],
        access_key,
        &secret_key,
    )
    .await
    .unwrap_or_else(|error| {
        eprintln!("s3_test_server: {error}");
        std::process::exit(1);
    });
    println!("endpoint {}", server.endpoint);
    let _ = tokio::signal::ctrl_c().await;
}

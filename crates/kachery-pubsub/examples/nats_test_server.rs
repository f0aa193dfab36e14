//! A throwaway `nats-server` in operator (JWT) mode for `scripts/demo-engines.sh`: prints
//! `url …`, `account …` and `seed …` lines on stdout, then serves until SIGTERM or Ctrl-C,
//! when it stops the server and removes its directory. The seed is the account signing key
//! a channel owner would give the hub; it is made fresh per run and dies with the server.

use kachery_pubsub::nats::test_server::NatsTestServer;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let server = NatsTestServer::start();
    println!("url {}", server.url);
    println!("account {}", server.account);
    println!("seed {}", server.signing_seed);

    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(server);
    Ok(())
}

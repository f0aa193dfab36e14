//! Rows 5b-nats and 5c-nats: the pub-sub rows of row 5 on a channel whose broker is a
//! `nats-server` in JWT mode instead of the hub's embedded broker.
//!
//! The server is started by this process (`kachery_pubsub::nats::test_server`, the same
//! helper the tests use), the channel is created on the benchmark hub with the server's
//! account and signing seed, and every identity gets its user JWT from the hub through
//! getPubsubCredential, exactly as a node daemon does. The client is the node's, with
//! its batching; only the driver under it differs. Baseline: the same NATS path with
//! `flush_delay` zero.

use std::time::Duration;

use anyhow::Context as _;
use kachery_protocol::{Band, ChannelName};
use kachery_pubsub::nats::NatsUserKey;
use kachery_pubsub::nats::test_server::NatsTestServer;
use kachery_pubsub::{ClientOptions, PubsubConnection};

use crate::cluster::{Identity, admit};
use crate::measure::{load_average, ms_text};
use crate::report::{Report, Row};
use crate::rows::Network;
use crate::rows::latency::{
    N_MESSAGES, QUIET_SPACING, Runs, UNBATCHED_SPACING, one_way, p50_p99, pct,
};

pub async fn run(repeats: usize, net: &Network, report: &mut Report) -> anyhow::Result<()> {
    let server = NatsTestServer::start();
    let alice = &net.alice;
    let request = serde_json::json!({
        "name": "bench.latency-nats",
        "pubsub": {
            "backend": "nats",
            "nats": { "servers": [server.url], "account": server.account },
        },
        "secrets": { "natsAccountSeed": server.signing_seed },
    });
    let request = serde_json::from_value(request).context("a NATS channel request")?;
    alice
        .api
        .create_channel(&request)
        .await
        .context("failed to create the NATS channel")?;
    let channel = ChannelName::parse("bench.latency-nats")?;

    let sender = Identity::register(&net.hub.url, alice, "bench-nats-sender").await?;
    let unbatched = Identity::register(&net.hub.url, alice, "bench-nats-unbatched").await?;
    let listener = Identity::register(&net.hub.url, alice, "bench-nats-listener").await?;
    admit(alice, alice, &sender.node_id, &channel, "requestFiles").await?;
    admit(alice, alice, &unbatched.node_id, &channel, "requestFiles").await?;
    admit(alice, alice, &listener.node_id, &channel, "provideFiles").await?;

    let mut listener_conn = connect(&listener, &channel, ClientOptions::default()).await?;
    listener_conn.subscribe(Band::RequestFiles).await?;
    listener_conn.publisher().flush().await?;
    let batched = connect(&sender, &channel, ClientOptions::default()).await?;
    let zero_delay = ClientOptions {
        flush_delay: Duration::ZERO,
        ..ClientOptions::default()
    };
    let unbatched_conn = connect(&unbatched, &channel, zero_delay).await?;

    let (mut quiet, mut busy, mut zero) = (Runs::new(), Runs::new(), Runs::new());
    let mut loads = Vec::new();
    for repeat in 0..repeats {
        loads.push(load_average());
        for setting in 0..3 {
            let listener = &mut listener_conn;
            match (setting + repeat) % 3 {
                0 => quiet
                    .push(one_way(&batched, &sender.key, listener, &channel, QUIET_SPACING).await?),
                1 => busy.push(
                    one_way(&batched, &sender.key, listener, &channel, Duration::ZERO).await?,
                ),
                _ => zero.push(
                    one_way(
                        &unbatched_conn,
                        &unbatched.key,
                        listener,
                        &channel,
                        UNBATCHED_SPACING,
                    )
                    .await?,
                ),
            }
        }
    }

    let zero_p50 = pct(&zero, 50.0);
    let zero_text = format!("same NATS path with `flush_delay` 0: {}", p50_p99(&zero));
    report.rows.push(Row {
        id: "5b-nats".into(),
        what: format!(
            "as 5b on a NATS channel (nats-server in JWT mode, user JWT from the hub), quiet \
             band (p50 / p99 of {N_MESSAGES} per repeat)"
        ),
        kachery: p50_p99(&quiet),
        baseline: zero_text.clone(),
        ratio: pct(&quiet, 50.0) / zero_p50,
        bottleneck: "NATS hop (TCP, JSON batch); no batching wait on a quiet band".into(),
        loads: loads.clone(),
    });
    report.rows.push(Row {
        id: "5c-nats".into(),
        what: format!(
            "as 5c on the NATS channel: each message published as soon as the previous one \
             arrived (p50 / p99 of {N_MESSAGES} per repeat)"
        ),
        kachery: p50_p99(&busy),
        baseline: zero_text,
        ratio: pct(&busy, 50.0) / zero_p50,
        bottleneck: format!(
            "batching delay (a band sends at most one frame per window), as on the embedded \
             broker; zero-delay floor {}",
            ms_text(zero_p50)
        ),
        loads,
    });
    Ok(())
}

/// Connects `identity` the way a node's link does on a NATS channel: a fresh user nkey,
/// its public half in getPubsubCredential.
async fn connect(
    identity: &Identity,
    channel: &ChannelName,
    options: ClientOptions,
) -> anyhow::Result<PubsubConnection> {
    let user_key = NatsUserKey::generate();
    let credential = identity
        .api
        .pubsub_credential_for(channel, Some(user_key.public_key()))
        .await
        .context("getPubsubCredential on the NATS channel")?;
    let options = ClientOptions {
        nats_user_key: Some(user_key),
        ..options
    };
    let (connection, _ready) = PubsubConnection::open(&credential.credential, options)
        .await
        .context("failed to connect to nats-server")?;
    Ok(connection)
}

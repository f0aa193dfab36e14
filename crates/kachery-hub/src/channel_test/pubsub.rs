//! The pub-sub half of the channel test: two throw-away identities get `probe`-band
//! credentials, one publishes a signed probe and the other must receive it within 5 s.
//!
//! The probe band is never granted to nodes (SPEC §6.1), so the test cannot disturb a
//! channel's traffic. The identities' keys live only for the test.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kachery_protocol::hub_views::TestReport;
use kachery_protocol::pubsub::{PubsubBody, PubsubEnvelope, PubsubMessage, check_received};
use kachery_protocol::roles::Capability;
use kachery_protocol::{Band, Email, Nonce, signing};
use kachery_pubsub::nats::NatsUserKey;
use kachery_pubsub::{ClientOptions, CredentialRequest, Incoming, PubsubConnection};

use super::{StepOutcome, Steps};
use crate::app::AppState;
use crate::db::ChannelRecord;
use crate::error::error_chain;
use crate::pubsub_backends;
use crate::time::now_ms;

/// How long the probe may take to arrive (SPEC §10.2).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The probe is sent again this often until it arrives, since the subscription of the
/// other connection may still be on its way to the broker.
const REPUBLISH_INTERVAL: Duration = Duration::from_millis(250);

pub async fn run(state: &AppState, channel: &ChannelRecord, tester: &Email) -> TestReport {
    let mut steps = Steps::default();

    let started = Instant::now();
    let identities = (throwaway_key(), throwaway_key());
    let (Ok(sender_key), Ok(receiver_key)) = identities else {
        steps.record(
            "credential",
            started,
            StepOutcome::Failed("no randomness".into()),
        );
        return steps.report();
    };
    let capability = Capability {
        publish: vec![Band::Probe],
        subscribe: vec![Band::Probe],
    };
    // Each identity holds its own NATS user key, as a node's link does; other brokers
    // ignore it.
    let user_keys = (NatsUserKey::generate(), NatsUserKey::generate());
    let mut credentials = Vec::new();
    for (key, user_key) in [(&sender_key, &user_keys.0), (&receiver_key, &user_keys.1)] {
        let node_id = signing::node_id_of(key);
        let user_public_key = user_key.public_key();
        let request = CredentialRequest {
            node_id: &node_id,
            owner: tester,
            channel: &channel.name,
            capability: &capability,
            now_ms: now_ms(),
            nats_user_key: Some(&user_public_key),
        };
        let issued = match pubsub_backends::issue(state, channel, &request).await {
            Some(issued) => issued.map_err(|error| error.message),
            None => Err(format!(
                "pub-sub backend {:?} is not run by this hub",
                channel.pubsub_backend
            )),
        };
        match issued {
            Ok(issued) => credentials.push(issued.credential),
            Err(error) => {
                steps.record("credential", started, StepOutcome::Failed(error));
                return steps.report();
            }
        }
    }
    steps.record("credential", started, StepOutcome::Ok);

    let started = Instant::now();
    let options = ClientOptions {
        flush_delay: Duration::from_millis(5),
        ..ClientOptions::default()
    };
    let with_key = |user_key: &NatsUserKey| ClientOptions {
        nats_user_key: Some(user_key.clone()),
        ..options.clone()
    };
    let sender = PubsubConnection::open(&credentials[0], with_key(&user_keys.0)).await;
    let receiver = PubsubConnection::open(&credentials[1], with_key(&user_keys.1)).await;
    let (sender, mut receiver) = match (sender, receiver) {
        (Ok((sender, _)), Ok((receiver, _))) => (sender, receiver),
        (Err(error), _) | (_, Err(error)) => {
            steps.record("connect", started, StepOutcome::Failed(error_chain(&error)));
            return steps.report();
        }
    };
    let subscribed = receiver.subscribe(Band::Probe).await;
    if !steps.record("connect", started, subscribed.into()) {
        return steps.report();
    }

    let started = Instant::now();
    let Ok(probe_id) = random_nonce() else {
        steps.record(
            "publish",
            started,
            StepOutcome::Failed("no randomness".into()),
        );
        return steps.report();
    };
    let outcome = round_trip(&sender, &mut receiver, &sender_key, channel, probe_id).await;
    steps.record("publish and receive", started, outcome);
    steps.report()
}

/// Publishes the probe until the receiver hears it, at most [`RECEIVE_TIMEOUT`].
async fn round_trip(
    sender: &PubsubConnection,
    receiver: &mut PubsubConnection,
    key: &SigningKey,
    channel: &ChannelRecord,
    probe_id: Nonce,
) -> StepOutcome {
    let deadline = tokio::time::Instant::now() + RECEIVE_TIMEOUT;
    let publisher = sender.publisher();
    let mut next_publish = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_publish {
            let Ok(nonce) = random_nonce() else {
                return StepOutcome::Failed("no randomness".into());
            };
            let body = PubsubBody {
                channel: channel.name.clone(),
                timestamp: now_ms(),
                nonce,
                message: PubsubMessage::Probe { probe_id },
            };
            let envelope = PubsubEnvelope::seal(key, &body);
            if let Err(error) = publisher.publish(Band::Probe, envelope).await {
                return StepOutcome::Failed(error_chain(&error));
            }
            next_publish += REPUBLISH_INTERVAL;
        }

        let wake = next_publish.min(deadline);
        let incoming = tokio::time::timeout_at(wake, receiver.incoming().recv()).await;
        match incoming {
            Ok(Some(Incoming::Message { band, envelope })) => {
                let checked =
                    check_received(&envelope, band, &channel.name, now_ms(), |_, _| false);
                match checked {
                    Ok(body) if body.message == (PubsubMessage::Probe { probe_id }) => {
                        return StepOutcome::Ok;
                    }
                    Ok(_) => {}
                    Err(reason) => {
                        return StepOutcome::Failed(format!("the probe arrived but {reason}"));
                    }
                }
            }
            Ok(Some(Incoming::Refused { code, message })) => {
                return StepOutcome::Failed(format!(
                    "the broker refused a frame ({code}): {message}"
                ));
            }
            Ok(Some(Incoming::Revoked { reason })) => {
                return StepOutcome::Failed(format!("the broker revoked the session: {reason}"));
            }
            Ok(Some(Incoming::Closed { .. })) | Ok(None) => {
                return StepOutcome::Failed("the broker closed the connection".into());
            }
            Ok(Some(_)) => {}
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return StepOutcome::Failed(format!(
                    "the probe did not arrive within {} s",
                    RECEIVE_TIMEOUT.as_secs()
                ));
            }
            Err(_) => {}
        }
    }
}

fn throwaway_key() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

fn random_nonce() -> Result<Nonce, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(Nonce::from_bytes(bytes))
}

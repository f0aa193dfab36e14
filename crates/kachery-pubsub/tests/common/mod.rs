//! A real embedded broker on 127.0.0.1:0, tokens issued the way the hub issues them, and
//! signed envelopes, for the integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use kachery_protocol::node_api::PubsubCredential;
use kachery_protocol::pubsub::{
    BrokerClientFrame, BrokerServerFrame, FileKey, PubsubBody, PubsubEnvelope, PubsubMessage,
};
use kachery_protocol::roles::Capability;
use kachery_protocol::{Band, ChannelName, Email, NodeId, Nonce, RoleSet, Sha1Hash};
use kachery_pubsub::{
    BrokerLimits, BrokerTokenKey, ClientOptions, CredentialRequest, EmbeddedBroker, EmbeddedIssuer,
    Incoming, PubsubConnection, Ready,
};

/// Long enough for a loaded 2-core machine, short enough to fail a hung test quickly.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct TestHub {
    pub broker: Arc<EmbeddedBroker>,
    pub issuer: EmbeddedIssuer,
    pub url: String,
}

/// A node identity: key and owner.
pub struct TestNode {
    pub key: SigningKey,
    pub owner: Email,
}

impl TestNode {
    pub fn new(seed: u8) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            owner: Email::parse(&format!("owner{seed}@example.com")).unwrap(),
        }
    }

    pub fn id(&self) -> NodeId {
        kachery_protocol::signing::node_id_of(&self.key)
    }
}

pub async fn spawn_hub() -> TestHub {
    spawn_hub_with(BrokerLimits::default()).await
}

pub async fn spawn_hub_with(limits: BrokerLimits) -> TestHub {
    let key = BrokerTokenKey::new([42; 32]);
    let broker = EmbeddedBroker::new(key.clone(), limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/pubsub/ws", listener.local_addr().unwrap());
    let router = broker.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestHub {
        broker,
        issuer: EmbeddedIssuer::new(key, url.clone()),
        url,
    }
}

impl TestHub {
    /// A token for `node` on `channel` with the bands of `roles`, valid for `ttl_ms`.
    pub fn token(&self, node: &TestNode, channel: &str, roles: &str, ttl_ms: i64) -> String {
        let capability = roles.parse::<RoleSet>().unwrap().capability();
        self.token_for_capability(node, channel, &capability, ttl_ms)
    }

    pub fn token_for_capability(
        &self,
        node: &TestNode,
        channel: &str,
        capability: &Capability,
        ttl_ms: i64,
    ) -> String {
        let request = CredentialRequest {
            node_id: &node.id(),
            owner: &node.owner,
            channel: &ChannelName::parse(channel).unwrap(),
            capability,
            now_ms: now_ms(),
            nats_user_key: None,
        };
        let issued = self.issuer.issue_with_ttl(&request, ttl_ms).unwrap();
        let PubsubCredential::Embedded { token, .. } = issued.credential else {
            panic!("embedded issuer made another kind of credential");
        };
        token
    }

    /// Connects `node` with `roles` on `channel` and subscribes to `bands`, waiting until
    /// the broker has registered each subscription.
    pub async fn join(
        &self,
        node: &TestNode,
        channel: &str,
        roles: &str,
        bands: &[Band],
    ) -> (PubsubConnection, Ready) {
        let token = self.token(node, channel, roles, 60_000);
        let options = ClientOptions {
            flush_delay: Duration::from_millis(5),
            ..Default::default()
        };
        let (connection, ready) =
            PubsubConnection::connect_with_options(&self.url, &token, options)
                .await
                .unwrap();
        for band in bands {
            let before = self.subscribers(channel, *band);
            connection.subscribe(*band).await.unwrap();
            wait_until(|| self.subscribers(channel, *band) > before).await;
        }
        (connection, ready)
    }

    pub fn subscribers(&self, channel: &str, band: Band) -> usize {
        self.broker
            .subscriber_count(&ChannelName::parse(channel).unwrap(), band)
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A signed `requestFile` (band requestFiles) for `channel`; `tag` makes it recognisable.
pub fn request_file(node: &TestNode, channel: &str, tag: u8) -> PubsubEnvelope {
    seal(
        node,
        channel,
        tag,
        PubsubMessage::RequestFile {
            request_id: Nonce::from_bytes([tag; 16]),
            file_key: FileKey {
                sha1: Sha1Hash::of(&[tag]),
                manifest_sha1: None,
                chunk_of: None,
            },
            exclude: vec![],
        },
    )
}

/// A signed `fileStatus` (band provideFiles) for `channel`.
pub fn file_status(node: &TestNode, channel: &str, tag: u8) -> PubsubEnvelope {
    seal(
        node,
        channel,
        tag,
        PubsubMessage::FileStatus {
            request_id: Nonce::from_bytes([tag; 16]),
            file_key: FileKey {
                sha1: Sha1Hash::of(&[tag]),
                manifest_sha1: None,
                chunk_of: None,
            },
            status: kachery_protocol::pubsub::FileStatus::Claimed,
        },
    )
}

fn seal(node: &TestNode, channel: &str, tag: u8, message: PubsubMessage) -> PubsubEnvelope {
    let mut nonce = [tag; 16];
    nonce[..8].copy_from_slice(&now_ms().to_be_bytes());
    let body = PubsubBody {
        channel: ChannelName::parse(channel).unwrap(),
        timestamp: now_ms(),
        nonce: Nonce::from_bytes(nonce),
        message,
    };
    PubsubEnvelope::seal(&node.key, &body)
}

/// The request id of a received `requestFile` or `fileStatus`, which the helpers set to the tag.
pub fn tag_of(envelope: &PubsubEnvelope) -> u8 {
    let request_id = envelope.body["requestId"].as_str().unwrap();
    u8::from_str_radix(&request_id[..2], 16).unwrap()
}

pub async fn next_event(connection: &mut PubsubConnection) -> Incoming {
    tokio::time::timeout(EVENT_TIMEOUT, connection.incoming().recv())
        .await
        .expect("an event within the timeout")
        .expect("the connection reports Closed before its stream ends")
}

/// The next event, which must be a message; returns its band and tag.
pub async fn next_message(connection: &mut PubsubConnection) -> (Band, u8) {
    match next_event(connection).await {
        Incoming::Message { band, envelope } => (band, tag_of(&envelope)),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The next event, which must be a refusal; returns its code.
pub async fn next_refusal(connection: &mut PubsubConnection) -> String {
    match next_event(connection).await {
        Incoming::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Polls `condition` every few milliseconds until it holds.
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A socket that speaks frames directly, for checks the client library would prevent.
pub async fn raw_connect(url: &str) -> RawSocket {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

pub async fn raw_send(socket: &mut RawSocket, frame: &BrokerClientFrame) {
    let text = serde_json::to_string(frame).unwrap();
    socket.send(Message::text(text)).await.unwrap();
}

/// The next text frame from the broker, or `None` once the socket closes.
pub async fn raw_next(socket: &mut RawSocket) -> Option<BrokerServerFrame> {
    loop {
        let message = tokio::time::timeout(EVENT_TIMEOUT, socket.next())
            .await
            .unwrap();
        match message {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// The code of the next frame, which must be `err`.
pub async fn raw_refusal(socket: &mut RawSocket) -> String {
    match raw_next(socket).await {
        Some(BrokerServerFrame::Err { code, .. }) => code,
        other => panic!("expected an err frame, got {other:?}"),
    }
}

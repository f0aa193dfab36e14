//! A small in-process world for exchange tests: a real embedded bucket served over HTTP on
//! 127.0.0.1, and a [`TestHub`] that plays broker and node API for the exchanges joined to
//! it. Published messages go to every other node subscribed to the band (by its roles),
//! presigned URLs come from the real bucket, and corrupt reports are recorded (and, like
//! the hub, optionally acted on by deleting the object).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use kachery_bucket::{BucketBackend, EmbeddedBucket, EmbeddedBucketOptions, ReadMethod};
use kachery_exchange::{ChannelView, ExchangeOptions, FileExchange, Network, NetworkError};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::{DownloadUrls, PresignedRequest, ReadMode, UploadItem};
use kachery_protocol::pubsub::PubsubMessage;
use kachery_protocol::{Band, ChannelName, NodeId, Role, RoleSet};
use kachery_store::Store;
use tempfile::TempDir;

pub const CHANNEL: &str = "lab.test";

pub fn channel() -> ChannelName {
    ChannelName::parse(CHANNEL).expect("the test channel name is valid")
}

pub fn roles(list: &[Role]) -> RoleSet {
    list.iter()
        .fold(RoleSet::EMPTY, |set, role| set.with(*role))
}

/// Timers shrunk so failures show up in well under a second.
pub fn fast_options() -> ExchangeOptions {
    ExchangeOptions {
        no_claim_timeout: Duration::from_millis(600),
        standby: Duration::from_secs(2),
        start_timeout: Duration::from_secs(3),
        stall_timeout: Duration::from_secs(10),
        ..ExchangeOptions::default()
    }
}

/// `len` bytes of deterministic pseudo-random data (xorshift64*).
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// What one node did on the network, for assertions.
#[derive(Debug, Clone)]
pub enum Call {
    Published(NodeId, PubsubMessage),
    DownloadUrls(NodeId, Vec<BucketKey>),
    UploadUrls(NodeId, usize),
}

struct Member {
    node_id: NodeId,
    view: ChannelView,
    exchange: Weak<FileExchange>,
}

/// Broker, node API and bucket in one.
pub struct TestHub {
    pub bucket: Arc<EmbeddedBucket>,
    members: Mutex<Vec<Member>>,
    pub calls: Mutex<Vec<Call>>,
    pub corrupt_reports: Mutex<Vec<BucketKey>>,
    /// Whether a corrupt report deletes the object, as the real hub does after checking.
    pub delete_on_report: AtomicBool,
    _bucket_dir: TempDir,
}

pub struct TestNode {
    pub node_id: NodeId,
    pub exchange: Arc<FileExchange>,
    pub store: Store,
    pub store_dir: PathBuf,
    _dir: TempDir,
}

impl TestHub {
    /// Starts a real embedded bucket on 127.0.0.1 with an OS-assigned port.
    pub async fn start() -> Arc<Self> {
        let bucket_dir = tempfile::tempdir().expect("temp dir for the bucket");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener has an address");
        let bucket = EmbeddedBucket::open(
            bucket_dir.path().join("bucket"),
            [7; 32],
            format!("http://{addr}/bucket"),
            EmbeddedBucketOptions::default(),
        )
        .await
        .expect("open embedded bucket");
        let app = bucket.router();
        tokio::spawn(async move { axum::serve(listener, app).await });

        Arc::new(Self {
            bucket,
            members: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            corrupt_reports: Mutex::new(Vec::new()),
            delete_on_report: AtomicBool::new(true),
            _bucket_dir: bucket_dir,
        })
    }

    /// A node with its own store, holding `effective` roles on the test channel.
    pub async fn add_node(self: &Arc<Self>, seed: u8, effective: RoleSet) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir for a store");
        let store_dir = dir.path().join("store");
        let store = Store::open(&store_dir).await.expect("open store");
        let node_id = NodeId::from_bytes([seed; 32]);
        let view = ChannelView {
            channel: channel(),
            effective,
            read_mode: ReadMode::Presigned,
            link_up: true,
        };
        let network = Arc::new(TestNetwork {
            hub: Arc::clone(self),
            node_id,
            view: view.clone(),
        });
        let exchange = FileExchange::new(store.clone(), network, fast_options());
        self.members.lock().unwrap().push(Member {
            node_id,
            view,
            exchange: Arc::downgrade(&exchange),
        });
        TestNode {
            node_id,
            exchange,
            store,
            store_dir,
            _dir: dir,
        }
    }

    pub fn calls_by(&self, node_id: NodeId) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|call| match call {
                Call::Published(from, _)
                | Call::DownloadUrls(from, _)
                | Call::UploadUrls(from, _) => *from == node_id,
            })
            .cloned()
            .collect()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    /// Delivers `message` like a broker: to every other member subscribed to its band.
    fn deliver(&self, from: NodeId, channel: &ChannelName, message: PubsubMessage) {
        let subscribed_role = match message.band() {
            Band::RequestFiles => Role::ProvideFiles,
            Band::ProvideFiles => Role::RequestFiles,
            _ => return,
        };
        let receivers: Vec<Arc<FileExchange>> = self
            .members
            .lock()
            .unwrap()
            .iter()
            .filter(|member| {
                member.node_id != from && member.view.effective.contains(subscribed_role)
            })
            .filter_map(|member| member.exchange.upgrade())
            .collect();
        for exchange in receivers {
            let (channel, message) = (channel.clone(), message.clone());
            tokio::spawn(async move { exchange.on_message(&channel, from, message) });
        }
    }
}

struct TestNetwork {
    hub: Arc<TestHub>,
    node_id: NodeId,
    view: ChannelView,
}

fn expires_at() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now + 15 * 60 * 1000
}

fn refused(code: ErrorCode, message: &str) -> NetworkError {
    NetworkError::Refused {
        code,
        message: message.to_owned(),
    }
}

impl Network for TestNetwork {
    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn channels(&self) -> Vec<ChannelView> {
        vec![self.view.clone()]
    }

    fn publish(
        &self,
        channel: &ChannelName,
        message: PubsubMessage,
    ) -> BoxFuture<'_, Result<(), NetworkError>> {
        self.hub
            .record(Call::Published(self.node_id, message.clone()));
        let allowed = match message.band() {
            Band::RequestFiles => {
                self.view.effective.contains(Role::RequestFiles)
                    || matches!(message, PubsubMessage::AcceptClaim { .. })
            }
            Band::ProvideFiles => self.view.effective.contains(Role::ProvideFiles),
            _ => false,
        };
        if allowed {
            self.hub.deliver(self.node_id, channel, message);
        }
        async move { Ok(()) }.boxed()
    }

    fn upload_urls(
        &self,
        channel: &ChannelName,
        items: Vec<UploadItem>,
    ) -> BoxFuture<'_, Result<Vec<PresignedRequest>, NetworkError>> {
        self.hub.record(Call::UploadUrls(self.node_id, items.len()));
        let result = if !self.view.effective.contains(Role::ProvideFiles) {
            Err(refused(ErrorCode::MissingRole, "provideFiles is missing"))
        } else {
            items
                .iter()
                .map(|item| match item {
                    UploadItem::File { sha1, size } => self
                        .hub
                        .bucket
                        .presign_put(&BucketKey::blob(channel, sha1), *size, expires_at())
                        .map_err(|error| NetworkError::Other(error.to_string())),
                    other => Err(NetworkError::Other(format!(
                        "unexpected upload item {other:?}"
                    ))),
                })
                .collect()
        };
        async move { result }.boxed()
    }

    fn download_urls(
        &self,
        _channel: &ChannelName,
        keys: Vec<BucketKey>,
    ) -> BoxFuture<'_, Result<Vec<DownloadUrls>, NetworkError>> {
        self.hub
            .record(Call::DownloadUrls(self.node_id, keys.clone()));
        let result = if self.view.effective.is_empty() {
            Err(refused(ErrorCode::NoRoles, "no roles"))
        } else {
            keys.into_iter()
                .map(|key| {
                    let bucket = &self.hub.bucket;
                    let get = bucket.presign_get(&key, ReadMethod::Get, expires_at());
                    let head = bucket.presign_get(&key, ReadMethod::Head, expires_at());
                    match (get, head) {
                        (Ok(get), Ok(head)) => Ok(DownloadUrls { key, get, head }),
                        (Err(error), _) | (_, Err(error)) => {
                            Err(NetworkError::Other(error.to_string()))
                        }
                    }
                })
                .collect()
        };
        async move { result }.boxed()
    }

    fn report_corrupt(
        &self,
        _channel: &ChannelName,
        key: BucketKey,
    ) -> BoxFuture<'_, Result<bool, NetworkError>> {
        async move {
            self.hub.corrupt_reports.lock().unwrap().push(key.clone());
            if !self.hub.delete_on_report.load(Ordering::SeqCst) {
                return Ok(false);
            }
            self.hub
                .bucket
                .delete(&key)
                .await
                .map_err(|error| NetworkError::Other(error.to_string()))
        }
        .boxed()
    }
}

//! Starting and stopping the node daemon (SPEC §13.1).
//!
//! [`NodeDaemon::start`] takes the node dir's lock, loads (or makes) the key and the client
//! token, opens the store, builds the file and task exchanges over the daemon's
//! `Network`, binds the local API on 127.0.0.1, writes `daemon.json` and starts the
//! reconcile and report loops. Without a hub URL or owner it runs local-only: the store and local API work, and status
//! says what is missing. Every task it spawns is owned by the returned [`NodeHandle`], which
//! stops them all on [`NodeHandle::shutdown`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kachery_client::NodeApiClient;
use kachery_exchange::{ExchangeOptions, FileExchange, Network};
use kachery_feeds::{FeedExchange, FeedKeyError, FeedOptions};
use kachery_protocol::NodeId;
use kachery_store::{OpenError, Store, StoreOptions};
use kachery_tasks::{TaskExchange, TaskOptions};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::client_token::{ClientToken, ClientTokenError, load_or_create_client_token};
use crate::config::NodeConfig;
use crate::daemon_file::DaemonInfo;
use crate::eviction::run_eviction;
use crate::identity::{IdentityError, ensure_private_dir, load_or_create_identity};
use crate::link::LinkContext;
use crate::local_api::{self, ApiState};
use crate::lock::{DaemonLock, LockError};
use crate::network::DaemonNetwork;
use crate::nonce_memory::{DEFAULT_CAPACITY, NonceMemory};
use crate::paths::NodePaths;
use crate::reconcile::{self, ReconcileRequests, ReconcileTrigger, Reconciler};
use crate::report::Reporter;
use crate::state::NodeState;

/// Knobs set in code; the defaults are the SPEC's values, tests shorten them.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Time between reconcile runs (±10 % jitter); also caps the failure backoff.
    /// Default 60 s.
    pub reconcile_interval: Duration,
    /// Longest wait between a link's reconnect attempts. Default 5 min.
    pub link_max_backoff: Duration,
    /// Time between periodic reports to the hub. Default 5 min.
    pub report_period: Duration,
    /// Shortest time between two reports. Default 10 s.
    pub report_min_spacing: Duration,
    /// Timers of the file exchange; `parallel_chunks` and `max_concurrent_uploads` are
    /// taken from the node config.
    pub exchange: ExchangeOptions,
    /// Timers of the feed exchange.
    pub feeds: FeedOptions,
    /// Timers of the task exchange (SPEC §17).
    pub tasks: TaskOptions,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            reconcile_interval: Duration::from_secs(60),
            link_max_backoff: Duration::from_secs(300),
            report_period: Duration::from_secs(300),
            report_min_spacing: Duration::from_secs(10),
            exchange: ExchangeOptions::default(),
            feeds: FeedOptions::default(),
            tasks: TaskOptions::default(),
        }
    }
}

/// Why the daemon did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("failed to load the node identity")]
    Identity(#[from] IdentityError),
    #[error("failed to load the local api client token")]
    ClientToken(#[from] ClientTokenError),
    #[error("failed to open the store")]
    Store(#[from] OpenError),
    #[error("failed to open the feed keys")]
    Feeds(#[from] FeedKeyError),
    #[error(
        "port {port} on 127.0.0.1 is already in use{}; \
         set another with --port or KACHERY_NODE_PORT",
        held_by(holder)
    )]
    PortInUse { port: u16, holder: Option<NodeId> },
    #[error("failed to listen on 127.0.0.1:{port}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}", path = path.display())]
    DaemonFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn held_by(holder: &Option<NodeId>) -> String {
    holder.map_or_else(String::new, |node_id| {
        format!(" by the daemon of node {node_id}")
    })
}

/// The node daemon; see [`NodeDaemon::start`].
#[derive(Debug)]
pub struct NodeDaemon;

/// A running daemon. Dropping it without [`NodeHandle::shutdown`] leaves the tasks running
/// until the runtime stops.
/// Longest wait for the `failed{shutting_down}` notices to reach the brokers.
const SHUTDOWN_NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct NodeHandle {
    node_id: NodeId,
    state: Arc<NodeState>,
    exchange: Arc<FileExchange>,
    local_api_addr: SocketAddr,
    client_token: ClientToken,
    paths: NodePaths,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
    _lock: DaemonLock,
}

impl NodeDaemon {
    /// Starts the daemon for the node in `paths` with `config`.
    pub async fn start(
        paths: NodePaths,
        config: NodeConfig,
        options: DaemonOptions,
    ) -> Result<NodeHandle, StartError> {
        ensure_private_dir(&paths.node_dir)?;
        let lock = DaemonLock::acquire(&paths.lock_file())?;
        let identity = load_or_create_identity(&paths.node_dir)?;
        let client_token = load_or_create_client_token(&paths.node_dir)?;
        let node_id = identity.node_id;
        let node_span = tracing::info_span!("node", node = %node_id.short());

        let store_options = StoreOptions::default()
            .with_max_cache_bytes(config.max_cache_gib.saturating_mul(1 << 30));
        let store = Store::open_with(&paths.store_dir, store_options).await?;

        let hub = match (&config.hub_url, &config.owner) {
            (Some(hub_url), Some(owner)) => Some(NodeApiClient::new(
                hub_url.clone(),
                identity.signing_key.clone(),
                owner.clone(),
            )),
            _ => None,
        };
        let state = Arc::new(NodeState::new(node_id, config.clone()));
        let network: Arc<dyn Network> = Arc::new(DaemonNetwork::new(
            state.clone(),
            hub.clone(),
            identity.signing_key.clone(),
        ));
        let mut exchange_options = options.exchange.clone();
        exchange_options.parallel_chunks = config.parallel_chunks as usize;
        exchange_options.max_concurrent_uploads = config.max_concurrent_uploads as usize;
        let exchange = FileExchange::new(store.clone(), network.clone(), exchange_options);
        let feeds = FeedExchange::open(
            paths.node_dir.join("feeds"),
            paths.store_dir.join("feeds"),
            network.clone(),
            options.feeds.clone(),
        )?;
        let task_exchange = TaskExchange::new(
            store.clone(),
            network,
            identity.signing_key.clone(),
            options.tasks.clone(),
        );

        let listener = bind_local_api(config.port).await?;
        let local_api_addr = listener.local_addr().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;

        let cancel = CancellationToken::new();
        let (reconcile_trigger, reconcile_requests) = reconcile::channel();
        let mut tasks = Vec::new();
        if config.max_cache_gib > 0 {
            let span = tracing::info_span!(parent: &node_span, "eviction");
            let eviction = run_eviction(store.clone(), cancel.clone());
            tasks.push(tokio::spawn(eviction.instrument(span)));
        }
        if let Some(hub) = hub {
            let loops = HubLoops {
                state: state.clone(),
                hub,
                store: store.clone(),
                exchange: exchange.clone(),
                feeds: feeds.clone(),
                tasks: task_exchange.clone(),
                reconcile: (reconcile_trigger.clone(), reconcile_requests),
            };
            tasks.extend(loops.spawn(&options, &cancel, &node_span));
        }

        let api_state = Arc::new(ApiState {
            node: state.clone(),
            store,
            exchange: exchange.clone(),
            feeds,
            tasks: task_exchange,
            reconcile: reconcile_trigger,
            token: client_token.clone(),
            node_dir: paths.node_dir.clone(),
            shutdown: cancel.clone(),
        });
        let span = tracing::info_span!(parent: &node_span, "local_api", addr = %local_api_addr);
        let server =
            tokio::spawn(serve_local_api(listener, api_state, cancel.clone()).instrument(span));

        let info = DaemonInfo {
            port: local_api_addr.port(),
            pid: std::process::id(),
            node_id,
        };
        if let Err(source) = info.write(&paths.node_dir) {
            cancel.cancel();
            return Err(StartError::DaemonFile {
                path: paths.daemon_file(),
                source,
            });
        }

        match config.missing_for_hub().as_slice() {
            [] => tracing::info!(
                parent: &node_span,
                addr = %local_api_addr,
                hub = %config.hub_url.as_ref().map(Url::as_str).unwrap_or_default(),
                "node daemon started"
            ),
            missing => tracing::info!(
                parent: &node_span,
                addr = %local_api_addr,
                ?missing,
                "node daemon started local-only"
            ),
        }
        Ok(NodeHandle {
            node_id,
            state,
            exchange,
            local_api_addr,
            client_token,
            paths,
            cancel,
            tasks,
            server,
            _lock: lock,
        })
    }
}

/// What the hub-facing loops (reconcile with its links, report) need.
struct HubLoops {
    state: Arc<NodeState>,
    hub: NodeApiClient,
    store: Store,
    exchange: Arc<FileExchange>,
    feeds: Arc<FeedExchange>,
    tasks: Arc<TaskExchange>,
    reconcile: (ReconcileTrigger, ReconcileRequests),
}

impl HubLoops {
    fn spawn(
        self,
        options: &DaemonOptions,
        cancel: &CancellationToken,
        node_span: &tracing::Span,
    ) -> [JoinHandle<()>; 2] {
        let (reconcile_trigger, reconcile_requests) = self.reconcile;
        let changes = Arc::new(Notify::new());
        let link_context = LinkContext {
            node_id: self.state.node_id,
            hub: self.hub.clone(),
            exchange: self.exchange.clone(),
            feeds: self.feeds,
            tasks: self.tasks,
            nonces: Arc::new(Mutex::new(NonceMemory::new(DEFAULT_CAPACITY))),
            reconcile: reconcile_trigger,
            changes: changes.clone(),
            max_backoff: options.link_max_backoff,
        };
        let reconciler = Reconciler {
            state: self.state.clone(),
            hub: self.hub.clone(),
            link_context,
            interval: options.reconcile_interval,
        };
        let reporter = Reporter {
            state: self.state,
            hub: self.hub,
            store: self.store,
            exchange: self.exchange,
            changes,
            period: options.report_period,
            min_spacing: options.report_min_spacing,
        };

        let reconcile_span = tracing::info_span!(parent: node_span, "reconcile");
        let report_span = tracing::info_span!(parent: node_span, "report");
        [
            tokio::spawn(
                reconciler
                    .run(reconcile_requests, cancel.clone())
                    .instrument(reconcile_span),
            ),
            tokio::spawn(reporter.run(cancel.clone()).instrument(report_span)),
        ]
    }
}

async fn serve_local_api(listener: TcpListener, state: Arc<ApiState>, cancel: CancellationToken) {
    let served = axum::serve(listener, local_api::router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "local api server failed");
    }
}

/// Binds 127.0.0.1:`port`; a busy port names the node already there when it answers.
async fn bind_local_api(port: u16) -> Result<TcpListener, StartError> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(listener) => Ok(listener),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => Err(StartError::PortInUse {
            port,
            holder: node_on_port(port).await,
        }),
        Err(source) => Err(StartError::Bind { port, source }),
    }
}

/// Asks whatever listens on `port` for its `/healthz`, which a kachery daemon answers with
/// its node id.
async fn node_on_port(port: u16) -> Option<NodeId> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .ok()?;
    let health: serde_json::Value = response.json().await.ok()?;
    health.get("nodeId")?.as_str()?.parse().ok()
}

impl NodeHandle {
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Where the local API listens (127.0.0.1 and the configured or assigned port).
    pub fn local_api_addr(&self) -> SocketAddr {
        self.local_api_addr
    }

    /// The local API's base URL, `http://127.0.0.1:<port>`.
    pub fn local_api_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.local_api_addr))
            .expect("a socket address makes a valid URL")
    }

    /// The bearer token of the local API.
    pub fn client_token(&self) -> &ClientToken {
        &self.client_token
    }

    /// Tells requesters of running uploads `failed{shutting_down}`, then stops the links,
    /// loops and local API, and removes `daemon.json`.
    pub async fn shutdown(self) {
        self.announce_shutdown().await;
        self.cancel.cancel();
        self.wait_for_tasks().await;
    }

    /// At most [`SHUTDOWN_NOTICE_TIMEOUT`]: a broker that does not take the notices must
    /// not hold up the shutdown.
    async fn announce_shutdown(&self) {
        let announce = async {
            let n_uploads = self.exchange.announce_shutdown().await;
            self.state.flush_links().await;
            n_uploads
        };
        match tokio::time::timeout(SHUTDOWN_NOTICE_TIMEOUT, announce).await {
            Ok(0) => {}
            Ok(n_uploads) => tracing::info!(n_uploads, "told requesters the uploads stop"),
            Err(_) => tracing::warn!("shutdown notices not sent within 2 s; stopping anyway"),
        }
    }

    /// Runs until SIGINT or SIGTERM (or until the local API server fails), then shuts
    /// down like [`NodeHandle::shutdown`].
    pub async fn wait(mut self) {
        let server = &mut self.server;
        tokio::select! {
            () = termination_signal() => tracing::info!("shutting down on signal"),
            _ = server => tracing::warn!("local api server stopped; shutting down"),
        }
        self.shutdown().await;
    }

    async fn wait_for_tasks(self) {
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "daemon task ended abnormally");
            }
        }
        if !self.server.is_finished() {
            let _ = self.server.await;
        }
        DaemonInfo::remove(&self.paths.node_dir);
        tracing::info!(node = %self.node_id.short(), "node daemon stopped");
    }
}

async fn termination_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler succeeds in a tokio runtime");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

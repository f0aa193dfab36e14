//! Starting and stopping a hub: [`spawn`] checks the configuration, opens everything the
//! hub needs, binds the listener and returns a [`HubHandle`] that owns the server task.
//!
//! Startup order: dev-login safety check → data dir → master key → listener (so port 0
//! resolves and the public URL can be derived) → database and migrations → embedded
//! bucket and broker → serve. Any failure is a [`StartError`] naming what to fix.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kachery_bucket::BucketError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;
use url::{Host, Url};

use crate::app::{self, AppState};
use crate::backends::Backends;
use crate::config::HubConfig;
use crate::db::{self, DbError, HubDb};
use crate::error::error_chain;
use crate::keys::{MASTER_KEY_ENV, MasterKey, MasterKeyError};
use crate::passcode::PasscodeHasher;
use crate::time::now_ms;
use crate::vault::Vault;

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often expired nonces, old credential audit rows and idle rate buckets are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Credential audit entries are kept this long (SPEC §8.1 default).
const CREDENTIAL_AUDIT_RETENTION_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// Why the hub did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(
        "refusing to start with dev login: {what} {value} is not loopback; dev login lets \
         anyone act as any user, so bind to 127.0.0.1 or ::1 (and use a localhost public_url), \
         or turn dev login off"
    )]
    DevLoginNotLoopback { what: &'static str, value: String },
    #[error("public_url {0} cannot be used: it needs an http(s) scheme and a host")]
    InvalidPublicUrl(String),
    #[error(
        "database_url scheme {scheme:?} is not supported: use sqlite://<path>, \
         postgres://<user>@<host>/<database> or postgresql://..."
    )]
    UnsupportedDatabase { scheme: String },
    #[error("failed to create data directory {path}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another hub is already running with data directory {path}: stop it, or give this \
         one its own --data-dir (replicas on one PostgreSQL database each need their own)"
    )]
    DataDirInUse { path: PathBuf },
    #[error("failed to load the master key")]
    MasterKey(#[from] MasterKeyError),
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to open the hub database")]
    Database(#[source] DbError),
    #[error("failed to open the embedded bucket")]
    Bucket(#[source] BucketError),
}

/// Why a running hub stopped other than by [`HubHandle::shutdown`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("the http server failed")]
    Io(#[source] std::io::Error),
    #[error("the hub server task panicked or was aborted")]
    Task(#[source] tokio::task::JoinError),
}

/// A running hub. Dropping it without [`HubHandle::shutdown`] leaves the server running
/// until the runtime ends.
pub struct HubHandle {
    local_addr: SocketAddr,
    public_url: Url,
    state: Arc<AppState>,
    shutdown_tx: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), std::io::Error>>>,
    purge: JoinHandle<()>,
    /// Held while the hub runs; see [`lock_data_dir`].
    _data_dir_lock: std::fs::File,
}

impl HubHandle {
    /// The address the listener is bound to (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The public URL: configured, or derived from the bound address.
    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    /// Stops accepting, closes broker sockets (`going_away`), drains requests in flight
    /// for at most 30 s, then closes the database.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        tracing::info!("hub shutting down");
        if let Some(shutdown_tx) = self.shutdown_tx.take() {
            let _ = shutdown_tx.send(());
        }
        self.state.backends.close_all();
        self.purge.abort();

        let result = match self.server.take() {
            Some(mut server) => match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
                Ok(joined) => flatten(joined),
                Err(_) => {
                    tracing::warn!("requests still running after 30 s; aborting them");
                    server.abort();
                    Ok(())
                }
            },
            None => Ok(()),
        };
        if let Err(error) = self.state.db.close().await {
            tracing::warn!(error = %error_chain(&error), "failed to close the database");
        }
        tracing::info!("hub stopped");
        result
    }

    /// Waits until the server stops on its own (it only does on an error). Cancel-safe:
    /// use it in `select!` next to a signal, then call [`HubHandle::shutdown`].
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        match &mut self.server {
            Some(server) => {
                let joined = server.await;
                self.server = None;
                flatten(joined)
            }
            None => Ok(()),
        }
    }
}

fn flatten(
    joined: Result<Result<(), std::io::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    joined.map_err(ServeError::Task)?.map_err(ServeError::Io)
}

/// Starts a hub with `config`; see the module docs for the order of checks.
pub async fn spawn(config: HubConfig) -> Result<HubHandle, StartError> {
    if config.dev_login {
        check_dev_login_loopback(&config)?;
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let data_dir_lock = lock_data_dir(&config.data_dir)?;
    let master_key = MasterKey::load(
        config.master_key_file.as_deref(),
        std::env::var(MASTER_KEY_ENV).ok(),
        config.dev_login,
        &config.data_dir,
    )?;
    let sub_keys = master_key.derive();

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None => derived_public_url(local_addr),
    };

    // Only the scheme goes into the error: the rest of the URL may hold a password.
    let database_url = config.database_url();
    let Some(backend) = db::Backend::of_url(&database_url) else {
        let scheme = database_url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return Err(StartError::UnsupportedDatabase { scheme });
    };
    let db: Arc<dyn HubDb> = backend
        .open(&database_url)
        .await
        .map_err(StartError::Database)?;
    let backends = Backends::open(
        &config.data_dir,
        &sub_keys,
        &public_url,
        config.embedded_bucket_quota_bytes,
    )
    .await
    .map_err(StartError::Bucket)?;

    tracing::info!(
        %local_addr,
        public_url = %public_url,
        data_dir = %config.data_dir.display(),
        dev_login = config.dev_login,
        n_admins = config.admins.len(),
        "hub listening"
    );
    let vault = Vault::for_master_key(&master_key, db.clone());
    let passcode_hasher = PasscodeHasher::new(sub_keys.passcode_pepper);
    let state = Arc::new(AppState::new(
        config,
        &public_url,
        db,
        backends,
        vault,
        passcode_hasher,
    ));
    let router = app::router(state.clone());

    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await
        }
        .instrument(tracing::info_span!("hub_server", %local_addr)),
    );
    let purge = tokio::spawn(
        purge_periodically(state.clone()).instrument(tracing::info_span!("hub_purge")),
    );

    Ok(HubHandle {
        local_addr,
        public_url,
        state,
        shutdown_tx: Some(shutdown_tx),
        server: Some(server),
        purge,
        _data_dir_lock: data_dir_lock,
    })
}

/// Takes an exclusive lock on `<data_dir>/hub.lock` for the life of the hub. Two hubs on
/// one data directory would each run an embedded broker and bucket over the same files
/// (and the same SQLite database) without knowing of each other. The kernel drops the
/// lock when the process ends, however it ends.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let path = data_dir.join("hub.lock");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| StartError::DataDir {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::DataDirInUse {
            path: data_dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir { path, source }),
    }
}

/// SPEC §9.2: dev login only on loopback binds and a loopback public URL.
fn check_dev_login_loopback(config: &HubConfig) -> Result<(), StartError> {
    if !config.bind.ip().is_loopback() {
        return Err(StartError::DevLoginNotLoopback {
            what: "bind address",
            value: config.bind.to_string(),
        });
    }
    if let Some(url) = &config.public_url {
        let is_loopback = match url.host() {
            Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(StartError::InvalidPublicUrl(url.to_string())),
        };
        if !is_loopback {
            return Err(StartError::DevLoginNotLoopback {
                what: "public_url",
                value: url.to_string(),
            });
        }
    }
    Ok(())
}

/// `http://<bound ip>:<port>`; an unspecified address (0.0.0.0, ::) becomes loopback.
fn derived_public_url(local_addr: SocketAddr) -> Url {
    let ip = match local_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}", SocketAddr::new(ip, local_addr.port()));
    Url::parse(&url).expect("a socket address forms a valid http URL")
}

async fn purge_periodically(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        let now = now_ms();
        match state
            .db
            .purge_expired(now, now - CREDENTIAL_AUDIT_RETENTION_MS)
            .await
        {
            Ok(n_rows) => tracing::trace!(n_rows, "purged expired rows"),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to purge expired rows")
            }
        }
        state.node_rate_limit.forget_idle();
    }
}

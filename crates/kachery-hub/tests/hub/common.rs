//! Shared setup: a real hub on 127.0.0.1:0 with a temporary data directory and dev login,
//! on SQLite or on a fresh PostgreSQL database ([`TestEnv`]); users with dev tokens, node
//! keys from fixed seeds, registered node clients.

use std::net::SocketAddr;
use std::path::Path;

use ed25519_dalek::SigningKey;
use kachery_client::{ApiError, HubUserClient, NodeApiClient, now_ms, registration_envelope};
use kachery_hub::{HubConfig, HubHandle, spawn};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::{CreateChannelRequest, NodeView};
use kachery_protocol::{ChannelName, Email, Label, NodeId, RoleSet};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub use crate::database::Backend;
use crate::database::TestDatabase;

/// Where one test's hubs keep their state: a temporary data directory and, on
/// PostgreSQL, a database of its own that is dropped with this value.
pub struct TestEnv {
    // Dropped first, so the database goes before the directory.
    database: Option<TestDatabase>,
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// A fresh environment on `backend`; panics if PostgreSQL is asked for but unreachable.
    pub async fn new(backend: Backend) -> Self {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let dir = tempfile::tempdir().expect("a temporary directory can be made");
        Self { database, dir }
    }

    /// The temporary directory, also the data directory of [`TestEnv::config`].
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A dev-login config on 127.0.0.1:0 with this environment's data directory and
    /// database; SQLite uses the default file in the data directory.
    pub fn config(&self) -> HubConfig {
        HubConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.dir.path().to_owned(),
            database_url: self.database.as_ref().map(TestDatabase::url),
            dev_login: true,
            admins: vec![email("admin@example.org")],
            ..HubConfig::default()
        }
    }

    /// Runs one SQL statement on this environment's hub database, behind the hub's back
    /// (to age a session, say).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::{AssertSqlSafe, Connection};
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.database {
            Some(database) => {
                let mut connection = sqlx::PgConnection::connect(&database.url()).await.unwrap();
                sqlx::query(sql).execute(&mut connection).await.unwrap();
            }
            None => {
                let url = format!("sqlite://{}", self.dir.path().join("hub.sqlite").display());
                let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(sql).execute(&mut connection).await.unwrap();
            }
        }
    }

    /// A dev-login hub on this environment.
    pub async fn spawn_hub(&self) -> HubHandle {
        spawn(self.config()).await.expect("the test hub starts")
    }

    /// A dev-login hub on a given address (to restart on the same port).
    pub async fn spawn_hub_at(&self, bind: SocketAddr) -> HubHandle {
        let config = HubConfig {
            bind,
            ..self.config()
        };
        spawn(config).await.expect("the test hub starts")
    }
}

pub fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

pub fn channel_name(text: &str) -> ChannelName {
    ChannelName::parse(text).unwrap()
}

pub fn roles(text: &str) -> RoleSet {
    text.parse().unwrap()
}

/// A node key from a fixed seed, so failures reproduce.
pub fn node_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A user client signed in through dev login.
pub async fn sign_in(hub: &HubHandle, address: &str) -> HubUserClient {
    let mut client = HubUserClient::new(hub.public_url().clone(), None);
    let token = client
        .dev_token(&email(address))
        .await
        .expect("dev login issues a token");
    client.set_token(Some(token.token));
    client
}

/// Registers `key` for the user `owner` (signed in as `user`) and returns its node client.
pub async fn register_node(
    hub: &HubHandle,
    user: &HubUserClient,
    key: &SigningKey,
    owner: &str,
) -> NodeApiClient {
    let envelope = registration_envelope(
        key,
        email(owner),
        Label::parse("test node").unwrap(),
        &hub_origin(hub),
        now_ms(),
    )
    .unwrap();
    let view: NodeView = user
        .register_node(envelope)
        .await
        .expect("registration succeeds");
    assert_eq!(view.owner.as_str(), owner);
    NodeApiClient::new(hub.public_url().clone(), key.clone(), email(owner))
}

pub fn hub_origin(hub: &HubHandle) -> String {
    hub.public_url().origin().ascii_serialization()
}

/// Creates a channel with default (embedded) backends.
pub async fn create_channel(user: &HubUserClient, name: &str) -> ChannelName {
    let request = CreateChannelRequest {
        name: channel_name(name),
        bucket: None,
        pubsub: None,
        secrets: Default::default(),
    };
    user.create_channel(&request)
        .await
        .expect("channel is created");
    channel_name(name)
}

/// The error code of a failed call; panics on success so a missing refusal is loud.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, ApiError>) -> ErrorCode {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(error) => error
            .code()
            .unwrap_or_else(|| panic!("not an api error: {error}")),
    }
}

pub fn node_id(key: &SigningKey) -> NodeId {
    kachery_protocol::signing::node_id_of(key)
}

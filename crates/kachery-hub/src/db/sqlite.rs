//! [`SqliteDb`]: the hub database on one SQLite file in WAL mode, the default backend.
//!
//! Migrations live in `crates/kachery-hub/migrations/sqlite/` and run at startup. Write
//! transactions start with `BEGIN IMMEDIATE` so two writers queue on the busy timeout
//! instead of failing when a deferred transaction tries to upgrade its lock. SQLite does
//! not report constraint names, so a unique violation is told apart by the table named in
//! its message (`UNIQUE constraint failed: nodes.node_id, ...`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult};
use sqlx::{Pool, Sqlite, Transaction};

use super::sql::{Backend, SqlDb};
use super::{ConflictKind, DbError};

/// How long a statement waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite implementation of [`super::HubDb`]; one pool per hub process.
pub type SqliteDb = SqlDb<Sqlite>;

/// Tables whose unique violations are conflicts the hub reports (SPEC §8.1).
const CONFLICT_TABLES: [(&str, ConflictKind); 4] = [
    ("nodes", ConflictKind::Node),
    ("channels", ConflictKind::Channel),
    ("memberships", ConflictKind::Membership),
    ("seen_nonces", ConflictKind::Nonce),
];

impl SqlDb<Sqlite> {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let open_error = |source| DbError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(DbError::Migrate)?;
        Ok(Self::new(pool))
    }
}

impl Backend for Sqlite {
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn conflict_kind(error: &dyn DatabaseError) -> Option<ConflictKind> {
        if !error.is_unique_violation() {
            return None;
        }
        let columns = error.message().strip_prefix("UNIQUE constraint failed: ")?;
        let table = columns.split('.').next()?;
        CONFLICT_TABLES
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, kind)| *kind)
    }
}

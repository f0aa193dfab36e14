//! [`PostgresDb`]: the hub database on PostgreSQL, for several hub replicas sharing one
//! database (SPEC §18.1, `database_url = "postgres://..."`).
//!
//! Migrations live in `crates/kachery-hub/migrations/postgres/` and run at startup;
//! sqlx holds an advisory lock while migrating, so replicas starting together do not race.
//! Everything a replica must agree on is in the database, the nonces of signed requests
//! included (`seen_nonces`), so a request replayed against another replica is refused.
//!
//! Transactions run at PostgreSQL's default READ COMMITTED level. That is enough because
//! every write that must be unique is an `INSERT` guarded by a constraint (or an
//! `ON CONFLICT` upsert, which PostgreSQL serializes on the conflicting row): a unique
//! violation is SQLSTATE 23505, and its constraint name says which rule was broken.

use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPoolOptions, PgQueryResult};
use sqlx::{Pool, Postgres, Transaction};

use super::sql::{Backend, SqlDb};
use super::{ConflictKind, DbError};

/// Connections per hub process; PostgreSQL's default server limit is 100 in total.
const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLSTATE `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

/// Constraint names (from `migrations/postgres/`) whose violation is a reported conflict.
const CONFLICT_CONSTRAINTS: [(&str, ConflictKind); 4] = [
    ("nodes_identity_key", ConflictKind::Node),
    ("channels_name_key", ConflictKind::Channel),
    ("memberships_node_channel_key", ConflictKind::Membership),
    ("seen_nonces_pkey", ConflictKind::Nonce),
];

/// The PostgreSQL implementation of [`super::HubDb`]; one pool per hub process.
pub type PostgresDb = SqlDb<Postgres>;

impl SqlDb<Postgres> {
    /// Connects to `url` (`postgres://user@host/db`) and migrates the database. The
    /// database must exist; the hub creates only tables.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| DbError::Open {
                url: redacted(url),
                source,
            })?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(DbError::Migrate)?;
        Ok(Self::new(pool))
    }
}

impl Backend for Postgres {
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn conflict_kind(error: &dyn DatabaseError) -> Option<ConflictKind> {
        if error.code().as_deref() != Some(UNIQUE_VIOLATION) {
            return None;
        }
        let constraint = error.constraint()?;
        CONFLICT_CONSTRAINTS
            .iter()
            .find(|(name, _)| *name == constraint)
            .map(|(_, kind)| *kind)
    }
}

/// The URL without its password, for error messages and logs.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password fails only for URLs that cannot have one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable postgres url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            redacted("postgres://hub:secret@db.internal:5432/kachery"),
            "postgres://hub:***@db.internal:5432/kachery"
        );
        assert_eq!(
            redacted("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redacted("postgres://hub:p@ss w0rd@"),
            "<unparsable postgres url>"
        );
    }
}

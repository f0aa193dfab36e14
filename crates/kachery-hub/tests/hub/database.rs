//! The database behind a test hub: [`Backend`] says which, [`TestDatabase`] is a fresh
//! PostgreSQL database per test, so tests run in parallel and again without cleanup.
//!
//! PostgreSQL is expected at `postgres://postgres@127.0.0.1:5432` (trust auth), or at
//! `KACHERY_TEST_POSTGRES_URL`. If it does not answer, the PostgreSQL half of the suite
//! fails with a message saying how to start it: it never skips silently, because a
//! skipped backend looks exactly like a passing one.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use url::Url;

/// The maintenance database the per-test databases are created from.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Overrides [`DEFAULT_ADMIN_URL`].
const ADMIN_URL_ENV: &str = "KACHERY_TEST_POSTGRES_URL";
/// How long to wait for PostgreSQL before failing the test.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database a test hub runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database `kachery_test_<random>` created for one test and dropped (with any
/// connections still open) when this value is dropped.
pub struct TestDatabase {
    admin_url: Url,
    name: String,
}

impl TestDatabase {
    /// Creates the database; panics with what to do if PostgreSQL is unreachable.
    pub async fn create() -> Self {
        let admin_url = std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let admin_url = Url::parse(&admin_url)
            .unwrap_or_else(|error| panic!("{ADMIN_URL_ENV}={admin_url} is not a URL: {error}"));
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("the OS random source works");
        let name = format!("kachery_test_{}", hex::encode(random));

        let mut admin = connect(&admin_url).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("failed to create test database {name}: {error}"));
        admin.close().await.ok();
        Self { admin_url, name }
    }

    /// The URL a hub connects to.
    pub fn url(&self) -> String {
        let mut url = self.admin_url.clone();
        url.set_path(&self.name);
        url.to_string()
    }

    async fn drop_database(admin_url: Url, name: String) {
        let mut admin = connect(&admin_url).await;
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let dropped = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await;
        if let Err(error) = dropped {
            eprintln!("warning: test database {name} was left behind: {error}");
        }
        admin.close().await.ok();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one being torn down: drop
        // the database from a runtime of its own on a plain thread.
        let admin_url = self.admin_url.clone();
        let name = std::mem::take(&mut self.name);
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            runtime.block_on(Self::drop_database(admin_url, name));
        });
        if dropper.join().is_err() && !std::thread::panicking() {
            panic!("dropping the test database panicked");
        }
    }
}

async fn connect(admin_url: &Url) -> PgConnection {
    let connecting = PgConnection::connect(admin_url.as_str());
    let failure = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => return connection,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
    };
    panic!(
        "PostgreSQL is not reachable at {admin_url} ({failure}). The hub tests run on both \
         SQLite and PostgreSQL: start it (`pg_ctlcluster --skip-systemctl-redirect \
         $(ls /etc/postgresql) main start`, as .ci/run does) or point {ADMIN_URL_ENV} at a \
         server where this user may create databases"
    );
}

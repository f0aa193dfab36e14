//! Integration tests of the hub: a real server on 127.0.0.1:0, the real kachery-client
//! over HTTP, and a throwaway database. Every test runs twice, once on a SQLite file in a
//! temporary directory and once on a fresh PostgreSQL database (see `database`), so the
//! two backends are held to one behaviour; `replicas` runs two hubs on one PostgreSQL
//! database.

/// Runs each listed test, an `async fn(Backend) -> TestResult` of the calling module, once
/// per backend: as `<module>::sqlite::<test>` and `<module>::postgres::<test>`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() -> crate::common::TestResult {
                    super::$test(crate::common::Backend::Sqlite).await
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $test() -> crate::common::TestResult {
                    super::$test(crate::common::Backend::Postgres).await
                }
            )+
        }
    };
}

mod broker;
mod common;
mod database;
mod lifecycle;
mod node_api;
mod oidc;
#[path = "../oidc/provider.rs"]
mod oidc_provider;
mod passcodes;
mod pubsub_backends;
mod registration;
mod replicas;
mod reports;
mod roles;
mod s3_channels;
mod secrets;
mod sessions;
mod visibility;
mod web;

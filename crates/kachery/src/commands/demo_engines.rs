//! The engines `kachery demo` runs on: embedded by default, or a database URL, an
//! S3-compatible endpoint and a NATS server given as options (`scripts/demo-engines.sh`
//! uses PostgreSQL's database and starts a loopback S3 server and a JWT-mode nats-server).

use std::collections::BTreeMap;

use kachery_protocol::ChannelName;
use kachery_protocol::node_api::ReadMode;
use kachery_protocol::user_api::{
    BucketSettings, CreateChannelRequest, NatsSettings, PubsubSettings, SecretKind, SecretValue,
};
use serde_json::json;

use crate::cli::DemoEngineArgs;
use crate::exit::Failure;

/// Environment variable holding the S3 secret access key (never a flag: `ps` shows flags).
const S3_SECRET_ENV: &str = "KACHERY_DEMO_S3_SECRET";

/// Environment variable holding the NATS account signing seed (`SA…`).
const NATS_SEED_ENV: &str = "KACHERY_DEMO_NATS_SEED";

pub struct DemoEngines {
    database: Database,
    s3: Option<S3Engine>,
    nats: Option<NatsEngine>,
}

struct NatsEngine {
    url: String,
    account: String,
    seed: SecretValue,
}

enum Database {
    Sqlite,
    Postgres,
}

struct S3Engine {
    endpoint: url::Url,
    bucket: String,
    region: String,
    access_key_id: String,
    secret: SecretValue,
}

impl DemoEngines {
    /// Checks the engine options; a missing piece is a usage error naming it.
    pub fn from_args(args: &DemoEngineArgs) -> anyhow::Result<Self> {
        let database = match args.database_url.as_deref() {
            None => Database::Sqlite,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres
            }
            Some(url) if url.starts_with("sqlite:") => Database::Sqlite,
            Some(_) => {
                return Err(
                    Failure::usage("--database-url must be postgres://… or sqlite://…").into(),
                );
            }
        };
        let s3 = match &args.s3_endpoint {
            None => None,
            Some(endpoint) => {
                let missing = |what: &str| Failure::usage(format!("--s3-endpoint needs {what}"));
                let bucket = args
                    .s3_bucket
                    .clone()
                    .ok_or_else(|| missing("--s3-bucket"))?;
                let access_key_id = args
                    .s3_access_key_id
                    .clone()
                    .ok_or_else(|| missing("--s3-access-key-id"))?;
                let secret = std::env::var(S3_SECRET_ENV)
                    .map_err(|_| missing(&format!("the secret key in {S3_SECRET_ENV}")))?;
                Some(S3Engine {
                    endpoint: endpoint.clone(),
                    bucket,
                    region: args.s3_region.clone(),
                    access_key_id,
                    secret: SecretValue::new(secret),
                })
            }
        };
        let nats = match &args.nats_url {
            None => None,
            Some(url) => {
                let missing = |what: &str| Failure::usage(format!("--nats-url needs {what}"));
                let account = args
                    .nats_account
                    .clone()
                    .ok_or_else(|| missing("--nats-account"))?;
                let seed = std::env::var(NATS_SEED_ENV).map_err(|_| {
                    missing(&format!("the account signing seed in {NATS_SEED_ENV}"))
                })?;
                Some(NatsEngine {
                    url: url.clone(),
                    account,
                    seed: SecretValue::new(seed.trim().to_owned()),
                })
            }
        };
        Ok(Self { database, s3, nats })
    }

    /// One line for the step log, e.g. "PostgreSQL, embedded broker, S3 bucket".
    pub fn describe(&self) -> String {
        let database = match self.database {
            Database::Sqlite => "SQLite",
            Database::Postgres => "PostgreSQL",
        };
        let broker = if self.nats.is_some() {
            "NATS"
        } else {
            "embedded"
        };
        format!("{database}, {broker} broker, {} bucket", self.bucket_name())
    }

    pub fn bucket_name(&self) -> &'static str {
        if self.s3.is_some() { "s3" } else { "embedded" }
    }

    /// The engines in the `--json` summary (no secret).
    pub fn summary(&self) -> serde_json::Value {
        json!({
            "database": match self.database {
                Database::Sqlite => "sqlite",
                Database::Postgres => "postgres",
            },
            "pubsub": if self.nats.is_some() { "nats" } else { "embedded" },
            "natsUrl": self.nats.as_ref().map(|nats| nats.url.as_str()),
            "bucket": self.bucket_name(),
            "s3Endpoint": self.s3.as_ref().map(|s3| s3.endpoint.as_str()),
        })
    }

    /// The channel Alice creates: on the S3 bucket and NATS server when given.
    pub fn channel_request(&self, name: ChannelName) -> CreateChannelRequest {
        let mut request = CreateChannelRequest {
            name,
            bucket: None,
            pubsub: None,
            secrets: BTreeMap::new(),
        };
        if let Some(s3) = &self.s3 {
            // Plain http is allowed by the hub only for loopback endpoints.
            let config = json!({
                "endpoint": s3.endpoint.as_str(),
                "region": s3.region,
                "bucket": s3.bucket,
                "prefix": "kachery-demo",
                "pathStyle": true,
                "accessKeyId": s3.access_key_id,
                "allowHttp": s3.endpoint.scheme() == "http",
            });
            request.bucket = Some(BucketSettings {
                backend: "s3".to_owned(),
                config: Some(config),
                read_mode: ReadMode::Presigned,
            });
            request
                .secrets
                .insert(SecretKind::S3SecretAccessKey, s3.secret.clone());
        }
        if let Some(nats) = &self.nats {
            request.pubsub = Some(PubsubSettings {
                backend: "nats".to_owned(),
                nats: Some(NatsSettings {
                    servers: vec![nats.url.clone()],
                    account: nats.account.clone(),
                }),
            });
            request
                .secrets
                .insert(SecretKind::NatsAccountSeed, nats.seed.clone());
        }
        request
    }
}

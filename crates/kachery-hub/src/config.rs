//! The hub's settings, [`HubConfig`], and their loader (SPEC §18.1).
//!
//! Sources, later wins: built-in defaults, a TOML file, then `KACHERY_HUB_*` environment
//! variables (nested keys joined by `__`). Flags are the CLI's business: it edits the
//! loaded value. Secrets never come from the TOML file; the master key has its own file
//! or variable (see [`crate::keys`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kachery_protocol::Email;
use serde::Deserialize;
use url::Url;

/// 10 GiB, the default embedded-bucket quota per channel.
const DEFAULT_EMBEDDED_BUCKET_QUOTA: u64 = 10 * 1024 * 1024 * 1024;

/// Settings of one hub process.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Listen address. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Origin used in links and the signed `hub` field. Default: derived from the bound
    /// address (`http://127.0.0.1:<port>`).
    pub public_url: Option<Url>,
    /// State directory: database, embedded bucket, dev master key. Default
    /// `./kachery-hub-data`.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://<path>`, or `postgres://` / `postgresql://` for replicas
    /// sharing one database (which must exist). Default `sqlite://<data_dir>/hub.sqlite`.
    pub database_url: Option<String>,
    /// Enables "sign in as any e-mail" (SPEC §9.2); loopback only. Default false.
    pub dev_login: bool,
    /// File holding the base64 master key (mode 0600). Default none.
    pub master_key_file: Option<PathBuf>,
    /// Users with admin rights, checked on every request. Default none.
    pub admins: Vec<Email>,
    /// Embedded-bucket quota per channel, in bytes. Default 10 GiB.
    pub embedded_bucket_quota_bytes: u64,
    /// Lifetime of NATS and Ably credentials, ms (env
    /// `KACHERY_HUB_PUBSUB__CREDENTIAL_TTL_SECS`, 5 s to 30 min). Default 30 min; tests
    /// shorten it to watch renewal.
    pub pubsub_credential_ttl_ms: i64,
    /// If not empty, only e-mails in these domains may sign in through OpenID Connect
    /// (lowercase, exact domain match). Default empty: any verified e-mail.
    pub allowed_domains: Vec<String>,
    /// OpenID Connect providers offered on the sign-in page, in this order. Default none.
    pub oidc: Vec<OidcProviderConfig>,
}

/// One OpenID Connect provider (`[[oidc]]` in the TOML file).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Short name, used in URLs (`/login/oidc/<name>`): lowercase letters, digits, `-`.
    pub name: String,
    /// `"google"` for Google's issuer, else the issuer URL whose
    /// `/.well-known/openid-configuration` describes the provider.
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret. Else `KACHERY_HUB_OIDC_<NAME>_CLIENT_SECRET`
    /// (name uppercased, `-` as `_`); neither means a public client (PKCE only).
    pub client_secret_file: Option<PathBuf>,
    /// Shown on the sign-in button. Default: "Google" for the preset, else the name.
    pub label: Option<String>,
    /// The client secret itself, loaded by [`HubConfig::load`] or set by code; never in
    /// the TOML file and never printed.
    #[serde(skip)]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for OidcProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProviderConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl OidcProviderConfig {
    /// The environment variable that may hold this provider's client secret.
    pub fn secret_env_var(&self) -> String {
        format!(
            "KACHERY_HUB_OIDC_{}_CLIENT_SECRET",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Loads the client secret from its file, else from `env`, unless one is set already.
    fn load_secret(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if self.client_secret.is_some() {
            return Ok(());
        }
        if let Some(path) = &self.client_secret_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            self.client_secret = Some(text.trim().to_owned());
        } else {
            self.client_secret = env(&self.secret_env_var()).map(|text| text.trim().to_owned());
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: format!("oidc.{}", self.name),
            reason,
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !name_ok {
            return Err(invalid(
                "name must be 1-32 lowercase letters, digits or '-'".to_owned(),
            ));
        }
        if self.issuer != "google" {
            parse_url(&format!("oidc.{}.issuer", self.name), &self.issuer)?;
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id is empty".to_owned()));
        }
        Ok(())
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("./kachery-hub-data"),
            database_url: None,
            dev_login: false,
            master_key_file: None,
            admins: Vec::new(),
            embedded_bucket_quota_bytes: DEFAULT_EMBEDDED_BUCKET_QUOTA,
            pubsub_credential_ttl_ms: kachery_protocol::limits::PUBSUB_CREDENTIAL_TTL_MS,
            allowed_domains: Vec::new(),
            oidc: Vec::new(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("failed to read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// The TOML file: every key optional, unknown keys rejected so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    dev_login: Option<bool>,
    master_key_file: Option<PathBuf>,
    admins: Option<Vec<Email>>,
    embedded_bucket: Option<EmbeddedBucketSection>,
    allowed_domains: Option<Vec<String>>,
    oidc: Option<Vec<OidcProviderConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddedBucketSection {
    max_bytes_per_channel: Option<u64>,
}

/// The documented default configuration, printed by `kachery hub print-default-config`.
const DEFAULT_TOML: &str = r#"# kachery hub configuration. Every key is optional; the values shown are the defaults.
# Environment variables KACHERY_HUB_<KEY> override this file (nested keys joined by "__"),
# and command-line flags override both. Secrets never belong here.

# Address and port to listen on.
bind = "127.0.0.1:8080"

# Public origin used in links, redirects and the `hub` field nodes sign.
# Default: derived from the bound address.
# public_url = "https://hub.example.org"

# State directory: the SQLite database, the embedded bucket, the dev master key.
data_dir = "./kachery-hub-data"

# Database URL. Default: sqlite://<data_dir>/hub.sqlite
# database_url = "sqlite:///var/lib/kachery/hub.sqlite"
# PostgreSQL, for several hub replicas on one database (put a password in
# KACHERY_HUB_DATABASE_URL rather than here):
# database_url = "postgres://kachery@db.internal/kachery"

# Let anyone sign in as any e-mail, for try-outs; refused unless bound to loopback.
dev_login = false

# File holding the 32-byte master key (base64, mode 0600), or set KACHERY_HUB_MASTER_KEY.
# Required unless dev_login is on.
# master_key_file = "/etc/kachery/master.key"

# E-mails with admin rights (read everything but secrets, soft-delete channels).
admins = []

# If not empty, only e-mails in these domains may sign in (OpenID Connect).
allowed_domains = []

# OpenID Connect providers, one [[oidc]] table each; the redirect URI to register with
# the provider is <public_url>/login/oidc/<name>/callback. The client secret comes from
# client_secret_file or KACHERY_HUB_OIDC_<NAME>_CLIENT_SECRET, never from this file.
# [[oidc]]
# name = "google"
# issuer = "google"            # preset for https://accounts.google.com
# client_id = "1234-abc.apps.googleusercontent.com"
# client_secret_file = "/etc/kachery/google-client-secret"
#
# [[oidc]]
# name = "lab"
# label = "Lab account"
# issuer = "https://login.lab.example.org/realms/lab"   # any issuer with discovery
# client_id = "kachery-hub"

[embedded_bucket]
# Bytes each channel may keep in the embedded bucket (10 GiB).
max_bytes_per_channel = 10737418240
"#;

impl HubConfig {
    /// The documented default configuration as TOML.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// Loads defaults, then `file` (or `<data_dir>/hub.toml` if it exists), then the
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |key| std::env::var(key).ok())
    }

    /// [`HubConfig::load`] with the environment supplied by `env`, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = HubConfig::default();

        let default_file = env("KACHERY_HUB_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| config.data_dir.clone())
            .join("hub.toml");
        let file = match file {
            Some(path) => Some(path.to_owned()),
            None => default_file.exists().then_some(default_file),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let parsed: FileConfig =
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?;
            config.apply_file(parsed)?;
        }

        config.apply_env(&env)?;
        for provider in &mut config.oidc {
            provider.validate()?;
            provider.load_secret(&env)?;
        }
        Ok(config)
    }

    /// The database URL: the configured one, else the SQLite file in `data_dir`.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("hub.sqlite").display()))
    }

    /// Whether `email` may sign in under `allowed_domains`.
    pub fn is_allowed_domain(&self, email: &Email) -> bool {
        let domain = email
            .as_str()
            .rsplit_once('@')
            .map_or("", |(_, domain)| domain);
        self.allowed_domains.is_empty() || self.allowed_domains.iter().any(|d| d == domain)
    }

    /// Whether `email` is one of the configured admins.
    pub fn is_admin(&self, email: &Email) -> bool {
        self.admins.contains(email)
    }

    fn apply_file(&mut self, file: FileConfig) -> Result<(), ConfigError> {
        if let Some(bind) = file.bind {
            self.bind = bind;
        }
        if let Some(public_url) = file.public_url {
            self.public_url = Some(parse_url("public_url", &public_url)?);
        }
        if let Some(data_dir) = file.data_dir {
            self.data_dir = data_dir;
        }
        self.database_url = file.database_url.or(self.database_url.take());
        self.dev_login = file.dev_login.unwrap_or(self.dev_login);
        self.master_key_file = file.master_key_file.or(self.master_key_file.take());
        if let Some(admins) = file.admins {
            self.admins = admins;
        }
        if let Some(domains) = file.allowed_domains {
            self.allowed_domains = normalize_domains(domains);
        }
        if let Some(oidc) = file.oidc {
            self.oidc = oidc;
        }
        if let Some(quota) = file
            .embedded_bucket
            .and_then(|section| section.max_bytes_per_channel)
        {
            self.embedded_bucket_quota_bytes = quota;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let var = |key: &str| env(&format!("KACHERY_HUB_{key}"));
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: format!("KACHERY_HUB_{key}"),
            reason,
        };

        if let Some(bind) = var("BIND") {
            self.bind = bind
                .parse()
                .map_err(|error| invalid("BIND", format!("{error}")))?;
        }
        if let Some(public_url) = var("PUBLIC_URL") {
            self.public_url = Some(parse_url("KACHERY_HUB_PUBLIC_URL", &public_url)?);
        }
        if let Some(data_dir) = var("DATA_DIR") {
            self.data_dir = PathBuf::from(data_dir);
        }
        if let Some(database_url) = var("DATABASE_URL") {
            self.database_url = Some(database_url);
        }
        if let Some(dev_login) = var("DEV_LOGIN") {
            self.dev_login = match dev_login.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                other => return Err(invalid("DEV_LOGIN", format!("{other:?} is not a boolean"))),
            };
        }
        if let Some(path) = var("MASTER_KEY_FILE") {
            self.master_key_file = Some(PathBuf::from(path));
        }
        if let Some(admins) = var("ADMINS") {
            self.admins = admins
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(|item| {
                    Email::parse(item).map_err(|error| invalid("ADMINS", error.to_string()))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(ttl) = var("PUBSUB__CREDENTIAL_TTL_SECS") {
            let key = "PUBSUB__CREDENTIAL_TTL_SECS";
            let secs: i64 = ttl
                .parse()
                .map_err(|error| invalid(key, format!("{error}")))?;
            if !(5..=1800).contains(&secs) {
                return Err(invalid(key, "must be 5 to 1800 seconds".to_owned()));
            }
            self.pubsub_credential_ttl_ms = secs * 1000;
        }
        if let Some(domains) = var("ALLOWED_DOMAINS") {
            self.allowed_domains = normalize_domains(domains.split(',').map(str::to_owned));
        }
        if let Some(quota) = var("EMBEDDED_BUCKET__MAX_BYTES_PER_CHANNEL") {
            self.embedded_bucket_quota_bytes = quota.parse().map_err(|error| {
                invalid("EMBEDDED_BUCKET__MAX_BYTES_PER_CHANNEL", format!("{error}"))
            })?;
        }
        Ok(())
    }
}

fn normalize_domains(domains: impl IntoIterator<Item = String>) -> Vec<String> {
    domains
        .into_iter()
        .map(|domain| domain.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|domain| !domain.is_empty())
        .collect()
}

fn parse_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|error| ConfigError::Invalid {
        key: key.to_owned(),
        reason: error.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("{text} is not an http(s) URL with a host"),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_loads_as_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, HubConfig::default_toml()).unwrap();
        let loaded = HubConfig::load_from(Some(&path), |_| None).unwrap();
        let defaults = HubConfig::default();
        assert_eq!(loaded.bind, defaults.bind);
        assert_eq!(loaded.data_dir, defaults.data_dir);
        assert_eq!(loaded.dev_login, defaults.dev_login);
        assert_eq!(
            loaded.embedded_bucket_quota_bytes,
            defaults.embedded_bucket_quota_bytes
        );
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\ndev_login = true\nadmins = [\"A@x.org\"]\n\
             [embedded_bucket]\nmax_bytes_per_channel = 5\n",
        )
        .unwrap();
        let env = |key: &str| (key == "KACHERY_HUB_BIND").then(|| "127.0.0.1:9001".to_owned());
        let config = HubConfig::load_from(Some(&path), env).unwrap();
        assert_eq!(config.bind.port(), 9001);
        assert!(config.dev_login);
        assert_eq!(config.admins[0].as_str(), "a@x.org");
        assert_eq!(config.embedded_bucket_quota_bytes, 5);
    }

    #[test]
    fn oidc_providers_with_secrets_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let secret_path = dir.path().join("google.secret");
        std::fs::write(&secret_path, "file-secret\n").unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            format!(
                "allowed_domains = [\"Example.ORG\"]\n\
                 [[oidc]]\nname = \"google\"\nissuer = \"google\"\nclient_id = \"g\"\n\
                 client_secret_file = {:?}\n\
                 [[oidc]]\nname = \"lab-sso\"\nissuer = \"https://sso.lab.example\"\n\
                 client_id = \"k\"\n",
                secret_path.display().to_string()
            ),
        )
        .unwrap();
        let env = |key: &str| {
            (key == "KACHERY_HUB_OIDC_LAB_SSO_CLIENT_SECRET").then(|| "env-secret".to_owned())
        };
        let config = HubConfig::load_from(Some(&path), env).unwrap();
        assert_eq!(config.allowed_domains, ["example.org"]);
        assert_eq!(config.oidc[0].client_secret.as_deref(), Some("file-secret"));
        assert_eq!(config.oidc[1].client_secret.as_deref(), Some("env-secret"));
        assert!(!format!("{config:?}").contains("file-secret"));
        assert!(!format!("{config:?}").contains("env-secret"));
        assert!(config.is_allowed_domain(&Email::parse("a@example.org").unwrap()));
        assert!(!config.is_allowed_domain(&Email::parse("a@example.org.evil").unwrap()));

        std::fs::write(
            &path,
            "[[oidc]]\nname = \"Bad Name\"\nissuer = \"google\"\nclient_id = \"x\"\n",
        )
        .unwrap();
        assert!(matches!(
            HubConfig::load_from(Some(&path), |_| None),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        assert!(matches!(
            HubConfig::load_from(Some(&path), |_| None),
            Err(ConfigError::Parse { .. })
        ));

        std::fs::write(&path, "public_url = \"ftp://x\"\n").unwrap();
        assert!(matches!(
            HubConfig::load_from(Some(&path), |_| None),
            Err(ConfigError::Invalid { .. })
        ));
    }
}

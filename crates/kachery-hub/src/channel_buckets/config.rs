//! A channel's bucket settings: the `bucket{backend, config}` of a create request checked
//! into a [`BucketConfig`], stored as the hub's own JSON, and turned into a backend.
//!
//! The wire forms (`S3Settings`, `GcsSettings`) refuse unknown fields, so a typo such as
//! `pathstyle` is an error rather than a silently ignored setting. What is stored is the
//! re-serialized typed value, never the client's object (SPEC §8.1).

use std::net::IpAddr;
use std::sync::Arc;

use kachery_bucket::{BucketBackend, BucketError};
#[cfg(feature = "gcs")]
use kachery_bucket::{GcsBucket, GcsBucketConfig, GcsServiceAccount};
use kachery_bucket::{S3Bucket, S3BucketConfig, S3SecretKey};
use kachery_protocol::user_api::SecretKind;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::vault::SecretString;

/// Backend names of `bucket.backend`.
pub const EMBEDDED: &str = "embedded";
pub const S3: &str = "s3";
pub const GCS: &str = "gcs";

/// A checked bucket configuration of one channel.
#[derive(Debug, Clone, PartialEq)]
pub enum BucketConfig {
    /// The hub's own bucket; no settings.
    Embedded,
    S3(S3Settings),
    Gcs(GcsSettings),
}

/// `bucket.config` of an `s3` channel (camelCase on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Settings {
    /// Service endpoint without the bucket; default AWS for the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Url>,
    pub region: String,
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    pub access_key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<Url>,
    /// Plain `http://`, accepted only for loopback hosts (test and demo stores).
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default = "default_true")]
    pub create_only_header: bool,
}

/// `bucket.config` of a `gcs` channel (camelCase on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcsSettings {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Storage endpoint; default `https://storage.googleapis.com`. Set for emulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<Url>,
    /// Plain `http://`, accepted only for loopback hosts (test and demo stores).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_true() -> bool {
    true
}

/// Why a bucket configuration was refused; the message is meant for the channel owner.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBucketConfig(pub String);

fn invalid(message: impl Into<String>) -> InvalidBucketConfig {
    InvalidBucketConfig(message.into())
}

impl BucketConfig {
    /// Checks the `bucket` part of a create request. Only settings are checked here;
    /// [`BucketConfig::build`] with the secret completes the check.
    pub fn parse(
        backend: &str,
        config: Option<&serde_json::Value>,
    ) -> Result<Self, InvalidBucketConfig> {
        let parsed = match backend {
            "" | EMBEDDED => {
                if config.is_some_and(|value| value != &serde_json::json!({})) {
                    return Err(invalid(
                        "bucket.config must be empty for the embedded bucket",
                    ));
                }
                return Ok(BucketConfig::Embedded);
            }
            S3 => BucketConfig::S3(settings(S3, config)?),
            GCS => BucketConfig::Gcs(settings(GCS, config)?),
            other => {
                return Err(invalid(format!(
                    "bucket backend {other:?} is unknown; use \"embedded\", \"s3\" or \"gcs\""
                )));
            }
        };
        parsed.check()?;
        Ok(parsed)
    }

    /// The configuration of a stored channel row.
    pub fn from_stored(backend: &str, stored: &str) -> Result<Self, InvalidBucketConfig> {
        let value: serde_json::Value = serde_json::from_str(stored)
            .map_err(|error| invalid(format!("stored bucket config is not JSON: {error}")))?;
        Self::parse(backend, Some(&value))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            BucketConfig::Embedded => EMBEDDED,
            BucketConfig::S3(_) => S3,
            BucketConfig::Gcs(_) => GCS,
        }
    }

    /// The hub's own JSON of the settings, for the `bucket_config` column.
    pub fn stored_json(&self) -> String {
        let value = match self {
            BucketConfig::Embedded => serde_json::json!({}),
            BucketConfig::S3(settings) => serde_json::to_value(settings).expect("serializes"),
            BucketConfig::Gcs(settings) => serde_json::to_value(settings).expect("serializes"),
        };
        value.to_string()
    }

    /// The settings as shown to the channel owner (`None` for the embedded bucket).
    pub fn view(&self) -> Option<serde_json::Value> {
        match self {
            BucketConfig::Embedded => None,
            BucketConfig::S3(settings) => serde_json::to_value(settings).ok(),
            BucketConfig::Gcs(settings) => serde_json::to_value(settings).ok(),
        }
    }

    /// The secret this backend signs with.
    pub fn secret_kind(&self) -> Option<SecretKind> {
        match self {
            BucketConfig::Embedded => None,
            BucketConfig::S3(_) => Some(SecretKind::S3SecretAccessKey),
            BucketConfig::Gcs(_) => Some(SecretKind::GcsServiceAccount),
        }
    }

    /// Where public reads start (`readBase` of getNodeConfig): keys are appended after
    /// a `/`. `None` when the bucket has no public base URL.
    pub fn read_base(&self) -> Option<String> {
        match self {
            BucketConfig::Embedded => None,
            BucketConfig::S3(settings) => settings.s3_config().read_base().ok().flatten(),
            #[cfg(feature = "gcs")]
            BucketConfig::Gcs(settings) => settings.gcs_config().read_base().ok().flatten(),
            #[cfg(not(feature = "gcs"))]
            BucketConfig::Gcs(_) => None,
        }
    }

    /// The backend for these settings and `secret`. No network I/O: a wrong key or a
    /// missing bucket shows at the first request. Embedded channels use the hub's bucket
    /// and never come here.
    pub fn build(
        &self,
        secret: Option<&SecretString>,
    ) -> Result<Arc<dyn BucketBackend>, InvalidBucketConfig> {
        let secret = || {
            secret.ok_or_else(|| {
                invalid(format!(
                    "{} buckets need the secret {}",
                    self.backend_name(),
                    self.secret_kind().map_or("", SecretKind::as_str)
                ))
            })
        };
        match self {
            BucketConfig::Embedded => Err(invalid("the embedded bucket is built by the hub")),
            BucketConfig::S3(settings) => {
                let key = S3SecretKey::new(secret()?.expose());
                let bucket = S3Bucket::new(settings.s3_config(), key).map_err(bucket_error)?;
                Ok(bucket)
            }
            #[cfg(feature = "gcs")]
            BucketConfig::Gcs(settings) => {
                let account =
                    GcsServiceAccount::from_json(secret()?.expose()).map_err(bucket_error)?;
                let bucket =
                    GcsBucket::new(settings.gcs_config(), account).map_err(bucket_error)?;
                Ok(bucket)
            }
            #[cfg(not(feature = "gcs"))]
            BucketConfig::Gcs(_) => Err(invalid("this hub was built without gcs buckets")),
        }
    }

    fn check(&self) -> Result<(), InvalidBucketConfig> {
        match self {
            BucketConfig::Embedded => Ok(()),
            BucketConfig::S3(settings) => {
                check_http(settings.allow_http, settings.endpoint.as_ref(), "endpoint")?;
                check_http(
                    settings.allow_http,
                    settings.public_base_url.as_ref(),
                    "publicBaseUrl",
                )?;
                settings.s3_config().validate().map_err(bucket_error)
            }
            #[cfg(feature = "gcs")]
            BucketConfig::Gcs(settings) => {
                check_http(settings.allow_http, settings.endpoint.as_ref(), "endpoint")?;
                check_http(
                    settings.allow_http,
                    settings.public_base_url.as_ref(),
                    "publicBaseUrl",
                )?;
                settings.gcs_config().validate().map_err(bucket_error)
            }
            #[cfg(not(feature = "gcs"))]
            BucketConfig::Gcs(_) => Err(invalid("this hub was built without gcs buckets")),
        }
    }
}

impl S3Settings {
    fn s3_config(&self) -> S3BucketConfig {
        let mut config = S3BucketConfig::new(&self.region, &self.bucket, &self.access_key_id);
        config.endpoint = self.endpoint.clone();
        config.prefix = self.prefix.clone();
        config.path_style = self.path_style;
        config.public_base_url = self.public_base_url.clone();
        config.allow_http = self.allow_http;
        config.create_only_header = self.create_only_header;
        config
    }
}

#[cfg(feature = "gcs")]
impl GcsSettings {
    fn gcs_config(&self) -> GcsBucketConfig {
        let mut config = GcsBucketConfig::new(&self.bucket);
        config.endpoint = self.endpoint.clone();
        config.prefix = self.prefix.clone();
        config.public_base_url = self.public_base_url.clone();
        config.allow_http = self.allow_http;
        config
    }
}

fn settings<T: serde::de::DeserializeOwned>(
    backend: &str,
    config: Option<&serde_json::Value>,
) -> Result<T, InvalidBucketConfig> {
    let value = config
        .ok_or_else(|| invalid(format!("{backend} buckets need bucket.config")))?
        .clone();
    serde_json::from_value(value)
        .map_err(|error| invalid(format!("bucket.config of an {backend} bucket: {error}")))
}

/// Plain HTTP is for stores on this machine only: anyone on a network path would see
/// the objects and could replay presigned requests.
fn check_http(allow_http: bool, url: Option<&Url>, field: &str) -> Result<(), InvalidBucketConfig> {
    let Some(url) = url else { return Ok(()) };
    if !allow_http || url.scheme() != "http" {
        return Ok(());
    }
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {url} uses plain http on a non-loopback host; use https"
        )))
    }
}

fn bucket_error(error: BucketError) -> InvalidBucketConfig {
    InvalidBucketConfig(error.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn s3(config: serde_json::Value) -> Result<BucketConfig, InvalidBucketConfig> {
        BucketConfig::parse(S3, Some(&config))
    }

    #[test]
    fn s3_settings_round_trip_through_the_stored_form() {
        let parsed = s3(json!({
            "endpoint": "http://127.0.0.1:9000",
            "region": "us-east-1",
            "bucket": "lab-data",
            "prefix": "kachery",
            "pathStyle": true,
            "accessKeyId": "AKID",
            "allowHttp": true
        }))
        .unwrap();
        let stored = parsed.stored_json();
        assert_eq!(BucketConfig::from_stored(S3, &stored).unwrap(), parsed);
        assert_eq!(parsed.secret_kind(), Some(SecretKind::S3SecretAccessKey));
        assert_eq!(parsed.read_base(), None);
    }

    #[test]
    fn unknown_fields_missing_fields_and_bad_values_are_refused_by_name() {
        let typo =
            s3(json!({"region": "r", "bucket": "abc", "accessKeyId": "A", "pathstyle": true}));
        assert!(typo.unwrap_err().0.contains("pathstyle"));
        let missing = s3(json!({"region": "r", "bucket": "abc"}));
        assert!(missing.unwrap_err().0.contains("accessKeyId"));
        let bad_bucket = s3(json!({"region": "r", "bucket": "A B", "accessKeyId": "A"}));
        assert!(bad_bucket.unwrap_err().0.contains("bucket"));
        assert!(
            BucketConfig::parse(S3, None)
                .unwrap_err()
                .0
                .contains("bucket.config")
        );
        let unknown = BucketConfig::parse("azure", None).unwrap_err();
        assert!(unknown.0.contains("azure"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let remote = s3(json!({
            "endpoint": "http://minio.lab.example:9000", "region": "r", "bucket": "abc",
            "accessKeyId": "A", "pathStyle": true, "allowHttp": true
        }));
        assert!(remote.unwrap_err().0.contains("non-loopback"));
    }

    #[test]
    fn public_read_base_is_the_public_url_plus_prefix() {
        let parsed = s3(json!({
            "region": "us-east-1", "bucket": "abc", "accessKeyId": "A",
            "prefix": "/team/", "publicBaseUrl": "https://cdn.example.org/data/"
        }))
        .unwrap();
        assert_eq!(
            parsed.read_base().as_deref(),
            Some("https://cdn.example.org/data/team")
        );
    }

    #[test]
    fn the_embedded_bucket_takes_no_settings() {
        assert_eq!(
            BucketConfig::parse("", None).unwrap(),
            BucketConfig::Embedded
        );
        assert!(BucketConfig::parse(EMBEDDED, Some(&json!({"bucket": "x"}))).is_err());
    }
}

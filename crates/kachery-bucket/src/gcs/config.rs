//! Settings of a Google Cloud Storage bucket and its service-account key.
//!
//! [`GcsBucketConfig`] is what a channel owner edits (nothing secret in it); the key file
//! travels separately as a [`GcsServiceAccount`], which holds the parsed RSA key and
//! never prints it. [`ResolvedGcsConfig`] is the checked form the backend works from.

use ring::signature::RsaKeyPair;
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use super::sign::V4Signer;
use crate::backend::BucketError;

/// The public endpoint of Google Cloud Storage.
pub const GCS_ENDPOINT: &str = "https://storage.googleapis.com";

/// Where a GCS bucket lives (SPEC §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsBucketConfig {
    /// Bucket name (3–63 characters of `[a-z0-9._-]`).
    pub bucket: String,
    /// Folder inside the bucket for kachery's keys; default none (the bucket root).
    pub prefix: Option<String>,
    /// Storage endpoint. Default (`None`): `https://storage.googleapis.com`. Emulators
    /// such as fake-gcs-server set their own.
    pub endpoint: Option<Url>,
    /// Unsigned base URL serving the bucket root to anyone (`readMode = "public"`), e.g.
    /// `https://storage.googleapis.com/<bucket>`. Default none: reads are presigned.
    pub public_base_url: Option<Url>,
    /// Accept `http://` endpoints; only for loopback emulators. Default false.
    pub allow_http: bool,
}

impl GcsBucketConfig {
    /// A config for `bucket` with every optional setting at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: None,
            endpoint: None,
            public_base_url: None,
            allow_http: false,
        }
    }

    /// Checks every setting without a key or any I/O; the error names the bad one.
    pub fn validate(&self) -> Result<(), BucketError> {
        ResolvedGcsConfig::resolve(self).map(|_| ())
    }

    /// The public base URL plus the prefix, or `None` without a public base URL.
    pub fn read_base(&self) -> Result<Option<String>, BucketError> {
        let resolved = ResolvedGcsConfig::resolve(self)?;
        Ok(resolved.public_base.map(|base| {
            let prefix = resolved.key_prefix.trim_end_matches('/');
            if prefix.is_empty() {
                base
            } else {
                format!("{base}/{prefix}")
            }
        }))
    }
}

/// A service-account key: the account's e-mail and its RSA private key, parsed once.
/// `Debug` shows the e-mail only; the PEM text is wiped after parsing.
pub struct GcsServiceAccount {
    client_email: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for GcsServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// The fields of a key file this backend uses; the rest is ignored.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
}

impl GcsServiceAccount {
    /// Parses a service-account key file (the JSON Google Cloud hands out). Errors name
    /// the problem, never quote the key.
    pub fn from_json(text: &str) -> Result<Self, BucketError> {
        // The serde error may quote input, so only its category and position are kept.
        let file: KeyFile = serde_json::from_str(text).map_err(|error| {
            invalid(format!(
                "the service-account key is not a key file: {} at line {} column {}",
                category_name(&error),
                error.line(),
                error.column()
            ))
        })?;
        let private_key = Zeroizing::new(file.private_key);
        if file.kind != "service_account" {
            return Err(invalid(format!(
                "the key file has type {:?}; a \"service_account\" key is needed",
                file.kind
            )));
        }
        if !file.client_email.contains('@') || file.client_email.len() > 254 {
            return Err(invalid(
                "client_email of the key file is not an e-mail".to_owned(),
            ));
        }
        let der = pkcs8_der(&private_key)?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|error| {
            invalid(format!(
                "private_key of the key file is not a usable RSA key ({error})"
            ))
        })?;
        Ok(Self {
            client_email: file.client_email,
            key,
        })
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    pub(crate) fn into_signer(self) -> V4Signer {
        V4Signer::new(self.client_email, self.key)
    }
}

fn category_name(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "a missing or mistyped field",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

/// The DER bytes inside a `-----BEGIN PRIVATE KEY-----` PEM block.
fn pkcs8_der(pem: &str) -> Result<Zeroizing<Vec<u8>>, BucketError> {
    use base64::Engine as _;

    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let body = pem
        .trim()
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.strip_suffix(END))
        .ok_or_else(|| {
            invalid("private_key of the key file is not a PKCS#8 PEM block".to_owned())
        })?;
    let base64_text: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(base64_text.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| invalid("private_key of the key file is not valid base64".to_owned()))
}

/// A validated [`GcsBucketConfig`].
#[derive(Debug, Clone)]
pub(crate) struct ResolvedGcsConfig {
    pub scheme: String,
    /// `host` or `host:port` of the endpoint.
    pub host: String,
    /// Path of the endpoint without a trailing `/` (empty for the public endpoint).
    pub base_path: String,
    pub bucket: String,
    /// The prefix followed by `/`, or empty.
    pub key_prefix: String,
    pub public_base: Option<String>,
}

impl ResolvedGcsConfig {
    pub fn resolve(config: &GcsBucketConfig) -> Result<Self, BucketError> {
        let bucket_ok = (3..=63).contains(&config.bucket.len())
            && config
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !bucket_ok {
            return Err(invalid(format!(
                "bucket {:?} must be 3 to 63 lowercase letters, digits, '.', '_' or '-'",
                config.bucket
            )));
        }
        let key_prefix = normalized_prefix(config.prefix.as_deref())?;

        let endpoint = match &config.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => Url::parse(GCS_ENDPOINT).expect("the GCS endpoint is a URL"),
        };
        check_base_url("endpoint", &endpoint, config.allow_http)?;
        let host = match endpoint.port() {
            Some(port) => format!("{}:{port}", endpoint.host_str().unwrap_or_default()),
            None => endpoint.host_str().unwrap_or_default().to_owned(),
        };
        let public_base = match &config.public_base_url {
            Some(base) => {
                check_base_url("public base url", base, config.allow_http)
                    .map_err(|_| BucketError::InvalidPublicBase(base.to_string()))?;
                Some(base.as_str().trim_end_matches('/').to_owned())
            }
            None => None,
        };
        Ok(Self {
            scheme: endpoint.scheme().to_owned(),
            host,
            base_path: endpoint.path().trim_end_matches('/').to_owned(),
            bucket: config.bucket.clone(),
            key_prefix,
            public_base,
        })
    }
}

fn invalid(reason: String) -> BucketError {
    BucketError::InvalidGcsConfig(reason)
}

/// `None`, `""` and `"/"` mean no prefix; else `/`-separated segments of
/// `[A-Za-z0-9._-]` (not `.` or `..`), returned with one trailing `/`.
fn normalized_prefix(prefix: Option<&str>) -> Result<String, BucketError> {
    let trimmed = prefix.unwrap_or("").trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let segments_ok = trimmed.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    if trimmed.len() > 200 || !segments_ok {
        return Err(invalid(format!(
            "prefix {trimmed:?} must be at most 200 characters: '/'-separated segments of \
             letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(format!("{trimmed}/"))
}

fn check_base_url(what: &str, url: &Url, allow_http: bool) -> Result<(), BucketError> {
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => allow_http,
        _ => false,
    };
    if !scheme_ok {
        return Err(invalid(format!(
            "{what} {url} must use https (plain http needs allow_http, for loopback emulators)"
        )));
    }
    if url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(format!(
            "{what} {url} must have a host and no credentials, query or fragment"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_endpoint_is_google_and_prefix_is_normalized() {
        let mut config = GcsBucketConfig::new("lab-data");
        config.prefix = Some("/kachery/".to_owned());
        let resolved = ResolvedGcsConfig::resolve(&config).unwrap();
        assert_eq!(resolved.host, "storage.googleapis.com");
        assert_eq!(resolved.key_prefix, "kachery/");
        assert_eq!(resolved.base_path, "");
    }

    #[test]
    fn emulator_endpoints_keep_their_port_and_need_allow_http() {
        let mut config = GcsBucketConfig::new("lab-data");
        config.endpoint = Some(Url::parse("http://127.0.0.1:4443").unwrap());
        assert!(ResolvedGcsConfig::resolve(&config).is_err());
        config.allow_http = true;
        assert_eq!(
            ResolvedGcsConfig::resolve(&config).unwrap().host,
            "127.0.0.1:4443"
        );
    }

    #[test]
    fn key_files_are_checked_without_quoting_them() {
        let not_json =
            GcsServiceAccount::from_json("-----BEGIN PRIVATE KEY----- secret").unwrap_err();
        assert!(!not_json.to_string().contains("secret"), "{not_json}");
        let user_key = GcsServiceAccount::from_json(
            r#"{"type": "authorized_user", "client_email": "a@b", "private_key": "x"}"#,
        )
        .unwrap_err();
        assert!(
            user_key.to_string().contains("service_account"),
            "{user_key}"
        );
        let bad_pem = GcsServiceAccount::from_json(
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "hunter2"}"#,
        )
        .unwrap_err();
        assert!(!bad_pem.to_string().contains("hunter2"), "{bad_pem}");
    }
}

//! Settings of an S3-compatible bucket and their validation.
//!
//! [`S3BucketConfig`] is what a channel owner edits (no secret in it, so it may be shown
//! and logged); the secret access key travels separately in an [`S3SecretKey`], which
//! never prints. [`ResolvedS3Config`] is the checked form the backend works from: the
//! base URL of the bucket (path-style or virtual-hosted) and the normalized key prefix.

use url::Url;
use zeroize::Zeroizing;

use crate::backend::BucketError;

/// Where an S3-compatible bucket lives and how to address it (SPEC §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3BucketConfig {
    /// Service endpoint without the bucket, e.g. `https://s3.eu-west-1.amazonaws.com`,
    /// `https://<account>.r2.cloudflarestorage.com` or `http://127.0.0.1:9000`. Default
    /// (`None`): AWS, `https://s3.<region>.amazonaws.com`.
    pub endpoint: Option<Url>,
    /// Signing region: an AWS region, `auto` for R2, `garage` for a default Garage.
    pub region: String,
    /// Bucket name (3–63 characters of `[a-z0-9._-]`).
    pub bucket: String,
    /// Folder inside the bucket that holds kachery's keys (`a/b` puts blobs under
    /// `a/b/<channel>/sha1/…`). Default none: keys start at the bucket root.
    pub prefix: Option<String>,
    /// Address the bucket as `<endpoint>/<bucket>/<key>` (MinIO, Garage and most
    /// self-hosted stores) instead of `<bucket>.<endpoint host>/<key>` (AWS default).
    pub path_style: bool,
    /// Access key id; its secret is passed separately as an [`S3SecretKey`].
    pub access_key_id: String,
    /// Unsigned base URL that serves the bucket root to anyone (`readMode = "public"`);
    /// the prefix and key are appended to it. Default none: reads are presigned.
    pub public_base_url: Option<Url>,
    /// Accept `http://` endpoints and public base URLs. Only for loopback test stores:
    /// over plain HTTP anyone on the path sees the objects and may replay requests.
    /// Default false.
    pub allow_http: bool,
    /// Sign `If-None-Match: *` into upload URLs of create-only keys (blobs, feed
    /// segments), so the store itself refuses to overwrite them (412). AWS, R2, MinIO and
    /// s3s honour it; turn it off for a store that rejects or ignores the header.
    /// Default true.
    pub create_only_header: bool,
}

impl S3BucketConfig {
    /// A config for `bucket` in `region` with every optional setting at its default.
    pub fn new(
        region: impl Into<String>,
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: None,
            region: region.into(),
            bucket: bucket.into(),
            prefix: None,
            path_style: false,
            access_key_id: access_key_id.into(),
            public_base_url: None,
            allow_http: false,
            create_only_header: true,
        }
    }
}

impl S3BucketConfig {
    /// Checks every setting without a secret or any I/O; the error names the bad one.
    pub fn validate(&self) -> Result<(), BucketError> {
        ResolvedS3Config::resolve(self).map(|_| ())
    }

    /// The unsigned URL that keys are appended to (after a `/`) for public reads: the
    /// public base URL plus the prefix, or `None` without a public base URL.
    pub fn read_base(&self) -> Result<Option<String>, BucketError> {
        let resolved = ResolvedS3Config::resolve(self)?;
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

/// The secret access key of an S3 bucket. It never appears in `Debug` output, has no
/// `Display`, and its memory is wiped when dropped.
#[derive(Clone)]
pub struct S3SecretKey(Zeroizing<String>);

impl S3SecretKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself, for the signers only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for S3SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3SecretKey(<redacted>)")
    }
}

/// A validated [`S3BucketConfig`] in the form the backend uses.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedS3Config {
    /// URL of the bucket root, without a trailing `/`: `http://host:port/bucket` in path
    /// style, `https://bucket.host` virtual-hosted.
    pub bucket_url: String,
    /// The prefix followed by `/`, or empty.
    pub key_prefix: String,
    /// The public base URL without a trailing `/`.
    pub public_base: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub allow_http: bool,
    pub create_only_header: bool,
}

impl ResolvedS3Config {
    pub fn resolve(config: &S3BucketConfig) -> Result<Self, BucketError> {
        check_region(&config.region)?;
        check_bucket_name(&config.bucket)?;
        check_access_key_id(&config.access_key_id)?;
        let key_prefix = normalized_prefix(config.prefix.as_deref())?;

        let endpoint = match &config.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => {
                let default = format!("https://s3.{}.amazonaws.com", config.region);
                Url::parse(&default).map_err(|_| invalid(format!("region {:?}", config.region)))?
            }
        };
        check_base_url("endpoint", &endpoint, config.allow_http)?;
        let bucket_url = bucket_url(&endpoint, &config.bucket, config.path_style)?;

        let public_base = match &config.public_base_url {
            Some(base) => {
                check_base_url("public base url", base, config.allow_http)
                    .map_err(|_| BucketError::InvalidPublicBase(base.to_string()))?;
                Some(base.as_str().trim_end_matches('/').to_owned())
            }
            None => None,
        };

        Ok(Self {
            bucket_url,
            key_prefix,
            public_base,
            region: config.region.clone(),
            bucket: config.bucket.clone(),
            access_key_id: config.access_key_id.clone(),
            allow_http: config.allow_http,
            create_only_header: config.create_only_header,
        })
    }
}

fn invalid(reason: String) -> BucketError {
    BucketError::InvalidS3Config(reason)
}

fn check_region(region: &str) -> Result<(), BucketError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "region {region:?} must be 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}

fn check_bucket_name(bucket: &str) -> Result<(), BucketError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "bucket {bucket:?} must be 3 to 63 lowercase letters, digits, '.', '_' or '-'"
        )))
    }
}

fn check_access_key_id(access_key_id: &str) -> Result<(), BucketError> {
    let ok = !access_key_id.is_empty()
        && access_key_id.len() <= 256
        && access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        // The id is not secret, but an id full of odd bytes might be a pasted secret.
        Err(invalid(
            "access key id must be 1 to 256 printable ASCII characters without spaces or '/'"
                .to_owned(),
        ))
    }
}

/// `None`, `""` and `"/"` mean no prefix; otherwise `/`-separated segments of
/// `[A-Za-z0-9._-]` (not `.` or `..`), returned with one trailing `/`. Keys are then made
/// of URL-safe characters only, so presigned URLs and the store client never disagree on
/// how a key is percent-encoded.
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

/// An endpoint or public base must be http(s) (http only when allowed), with a host and
/// without credentials, query or fragment.
fn check_base_url(what: &str, url: &Url, allow_http: bool) -> Result<(), BucketError> {
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => allow_http,
        _ => false,
    };
    if !scheme_ok {
        let hint = if url.scheme() == "http" {
            " (plain http needs allow_http = true, meant for loopback test stores)"
        } else {
            ""
        };
        return Err(invalid(format!("{what} {url} must use https{hint}")));
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

fn bucket_url(endpoint: &Url, bucket: &str, path_style: bool) -> Result<String, BucketError> {
    if path_style {
        let base = endpoint.as_str().trim_end_matches('/');
        return Ok(format!("{base}/{bucket}"));
    }

    // Virtual-hosted style puts the bucket in the host name, which needs a DNS name.
    let host = match endpoint.host() {
        Some(url::Host::Domain(host)) => host.to_owned(),
        _ => {
            return Err(invalid(format!(
                "endpoint {endpoint} is an IP address; set path_style = true to reach \
                 bucket {bucket:?} on it"
            )));
        }
    };
    let mut url = endpoint.clone();
    url.set_host(Some(&format!("{bucket}.{host}")))
        .map_err(|_| invalid(format!("bucket {bucket:?} cannot be a host name label")))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3BucketConfig {
        S3BucketConfig::new("us-east-1", "kachery-data", "AKIDEXAMPLE")
    }

    #[test]
    fn aws_default_is_virtual_hosted_https() {
        let resolved = ResolvedS3Config::resolve(&config()).unwrap();
        assert_eq!(
            resolved.bucket_url,
            "https://kachery-data.s3.us-east-1.amazonaws.com"
        );
        assert_eq!(resolved.key_prefix, "");
    }

    #[test]
    fn path_style_appends_the_bucket_to_the_endpoint() {
        let mut config = config();
        config.endpoint = Some(Url::parse("http://127.0.0.1:9000/").unwrap());
        config.path_style = true;
        config.allow_http = true;
        config.prefix = Some("/team/kachery/".to_owned());

        let resolved = ResolvedS3Config::resolve(&config).unwrap();
        assert_eq!(resolved.bucket_url, "http://127.0.0.1:9000/kachery-data");
        assert_eq!(resolved.key_prefix, "team/kachery/");
    }

    #[test]
    fn refuses_plain_http_unless_allowed() {
        let mut config = config();
        config.endpoint = Some(Url::parse("http://minio.internal:9000").unwrap());
        config.path_style = true;
        let error = ResolvedS3Config::resolve(&config).unwrap_err();
        assert!(error.to_string().contains("allow_http"), "{error}");
    }

    #[test]
    fn refuses_virtual_hosted_on_an_ip_endpoint() {
        let mut config = config();
        config.endpoint = Some(Url::parse("https://10.0.0.5").unwrap());
        let error = ResolvedS3Config::resolve(&config).unwrap_err();
        assert!(error.to_string().contains("path_style"), "{error}");
    }

    #[test]
    fn refuses_prefixes_that_need_encoding_or_escape_the_folder() {
        for prefix in ["a b", "a/../b", "a//b", "ü", "a?b"] {
            let mut config = config();
            config.prefix = Some(prefix.to_owned());
            assert!(
                ResolvedS3Config::resolve(&config).is_err(),
                "prefix {prefix:?} was accepted"
            );
        }
    }

    #[test]
    fn secret_never_prints() {
        let secret = S3SecretKey::new("wJalrXUtnFEMI/K7MDENG");
        assert_eq!(format!("{secret:?}"), "S3SecretKey(<redacted>)");
    }
}

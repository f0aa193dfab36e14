//! SigV4 query-string presigning with the `aws-sigv4` crate.
//!
//! Why not `object_store`'s `Signer`: its canonicalization drops `content-length` from the
//! signed headers (and refuses it as an extra signed header), so an upload URL could not
//! bind the exact size SPEC §7.3 requires; it is also async while presigning here is a
//! synchronous, local computation. `aws-sigv4` (the signer of the official AWS SDK) signs
//! every header it is given, `content-length` included, and takes the signing time as an
//! argument. GET and HEAD go through the same code so every URL this backend hands out is
//! built in one place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use url::Url;

use super::config::S3SecretKey;
use crate::backend::BucketError;

/// The longest validity SigV4 allows for a presigned URL: 7 days.
const MAX_EXPIRES_IN_SECS: u64 = 7 * 24 * 3600;

/// Signs URLs with one access key.
pub(crate) struct Presigner {
    credentials: Credentials,
    region: String,
}

/// A presigned URL and the moment (Unix ms) it stops being accepted.
pub(crate) struct SignedUrl {
    pub url: String,
    pub expires_at_ms: i64,
}

impl Presigner {
    pub fn new(access_key_id: &str, secret: &S3SecretKey, region: &str) -> Self {
        // `Credentials` redacts the secret in its own `Debug`.
        let credentials = Credentials::new(
            access_key_id,
            secret.expose(),
            None,
            None,
            "kachery-channel",
        );
        Self {
            credentials,
            region: region.to_owned(),
        }
    }

    /// Presigns `method` on `url` (already percent-encoded, no query), binding `headers`
    /// (lowercase names; the node must send exactly these) until `expires_at_ms`.
    ///
    /// SigV4 counts validity in whole seconds from `X-Amz-Date`. Normally that is now; an
    /// expiry less than a second away (or past) is signed as a one-second URL ending at
    /// `expires_at_ms`, so the URL is never valid later than asked.
    pub fn presign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        expires_at_ms: i64,
        now: SystemTime,
    ) -> Result<SignedUrl, BucketError> {
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| BucketError::Presign("the system clock is before 1970".into()))?
            .as_secs();
        let expires_at_secs = u64::try_from(expires_at_ms.div_euclid(1000)).map_err(|_| {
            BucketError::Presign(format!("expiry {expires_at_ms} ms is before 1970").into())
        })?;
        let (signed_at_secs, expires_in_secs) = if expires_at_secs > now_secs {
            (now_secs, expires_at_secs - now_secs)
        } else {
            (expires_at_secs.saturating_sub(1), 1)
        };
        if expires_in_secs > MAX_EXPIRES_IN_SECS {
            return Err(BucketError::ExpiryTooFar {
                expires_in_secs,
                max_secs: MAX_EXPIRES_IN_SECS,
            });
        }

        let identity = self.credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires_in_secs));
        // S3 canonicalizes paths as sent: encoded once, never normalized.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(UNIX_EPOCH + Duration::from_secs(signed_at_secs))
            .settings(settings)
            .build()
            .map_err(|error| BucketError::Presign(Box::new(error)))?
            .into();

        // The body is unknown when signing: `UNSIGNED-PAYLOAD`. Its size is bound through
        // the signed `content-length` header instead.
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(name, value)| (*name, value.as_str())),
            SignableBody::UnsignedPayload,
        )
        .map_err(|error| BucketError::Presign(Box::new(error)))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| BucketError::Presign(Box::new(error)))?
            .into_parts();

        let mut signed = Url::parse(url)
            .map_err(|error| BucketError::Presign(format!("bad object url: {error}").into()))?;
        {
            let mut query = signed.query_pairs_mut();
            for (name, value) in instructions.params() {
                query.append_pair(name, value);
            }
        }
        let expires_at_secs = signed_at_secs + expires_in_secs;
        Ok(SignedUrl {
            url: signed.into(),
            expires_at_ms: i64::try_from(expires_at_secs * 1000).unwrap_or(i64::MAX),
        })
    }
}

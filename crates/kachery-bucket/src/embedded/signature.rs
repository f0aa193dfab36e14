//! Presigned URLs of the embedded bucket: what the MAC covers and how it travels.
//!
//! The signing string is UTF-8, five fields joined by `\n`:
//!
//! ```text
//! kachery-embedded-bucket-v1      domain separator (version of this scheme)
//! PUT | GET | HEAD                the only method the URL is good for
//! <key>                           the exact bucket key, e.g. lab.one/sha1/a9/99/3e/a999…
//! <size> | -                      exact body size in bytes for PUT, "-" for reads
//! <exp>                           expiry, decimal Unix milliseconds
//! ```
//!
//! `sig` is the lowercase hex HMAC-SHA256 of that string under the hub-derived 32-byte MAC
//! key. The fields cannot run into each other: keys are validated bucket keys (no newline),
//! methods are a fixed set and numbers are decimal. A URL is
//! `<public_base>/<key>?exp=<exp>&size=<size>&sig=<sig>` (no `size` for reads). The MAC is
//! checked before the expiry, so only authentic URLs learn that they expired, and it is
//! compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const DOMAIN: &str = "kachery-embedded-bucket-v1";

/// The method a URL is signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignedMethod {
    Put,
    Get,
    Head,
}

impl SignedMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SignedMethod::Put => "PUT",
            SignedMethod::Get => "GET",
            SignedMethod::Head => "HEAD",
        }
    }
}

/// Why a presented URL does not authorize the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlCheckError {
    #[error("the url has no valid exp, size and sig parameters")]
    MalformedQuery,
    #[error("the url signature does not match this method, key and size")]
    InvalidSignature,
    #[error("the url expired")]
    Expired,
}

/// Signs and checks embedded-bucket URLs with the hub-derived MAC key.
#[derive(Clone)]
pub(crate) struct UrlSigner {
    mac_key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner { mac_key: <redacted> }")
    }
}

impl UrlSigner {
    pub(crate) fn new(mac_key: [u8; 32]) -> Self {
        Self { mac_key }
    }

    /// The query string (without `?`) authorizing `method` on `key` until `expires_at_ms`.
    pub(crate) fn query(
        &self,
        method: SignedMethod,
        key: &str,
        size: Option<u64>,
        expires_at_ms: i64,
    ) -> String {
        let tag = self
            .mac(method, key, size, expires_at_ms)
            .finalize()
            .into_bytes();
        let sig = hex::encode(tag);
        match size {
            Some(size) => format!("exp={expires_at_ms}&size={size}&sig={sig}"),
            None => format!("exp={expires_at_ms}&sig={sig}"),
        }
    }

    /// Checks a presented query for `method` on `key` at `now_ms`. Returns the signed size
    /// (always `Some` for PUT, `None` for reads).
    pub(crate) fn check(
        &self,
        method: SignedMethod,
        key: &str,
        raw_query: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<u64>, UrlCheckError> {
        let query = SignedQuery::parse(raw_query.unwrap_or(""))?;
        if (method == SignedMethod::Put) != query.size.is_some() {
            return Err(UrlCheckError::InvalidSignature);
        }

        self.mac(method, key, query.size, query.exp)
            .verify_slice(&query.sig)
            .map_err(|_| UrlCheckError::InvalidSignature)?;

        if now_ms > query.exp {
            return Err(UrlCheckError::Expired);
        }
        Ok(query.size)
    }

    fn mac(&self, method: SignedMethod, key: &str, size: Option<u64>, exp: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.mac_key).expect("hmac accepts keys of any length");
        mac.update(signing_string(method, key, size, exp).as_bytes());
        mac
    }
}

fn signing_string(method: SignedMethod, key: &str, size: Option<u64>, exp: i64) -> String {
    let size = size.map_or_else(|| "-".to_owned(), |size| size.to_string());
    format!("{DOMAIN}\n{}\n{key}\n{size}\n{exp}", method.as_str())
}

/// The credential parameters of a URL. Any repeated or unknown parameter is refused, so
/// nothing unsigned can ride along.
struct SignedQuery {
    exp: i64,
    size: Option<u64>,
    sig: Vec<u8>,
}

impl SignedQuery {
    fn parse(raw: &str) -> Result<Self, UrlCheckError> {
        let (mut exp, mut size, mut sig) = (None, None, None);
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let slot = match &*name {
                "exp" => &mut exp,
                "size" => &mut size,
                "sig" => &mut sig,
                _ => return Err(UrlCheckError::MalformedQuery),
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(UrlCheckError::MalformedQuery);
            }
        }

        let exp = exp.and_then(|exp| exp.parse::<i64>().ok());
        let size = size.map(|size| size.parse::<u64>()).transpose();
        let sig = sig.and_then(|sig| hex::decode(sig).ok());
        match (exp, size, sig) {
            (Some(exp), Ok(size), Some(sig)) => Ok(Self { exp, size, sig }),
            _ => Err(UrlCheckError::MalformedQuery),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "lab.one/sha1/a9/99/3e/a9993e364706816aba3e25717850c26c9cd0d89d";

    #[test]
    fn signing_string_has_fixed_layout() {
        assert_eq!(
            signing_string(SignedMethod::Put, KEY, Some(3), 1_700_000_000_000),
            format!("kachery-embedded-bucket-v1\nPUT\n{KEY}\n3\n1700000000000")
        );
        assert_eq!(
            signing_string(SignedMethod::Head, KEY, None, 5),
            format!("kachery-embedded-bucket-v1\nHEAD\n{KEY}\n-\n5")
        );
    }

    #[test]
    fn signature_matches_a_fixed_vector() {
        // Independent check: printf 'kachery-embedded-bucket-v1\nPUT\n<KEY>\n3\n1700000000000' |
        //   openssl dgst -sha256 -mac HMAC -macopt hexkey:0707…07 (32 bytes of 0x07).
        let signer = UrlSigner::new([7; 32]);
        let query = signer.query(SignedMethod::Put, KEY, Some(3), 1_700_000_000_000);
        let expected_sig = "b80d547809a020fcb818671229c64ba62d1c25e00ca0a42db05fb93fed1ff3d5";
        assert_eq!(
            query,
            format!("exp=1700000000000&size=3&sig={expected_sig}")
        );
    }

    #[test]
    fn check_accepts_its_own_urls_and_rejects_changes() {
        let signer = UrlSigner::new([7; 32]);
        let query = signer.query(SignedMethod::Put, KEY, Some(3), 1_000);

        assert_eq!(
            signer.check(SignedMethod::Put, KEY, Some(&query), 1_000),
            Ok(Some(3))
        );
        assert_eq!(
            signer.check(SignedMethod::Put, KEY, Some(&query), 1_001),
            Err(UrlCheckError::Expired)
        );
        assert_eq!(
            signer.check(SignedMethod::Get, KEY, Some(&query), 0),
            Err(UrlCheckError::InvalidSignature)
        );
        let other_key = KEY.replace("lab.one", "lab.two");
        assert_eq!(
            signer.check(SignedMethod::Put, &other_key, Some(&query), 0),
            Err(UrlCheckError::InvalidSignature)
        );
        let bigger = query.replace("size=3", "size=4");
        assert_eq!(
            signer.check(SignedMethod::Put, KEY, Some(&bigger), 0),
            Err(UrlCheckError::InvalidSignature)
        );
        let repeated = format!("{query}&exp=5");
        assert_eq!(
            signer.check(SignedMethod::Put, KEY, Some(&repeated), 0),
            Err(UrlCheckError::MalformedQuery)
        );
        assert_eq!(
            signer.check(SignedMethod::Put, KEY, None, 0),
            Err(UrlCheckError::MalformedQuery)
        );
    }

    #[test]
    fn another_mac_key_rejects_the_url() {
        let query = UrlSigner::new([7; 32]).query(SignedMethod::Get, KEY, None, 1_000);
        assert_eq!(
            UrlSigner::new([8; 32]).check(SignedMethod::Get, KEY, Some(&query), 0),
            Err(UrlCheckError::InvalidSignature)
        );
    }
}

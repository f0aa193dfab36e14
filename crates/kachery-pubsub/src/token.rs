//! Tokens for the embedded broker: claims the hub signs with a key only it and its
//! in-process broker know (SPEC §6.2).
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, domain ‖ claims JSON))`.
//! The MAC covers the exact JSON bytes that travel in the token, prefixed by a domain tag,
//! so a MAC made with this key for another purpose can never pass as a broker token. The
//! hub decides the bands; the token only carries them to the broker.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use kachery_protocol::{Band, ChannelName, Email, NodeId, Nonce};

/// Prefix of every MAC input, so broker-token MACs are useless anywhere else.
const MAC_DOMAIN: &[u8] = b"kachery/embedded-broker-token/v1\n";

type HmacSha256 = Hmac<Sha256>;

/// What a token allows: one node record on one channel, the bands it may use, until `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenClaims {
    pub node_id: NodeId,
    pub owner: Email,
    pub channel: ChannelName,
    pub publish: Vec<Band>,
    pub subscribe: Vec<Band>,
    /// Expiry, Unix ms.
    pub exp: i64,
    /// Unique token id, for audit lines.
    pub jti: Nonce,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token is not two base64url parts holding JSON claims")]
    Malformed,
    #[error("token MAC does not match; it was not issued by this hub or was altered")]
    BadMac,
    #[error("token expired at {expired_at} ms")]
    Expired { expired_at: i64 },
}

/// The 32-byte secret shared by the credential issuer and the embedded broker.
#[derive(Clone)]
pub struct BrokerTokenKey([u8; 32]);

impl BrokerTokenKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key. The embedded broker lives in the hub process, so a key made at
    /// startup is enough: restarting the hub drops every socket anyway.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Serializes and MACs `claims` into a token string.
    pub fn issue(&self, claims: &TokenClaims) -> String {
        let claims_json = serde_json::to_vec(claims).expect("token claims serialize to JSON");
        let mac = self.mac_over(&claims_json).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&claims_json),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// Checks the MAC, then the shape, then the expiry against `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<TokenClaims, TokenError> {
        let (claims_part, mac_part) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_part)
            .map_err(|_| TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac_part)
            .map_err(|_| TokenError::Malformed)?;

        // Constant-time comparison inside `verify_slice`; claims are parsed only once the
        // MAC proves the hub wrote them.
        self.mac_over(&claims_json)
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadMac)?;

        let claims: TokenClaims =
            serde_json::from_slice(&claims_json).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now_ms {
            return Err(TokenError::Expired {
                expired_at: claims.exp,
            });
        }
        Ok(claims)
    }

    fn mac_over(&self, claims_json: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.0).expect("HMAC-SHA256 accepts a 32-byte key");
        mac.update(MAC_DOMAIN);
        mac.update(claims_json);
        mac
    }
}

impl fmt::Debug for BrokerTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrokerTokenKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            node_id: NodeId::from_bytes([7; 32]),
            owner: Email::parse("alice@example.com").unwrap(),
            channel: ChannelName::parse("lab.one").unwrap(),
            publish: vec![Band::RequestFiles],
            subscribe: vec![Band::ProvideFiles],
            exp,
            jti: Nonce::from_bytes([9; 16]),
        }
    }

    #[test]
    fn round_trip_until_expiry() {
        let key = BrokerTokenKey::new([1; 32]);
        let token = key.issue(&claims(5_000));
        assert_eq!(key.verify(&token, 4_999).unwrap(), claims(5_000));
        assert_eq!(
            key.verify(&token, 5_000),
            Err(TokenError::Expired { expired_at: 5_000 })
        );
    }

    #[test]
    fn another_key_or_altered_claims_fail_the_mac() {
        let token = BrokerTokenKey::new([1; 32]).issue(&claims(5_000));
        let other_key = BrokerTokenKey::new([2; 32]);
        assert_eq!(other_key.verify(&token, 0), Err(TokenError::BadMac));

        // Swap in claims with wider bands, keeping the original MAC.
        let mut wider = claims(5_000);
        wider.publish.push(Band::ProvideFiles);
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wider).unwrap());
        let (_, mac) = token.split_once('.').unwrap();
        let forged = format!("{forged_claims}.{mac}");
        assert_eq!(
            BrokerTokenKey::new([1; 32]).verify(&forged, 0),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let key = BrokerTokenKey::new([1; 32]);
        for token in ["", "abc", "a.b.c", "!!!.???"] {
            assert_eq!(
                key.verify(token, 0),
                Err(TokenError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(!format!("{:?}", BrokerTokenKey::new([1; 32])).contains('1'));
    }
}

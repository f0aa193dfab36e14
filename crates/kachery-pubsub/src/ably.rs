//! Ably (the original kachery's broker): signed token requests (SPEC §6.2).
//!
//! The hub never hands out the channel's API key. It signs a token request with it: the
//! node (or an Ably SDK on its behalf) exchanges the request for a token at Ably, which
//! checks the `mac` and grants exactly the capability inside. The capability maps each
//! Ably channel `<channel>-<band>` [C] to `publish` and/or `subscribe` from the node's
//! effective roles, `clientId` is the node id (receivers SHOULD compare it with
//! `fromNodeId`) and `ttl` is the standard 30 minutes.
//!
//! The signature follows Ably's documented scheme: HMAC-SHA256 with the key's secret over
//! `keyName`, `ttl`, `capability`, `clientId`, `timestamp` and `nonce`, each followed by a
//! newline, base64-encoded.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use kachery_protocol::ChannelName;
use kachery_protocol::limits::PUBSUB_CREDENTIAL_TTL_MS;
use kachery_protocol::node_api::{AblyTokenRequest, PubsubCredential};
use kachery_protocol::roles::Capability;

use crate::issuer::{CredentialIssuer, CredentialRequest, IssueError, IssuedCredential};

/// Why an Ably API key cannot sign token requests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AblyKeyError {
    #[error("the ablyApiKey secret must look like appId.keyId:secret")]
    Malformed,
}

/// Signs token requests with one channel's Ably API key.
pub struct AblyIssuer {
    key_name: String,
    key_secret: String,
    ttl_ms: i64,
}

impl std::fmt::Debug for AblyIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AblyIssuer")
            .field("key_name", &self.key_name)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl AblyIssuer {
    /// Splits `appId.keyId:secret`; the error never quotes the key.
    pub fn new(api_key: &str) -> Result<Self, AblyKeyError> {
        let (key_name, key_secret) = api_key
            .trim()
            .split_once(':')
            .ok_or(AblyKeyError::Malformed)?;
        let well_formed = key_name
            .split_once('.')
            .is_some_and(|(app, key)| !app.is_empty() && !key.is_empty())
            && !key_secret.is_empty();
        if !well_formed {
            return Err(AblyKeyError::Malformed);
        }
        Ok(Self {
            key_name: key_name.to_owned(),
            key_secret: key_secret.to_owned(),
            ttl_ms: PUBSUB_CREDENTIAL_TTL_MS,
        })
    }

    /// Sets the token lifetime (tests).
    pub fn with_ttl_ms(mut self, ttl_ms: i64) -> Self {
        self.ttl_ms = ttl_ms;
        self
    }

    /// A signed token request with a caller-chosen nonce, for fixed-input tests.
    pub fn token_request(&self, request: &CredentialRequest<'_>, nonce: &str) -> AblyTokenRequest {
        let capability = capability_text(request.channel, request.capability);
        let client_id = request.node_id.to_string();
        let mac = mac(
            &self.key_secret,
            &[
                &self.key_name,
                &self.ttl_ms.to_string(),
                &capability,
                &client_id,
                &request.now_ms.to_string(),
                nonce,
            ],
        );
        AblyTokenRequest {
            key_name: self.key_name.clone(),
            ttl: self.ttl_ms,
            capability,
            client_id,
            timestamp: request.now_ms,
            nonce: nonce.to_owned(),
            mac,
        }
    }
}

impl CredentialIssuer for AblyIssuer {
    fn backend(&self) -> &'static str {
        "ably"
    }

    fn issue(&self, request: &CredentialRequest<'_>) -> Result<IssuedCredential, IssueError> {
        if request.capability.is_empty() {
            return Err(IssueError::EmptyCapability);
        }
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(IssueError::Random)?;
        let token_request = self.token_request(request, &hex::encode(nonce));
        Ok(IssuedCredential {
            credential: PubsubCredential::Ably { token_request },
            expires_at: request.now_ms.saturating_add(self.ttl_ms),
        })
    }
}

/// The capability JSON: each band's Ably channel with the operations the node may do,
/// keys sorted so equal capabilities give equal text.
fn capability_text(channel: &ChannelName, capability: &Capability) -> String {
    let mut operations: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for band in &capability.publish {
        operations
            .entry(band.ably_channel(channel))
            .or_default()
            .push("publish");
    }
    for band in &capability.subscribe {
        operations
            .entry(band.ably_channel(channel))
            .or_default()
            .push("subscribe");
    }
    serde_json::to_string(&operations).expect("capabilities serialize to JSON")
}

/// base64(HMAC-SHA256(secret, each field followed by a newline)).
fn mac(secret: &str, fields: &[&str]) -> String {
    let mut hmac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    for field in fields {
        hmac.update(field.as_bytes());
        hmac.update(b"\n");
    }
    base64::engine::general_purpose::STANDARD.encode(hmac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use kachery_protocol::{Email, NodeId, RoleSet};

    use super::*;

    /// Expected MAC computed independently (Python's `hmac` module) from the same fields.
    #[test]
    fn token_request_matches_the_documented_signature() {
        let issuer = AblyIssuer::new("xVLyHw.LMJZxw:fixed-test-secret-not-a-real-key").unwrap();
        let capability = "requestFiles".parse::<RoleSet>().unwrap().capability();
        let request = CredentialRequest {
            node_id: &NodeId::from_bytes([1; 32]),
            owner: &Email::parse("bob@example.com").unwrap(),
            channel: &ChannelName::parse("lab").unwrap(),
            capability: &capability,
            now_ms: 1_700_000_000_000,
            nats_user_key: None,
        };

        let token_request = issuer.token_request(&request, "0123456789abcdef0123456789abcdef");
        assert_eq!(token_request.key_name, "xVLyHw.LMJZxw");
        assert_eq!(token_request.ttl, 1_800_000);
        assert_eq!(
            token_request.capability,
            r#"{"lab-provideFiles":["subscribe"],"lab-requestFiles":["publish"]}"#
        );
        assert_eq!(token_request.client_id, "01".repeat(32));
        assert_eq!(
            token_request.mac,
            "cGfkPSYaHJF9RR0hGrj9Vd8ubCVWQMhEeKBOzvAIZAg="
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in ["", "no-colon", ":secret", "app:secret", "app.key:"] {
            assert!(AblyIssuer::new(key).is_err(), "{key:?} was accepted");
        }
    }
}

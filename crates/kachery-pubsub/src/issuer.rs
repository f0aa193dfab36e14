//! The hub side of pub-sub credentials: turning a node's capability on a channel into
//! something the node can hand to the channel's broker (SPEC §6.2).
//!
//! [`CredentialIssuer`] is the seam between the hub and the broker backends; the hub
//! computes the effective roles and the [`Capability`], an issuer only packages them. The
//! one implementation today is [`EmbeddedIssuer`], which MACs a token for the broker that
//! runs inside the hub.

use kachery_protocol::limits::PUBSUB_CREDENTIAL_TTL_MS;
use kachery_protocol::node_api::PubsubCredential;
use kachery_protocol::roles::Capability;
use kachery_protocol::{ChannelName, Email, NodeId, Nonce};

use crate::token::{BrokerTokenKey, TokenClaims};

/// Who asks for a credential and what the hub decided they may do.
#[derive(Debug, Clone)]
pub struct CredentialRequest<'a> {
    pub node_id: &'a NodeId,
    pub owner: &'a Email,
    pub channel: &'a ChannelName,
    /// Derived by the hub from the effective roles; never widened by an issuer.
    pub capability: &'a Capability,
    /// Current time, Unix ms.
    pub now_ms: i64,
    /// The per-link user nkey (`U…`) a NATS credential is bound to; other backends
    /// ignore it.
    pub nats_user_key: Option<&'a str>,
}

/// A credential and the moment it stops working.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    pub credential: PubsubCredential,
    /// Unix ms; nodes renew at 80 % of the lifetime.
    pub expires_at: i64,
}

/// Why no credential could be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("refusing to issue a pub-sub credential with no bands")]
    EmptyCapability,
    #[error("failed to draw a random token id")]
    Random(#[source] getrandom::Error),
    #[error("the channel uses NATS: send natsUserKey (the link's user nkey, U…)")]
    MissingNatsUserKey,
    #[error("natsUserKey is not a NATS user public key (56 characters starting with U)")]
    BadNatsUserKey,
}

/// Issues broker credentials for one backend (SPEC §6.2). The probe of the channel test
/// (SPEC §10.2) is not part of it: the hub's `channel_test` gets probe-band credentials
/// through the same issuers and really publishes and subscribes. NATS and Ably check
/// their settings when they are built (`NatsIssuer::new`, `AblyIssuer::new`).
pub trait CredentialIssuer: Send + Sync {
    /// Backend name for logs and metrics, e.g. `embedded`.
    fn backend(&self) -> &'static str;

    /// A credential valid for the standard 30 minutes.
    fn issue(&self, request: &CredentialRequest<'_>) -> Result<IssuedCredential, IssueError>;
}

/// Issues tokens for the broker embedded in the hub.
#[derive(Debug, Clone)]
pub struct EmbeddedIssuer {
    pub key: BrokerTokenKey,
    /// Where nodes connect, e.g. `wss://hub.example.org/pubsub/ws`.
    pub ws_url: String,
}

impl EmbeddedIssuer {
    pub fn new(key: BrokerTokenKey, ws_url: impl Into<String>) -> Self {
        Self {
            key,
            ws_url: ws_url.into(),
        }
    }

    /// Like [`CredentialIssuer::issue`] with an explicit lifetime, so tests can watch a
    /// token expire in milliseconds.
    pub fn issue_with_ttl(
        &self,
        request: &CredentialRequest<'_>,
        ttl_ms: i64,
    ) -> Result<IssuedCredential, IssueError> {
        if request.capability.is_empty() {
            return Err(IssueError::EmptyCapability);
        }

        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(IssueError::Random)?;
        let expires_at = request.now_ms.saturating_add(ttl_ms);
        let claims = TokenClaims {
            node_id: *request.node_id,
            owner: request.owner.clone(),
            channel: request.channel.clone(),
            publish: request.capability.publish.clone(),
            subscribe: request.capability.subscribe.clone(),
            exp: expires_at,
            jti: Nonce::from_bytes(jti),
        };
        tracing::debug!(
            node = %request.node_id.short(),
            channel = %request.channel,
            jti = %claims.jti,
            expires_at,
            "issued embedded broker token"
        );

        let token = self.key.issue(&claims);
        let credential = PubsubCredential::Embedded {
            url: self.ws_url.clone(),
            token,
        };
        Ok(IssuedCredential {
            credential,
            expires_at,
        })
    }
}

impl CredentialIssuer for EmbeddedIssuer {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn issue(&self, request: &CredentialRequest<'_>) -> Result<IssuedCredential, IssueError> {
        self.issue_with_ttl(request, PUBSUB_CREDENTIAL_TTL_MS)
    }
}

#[cfg(test)]
mod tests {
    use kachery_protocol::RoleSet;

    use super::*;

    #[test]
    fn token_carries_the_capability_and_expires_after_the_ttl() {
        let key = BrokerTokenKey::new([4; 32]);
        let issuer = EmbeddedIssuer::new(key.clone(), "ws://127.0.0.1:1/pubsub/ws");
        let capability = "requestFiles".parse::<RoleSet>().unwrap().capability();
        let request = CredentialRequest {
            node_id: &NodeId::from_bytes([1; 32]),
            owner: &Email::parse("bob@example.com").unwrap(),
            channel: &ChannelName::parse("lab").unwrap(),
            capability: &capability,
            now_ms: 1_000,
            nats_user_key: None,
        };

        let issued = issuer.issue(&request).unwrap();
        assert_eq!(issued.expires_at, 1_000 + PUBSUB_CREDENTIAL_TTL_MS);
        let PubsubCredential::Embedded { url, token } = issued.credential else {
            panic!("embedded issuer made another kind of credential");
        };
        assert_eq!(url, "ws://127.0.0.1:1/pubsub/ws");
        let claims = key.verify(&token, 1_000).unwrap();
        assert_eq!(claims.publish, capability.publish);
        assert_eq!(claims.subscribe, capability.subscribe);
        assert_eq!(claims.exp, issued.expires_at);
    }

    #[test]
    fn empty_capability_is_refused() {
        let issuer = EmbeddedIssuer::new(BrokerTokenKey::new([4; 32]), "ws://x/pubsub/ws");
        let request = CredentialRequest {
            node_id: &NodeId::from_bytes([1; 32]),
            owner: &Email::parse("bob@example.com").unwrap(),
            channel: &ChannelName::parse("lab").unwrap(),
            capability: &Capability::default(),
            now_ms: 0,
            nats_user_key: None,
        };
        assert!(matches!(
            issuer.issue(&request),
            Err(IssueError::EmptyCapability)
        ));
    }
}

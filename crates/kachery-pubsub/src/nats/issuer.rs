//! The hub side of NATS: user JWTs signed with a channel's account signing seed.
//!
//! The seed is decrypted from the vault for one issuance, turned into an [`NatsIssuer`]
//! and dropped with it. A JWT names the node's per-link user nkey as its subject, lists
//! the exact subjects of the capability (no wildcards: channel names contain dots) and
//! expires with the credential, so `nats-server` enforces the roles and the lifetime
//! itself (SPEC §6.2).

use kachery_protocol::limits::{MAX_BROKER_MESSAGE_BYTES, PUBSUB_CREDENTIAL_TTL_MS};
use kachery_protocol::node_api::PubsubCredential;
use nkeys::KeyPair;

use super::subject;
use crate::issuer::{CredentialIssuer, CredentialRequest, IssueError, IssuedCredential};

/// Why a NATS channel's settings or secret cannot sign credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsIssuerError {
    #[error("nats.servers is empty; give at least one nats:// or tls:// URL")]
    NoServers,
    #[error("nats server URL {0:?} must start with nats://, tls://, ws:// or wss://")]
    BadServerUrl(String),
    #[error("nats.account {0:?} is not an account public key (56 characters starting with A)")]
    BadAccount(String),
    #[error("the natsAccountSeed secret is not an account seed (it must start with SA)")]
    BadSeed,
}

/// Signs NATS user JWTs for one channel.
pub struct NatsIssuer {
    servers: Vec<String>,
    /// The account's identity public key (`A…`), named as `issuer_account`.
    account: String,
    /// The account key or one of its signing keys.
    signing_key: KeyPair,
    ttl_ms: i64,
}

impl std::fmt::Debug for NatsIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsIssuer")
            .field("servers", &self.servers)
            .field("account", &self.account)
            .field("signing_key", &self.signing_key.public_key())
            .field("ttl_ms", &self.ttl_ms)
            .finish()
    }
}

impl NatsIssuer {
    /// Checks the settings and the seed. The error never quotes the seed.
    pub fn new(
        servers: &[String],
        account: &str,
        signing_seed: &str,
    ) -> Result<Self, NatsIssuerError> {
        check_settings(servers, account)?;
        let signing_key = KeyPair::from_seed(signing_seed.trim())
            .ok()
            .filter(|key| key.public_key().starts_with('A'))
            .ok_or(NatsIssuerError::BadSeed)?;
        Ok(Self {
            servers: servers.to_vec(),
            account: account.to_owned(),
            signing_key,
            ttl_ms: PUBSUB_CREDENTIAL_TTL_MS,
        })
    }

    /// Sets the credential lifetime (tests use seconds to watch renewal).
    pub fn with_ttl_ms(mut self, ttl_ms: i64) -> Self {
        self.ttl_ms = ttl_ms;
        self
    }
}

/// Checks channel settings before they are stored, so a typo fails at creation.
pub fn check_settings(servers: &[String], account: &str) -> Result<(), NatsIssuerError> {
    if servers.is_empty() {
        return Err(NatsIssuerError::NoServers);
    }
    let schemes = ["nats://", "tls://", "ws://", "wss://"];
    if let Some(bad) = servers
        .iter()
        .find(|url| !schemes.iter().any(|scheme| url.starts_with(scheme)))
    {
        return Err(NatsIssuerError::BadServerUrl(bad.clone()));
    }
    let is_account =
        KeyPair::from_public_key(account).is_ok_and(|key| key.public_key().starts_with('A'));
    if !is_account {
        return Err(NatsIssuerError::BadAccount(account.to_owned()));
    }
    Ok(())
}

impl CredentialIssuer for NatsIssuer {
    fn backend(&self) -> &'static str {
        "nats"
    }

    fn issue(&self, request: &CredentialRequest<'_>) -> Result<IssuedCredential, IssueError> {
        if request.capability.is_empty() {
            return Err(IssueError::EmptyCapability);
        }
        let user_key = request
            .nats_user_key
            .ok_or(IssueError::MissingNatsUserKey)?;
        let is_user_key =
            KeyPair::from_public_key(user_key).is_ok_and(|key| key.public_key().starts_with('U'));
        if !is_user_key {
            return Err(IssueError::BadNatsUserKey);
        }

        // NATS expiry is in whole seconds; report exactly what the server will enforce.
        let expires_at_s = request.now_ms.saturating_add(self.ttl_ms) / 1000;
        let mut token = nats_jwt::Token::new_user(self.account.clone(), user_key)
            .name(format!("{}@{}", request.node_id.short(), request.channel))
            .expires(expires_at_s)
            .max_subscriptions(request.capability.subscribe.len() as i64)
            .max_payload(MAX_BROKER_MESSAGE_BYTES as i64);
        for band in &request.capability.publish {
            token = token.allow_publish(subject(request.channel, *band));
        }
        for band in &request.capability.subscribe {
            token = token.allow_subscribe(subject(request.channel, *band));
        }
        let jwt = token.sign(&self.signing_key);
        tracing::debug!(
            node = %request.node_id.short(),
            channel = %request.channel,
            expires_at_s,
            "issued NATS user JWT"
        );

        Ok(IssuedCredential {
            credential: PubsubCredential::Nats {
                servers: self.servers.clone(),
                jwt,
            },
            expires_at: expires_at_s * 1000,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use kachery_protocol::{ChannelName, Email, NodeId, RoleSet};

    use super::*;

    fn claims(jwt: &str) -> serde_json::Value {
        let body = jwt.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn jwt_lists_exact_subjects_for_the_user_key() {
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let servers = vec!["nats://127.0.0.1:4222".to_owned()];
        let issuer =
            NatsIssuer::new(&servers, &account.public_key(), &signing.seed().unwrap()).unwrap();
        let user = KeyPair::new_user();
        let user_key = user.public_key();
        let capability = "requestFiles".parse::<RoleSet>().unwrap().capability();
        let request = CredentialRequest {
            node_id: &NodeId::from_bytes([1; 32]),
            owner: &Email::parse("bob@example.com").unwrap(),
            channel: &ChannelName::parse("lab.a").unwrap(),
            capability: &capability,
            now_ms: 1_700_000_000_000,
            nats_user_key: Some(&user_key),
        };

        let issued = issuer.issue(&request).unwrap();
        assert_eq!(
            issued.expires_at,
            1_700_000_000_000 + PUBSUB_CREDENTIAL_TTL_MS
        );
        let PubsubCredential::Nats { servers: got, jwt } = issued.credential else {
            panic!("expected a NATS credential");
        };
        assert_eq!(got, servers);
        let claims = claims(&jwt);
        assert_eq!(claims["sub"], user_key);
        assert_eq!(claims["iss"], signing.public_key());
        assert_eq!(claims["nats"]["issuer_account"], account.public_key());
        assert_eq!(
            claims["nats"]["pub"]["allow"],
            serde_json::json!(["kachery.lab.a.requestFiles"])
        );
        assert_eq!(
            claims["nats"]["sub"]["allow"],
            serde_json::json!(["kachery.lab.a.provideFiles"])
        );
        assert_eq!(
            claims["exp"],
            1_700_000_000 + PUBSUB_CREDENTIAL_TTL_MS / 1000
        );
    }

    #[test]
    fn bad_settings_and_keys_are_refused() {
        let account = KeyPair::new_account().public_key();
        let seed = KeyPair::new_account().seed().unwrap();
        let servers = vec!["nats://x:1".to_owned()];
        assert!(matches!(
            NatsIssuer::new(&[], &account, &seed),
            Err(NatsIssuerError::NoServers)
        ));
        assert!(matches!(
            NatsIssuer::new(&["http://x".to_owned()], &account, &seed),
            Err(NatsIssuerError::BadServerUrl(_))
        ));
        let user_seed = KeyPair::new_user().seed().unwrap();
        assert!(matches!(
            NatsIssuer::new(&servers, &account, &user_seed),
            Err(NatsIssuerError::BadSeed)
        ));
        assert!(matches!(
            NatsIssuer::new(&servers, "UABC", &seed),
            Err(NatsIssuerError::BadAccount(_))
        ));

        let issuer = NatsIssuer::new(&servers, &account, &seed).unwrap();
        let capability = "requestFiles".parse::<RoleSet>().unwrap().capability();
        let mut request = CredentialRequest {
            node_id: &NodeId::from_bytes([1; 32]),
            owner: &Email::parse("bob@example.com").unwrap(),
            channel: &ChannelName::parse("lab").unwrap(),
            capability: &capability,
            now_ms: 0,
            nats_user_key: None,
        };
        assert!(matches!(
            issuer.issue(&request),
            Err(IssueError::MissingNatsUserKey)
        ));
        request.nats_user_key = Some(&account);
        assert!(matches!(
            issuer.issue(&request),
            Err(IssueError::BadNatsUserKey)
        ));
    }
}

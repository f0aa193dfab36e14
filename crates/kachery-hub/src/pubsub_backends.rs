//! Channel brokers the hub does not run itself: NATS and Ably (SPEC §6.2).
//!
//! The channel owner names the broker when creating the channel (`pubsub.backend` plus,
//! for NATS, `pubsub.nats{servers, account}`) and stores the signing secret in the vault
//! (`natsAccountSeed`, `ablyApiKey`). Settings are checked before they are stored, so a
//! typo fails at creation. At each getPubsubCredential the secret is decrypted for that
//! one issuance, turned into an issuer and dropped with it; the capability comes from the
//! effective roles alone, exactly as for the embedded broker.

use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::{NatsSettings, PubsubSettings, SecretKind};
use kachery_pubsub::ably::AblyIssuer;
use kachery_pubsub::issuer::IssueError;
use kachery_pubsub::nats::{NatsIssuer, issuer::check_settings};
use kachery_pubsub::{CredentialIssuer, CredentialRequest, IssuedCredential};

use crate::app::AppState;
use crate::backends::EMBEDDED;
use crate::db::ChannelRecord;
use crate::error::{ApiError, ApiResult};
use crate::vault::{SecretString, VaultError};

pub const NATS: &str = "nats";
pub const ABLY: &str = "ably";

/// A broker choice ready to store: backend name and its JSON settings.
#[derive(Debug)]
pub struct CheckedPubsub {
    pub backend: String,
    pub config: String,
}

/// Checks the `pubsub` part of a create-channel request, with the secrets given alongside
/// (a secret given at creation must fit its backend). Absent means embedded.
pub fn check_pubsub_settings(
    settings: Option<PubsubSettings>,
    secrets: &[(SecretKind, SecretString)],
) -> ApiResult<CheckedPubsub> {
    let settings = settings.unwrap_or_default();
    let backend = match settings.backend.as_str() {
        "" => EMBEDDED,
        other => other,
    };
    let secret = |kind| {
        secrets
            .iter()
            .find(|(given, _)| *given == kind)
            .map(|(_, value)| value)
    };
    if backend != NATS && settings.nats.is_some() {
        return Err(ApiError::validation(format!(
            "pubsub.nats applies only to backend \"nats\", not {backend:?}"
        )));
    }

    let config = match backend {
        EMBEDDED | ABLY => {
            if let Some(key) = secret(SecretKind::AblyApiKey) {
                AblyIssuer::new(key.expose()).map_err(secret_invalid(SecretKind::AblyApiKey))?;
            }
            "{}".to_owned()
        }
        NATS => {
            let nats = settings.nats.ok_or_else(|| {
                ApiError::validation(
                    "pubsub backend \"nats\" needs pubsub.nats {servers: [\"nats://host:4222\"], \
                     account: \"A…\"}",
                )
            })?;
            check_settings(&nats.servers, &nats.account)
                .map_err(|error| ApiError::validation(format!("pubsub.{error}")))?;
            if let Some(seed) = secret(SecretKind::NatsAccountSeed) {
                NatsIssuer::new(&nats.servers, &nats.account, seed.expose())
                    .map_err(secret_invalid(SecretKind::NatsAccountSeed))?;
            }
            serde_json::to_string(&nats).expect("NATS settings serialize to JSON")
        }
        other => {
            return Err(ApiError::validation(format!(
                "pubsub backend {other:?} is not available; use \"embedded\", \"nats\" or \"ably\""
            )));
        }
    };
    Ok(CheckedPubsub {
        backend: backend.to_owned(),
        config,
    })
}

fn secret_invalid<E: std::fmt::Display>(kind: SecretKind) -> impl Fn(E) -> ApiError {
    move |error| {
        ApiError::new(ErrorCode::SecretInvalid, format!("{kind}: {error}"))
            .with_detail("kind", kind.as_str())
    }
}

/// What the owner and members see of a channel's broker settings (no secrets in them).
pub fn settings_view(channel: &ChannelRecord) -> PubsubSettings {
    let nats = (channel.pubsub_backend == NATS)
        .then(|| serde_json::from_str::<NatsSettings>(&channel.pubsub_config).ok())
        .flatten();
    PubsubSettings {
        backend: channel.pubsub_backend.clone(),
        nats,
    }
}

/// A credential for the channel's broker, embedded, NATS or Ably; `None` for a backend
/// this hub does not run. getPubsubCredential and the channel test both come here.
pub async fn issue(
    state: &AppState,
    channel: &ChannelRecord,
    request: &CredentialRequest<'_>,
) -> Option<ApiResult<IssuedCredential>> {
    if let Some(issued) = state.backends.issue_credential(channel, request) {
        return Some(
            issued
                .map_err(|error| ApiError::internal("failed to issue a broker credential", &error)),
        );
    }
    let ttl_ms = state.config.pubsub_credential_ttl_ms;
    let issued = match channel.pubsub_backend.as_str() {
        NATS => issue_nats(state, channel, request, ttl_ms).await,
        ABLY => issue_ably(state, channel, request, ttl_ms).await,
        _ => return None,
    };
    Some(issued)
}

async fn issue_nats(
    state: &AppState,
    channel: &ChannelRecord,
    request: &CredentialRequest<'_>,
    ttl_ms: i64,
) -> ApiResult<IssuedCredential> {
    let settings: NatsSettings = serde_json::from_str(&channel.pubsub_config)
        .map_err(|error| ApiError::internal("stored NATS settings do not parse", &error))?;
    let issuer = {
        let seed = channel_secret(state, channel, SecretKind::NatsAccountSeed).await?;
        NatsIssuer::new(&settings.servers, &settings.account, seed.expose())
            .map_err(|error| misconfigured(channel, &error.to_string()))?
            .with_ttl_ms(ttl_ms)
    };
    issuer.issue(request).map_err(issue_error)
}

async fn issue_ably(
    state: &AppState,
    channel: &ChannelRecord,
    request: &CredentialRequest<'_>,
    ttl_ms: i64,
) -> ApiResult<IssuedCredential> {
    let issuer = {
        let key = channel_secret(state, channel, SecretKind::AblyApiKey).await?;
        AblyIssuer::new(key.expose())
            .map_err(|error| misconfigured(channel, &error.to_string()))?
            .with_ttl_ms(ttl_ms)
    };
    issuer.issue(request).map_err(issue_error)
}

/// The decrypted secret, kept by the caller for one issuance.
async fn channel_secret(
    state: &AppState,
    channel: &ChannelRecord,
    kind: SecretKind,
) -> ApiResult<SecretString> {
    match state.vault.decrypt(channel.id, kind).await {
        Ok(secret) => Ok(secret),
        Err(VaultError::Missing { .. }) => Err(misconfigured(
            channel,
            &format!("no {kind} secret is set; the channel owner must PUT it"),
        )),
        Err(error) => Err(ApiError::internal(
            "failed to decrypt a channel secret",
            &error,
        )),
    }
}

/// The channel's broker cannot be used as configured: the owner must fix it.
fn misconfigured(channel: &ChannelRecord, reason: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ValidationFailed,
        format!(
            "channel {} uses pub-sub backend {:?} but {reason}",
            channel.name, channel.pubsub_backend
        ),
    )
}

fn issue_error(error: IssueError) -> ApiError {
    match error {
        IssueError::MissingNatsUserKey | IssueError::BadNatsUserKey => {
            ApiError::validation(error.to_string())
        }
        other => ApiError::internal("failed to issue a broker credential", &other),
    }
}

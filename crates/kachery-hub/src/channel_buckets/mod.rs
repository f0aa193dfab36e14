//! Which bucket serves a channel: the hub's embedded bucket, or the channel owner's S3 or
//! GCS bucket built from the channel's settings and its encrypted secret (SPEC §7.2, §8.2).
//!
//! [`ChannelBuckets::bucket_for`] is called once per node-API batch (createUploadUrls,
//! createDownloadUrls, reportCorruptObject). For an S3 or GCS channel it reads the
//! channel's secret row and compares it, with the stored settings, to what the cached
//! backend was built from. Only on a difference (first use, a new secret, new settings) is
//! the secret decrypted, the backend built, and the plaintext dropped; the backend keeps
//! the signing key in its own redacting, zeroizing types. Comparing against the row on
//! every batch (one indexed read) also makes a secret replaced through another hub
//! replica take effect at this replica's next batch, with no cross-replica messages.
//! [`ChannelBuckets::forget`] drops an entry at once when this process changes a secret.

pub mod config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kachery_bucket::{BucketBackend, EmbeddedBucket};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::SecretKind;

use crate::db::{ChannelRecord, DbError, HubDb};
use crate::error::{ApiError, ApiResult};
use crate::vault::{SecretCipher, SecretString, VaultError};
pub use config::{BucketConfig, InvalidBucketConfig};

/// The backend of every channel this hub has served a batch for.
pub struct ChannelBuckets {
    embedded: Arc<EmbeddedBucket>,
    cache: Mutex<HashMap<i64, CachedBucket>>,
}

/// A built backend and what it was built from.
struct CachedBucket {
    stored_config: String,
    /// The nonce of the secret row: fresh on every write, so it names the secret version.
    secret_nonce: [u8; 24],
    backend: Arc<dyn BucketBackend>,
}

/// Why a channel's bucket could not be made ready. None of these carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelBucketError {
    #[error("the stored bucket settings of channel {channel} no longer parse")]
    Config {
        channel: String,
        #[source]
        source: InvalidBucketConfig,
    },
    #[error("channel {channel} has no {kind} secret; its owner must set one")]
    MissingSecret { channel: String, kind: SecretKind },
    #[error("failed to read the secret of channel {channel}")]
    Db {
        channel: String,
        #[source]
        source: DbError,
    },
    #[error("failed to decrypt the secret of channel {channel}")]
    Vault {
        channel: String,
        #[source]
        source: VaultError,
    },
}

impl ChannelBuckets {
    pub fn new(embedded: Arc<EmbeddedBucket>) -> Self {
        Self {
            embedded,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The hub's own bucket, served under `/bucket/`.
    pub fn embedded(&self) -> &Arc<EmbeddedBucket> {
        &self.embedded
    }

    /// The backend serving `channel`, built or taken from the cache (see the module doc).
    pub async fn bucket_for(
        &self,
        db: &dyn HubDb,
        cipher: &SecretCipher,
        channel: &ChannelRecord,
    ) -> Result<Arc<dyn BucketBackend>, ChannelBucketError> {
        let name = || channel.name.to_string();
        let config = BucketConfig::from_stored(&channel.bucket_backend, &channel.bucket_config)
            .map_err(|source| ChannelBucketError::Config {
                channel: name(),
                source,
            })?;
        let Some(kind) = config.secret_kind() else {
            let embedded: Arc<dyn BucketBackend> = self.embedded.clone();
            return Ok(embedded);
        };

        let sealed = db
            .sealed_secret(channel.id, kind)
            .await
            .map_err(|source| ChannelBucketError::Db {
                channel: name(),
                source,
            })?
            .ok_or_else(|| ChannelBucketError::MissingSecret {
                channel: name(),
                kind,
            })?;
        if let Some(backend) = self.cached(channel, &sealed.xnonce) {
            return Ok(backend);
        }

        // Decrypted only to build the backend; the plaintext is dropped (zeroized) here.
        let secret = cipher
            .open(&sealed)
            .map_err(|source| ChannelBucketError::Vault {
                channel: name(),
                source,
            })?;
        let backend = config
            .build(Some(&secret))
            .map_err(|source| ChannelBucketError::Config {
                channel: name(),
                source,
            })?;
        drop(secret);

        tracing::debug!(channel = %channel.name, backend = config.backend_name(), "bucket backend built");
        self.lock().insert(
            channel.id,
            CachedBucket {
                stored_config: channel.bucket_config.clone(),
                secret_nonce: sealed.xnonce,
                backend: backend.clone(),
            },
        );
        Ok(backend)
    }

    /// Drops the cached backend of a channel whose secret or settings this hub changed.
    pub fn forget(&self, channel_id: i64) {
        self.lock().remove(&channel_id);
    }

    fn cached(
        &self,
        channel: &ChannelRecord,
        secret_nonce: &[u8; 24],
    ) -> Option<Arc<dyn BucketBackend>> {
        let cache = self.lock();
        let entry = cache.get(&channel.id)?;
        let current =
            entry.stored_config == channel.bucket_config && &entry.secret_nonce == secret_nonce;
        current.then(|| entry.backend.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CachedBucket>> {
        self.cache
            .lock()
            .expect("bucket cache lock is never poisoned")
    }
}

/// Checks a bucket secret about to replace `channel`'s: it must be the kind the channel's
/// bucket signs with, and build a backend with the stored settings. Other kinds pass.
pub fn check_new_secret(
    channel: &ChannelRecord,
    kind: SecretKind,
    value: &SecretString,
) -> ApiResult<()> {
    if !matches!(
        kind,
        SecretKind::S3SecretAccessKey | SecretKind::GcsServiceAccount
    ) {
        return Ok(());
    }
    let config = BucketConfig::from_stored(&channel.bucket_backend, &channel.bucket_config)
        .map_err(|error| ApiError::internal("stored bucket settings do not parse", &error))?;
    if config.secret_kind() != Some(kind) {
        return Err(ApiError::validation(format!(
            "channel {} has a {} bucket, which does not use {kind}",
            channel.name,
            config.backend_name()
        )));
    }
    config.build(Some(value)).map_err(|error| {
        ApiError::new(ErrorCode::SecretInvalid, format!("{kind}: {error}"))
            .with_detail("kind", kind.as_str())
    })?;
    Ok(())
}

//! Master-key rotation (SPEC §8.2): [`rotate_master_key`] re-encrypts every channel secret
//! from the current master key to a new one, for `kachery hub rotate-key`.
//!
//! The procedure: stop the hub (every replica), run the rotation, put the new key where
//! the old one was (`master_key_file`, `KACHERY_HUB_MASTER_KEY` or the dev key in the data
//! directory), start the hub. All rows change in one transaction, so a failure leaves
//! every secret under the old key. Running it again before the swap is harmless: rows
//! already under the new key (by `key_id`) are left alone. Only channel secrets depend on
//! the key this way; sub-keys for the embedded bucket and broker simply change, so URLs
//! and broker tokens issued under the old key stop working and nodes fetch new ones.

use std::path::Path;
use std::sync::Arc;

use crate::config::HubConfig;
use crate::db::{self, AuditEntry, DbError, HubDb};
use crate::keys::{DEV_MASTER_KEY_FILE, MASTER_KEY_ENV, MasterKey, MasterKeyError};
use crate::time::now_ms;
use crate::vault::SecretCipher;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Key id of the master key the secrets were under.
    pub old_key_id: String,
    /// Key id of the new master key.
    pub new_key_id: String,
    /// Secrets re-encrypted under the new key.
    pub n_reencrypted: u64,
    /// Secrets that already were under the new key (an earlier, interrupted rotation).
    pub n_already_new: u64,
}

/// Why a rotation did not happen. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateKeyError {
    #[error("failed to load the current master key")]
    CurrentKey(#[source] MasterKeyError),
    #[error("failed to load the new master key")]
    NewKey(#[source] MasterKeyError),
    #[error(
        "the new master key is the current one (key id {0}); make a new one with \
         `head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE`"
    )]
    SameKey(String),
    #[error(
        "database_url scheme {scheme:?} is not supported: use sqlite://<path>, \
         postgres://<user>@<host>/<database> or postgresql://..."
    )]
    UnsupportedDatabase { scheme: String },
    #[error("failed to open the hub database")]
    Database(#[source] DbError),
    #[error("failed to re-encrypt the channel secrets; every secret is still under the old key")]
    Reencrypt(#[source] DbError),
}

/// Re-encrypts every channel secret of the hub described by `config` from its current
/// master key to `new_key`, in one transaction. The current key comes from
/// `master_key_file`, else `KACHERY_HUB_MASTER_KEY`, else the dev key in `data_dir`.
///
/// Run it with the hub stopped: a hub still running on the old key cannot decrypt rows
/// once they move, and a secret it writes during the rotation may stay under the old key.
pub async fn rotate_master_key(
    config: &HubConfig,
    new_key: &MasterKey,
) -> Result<RotationReport, RotateKeyError> {
    let has_dev_key = config.data_dir.join(DEV_MASTER_KEY_FILE).exists();
    let current_key = MasterKey::load(
        config.master_key_file.as_deref(),
        std::env::var(MASTER_KEY_ENV).ok(),
        has_dev_key,
        &config.data_dir,
    )
    .map_err(RotateKeyError::CurrentKey)?;
    let old = SecretCipher::new(&current_key);
    let new = SecretCipher::new(new_key);
    if old.key_id() == new.key_id() {
        return Err(RotateKeyError::SameKey(old.key_id().to_owned()));
    }

    let database_url = config.database_url();
    let Some(backend) = db::Backend::of_url(&database_url) else {
        let scheme = database_url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return Err(RotateKeyError::UnsupportedDatabase { scheme });
    };
    let db: Arc<dyn HubDb> = backend
        .open(&database_url)
        .await
        .map_err(RotateKeyError::Database)?;

    let reseal = |stored: &db::SealedSecret| {
        if stored.key_id == new.key_id() {
            return Ok(None);
        }
        let value = old.open(stored)?;
        new.seal(stored.channel_id, stored.kind, &value).map(Some)
    };
    let audit = AuditEntry {
        at: now_ms(),
        actor_kind: "operator",
        actor: "kachery hub rotate-key".to_owned(),
        action: "secret.rekey",
        channel_id: None,
        target: None,
        details: serde_json::Value::Null,
        request_id: None,
        dev_login: false,
    };
    let resealed = db.reseal_secrets(&reseal, audit).await;
    if let Err(error) = db.close().await {
        tracing::warn!(error = %crate::error::error_chain(&error), "failed to close the database");
    }
    let counts = resealed.map_err(RotateKeyError::Reencrypt)?;

    tracing::info!(
        old_key_id = old.key_id(),
        new_key_id = new.key_id(),
        n_reencrypted = counts.n_resealed,
        n_already_new = counts.n_unchanged,
        "channel secrets re-encrypted under the new master key"
    );
    Ok(RotationReport {
        old_key_id: old.key_id().to_owned(),
        new_key_id: new.key_id().to_owned(),
        n_reencrypted: counts.n_resealed,
        n_already_new: counts.n_unchanged,
    })
}

/// Reads a new master key from `path` (base64 of 32 bytes, mode 0600).
pub fn read_key_file(path: &Path) -> Result<MasterKey, RotateKeyError> {
    MasterKey::read_file(path).map_err(RotateKeyError::NewKey)
}

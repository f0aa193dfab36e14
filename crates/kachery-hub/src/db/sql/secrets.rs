//! Channel secrets: ciphertext in, ciphertext out. Encryption happens in
//! [`crate::vault`]; this layer stores rows (ciphertext and nonce as base64 text, like every
//! other column a string or an integer), writes their audit entries, and never sees a value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kachery_protocol::user_api::SecretKind;
use sqlx::{ColumnIndex, Executor};

use super::{Backend, SqlArg, SqlDb, SqlValue};
use crate::db::{
    AuditEntry, DbError, NewSecret, ResealCounts, ResealSecret, SealedSecret, SecretRecord,
};

const SEALED_COLUMNS: &str = "channel_id, kind, ciphertext, xnonce, key_id";

impl<DB> SqlDb<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row> + SqlArg<DB>,
    i64: SqlValue<DB>,
    bool: SqlValue<DB>,
    String: SqlValue<DB>,
    Option<i64>: SqlValue<DB>,
    Option<String>: SqlValue<DB>,
{
    fn secret_record(row: &DB::Row) -> Result<SecretRecord, DbError> {
        Ok(SecretRecord {
            kind: Self::parsed(row, "kind")?,
            fingerprint: Self::column(row, "fingerprint")?,
            hint: Self::column(row, "hint")?,
            updated_at: Self::column(row, "updated_at")?,
            updated_by: Self::parsed(row, "updated_by")?,
        })
    }

    fn sealed_row(row: &DB::Row) -> Result<SealedSecret, DbError> {
        let decoded = |column: &'static str| -> Result<Vec<u8>, DbError> {
            let text: String = Self::column(row, column)?;
            STANDARD.decode(text).map_err(|error| DbError::CorruptRow {
                column,
                detail: error.to_string(),
            })
        };
        let xnonce: [u8; 24] =
            decoded("xnonce")?
                .try_into()
                .map_err(|bytes: Vec<u8>| DbError::CorruptRow {
                    column: "xnonce",
                    detail: format!("{} bytes instead of 24", bytes.len()),
                })?;
        Ok(SealedSecret {
            channel_id: Self::column(row, "channel_id")?,
            kind: Self::parsed(row, "kind")?,
            ciphertext: decoded("ciphertext")?,
            xnonce,
            key_id: Self::column(row, "key_id")?,
        })
    }

    /// Inserts or replaces one secret row inside the caller's transaction.
    pub(super) async fn upsert_secret(
        connection: &mut DB::Connection,
        secret: &NewSecret,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO channel_secrets (channel_id, kind, ciphertext, xnonce, key_id, \
             fingerprint, hint, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (channel_id, kind) DO UPDATE \
             SET ciphertext = excluded.ciphertext, xnonce = excluded.xnonce, \
                 key_id = excluded.key_id, fingerprint = excluded.fingerprint, \
                 hint = excluded.hint, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
        )
        .bind(secret.channel_id)
        .bind(secret.kind.as_str())
        .bind(STANDARD.encode(&secret.sealed.ciphertext))
        .bind(STANDARD.encode(secret.sealed.xnonce))
        .bind(secret.sealed.key_id.as_str())
        .bind(secret.sealed.fingerprint.as_str())
        .bind(secret.sealed.hint.as_str())
        .bind(secret.now)
        .bind(secret.updated_by.as_str())
        .execute(connection)
        .await
        .map_err(DbError::Query)?;
        Ok(())
    }

    pub(super) async fn put_secret_impl(
        &self,
        secret: NewSecret,
        audit: AuditEntry,
    ) -> Result<SecretRecord, DbError> {
        let mut tx = self.begin_write().await?;

        // Touching the channel row checks it is live and, on PostgreSQL, locks it, so two
        // writes of one channel's secrets queue and each audit entry names the fingerprint
        // it really replaced. SQLite's BEGIN IMMEDIATE already serializes writers.
        let result = sqlx::query(
            "UPDATE channels SET deleted_at = deleted_at WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(secret.channel_id)
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        if DB::rows_affected(&result) == 0 {
            return Err(DbError::NotFound);
        }

        let old = sqlx::query(
            "SELECT fingerprint FROM channel_secrets WHERE channel_id = $1 AND kind = $2",
        )
        .bind(secret.channel_id)
        .bind(secret.kind.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        let old_fingerprint: Option<String> = old
            .as_ref()
            .map(|row| Self::column(row, "fingerprint"))
            .transpose()?;
        Self::upsert_secret(&mut tx, &secret).await?;

        let audit = AuditEntry {
            action: if old_fingerprint.is_some() {
                "secret.rotate"
            } else {
                "secret.set"
            },
            channel_id: Some(secret.channel_id),
            target: Some(secret.kind.to_string()),
            details: serde_json::json!({
                "kind": secret.kind,
                "oldFingerprint": old_fingerprint,
                "newFingerprint": secret.sealed.fingerprint,
            }),
            ..audit
        };
        Self::commit_audited(tx, &audit).await?;
        Ok(SecretRecord {
            kind: secret.kind,
            fingerprint: secret.sealed.fingerprint,
            hint: secret.sealed.hint,
            updated_at: secret.now,
            updated_by: secret.updated_by,
        })
    }

    pub(super) async fn secrets_of_impl(
        &self,
        channel_id: i64,
    ) -> Result<Vec<SecretRecord>, DbError> {
        let found = sqlx::query(
            "SELECT kind, fingerprint, hint, updated_at, updated_by FROM channel_secrets \
             WHERE channel_id = $1 ORDER BY kind",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found.iter().map(Self::secret_record).collect()
    }

    pub(super) async fn sealed_secret_impl(
        &self,
        channel_id: i64,
        kind: SecretKind,
    ) -> Result<Option<SealedSecret>, DbError> {
        let sql = format!(
            "SELECT {SEALED_COLUMNS} FROM channel_secrets WHERE channel_id = $1 AND kind = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(channel_id)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.as_ref().map(Self::sealed_row).transpose()
    }

    pub(super) async fn reseal_secrets_impl(
        &self,
        reseal: &ResealSecret<'_>,
        audit: AuditEntry,
    ) -> Result<ResealCounts, DbError> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {SEALED_COLUMNS} FROM channel_secrets ORDER BY channel_id, kind");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await
            .map_err(DbError::Query)?;

        let mut counts = ResealCounts::default();
        for row in &rows {
            let stored = Self::sealed_row(row)?;
            let resealed = reseal(&stored).map_err(|error| DbError::Seal(Box::new(error)))?;
            let Some(sealed) = resealed else {
                counts.n_unchanged += 1;
                continue;
            };

            // The key id guard makes a row changed since it was read fail the whole
            // rotation instead of being overwritten.
            let result = sqlx::query(
                "UPDATE channel_secrets SET ciphertext = $1, xnonce = $2, key_id = $3 \
                 WHERE channel_id = $4 AND kind = $5 AND key_id = $6",
            )
            .bind(STANDARD.encode(&sealed.ciphertext))
            .bind(STANDARD.encode(sealed.xnonce))
            .bind(sealed.key_id.as_str())
            .bind(stored.channel_id)
            .bind(stored.kind.as_str())
            .bind(stored.key_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DbError::Query)?;
            if DB::rows_affected(&result) == 0 {
                return Err(DbError::NotFound);
            }

            let row_audit = AuditEntry {
                channel_id: Some(stored.channel_id),
                target: Some(stored.kind.to_string()),
                details: serde_json::json!({
                    "kind": stored.kind,
                    "fingerprint": sealed.fingerprint,
                    "oldKeyId": stored.key_id,
                    "newKeyId": sealed.key_id,
                }),
                ..audit.clone()
            };
            Self::insert_audit(&mut tx, &row_audit).await?;
            counts.n_resealed += 1;
        }
        tx.commit().await.map_err(DbError::Query)?;
        Ok(counts)
    }
}

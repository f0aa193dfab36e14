//! Users, API tokens, nonces and the audit log.

use kachery_protocol::{Email, NodeId, Nonce};
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Backend, SqlArg, SqlDb, SqlValue};
use crate::db::{AuditEntry, DbError, NewApiToken, TokenRecord};

/// `last_used_at` is stamped at most this often, so reads stay mostly read-only.
const TOKEN_TOUCH_INTERVAL_MS: i64 = 60_000;

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
    /// Writes one audit row on the caller's connection (usually inside its transaction).
    pub(super) async fn insert_audit(
        connection: &mut DB::Connection,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit_log \
             (at, actor_kind, actor, action, channel_id, target, details, request_id, dev_login) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(audit.at)
        .bind(audit.actor_kind)
        .bind(&audit.actor)
        .bind(audit.action)
        .bind(audit.channel_id)
        .bind(&audit.target)
        .bind(audit.details.to_string())
        .bind(&audit.request_id)
        .bind(audit.dev_login)
        .execute(connection)
        .await
        .map_err(DbError::Query)?;
        Ok(())
    }

    /// Writes the mutation's audit row and commits: the last step of every mutation.
    pub(super) async fn commit_audited(
        mut tx: Transaction<'static, DB>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(DbError::Query)
    }

    /// [`Self::commit_audited`] for a write that must have changed a row: if `result`
    /// changed none, [`DbError::NotFound`] and the transaction rolls back on drop.
    pub(super) async fn commit_if_changed(
        tx: Transaction<'static, DB>,
        result: &DB::QueryResult,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        if DB::rows_affected(result) == 0 {
            return Err(DbError::NotFound);
        }
        Self::commit_audited(tx, audit).await
    }

    pub(super) async fn touch_user_impl(&self, email: &Email, now: i64) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO users (email, created_at, last_login_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO UPDATE SET last_login_at = excluded.last_login_at \
             RETURNING id",
        )
        .bind(email.as_str())
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Self::column(&row, "id")
    }

    pub(super) async fn insert_api_token_impl(
        &self,
        token: NewApiToken,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_tokens \
             (token_hash, user_id, label, dev_login, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.token_hash)
        .bind(token.user_id)
        .bind(&token.label)
        .bind(token.dev_login)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_audited(tx, &audit).await
    }

    pub(super) async fn api_token_impl(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<TokenRecord>, DbError> {
        let row = sqlx::query(
            "SELECT t.id, t.expires_at, t.revoked_at, t.dev_login, t.last_used_at, u.email \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::Query)?;
        let Some(row) = row else { return Ok(None) };

        let last_used_at: Option<i64> = Self::column(&row, "last_used_at")?;
        if last_used_at.is_none_or(|at| now - at > TOKEN_TOUCH_INTERVAL_MS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(Self::column::<i64>(&row, "id")?)
                .execute(&self.pool)
                .await
                .map_err(DbError::Query)?;
        }

        Ok(Some(TokenRecord {
            email: Self::parsed(&row, "email")?,
            expires_at: Self::column(&row, "expires_at")?,
            revoked: Self::column::<Option<i64>>(&row, "revoked_at")?.is_some(),
            dev_login: Self::column(&row, "dev_login")?,
        }))
    }

    pub(super) async fn record_nonce_impl(
        &self,
        signer: &NodeId,
        nonce: &Nonce,
        purpose: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, DbError> {
        // An expired row not yet purged is overwritten; a live one makes this a no-op.
        let result = sqlx::query(
            "INSERT INTO seen_nonces (signer, nonce, purpose, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (signer, nonce) DO UPDATE \
             SET purpose = excluded.purpose, expires_at = excluded.expires_at \
             WHERE seen_nonces.expires_at < $5",
        )
        .bind(signer.to_string())
        .bind(nonce.to_string())
        .bind(purpose)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Ok(DB::rows_affected(&result) == 1)
    }

    pub(super) async fn count_recent_nonces_impl(
        &self,
        signer: &NodeId,
        purpose: &str,
        expires_after: i64,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM seen_nonces \
             WHERE signer = $1 AND expires_at > $2 AND purpose = $3",
        )
        .bind(signer.to_string())
        .bind(expires_after)
        .bind(purpose)
        .fetch_one(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Self::column(&row, "n")
    }

    pub(super) async fn purge_expired_impl(
        &self,
        now: i64,
        credential_audit_before: i64,
    ) -> Result<u64, DbError> {
        let nonces = sqlx::query("DELETE FROM seen_nonces WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(DbError::Query)?;
        let audit =
            sqlx::query("DELETE FROM audit_log WHERE action LIKE 'credential.%' AND at < $1")
                .bind(credential_audit_before)
                .execute(&self.pool)
                .await
                .map_err(DbError::Query)?;
        let sign_in = self.purge_sign_in_impl(now).await?;
        Ok(DB::rows_affected(&nonces) + DB::rows_affected(&audit) + sign_in)
    }

    pub(super) async fn append_audit_impl(&self, audit: AuditEntry) -> Result<(), DbError> {
        let mut connection = self.pool.acquire().await.map_err(DbError::Query)?;
        Self::insert_audit(&mut connection, &audit).await
    }

    pub(super) async fn uploaders_of_impl(
        &self,
        channel_id: i64,
        key: &str,
        since: i64,
    ) -> Result<Vec<String>, DbError> {
        // The LIKE narrows the rows; the exact key match happens on the parsed JSON below.
        let pattern = format!("%{}%", escape_like(key));
        let rows = sqlx::query(
            "SELECT actor, details FROM audit_log \
             WHERE channel_id = $1 AND action = 'credential.upload' AND at >= $2 \
             AND details LIKE $3 ESCAPE '\\' ORDER BY at",
        )
        .bind(channel_id)
        .bind(since)
        .bind(pattern)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;

        let mut uploaders = Vec::new();
        for row in rows {
            let details: String = Self::column(&row, "details")?;
            let details: serde_json::Value =
                serde_json::from_str(&details).map_err(|error| DbError::CorruptRow {
                    column: "audit_log.details",
                    detail: error.to_string(),
                })?;
            let names_key = details["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|stored| stored.as_str() == Some(key)));
            let actor: String = Self::column(&row, "actor")?;
            if names_key && !uploaders.contains(&actor) {
                uploaders.push(actor);
            }
        }
        Ok(uploaders)
    }
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

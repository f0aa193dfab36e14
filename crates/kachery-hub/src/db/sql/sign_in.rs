//! Browser sessions, pending sign-in flows, OIDC identities and API-token listing
//! (SPEC §8.1, §9).

use kachery_protocol::Email;
use sqlx::{ColumnIndex, Executor};

use super::{Backend, SqlArg, SqlDb, SqlValue};
use crate::db::{AuditEntry, AuthFlow, DbError, FlowKind, NewSession, SessionRecord, TokenSummary};

/// The `auth_flows` columns every flow query reads.
const FLOW_COLUMNS: &str = "state, kind, provider, pkce_verifier, code_challenge, oidc_nonce, \
     user_code, return_to, user_id, created_at, expires_at";

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
    pub(super) async fn insert_session_impl(&self, session: NewSession) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions \
             (id_hash, user_id, csrf_secret, created_at, last_seen_at, expires_at, dev_login) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id_hash)
        .bind(session.user_id)
        .bind(&session.csrf_secret)
        .bind(session.created_at)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.dev_login)
        .execute(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Ok(())
    }

    pub(super) async fn session_impl(
        &self,
        id_hash: &str,
    ) -> Result<Option<SessionRecord>, DbError> {
        let row = sqlx::query(
            "SELECT s.user_id, s.csrf_secret, s.dev_login, s.created_at, s.last_seen_at, \
             s.expires_at, u.email \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::Query)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            user_id: Self::column(&row, "user_id")?,
            email: Self::parsed(&row, "email")?,
            csrf_secret: Self::column(&row, "csrf_secret")?,
            dev_login: Self::column(&row, "dev_login")?,
            created_at: Self::column(&row, "created_at")?,
            last_seen_at: Self::column(&row, "last_seen_at")?,
            expires_at: Self::column(&row, "expires_at")?,
        }))
    }

    pub(super) async fn touch_session_impl(
        &self,
        id_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id_hash = $3")
            .bind(now)
            .bind(expires_at)
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(DbError::Query)?;
        Ok(())
    }

    pub(super) async fn delete_session_impl(&self, id_hash: &str) -> Result<bool, DbError> {
        let result = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(DbError::Query)?;
        Ok(DB::rows_affected(&result) == 1)
    }

    pub(super) async fn insert_auth_flow_impl(&self, flow: AuthFlow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO auth_flows (state, kind, provider, pkce_verifier, code_challenge, \
             oidc_nonce, user_code, return_to, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&flow.state)
        .bind(flow.kind.as_str())
        .bind(&flow.provider)
        .bind(&flow.pkce_verifier)
        .bind(&flow.code_challenge)
        .bind(&flow.oidc_nonce)
        .bind(&flow.user_code)
        .bind(&flow.return_to)
        .bind(flow.user_id)
        .bind(flow.created_at)
        .bind(flow.expires_at)
        .execute(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Ok(())
    }

    pub(super) async fn auth_flow_impl(
        &self,
        state: &str,
        kind: FlowKind,
        now: i64,
    ) -> Result<Option<AuthFlow>, DbError> {
        let sql = format!(
            "SELECT {FLOW_COLUMNS} FROM auth_flows \
             WHERE state = $1 AND kind = $2 AND expires_at > $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(kind.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.map(|row| Self::flow_row(&row)).transpose()
    }

    pub(super) async fn take_auth_flow_impl(
        &self,
        state: &str,
        kind: FlowKind,
        now: i64,
    ) -> Result<Option<AuthFlow>, DbError> {
        // One statement: of two concurrent redeemers exactly one gets the row.
        let sql = format!(
            "DELETE FROM auth_flows WHERE state = $1 AND kind = $2 AND expires_at > $3 \
             RETURNING {FLOW_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(kind.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.map(|row| Self::flow_row(&row)).transpose()
    }

    pub(super) async fn approve_device_flow_impl(
        &self,
        user_code: &str,
        user_id: i64,
        approved_via: Option<&str>,
        now: i64,
    ) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE auth_flows SET user_id = $1, provider = $2 \
             WHERE user_code = $3 AND kind = 'device' AND user_id IS NULL AND expires_at > $4",
        )
        .bind(user_id)
        .bind(approved_via.map(str::to_owned))
        .bind(user_code)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Ok(DB::rows_affected(&result) == 1)
    }

    pub(super) async fn user_email_impl(&self, user_id: i64) -> Result<Option<Email>, DbError> {
        let row = sqlx::query("SELECT email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.map(|row| Self::parsed(&row, "email")).transpose()
    }

    pub(super) async fn sign_in_identity_impl(
        &self,
        issuer: &str,
        subject: &str,
        email: &Email,
        now: i64,
    ) -> Result<i64, DbError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO users (email, created_at, last_login_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO UPDATE SET last_login_at = excluded.last_login_at \
             RETURNING id",
        )
        .bind(email.as_str())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        let user_id: i64 = Self::column(&row, "id")?;

        // The account follows its verified e-mail: if the provider now reports another
        // address for this subject, the identity moves to that user.
        sqlx::query(
            "INSERT INTO user_identities (user_id, issuer, subject, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (issuer, subject) DO UPDATE SET user_id = excluded.user_id",
        )
        .bind(user_id)
        .bind(issuer)
        .bind(subject)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        tx.commit().await.map_err(DbError::Query)?;
        Ok(user_id)
    }

    pub(super) async fn api_tokens_of_impl(
        &self,
        email: &Email,
    ) -> Result<Vec<TokenSummary>, DbError> {
        let rows = sqlx::query(
            "SELECT t.id, t.label, t.created_at, t.last_used_at, t.expires_at, t.revoked_at, \
             t.dev_login FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE u.email = $1 ORDER BY t.created_at DESC, t.id DESC",
        )
        .bind(email.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        rows.iter()
            .map(|row| {
                Ok(TokenSummary {
                    id: Self::column(row, "id")?,
                    label: Self::column(row, "label")?,
                    created_at: Self::column(row, "created_at")?,
                    last_used_at: Self::column(row, "last_used_at")?,
                    expires_at: Self::column(row, "expires_at")?,
                    revoked_at: Self::column(row, "revoked_at")?,
                    dev_login: Self::column(row, "dev_login")?,
                })
            })
            .collect()
    }

    pub(super) async fn revoke_api_token_impl(
        &self,
        token_id: i64,
        email: &Email,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             AND user_id = (SELECT id FROM users WHERE email = $3)",
        )
        .bind(now)
        .bind(token_id)
        .bind(email.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn purge_sign_in_impl(&self, now: i64) -> Result<u64, DbError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(DbError::Query)?;
        let flows = sqlx::query("DELETE FROM auth_flows WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(DbError::Query)?;
        Ok(DB::rows_affected(&sessions) + DB::rows_affected(&flows))
    }

    fn flow_row(row: &DB::Row) -> Result<AuthFlow, DbError> {
        let kind_text: String = Self::column(row, "kind")?;
        let kind = match kind_text.as_str() {
            "oidc" => FlowKind::Oidc,
            "cli" => FlowKind::Cli,
            "device" => FlowKind::Device,
            other => {
                return Err(DbError::CorruptRow {
                    column: "auth_flows.kind",
                    detail: other.to_owned(),
                });
            }
        };
        Ok(AuthFlow {
            state: Self::column(row, "state")?,
            kind,
            provider: Self::column(row, "provider")?,
            pkce_verifier: Self::column(row, "pkce_verifier")?,
            code_challenge: Self::column(row, "code_challenge")?,
            oidc_nonce: Self::column(row, "oidc_nonce")?,
            user_code: Self::column(row, "user_code")?,
            return_to: Self::column(row, "return_to")?,
            user_id: Self::column(row, "user_id")?,
            created_at: Self::column(row, "created_at")?,
            expires_at: Self::column(row, "expires_at")?,
        })
    }
}

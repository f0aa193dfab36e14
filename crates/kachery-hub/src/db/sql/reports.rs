//! Read-mostly views for owners and admins: stats counters, a channel's audit log page by
//! page, and the admin lists of every channel and user.

use kachery_protocol::{NodeId, Nonce};
use sqlx::{ColumnIndex, Executor};

use super::rows::CHANNEL_COLUMNS;
use super::{Backend, SqlArg, SqlDb, SqlValue};
use crate::db::{AuditEntry, AuditRecord, ChannelRecord, DbError, UserSummary};

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
    pub(super) async fn bump_counters_impl(
        &self,
        scope_kind: &str,
        scope: &str,
        counters: &[(&str, i64)],
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        for (counter, delta) in counters {
            sqlx::query(
                "INSERT INTO stats_counters (scope_kind, scope, counter, value) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (scope_kind, scope, counter) \
                 DO UPDATE SET value = stats_counters.value + excluded.value",
            )
            .bind(scope_kind)
            .bind(scope)
            .bind(*counter)
            .bind(*delta)
            .execute(&mut *tx)
            .await
            .map_err(DbError::Query)?;
        }
        tx.commit().await.map_err(DbError::Query)
    }

    pub(super) async fn counters_of_impl(
        &self,
        scope_kind: &str,
        scope: &str,
    ) -> Result<Vec<(String, i64)>, DbError> {
        let found = sqlx::query(
            "SELECT counter, value FROM stats_counters \
             WHERE scope_kind = $1 AND scope = $2 ORDER BY counter",
        )
        .bind(scope_kind)
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found
            .iter()
            .map(|row| Ok((Self::column(row, "counter")?, Self::column(row, "value")?)))
            .collect()
    }

    pub(super) async fn audit_of_impl(
        &self,
        channel_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, DbError> {
        // Newest first; the cursor is the id of the last entry of the previous page.
        let found = sqlx::query(
            "SELECT id, at, actor_kind, actor, action, target, details, dev_login \
             FROM audit_log WHERE channel_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(channel_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found
            .iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: Self::column(row, "id")?,
                    at: Self::column(row, "at")?,
                    actor_kind: Self::column(row, "actor_kind")?,
                    actor: Self::column(row, "actor")?,
                    action: Self::column(row, "action")?,
                    target: Self::column(row, "target")?,
                    details: Self::column(row, "details")?,
                    dev_login: Self::column(row, "dev_login")?,
                })
            })
            .collect()
    }

    pub(super) async fn all_channels_impl(
        &self,
        include_deleted: bool,
    ) -> Result<Vec<ChannelRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels c \
             WHERE $1 OR c.deleted_at IS NULL ORDER BY c.name"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(include_deleted)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(Self::channel_row).collect()
    }

    pub(super) async fn users_impl(&self) -> Result<Vec<UserSummary>, DbError> {
        let found = sqlx::query(
            "SELECT u.email, u.created_at, u.last_login_at, \
             (SELECT COUNT(*) FROM nodes n \
              WHERE n.owner_email = u.email AND n.deleted_at IS NULL) AS n_nodes, \
             (SELECT COUNT(*) FROM channels c \
              WHERE c.owner_email = u.email AND c.deleted_at IS NULL) AS n_channels \
             FROM users u ORDER BY u.email",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found
            .iter()
            .map(|row| {
                Ok(UserSummary {
                    email: Self::parsed(row, "email")?,
                    created_at: Self::column(row, "created_at")?,
                    last_login_at: Self::column(row, "last_login_at")?,
                    n_nodes: Self::column(row, "n_nodes")?,
                    n_channels: Self::column(row, "n_channels")?,
                })
            })
            .collect()
    }

    pub(super) async fn restore_channel_impl(
        &self,
        channel_id: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE channels SET deleted_at = NULL WHERE id = $1 AND deleted_at IS NOT NULL",
        )
        .bind(channel_id)
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn nonce_seen_impl(
        &self,
        signer: &NodeId,
        nonce: &Nonce,
        now: i64,
    ) -> Result<bool, DbError> {
        let found = sqlx::query(
            "SELECT 1 AS found FROM seen_nonces \
             WHERE signer = $1 AND nonce = $2 AND expires_at > $3",
        )
        .bind(signer.to_string())
        .bind(nonce.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Ok(found.is_some())
    }
}

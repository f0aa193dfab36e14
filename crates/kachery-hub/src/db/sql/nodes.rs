//! Node records: registration, rename, delete, reports.

use kachery_protocol::{ChannelName, Email, Label, NodeId};
use sqlx::{ColumnIndex, Executor};

use super::rows::NODE_COLUMNS;
use super::{Backend, SqlArg, SqlDb, SqlValue, conflict_or_query};
use crate::db::{AuditEntry, ConflictKind, DbError, NewNode, NodeRecord};

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
    pub(super) async fn register_node_impl(
        &self,
        node: NewNode,
        audit: AuditEntry,
    ) -> Result<NodeRecord, DbError> {
        let mut tx = self.begin_write().await?;

        // The nonce row goes first: a reused registration fails here even if the node
        // record was deleted in between.
        sqlx::query(
            "INSERT INTO seen_nonces (signer, nonce, purpose, expires_at) \
             VALUES ($1, $2, 'register-node', $3)",
        )
        .bind(node.node_id.to_string())
        .bind(node.nonce.to_string())
        .bind(node.nonce_expires_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_query::<DB>)?;

        // A soft-deleted record comes back to life; a live one is a conflict.
        let inserted = sqlx::query(
            "INSERT INTO nodes (node_id, owner_email, label, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node_id, owner_email) DO UPDATE \
             SET label = excluded.label, created_at = excluded.created_at, \
                 deleted_at = NULL, last_report_at = NULL, last_report = NULL \
             WHERE nodes.deleted_at IS NOT NULL \
             RETURNING id",
        )
        .bind(node.node_id.to_string())
        .bind(node.owner.as_str())
        .bind(node.label.as_str())
        .bind(node.now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        let Some(row) = inserted else {
            return Err(DbError::Conflict(ConflictKind::Node));
        };
        let row_id: i64 = Self::column(&row, "id")?;

        Self::commit_audited(tx, &audit).await?;
        Ok(NodeRecord {
            row_id,
            node_id: node.node_id,
            owner: node.owner,
            label: node.label,
            created_at: node.now,
            last_report_at: None,
            last_report: None,
        })
    }

    pub(super) async fn node_impl(
        &self,
        node_id: &NodeId,
        owner: &Email,
    ) -> Result<Option<NodeRecord>, DbError> {
        let sql = format!(
            "SELECT {NODE_COLUMNS} FROM nodes n \
             WHERE n.node_id = $1 AND n.owner_email = $2 AND n.deleted_at IS NULL"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node_id.to_string())
            .bind(owner.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.as_ref().map(Self::node_row).transpose()
    }

    pub(super) async fn nodes_of_impl(&self, owner: &Email) -> Result<Vec<NodeRecord>, DbError> {
        let sql = format!(
            "SELECT {NODE_COLUMNS} FROM nodes n \
             WHERE n.owner_email = $1 AND n.deleted_at IS NULL ORDER BY n.label, n.node_id"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(Self::node_row).collect()
    }

    pub(super) async fn rename_node_impl(
        &self,
        node: &NodeRecord,
        label: &Label,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result =
            sqlx::query("UPDATE nodes SET label = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(label.as_str())
                .bind(node.row_id)
                .execute(&mut *tx)
                .await
                .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn delete_node_impl(
        &self,
        node: &NodeRecord,
        now: i64,
        audit: AuditEntry,
    ) -> Result<Vec<ChannelName>, DbError> {
        let mut tx = self.begin_write().await?;
        let result =
            sqlx::query("UPDATE nodes SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(now)
                .bind(node.row_id)
                .execute(&mut *tx)
                .await
                .map_err(DbError::Query)?;
        if DB::rows_affected(&result) == 0 {
            return Err(DbError::NotFound);
        }

        // Grants stay (they are the channel owners' decisions); memberships go.
        let left = sqlx::query(
            "SELECT c.name FROM memberships m JOIN channels c ON c.id = m.channel_id \
             WHERE m.node_row_id = $1",
        )
        .bind(node.row_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        sqlx::query("DELETE FROM memberships WHERE node_row_id = $1")
            .bind(node.row_id)
            .execute(&mut *tx)
            .await
            .map_err(DbError::Query)?;

        Self::commit_audited(tx, &audit).await?;
        left.iter()
            .map(|row| Self::parsed::<ChannelName>(row, "name"))
            .collect()
    }

    pub(super) async fn store_report_impl(
        &self,
        node: &NodeRecord,
        report_json: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE nodes SET last_report = $1, last_report_at = $2 WHERE id = $3")
            .bind(report_json)
            .bind(now)
            .bind(node.row_id)
            .execute(&self.pool)
            .await
            .map_err(DbError::Query)?;
        Ok(())
    }
}

//! Channels, memberships, grants and the effective-roles query on SQLite.

use kachery_protocol::{ChannelName, Email, NodeId, RoleSet};

use super::SqliteDb;
use super::accounts::insert_audit;
use super::rows::{self, CHANNEL_COLUMNS, column, conflict_as, parsed, read_mode_name};
use crate::db::{
    AuditEntry, ChannelRecord, ConflictKind, DbError, GrantRecord, MemberRecord, MembershipRecord,
    NewChannel, NewGrant, NodeRecord,
};

/// E = R ∩ (G ∪ P), empty when the channel is deleted (SPEC §5.2). Nodes are filtered to
/// live ones by every query that uses this.
// FIXME: passcode roles (P) are always empty until the passcode tables arrive in phase 2.
const EFFECTIVE_ROLES: &str = "m.requested_roles AS requested_roles, \
     COALESCE(a.granted_roles, 0) AS granted_roles, \
     CASE WHEN c.deleted_at IS NULL \
          THEN m.requested_roles & COALESCE(a.granted_roles, 0) ELSE 0 END AS effective_roles";

/// Joins a node's memberships to their channels and the matching grants.
const MEMBERSHIP_JOINS: &str = "FROM nodes n \
     JOIN memberships m ON m.node_row_id = n.id \
     JOIN channels c ON c.id = m.channel_id \
     LEFT JOIN authorizations a ON a.channel_id = c.id \
          AND a.node_id = n.node_id AND a.owner_email = n.owner_email";

fn membership(row: &sqlx::sqlite::SqliteRow) -> Result<MembershipRecord, DbError> {
    Ok(MembershipRecord {
        channel: rows::channel(row)?,
        requested: rows::roles(row, "requested_roles")?,
        granted: rows::roles(row, "granted_roles")?,
        passcode: RoleSet::EMPTY,
        effective: rows::roles(row, "effective_roles")?,
    })
}

fn grant_record(row: &sqlx::sqlite::SqliteRow) -> Result<GrantRecord, DbError> {
    Ok(GrantRecord {
        node_id: parsed(row, "node_id")?,
        owner: parsed(row, "owner_email")?,
        granted: rows::roles(row, "granted_roles")?,
        updated_at: column(row, "updated_at")?,
    })
}

impl SqliteDb {
    pub(super) async fn create_channel_impl(
        &self,
        channel: NewChannel,
        audit: AuditEntry,
    ) -> Result<ChannelRecord, DbError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO channels \
             (name, owner_email, bucket_backend, read_mode, pubsub_backend, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(channel.name.as_str())
        .bind(channel.owner.as_str())
        .bind(&channel.bucket_backend)
        .bind(read_mode_name(channel.read_mode))
        .bind(&channel.pubsub_backend)
        .bind(channel.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as(ConflictKind::Channel))?;
        let id: i64 = column(&row, "id")?;

        insert_audit(
            &mut tx,
            &AuditEntry {
                channel_id: Some(id),
                ..audit
            },
        )
        .await?;
        tx.commit().await.map_err(DbError::Query)?;
        Ok(ChannelRecord {
            id,
            name: channel.name,
            owner: channel.owner,
            bucket_backend: channel.bucket_backend,
            read_mode: channel.read_mode,
            pubsub_backend: channel.pubsub_backend,
            created_at: channel.now,
            deleted: false,
        })
    }

    pub(super) async fn channel_impl(
        &self,
        name: &ChannelName,
    ) -> Result<Option<ChannelRecord>, DbError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels c WHERE c.name = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.as_ref().map(rows::channel).transpose()
    }

    pub(super) async fn channels_for_impl(
        &self,
        owner: &Email,
        include_joined: bool,
    ) -> Result<Vec<ChannelRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels c WHERE c.owner_email = ? \
             OR (? AND c.id IN (SELECT m.channel_id FROM memberships m \
                 JOIN nodes n ON n.id = m.node_row_id \
                 WHERE n.owner_email = ? AND n.deleted_at IS NULL)) \
             ORDER BY c.name"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner.as_str())
            .bind(include_joined)
            .bind(owner.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(rows::channel).collect()
    }

    pub(super) async fn has_member_node_of_impl(
        &self,
        channel_id: i64,
        owner: &Email,
    ) -> Result<bool, DbError> {
        let found = sqlx::query(
            "SELECT 1 AS found FROM memberships m JOIN nodes n ON n.id = m.node_row_id \
             WHERE m.channel_id = ? AND n.owner_email = ? AND n.deleted_at IS NULL LIMIT 1",
        )
        .bind(channel_id)
        .bind(owner.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::Query)?;
        Ok(found.is_some())
    }

    pub(super) async fn soft_delete_channel_impl(
        &self,
        channel_id: i64,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result =
            sqlx::query("UPDATE channels SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
                .bind(now)
                .bind(channel_id)
                .execute(&mut *tx)
                .await
                .map_err(DbError::Query)?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(DbError::Query)
    }

    pub(super) async fn join_channel_impl(
        &self,
        node: &NodeRecord,
        channel: &ChannelRecord,
        requested: RoleSet,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;

        // The channel must still be live at insert time, not just when the handler looked.
        let result = sqlx::query(
            "INSERT INTO memberships (node_row_id, channel_id, requested_roles, created_at, \
             updated_at) SELECT ?, c.id, ?, ?, ? FROM channels c \
             WHERE c.id = ? AND c.deleted_at IS NULL",
        )
        .bind(node.row_id)
        .bind(requested.bits())
        .bind(now)
        .bind(now)
        .bind(channel.id)
        .execute(&mut *tx)
        .await
        .map_err(conflict_as(ConflictKind::Membership))?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }

        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(DbError::Query)
    }

    pub(super) async fn update_membership_impl(
        &self,
        node: &NodeRecord,
        channel: &ChannelName,
        requested: RoleSet,
        now: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE memberships SET requested_roles = ?, updated_at = ? \
             WHERE node_row_id = ? AND channel_id = (SELECT id FROM channels WHERE name = ?)",
        )
        .bind(requested.bits())
        .bind(now)
        .bind(node.row_id)
        .bind(channel.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(DbError::Query)
    }

    pub(super) async fn leave_channel_impl(
        &self,
        node: &NodeRecord,
        channel: &ChannelName,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "DELETE FROM memberships \
             WHERE node_row_id = ? AND channel_id = (SELECT id FROM channels WHERE name = ?)",
        )
        .bind(node.row_id)
        .bind(channel.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(DbError::Query)
    }

    pub(super) async fn memberships_of_impl(
        &self,
        node: &NodeRecord,
    ) -> Result<Vec<MembershipRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS}, {EFFECTIVE_ROLES} {MEMBERSHIP_JOINS} \
             WHERE n.id = ? AND n.deleted_at IS NULL ORDER BY c.name"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node.row_id)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(membership).collect()
    }

    pub(super) async fn membership_impl(
        &self,
        node_id: &NodeId,
        owner: &Email,
        channel: &ChannelName,
    ) -> Result<Option<MembershipRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS}, {EFFECTIVE_ROLES} {MEMBERSHIP_JOINS} \
             WHERE n.node_id = ? AND n.owner_email = ? AND n.deleted_at IS NULL AND c.name = ?"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node_id.to_string())
            .bind(owner.as_str())
            .bind(channel.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.as_ref().map(membership).transpose()
    }

    pub(super) async fn put_grant_impl(
        &self,
        grant: NewGrant,
        audit: AuditEntry,
    ) -> Result<GrantRecord, DbError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO authorizations \
             (channel_id, node_id, owner_email, granted_roles, updated_at, updated_by) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (channel_id, node_id, owner_email) DO UPDATE \
             SET granted_roles = excluded.granted_roles, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
        )
        .bind(grant.channel_id)
        .bind(grant.node_id.to_string())
        .bind(grant.owner.as_str())
        .bind(grant.roles.bits())
        .bind(grant.now)
        .bind(grant.updated_by.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(DbError::Query)?;
        Ok(GrantRecord {
            node_id: grant.node_id,
            owner: grant.owner,
            granted: grant.roles,
            updated_at: grant.now,
        })
    }

    pub(super) async fn delete_grant_impl(
        &self,
        channel_id: i64,
        node_id: &NodeId,
        owner: &Email,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "DELETE FROM authorizations WHERE channel_id = ? AND node_id = ? AND owner_email = ?",
        )
        .bind(channel_id)
        .bind(node_id.to_string())
        .bind(owner.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(DbError::Query)
    }

    pub(super) async fn grants_of_impl(
        &self,
        channel_id: i64,
    ) -> Result<Vec<GrantRecord>, DbError> {
        let found = sqlx::query(
            "SELECT node_id, owner_email, granted_roles, updated_at FROM authorizations \
             WHERE channel_id = ? ORDER BY owner_email, node_id",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found.iter().map(grant_record).collect()
    }

    pub(super) async fn members_of_impl(
        &self,
        channel_id: i64,
    ) -> Result<Vec<MemberRecord>, DbError> {
        let sql = format!(
            "SELECT n.node_id, n.owner_email, n.label, n.last_report_at, {EFFECTIVE_ROLES} \
             {MEMBERSHIP_JOINS} WHERE c.id = ? AND n.deleted_at IS NULL \
             ORDER BY n.owner_email, n.label"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(channel_id)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found
            .iter()
            .map(|row| {
                Ok(MemberRecord {
                    node_id: parsed(row, "node_id")?,
                    owner: parsed(row, "owner_email")?,
                    label: parsed(row, "label")?,
                    last_report_at: column(row, "last_report_at")?,
                    requested: rows::roles(row, "requested_roles")?,
                    granted: rows::roles(row, "granted_roles")?,
                    effective: rows::roles(row, "effective_roles")?,
                })
            })
            .collect()
    }
}

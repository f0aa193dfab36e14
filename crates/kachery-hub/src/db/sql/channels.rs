//! Channels, memberships, grants and the effective-roles query.

use kachery_protocol::{ChannelName, Email, NodeId, RoleSet};
use sqlx::{ColumnIndex, Executor};

use super::rows::{CHANNEL_COLUMNS, read_mode_name};
use super::{Backend, SqlArg, SqlDb, SqlValue, conflict_or_query};
use crate::db::{
    AuditEntry, ChannelRecord, ConflictKind, DbError, GrantRecord, MemberRecord, MembershipRecord,
    NewChannel, NewGrant, NewSecret, NodeRecord, SealSecrets,
};
use crate::time::now_ms;

/// E = R ∩ (G ∪ P), empty when the channel is deleted (SPEC §5.2). Nodes are filtered to
/// live ones by every query that uses this.
const EFFECTIVE_ROLES: &str = "m.requested_roles AS requested_roles, \
     COALESCE(a.granted_roles, 0) AS granted_roles, \
     COALESCE(pc.roles, 0) AS passcode_roles, \
     CASE WHEN c.deleted_at IS NULL \
          THEN m.requested_roles & (COALESCE(a.granted_roles, 0) | COALESCE(pc.roles, 0)) \
          ELSE 0 END AS effective_roles";

/// Joins a node's memberships to their channels, the matching grants, and P: the union of
/// the roles of linked passcodes that are unrevoked and unexpired at `$<now_param>`.
/// Neither database has a portable bitwise-OR aggregate, so P is built bit by bit from
/// `MAX(roles & bit)`.
fn membership_joins(now_param: u8) -> String {
    let union_of_bits = kachery_protocol::Role::ALL
        .iter()
        .map(|role| format!("COALESCE(MAX(p.roles & {}), 0)", *role as u8))
        .collect::<Vec<_>>()
        .join(" | ");
    format!(
        "FROM nodes n \
         JOIN memberships m ON m.node_row_id = n.id \
         JOIN channels c ON c.id = m.channel_id \
         LEFT JOIN authorizations a ON a.channel_id = c.id \
              AND a.node_id = n.node_id AND a.owner_email = n.owner_email \
         LEFT JOIN (SELECT mp.membership_id, {union_of_bits} AS roles \
              FROM membership_passcodes mp JOIN passcodes p ON p.id = mp.passcode_id \
              WHERE p.revoked_at IS NULL \
                AND (p.expires_at IS NULL OR p.expires_at > ${now_param}) \
              GROUP BY mp.membership_id) pc ON pc.membership_id = m.id"
    )
}

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
    fn membership(row: &DB::Row) -> Result<MembershipRecord, DbError> {
        Ok(MembershipRecord {
            channel: Self::channel_row(row)?,
            requested: Self::roles(row, "requested_roles")?,
            granted: Self::roles(row, "granted_roles")?,
            passcode: Self::roles(row, "passcode_roles")?,
            effective: Self::roles(row, "effective_roles")?,
        })
    }

    fn grant_record(row: &DB::Row) -> Result<GrantRecord, DbError> {
        Ok(GrantRecord {
            node_id: Self::parsed(row, "node_id")?,
            owner: Self::parsed(row, "owner_email")?,
            granted: Self::roles(row, "granted_roles")?,
            updated_at: Self::column(row, "updated_at")?,
        })
    }

    pub(super) async fn create_channel_impl(
        &self,
        channel: NewChannel,
        seal: &SealSecrets<'_>,
        audit: AuditEntry,
    ) -> Result<ChannelRecord, DbError> {
        let mut tx = self.begin_write().await?;
        // Names that differ only in letter case would let one channel pass for another.
        let look_alike =
            sqlx::query("SELECT 1 AS found FROM channels WHERE lower(name) = lower($1)")
                .bind(channel.name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(DbError::Query)?;
        if look_alike.is_some() {
            return Err(DbError::Conflict(ConflictKind::Channel));
        }
        let row = sqlx::query(
            "INSERT INTO channels \
             (name, owner_email, bucket_backend, bucket_config, read_mode, pubsub_backend, \
              pubsub_config, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(channel.name.as_str())
        .bind(channel.owner.as_str())
        .bind(&channel.bucket_backend)
        .bind(&channel.bucket_config)
        .bind(read_mode_name(channel.read_mode))
        .bind(&channel.pubsub_backend)
        .bind(&channel.pubsub_config)
        .bind(channel.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_or_query::<DB>)?;
        let id: i64 = Self::column(&row, "id")?;

        // Secrets given at creation go in with the channel or not at all.
        let sealed = seal(id).map_err(|error| DbError::Seal(Box::new(error)))?;
        for (kind, sealed) in sealed {
            let secret = NewSecret {
                channel_id: id,
                kind,
                sealed,
                updated_by: channel.owner.clone(),
                now: channel.now,
            };
            Self::upsert_secret(&mut tx, &secret).await?;
            let secret_audit = AuditEntry {
                action: "secret.set",
                channel_id: Some(id),
                target: Some(kind.to_string()),
                details: serde_json::json!({
                    "kind": kind,
                    "newFingerprint": secret.sealed.fingerprint,
                }),
                ..audit.clone()
            };
            Self::insert_audit(&mut tx, &secret_audit).await?;
        }

        let audit = AuditEntry {
            channel_id: Some(id),
            ..audit
        };
        Self::commit_audited(tx, &audit).await?;
        Ok(ChannelRecord {
            id,
            name: channel.name,
            owner: channel.owner,
            bucket_backend: channel.bucket_backend,
            bucket_config: channel.bucket_config,
            read_mode: channel.read_mode,
            pubsub_backend: channel.pubsub_backend,
            pubsub_config: channel.pubsub_config,
            created_at: channel.now,
            deleted: false,
        })
    }

    pub(super) async fn channel_impl(
        &self,
        name: &ChannelName,
    ) -> Result<Option<ChannelRecord>, DbError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels c WHERE c.name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.as_ref().map(Self::channel_row).transpose()
    }

    pub(super) async fn channels_for_impl(
        &self,
        owner: &Email,
        include_joined: bool,
    ) -> Result<Vec<ChannelRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels c WHERE c.owner_email = $1 \
             OR ($2 AND c.id IN (SELECT m.channel_id FROM memberships m \
                 JOIN nodes n ON n.id = m.node_row_id \
                 WHERE n.owner_email = $3 AND n.deleted_at IS NULL)) \
             ORDER BY c.name"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner.as_str())
            .bind(include_joined)
            .bind(owner.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(Self::channel_row).collect()
    }

    pub(super) async fn has_member_node_of_impl(
        &self,
        channel_id: i64,
        owner: &Email,
    ) -> Result<bool, DbError> {
        let found = sqlx::query(
            "SELECT 1 AS found FROM memberships m JOIN nodes n ON n.id = m.node_row_id \
             WHERE m.channel_id = $1 AND n.owner_email = $2 AND n.deleted_at IS NULL LIMIT 1",
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
            sqlx::query("UPDATE channels SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(now)
                .bind(channel_id)
                .execute(&mut *tx)
                .await
                .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn join_channel_impl(
        &self,
        node: &NodeRecord,
        channel: &ChannelRecord,
        requested: RoleSet,
        passcode_hashes: &[String],
        now: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;

        // The channel must still be live at insert time, not just when the handler looked.
        let row = sqlx::query(
            "INSERT INTO memberships (node_row_id, channel_id, requested_roles, created_at, \
             updated_at) SELECT $1, c.id, $2, $3, $4 FROM channels c \
             WHERE c.id = $5 AND c.deleted_at IS NULL RETURNING id",
        )
        .bind(node.row_id)
        .bind(requested.bits())
        .bind(now)
        .bind(now)
        .bind(channel.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(conflict_or_query::<DB>)?
        .ok_or(DbError::NotFound)?;
        let membership_id: i64 = Self::column(&row, "id")?;

        // Passcodes given with the join are linked in the same transaction, so a wrong
        // one leaves no membership behind.
        for hash in passcode_hashes {
            Self::link_passcode(&mut tx, membership_id, channel.id, hash, now).await?;
        }
        Self::commit_audited(tx, &audit).await
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
            "UPDATE memberships SET requested_roles = $1, updated_at = $2 \
             WHERE node_row_id = $3 AND channel_id = (SELECT id FROM channels WHERE name = $4)",
        )
        .bind(requested.bits())
        .bind(now)
        .bind(node.row_id)
        .bind(channel.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
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
             WHERE node_row_id = $1 AND channel_id = (SELECT id FROM channels WHERE name = $2)",
        )
        .bind(node.row_id)
        .bind(channel.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn memberships_of_impl(
        &self,
        node: &NodeRecord,
    ) -> Result<Vec<MembershipRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS}, {EFFECTIVE_ROLES} {joins} \
             WHERE n.id = $1 AND n.deleted_at IS NULL ORDER BY c.name",
            joins = membership_joins(2),
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node.row_id)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(Self::membership).collect()
    }

    pub(super) async fn membership_impl(
        &self,
        node_id: &NodeId,
        owner: &Email,
        channel: &ChannelName,
    ) -> Result<Option<MembershipRecord>, DbError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS}, {EFFECTIVE_ROLES} {joins} \
             WHERE n.node_id = $1 AND n.owner_email = $2 AND n.deleted_at IS NULL AND c.name = $3",
            joins = membership_joins(4),
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node_id.to_string())
            .bind(owner.as_str())
            .bind(channel.as_str())
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::Query)?;
        row.as_ref().map(Self::membership).transpose()
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
             VALUES ($1, $2, $3, $4, $5, $6) \
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
        Self::commit_audited(tx, &audit).await?;
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
            "DELETE FROM authorizations WHERE channel_id = $1 AND node_id = $2 AND owner_email = $3",
        )
        .bind(channel_id)
        .bind(node_id.to_string())
        .bind(owner.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn grants_of_impl(
        &self,
        channel_id: i64,
    ) -> Result<Vec<GrantRecord>, DbError> {
        let found = sqlx::query(
            "SELECT node_id, owner_email, granted_roles, updated_at FROM authorizations \
             WHERE channel_id = $1 ORDER BY owner_email, node_id",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found.iter().map(Self::grant_record).collect()
    }

    pub(super) async fn members_of_impl(
        &self,
        channel_id: i64,
    ) -> Result<Vec<MemberRecord>, DbError> {
        let sql = format!(
            "SELECT n.node_id, n.owner_email, n.label, n.last_report_at, {EFFECTIVE_ROLES} \
             {joins} WHERE c.id = $1 AND n.deleted_at IS NULL \
             ORDER BY n.owner_email, n.label",
            joins = membership_joins(2),
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(channel_id)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found
            .iter()
            .map(|row| {
                Ok(MemberRecord {
                    node_id: Self::parsed(row, "node_id")?,
                    owner: Self::parsed(row, "owner_email")?,
                    label: Self::parsed(row, "label")?,
                    last_report_at: Self::column(row, "last_report_at")?,
                    requested: Self::roles(row, "requested_roles")?,
                    granted: Self::roles(row, "granted_roles")?,
                    effective: Self::roles(row, "effective_roles")?,
                })
            })
            .collect()
    }
}

//! Passcodes: minting, listing, revoking, and linking them to memberships (SPEC §5.3).
//!
//! Entering a passcode is one write transaction: look the hash up, check channel,
//! revocation and expiry, then bump `use_count` with a guard on `max_uses` (so two
//! memberships racing for the last use cannot both win) and insert the link. Re-entering
//! a passcode already linked to the membership changes nothing and succeeds.

use kachery_protocol::RoleSet;
use sqlx::{ColumnIndex, Executor};

use super::{Backend, SqlArg, SqlDb, SqlValue};
use crate::db::{
    AffectedNode, AuditEntry, ChannelRecord, DbError, LinkedPasscode, NewPasscode, NodeRecord,
    PasscodeRecord,
};

const PASSCODE_COLUMNS: &str = "p.id, p.channel_id, p.hint, p.label, p.roles, p.expires_at, \
     p.max_uses, p.use_count, p.created_by, p.created_at, p.revoked_at";

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
    fn passcode_row(row: &DB::Row) -> Result<PasscodeRecord, DbError> {
        Ok(PasscodeRecord {
            id: Self::column(row, "id")?,
            channel_id: Self::column(row, "channel_id")?,
            hint: Self::column(row, "hint")?,
            label: Self::column(row, "label")?,
            roles: Self::roles(row, "roles")?,
            expires_at: Self::column(row, "expires_at")?,
            max_uses: Self::column(row, "max_uses")?,
            use_count: Self::column(row, "use_count")?,
            created_by: Self::parsed(row, "created_by")?,
            created_at: Self::column(row, "created_at")?,
            revoked_at: Self::column(row, "revoked_at")?,
        })
    }

    pub(super) async fn create_passcode_impl(
        &self,
        passcode: NewPasscode,
        audit: AuditEntry,
    ) -> Result<PasscodeRecord, DbError> {
        let mut tx = self.begin_write().await?;

        // The channel must be live at insert time.
        let row = sqlx::query(
            "INSERT INTO passcodes (channel_id, hash, hint, label, roles, expires_at, max_uses, \
             use_count, created_by, created_at) \
             SELECT c.id, $1, $2, $3, $4, $5, $6, 0, $7, $8 FROM channels c \
             WHERE c.id = $9 AND c.deleted_at IS NULL RETURNING id",
        )
        .bind(&passcode.hash)
        .bind(&passcode.hint)
        .bind(&passcode.label)
        .bind(passcode.roles.bits())
        .bind(passcode.expires_at)
        .bind(passcode.max_uses)
        .bind(passcode.created_by.as_str())
        .bind(passcode.now)
        .bind(passcode.channel_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::Query)?
        .ok_or(DbError::NotFound)?;
        let id: i64 = Self::column(&row, "id")?;

        let audit = AuditEntry {
            target: Some(id.to_string()),
            ..audit
        };
        Self::commit_audited(tx, &audit).await?;
        Ok(PasscodeRecord {
            id,
            channel_id: passcode.channel_id,
            hint: passcode.hint,
            label: passcode.label,
            roles: passcode.roles,
            expires_at: passcode.expires_at,
            max_uses: passcode.max_uses,
            use_count: 0,
            created_by: passcode.created_by,
            created_at: passcode.now,
            revoked_at: None,
        })
    }

    pub(super) async fn passcodes_of_impl(
        &self,
        channel_id: i64,
    ) -> Result<Vec<PasscodeRecord>, DbError> {
        let sql = format!(
            "SELECT {PASSCODE_COLUMNS} FROM passcodes p WHERE p.channel_id = $1 \
             ORDER BY p.created_at DESC, p.id DESC"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(channel_id)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::Query)?;
        found.iter().map(Self::passcode_row).collect()
    }

    pub(super) async fn revoke_passcode_impl(
        &self,
        channel_id: i64,
        passcode_id: i64,
        now: i64,
        audit: AuditEntry,
    ) -> Result<Vec<AffectedNode>, DbError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE passcodes SET revoked_at = $1 \
             WHERE id = $2 AND channel_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(passcode_id)
        .bind(channel_id)
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;

        let linked = sqlx::query(
            "SELECT n.node_id, n.owner_email FROM membership_passcodes mp \
             JOIN memberships m ON m.id = mp.membership_id \
             JOIN nodes n ON n.id = m.node_row_id WHERE mp.passcode_id = $1",
        )
        .bind(passcode_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        let affected = linked
            .iter()
            .map(|row| {
                Ok(AffectedNode {
                    node_id: Self::parsed(row, "node_id")?,
                    owner: Self::parsed(row, "owner_email")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;

        Self::commit_if_changed(tx, &result, &audit).await?;
        Ok(affected)
    }

    /// The id of `node`'s membership of `channel_id`, on the caller's connection.
    async fn membership_id(
        connection: &mut DB::Connection,
        node_row_id: i64,
        channel_id: i64,
    ) -> Result<Option<i64>, DbError> {
        let row =
            sqlx::query("SELECT id FROM memberships WHERE node_row_id = $1 AND channel_id = $2")
                .bind(node_row_id)
                .bind(channel_id)
                .fetch_optional(connection)
                .await
                .map_err(DbError::Query)?;
        row.map(|row| Self::column(&row, "id")).transpose()
    }

    /// Links the passcode whose hash is `hash` to the membership, inside the caller's
    /// transaction; [`DbError::InvalidPasscode`] for any reason it may not be used.
    pub(super) async fn link_passcode(
        connection: &mut DB::Connection,
        membership_id: i64,
        channel_id: i64,
        hash: &str,
        now: i64,
    ) -> Result<LinkedPasscode, DbError> {
        let sql = format!("SELECT {PASSCODE_COLUMNS} FROM passcodes p WHERE p.hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(&mut *connection)
            .await
            .map_err(DbError::Query)?
            .ok_or(DbError::InvalidPasscode)?;
        let passcode = Self::passcode_row(&row)?;
        let usable = passcode.channel_id == channel_id
            && passcode.revoked_at.is_none()
            && passcode.expires_at.is_none_or(|at| at > now);
        if !usable {
            return Err(DbError::InvalidPasscode);
        }
        let linked = LinkedPasscode {
            channel_id,
            passcode_id: passcode.id,
            hint: passcode.hint,
            roles: passcode.roles,
            valid: true,
        };

        let already = sqlx::query(
            "SELECT 1 AS found FROM membership_passcodes \
             WHERE membership_id = $1 AND passcode_id = $2",
        )
        .bind(membership_id)
        .bind(passcode.id)
        .fetch_optional(&mut *connection)
        .await
        .map_err(DbError::Query)?;
        if already.is_some() {
            return Ok(linked);
        }

        let counted = sqlx::query(
            "UPDATE passcodes SET use_count = use_count + 1 \
             WHERE id = $1 AND (max_uses IS NULL OR use_count < max_uses)",
        )
        .bind(passcode.id)
        .execute(&mut *connection)
        .await
        .map_err(DbError::Query)?;
        if DB::rows_affected(&counted) == 0 {
            return Err(DbError::InvalidPasscode);
        }
        sqlx::query(
            "INSERT INTO membership_passcodes (membership_id, passcode_id, created_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(membership_id)
        .bind(passcode.id)
        .bind(now)
        .execute(&mut *connection)
        .await
        .map_err(DbError::Query)?;
        Ok(linked)
    }

    pub(super) async fn enter_passcode_impl(
        &self,
        node: &NodeRecord,
        channel: &ChannelRecord,
        hash: &str,
        now: i64,
        audit: AuditEntry,
    ) -> Result<LinkedPasscode, DbError> {
        let mut tx = self.begin_write().await?;
        let membership_id = Self::membership_id(&mut tx, node.row_id, channel.id)
            .await?
            .ok_or(DbError::NotFound)?;
        let linked = Self::link_passcode(&mut tx, membership_id, channel.id, hash, now).await?;
        let audit = AuditEntry {
            details: serde_json::json!({
                "passcode": linked.passcode_id,
                "hint": linked.hint,
                "roles": linked.roles,
            }),
            ..audit
        };
        Self::commit_audited(tx, &audit).await?;
        Ok(linked)
    }

    pub(super) async fn unlink_passcode_impl(
        &self,
        node: &NodeRecord,
        channel: &ChannelRecord,
        passcode_id: i64,
        audit: AuditEntry,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let membership_id = Self::membership_id(&mut tx, node.row_id, channel.id)
            .await?
            .ok_or(DbError::NotFound)?;
        let result = sqlx::query(
            "DELETE FROM membership_passcodes WHERE membership_id = $1 AND passcode_id = $2",
        )
        .bind(membership_id)
        .bind(passcode_id)
        .execute(&mut *tx)
        .await
        .map_err(DbError::Query)?;
        Self::commit_if_changed(tx, &result, &audit).await
    }

    pub(super) async fn linked_passcodes_impl(
        &self,
        node: &NodeRecord,
        now: i64,
    ) -> Result<Vec<LinkedPasscode>, DbError> {
        let found = sqlx::query(
            "SELECT m.channel_id, p.id, p.hint, p.roles, \
             CAST(CASE WHEN p.revoked_at IS NULL \
                  AND (p.expires_at IS NULL OR p.expires_at > $2) \
                  THEN 1 ELSE 0 END AS BIGINT) AS valid \
             FROM memberships m JOIN membership_passcodes mp ON mp.membership_id = m.id \
             JOIN passcodes p ON p.id = mp.passcode_id \
             WHERE m.node_row_id = $1 ORDER BY p.created_at, p.id",
        )
        .bind(node.row_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(DbError::Query)?;
        found
            .iter()
            .map(|row| {
                Ok(LinkedPasscode {
                    channel_id: Self::column(row, "channel_id")?,
                    passcode_id: Self::column(row, "id")?,
                    hint: Self::column(row, "hint")?,
                    roles: RoleSet::from_bits(Self::column(row, "roles")?),
                    valid: Self::column::<i64>(row, "valid")? == 1,
                })
            })
            .collect()
    }
}

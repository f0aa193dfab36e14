//! [`SqliteDb`]: the hub database on one SQLite file in WAL mode.
//!
//! Migrations live in `crates/kachery-hub/migrations/sqlite/` and run at startup. Write
//! transactions start with `BEGIN IMMEDIATE` so two writers queue on the busy timeout
//! instead of failing when a deferred transaction tries to upgrade its lock.

mod accounts;
mod channels;
mod nodes;
mod rows;

use std::str::FromStr;
use std::time::Duration;

use kachery_protocol::{ChannelName, Email, Label, NodeId, Nonce, RoleSet};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::db::{
    AuditEntry, ChannelRecord, DbError, DbFuture, GrantRecord, HubDb, MemberRecord,
    MembershipRecord, NewApiToken, NewChannel, NewGrant, NewNode, NodeRecord, TokenRecord,
};

/// How long a statement waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite implementation of [`HubDb`]; one pool per hub process.
pub struct SqliteDb {
    pool: SqlitePool,
}

impl SqliteDb {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let open_error = |source| DbError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(DbError::Migrate)?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, DbError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(DbError::Query)
    }
}

impl HubDb for SqliteDb {
    fn ping(&self) -> DbFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(DbError::Query)?;
            Ok(())
        })
    }

    fn close(&self) -> DbFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }

    fn touch_user<'a>(&'a self, email: &'a Email, now: i64) -> DbFuture<'a, i64> {
        Box::pin(self.touch_user_impl(email, now))
    }

    fn insert_api_token(&self, token: NewApiToken, audit: AuditEntry) -> DbFuture<'_, ()> {
        Box::pin(self.insert_api_token_impl(token, audit))
    }

    fn api_token<'a>(&'a self, token_hash: &'a str, now: i64) -> DbFuture<'a, Option<TokenRecord>> {
        Box::pin(self.api_token_impl(token_hash, now))
    }

    fn record_nonce<'a>(
        &'a self,
        signer: &'a NodeId,
        nonce: &'a Nonce,
        purpose: &'a str,
        now: i64,
        expires_at: i64,
    ) -> DbFuture<'a, bool> {
        Box::pin(self.record_nonce_impl(signer, nonce, purpose, now, expires_at))
    }

    fn purge_expired(&self, now: i64, credential_audit_before: i64) -> DbFuture<'_, u64> {
        Box::pin(self.purge_expired_impl(now, credential_audit_before))
    }

    fn register_node<'a>(&'a self, node: NewNode, audit: AuditEntry) -> DbFuture<'a, NodeRecord> {
        Box::pin(self.register_node_impl(node, audit))
    }

    fn node<'a>(
        &'a self,
        node_id: &'a NodeId,
        owner: &'a Email,
    ) -> DbFuture<'a, Option<NodeRecord>> {
        Box::pin(self.node_impl(node_id, owner))
    }

    fn nodes_of<'a>(&'a self, owner: &'a Email) -> DbFuture<'a, Vec<NodeRecord>> {
        Box::pin(self.nodes_of_impl(owner))
    }

    fn rename_node<'a>(
        &'a self,
        node: &'a NodeRecord,
        label: &'a Label,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.rename_node_impl(node, label, audit))
    }

    fn delete_node<'a>(
        &'a self,
        node: &'a NodeRecord,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, Vec<ChannelName>> {
        Box::pin(self.delete_node_impl(node, now, audit))
    }

    fn store_report<'a>(
        &'a self,
        node: &'a NodeRecord,
        report_json: &'a str,
        now: i64,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.store_report_impl(node, report_json, now))
    }

    fn create_channel<'a>(
        &'a self,
        channel: NewChannel,
        audit: AuditEntry,
    ) -> DbFuture<'a, ChannelRecord> {
        Box::pin(self.create_channel_impl(channel, audit))
    }

    fn channel<'a>(&'a self, name: &'a ChannelName) -> DbFuture<'a, Option<ChannelRecord>> {
        Box::pin(self.channel_impl(name))
    }

    fn channels_for<'a>(
        &'a self,
        owner: &'a Email,
        include_joined: bool,
    ) -> DbFuture<'a, Vec<ChannelRecord>> {
        Box::pin(self.channels_for_impl(owner, include_joined))
    }

    fn has_member_node_of<'a>(&'a self, channel_id: i64, owner: &'a Email) -> DbFuture<'a, bool> {
        Box::pin(self.has_member_node_of_impl(channel_id, owner))
    }

    fn soft_delete_channel<'a>(
        &'a self,
        channel_id: i64,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.soft_delete_channel_impl(channel_id, now, audit))
    }

    fn join_channel<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelRecord,
        requested: RoleSet,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.join_channel_impl(node, channel, requested, now, audit))
    }

    fn update_membership<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelName,
        requested: RoleSet,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.update_membership_impl(node, channel, requested, now, audit))
    }

    fn leave_channel<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelName,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.leave_channel_impl(node, channel, audit))
    }

    fn memberships_of<'a>(&'a self, node: &'a NodeRecord) -> DbFuture<'a, Vec<MembershipRecord>> {
        Box::pin(self.memberships_of_impl(node))
    }

    fn membership<'a>(
        &'a self,
        node_id: &'a NodeId,
        owner: &'a Email,
        channel: &'a ChannelName,
    ) -> DbFuture<'a, Option<MembershipRecord>> {
        Box::pin(self.membership_impl(node_id, owner, channel))
    }

    fn put_grant(&self, grant: NewGrant, audit: AuditEntry) -> DbFuture<'_, GrantRecord> {
        Box::pin(self.put_grant_impl(grant, audit))
    }

    fn delete_grant<'a>(
        &'a self,
        channel_id: i64,
        node_id: &'a NodeId,
        owner: &'a Email,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.delete_grant_impl(channel_id, node_id, owner, audit))
    }

    fn grants_of(&self, channel_id: i64) -> DbFuture<'_, Vec<GrantRecord>> {
        Box::pin(self.grants_of_impl(channel_id))
    }

    fn members_of(&self, channel_id: i64) -> DbFuture<'_, Vec<MemberRecord>> {
        Box::pin(self.members_of_impl(channel_id))
    }

    fn append_audit(&self, audit: AuditEntry) -> DbFuture<'_, ()> {
        Box::pin(self.append_audit_impl(audit))
    }

    fn uploaders_of<'a>(
        &'a self,
        channel_id: i64,
        key: &'a str,
        since: i64,
    ) -> DbFuture<'a, Vec<String>> {
        Box::pin(self.uploaders_of_impl(channel_id, key, since))
    }
}

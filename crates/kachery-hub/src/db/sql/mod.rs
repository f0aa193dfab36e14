//! [`SqlDb`]: the one implementation of [`HubDb`], generic over the sqlx driver, shared by
//! SQLite ([`super::SqliteDb`]) and PostgreSQL ([`super::PostgresDb`]).
//!
//! Every query is written once, in the subset both databases understand: `$1`-style
//! placeholders (SQLite accepts them as numbered parameters), `ON CONFLICT ... DO UPDATE
//! ... WHERE`, `RETURNING`, bitwise `&` on integer role sets, `LIKE ... ESCAPE`. Columns
//! are 64-bit integers, text and booleans only, so each Rust type decodes from exactly one
//! column type on both sides (PostgreSQL is strict: an `i64` reads only `BIGINT`). What
//! really differs lives behind the small [`Backend`] trait: how a write transaction starts,
//! how a unique violation names the rule it broke, and the driver's row count.
//!
//! Why generic code over concrete drivers rather than sqlx's `Any` driver: `Any` needs its
//! own cargo feature and a runtime driver registry, passes SQL through untranslated (so it
//! saves nothing on placeholders), decodes only a handful of types, and hides the
//! driver-specific error details (the PostgreSQL constraint name, SQLite's `BEGIN
//! IMMEDIATE`) that the conflict mapping and the write locking depend on. The price of
//! generics is the `where` clause repeated on each impl block: Rust does not imply bounds
//! on other types (`i64: Encode<DB>`) from a trait's `where` clause, so they cannot be
//! folded into [`Backend`]. [`SqlValue`] and [`SqlArg`] keep that clause short.
//!
//! Queries live in [`accounts`] (users, tokens, nonces, audit), [`nodes`],
//! [`channels`] (channels, memberships, grants, effective roles) and [`secrets`] (channel
//! secrets, ciphertext only); [`rows`] turns rows back into validated records.

mod accounts;
mod channels;
mod nodes;
mod passcodes;
mod reports;
mod rows;
mod secrets;
mod sign_in;

use std::future::Future;

use kachery_protocol::user_api::SecretKind;
use kachery_protocol::{ChannelName, Email, Label, NodeId, Nonce, RoleSet};
use sqlx::error::DatabaseError;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type,
};

use crate::db::{
    AffectedNode, AuditEntry, AuditRecord, AuthFlow, ChannelRecord, ConflictKind, DbError,
    DbFuture, FlowKind, GrantRecord, HubDb, LinkedPasscode, MemberRecord, MembershipRecord,
    NewApiToken, NewChannel, NewGrant, NewNode, NewPasscode, NewSecret, NewSession, NodeRecord,
    PasscodeRecord, ResealCounts, ResealSecret, SealSecrets, SealedSecret, SecretRecord,
    SessionRecord, TokenRecord, TokenSummary, UserSummary,
};

/// What differs between the drivers once the SQL is the same.
pub trait Backend: Database<Arguments: IntoArguments<Self>> {
    /// Starts a transaction that will write, so concurrent writers queue instead of
    /// failing half-way.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Rows changed by an `INSERT`, `UPDATE` or `DELETE`.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// The uniqueness rule a failed write broke, if the error is a unique violation of a
    /// rule the hub reports as a conflict.
    fn conflict_kind(error: &dyn DatabaseError) -> Option<ConflictKind>;
}

/// A type that binds as a parameter and decodes from a column of `DB`.
pub trait SqlValue<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

impl<DB: Database, T> SqlValue<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

/// A borrowed type that binds as a parameter of `DB` (`&str`).
pub trait SqlArg<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> + Send {}

impl<DB: Database, T> SqlArg<DB> for T where T: for<'q> Encode<'q, DB> + Type<DB> + Send {}

/// The hub database over one connection pool of driver `DB`; one per hub process.
pub struct SqlDb<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Backend> SqlDb<DB> {
    /// Wraps a pool that is already migrated.
    pub(super) fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, DB>, DbError> {
        DB::begin_write(&self.pool).await.map_err(DbError::Query)
    }
}

/// Maps a unique violation to [`DbError::Conflict`] of the rule it broke; any other
/// error (a unique violation the hub does not expect included) stays a query error.
fn conflict_or_query<DB: Backend>(error: sqlx::Error) -> DbError {
    let kind = match &error {
        sqlx::Error::Database(database_error) => DB::conflict_kind(database_error.as_ref()),
        _ => None,
    };
    match kind {
        Some(kind) => DbError::Conflict(kind),
        None => DbError::Query(error),
    }
}

impl<DB> HubDb for SqlDb<DB>
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

    fn api_tokens_of<'a>(&'a self, email: &'a Email) -> DbFuture<'a, Vec<TokenSummary>> {
        Box::pin(self.api_tokens_of_impl(email))
    }

    fn revoke_api_token<'a>(
        &'a self,
        token_id: i64,
        email: &'a Email,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.revoke_api_token_impl(token_id, email, now, audit))
    }

    fn insert_session(&self, session: NewSession) -> DbFuture<'_, ()> {
        Box::pin(self.insert_session_impl(session))
    }

    fn session<'a>(&'a self, id_hash: &'a str) -> DbFuture<'a, Option<SessionRecord>> {
        Box::pin(self.session_impl(id_hash))
    }

    fn touch_session<'a>(
        &'a self,
        id_hash: &'a str,
        now: i64,
        expires_at: i64,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.touch_session_impl(id_hash, now, expires_at))
    }

    fn delete_session<'a>(&'a self, id_hash: &'a str) -> DbFuture<'a, bool> {
        Box::pin(self.delete_session_impl(id_hash))
    }

    fn insert_auth_flow(&self, flow: AuthFlow) -> DbFuture<'_, ()> {
        Box::pin(self.insert_auth_flow_impl(flow))
    }

    fn auth_flow<'a>(
        &'a self,
        state: &'a str,
        kind: FlowKind,
        now: i64,
    ) -> DbFuture<'a, Option<AuthFlow>> {
        Box::pin(self.auth_flow_impl(state, kind, now))
    }

    fn take_auth_flow<'a>(
        &'a self,
        state: &'a str,
        kind: FlowKind,
        now: i64,
    ) -> DbFuture<'a, Option<AuthFlow>> {
        Box::pin(self.take_auth_flow_impl(state, kind, now))
    }

    fn approve_device_flow<'a>(
        &'a self,
        user_code: &'a str,
        user_id: i64,
        approved_via: Option<&'a str>,
        now: i64,
    ) -> DbFuture<'a, bool> {
        Box::pin(self.approve_device_flow_impl(user_code, user_id, approved_via, now))
    }

    fn user_email(&self, user_id: i64) -> DbFuture<'_, Option<Email>> {
        Box::pin(self.user_email_impl(user_id))
    }

    fn sign_in_identity<'a>(
        &'a self,
        issuer: &'a str,
        subject: &'a str,
        email: &'a Email,
        now: i64,
    ) -> DbFuture<'a, i64> {
        Box::pin(self.sign_in_identity_impl(issuer, subject, email, now))
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

    fn count_recent_nonces<'a>(
        &'a self,
        signer: &'a NodeId,
        purpose: &'a str,
        expires_after: i64,
    ) -> DbFuture<'a, i64> {
        Box::pin(self.count_recent_nonces_impl(signer, purpose, expires_after))
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
        seal: &'a SealSecrets<'a>,
        audit: AuditEntry,
    ) -> DbFuture<'a, ChannelRecord> {
        Box::pin(self.create_channel_impl(channel, seal, audit))
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
        passcode_hashes: &'a [String],
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.join_channel_impl(node, channel, requested, passcode_hashes, now, audit))
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

    fn put_secret(&self, secret: NewSecret, audit: AuditEntry) -> DbFuture<'_, SecretRecord> {
        Box::pin(self.put_secret_impl(secret, audit))
    }

    fn secrets_of(&self, channel_id: i64) -> DbFuture<'_, Vec<SecretRecord>> {
        Box::pin(self.secrets_of_impl(channel_id))
    }

    fn sealed_secret(
        &self,
        channel_id: i64,
        kind: SecretKind,
    ) -> DbFuture<'_, Option<SealedSecret>> {
        Box::pin(self.sealed_secret_impl(channel_id, kind))
    }

    fn reseal_secrets<'a>(
        &'a self,
        reseal: &'a ResealSecret<'a>,
        audit: AuditEntry,
    ) -> DbFuture<'a, ResealCounts> {
        Box::pin(self.reseal_secrets_impl(reseal, audit))
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

    fn create_passcode(
        &self,
        passcode: NewPasscode,
        audit: AuditEntry,
    ) -> DbFuture<'_, PasscodeRecord> {
        Box::pin(self.create_passcode_impl(passcode, audit))
    }

    fn passcodes_of(&self, channel_id: i64) -> DbFuture<'_, Vec<PasscodeRecord>> {
        Box::pin(self.passcodes_of_impl(channel_id))
    }

    fn revoke_passcode(
        &self,
        channel_id: i64,
        passcode_id: i64,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'_, Vec<AffectedNode>> {
        Box::pin(self.revoke_passcode_impl(channel_id, passcode_id, now, audit))
    }

    fn enter_passcode<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelRecord,
        hash: &'a str,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, LinkedPasscode> {
        Box::pin(self.enter_passcode_impl(node, channel, hash, now, audit))
    }

    fn unlink_passcode<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelRecord,
        passcode_id: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()> {
        Box::pin(self.unlink_passcode_impl(node, channel, passcode_id, audit))
    }

    fn linked_passcodes<'a>(
        &'a self,
        node: &'a NodeRecord,
        now: i64,
    ) -> DbFuture<'a, Vec<LinkedPasscode>> {
        Box::pin(self.linked_passcodes_impl(node, now))
    }

    fn bump_counters<'a>(
        &'a self,
        scope_kind: &'a str,
        scope: &'a str,
        counters: &'a [(&'a str, i64)],
    ) -> DbFuture<'a, ()> {
        Box::pin(self.bump_counters_impl(scope_kind, scope, counters))
    }

    fn counters_of<'a>(
        &'a self,
        scope_kind: &'a str,
        scope: &'a str,
    ) -> DbFuture<'a, Vec<(String, i64)>> {
        Box::pin(self.counters_of_impl(scope_kind, scope))
    }

    fn audit_of(
        &self,
        channel_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> DbFuture<'_, Vec<AuditRecord>> {
        Box::pin(self.audit_of_impl(channel_id, before_id, limit))
    }

    fn all_channels(&self, include_deleted: bool) -> DbFuture<'_, Vec<ChannelRecord>> {
        Box::pin(self.all_channels_impl(include_deleted))
    }

    fn users(&self) -> DbFuture<'_, Vec<UserSummary>> {
        Box::pin(self.users_impl())
    }

    fn restore_channel(&self, channel_id: i64, audit: AuditEntry) -> DbFuture<'_, ()> {
        Box::pin(self.restore_channel_impl(channel_id, audit))
    }

    fn nonce_seen<'a>(
        &'a self,
        signer: &'a NodeId,
        nonce: &'a Nonce,
        now: i64,
    ) -> DbFuture<'a, bool> {
        Box::pin(self.nonce_seen_impl(signer, nonce, now))
    }
}

//! The hub database as a trait, [`HubDb`], with one implementation per backend.
//!
//! Only this module writes SQL. Handlers speak in domain operations ("register this node",
//! "grant these roles") and each mutating operation writes its audit entry in the same
//! transaction. Uniqueness comes from constraints: a violated one surfaces as
//! [`DbError::Conflict`], never from a check-then-insert. Effective roles are computed in
//! the one query that reads them and are never stored (SPEC §5.2).
//!
//! Two backends share one implementation, [`SqlDb`], generic over the sqlx driver (see
//! `sql` for why generics rather than sqlx's `Any` driver): [`SqliteDb`] (the default, one
//! file) and [`PostgresDb`] (for replicas sharing a database). Each has its own
//! append-only migrations directory for the same logical schema (SPEC §8.1), and
//! [`open`] picks one from the URL scheme.

mod passcode_records;
mod postgres;
mod records;
mod sql;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::vault::{Sealed, VaultError};

use kachery_protocol::user_api::SecretKind;
use kachery_protocol::{ChannelName, Email, Label, NodeId, Nonce, RoleSet};

pub use passcode_records::{
    AffectedNode, AuditRecord, LinkedPasscode, NewPasscode, PasscodeRecord, UserSummary,
};
pub use postgres::PostgresDb;
pub use records::{
    AuditEntry, AuthFlow, ChannelRecord, FlowKind, GrantRecord, MemberRecord, MembershipRecord,
    NewApiToken, NewChannel, NewGrant, NewNode, NewSecret, NewSession, NodeRecord, ResealCounts,
    SealedSecret, SecretRecord, SessionRecord, TokenRecord, TokenSummary,
};
pub use sql::SqlDb;
pub use sqlite::SqliteDb;

/// Which backend a `database_url` selects, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` (the default, a file in the data directory).
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

impl Backend {
    /// The backend `url` names; `None` for any other scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// Opens and migrates the database at `url` with this backend.
    pub async fn open(self, url: &str) -> Result<Arc<dyn HubDb>, DbError> {
        Ok(match self {
            Self::Sqlite => Arc::new(SqliteDb::open(url).await?),
            Self::Postgres => Arc::new(PostgresDb::open(url).await?),
        })
    }
}

/// A boxed future, so the trait stays object safe (`Arc<dyn HubDb>`).
pub type DbFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbError>> + Send + 'a>>;

/// Encrypts a new channel's secrets once its row id is known: the id is part of each
/// ciphertext's associated data, so sealing has to wait for the insert.
pub type SealSecrets<'s> =
    dyn Fn(i64) -> Result<Vec<(SecretKind, Sealed)>, VaultError> + Send + Sync + 's;

/// Re-encrypts one stored secret under a new master key; `None` leaves the row as it is
/// (it is already under the new key).
pub type ResealSecret<'s> =
    dyn Fn(&SealedSecret) -> Result<Option<Sealed>, VaultError> + Send + Sync + 's;

/// Which uniqueness rule a write ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    Node,
    Channel,
    Membership,
    Nonce,
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("a {0:?} with this identity already exists")]
    Conflict(ConflictKind),
    #[error("the row to change does not exist")]
    NotFound,
    /// A passcode that does not exist, belongs to another channel, or is revoked,
    /// expired or used up; deliberately one case (SPEC §5.3).
    #[error("the passcode cannot be used")]
    InvalidPasscode,
    #[error("stored value in {column} is invalid")]
    CorruptRow {
        column: &'static str,
        detail: String,
    },
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    #[error("failed to open the database at {url}")]
    Open { url: String, source: sqlx::Error },
    #[error("failed to run database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Encrypting or re-encrypting a secret inside a write failed; nothing was written.
    #[error("failed to encrypt a channel secret")]
    Seal(#[source] Box<VaultError>),
}

/// Everything the hub stores. Times are Unix milliseconds passed in by the caller.
pub trait HubDb: Send + Sync + 'static {
    /// Cheap liveness probe for `/readyz`.
    fn ping(&self) -> DbFuture<'_, ()>;
    /// Closes the connections, waiting for queries in flight.
    fn close(&self) -> DbFuture<'_, ()>;

    // Users and API tokens.

    /// Creates the user on first sight and stamps `last_login_at`; returns its id.
    fn touch_user<'a>(&'a self, email: &'a Email, now: i64) -> DbFuture<'a, i64>;
    /// Stores a new API token (by hash) and audits its creation.
    fn insert_api_token(&self, token: NewApiToken, audit: AuditEntry) -> DbFuture<'_, ()>;
    /// Looks a token up by hash and stamps `last_used_at` (at most once a minute).
    fn api_token<'a>(&'a self, token_hash: &'a str, now: i64) -> DbFuture<'a, Option<TokenRecord>>;

    /// The user's API tokens, newest first (revoked and expired ones included).
    fn api_tokens_of<'a>(&'a self, email: &'a Email) -> DbFuture<'a, Vec<TokenSummary>>;
    /// Revokes one of the user's tokens; `DbError::NotFound` if it is not theirs or
    /// already revoked.
    fn revoke_api_token<'a>(
        &'a self,
        token_id: i64,
        email: &'a Email,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;

    // Sign-in: sessions, pending flows, OIDC identities (SPEC §9).

    fn insert_session(&self, session: NewSession) -> DbFuture<'_, ()>;
    /// The session with this id hash, expired or not (the caller decides).
    fn session<'a>(&'a self, id_hash: &'a str) -> DbFuture<'a, Option<SessionRecord>>;
    /// Stamps `last_seen_at` and moves the idle expiry.
    fn touch_session<'a>(&'a self, id_hash: &'a str, now: i64, expires_at: i64)
    -> DbFuture<'a, ()>;
    /// Deletes the session; false if there was none.
    fn delete_session<'a>(&'a self, id_hash: &'a str) -> DbFuture<'a, bool>;
    fn insert_auth_flow(&self, flow: AuthFlow) -> DbFuture<'_, ()>;
    /// The unexpired flow of `kind` under `state`, left in place.
    fn auth_flow<'a>(
        &'a self,
        state: &'a str,
        kind: FlowKind,
        now: i64,
    ) -> DbFuture<'a, Option<AuthFlow>>;
    /// Deletes and returns the unexpired flow of `kind` under `state`: a flow is
    /// redeemed at most once, even by concurrent requests.
    fn take_auth_flow<'a>(
        &'a self,
        state: &'a str,
        kind: FlowKind,
        now: i64,
    ) -> DbFuture<'a, Option<AuthFlow>>;
    /// Marks the pending device flow with `user_code` as approved by `user_id` (signed
    /// in via `approved_via`, stored as the flow's provider); false if no such pending,
    /// unexpired flow exists.
    fn approve_device_flow<'a>(
        &'a self,
        user_code: &'a str,
        user_id: i64,
        approved_via: Option<&'a str>,
        now: i64,
    ) -> DbFuture<'a, bool>;
    /// The e-mail of the user with this id.
    fn user_email(&self, user_id: i64) -> DbFuture<'_, Option<Email>>;
    /// Records a verified OIDC sign-in: creates or stamps the user of `email` and links
    /// (issuer, subject) to it; returns the user id.
    fn sign_in_identity<'a>(
        &'a self,
        issuer: &'a str,
        subject: &'a str,
        email: &'a Email,
        now: i64,
    ) -> DbFuture<'a, i64>;

    // Nonces.

    /// Records (signer, nonce) until `expires_at`; false if it is already remembered.
    fn record_nonce<'a>(
        &'a self,
        signer: &'a NodeId,
        nonce: &'a Nonce,
        purpose: &'a str,
        now: i64,
        expires_at: i64,
    ) -> DbFuture<'a, bool>;
    /// How many nonces of `signer` for `purpose` expire after `expires_after`: with a fixed
    /// nonce memory, the requests it made since `expires_after - memory`, on every replica.
    fn count_recent_nonces<'a>(
        &'a self,
        signer: &'a NodeId,
        purpose: &'a str,
        expires_after: i64,
    ) -> DbFuture<'a, i64>;
    /// Deletes nonces, sessions and sign-in flows past their expiry, and credential audit
    /// rows older than `credential_audit_before`.
    fn purge_expired(&self, now: i64, credential_audit_before: i64) -> DbFuture<'_, u64>;

    // Nodes.

    /// Inserts the node record, consuming the registration nonce, in one transaction.
    /// A soft-deleted record with the same identity is revived.
    fn register_node<'a>(&'a self, node: NewNode, audit: AuditEntry) -> DbFuture<'a, NodeRecord>;
    /// The live (not deleted) record of (node id, owner).
    fn node<'a>(
        &'a self,
        node_id: &'a NodeId,
        owner: &'a Email,
    ) -> DbFuture<'a, Option<NodeRecord>>;
    /// All live records of one owner, by label.
    fn nodes_of<'a>(&'a self, owner: &'a Email) -> DbFuture<'a, Vec<NodeRecord>>;
    fn rename_node<'a>(
        &'a self,
        node: &'a NodeRecord,
        label: &'a Label,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;
    /// Soft-deletes the record and drops its memberships; returns the channels it was in.
    fn delete_node<'a>(
        &'a self,
        node: &'a NodeRecord,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, Vec<ChannelName>>;
    /// Stores the node's latest report (re-serialized by the hub, never the raw body).
    fn store_report<'a>(
        &'a self,
        node: &'a NodeRecord,
        report_json: &'a str,
        now: i64,
    ) -> DbFuture<'a, ()>;

    // Channels.

    /// Inserts the channel and the secrets `seal` encrypts for its new id, with a
    /// `secret.set` audit entry per secret, in one transaction.
    fn create_channel<'a>(
        &'a self,
        channel: NewChannel,
        seal: &'a SealSecrets<'a>,
        audit: AuditEntry,
    ) -> DbFuture<'a, ChannelRecord>;
    /// The channel by name, soft-deleted ones included.
    fn channel<'a>(&'a self, name: &'a ChannelName) -> DbFuture<'a, Option<ChannelRecord>>;
    /// Channels owned by `owner`, plus (if `include_joined`) those its nodes joined.
    fn channels_for<'a>(
        &'a self,
        owner: &'a Email,
        include_joined: bool,
    ) -> DbFuture<'a, Vec<ChannelRecord>>;
    /// Whether any live node of `owner` is a member of the channel.
    fn has_member_node_of<'a>(&'a self, channel_id: i64, owner: &'a Email) -> DbFuture<'a, bool>;
    fn soft_delete_channel<'a>(
        &'a self,
        channel_id: i64,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;

    // Memberships, grants and effective roles.

    /// Inserts the membership and links `passcode_hashes` to it, in one transaction.
    fn join_channel<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelRecord,
        requested: RoleSet,
        passcode_hashes: &'a [String],
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;
    fn update_membership<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelName,
        requested: RoleSet,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;
    fn leave_channel<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelName,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;
    /// Every membership of a live node with requested, granted and effective roles.
    fn memberships_of<'a>(&'a self, node: &'a NodeRecord) -> DbFuture<'a, Vec<MembershipRecord>>;
    /// E(node, channel) in one query; `None` without a membership.
    fn membership<'a>(
        &'a self,
        node_id: &'a NodeId,
        owner: &'a Email,
        channel: &'a ChannelName,
    ) -> DbFuture<'a, Option<MembershipRecord>>;
    /// Inserts or replaces a grant.
    fn put_grant(&self, grant: NewGrant, audit: AuditEntry) -> DbFuture<'_, GrantRecord>;
    /// Removes a grant; `DbError::NotFound` if there was none.
    fn delete_grant<'a>(
        &'a self,
        channel_id: i64,
        node_id: &'a NodeId,
        owner: &'a Email,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;
    fn grants_of(&self, channel_id: i64) -> DbFuture<'_, Vec<GrantRecord>>;
    fn members_of(&self, channel_id: i64) -> DbFuture<'_, Vec<MemberRecord>>;

    // Channel secrets (SPEC §8.2): only ever ciphertext here.

    /// Sets or replaces one secret of a live channel. The audit entry becomes `secret.set`
    /// or, if a value was replaced, `secret.rotate`, with the old and new fingerprints.
    /// `DbError::NotFound` if the channel is gone or deleted.
    fn put_secret(&self, secret: NewSecret, audit: AuditEntry) -> DbFuture<'_, SecretRecord>;
    /// What views show about a channel's secrets, by kind.
    fn secrets_of(&self, channel_id: i64) -> DbFuture<'_, Vec<SecretRecord>>;
    /// One secret's ciphertext, for decryption.
    fn sealed_secret(
        &self,
        channel_id: i64,
        kind: SecretKind,
    ) -> DbFuture<'_, Option<SealedSecret>>;
    /// Re-encrypts every stored secret with `reseal`, all in one transaction, with one
    /// `secret.rekey` audit entry (built from `audit`) per changed row. Any failure
    /// leaves every row as it was.
    fn reseal_secrets<'a>(
        &'a self,
        reseal: &'a ResealSecret<'a>,
        audit: AuditEntry,
    ) -> DbFuture<'a, ResealCounts>;

    // Audit.

    /// Appends an entry that goes with no other write (credential issuance, say).
    fn append_audit(&self, audit: AuditEntry) -> DbFuture<'_, ()>;
    /// Node ids (with owners) issued upload URLs for `key` since `since`.
    fn uploaders_of<'a>(
        &'a self,
        channel_id: i64,
        key: &'a str,
        since: i64,
    ) -> DbFuture<'a, Vec<String>>;

    // Passcodes (SPEC §5.3).

    /// Stores a minted passcode (by hash) for a live channel and audits it.
    fn create_passcode(
        &self,
        passcode: NewPasscode,
        audit: AuditEntry,
    ) -> DbFuture<'_, PasscodeRecord>;
    /// Every passcode of a channel, newest first, revoked ones included.
    fn passcodes_of(&self, channel_id: i64) -> DbFuture<'_, Vec<PasscodeRecord>>;
    /// Revokes a passcode of the channel; returns the node records that had it entered.
    /// `DbError::NotFound` if there is no such unrevoked passcode.
    fn revoke_passcode(
        &self,
        channel_id: i64,
        passcode_id: i64,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'_, Vec<AffectedNode>>;
    /// Links the passcode with hash `hash` to the node's membership of `channel` and
    /// counts the use. `DbError::NotFound` without a membership,
    /// `DbError::InvalidPasscode` when the passcode cannot be used.
    fn enter_passcode<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelRecord,
        hash: &'a str,
        now: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, LinkedPasscode>;
    /// Removes a passcode from the node's membership of `channel`.
    fn unlink_passcode<'a>(
        &'a self,
        node: &'a NodeRecord,
        channel: &'a ChannelRecord,
        passcode_id: i64,
        audit: AuditEntry,
    ) -> DbFuture<'a, ()>;
    /// The passcodes linked to any membership of the node, with validity at `now`.
    fn linked_passcodes<'a>(
        &'a self,
        node: &'a NodeRecord,
        now: i64,
    ) -> DbFuture<'a, Vec<LinkedPasscode>>;

    // Stats, audit views and admin lists.

    /// Adds each delta to its counter of (scope kind, scope), creating counters on first use.
    fn bump_counters<'a>(
        &'a self,
        scope_kind: &'a str,
        scope: &'a str,
        counters: &'a [(&'a str, i64)],
    ) -> DbFuture<'a, ()>;
    fn counters_of<'a>(
        &'a self,
        scope_kind: &'a str,
        scope: &'a str,
    ) -> DbFuture<'a, Vec<(String, i64)>>;
    /// Up to `limit` audit entries of a channel older than entry `before_id`, newest first.
    fn audit_of(
        &self,
        channel_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> DbFuture<'_, Vec<AuditRecord>>;
    /// Every channel by name; soft-deleted ones only when asked.
    fn all_channels(&self, include_deleted: bool) -> DbFuture<'_, Vec<ChannelRecord>>;
    /// Every user with counts of live nodes and channels.
    fn users(&self) -> DbFuture<'_, Vec<UserSummary>>;

    /// Undoes a soft delete (owner's choice, SPEC §5.5); `DbError::NotFound` unless the
    /// channel is deleted.
    fn restore_channel(&self, channel_id: i64, audit: AuditEntry) -> DbFuture<'_, ()>;
    /// Whether (signer, nonce) is remembered and not yet expired at `now`.
    fn nonce_seen<'a>(
        &'a self,
        signer: &'a NodeId,
        nonce: &'a Nonce,
        now: i64,
    ) -> DbFuture<'a, bool>;
}

//! Plain records passed in and out of [`super::HubDb`]: validated types, no SQL.

use kachery_protocol::node_api::ReadMode;
use kachery_protocol::user_api::SecretKind;
use kachery_protocol::{ChannelName, Email, Label, NodeId, Nonce, RoleSet};

use crate::vault::Sealed;

/// An API token as found by its hash.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub email: Email,
    pub expires_at: i64,
    pub revoked: bool,
    pub dev_login: bool,
}

/// A token to store; only its hash is kept.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user_id: i64,
    pub token_hash: String,
    pub label: String,
    pub dev_login: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A channel owner's grant to the node record (node id, owner).
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub channel_id: i64,
    pub node_id: NodeId,
    pub owner: Email,
    pub roles: RoleSet,
    pub updated_by: Email,
    pub now: i64,
}

/// A node record: one (node id, owner) pair.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub row_id: i64,
    pub node_id: NodeId,
    pub owner: Email,
    pub label: Label,
    pub created_at: i64,
    pub last_report_at: Option<i64>,
    /// The hub's own serialization of the last typed report.
    pub last_report: Option<String>,
}

/// What a verified registration inserts.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub node_id: NodeId,
    pub owner: Email,
    pub label: Label,
    pub nonce: Nonce,
    pub nonce_expires_at: i64,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct ChannelRecord {
    pub id: i64,
    pub name: ChannelName,
    pub owner: Email,
    pub bucket_backend: String,
    /// The hub-validated bucket settings as JSON (`{}` for the embedded bucket).
    pub bucket_config: String,
    pub read_mode: ReadMode,
    pub pubsub_backend: String,
    /// Backend settings as hub-validated JSON (`{}` for embedded); never secrets.
    pub pubsub_config: String,
    pub created_at: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: ChannelName,
    pub owner: Email,
    pub bucket_backend: String,
    /// Hub-validated bucket settings as JSON; never a client object verbatim.
    pub bucket_config: String,
    pub read_mode: ReadMode,
    pub pubsub_backend: String,
    pub pubsub_config: String,
    pub now: i64,
}

/// One membership with its role sets side by side. `effective` is computed by the query
/// that produced this record and is empty when the channel or the node is deleted.
#[derive(Debug, Clone)]
pub struct MembershipRecord {
    pub channel: ChannelRecord,
    pub requested: RoleSet,
    pub granted: RoleSet,
    pub passcode: RoleSet,
    pub effective: RoleSet,
}

/// A member node as the channel owner sees it.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub node_id: NodeId,
    pub owner: Email,
    pub label: Label,
    pub last_report_at: Option<i64>,
    pub requested: RoleSet,
    pub granted: RoleSet,
    pub effective: RoleSet,
}

#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub node_id: NodeId,
    pub owner: Email,
    pub granted: RoleSet,
    pub updated_at: i64,
}

/// A secret to store: already encrypted for its row.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub channel_id: i64,
    pub kind: SecretKind,
    pub sealed: Sealed,
    pub updated_by: Email,
    pub now: i64,
}

/// What may be shown about a stored secret: never the value (SPEC §10.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub kind: SecretKind,
    pub fingerprint: String,
    pub hint: String,
    pub updated_at: i64,
    pub updated_by: Email,
}

/// A stored secret's ciphertext and the row it is bound to.
#[derive(Clone)]
pub struct SealedSecret {
    pub channel_id: i64,
    pub kind: SecretKind,
    pub ciphertext: Vec<u8>,
    pub xnonce: [u8; 24],
    pub key_id: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("channel_id", &self.channel_id)
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// How many secrets a master-key rotation re-encrypted, and how many were already done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealCounts {
    pub n_resealed: u64,
    pub n_unchanged: u64,
}

/// One audit-log entry. `channel_id` ties it to a channel's audit view.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    /// `user`, `node`, or `operator` (for offline commands such as `kachery hub rotate-key`).
    pub actor_kind: &'static str,
    /// The user's e-mail, or `<node id>/<owner>` for a node.
    pub actor: String,
    /// Dotted action name, e.g. `node.register`, `credential.upload`.
    pub action: &'static str,
    pub channel_id: Option<i64>,
    pub target: Option<String>,
    /// Hub-built JSON; never a client object stored verbatim.
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    /// Whether the actor signed in through dev login.
    pub dev_login: bool,
}

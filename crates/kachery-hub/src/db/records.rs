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

/// A browser session to store; the cookie value itself is never stored, only its hash.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: String,
    pub user_id: i64,
    /// The session's CSRF token (random, sent in pages, compared on state changes).
    pub csrf_secret: String,
    pub dev_login: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored browser session with its user's e-mail.
#[derive(Clone)]
pub struct SessionRecord {
    pub user_id: i64,
    pub email: Email,
    pub csrf_secret: String,
    pub dev_login: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("email", &self.email)
            .field("dev_login", &self.dev_login)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a pending sign-in flow is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// A browser on its way to an OpenID Connect provider and back.
    Oidc,
    /// A CLI waiting on a loopback port for an approved code.
    Cli,
    /// A CLI polling with a device code while its user types the user code.
    Device,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Cli => "cli",
            Self::Device => "device",
        }
    }
}

/// One pending sign-in flow (table `auth_flows`); which fields are set depends on `kind`.
#[derive(Clone)]
pub struct AuthFlow {
    /// The key: the OIDC `state`, or the SHA-256 of a CLI or device code.
    pub state: String,
    pub kind: FlowKind,
    /// OIDC provider name from the hub config.
    pub provider: Option<String>,
    /// OIDC: the PKCE verifier the hub sends with the code.
    pub pkce_verifier: Option<String>,
    /// CLI: the S256 challenge the CLI's verifier must match.
    pub code_challenge: Option<String>,
    pub oidc_nonce: Option<String>,
    /// Device: the short code the user types at `/device`.
    pub user_code: Option<String>,
    /// OIDC: where to go after sign-in (relative, checked before storing).
    pub return_to: Option<String>,
    /// CLI and device: who approved.
    pub user_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for AuthFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFlow")
            .field("kind", &self.kind)
            .field("provider", &self.provider)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An API token as its owner sees it in a list: never the token or its hash.
#[derive(Debug, Clone)]
pub struct TokenSummary {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub dev_login: bool,
}

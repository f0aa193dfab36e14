//! Records of passcodes, the audit view, stats and the admin lists: validated types, no SQL.

use kachery_protocol::{Email, NodeId, RoleSet};

/// A passcode to store; the code itself never reaches the database, only its hash.
#[derive(Debug, Clone)]
pub struct NewPasscode {
    pub channel_id: i64,
    pub hash: String,
    pub hint: String,
    pub label: Option<String>,
    pub roles: RoleSet,
    pub expires_at: Option<i64>,
    pub max_uses: Option<i64>,
    pub created_by: Email,
    pub now: i64,
}

/// A stored passcode as its channel's owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasscodeRecord {
    pub id: i64,
    pub channel_id: i64,
    pub hint: String,
    pub label: Option<String>,
    pub roles: RoleSet,
    pub expires_at: Option<i64>,
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub created_by: Email,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl PasscodeRecord {
    /// `active`, `expired`, `used_up` or `revoked` at `now`; revocation wins, then expiry.
    pub fn state(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else if self.max_uses.is_some_and(|max| self.use_count >= max) {
            "used_up"
        } else {
            "active"
        }
    }
}

/// A passcode linked to one of a node's memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedPasscode {
    pub channel_id: i64,
    pub passcode_id: i64,
    pub hint: String,
    pub roles: RoleSet,
    /// Unrevoked and unexpired, so its roles count in E.
    pub valid: bool,
}

/// A node record (node id, owner) affected by a change, so the broker can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedNode {
    pub node_id: NodeId,
    pub owner: Email,
}

/// One audit-log row as the channel's audit view shows it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    /// Hub-built JSON text.
    pub details: String,
    pub dev_login: bool,
}

/// One user with what they own, for the admin list.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub email: Email,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    pub n_nodes: i64,
    pub n_channels: i64,
}

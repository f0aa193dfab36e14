//! User-API bodies beyond nodes, channels and grants (SPEC §10.2): passcodes, the channel
//! test, stats, the audit log and the admin lists. Kept apart from [`crate::user_api`] so
//! each file stays about one subject; the same rules apply (camelCase, times in Unix ms).

use serde::{Deserialize, Serialize};

use crate::ids::{ChannelName, Email};
use crate::roles::RoleSet;

/// `POST /api/v1/channels/{name}/passcodes`: mints one passcode (owner only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePasscodeRequest {
    /// Up to 16 of `[a-z0-9-]`; the hub picks one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Up to 80 characters, for the owner's own bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub roles: RoleSet,
    /// Unix ms; absent means the passcode never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// How many memberships may enter it; absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<i64>,
}

/// A passcode as its channel's owner sees it: the hint, never the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasscodeView {
    pub id: i64,
    /// `<prefix>-…<last 4>`.
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub roles: RoleSet,
    pub expires_at: Option<i64>,
    pub max_uses: Option<i64>,
    pub use_count: i64,
    pub created_at: i64,
    pub created_by: Email,
    pub revoked_at: Option<i64>,
    /// `active`, `expired`, `used_up` or `revoked`, as of the response.
    pub state: String,
}

/// The answer to minting: the code itself, shown this once, and its view.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedPasscode {
    pub passcode: String,
    #[serde(flatten)]
    pub view: PasscodeView,
}

impl std::fmt::Debug for CreatedPasscode {
    /// The code is a credential: only its view is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedPasscode")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/nodes/{nodeId}/memberships/{channel}/passcodes`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnterPasscodeRequest {
    pub passcode: String,
}

impl std::fmt::Debug for EnterPasscodeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterPasscodeRequest(<redacted>)")
    }
}

/// A passcode linked to a membership, as the node's owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedPasscodeView {
    pub id: i64,
    pub hint: String,
    pub roles: RoleSet,
    /// False once the passcode is revoked or expired: its roles no longer count.
    pub valid: bool,
}

/// One step of the channel test (SPEC §10.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestStep {
    pub name: String,
    pub ok: bool,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Something that works but is weaker than it should be (`size not enforced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The steps of one half of the channel test; `ok` when every step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub ok: bool,
    pub steps: Vec<TestStep>,
}

/// `POST /api/v1/channels/{name}/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelTestResponse {
    pub bucket: TestReport,
    pub pubsub: TestReport,
}

/// One counter of `GET /api/v1/channels/{name}/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatCounter {
    pub counter: String,
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStats {
    pub channel: ChannelName,
    pub n_members: i64,
    pub n_grants: i64,
    pub n_active_passcodes: i64,
    /// Node-API use of the channel, counted after each request authenticated.
    pub counters: Vec<StatCounter>,
}

/// One entry of `GET /api/v1/channels/{name}/audit`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub details: serde_json::Value,
    pub dev_login: bool,
}

/// One row of `GET /api/v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    pub email: Email,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    pub n_nodes: i64,
    pub n_channels: i64,
}

//! Bodies and responses of the user API under `/api/v1` (SPEC §10), used by the web UI's
//! scripts, the CLI and `kachery demo`.

use serde::{Deserialize, Serialize};

use crate::envelope::SignedEnvelope;
use crate::ids::{ChannelName, Email, Label, NodeId, Nonce};
use crate::node_api::ReadMode;
use crate::roles::RoleSet;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub email: Email,
    pub admin: bool,
    pub dev_login: bool,
}

/// What `kachery node register` signs with purpose `register-node` (SPEC §3.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename = "registerNode", rename_all = "camelCase")]
pub struct RegistrationBody {
    pub node_id: NodeId,
    pub owner: Email,
    pub label: Label,
    pub hub: String,
    pub timestamp: i64,
    pub nonce: Nonce,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterNodeRequest {
    pub registration: SignedEnvelope,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub node_id: NodeId,
    pub owner: Email,
    pub label: Label,
    pub created_at: i64,
    pub last_report_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<serde_json::Value>,
    pub memberships: Vec<MembershipView>,
}

/// `PATCH /api/v1/nodes/{nodeId}`: renames the caller's node record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateNodeRequest {
    pub label: Label,
}

/// A membership as its node's owner sees it: each role set side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipView {
    pub channel: ChannelName,
    pub channel_deleted: bool,
    pub requested_roles: RoleSet,
    pub granted_roles: RoleSet,
    pub passcode_roles: RoleSet,
    pub effective_roles: RoleSet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinChannelRequest {
    pub channel: ChannelName,
    pub requested_roles: RoleSet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMembershipRequest {
    pub requested_roles: RoleSet,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSettings {
    /// `embedded` for now; `s3` and `gcs` come with their backends.
    pub backend: String,
    #[serde(default)]
    pub read_mode: ReadMode,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PubsubSettings {
    /// `embedded` for now.
    pub backend: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChannelRequest {
    pub name: ChannelName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubsub: Option<PubsubSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub name: ChannelName,
    pub owner: Email,
    pub deleted: bool,
    /// Backend kinds and read mode; absent for users who only see the name (SPEC §10.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubsub: Option<PubsubSettings>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantRequest {
    pub roles: RoleSet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationView {
    pub node_id: NodeId,
    pub owner: Email,
    pub granted_roles: RoleSet,
    pub updated_at: i64,
}

/// A member node as the channel owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub node_id: NodeId,
    pub owner: Email,
    pub label: Label,
    pub last_report_at: Option<i64>,
    pub requested_roles: RoleSet,
    pub granted_roles: RoleSet,
    pub effective_roles: RoleSet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/dev/token` on a dev-login hub: an API token for any e-mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevTokenRequest {
    pub email: Email,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenResponse {
    pub token: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for ApiTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenResponse")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_body_carries_its_type() {
        let body = RegistrationBody {
            node_id: NodeId::parse(&"a".repeat(64)).unwrap(),
            owner: Email::parse("a@b.org").unwrap(),
            label: Label::parse("n1").unwrap(),
            hub: "http://127.0.0.1:1".into(),
            timestamp: 5,
            nonce: Nonce::from_bytes([9; 16]),
        };
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["type"], "registerNode");
        let back: RegistrationBody = serde_json::from_value(value).unwrap();
        assert_eq!(back.timestamp, 5);
        let wrong = serde_json::json!({"type": "other", "nodeId": "a".repeat(64)});
        assert!(serde_json::from_value::<RegistrationBody>(wrong).is_err());
    }
}

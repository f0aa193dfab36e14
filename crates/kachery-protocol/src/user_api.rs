//! Bodies and responses of the user API under `/api/v1` (SPEC §10), used by the web UI's
//! scripts, the CLI and `kachery demo`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::SignedEnvelope;
use crate::hub_views::LinkedPasscodeView;
use crate::ids::{ChannelName, Email, Label, NodeId, Nonce};
use crate::node_api::ReadMode;
use crate::roles::{Role, RoleSet};

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
    /// Passcodes entered on this membership (SPEC §5.3).
    #[serde(default)]
    pub passcodes: Vec<LinkedPasscodeView>,
    /// Each role outside E with the reason it is missing, in role order.
    #[serde(default)]
    pub missing_roles: Vec<MissingRoleView>,
}

/// A role a membership lacks, and why: not requested, not granted, or the channel deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingRoleView {
    pub role: Role,
    pub reason: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinChannelRequest {
    pub channel: ChannelName,
    pub requested_roles: RoleSet,
    /// Passcodes to enter on the new membership, in the same step (SPEC §5.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passcodes: Vec<String>,
}

impl std::fmt::Debug for JoinChannelRequest {
    /// Passcodes are credentials: only their number is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinChannelRequest")
            .field("channel", &self.channel)
            .field("requested_roles", &self.requested_roles)
            .field("n_passcodes", &self.passcodes.len())
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMembershipRequest {
    pub requested_roles: RoleSet,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSettings {
    /// `embedded` (default), `s3` or `gcs`.
    pub backend: String,
    /// Non-secret settings of an `s3` or `gcs` bucket (endpoint, bucket, prefix, …);
    /// checked by the hub at creation. Shown to the channel owner and admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub read_mode: ReadMode,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PubsubSettings {
    /// `embedded` (default), `nats` or `ably`.
    pub backend: String,
    /// NATS servers and account; required for `nats` (the account seed is the channel
    /// secret `natsAccountSeed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSettings>,
}

/// Where a NATS channel's server is and which account its users belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatsSettings {
    /// `nats://host:port` or `tls://host:port` URLs, at least one.
    pub servers: Vec<String>,
    /// The account's public nkey (`A…`); the secret seed may be the account's own or one
    /// of its signing keys.
    pub account: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChannelRequest {
    pub name: ChannelName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubsub: Option<PubsubSettings>,
    /// Backend credentials, stored encrypted with the channel in one step (SPEC §8.2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<SecretKind, SecretValue>,
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
    /// Masked secrets; only the channel owner and admins get this (SPEC §10.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<SecretView>>,
}

/// The kinds of backend credential a channel owner can hand the hub (SPEC §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum SecretKind {
    /// The secret half of an S3 access key pair.
    S3SecretAccessKey,
    /// A Google Cloud service-account key file (JSON text).
    GcsServiceAccount,
    /// A NATS account seed (`SA...`) the hub signs user credentials with.
    NatsAccountSeed,
    /// An Ably API key (`appId.keyId:secret`) the hub mints tokens with.
    AblyApiKey,
}

impl SecretKind {
    /// Every kind, in a stable order.
    pub const ALL: [SecretKind; 4] = [
        SecretKind::S3SecretAccessKey,
        SecretKind::GcsServiceAccount,
        SecretKind::NatsAccountSeed,
        SecretKind::AblyApiKey,
    ];

    /// The wire name, as in paths and JSON (`s3SecretAccessKey`).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::S3SecretAccessKey => "s3SecretAccessKey",
            SecretKind::GcsServiceAccount => "gcsServiceAccount",
            SecretKind::NatsAccountSeed => "natsAccountSeed",
            SecretKind::AblyApiKey => "ablyApiKey",
        }
    }
}

impl std::fmt::Display for SecretKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret kind name that is not one of [`SecretKind::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown secret kind {0:?}; expected one of s3SecretAccessKey, gcsServiceAccount, \
     natsAccountSeed, ablyApiKey"
)]
pub struct UnknownSecretKind(pub String);

impl std::str::FromStr for SecretKind {
    type Err = UnknownSecretKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SecretKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownSecretKind(text.to_owned()))
    }
}

/// A secret value on its way to the hub. Serialized as a plain string; `Debug` never
/// shows it, so requests holding one can be logged or printed safely.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; callers must keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Moves the value out (the hub moves it straight into a zeroizing type).
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// `PUT /api/v1/channels/{name}/secrets/{kind}`: sets or replaces one secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutSecretRequest {
    pub value: SecretValue,
}

/// A stored secret as its channel's owner sees it: never the value (SPEC §10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub kind: SecretKind,
    /// First 8 hex digits of the SHA-256 of the value.
    pub fingerprint: String,
    /// `…` and the value's last 4 characters.
    pub hint: String,
    pub updated_at: i64,
    pub updated_by: Email,
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
    fn secret_kinds_parse_from_their_wire_names_and_values_stay_out_of_debug() {
        for kind in SecretKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
            assert_eq!(kind.as_str().parse::<SecretKind>().unwrap(), kind);
        }
        assert!("s3secretaccesskey".parse::<SecretKind>().is_err());

        let request: CreateChannelRequest = serde_json::from_value(serde_json::json!({
            "name": "lab.one",
            "secrets": {"ablyApiKey": "app.key:do-not-print-me"},
        }))
        .unwrap();
        let value = &request.secrets[&SecretKind::AblyApiKey];
        assert_eq!(value.expose(), "app.key:do-not-print-me");
        assert!(!format!("{request:?}").contains("do-not-print-me"));
        let without: CreateChannelRequest =
            serde_json::from_value(serde_json::json!({"name": "lab.one"})).unwrap();
        assert!(without.secrets.is_empty());
    }

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

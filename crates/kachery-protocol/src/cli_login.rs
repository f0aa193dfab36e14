//! Wire types of CLI sign-in and API-token management (SPEC §9.3, §10.2): the loopback
//! and device flows of `kachery login`, and `GET/DELETE /api/v1/tokens`.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/cli/token`: redeems an approved loopback code with its PKCE verifier,
/// or polls a device code. Answered with [`crate::user_api::ApiTokenResponse`], or
/// `authorization_pending` while a device code waits for approval.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CliTokenRequest {
    Loopback(LoopbackTokenRequest),
    Device(DeviceTokenRequest),
}

impl std::fmt::Debug for CliTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Loopback(_) => "Loopback",
            Self::Device(_) => "Device",
        };
        f.debug_struct("CliTokenRequest")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

/// The code the hub sent to the CLI's loopback port, and the verifier whose S256 hash
/// the CLI put in `/cli/authorize?code_challenge=`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoopbackTokenRequest {
    pub code: String,
    pub code_verifier: String,
}

/// The device code from [`DeviceCodeResponse`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceTokenRequest {
    pub device_code: String,
}

/// `POST /api/v1/cli/device`: a new device code. The CLI shows `user_code` and
/// `verification_url`, then polls every `interval` seconds until `expires_in` runs out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_url: String,
    /// Seconds between polls (at least 5).
    pub interval: u64,
    /// Seconds until the codes expire.
    pub expires_in: u64,
}

impl std::fmt::Debug for DeviceCodeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCodeResponse")
            .field("user_code", &self.user_code)
            .field("verification_url", &self.verification_url)
            .finish_non_exhaustive()
    }
}

/// One API token in `GET /api/v1/tokens`: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub dev_login: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_token_requests_are_told_apart_by_their_fields() {
        let loopback: CliTokenRequest =
            serde_json::from_str(r#"{"code":"c","codeVerifier":"v"}"#).unwrap();
        assert!(matches!(loopback, CliTokenRequest::Loopback(_)));
        let device: CliTokenRequest = serde_json::from_str(r#"{"deviceCode":"d"}"#).unwrap();
        assert!(matches!(device, CliTokenRequest::Device(_)));
        assert!(serde_json::from_str::<CliTokenRequest>(r#"{"code":"c"}"#).is_err());
        let both = r#"{"code":"c","codeVerifier":"v","deviceCode":"d"}"#;
        assert!(serde_json::from_str::<CliTokenRequest>(both).is_err());
    }
}

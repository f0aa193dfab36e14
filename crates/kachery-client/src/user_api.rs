//! [`HubUserClient`]: the hub's user API under `<hub>/api/v1` (SPEC §10), as used by the
//! CLI, `kachery demo` and the end-to-end tests.
//!
//! Requests carry `Authorization: Bearer <API token>` (SPEC §9.3) when the client has a
//! token; `dev_token` is the one call that needs none. Each method maps one endpoint and
//! returns the wire type from [`kachery_protocol::user_api`].

use kachery_protocol::cli_login::{CliTokenRequest, DeviceCodeResponse, TokenView};
use kachery_protocol::hub_views::{
    AdminUserView, AuditView, ChannelStats, ChannelTestResponse, CreatePasscodeRequest,
    CreatedPasscode, EnterPasscodeRequest, LinkedPasscodeView, PasscodeView,
};
use kachery_protocol::user_api::{
    ApiTokenResponse, AuthorizationView, ChannelView, CreateChannelRequest, DevTokenRequest,
    GrantRequest, JoinChannelRequest, ListResponse, MeResponse, MemberView, MembershipView,
    NodeView, RegisterNodeRequest, UpdateMembershipRequest,
};
use kachery_protocol::{ChannelName, Email, NodeId, RoleSet, SignedEnvelope};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ApiError;
use crate::http::{self, Peer};

/// A person's client for one hub, optionally holding their API token.
#[derive(Clone)]
pub struct HubUserClient {
    http: reqwest::Client,
    hub_url: Url,
    token: Option<String>,
}

impl std::fmt::Debug for HubUserClient {
    /// The API token is never printed, only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubUserClient")
            .field("hub_url", &http::display_url(&self.hub_url))
            .field("has_token", &self.token.is_some())
            .finish()
    }
}

impl HubUserClient {
    pub fn new(hub_url: Url, token: Option<String>) -> Self {
        Self {
            http: http::build_http_client(Peer::Hub),
            hub_url,
            token,
        }
    }

    pub fn hub_url(&self) -> &Url {
        &self.hub_url
    }

    /// Replaces the API token, e.g. after `dev_token`; the connection pool is kept.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// Mints an API token for `email` on a hub started with `--dev-login` (no auth).
    pub async fn dev_token(&self, email: &Email) -> Result<ApiTokenResponse, ApiError> {
        let body = DevTokenRequest {
            email: email.clone(),
        };
        let url = self.url(&["dev", "token"]);
        let request = self.http.post(url.clone()).json(&body);
        let response = http::send(request, &url).await?;
        http::read_json(response, &url).await
    }

    /// Redeems an approved loopback code, or polls a device code, for an API token
    /// (`kachery login`, SPEC §9.3). A device code not approved yet is the error
    /// `authorization_pending`.
    pub async fn cli_token(&self, request: &CliTokenRequest) -> Result<ApiTokenResponse, ApiError> {
        let url = self.url(&["cli", "token"]);
        let response = http::send(self.http.post(url.clone()).json(request), &url).await?;
        http::read_json(response, &url).await
    }

    /// Starts a device login: a device code to poll with and a user code to show.
    pub async fn start_device_login(&self) -> Result<DeviceCodeResponse, ApiError> {
        let url = self.url(&["cli", "device"]);
        let response = http::send(self.http.post(url.clone()), &url).await?;
        http::read_json(response, &url).await
    }

    /// The signed-in user's API tokens (never the tokens themselves).
    pub async fn api_tokens(&self) -> Result<ListResponse<TokenView>, ApiError> {
        self.json(Method::GET, &["tokens"], None::<&()>).await
    }

    /// Revokes one of the signed-in user's API tokens.
    pub async fn revoke_api_token(&self, token_id: i64) -> Result<(), ApiError> {
        let token_id = token_id.to_string();
        self.no_content(Method::DELETE, &["tokens", &token_id], None::<&()>)
            .await
    }

    /// The signed-in user: e-mail, admin flag and whether the hub runs dev login.
    pub async fn me(&self) -> Result<MeResponse, ApiError> {
        self.json(Method::GET, &["me"], None::<&()>).await
    }

    /// Creates the node record a signed registration envelope asks for (SPEC §3.3).
    pub async fn register_node(&self, registration: SignedEnvelope) -> Result<NodeView, ApiError> {
        let body = RegisterNodeRequest { registration };
        self.json(Method::POST, &["nodes"], Some(&body)).await
    }

    /// The caller's own node records.
    pub async fn nodes(&self) -> Result<ListResponse<NodeView>, ApiError> {
        // FIXME: returns the first page only (50 items); matters past 50 nodes per user.
        self.json(Method::GET, &["nodes"], None::<&()>).await
    }

    pub async fn node(&self, node_id: &NodeId) -> Result<NodeView, ApiError> {
        self.json(Method::GET, &["nodes", &node_id.to_string()], None::<&()>)
            .await
    }

    /// Deletes the caller's record of `node_id` and its memberships.
    pub async fn delete_node(&self, node_id: &NodeId) -> Result<(), ApiError> {
        self.no_content(
            Method::DELETE,
            &["nodes", &node_id.to_string()],
            None::<&()>,
        )
        .await
    }

    /// Asks for `node_id` to join `channel` with `requested_roles`.
    pub async fn join(
        &self,
        node_id: &NodeId,
        channel: &ChannelName,
        requested_roles: RoleSet,
    ) -> Result<MembershipView, ApiError> {
        self.join_with_passcodes(node_id, channel, requested_roles, Vec::new())
            .await
    }

    /// [`Self::join`] entering `passcodes` on the new membership in the same step; a
    /// passcode that cannot be used leaves no membership behind.
    pub async fn join_with_passcodes(
        &self,
        node_id: &NodeId,
        channel: &ChannelName,
        requested_roles: RoleSet,
        passcodes: Vec<String>,
    ) -> Result<MembershipView, ApiError> {
        let body = JoinChannelRequest {
            channel: channel.clone(),
            requested_roles,
            passcodes,
        };
        let path = ["nodes", &node_id.to_string(), "memberships"];
        self.json(Method::POST, &path, Some(&body)).await
    }

    /// Enters a passcode on `node_id`'s membership of `channel` (SPEC §5.3).
    pub async fn enter_passcode(
        &self,
        node_id: &NodeId,
        channel: &ChannelName,
        passcode: &str,
    ) -> Result<LinkedPasscodeView, ApiError> {
        let body = EnterPasscodeRequest {
            passcode: passcode.to_owned(),
        };
        let node_id = node_id.to_string();
        let path = [
            "nodes",
            &node_id,
            "memberships",
            channel.as_str(),
            "passcodes",
        ];
        self.json(Method::POST, &path, Some(&body)).await
    }

    /// Removes passcode `passcode_id` from `node_id`'s membership of `channel`.
    pub async fn unlink_passcode(
        &self,
        node_id: &NodeId,
        channel: &ChannelName,
        passcode_id: i64,
    ) -> Result<(), ApiError> {
        let node_id = node_id.to_string();
        let id = passcode_id.to_string();
        let path = [
            "nodes",
            &node_id,
            "memberships",
            channel.as_str(),
            "passcodes",
            &id,
        ];
        self.no_content(Method::DELETE, &path, None::<&()>).await
    }

    /// Mints a passcode for `channel` (owner); the code is in the answer, this once.
    pub async fn create_passcode(
        &self,
        channel: &ChannelName,
        request: &CreatePasscodeRequest,
    ) -> Result<CreatedPasscode, ApiError> {
        let path = ["channels", channel.as_str(), "passcodes"];
        self.json(Method::POST, &path, Some(request)).await
    }

    /// The passcodes of `channel`: hints, uses, expiry, state.
    pub async fn passcodes(
        &self,
        channel: &ChannelName,
    ) -> Result<ListResponse<PasscodeView>, ApiError> {
        let path = ["channels", channel.as_str(), "passcodes"];
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// Revokes passcode `passcode_id` of `channel` (owner).
    pub async fn revoke_passcode(
        &self,
        channel: &ChannelName,
        passcode_id: i64,
    ) -> Result<(), ApiError> {
        let id = passcode_id.to_string();
        let path = ["channels", channel.as_str(), "passcodes", &id];
        self.no_content(Method::DELETE, &path, None::<&()>).await
    }

    /// Runs the channel test (owner, admin): per-step results for bucket and pub-sub.
    pub async fn test_channel(
        &self,
        channel: &ChannelName,
    ) -> Result<ChannelTestResponse, ApiError> {
        let path = ["channels", channel.as_str(), "test"];
        self.json(Method::POST, &path, None::<&()>).await
    }

    /// Member, grant and passcode counts plus node-API counters of `channel`.
    pub async fn channel_stats(&self, channel: &ChannelName) -> Result<ChannelStats, ApiError> {
        let path = ["channels", channel.as_str(), "stats"];
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// One page of `channel`'s audit log, newest first; pass the previous page's
    /// `next_cursor` for the next one.
    pub async fn channel_audit(
        &self,
        channel: &ChannelName,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<ListResponse<AuditView>, ApiError> {
        let mut url = self.url(&["channels", channel.as_str(), "audit"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        self.get_url(url).await
    }

    /// Every channel on the hub (admin); deleted ones too when `include_deleted`.
    pub async fn admin_channels(
        &self,
        include_deleted: bool,
    ) -> Result<ListResponse<ChannelView>, ApiError> {
        let mut url = self.url(&["admin", "channels"]);
        if include_deleted {
            url.query_pairs_mut().append_pair("deleted", "true");
        }
        self.get_url(url).await
    }

    /// Every user with counts of nodes and channels (admin).
    pub async fn admin_users(&self) -> Result<ListResponse<AdminUserView>, ApiError> {
        self.json(Method::GET, &["admin", "users"], None::<&()>)
            .await
    }

    /// Changes the roles `node_id` requests in `channel`.
    pub async fn update_membership(
        &self,
        node_id: &NodeId,
        channel: &ChannelName,
        requested_roles: RoleSet,
    ) -> Result<MembershipView, ApiError> {
        let body = UpdateMembershipRequest { requested_roles };
        let path = [
            "nodes",
            &node_id.to_string(),
            "memberships",
            channel.as_str(),
        ];
        self.json(Method::PATCH, &path, Some(&body)).await
    }

    /// Takes `node_id` out of `channel`.
    pub async fn leave(&self, node_id: &NodeId, channel: &ChannelName) -> Result<(), ApiError> {
        let path = [
            "nodes",
            &node_id.to_string(),
            "memberships",
            channel.as_str(),
        ];
        self.no_content(Method::DELETE, &path, None::<&()>).await
    }

    pub async fn create_channel(
        &self,
        request: &CreateChannelRequest,
    ) -> Result<ChannelView, ApiError> {
        self.json(Method::POST, &["channels"], Some(request)).await
    }

    /// Channels the caller owns.
    pub async fn channels(&self) -> Result<ListResponse<ChannelView>, ApiError> {
        // FIXME: returns the first page only (50 items); matters past 50 channels per user.
        self.json(Method::GET, &["channels"], None::<&()>).await
    }

    pub async fn channel(&self, name: &ChannelName) -> Result<ChannelView, ApiError> {
        self.json(Method::GET, &["channels", name.as_str()], None::<&()>)
            .await
    }

    /// Soft-deletes `name` (owner or admin).
    pub async fn delete_channel(&self, name: &ChannelName) -> Result<(), ApiError> {
        self.no_content(Method::DELETE, &["channels", name.as_str()], None::<&()>)
            .await
    }

    /// Sets the roles `channel`'s owner grants to the node record (`node_id`, `owner`).
    pub async fn grant(
        &self,
        channel: &ChannelName,
        node_id: &NodeId,
        owner: &Email,
        roles: RoleSet,
    ) -> Result<AuthorizationView, ApiError> {
        let node_id = node_id.to_string();
        let path = [
            "channels",
            channel.as_str(),
            "authorizations",
            &node_id,
            owner.as_str(),
        ];
        self.json(Method::PUT, &path, Some(&GrantRequest { roles }))
            .await
    }

    /// Removes the grant for the node record (`node_id`, `owner`) in `channel`.
    pub async fn revoke(
        &self,
        channel: &ChannelName,
        node_id: &NodeId,
        owner: &Email,
    ) -> Result<(), ApiError> {
        let node_id = node_id.to_string();
        let path = [
            "channels",
            channel.as_str(),
            "authorizations",
            &node_id,
            owner.as_str(),
        ];
        self.no_content(Method::DELETE, &path, None::<&()>).await
    }

    /// Member nodes of `channel` with their requested, granted and effective roles.
    pub async fn members(
        &self,
        channel: &ChannelName,
    ) -> Result<ListResponse<MemberView>, ApiError> {
        self.json(
            Method::GET,
            &["channels", channel.as_str(), "members"],
            None::<&()>,
        )
        .await
    }

    /// Grants recorded in `channel`, including those for nodes that have not joined.
    pub async fn authorizations(
        &self,
        channel: &ChannelName,
    ) -> Result<ListResponse<AuthorizationView>, ApiError> {
        let path = ["channels", channel.as_str(), "authorizations"];
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `<hub>/api/v1/<segments…>`.
    fn url(&self, segments: &[&str]) -> Url {
        let mut full_path = vec!["api", "v1"];
        full_path.extend_from_slice(segments);
        http::endpoint(&self.hub_url, &full_path)
    }

    /// An authenticated GET of a full URL (one with a query string).
    async fn get_url<R: DeserializeOwned>(&self, url: Url) -> Result<R, ApiError> {
        let mut request = self.http.get(url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = http::send(request, &url).await?;
        http::read_json(response, &url).await
    }

    /// Sends an authenticated request and returns the successful response.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<(reqwest::Response, Url), ApiError> {
        let url = self.url(segments);
        let mut request = self.http.request(method, url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = http::send(request, &url).await?;
        Ok((response, url))
    }

    async fn json<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<R, ApiError> {
        let (response, url) = self.send(method, segments, body).await?;
        http::read_json(response, &url).await
    }

    /// For endpoints whose success body carries nothing the caller needs.
    async fn no_content<B: Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<(), ApiError> {
        let (response, _url) = self.send(method, segments, body).await?;
        // Reading the (usually empty) body lets the connection go back to the pool.
        let _ = response.bytes().await;
        Ok(())
    }
}

//! Sign-in through OpenID Connect (SPEC §9.1): the authorization-code flow with PKCE
//! (S256), `state` and `nonce`, and a validated ID token (JWKS signature, issuer,
//! audience, expiry) whose `email_verified` must be true.
//!
//! `GET /login/oidc/{name}` discovers the provider, stores a single-use flow (PKCE
//! verifier, nonce, `return_to`) under the SHA-256 of a random `state`, pins that state in
//! a short-lived cookie, and redirects to the provider. The provider sends the browser
//! back to `GET /login/oidc/{name}/callback?code&state`, the only redirect URI, built from
//! `public_url`. There the state must match the cookie (so nobody can finish their own
//! sign-in in someone else's browser) and an unredeemed flow; the flow is deleted before
//! the code is exchanged, so a replayed callback finds nothing.
//!
//! Discovery runs on each sign-in rather than once at start: a provider that is down
//! at start does not stop the hub, and rotated signing keys are always current. It costs
//! two small requests per sign-in. The HTTP client follows no redirects, so a provider
//! cannot bounce the hub's requests elsewhere.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use kachery_protocol::Email;
use kachery_protocol::api_error::ErrorCode;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde::Deserialize;

use super::login::{audit_sign_in, end_previous_session, safe_return_to};
use super::session::{self, sha256_hex};
use crate::app::AppState;
use crate::config::OidcProviderConfig;
use crate::db::{AuthFlow, FlowKind};
use crate::error::{ApiError, ApiResult, error_chain};
use crate::extract::RequestId;
use crate::time::now_ms;

/// Google's issuer, used for `issuer = "google"`.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// A sign-in must come back from the provider within 10 minutes.
const FLOW_TTL_MS: i64 = 10 * 60 * 1000;
/// The cookie pinning a pending sign-in's state to the browser that started it.
const STATE_COOKIE: &str = "kachery_oidc_state";

/// A client for one provider after discovery.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The issuer URL a provider config names.
pub fn issuer_url(provider: &OidcProviderConfig) -> &str {
    if provider.issuer == "google" {
        GOOGLE_ISSUER
    } else {
        &provider.issuer
    }
}

/// The button label of a provider.
pub fn label(provider: &OidcProviderConfig) -> &str {
    match (&provider.label, provider.issuer.as_str()) {
        (Some(label), _) => label,
        (None, "google") => "Google",
        (None, _) => &provider.name,
    }
}

/// The redirect URI to register with the provider.
pub fn redirect_uri(hub_origin: &str, provider: &OidcProviderConfig) -> String {
    format!("{hub_origin}/login/oidc/{}/callback", provider.name)
}

fn find_provider<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a OidcProviderConfig> {
    state
        .config
        .oidc
        .iter()
        .find(|provider| provider.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no sign-in provider named {name:?}")))
}

fn http_client() -> ApiResult<openidconnect::reqwest::Client> {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|error| ApiError::internal("failed to build the OIDC http client", &error))
}

/// Discovers `provider` and builds its client with this hub's redirect URI.
async fn discover(
    state: &AppState,
    provider: &OidcProviderConfig,
    http: &openidconnect::reqwest::Client,
) -> ApiResult<DiscoveredClient> {
    let issuer = IssuerUrl::new(issuer_url(provider).to_owned())
        .map_err(|error| ApiError::internal("invalid OIDC issuer URL", &error))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|error| {
            tracing::warn!(
                provider = %provider.name,
                error = %error_chain(&error),
                "OIDC discovery failed"
            );
            ApiError::new(
                ErrorCode::Internal,
                format!(
                    "the sign-in provider {} cannot be reached; try again later",
                    provider.name
                ),
            )
        })?;
    let redirect = RedirectUrl::new(redirect_uri(&state.origin, provider))
        .map_err(|error| ApiError::internal("invalid OIDC redirect URI", &error))?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        provider.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(redirect);
    Ok(client)
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

/// `GET /login/oidc/{name}`: off to the provider.
pub async fn start(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
) -> ApiResult<Response> {
    let provider = find_provider(&state, &name)?;
    let http = http_client()?;
    let client = discover(&state, provider, &http).await?;

    let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(pkce_challenge)
        .url();

    let now = now_ms();
    let flow = AuthFlow {
        state: sha256_hex(csrf_state.secret()),
        kind: FlowKind::Oidc,
        provider: Some(provider.name.clone()),
        pkce_verifier: Some(pkce_verifier.secret().clone()),
        code_challenge: None,
        oidc_nonce: Some(nonce.secret().clone()),
        user_code: None,
        return_to: Some(safe_return_to(query.return_to.as_deref())),
        user_id: None,
        created_at: now,
        expires_at: now + FLOW_TTL_MS,
    };
    state.db.insert_auth_flow(flow).await?;
    tracing::debug!(provider = %provider.name, "oidc sign-in started");

    let mut response = Redirect::to(authorize_url.as_str()).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        state_cookie(&state, csrf_state.secret(), FLOW_TTL_MS / 1000),
    );
    Ok(response)
}

fn state_cookie(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    session::cookie(state, STATE_COOKIE, value, "/login/oidc", max_age_secs)
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/oidc/{name}/callback`: checks everything, then starts a session.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let provider = find_provider(&state, &name)?;
    if let Some(error) = &query.error {
        tracing::debug!(provider = %name, error = %error, "provider refused the sign-in");
        return Err(refused(&format!(
            "the sign-in provider did not sign you in ({error}); start again from /login"
        )));
    }
    let (Some(code), Some(returned_state)) = (&query.code, &query.state) else {
        return Err(ApiError::bad_request(
            "the provider's answer has no code or state; start again from /login",
        ));
    };

    // The browser must be the one that started this sign-in, and the flow unredeemed.
    let pinned = session::cookie_value(&headers, STATE_COOKIE);
    if pinned != Some(returned_state.as_str()) {
        return Err(ApiError::new(
            ErrorCode::CsrfFailed,
            "this sign-in was not started in this browser; start again from /login",
        ));
    }
    let flow = state
        .db
        .take_auth_flow(&sha256_hex(returned_state), FlowKind::Oidc, now_ms())
        .await?
        .filter(|flow| flow.provider.as_deref() == Some(name.as_str()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "this sign-in is unknown, expired or already used; start again from /login",
            )
        })?;

    let email = verified_email(&state, provider, flow.clone(), code).await?;
    if !state.config.is_allowed_domain(&email.address) {
        tracing::debug!(email = %email.address, "sign-in refused: domain not allowed");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "{} may not sign in to this hub: only addresses in {} are allowed",
                email.address,
                state.config.allowed_domains.join(", ")
            ),
        ));
    }

    let now = now_ms();
    let user_id = state
        .db
        .sign_in_identity(&email.issuer, &email.subject, &email.address, now)
        .await?;
    end_previous_session(&state, &headers).await?;
    let session_cookie = session::start(&state, user_id, false).await?;
    audit_sign_in(
        &state,
        &email.address,
        false,
        &format!("oidc:{name}"),
        request_id,
    )
    .await?;
    tracing::info!(provider = %name, email = %email.address, "signed in");

    let return_to = safe_return_to(flow.return_to.as_deref());
    let mut response = Redirect::to(&return_to).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session_cookie);
    headers.append(header::SET_COOKIE, state_cookie(&state, "", 0));
    Ok(response)
}

/// Who the provider says signed in.
struct VerifiedEmail {
    address: Email,
    issuer: String,
    subject: String,
}

/// Exchanges the code (with the flow's PKCE verifier), validates the ID token against
/// the flow's nonce and requires a verified e-mail.
async fn verified_email(
    state: &AppState,
    provider: &OidcProviderConfig,
    flow: AuthFlow,
    code: &str,
) -> ApiResult<VerifiedEmail> {
    let http = http_client()?;
    let client = discover(state, provider, &http).await?;
    let (Some(verifier), Some(nonce)) = (flow.pkce_verifier, flow.oidc_nonce) else {
        return Err(ApiError::internal(
            "stored OIDC flow lacks its verifier or nonce",
            &std::fmt::Error,
        ));
    };

    let exchange = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|error| ApiError::internal("the provider has no token endpoint", &error))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier));
    let tokens = exchange.request_async(&http).await.map_err(|error| {
        tracing::debug!(error = %error_chain(&error), "code exchange refused");
        refused("the sign-in provider refused the authorization code; start again from /login")
    })?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| refused("the sign-in provider sent no ID token"))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce))
        .map_err(|error| {
            tracing::debug!(error = %error_chain(&error), "ID token rejected");
            refused("the sign-in provider's ID token is not valid for this hub")
        })?;

    if claims.email_verified() != Some(true) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "your e-mail address is not verified at the sign-in provider; verify it there \
             and sign in again",
        ));
    }
    let address = claims
        .email()
        .ok_or_else(|| refused("the sign-in provider did not share your e-mail address"))?;
    let address = Email::parse(address.as_str()).map_err(|error| {
        refused(&format!(
            "the provider's e-mail address is unusable: {error}"
        ))
    })?;
    Ok(VerifiedEmail {
        address,
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
    })
}

fn refused(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

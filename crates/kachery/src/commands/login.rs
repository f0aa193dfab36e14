//! `kachery login`: get an API token from a hub and save it for the hub URL (SPEC §9.3).
//!
//! Three ways, by flag:
//! - default, the loopback flow: listen on `127.0.0.1:<random>`, open
//!   `<hub>/cli/authorize?port&state&code_challenge` in a browser, wait for the hub's
//!   redirect to `/callback?code&state`, and redeem the code with the PKCE verifier;
//! - `--device`, for machines without a browser: show a short code to type at
//!   `<hub>/device` anywhere, and poll until it is approved;
//! - `--dev-email`, on a dev-login hub only: a token for any e-mail, no questions.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::response::Html;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kachery_client::{ApiError, HubUserClient};
use kachery_protocol::Email;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::cli_login::{CliTokenRequest, DeviceTokenRequest, LoopbackTokenRequest};
use kachery_protocol::user_api::ApiTokenResponse;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::cli::LoginArgs;
use crate::commands::credentials;
use crate::exit::{Failure, FailureKind};

/// How long the loopback flow waits for the browser, and the device flow polls at most.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The device flow never polls faster than this, whatever the hub says.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(5);

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let hub_url = crate::commands::access::parse_hub_url(&args.hub)?;
    let mut client = HubUserClient::new(hub_url.clone(), None);

    let token = match (&args.dev_email, args.device) {
        (Some(_), true) => {
            return Err(Failure::usage("--dev-email and --device cannot be combined").into());
        }
        (Some(dev_email), false) => {
            let email = Email::parse(dev_email).map_err(|err| Failure::usage(err.to_string()))?;
            client.dev_token(&email).await.context("dev login failed")?
        }
        (None, true) => device_flow(&client).await?,
        (None, false) => loopback_flow(&client, args.no_browser).await?,
    };

    client.set_token(Some(token.token.clone()));
    let me = client
        .me()
        .await
        .context("the new token does not work for the user API")?;
    let path = credentials::save_token(hub_url.as_str(), &token.token, token.expires_at)?;
    eprintln!(
        "signed in to {hub_url} as {}; token saved in {}",
        me.email,
        path.display()
    );
    Ok(())
}

/// What the hub's redirect brings to the loopback listener.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn loopback_flow(
    client: &HubUserClient,
    no_browser: bool,
) -> anyhow::Result<ApiTokenResponse> {
    let verifier = random_base64url()?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_base64url()?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("failed to listen on a loopback port for the browser's answer")?;
    let port = listener.local_addr()?.port();
    let (callback_tx, mut callback_rx) = mpsc::channel::<CallbackQuery>(1);
    let app = axum::Router::new()
        .route("/callback", axum::routing::get(receive_callback))
        .with_state(callback_tx);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut authorize_url = client.hub_url().join("cli/authorize")?;
    authorize_url
        .query_pairs_mut()
        .append_pair("port", &port.to_string())
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge);
    eprintln!("to sign in, open this address in a browser and approve:\n  {authorize_url}");
    if !no_browser {
        open_browser(authorize_url.as_str());
    }

    // Answers with another state (a stale tab, another login) are ignored.
    let answer = tokio::time::timeout(LOGIN_TIMEOUT, async {
        while let Some(answer) = callback_rx.recv().await {
            if answer.state.as_deref() == Some(state.as_str()) {
                return Some(answer);
            }
        }
        None
    })
    .await;
    server.abort();
    let answer = match answer {
        Ok(Some(answer)) => answer,
        Ok(None) => anyhow::bail!("the loopback listener stopped before the browser answered"),
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Unavailable,
                "no answer from the browser within 10 minutes; run `kachery login` again",
            )
            .into());
        }
    };
    if let Some(error) = answer.error {
        return Err(Failure::new(
            FailureKind::Denied,
            format!("sign-in was not approved in the browser ({error})"),
        )
        .into());
    }
    let code = answer
        .code
        .context("the hub's answer carried neither a code nor an error")?;

    let request = CliTokenRequest::Loopback(LoopbackTokenRequest {
        code,
        code_verifier: verifier,
    });
    Ok(client
        .cli_token(&request)
        .await
        .context("the hub refused the approved code")?)
}

async fn receive_callback(
    State(callback_tx): State<mpsc::Sender<CallbackQuery>>,
    Query(query): Query<CallbackQuery>,
) -> Html<&'static str> {
    let approved = query.code.is_some();
    let _ = callback_tx.send(query).await;
    Html(if approved {
        "<!doctype html><title>kachery</title><p>Signed in. You can close this tab and \
         return to the terminal.</p>"
    } else {
        "<!doctype html><title>kachery</title><p>Sign-in was not approved. You can close \
         this tab.</p>"
    })
}

async fn device_flow(client: &HubUserClient) -> anyhow::Result<ApiTokenResponse> {
    let device = client
        .start_device_login()
        .await
        .context("the hub did not start a device login")?;
    eprintln!(
        "to sign in, open {} on any device and enter the code:\n  {}",
        device.verification_url, device.user_code
    );

    let interval = Duration::from_secs(device.interval).max(MIN_POLL_INTERVAL);
    let limit = Duration::from_secs(device.expires_in).min(LOGIN_TIMEOUT);
    let started = tokio::time::Instant::now();
    let request = CliTokenRequest::Device(DeviceTokenRequest {
        device_code: device.device_code.clone(),
    });
    loop {
        tokio::time::sleep(interval).await;
        match client.cli_token(&request).await {
            Ok(token) => return Ok(token),
            Err(error) if is_pending(&error) && started.elapsed() < limit => continue,
            Err(error) if is_pending(&error) => {
                return Err(Failure::new(
                    FailureKind::Unavailable,
                    "the code was not entered in time; run `kachery login --device` again",
                )
                .into());
            }
            Err(error) => return Err(error).context("the hub refused the device login"),
        }
    }
}

fn is_pending(error: &ApiError) -> bool {
    error.code() == Some(ErrorCode::AuthorizationPending)
}

/// 32 random bytes, base64url: the PKCE verifier (43 characters) and the state.
fn random_base64url() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).context("no randomness for the login")?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Best effort: `$BROWSER`, else the desktop's opener. The address is printed anyway.
fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER")
        .ok()
        .filter(|value| !value.is_empty());
    let program = opener.as_deref().unwrap_or(if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    });
    let spawned = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(error) = spawned {
        tracing::debug!(program, %error, "could not open a browser");
    }
}

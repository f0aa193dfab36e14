//! `kachery login`: get an API token and save it for the hub URL.
//!
//! This phase supports dev-login hubs only; the browser and device flows of SPEC §9.3 come
//! with OpenID Connect.

use anyhow::Context;
use kachery_client::HubUserClient;
use kachery_protocol::Email;

use crate::cli::LoginArgs;
use crate::commands::credentials;
use crate::exit::Failure;

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let hub_url = url::Url::parse(&args.hub)
        .map_err(|err| Failure::usage(format!("invalid hub URL {:?}: {err}", args.hub)))?;
    let email = Email::parse(&args.dev_email).map_err(|err| Failure::usage(err.to_string()))?;

    let client = HubUserClient::new(hub_url.clone(), None);
    let token = client.dev_token(&email).await.context("dev login failed")?;
    let path = credentials::save_token(hub_url.as_str(), &token.token, token.expires_at)?;
    eprintln!(
        "signed in to {hub_url} as {email}; token saved in {}",
        path.display()
    );
    Ok(())
}

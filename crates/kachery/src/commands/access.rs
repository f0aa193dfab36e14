//! How commands reach the hub as a person (URL and API token) and the local node daemon
//! (port and client token from the node directory).

use anyhow::Context;
use kachery_client::{HubUserClient, LocalClient};
use kachery_node::paths::NodePaths;
use url::Url;

use crate::cli::HubAccessArgs;
use crate::commands::credentials;
use crate::exit::Failure;

/// The hub URL from the flag or environment, else the node's configured hub, else the
/// one hub `kachery login` saved a token for.
pub fn hub_url(args: &HubAccessArgs) -> anyhow::Result<Url> {
    let text = match &args.hub_url {
        Some(text) => text.clone(),
        None => {
            let paths = NodePaths::from_env();
            let config = kachery_node::config::NodeConfig::load(&paths, Default::default())
                .context("failed to read the node configuration")?;
            match config.hub_url {
                Some(url) => url.to_string(),
                None => only_saved_hub()?,
            }
        }
    };
    Ok(parse_hub_url(&text)?)
}

/// A hub URL as typed: http or https, with a host. A missing scheme is the usual slip
/// (`127.0.0.1:8080`), so the error shows the URL with one.
pub fn parse_hub_url(text: &str) -> Result<Url, Failure> {
    if !text.contains("://") {
        return Err(Failure::usage(format!(
            "invalid hub URL {text:?}: include the scheme, e.g. http://{text}"
        )));
    }
    let url = Url::parse(text)
        .map_err(|err| Failure::usage(format!("invalid hub URL {text:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Failure::usage(format!(
            "invalid hub URL {text:?}: it must be http:// or https:// with a host"
        )));
    }
    Ok(url)
}

/// The hub of the only saved login; with none or several, the user must say which.
fn only_saved_hub() -> anyhow::Result<String> {
    let mut hubs = credentials::saved_hubs()?;
    match hubs.len() {
        1 => Ok(hubs.remove(0)),
        0 => Err(Failure::usage(
            "no hub URL: pass --hub URL (or set KACHERY_HUB_URL), or sign in with \
             `kachery login --hub URL`",
        )
        .into()),
        _ => Err(Failure::usage(format!(
            "signed in to several hubs ({}): pass --hub URL to choose one",
            hubs.join(", ")
        ))
        .into()),
    }
}

/// A user-API client with a token from the flag, the environment or `kachery login`.
pub fn hub_user_client(args: &HubAccessArgs) -> anyhow::Result<HubUserClient> {
    let url = hub_url(args)?;
    let token = match &args.token {
        Some(token) => token.clone(),
        None => credentials::token_for(url.as_str())?.ok_or_else(|| {
            Failure::new(
                crate::exit::FailureKind::Denied,
                format!("no API token for {url}: run `kachery login --hub {url}` or pass --token"),
            )
        })?,
    };
    Ok(HubUserClient::new(url, Some(token)))
}

/// A client for the running daemon of this node directory, or `None` when none runs.
/// A daemon file left behind by a killed daemon is ignored.
pub fn local_daemon() -> anyhow::Result<Option<LocalClient>> {
    let paths = NodePaths::from_env();
    let Some(endpoint) = kachery_node::daemon_file::read(&paths.node_dir)
        .context("failed to read the daemon file")?
    else {
        return Ok(None);
    };
    if !std::path::Path::new(&format!("/proc/{}", endpoint.pid)).exists() {
        return Ok(None);
    }
    let token = kachery_node::read_client_token(&paths.node_dir)
        .context("failed to read the node's client token")?;
    let base = Url::parse(&format!("http://127.0.0.1:{}", endpoint.port))
        .expect("a loopback URL with a port parses");
    Ok(Some(LocalClient::new(base, token)))
}

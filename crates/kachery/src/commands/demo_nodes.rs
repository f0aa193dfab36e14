//! The two node daemons of `kachery demo`, each in its own directory with its own key,
//! store and local API, talking to the hub over loopback like any other node.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kachery_client::LocalClient;
use kachery_node::config::NodeConfig;
use kachery_node::daemon::{NodeDaemon, NodeHandle};
use kachery_node::paths::NodePaths;
use kachery_protocol::{ChannelName, Email, Label, NodeId, SignedEnvelope};

use crate::exit::Failure;

/// How long the demo waits for a channel link to come up before giving up.
const LINK_TIMEOUT: Duration = Duration::from_secs(30);

pub struct DemoNode {
    pub node_id: NodeId,
    pub client: LocalClient,
    handle: NodeHandle,
    signing_key: ed25519_dalek::SigningKey,
    owner: Email,
    label: Label,
}

pub async fn start_node(
    home: &Path,
    hub_url: &url::Url,
    owner: &Email,
    label: &str,
) -> anyhow::Result<DemoNode> {
    let paths = NodePaths::new(home.join("node"), home.join("store"));
    let label = Label::parse(label).expect("demo labels are valid");
    let config = NodeConfig {
        hub_url: Some(hub_url.clone()),
        owner: Some(owner.clone()),
        label: label.clone(),
        port: 0,
        ..NodeConfig::defaults()
    };
    let identity = kachery_node::identity::load_or_create_identity(&paths.node_dir)
        .with_context(|| format!("failed to create the key of {label}"))?;
    let handle = NodeDaemon::start(paths.clone(), config, Default::default())
        .await
        .with_context(|| format!("failed to start node {label}"))?;

    let token = kachery_node::read_client_token(&paths.node_dir)?;
    let base = url::Url::parse(&format!("http://{}", handle.local_api_addr()))
        .expect("a socket address forms a URL");
    Ok(DemoNode {
        node_id: identity.node_id,
        client: LocalClient::new(base, token),
        handle,
        signing_key: identity.signing_key,
        owner: owner.clone(),
        label,
    })
}

impl DemoNode {
    /// The node's signed registration, as `kachery node register` makes it.
    pub fn registration(&self, hub_url: &url::Url) -> anyhow::Result<SignedEnvelope> {
        let envelope = kachery_client::registration_envelope(
            &self.signing_key,
            self.owner.clone(),
            self.label.clone(),
            &kachery_client::origin_of(hub_url),
            kachery_client::now_ms(),
        )?;
        Ok(envelope)
    }

    /// Asks the daemon to reconcile until its link on `channel` is up.
    pub async fn wait_for_link(&self, channel: &ChannelName) -> anyhow::Result<()> {
        let deadline = Instant::now() + LINK_TIMEOUT;
        loop {
            self.client
                .reconcile()
                .await
                .context("the node daemon did not answer")?;
            let status = self
                .client
                .status()
                .await
                .context("the node daemon did not answer")?;
            let link = status.channels.iter().find(|link| &link.channel == channel);
            if link.is_some_and(|link| link.link_state == "up") {
                return Ok(());
            }
            if Instant::now() > deadline {
                let state = link.map_or("absent".to_owned(), |link| link.link_state.clone());
                let error = status.last_error.clone().unwrap_or_default();
                return Err(Failure::unavailable(format!(
                    "node {} has no live link to {channel} after {} s (state {state}) {error}",
                    self.label,
                    LINK_TIMEOUT.as_secs()
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

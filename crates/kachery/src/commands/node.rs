//! `kachery node …`: run the daemon, show its identity and state, register it with a hub.

use anyhow::Context;
use kachery_node::config::{NodeConfig, NodeConfigOverrides};
use kachery_node::paths::NodePaths;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::{ChannelName, Email, Label, RoleSet};

use crate::cli::{NodeCommand, NodeJoinArgs, NodeRegisterArgs, NodeStartArgs, NodeStatusArgs};
use crate::commands::access;
use crate::exit::Failure;

pub async fn run(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Start(args) => start(args).await,
        NodeCommand::Id => {
            let paths = NodePaths::from_env();
            let identity = kachery_node::identity::load_or_create_identity(&paths.node_dir)
                .context("failed to load the node key")?;
            println!("{}", identity.node_id);
            Ok(())
        }
        NodeCommand::Status(args) => status(args).await,
        NodeCommand::Register(args) => register(args).await,
        NodeCommand::Join(args) => join(args).await,
    }
}

fn overrides_from(args: &NodeStartArgs) -> anyhow::Result<NodeConfigOverrides> {
    let hub_url = match &args.hub {
        Some(text) => Some(crate::commands::access::parse_hub_url(text)?),
        None => None,
    };
    let owner = match &args.owner {
        Some(text) => Some(Email::parse(text).map_err(|err| Failure::usage(err.to_string()))?),
        None => None,
    };
    let label = match &args.label {
        Some(text) => Some(Label::parse(text).map_err(|err| Failure::usage(err.to_string()))?),
        None => None,
    };
    Ok(NodeConfigOverrides {
        hub_url,
        owner,
        label,
        port: args.port,
    })
}

async fn start(args: NodeStartArgs) -> anyhow::Result<()> {
    let paths = NodePaths::from_env();
    let overrides = overrides_from(&args)?;
    let config = NodeConfig::load(&paths, overrides.clone()).map_err(config_failure)?;

    let daemon = kachery_node::daemon::NodeDaemon::start(paths.clone(), config, Default::default())
        .await
        .context("failed to start the node daemon")?;
    // Remember the flags only once this process owns the node directory, so a refused
    // start never changes the configuration under a running daemon.
    overrides.persist(&paths.node_dir).map_err(config_failure)?;
    eprintln!(
        "kachery node {} running; local API on {}",
        daemon.node_id(),
        daemon.local_api_addr()
    );

    crate::commands::hub::shutdown_signal().await;
    eprintln!("shutting down");
    daemon.shutdown().await;
    Ok(())
}

/// Invalid settings are usage errors (exit 2); unreadable files are not.
fn config_failure(error: kachery_node::ConfigError) -> anyhow::Error {
    match error {
        kachery_node::ConfigError::Invalid { .. }
        | kachery_node::ConfigError::InsecureHub { .. } => Failure::usage(error.to_string()).into(),
        other => anyhow::Error::new(other).context("failed to load the node configuration"),
    }
}

async fn status(args: NodeStatusArgs) -> anyhow::Result<()> {
    let Some(client) = access::local_daemon()? else {
        return Err(Failure::unavailable(
            "node daemon not running: start it with `kachery node start`",
        )
        .into());
    };
    if args.refresh {
        client
            .reconcile()
            .await
            .context("failed to reconcile with the hub")?;
    }
    let status = client
        .status()
        .await
        .context("failed to read the daemon status")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print!("{}", crate::commands::node_status_view::render(&status));
    Ok(())
}

async fn register(args: NodeRegisterArgs) -> anyhow::Result<()> {
    let paths = NodePaths::from_env();
    let config =
        NodeConfig::load(&paths, NodeConfigOverrides::default()).map_err(config_failure)?;
    let identity = kachery_node::identity::load_or_create_identity(&paths.node_dir)
        .context("failed to load the node key")?;

    let hub_url = access::hub_url(&args.hub)?;
    let owner = config.owner.clone().ok_or_else(|| {
        Failure::usage("this node has no owner: run `kachery node start --owner EMAIL` once")
    })?;
    let label = match &args.label {
        Some(text) => Label::parse(text).map_err(|err| Failure::usage(err.to_string()))?,
        None => config.label.clone(),
    };
    let hub_origin = kachery_client::origin_of(&hub_url);
    let envelope = kachery_client::registration_envelope(
        &identity.signing_key,
        owner.clone(),
        label,
        &hub_origin,
        kachery_client::now_ms(),
    )?;

    if !args.api {
        let link = kachery_client::registration_link(&hub_origin, &envelope);
        if args.json {
            println!(
                "{}",
                serde_json::json!({"nodeId": identity.node_id, "link": link})
            );
        } else {
            eprintln!(
                "open this link while signed in as {owner} to register node {}:",
                identity.node_id.short()
            );
            println!("{link}");
        }
        return Ok(());
    }

    let client = access::hub_user_client(&args.hub)?;
    let node = client
        .register_node(envelope)
        .await
        .context("registration failed")?;
    if args.json {
        println!("{}", serde_json::to_string(&node)?);
    } else {
        println!(
            "registered node {} ({}) for {}",
            node.node_id, node.label, node.owner
        );
    }
    Ok(())
}

async fn join(args: NodeJoinArgs) -> anyhow::Result<()> {
    let paths = NodePaths::from_env();
    let identity = kachery_node::identity::load_or_create_identity(&paths.node_dir)
        .context("failed to load the node key")?;
    let channel =
        ChannelName::parse(&args.channel).map_err(|err| Failure::usage(err.to_string()))?;
    let roles: RoleSet = match &args.roles {
        Some(text) => text
            .parse()
            .map_err(|err: kachery_protocol::IdError| Failure::usage(err.to_string()))?,
        None => RoleSet::REQUEST_ONLY,
    };
    let client = access::hub_user_client(&args.hub)?;
    // Joining again changes the requested roles of the existing membership.
    let joined = client
        .join_with_passcodes(&identity.node_id, &channel, roles, args.passcodes.clone())
        .await;
    let membership = match joined {
        Err(err) if err.code() == Some(ErrorCode::AlreadyMember) => {
            for passcode in &args.passcodes {
                client
                    .enter_passcode(&identity.node_id, &channel, passcode)
                    .await
                    .with_context(|| format!("failed to enter a passcode on {channel}"))?;
            }
            client
                .update_membership(&identity.node_id, &channel, roles)
                .await
                .with_context(|| format!("failed to change the roles requested on {channel}"))?
        }
        other => other.with_context(|| format!("failed to join channel {channel}"))?,
    };
    println!(
        "member of {channel}: requested {}, effective now {}",
        membership.requested_roles, membership.effective_roles
    );
    if let Some(daemon) = access::local_daemon()? {
        // Best effort: the daemon would pick the change up within a minute anyway.
        let _ = daemon.reconcile().await;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    kachery_client::now_ms()
}

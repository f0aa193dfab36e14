//! `kachery channel …`: create channels and manage grants as their owner.

use anyhow::Context;
use std::collections::BTreeMap;

use kachery_protocol::user_api::{NatsSettings, PubsubSettings, SecretKind, SecretValue};
use kachery_protocol::{ChannelName, Email, NodeId, RoleSet};

use crate::cli::ChannelCommand;
use crate::commands::{access, channel_bucket};
use crate::exit::Failure;

pub(super) fn parse<T, E: std::fmt::Display>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|err| Failure::usage(err.to_string()).into())
}

pub async fn run(command: ChannelCommand) -> anyhow::Result<()> {
    match command {
        ChannelCommand::Create {
            name,
            bucket,
            pubsub,
            hub,
        } => {
            let name = parse(ChannelName::parse(&name))?;
            let client = access::hub_user_client(&hub)?;
            let mut request = channel_bucket::create_request(name.clone(), &bucket)?;
            let (pubsub, pubsub_secrets) = pubsub_settings(pubsub)?;
            request.pubsub = pubsub;
            request.secrets.extend(pubsub_secrets);
            client
                .create_channel(&request)
                .await
                .with_context(|| format!("failed to create channel {name}"))?;
            println!("created channel {name}");
        }
        ChannelCommand::Grant {
            channel,
            node_id,
            owner,
            roles,
            hub,
        } => {
            let channel = parse(ChannelName::parse(&channel))?;
            let node_id = parse(NodeId::parse(&node_id))?;
            let owner = parse(Email::parse(&owner))?;
            let roles: RoleSet = parse(roles.parse())?;
            if roles.is_empty() {
                return Err(Failure::usage(
                    "no roles given: name at least one, or use `kachery channel revoke`",
                )
                .into());
            }
            let client = access::hub_user_client(&hub)?;
            let grant = client
                .grant(&channel, &node_id, &owner, roles)
                .await
                .with_context(|| format!("failed to grant roles on {channel}"))?;
            println!(
                "granted {} on {channel} to {} ({owner})",
                grant.granted_roles,
                node_id.short()
            );
        }
        ChannelCommand::Revoke {
            channel,
            node_id,
            owner,
            hub,
        } => {
            let channel = parse(ChannelName::parse(&channel))?;
            let node_id = parse(NodeId::parse(&node_id))?;
            let owner = parse(Email::parse(&owner))?;
            let client = access::hub_user_client(&hub)?;
            client
                .revoke(&channel, &node_id, &owner)
                .await
                .with_context(|| format!("failed to revoke roles on {channel}"))?;
            println!(
                "revoked every role on {channel} of {} ({owner})",
                node_id.short()
            );
        }
        ChannelCommand::Passcode(command) => super::passcode::run(command).await?,
        ChannelCommand::Members { channel, hub } => {
            let channel = parse(ChannelName::parse(&channel))?;
            let client = access::hub_user_client(&hub)?;
            let members = client
                .members(&channel)
                .await
                .with_context(|| format!("failed to list members of {channel}"))?;
            println!(
                "{:<10} {:<28} {:<16} {:<30} {:<30} effective",
                "node", "owner", "label", "requested", "granted"
            );
            for member in members.items {
                println!(
                    "{:<10} {:<28} {:<16} {:<30} {:<30} {}",
                    member.node_id.short(),
                    member.owner.to_string(),
                    member.label.to_string(),
                    member.requested_roles.to_string(),
                    member.granted_roles.to_string(),
                    member.effective_roles
                );
            }
        }
    }
    Ok(())
}

/// The `pubsub` settings and secrets of `channel create`, from its flags.
fn pubsub_settings(
    args: crate::cli::PubsubArgs,
) -> anyhow::Result<(Option<PubsubSettings>, BTreeMap<SecretKind, SecretValue>)> {
    let read_secret = |path: &std::path::Path| -> anyhow::Result<SecretValue> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        Ok(SecretValue::new(text.trim().to_owned()))
    };
    let mut secrets = BTreeMap::new();
    let nats = match args.pubsub.as_str() {
        "nats" => {
            let account = args.nats_account.ok_or_else(|| {
                Failure::usage("--pubsub nats needs --nats-account A… and --nats-server URL")
            })?;
            if let Some(path) = &args.nats_seed_file {
                secrets.insert(SecretKind::NatsAccountSeed, read_secret(path)?);
            }
            Some(NatsSettings {
                servers: args.nats_servers,
                account,
            })
        }
        _ if !args.nats_servers.is_empty() || args.nats_account.is_some() => {
            return Err(
                Failure::usage("--nats-server and --nats-account need --pubsub nats").into(),
            );
        }
        _ => None,
    };
    if let Some(path) = &args.ably_key_file {
        secrets.insert(SecretKind::AblyApiKey, read_secret(path)?);
    }
    let settings = (args.pubsub != "embedded").then(|| PubsubSettings {
        backend: args.pubsub,
        nats,
    });
    Ok((settings, secrets))
}

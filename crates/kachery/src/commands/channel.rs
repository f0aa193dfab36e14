//! `kachery channel …`: create channels and manage grants as their owner.

use anyhow::Context;
use kachery_protocol::user_api::CreateChannelRequest;
use kachery_protocol::{ChannelName, Email, NodeId, RoleSet};

use crate::cli::ChannelCommand;
use crate::commands::access;
use crate::exit::Failure;

pub(super) fn parse<T, E: std::fmt::Display>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|err| Failure::usage(err.to_string()).into())
}

pub async fn run(command: ChannelCommand) -> anyhow::Result<()> {
    match command {
        ChannelCommand::Create { name, hub } => {
            let name = parse(ChannelName::parse(&name))?;
            let client = access::hub_user_client(&hub)?;
            let request = CreateChannelRequest {
                name: name.clone(),
                bucket: None,
                pubsub: None,
                secrets: Default::default(),
            };
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

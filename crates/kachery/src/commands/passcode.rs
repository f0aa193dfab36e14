//! `kachery channel passcode …`: mint, list and revoke passcodes as a channel's owner.

use anyhow::Context;
use kachery_protocol::hub_views::CreatePasscodeRequest;
use kachery_protocol::{ChannelName, RoleSet};

use super::channel::parse;
use crate::cli::PasscodeCommand;
use crate::commands::access;
use crate::exit::Failure;

pub async fn run(command: PasscodeCommand) -> anyhow::Result<()> {
    match command {
        PasscodeCommand::Create {
            channel,
            roles,
            prefix,
            label,
            expires_in,
            max_uses,
            hub,
        } => {
            let channel = parse(ChannelName::parse(&channel))?;
            let roles: RoleSet = parse(roles.parse())?;
            let expires_at = match expires_in.as_deref() {
                Some(text) => Some(kachery_client::now_ms() + duration_ms(text)?),
                None => None,
            };
            let request = CreatePasscodeRequest {
                prefix,
                label,
                roles,
                expires_at,
                max_uses,
            };
            let client = access::hub_user_client(&hub)?;
            let created = client
                .create_passcode(&channel, &request)
                .await
                .with_context(|| format!("failed to mint a passcode for {channel}"))?;
            // The code on stdout alone, so scripts can capture it; the rest on stderr.
            println!("{}", created.passcode);
            eprintln!(
                "passcode {} for {channel} gives {}; it is shown only now",
                created.view.id, created.view.roles
            );
        }
        PasscodeCommand::List { channel, hub } => {
            let channel = parse(ChannelName::parse(&channel))?;
            let client = access::hub_user_client(&hub)?;
            let passcodes = client
                .passcodes(&channel)
                .await
                .with_context(|| format!("failed to list passcodes of {channel}"))?;
            println!(
                "{:<6} {:<16} {:<8} {:<9} {:<30} label",
                "id", "hint", "state", "uses", "roles"
            );
            for passcode in passcodes.items {
                let uses = match passcode.max_uses {
                    Some(max) => format!("{}/{max}", passcode.use_count),
                    None => passcode.use_count.to_string(),
                };
                println!(
                    "{:<6} {:<16} {:<8} {:<9} {:<30} {}",
                    passcode.id,
                    passcode.hint,
                    passcode.state,
                    uses,
                    passcode.roles.to_string(),
                    passcode.label.unwrap_or_default()
                );
            }
        }
        PasscodeCommand::Revoke { channel, id, hub } => {
            let channel = parse(ChannelName::parse(&channel))?;
            let client = access::hub_user_client(&hub)?;
            client
                .revoke_passcode(&channel, id)
                .await
                .with_context(|| format!("failed to revoke passcode {id} of {channel}"))?;
            println!("revoked passcode {id} of {channel}");
        }
    }
    Ok(())
}

/// `30m`, `12h`, `7d` (or `45s`) in milliseconds.
fn duration_ms(text: &str) -> Result<i64, Failure> {
    let invalid = || {
        Failure::usage(format!(
            "invalid duration {text:?}: use e.g. 30m, 12h or 7d"
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    if number <= 0 {
        return Err(invalid());
    }
    number.checked_mul(unit_ms).ok_or_else(invalid)
}

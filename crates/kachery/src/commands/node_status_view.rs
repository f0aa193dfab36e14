//! The human-readable form of `kachery node status`.

use std::fmt::Write;

use kachery_client::local_api::types::NodeStatus;

/// Renders the status as a short report followed by a table of channels.
pub fn render(status: &NodeStatus) -> String {
    let now = crate::commands::node::now_ms();
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        writeln!(out, "{key:<16}{value}").expect("writing to a String cannot fail");
    };

    line(&mut out, "node", &status.node_id.to_string());
    line(&mut out, "label", status.label.as_str());
    line(
        &mut out,
        "owner",
        status
            .owner
            .as_ref()
            .map_or("(not set)", |owner| owner.as_str()),
    );
    line(
        &mut out,
        "hub",
        status.hub.as_deref().unwrap_or("(not set)"),
    );
    if let Some(reason) = &status.local_only_reason {
        line(&mut out, "mode", &format!("local only: {reason}"));
    }
    if let Some(at) = status.last_reconcile_at {
        line(
            &mut out,
            "last reconcile",
            &format!("{} s ago", (now - at).max(0) / 1000),
        );
    }
    if let Some(error) = &status.last_error {
        line(&mut out, "last error", error);
    }
    if let Some(at) = status.next_attempt_at {
        line(
            &mut out,
            "next attempt",
            &format!("in {} s", (at - now).max(0) / 1000),
        );
    }
    line(
        &mut out,
        "store",
        &format!(
            "{} blobs, {} bytes, {} partial",
            status.store.blobs, status.store.bytes, status.store.partials
        ),
    );

    if status.channels.is_empty() {
        out.push_str("\nno channels: join one with `kachery node join CHANNEL`\n");
    } else {
        writeln!(
            out,
            "\n{:<24} {:<10} {:<12} {:<32} effective",
            "channel", "link", "token", "requested"
        )
        .expect("writing to a String cannot fail");
        for channel in &status.channels {
            let token = channel.token_expires_at.map_or("-".to_owned(), |at| {
                format!("{} min", (at - now).max(0) / 60_000)
            });
            writeln!(
                out,
                "{:<24} {:<10} {:<12} {:<32} {}",
                channel.channel.as_str(),
                channel.link_state,
                token,
                channel.requested_roles.to_string(),
                channel.effective_roles
            )
            .expect("writing to a String cannot fail");
            if let Some(error) = &channel.last_error {
                writeln!(out, "  last error: {error}").expect("writing to a String cannot fail");
            }
        }
    }

    if !status.transfers.is_empty() {
        out.push_str("\ntransfers in flight:\n");
        for transfer in &status.transfers {
            writeln!(
                out,
                "  {:?} {} {}/{} bytes",
                transfer.direction, transfer.uri, transfer.bytes, transfer.total
            )
            .expect("writing to a String cannot fail");
        }
    }
    out
}

//! Building audit-log entries (SPEC §8.1): who did what, to which channel, when.
//!
//! Entries are written by the database layer in the same transaction as the change they
//! describe; credential issuance, which changes nothing, is appended on its own. Details
//! are JSON built here by the hub, never a client object stored as received.

use kachery_protocol::{Email, NodeId};

use crate::db::AuditEntry;

/// Who performed an audited action.
#[derive(Debug, Clone)]
pub enum Actor {
    User { email: Email, dev_login: bool },
    Node { node_id: NodeId, owner: Email },
}

impl Actor {
    /// A new entry for `action` at `now`, with no channel, target or details yet.
    pub fn audit(&self, action: &'static str, now: i64, request_id: Option<String>) -> AuditEntry {
        let (actor_kind, actor, dev_login) = match self {
            Actor::User { email, dev_login } => ("user", email.to_string(), *dev_login),
            Actor::Node { node_id, owner } => ("node", format!("{node_id}/{owner}"), false),
        };
        AuditEntry {
            at: now,
            actor_kind,
            actor,
            action,
            channel_id: None,
            target: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
            request_id,
            dev_login,
        }
    }
}

impl AuditEntry {
    pub fn channel(mut self, channel_id: i64) -> Self {
        self.channel_id = Some(channel_id);
        self
    }

    pub fn target(mut self, target: impl std::fmt::Display) -> Self {
        self.target = Some(target.to_string());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

//! Who is connected to the embedded broker, what each connection may do, and who hears
//! each topic.
//!
//! The registry is the single place that holds a connection's allow lists, so the hub's
//! revocation calls and the connection's own frames see the same rights. Topics are keyed
//! by `(channel, band)`, never by a string prefix: channel names contain dots, and `lab`
//! must not hear `lab.b`. The registry sits behind a plain mutex and does no I/O: delivery
//! only pushes onto bounded queues and never waits for a slow reader.

use std::collections::{HashMap, HashSet};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot};

use kachery_protocol::roles::Capability;
use kachery_protocol::{Band, ChannelName, Email, NodeId};

use crate::token::TokenClaims;

/// Broker-local number of one WebSocket.
pub(crate) type ConnectionId = u64;

/// An authenticated connection as the registry sees it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) channel: ChannelName,
    pub(crate) node_id: NodeId,
    pub(crate) owner: Email,
    pub(crate) publish: Vec<Band>,
    pub(crate) subscribe: Vec<Band>,
    subscribed: HashSet<Band>,
    /// Frames for the connection to write; bounded, so slow readers lose frames instead
    /// of holding up publishers.
    outbox: mpsc::Sender<Utf8Bytes>,
    /// Fired once when the hub revokes the connection; carries the `revoked` reason.
    revoke: Option<oneshot::Sender<String>>,
}

impl Member {
    pub(crate) fn new(
        claims: &TokenClaims,
        outbox: mpsc::Sender<Utf8Bytes>,
        revoke: oneshot::Sender<String>,
    ) -> Self {
        Self {
            channel: claims.channel.clone(),
            node_id: claims.node_id,
            owner: claims.owner.clone(),
            publish: claims.publish.clone(),
            subscribe: claims.subscribe.clone(),
            subscribed: HashSet::new(),
            outbox,
            revoke: Some(revoke),
        }
    }
}

/// How a publish went: frames queued for subscribers and frames lost to full queues.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) queued: usize,
    pub(crate) dropped: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    members: HashMap<ConnectionId, Member>,
    topics: HashMap<(ChannelName, Band), HashSet<ConnectionId>>,
}

impl Registry {
    pub(crate) fn insert(&mut self, id: ConnectionId, member: Member) {
        self.members.insert(id, member);
    }

    /// Forgets a connection and its subscriptions; harmless if already gone.
    pub(crate) fn remove(&mut self, id: ConnectionId) {
        if let Some(member) = self.members.remove(&id) {
            for band in member.subscribed {
                self.unlink_topic(&member.channel, band, id);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn subscriber_count(&self, channel: &ChannelName, band: Band) -> usize {
        self.topics
            .get(&(channel.clone(), band))
            .map_or(0, HashSet::len)
    }

    /// Subscribes if the connection's allow list has the band; false otherwise.
    pub(crate) fn subscribe(&mut self, id: ConnectionId, band: Band) -> bool {
        let Some(member) = self.members.get_mut(&id) else {
            return false;
        };
        if !member.subscribe.contains(&band) {
            return false;
        }
        member.subscribed.insert(band);
        self.topics
            .entry((member.channel.clone(), band))
            .or_default()
            .insert(id);
        true
    }

    /// The connection's current `(publish, subscribe)` allow lists.
    pub(crate) fn allowed(&self, id: ConnectionId) -> Option<(Vec<Band>, Vec<Band>)> {
        self.members
            .get(&id)
            .map(|member| (member.publish.clone(), member.subscribe.clone()))
    }

    pub(crate) fn may_publish(&self, id: ConnectionId, band: Band) -> bool {
        self.members
            .get(&id)
            .is_some_and(|member| member.publish.contains(&band))
    }

    /// Queues `frame` for every other subscriber of the sender's `(channel, band)`.
    pub(crate) fn deliver(&self, from: ConnectionId, band: Band, frame: &Utf8Bytes) -> Delivery {
        let mut delivery = Delivery::default();
        let Some(sender) = self.members.get(&from) else {
            return delivery;
        };
        let Some(subscribers) = self.topics.get(&(sender.channel.clone(), band)) else {
            return delivery;
        };

        for id in subscribers.iter().filter(|id| **id != from) {
            let Some(member) = self.members.get(id) else {
                continue;
            };
            match member.outbox.try_send(frame.clone()) {
                Ok(()) => delivery.queued += 1,
                Err(_) => delivery.dropped += 1,
            }
        }
        delivery
    }

    /// Replaces the allow lists after a `reauth`, dropping subscriptions the new token
    /// no longer allows.
    pub(crate) fn reauthorize(&mut self, id: ConnectionId, claims: &TokenClaims) {
        let capability = Capability {
            publish: claims.publish.clone(),
            subscribe: claims.subscribe.clone(),
        };
        self.replace_capability(id, capability);
    }

    /// Narrows every connection of one node record on a channel to `allowed`; revokes
    /// those left with no band. Returns how many connections were touched.
    pub(crate) fn narrow(
        &mut self,
        channel: &ChannelName,
        node_id: &NodeId,
        owner: &Email,
        allowed: &Capability,
        revoke_reason: &str,
        changed_reason: &str,
    ) -> usize {
        let ids: Vec<ConnectionId> = self
            .members
            .iter()
            .filter(|(_, m)| &m.channel == channel && &m.node_id == node_id && &m.owner == owner)
            .map(|(id, _)| *id)
            .collect();

        for id in &ids {
            let member = &self.members[id];
            let narrowed = Capability {
                publish: intersect(&member.publish, &allowed.publish),
                subscribe: intersect(&member.subscribe, &allowed.subscribe),
            };
            // A connection that lost any band is closed rather than silently narrowed:
            // the node then fetches a fresh credential and learns its new roles, so a
            // later restore of the roles cannot leave it deaf on a band it thinks it has.
            if narrowed.is_empty() {
                self.revoke(*id, revoke_reason);
            } else if narrowed.publish != member.publish || narrowed.subscribe != member.subscribe {
                self.revoke(*id, changed_reason);
            }
        }
        ids.len()
    }

    /// Revokes every connection of `channel`, or of every channel when `None`.
    pub(crate) fn revoke_channel(&mut self, channel: Option<&ChannelName>, reason: &str) -> usize {
        let ids: Vec<ConnectionId> = self
            .members
            .iter()
            .filter(|(_, member)| channel.is_none_or(|channel| &member.channel == channel))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.revoke(*id, reason);
        }
        ids.len()
    }

    /// Stops delivery to a connection at once and tells its task to send `revoked`.
    fn revoke(&mut self, id: ConnectionId, reason: &str) {
        if let Some(revoke) = self
            .members
            .get_mut(&id)
            .and_then(|member| member.revoke.take())
        {
            // The task may have ended on its own already; then there is nobody to tell.
            let _ = revoke.send(reason.to_owned());
        }
        self.remove(id);
    }

    fn replace_capability(&mut self, id: ConnectionId, capability: Capability) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let lost: Vec<Band> = member
            .subscribed
            .iter()
            .copied()
            .filter(|band| !capability.subscribe.contains(band))
            .collect();
        for band in &lost {
            member.subscribed.remove(band);
        }
        member.publish = capability.publish;
        member.subscribe = capability.subscribe;

        let channel = member.channel.clone();
        for band in lost {
            self.unlink_topic(&channel, band, id);
        }
    }

    fn unlink_topic(&mut self, channel: &ChannelName, band: Band, id: ConnectionId) {
        let key = (channel.clone(), band);
        if let Some(subscribers) = self.topics.get_mut(&key) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                self.topics.remove(&key);
            }
        }
    }
}

fn intersect(current: &[Band], allowed: &[Band]) -> Vec<Band> {
    current
        .iter()
        .copied()
        .filter(|band| allowed.contains(band))
        .collect()
}

#[cfg(test)]
mod tests {
    use kachery_protocol::Nonce;

    use super::*;

    fn claims(node: u8, channel: &str) -> TokenClaims {
        TokenClaims {
            node_id: NodeId::from_bytes([node; 32]),
            owner: Email::parse("carol@example.com").unwrap(),
            channel: ChannelName::parse(channel).unwrap(),
            publish: vec![Band::RequestFiles],
            subscribe: vec![Band::RequestFiles],
            exp: i64::MAX,
            jti: Nonce::from_bytes([0; 16]),
        }
    }

    /// Adds a member subscribed to requestFiles; returns its outbox.
    fn join(
        registry: &mut Registry,
        id: ConnectionId,
        channel: &str,
        outbox_frames: usize,
    ) -> (mpsc::Receiver<Utf8Bytes>, oneshot::Receiver<String>) {
        let (outbox_tx, outbox_rx) = mpsc::channel(outbox_frames);
        let (revoke_tx, revoke_rx) = oneshot::channel();
        let node = u8::try_from(id).unwrap();
        registry.insert(
            id,
            Member::new(&claims(node, channel), outbox_tx, revoke_tx),
        );
        assert!(registry.subscribe(id, Band::RequestFiles));
        (outbox_rx, revoke_rx)
    }

    #[test]
    fn a_full_outbox_drops_instead_of_blocking() {
        let mut registry = Registry::default();
        let (_sender_outbox, _) = join(&mut registry, 1, "lab", 4);
        let (mut slow_outbox, _) = join(&mut registry, 2, "lab", 1);

        let frame = Utf8Bytes::from_static("{}");
        assert_eq!(
            registry.deliver(1, Band::RequestFiles, &frame),
            Delivery {
                queued: 1,
                dropped: 0
            }
        );
        assert_eq!(
            registry.deliver(1, Band::RequestFiles, &frame),
            Delivery {
                queued: 0,
                dropped: 1
            }
        );
        assert!(slow_outbox.try_recv().is_ok());
        assert!(slow_outbox.try_recv().is_err());
    }

    #[test]
    fn topics_match_channels_exactly() {
        let mut registry = Registry::default();
        let (_lab, _) = join(&mut registry, 1, "lab", 4);
        let (mut lab_b, _) = join(&mut registry, 2, "lab.b", 4);
        let (mut lab_c, _) = join(&mut registry, 3, "lab.c", 4);

        let frame = Utf8Bytes::from_static("{}");
        assert_eq!(registry.deliver(1, Band::RequestFiles, &frame).queued, 0);
        assert!(lab_b.try_recv().is_err() && lab_c.try_recv().is_err());
    }

    #[test]
    fn narrowing_to_nothing_revokes_and_forgets() {
        let mut registry = Registry::default();
        let (_outbox, mut revoke) = join(&mut registry, 5, "lab", 4);
        let member = claims(5, "lab");

        let channel = ChannelName::parse("lab").unwrap();
        let touched = registry.narrow(
            &channel,
            &member.node_id,
            &member.owner,
            &Capability::default(),
            "gone",
            "changed",
        );
        assert_eq!(touched, 1);
        assert_eq!(revoke.try_recv().unwrap(), "gone");
        assert_eq!(registry.len(), 0);
        assert_eq!(registry.subscriber_count(&channel, Band::RequestFiles), 0);
    }
}

//! The NATS backend (SPEC §6.2): a channel may use its owner's `nats-server` in JWT
//! (operator) mode instead of the broker embedded in the hub.
//!
//! - [`issuer`]: the hub signs a short-lived user JWT with the channel's account signing
//!   seed. Its subject is the per-link user nkey the node sent, and its publish and
//!   subscribe allow lists are the exact subjects of the node's capability, so the
//!   server itself refuses anything else.
//! - [`driver`]: the node's connection. It speaks to the server with `async-nats`, signs
//!   the server's challenge with the per-link [`NatsUserKey`] (never the node key), and
//!   reuses the client's per-band batching. Renewal opens a second connection with the
//!   new JWT and subscribes there before the first one is drained, so nothing published
//!   meanwhile is lost; the duplicates this may deliver are dropped by the receivers'
//!   nonce memory.

pub(crate) mod driver;
pub mod issuer;
#[cfg(feature = "test-server")]
pub mod test_server;

use std::sync::Arc;

use kachery_protocol::{Band, ChannelName};

pub use issuer::{NatsIssuer, NatsIssuerError};

/// Every band a credential can name: the six a node may be granted, and `probe`, which
/// only the hub's channel test ever gets (the hub never puts it in a node's credential).
const BANDS: [Band; 7] = [
    Band::RequestFiles,
    Band::ProvideFiles,
    Band::RequestFeeds,
    Band::ProvideFeeds,
    Band::RequestTasks,
    Band::ProvideTasks,
    Band::Probe,
];

/// The NATS subject of a logical band: `kachery.<channel>.<band>` [C]. Channel names may
/// contain dots, so allow lists always name exact subjects, never wildcards.
pub fn subject(channel: &ChannelName, band: Band) -> String {
    band.nats_subject(channel)
}

/// The band a subject of `channel` names, if any.
pub fn band_of_subject(channel: &ChannelName, subject: &str) -> Option<Band> {
    BANDS
        .into_iter()
        .find(|band| band.nats_subject(channel) == subject)
}

/// The user nkey a node makes for one link. Its public half (`U…`) goes to the hub in
/// getPubsubCredential; its seed stays in memory and answers the server's nonce
/// challenge. `Debug` shows only the public key.
#[derive(Clone)]
pub struct NatsUserKey(Arc<nkeys::KeyPair>);

impl NatsUserKey {
    /// A fresh random user key.
    pub fn generate() -> Self {
        Self(Arc::new(nkeys::KeyPair::new_user()))
    }

    /// The public key, `U` followed by 55 base32 characters.
    pub fn public_key(&self) -> String {
        self.0.public_key()
    }

    /// Signs a server nonce for the CONNECT handshake.
    pub(crate) fn sign(&self, nonce: &[u8]) -> Result<Vec<u8>, nkeys::error::Error> {
        self.0.sign(nonce)
    }
}

impl std::fmt::Debug for NatsUserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NatsUserKey")
            .field(&self.public_key())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_exact_and_map_back_to_bands() {
        let channel = ChannelName::parse("lab.shared").unwrap();
        let subject = subject(&channel, Band::RequestFiles);
        assert_eq!(subject, "kachery.lab.shared.requestFiles");
        assert_eq!(
            band_of_subject(&channel, &subject),
            Some(Band::RequestFiles)
        );

        // A channel whose name extends another's does not capture its subjects.
        let other = ChannelName::parse("lab").unwrap();
        assert_eq!(band_of_subject(&other, &subject), None);
    }
}

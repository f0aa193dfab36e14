//! The signed registration a node owner confirms on the hub (SPEC §3.3): building the
//! `register-node` envelope and the `<hub>/nodes/register?req=…` link that carries it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use kachery_protocol::jcs::{CanonicalError, to_canonical_vec};
use kachery_protocol::signing::{Purpose, node_id_of};
use kachery_protocol::user_api::RegistrationBody;
use kachery_protocol::{Email, Label, SignedEnvelope};

use crate::node_api::random_nonce;

/// Signs a registration of `key`'s node for `owner`, bound to `hub_origin` and `now_ms`.
/// The hub accepts it for about an hour (SPEC §3.3).
pub fn registration_envelope(
    key: &SigningKey,
    owner: Email,
    label: Label,
    hub_origin: &str,
    now_ms: i64,
) -> Result<SignedEnvelope, CanonicalError> {
    let body = RegistrationBody {
        node_id: node_id_of(key),
        owner,
        label,
        hub: hub_origin.trim_end_matches('/').to_owned(),
        timestamp: now_ms,
        nonce: random_nonce(),
    };
    SignedEnvelope::seal(key, Purpose::RegisterNode, &body)
}

/// The page on the hub where the owner reviews and confirms `envelope`:
/// `<hub>/nodes/register?req=<base64url, no padding, of the canonical envelope JSON>`.
pub fn registration_link(hub_origin: &str, envelope: &SignedEnvelope) -> String {
    let canonical =
        to_canonical_vec(envelope).expect("a signed envelope was canonical when sealed");
    let encoded = URL_SAFE_NO_PAD.encode(canonical);
    format!(
        "{}/nodes/register?req={encoded}",
        hub_origin.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_key() -> SigningKey {
        SigningKey::from_bytes(&[3u8; 32])
    }

    #[test]
    fn registration_envelope_verifies_for_register_node_only() {
        let owner = Email::parse("alice@example.org").unwrap();
        let envelope = registration_envelope(
            &fixed_key(),
            owner,
            Label::parse("laptop").unwrap(),
            "http://127.0.0.1:8080/",
            1_700_000_000_000,
        )
        .unwrap();

        envelope.verify(Purpose::RegisterNode).unwrap();
        assert!(envelope.verify(Purpose::HubRequest).is_err());
        let body: RegistrationBody = serde_json::from_value(envelope.body.clone()).unwrap();
        assert_eq!(body.node_id, node_id_of(&fixed_key()));
        assert_eq!(body.hub, "http://127.0.0.1:8080");
        assert_eq!(body.timestamp, 1_700_000_000_000);
    }

    #[test]
    fn registration_link_decodes_back_to_the_envelope() {
        let envelope = registration_envelope(
            &fixed_key(),
            Email::parse("alice@example.org").unwrap(),
            Label::parse("lab machine").unwrap(),
            "https://hub.example.org",
            42,
        )
        .unwrap();

        let link = registration_link("https://hub.example.org/", &envelope);
        let encoded = link
            .strip_prefix("https://hub.example.org/nodes/register?req=")
            .expect("link starts with the hub's register page");
        assert!(!encoded.contains('=') && !encoded.contains('+') && !encoded.contains('/'));

        let decoded: SignedEnvelope =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded.node_id, envelope.node_id);
        assert_eq!(decoded.signature, envelope.signature);
        assert_eq!(decoded.body, envelope.body);
        decoded.verify(Purpose::RegisterNode).unwrap();
    }
}

//! Domain-separated Ed25519 signatures (SPEC §4.2).
//!
//! The signed bytes are `kachery-v1:<purpose>:` followed by the canonical JSON of the body,
//! so a signature made for one purpose can never be replayed as another. Verification
//! always canonicalizes the body *as received* (a generic JSON value), never a re-encoded
//! typed struct, so fields a verifier does not know about are still covered.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;

use crate::ids::NodeId;
use crate::jcs::{CanonicalError, to_canonical_vec};

/// What a signature is for. A verifier checks exactly the one purpose it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A node's request to the hub's node API.
    HubRequest,
    /// A message a node publishes on a channel band.
    Pubsub,
    /// A node's registration envelope (proof of possession).
    RegisterNode,
    /// A subfeed message or head, signed by the feed key.
    FeedMessage,
    /// A task result record, signed by the provider node.
    TaskResult,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::HubRequest => "hub-request",
            Purpose::Pubsub => "pubsub",
            Purpose::RegisterNode => "register-node",
            Purpose::FeedMessage => "feed-message",
            Purpose::TaskResult => "task-result",
        }
    }
}

/// Why a signature did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("signature is not 128 lowercase hex characters")]
    MalformedSignature,
    #[error("signer id is not a valid Ed25519 public key")]
    InvalidSigner,
    #[error("signature does not match the body and signer")]
    Mismatch,
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

/// The exact bytes that are signed for `purpose` over `body`.
pub fn signing_input(purpose: Purpose, body: &Value) -> Result<Vec<u8>, CanonicalError> {
    let canonical = to_canonical_vec(body)?;
    let mut input = Vec::with_capacity(16 + canonical.len());
    input.extend_from_slice(b"kachery-v1:");
    input.extend_from_slice(purpose.name().as_bytes());
    input.push(b':');
    input.extend_from_slice(&canonical);
    Ok(input)
}

/// Signs `body` for `purpose`; returns the signature as 128 lowercase hex.
pub fn sign(key: &SigningKey, purpose: Purpose, body: &Value) -> Result<String, CanonicalError> {
    let input = signing_input(purpose, body)?;
    Ok(hex::encode(key.sign(&input).to_bytes()))
}

/// Checks that `signature_hex` is `signer`'s signature of `body` for `purpose`.
pub fn verify(
    signer: &NodeId,
    purpose: Purpose,
    body: &Value,
    signature_hex: &str,
) -> Result<(), VerifyError> {
    let mut signature_bytes = [0u8; 64];
    let is_lower_hex = signature_hex
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if signature_hex.len() != 128 || !is_lower_hex {
        return Err(VerifyError::MalformedSignature);
    }
    hex::decode_to_slice(signature_hex, &mut signature_bytes)
        .map_err(|_| VerifyError::MalformedSignature)?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature_bytes);
    let verifying_key = signer
        .verifying_key()
        .map_err(|_| VerifyError::InvalidSigner)?;
    let input = signing_input(purpose, body)?;
    verifying_key
        .verify_strict(&input, &signature)
        .map_err(|_| VerifyError::Mismatch)
}

/// The node id of a signing key.
pub fn node_id_of(key: &SigningKey) -> NodeId {
    NodeId::from(&key.verifying_key())
}

/// Whether `timestamp_ms` lies within `max_skew_ms` of `now_ms` in either direction.
pub fn is_fresh(timestamp_ms: i64, now_ms: i64, max_skew_ms: i64) -> bool {
    (now_ms - timestamp_ms).abs() <= max_skew_ms
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fixed_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn signing_input_is_prefix_purpose_and_canonical_body() {
        let input = signing_input(Purpose::HubRequest, &json!({"b": 2, "a": 1})).unwrap();
        assert_eq!(input, br#"kachery-v1:hub-request:{"a":1,"b":2}"#);
    }

    #[test]
    fn fixed_vector_signature_is_stable() {
        let body = json!({"type": "report", "timestamp": 1_700_000_000_000i64});
        let signature = sign(&fixed_key(), Purpose::HubRequest, &body).unwrap();
        // Ed25519 is deterministic: the same key and input always give these bytes.
        assert_eq!(
            signature,
            sign(&fixed_key(), Purpose::HubRequest, &body).unwrap()
        );
        assert_eq!(signature.len(), 128);
        verify(
            &node_id_of(&fixed_key()),
            Purpose::HubRequest,
            &body,
            &signature,
        )
        .unwrap();
    }

    #[test]
    fn verification_rejects_other_purpose_tampered_body_and_other_key() {
        let body = json!({"x": 1, "extra": {"y": [1, 2]}});
        let signer = node_id_of(&fixed_key());
        let signature = sign(&fixed_key(), Purpose::Pubsub, &body).unwrap();
        verify(&signer, Purpose::Pubsub, &body, &signature).unwrap();

        let wrong_purpose = verify(&signer, Purpose::HubRequest, &body, &signature);
        assert!(matches!(wrong_purpose, Err(VerifyError::Mismatch)));

        let tampered = json!({"x": 1, "extra": {"y": [1, 3]}});
        assert!(matches!(
            verify(&signer, Purpose::Pubsub, &tampered, &signature),
            Err(VerifyError::Mismatch)
        ));

        let other = node_id_of(&SigningKey::from_bytes(&[8u8; 32]));
        assert!(matches!(
            verify(&other, Purpose::Pubsub, &body, &signature),
            Err(VerifyError::Mismatch)
        ));

        assert!(matches!(
            verify(&signer, Purpose::Pubsub, &body, "zz"),
            Err(VerifyError::MalformedSignature)
        ));
    }

    #[test]
    fn key_order_of_received_body_does_not_matter() {
        let signer = node_id_of(&fixed_key());
        let signature = sign(&fixed_key(), Purpose::Pubsub, &json!({"a": 1, "b": 2})).unwrap();
        let received: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        verify(&signer, Purpose::Pubsub, &received, &signature).unwrap();
    }

    #[test]
    fn freshness_window() {
        assert!(is_fresh(1_000, 1_000 + 300_000, 300_000));
        assert!(is_fresh(1_000 + 300_000, 1_000, 300_000));
        assert!(!is_fresh(1_000, 1_000 + 300_001, 300_000));
    }
}

//! The signed envelope `{body, nodeId, signature}` used for node-API requests and node
//! registrations (SPEC §4.2).

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::NodeId;
use crate::jcs::CanonicalError;
use crate::signing::{self, Purpose, VerifyError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedEnvelope {
    /// The body exactly as signed; verified in its received JSON form.
    pub body: Value,
    pub node_id: NodeId,
    pub signature: String,
}

impl SignedEnvelope {
    /// Serializes `body` and signs it with `key` for `purpose`.
    pub fn seal<T: Serialize>(
        key: &SigningKey,
        purpose: Purpose,
        body: &T,
    ) -> Result<Self, CanonicalError> {
        let body = serde_json::to_value(body).expect("protocol bodies serialize to JSON");
        let signature = signing::sign(key, purpose, &body)?;
        Ok(Self {
            body,
            node_id: signing::node_id_of(key),
            signature,
        })
    }

    /// Verifies the signature of `nodeId` over the body for `purpose`.
    pub fn verify(&self, purpose: Purpose) -> Result<(), VerifyError> {
        signing::verify(&self.node_id, purpose, &self.body, &self.signature)
    }
}

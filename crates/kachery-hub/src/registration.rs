//! Checking a node registration envelope (SPEC §3.3): proof that whoever registers a node
//! holds its key, meant this hub, did so recently and is the signed-in owner.
//!
//! [`check_registration`] runs every check that needs no database; the nonce check is
//! the unique key of `seen_nonces`, hit when the record is inserted. Each failure names
//! its check so the web page (later) and the API can show which one failed.

use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::limits::{REGISTRATION_MAX_AGE_MS, REGISTRATION_MAX_AHEAD_MS};
use kachery_protocol::user_api::RegistrationBody;
use kachery_protocol::{Email, Purpose, SignedEnvelope};

use crate::error::ApiError;

/// Why a registration envelope was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    #[error("shape: the registration body is not a registerNode request ({0})")]
    Shape(String),
    #[error("signature: the body names node {body} but the envelope is signed as {envelope}")]
    NodeMismatch { body: String, envelope: String },
    #[error("signature: the registration is not signed by node {node}")]
    Signature { node: String },
    #[error("hub: the registration is for {claimed}, this hub is {expected}")]
    WrongHub { claimed: String, expected: String },
    #[error(
        "timestamp: the registration is {age_minutes} minutes old; registrations are valid \
         for 60 minutes, run `kachery node register` again"
    )]
    Expired { age_minutes: i64 },
    #[error(
        "timestamp: the registration is dated {ahead_seconds} s in the future; check the node's clock"
    )]
    FromTheFuture { ahead_seconds: i64 },
    #[error("owner: the registration is for {owner}, but you are signed in as {signed_in}")]
    WrongOwner { owner: String, signed_in: String },
    #[error("nonce: this registration was already used; run `kachery node register` again")]
    NonceReused,
}

impl RegistrationError {
    /// The name of the failed check, as shown to the user.
    pub fn check(&self) -> &'static str {
        match self {
            RegistrationError::Shape(_) => "shape",
            RegistrationError::NodeMismatch { .. } | RegistrationError::Signature { .. } => {
                "signature"
            }
            RegistrationError::WrongHub { .. } => "hub",
            RegistrationError::Expired { .. } | RegistrationError::FromTheFuture { .. } => {
                "timestamp"
            }
            RegistrationError::WrongOwner { .. } => "owner",
            RegistrationError::NonceReused => "nonce",
        }
    }
}

impl From<RegistrationError> for ApiError {
    fn from(error: RegistrationError) -> Self {
        ApiError::new(ErrorCode::RegistrationInvalid, error.to_string())
            .with_detail("check", error.check())
    }
}

/// Runs the database-free checks of SPEC §3.3 in order; returns the verified body.
pub fn check_registration(
    envelope: &SignedEnvelope,
    hub_origin: &str,
    signed_in: &Email,
    now_ms: i64,
) -> Result<RegistrationBody, RegistrationError> {
    let body: RegistrationBody = serde_json::from_value(envelope.body.clone())
        .map_err(|error| RegistrationError::Shape(error.to_string()))?;

    if body.node_id != envelope.node_id {
        return Err(RegistrationError::NodeMismatch {
            body: body.node_id.to_string(),
            envelope: envelope.node_id.to_string(),
        });
    }
    envelope
        .verify(Purpose::RegisterNode)
        .map_err(|_| RegistrationError::Signature {
            node: envelope.node_id.to_string(),
        })?;

    if body.hub.trim_end_matches('/') != hub_origin {
        return Err(RegistrationError::WrongHub {
            claimed: body.hub.clone(),
            expected: hub_origin.to_owned(),
        });
    }

    let age_ms = now_ms - body.timestamp;
    if age_ms > REGISTRATION_MAX_AGE_MS {
        return Err(RegistrationError::Expired {
            age_minutes: age_ms / 60_000,
        });
    }
    if -age_ms > REGISTRATION_MAX_AHEAD_MS {
        return Err(RegistrationError::FromTheFuture {
            ahead_seconds: -age_ms / 1000,
        });
    }

    if &body.owner != signed_in {
        return Err(RegistrationError::WrongOwner {
            owner: body.owner.to_string(),
            signed_in: signed_in.to_string(),
        });
    }
    Ok(body)
}

/// How long a registration nonce must be remembered: until no envelope carrying it can
/// pass the timestamp check any more.
pub fn nonce_expiry(body: &RegistrationBody) -> i64 {
    body.timestamp + REGISTRATION_MAX_AGE_MS + REGISTRATION_MAX_AHEAD_MS
}

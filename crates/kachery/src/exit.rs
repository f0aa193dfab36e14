//! Exit codes (SPEC §2.2) and the error type that carries one through `anyhow`.
//!
//! 0 ok, 1 other failure, 2 usage or invalid URI, 3 not found, 4 denied, 5 integrity,
//! 6 timeout or unavailable. A broken pipe (`kachery cat … | head`) is a normal exit.

use std::fmt;

use kachery_client::ApiError;
use kachery_client::local_api::types::LoadErrorCode;
use kachery_protocol::api_error::ErrorCode;

/// A failure whose kind decides the exit code. The message is the whole story for the user.
#[derive(Debug)]
pub struct Failure {
    kind: FailureKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Usage,
    NotFound,
    Denied,
    Integrity,
    Unavailable,
    Other,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Usage, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Unavailable, message)
    }

    pub fn code(&self) -> u8 {
        match self.kind {
            FailureKind::Usage => 2,
            FailureKind::NotFound => 3,
            FailureKind::Denied => 4,
            FailureKind::Integrity => 5,
            FailureKind::Unavailable => 6,
            FailureKind::Other => 1,
        }
    }

    /// The failure for a load error reported by the daemon (SPEC §15.4).
    pub fn from_load_code(code: LoadErrorCode, message: impl Into<String>) -> Self {
        let kind = match code {
            LoadErrorCode::NotFound => FailureKind::NotFound,
            LoadErrorCode::Denied => FailureKind::Denied,
            LoadErrorCode::Integrity => FailureKind::Integrity,
            LoadErrorCode::Timeout | LoadErrorCode::Unavailable => FailureKind::Unavailable,
            LoadErrorCode::InvalidUri => FailureKind::Usage,
            _ => FailureKind::Other,
        };
        Self::new(kind, message)
    }
}

/// The exit code for an error chain: a [`Failure`] decides; otherwise a hub or daemon
/// error is classified by its code (unreachable → 6, not found → 3, refused → 4).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(failure) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
    {
        return failure.code();
    }
    let Some(api_error) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ApiError>())
    else {
        return 1;
    };
    if api_error.is_unreachable() || matches!(api_error, ApiError::TimedOut { .. }) {
        return 6;
    }
    match api_error.code() {
        Some(ErrorCode::NotFound | ErrorCode::ChannelNotFound | ErrorCode::NodeNotRegistered) => 3,
        Some(
            ErrorCode::Unauthenticated
            | ErrorCode::TokenExpired
            | ErrorCode::Forbidden
            | ErrorCode::NotOwner
            | ErrorCode::MissingRole
            | ErrorCode::NoRoles
            | ErrorCode::InvalidPasscode,
        ) => 4,
        Some(
            ErrorCode::ValidationFailed | ErrorCode::BadRequest | ErrorCode::RegistrationInvalid,
        ) => 2,
        _ => 1,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Whether the error comes from writing to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

//! The `code` strings of the embedded broker's `err` frames and the `reason` strings of its
//! `revoked` frames, shared by the broker and the client so both spell them the same.

use std::fmt;

/// Why the broker refused a frame. Codes marked "closes" end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BrokerErrorCode {
    /// No `auth` frame arrived in time (closes).
    AuthTimeout,
    /// The first frame was not `auth`, or a second `auth` came (closes).
    AuthRequired,
    /// The token is malformed or its MAC does not match (closes).
    InvalidToken,
    /// The token has expired (closes).
    TokenExpired,
    /// A `reauth` token names another node, owner or channel (closes).
    IdentityChanged,
    /// The frame is not JSON text of a known shape.
    MalformedFrame,
    /// The token does not allow publishing on that band.
    PublishDenied,
    /// The token does not allow subscribing to that band.
    SubscribeDenied,
    /// An envelope's `fromNodeId` is not the token's node.
    WrongSender,
    /// One envelope is over 16,384 bytes.
    EnvelopeTooLarge,
    /// The whole frame is over 32,000 bytes.
    FrameTooLarge,
    /// Over the per-connection rate; the frame was dropped.
    RateLimited,
}

impl BrokerErrorCode {
    pub const ALL: [BrokerErrorCode; 12] = [
        BrokerErrorCode::AuthTimeout,
        BrokerErrorCode::AuthRequired,
        BrokerErrorCode::InvalidToken,
        BrokerErrorCode::TokenExpired,
        BrokerErrorCode::IdentityChanged,
        BrokerErrorCode::MalformedFrame,
        BrokerErrorCode::PublishDenied,
        BrokerErrorCode::SubscribeDenied,
        BrokerErrorCode::WrongSender,
        BrokerErrorCode::EnvelopeTooLarge,
        BrokerErrorCode::FrameTooLarge,
        BrokerErrorCode::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BrokerErrorCode::AuthTimeout => "auth_timeout",
            BrokerErrorCode::AuthRequired => "auth_required",
            BrokerErrorCode::InvalidToken => "invalid_token",
            BrokerErrorCode::TokenExpired => "token_expired",
            BrokerErrorCode::IdentityChanged => "identity_changed",
            BrokerErrorCode::MalformedFrame => "malformed_frame",
            BrokerErrorCode::PublishDenied => "publish_denied",
            BrokerErrorCode::SubscribeDenied => "subscribe_denied",
            BrokerErrorCode::WrongSender => "wrong_sender",
            BrokerErrorCode::EnvelopeTooLarge => "envelope_too_large",
            BrokerErrorCode::FrameTooLarge => "frame_too_large",
            BrokerErrorCode::RateLimited => "rate_limited",
        }
    }

    /// The code for a wire string; `None` for codes this version does not know.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }

    /// Whether the broker closes the connection after sending this code.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            BrokerErrorCode::AuthTimeout
                | BrokerErrorCode::AuthRequired
                | BrokerErrorCode::InvalidToken
                | BrokerErrorCode::TokenExpired
                | BrokerErrorCode::IdentityChanged
        )
    }
}

impl fmt::Display for BrokerErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `revoked` reason: the token expired without a `reauth`.
pub const REVOKED_EXPIRED: &str = "expired";
/// `revoked` reason: the node has no bands left on the channel (SPEC §5.5).
pub const REVOKED_ROLES_REMOVED: &str = "roles_removed";
/// `revoked` reason: the node keeps some bands but lost others; it must fetch a new
/// credential, which also tells it its new effective roles.
pub const REVOKED_ROLES_CHANGED: &str = "roles_changed";
/// `revoked` reason: the channel was deleted.
pub const REVOKED_CHANNEL_DELETED: &str = "channel_deleted";
/// `revoked` reason: the hub is shutting down (SPEC §20).
pub const REVOKED_GOING_AWAY: &str = "going_away";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back() {
        for code in BrokerErrorCode::ALL {
            assert_eq!(BrokerErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(BrokerErrorCode::parse("nope"), None);
    }
}

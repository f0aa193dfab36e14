//! Validated identifiers. Each type can only hold a value that passed its rules, so code
//! that receives one never re-checks it. All of them travel on the wire as JSON strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier of the named kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("invalid {kind} {value:?}: expected {expected}")]
    Malformed {
        kind: &'static str,
        value: String,
        expected: &'static str,
    },
}

fn malformed(kind: &'static str, value: &str, expected: &'static str) -> IdError {
    let mut shown: String = value.chars().take(80).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    IdError::Malformed {
        kind,
        value: shown,
        expected,
    }
}

fn decode_lower_hex<const N: usize>(
    value: &str,
    kind: &'static str,
    expected: &'static str,
) -> Result<[u8; N], IdError> {
    let is_lower_hex = value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if value.len() != N * 2 || !is_lower_hex {
        return Err(malformed(kind, value, expected));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(value, &mut out).map_err(|_| malformed(kind, value, expected))?;
    Ok(out)
}

/// Implements Display, FromStr and string serde for a type with `parse` and `as_str`-like
/// display, so every identifier behaves the same on the wire.
macro_rules! string_wire_type {
    ($ty:ty) => {
        impl FromStr for $ty {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                <$ty>::parse(s)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$ty>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A node's identity: the raw 32-byte Ed25519 public key, shown as 64 lowercase hex [C].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 32]);

impl NodeId {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        decode_lower_hex(text, "node id", "64 lowercase hex characters").map(Self)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex characters, for tables and log lines.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// The Ed25519 verifying key; fails for the rare 32-byte strings that are not a
    /// curve point.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, IdError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| malformed("node id", &self.to_string(), "a valid Ed25519 public key"))
    }
}

impl From<&ed25519_dalek::VerifyingKey> for NodeId {
    fn from(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self(key.to_bytes())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}
string_wire_type!(NodeId);

/// A SHA-1 digest, the address of every blob, shown as 40 lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha1Hash([u8; 20]);

impl Sha1Hash {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        decode_lower_hex(text, "sha1 hash", "40 lowercase hex characters").map(Self)
    }

    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The SHA-1 of `data`, for small inputs held in memory.
    pub fn of(data: &[u8]) -> Self {
        use sha1::Digest;
        Self(sha1::Sha1::digest(data).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha1Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha1Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha1({})", hex::encode(&self.0[..4]))
    }
}
string_wire_type!(Sha1Hash);

/// 16 random bytes as 32 lowercase hex: request nonces and request ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nonce([u8; 16]);

impl Nonce {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        decode_lower_hex(text, "nonce", "32 lowercase hex characters").map(Self)
    }

    /// Wraps bytes the caller drew from a secure random source.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}
string_wire_type!(Nonce);

/// A channel name: 3–40 characters, `.`-separated non-empty segments of `[A-Za-z0-9_-]` [C].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        const EXPECTED: &str =
            "3 to 40 characters: letters, digits, '_' and '-', in non-empty segments joined by '.'";
        let segments_ok = text.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !(3..=40).contains(&text.len()) || !segments_ok {
            return Err(malformed("channel name", text, EXPECTED));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelName({})", self.0)
    }
}
string_wire_type!(ChannelName);

/// A node label: 1–40 characters of `[A-Za-z0-9 ._@-]` after trimming.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Label(String);

impl Label {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let trimmed = text.trim();
        let chars_ok = trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'@' | b'-'));
        if !(1..=40).contains(&trimmed.len()) || !chars_ok {
            return Err(malformed(
                "node label",
                text,
                "1 to 40 characters: letters, digits, space, '.', '_', '@' or '-'",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A label derived from any text (a host name, say): invalid characters become '-'
    /// and the result is cut to 40 characters; empty input gives "node".
    pub fn sanitized(text: &str) -> Self {
        let cleaned: String = text
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " ._@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        Self::parse(&cleaned).unwrap_or_else(|_| Self("node".to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({})", self.0)
    }
}
string_wire_type!(Label);

/// An owner's e-mail: trimmed, lowercased, at most 254 characters, one `@` with a
/// non-empty local part and a dotted domain. It is an identity key, not a mailbox check.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let normalized = text.trim().to_lowercase();
        let valid = normalized.len() <= 254
            && !normalized
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            && match normalized.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && domain.split('.').all(|part| !part.is_empty())
                }
                None => false,
            };
        if !valid {
            return Err(malformed(
                "e-mail",
                text,
                "an address like name@example.org",
            ));
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}
string_wire_type!(Email);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_requires_lowercase_hex_of_32_bytes() {
        let good = "a".repeat(64);
        assert_eq!(NodeId::parse(&good).unwrap().to_string(), good);
        assert!(NodeId::parse(&"A".repeat(64)).is_err());
        assert!(NodeId::parse(&"a".repeat(63)).is_err());
        assert!(NodeId::parse("").is_err());
    }

    #[test]
    fn sha1_of_known_input() {
        assert_eq!(
            Sha1Hash::of(b"").to_string(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            Sha1Hash::of(b"abc").to_string(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn channel_names() {
        for good in ["abc", "lab.ephys", "a-b_c.d1", &"x".repeat(40)] {
            assert!(ChannelName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "a..b",
            ".abc",
            "abc.",
            "a b c",
            "ab/c",
            &"x".repeat(41),
            "ab>c",
        ] {
            assert!(ChannelName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_normalized() {
        assert_eq!(
            Email::parse("  Alice@Example.ORG ").unwrap().as_str(),
            "alice@example.org"
        );
        for bad in ["alice", "@x.org", "a@b", "a@@b.org", "a b@c.org", "a@.org"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            Label::parse("  lab node 1 ").unwrap().as_str(),
            "lab node 1"
        );
        assert!(Label::parse("").is_err());
        assert!(Label::parse("a/b").is_err());
        assert_eq!(Label::sanitized("host/name").as_str(), "host-name");
        assert_eq!(Label::sanitized("").as_str(), "node");
    }

    #[test]
    fn identifiers_round_trip_through_json() {
        let channel: ChannelName = serde_json::from_str("\"lab.one\"").unwrap();
        assert_eq!(serde_json::to_string(&channel).unwrap(), "\"lab.one\"");
        assert!(serde_json::from_str::<ChannelName>("\"x\"").is_err());
    }
}

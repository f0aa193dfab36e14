//! Object keys in a channel's bucket [C] (SPEC §7.1).
//!
//! Keys are only ever built here from validated parts, and keys received from the network
//! are parsed back into one of the known shapes, so the hub never presigns an arbitrary
//! path.

use std::fmt;

use crate::ids::{ChannelName, NodeId, Sha1Hash};

/// `h[0..2]/h[2..4]/h[4..6]/h`: the fan-out used by every hashed path [C].
pub fn pathify(hex: &str) -> String {
    format!("{}/{}/{}/{}", &hex[0..2], &hex[2..4], &hex[4..6], hex)
}

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// A blob: a small file, a chunk, a manifest or a task payload. Create-only and
    /// hashing to its own name.
    Blob(Sha1Hash),
    /// A subfeed segment holding messages `start..end`.
    FeedSegment {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
        start: u64,
        end: u64,
    },
    /// The signed head of a subfeed (replaced as the feed grows).
    FeedHead {
        feed_id: NodeId,
        subfeed_hash: Sha1Hash,
    },
    /// A signed task result record.
    TaskResult(Sha1Hash),
}

/// A validated key inside a channel's bucket, without any backend prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BucketKey(String);

/// Why a string is not a key kachery writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bucket key {0:?}")]
pub struct BucketKeyError(pub String);

impl BucketKey {
    pub fn blob(channel: &ChannelName, sha1: &Sha1Hash) -> Self {
        Self(format!("{channel}/sha1/{}", pathify(&sha1.to_hex())))
    }

    pub fn feed_head(channel: &ChannelName, feed_id: &NodeId, subfeed_hash: &Sha1Hash) -> Self {
        Self(format!(
            "{channel}/feeds/{}/subfeeds/{}/head",
            pathify(&feed_id.to_string()),
            pathify(&subfeed_hash.to_hex())
        ))
    }

    pub fn feed_segment(
        channel: &ChannelName,
        feed_id: &NodeId,
        subfeed_hash: &Sha1Hash,
        start: u64,
        end: u64,
    ) -> Self {
        Self(format!(
            "{channel}/feeds/{}/subfeeds/{}/segments/{start}-{end}",
            pathify(&feed_id.to_string()),
            pathify(&subfeed_hash.to_hex())
        ))
    }

    pub fn task_result(channel: &ChannelName, task_hash: &Sha1Hash) -> Self {
        Self(format!(
            "{channel}/task_results/{}",
            pathify(&task_hash.to_hex())
        ))
    }

    /// Parses a key back into its channel and kind; anything else is refused.
    pub fn parse(text: &str) -> Result<(ChannelName, ObjectKind), BucketKeyError> {
        let fail = || BucketKeyError(text.chars().take(200).collect());
        let parts: Vec<&str> = text.split('/').collect();
        let channel = ChannelName::parse(parts.first().ok_or_else(fail)?).map_err(|_| fail())?;
        let unpathify = |fanout: &[&str]| -> Option<String> {
            let [a, b, c, full] = fanout else { return None };
            (full.len() >= 6 && full[0..2] == **a && full[2..4] == **b && full[4..6] == **c)
                .then(|| (*full).to_owned())
        };
        let kind = match &parts[1..] {
            ["sha1", rest @ ..] if rest.len() == 4 => {
                let hex = unpathify(rest).ok_or_else(fail)?;
                ObjectKind::Blob(Sha1Hash::parse(&hex).map_err(|_| fail())?)
            }
            ["task_results", rest @ ..] if rest.len() == 4 => {
                let hex = unpathify(rest).ok_or_else(fail)?;
                ObjectKind::TaskResult(Sha1Hash::parse(&hex).map_err(|_| fail())?)
            }
            [
                "feeds",
                f1,
                f2,
                f3,
                f4,
                "subfeeds",
                s1,
                s2,
                s3,
                s4,
                tail @ ..,
            ] => {
                let feed_id = NodeId::parse(&unpathify(&[f1, f2, f3, f4]).ok_or_else(fail)?)
                    .map_err(|_| fail())?;
                let subfeed_hash = Sha1Hash::parse(&unpathify(&[s1, s2, s3, s4]).ok_or_else(fail)?)
                    .map_err(|_| fail())?;
                match tail {
                    ["head"] => ObjectKind::FeedHead {
                        feed_id,
                        subfeed_hash,
                    },
                    ["segments", range] => {
                        let (start, end) = range.split_once('-').ok_or_else(fail)?;
                        let start: u64 = start.parse().map_err(|_| fail())?;
                        let end: u64 = end.parse().map_err(|_| fail())?;
                        if end <= start || range.starts_with('+') {
                            return Err(fail());
                        }
                        ObjectKind::FeedSegment {
                            feed_id,
                            subfeed_hash,
                            start,
                            end,
                        }
                    }
                    _ => return Err(fail()),
                }
            }
            _ => return Err(fail()),
        };
        // Round-trip check: only the exact text kachery would write is accepted.
        let rebuilt = match &kind {
            ObjectKind::Blob(sha1) => BucketKey::blob(&channel, sha1),
            ObjectKind::TaskResult(hash) => BucketKey::task_result(&channel, hash),
            ObjectKind::FeedHead {
                feed_id,
                subfeed_hash,
            } => BucketKey::feed_head(&channel, feed_id, subfeed_hash),
            ObjectKind::FeedSegment {
                feed_id,
                subfeed_hash,
                start,
                end,
            } => BucketKey::feed_segment(&channel, feed_id, subfeed_hash, *start, *end),
        };
        if rebuilt.0 != text {
            return Err(fail());
        }
        Ok((channel, kind))
    }

    /// Parses a key of any kind, keeping only its text.
    pub fn try_from_str(text: &str) -> Result<Self, BucketKeyError> {
        Self::parse(text).map(|_| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketKey({})", self.0)
    }
}

impl serde::Serialize for BucketKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for BucketKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BucketKey::try_from_str(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_key_layout() {
        let channel = ChannelName::parse("lab.one").unwrap();
        let sha1 = Sha1Hash::parse("a9993e364706816aba3e25717850c26c9cd0d89d").unwrap();
        let key = BucketKey::blob(&channel, &sha1);
        assert_eq!(
            key.as_str(),
            "lab.one/sha1/a9/99/3e/a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            BucketKey::parse(key.as_str()).unwrap(),
            (channel, ObjectKind::Blob(sha1))
        );
    }

    #[test]
    fn feed_and_task_keys_round_trip() {
        let channel = ChannelName::parse("lab.one").unwrap();
        let feed_id = NodeId::parse(&"c".repeat(64)).unwrap();
        let subfeed = Sha1Hash::of(b"main");
        for key in [
            BucketKey::feed_head(&channel, &feed_id, &subfeed),
            BucketKey::feed_segment(&channel, &feed_id, &subfeed, 0, 1000),
            BucketKey::task_result(&channel, &subfeed),
        ] {
            assert!(BucketKey::parse(key.as_str()).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_foreign_keys() {
        let hash = "a9993e364706816aba3e25717850c26c9cd0d89d";
        for bad in [
            "".to_owned(),
            "lab.one/sha1/../../etc/passwd".to_owned(),
            format!("lab.one/sha1/aa/99/3e/{hash}"),
            format!("lab.one/sha1/a9/99/3e/{hash}/x"),
            format!("x/sha1/a9/99/3e/{hash}"),
            format!("lab.one/other/a9/99/3e/{hash}"),
        ] {
            assert!(BucketKey::parse(&bad).is_err(), "{bad}");
        }
    }
}

//! Signed, hash-chained subfeeds (SPEC §16): message and head bodies, their envelopes, and
//! the rules a reader applies before keeping anything.
//!
//! A feed is an Ed25519 key pair; its id is the 64-hex public key. Each subfeed (named by
//! the SHA-1 of its UTF-8 name) is a numbered list of messages. Message `n` is signed with
//! purpose `feed-message` by the feed key, names its feed and subfeed (so it cannot be
//! transplanted), carries `messageNumber = n` and the signature of message `n - 1` as
//! `previousSignature` (absent for 0). A signed head states how many messages exist and
//! the last one's signature, so a reader can tell a bucket copy is complete.
//!
//! [`verify_next`] is the one acceptance rule: messages come in order, chained to what the
//! reader already holds, or they are rejected with a [`FeedRejection`] that says why.
//! Like the rest of this crate it reads no clock: callers pass timestamps in.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{NodeId, Sha1Hash};
use crate::jcs::{CanonicalError, to_canonical_vec};
use crate::signing::{self, Purpose};

/// Largest message payload: its canonical JSON, in bytes (SPEC §16, §21).
pub const MAX_MESSAGE_BYTES: usize = 10_000;
/// Most messages in one bucket segment (SPEC §16).
pub const SEGMENT_MESSAGES: u64 = 1_000;
/// Largest subfeed name in bytes (SPEC §21).
pub const MAX_SUBFEED_NAME_BYTES: usize = 1_000;

/// The hash naming a subfeed: SHA-1 of the UTF-8 name, or the hash itself when the name is
/// `~<40 hex>` [C].
pub fn subfeed_hash(name: &str) -> Result<Sha1Hash, FeedError> {
    if name.is_empty() || name.len() > MAX_SUBFEED_NAME_BYTES {
        return Err(FeedError::SubfeedName(format!(
            "a subfeed name has 1 to {MAX_SUBFEED_NAME_BYTES} bytes"
        )));
    }
    if let Some(hex) = name.strip_prefix('~')
        && hex.len() == 40
    {
        return Sha1Hash::parse(hex).map_err(|_| {
            FeedError::SubfeedName("`~` must be followed by 40 lowercase hex characters".into())
        });
    }
    Ok(Sha1Hash::of(name.as_bytes()))
}

/// The bucket segments `[start, end)` holding messages `from..count` of a subfeed of
/// `count` messages. Segments start at multiples of [`SEGMENT_MESSAGES`] and the last one
/// ends at the count, so a reader finds every segment from the head's count alone, with
/// no listing (buckets are create-only, so a growing tail is re-uploaded under a new name).
pub fn segment_ranges(from: u64, count: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    if from >= count {
        return ranges;
    }
    let mut start = from - from % SEGMENT_MESSAGES;
    while start < count {
        let end = (start + SEGMENT_MESSAGES).min(count);
        ranges.push((start, end));
        start += SEGMENT_MESSAGES;
    }
    ranges
}

/// Why a feed input is invalid before anything is signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    #[error("invalid subfeed name: {0}")]
    SubfeedName(String),
    #[error("a feed message must be a JSON object")]
    NotAnObject,
    #[error("feed message is {size} canonical bytes; the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge { size: usize },
    #[error("feed message is not canonicalizable JSON")]
    Canonical,
}

/// The body of one subfeed message, signed with purpose `feed-message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    /// Always `"message"`, so a head can never pass as a message or the reverse.
    pub kind: String,
    pub feed_id: NodeId,
    pub subfeed_hash: Sha1Hash,
    pub message_number: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_signature: Option<String>,
    pub timestamp: i64,
    pub message: Map<String, Value>,
}

/// The signed head of a subfeed: how many messages exist and the last one's signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadBody {
    /// Always `"head"`.
    pub kind: String,
    pub feed_id: NodeId,
    pub subfeed_hash: Sha1Hash,
    pub message_count: u64,
    pub last_signature: String,
    pub timestamp: i64,
}

/// `{body, signature}`: a message or head as signed; the signer is the body's `feedId`.
/// The body stays the JSON value received, so verification covers unknown fields too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedFeedObject {
    pub body: Value,
    pub signature: String,
}

/// Why a received message or head was not kept. Each is reported, never stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedRejection {
    #[error("body is not a {expected} of this feed format")]
    Shape { expected: &'static str },
    #[error("message belongs to another feed or subfeed")]
    WrongSubfeed,
    #[error("signature does not verify with the feed key")]
    BadSignature,
    #[error("message {got} arrived while message {expected} was expected (gap)")]
    Gap { expected: u64, got: u64 },
    #[error("message {number} is not chained to the previous message's signature")]
    BrokenChain { number: u64 },
    #[error("message {number} differs from the message {number} already held (fork)")]
    Fork { number: u64 },
    #[error("message payload is over {MAX_MESSAGE_BYTES} canonical bytes")]
    TooLarge,
}

impl FeedRejection {
    /// A short stable name for logs and the local API.
    pub fn code(&self) -> &'static str {
        match self {
            FeedRejection::Shape { .. } => "shape",
            FeedRejection::WrongSubfeed => "wrong_subfeed",
            FeedRejection::BadSignature => "bad_signature",
            FeedRejection::Gap { .. } => "gap",
            FeedRejection::BrokenChain { .. } => "broken_chain",
            FeedRejection::Fork { .. } => "fork",
            FeedRejection::TooLarge => "too_large",
        }
    }
}

/// Checks a payload before signing: a JSON object of at most [`MAX_MESSAGE_BYTES`].
pub fn check_payload(message: &Value) -> Result<Map<String, Value>, FeedError> {
    let Value::Object(map) = message else {
        return Err(FeedError::NotAnObject);
    };
    let size = to_canonical_vec(message)
        .map_err(|_| FeedError::Canonical)?
        .len();
    if size > MAX_MESSAGE_BYTES {
        return Err(FeedError::TooLarge { size });
    }
    Ok(map.clone())
}

impl SignedFeedObject {
    /// Signs `body` with the feed key.
    pub fn seal<T: Serialize>(key: &SigningKey, body: &T) -> Result<Self, CanonicalError> {
        let body = serde_json::to_value(body).expect("feed bodies serialize to JSON");
        let signature = signing::sign(key, Purpose::FeedMessage, &body)?;
        Ok(Self { body, signature })
    }

    /// The message number claimed by the body, if it has one (for reports only).
    pub fn claimed_number(&self) -> Option<u64> {
        self.body.get("messageNumber").and_then(Value::as_u64)
    }
}

/// Makes message `number` of a subfeed, chained to `previous_signature`.
pub fn sign_message(
    key: &SigningKey,
    subfeed_hash: Sha1Hash,
    number: u64,
    previous_signature: Option<String>,
    timestamp: i64,
    message: &Value,
) -> Result<SignedFeedObject, FeedError> {
    let body = MessageBody {
        kind: "message".into(),
        feed_id: signing::node_id_of(key),
        subfeed_hash,
        message_number: number,
        previous_signature,
        timestamp,
        message: check_payload(message)?,
    };
    SignedFeedObject::seal(key, &body).map_err(|_| FeedError::Canonical)
}

/// Makes the signed head of a subfeed holding `message_count` messages.
pub fn sign_head(
    key: &SigningKey,
    subfeed_hash: Sha1Hash,
    message_count: u64,
    last_signature: String,
    timestamp: i64,
) -> SignedFeedObject {
    let body = HeadBody {
        kind: "head".into(),
        feed_id: signing::node_id_of(key),
        subfeed_hash,
        message_count,
        last_signature,
        timestamp,
    };
    SignedFeedObject::seal(key, &body).expect("head bodies are canonical")
}

/// What a reader holds of a subfeed: its identity, how many messages, the last signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    pub feed_id: NodeId,
    pub subfeed_hash: Sha1Hash,
    pub count: u64,
    pub last_signature: Option<String>,
}

/// Accepts `object` only as the next message after `tip`: right feed and subfeed, number
/// equal to `tip.count`, chained to `tip.last_signature`, signed by the feed key, payload
/// within limits. `held_signature(n)` answers the signature already held for an earlier
/// message `n`, so a different message with the same number is named a fork rather than
/// a stale duplicate; a duplicate yields `Ok(None)`.
pub fn verify_next(
    tip: &ChainTip,
    object: &SignedFeedObject,
    held_signature: impl Fn(u64) -> Option<String>,
) -> Result<Option<MessageBody>, FeedRejection> {
    let body: MessageBody =
        serde_json::from_value(object.body.clone()).map_err(|_| FeedRejection::Shape {
            expected: "message",
        })?;
    if body.kind != "message" {
        return Err(FeedRejection::Shape {
            expected: "message",
        });
    }
    if body.feed_id != tip.feed_id || body.subfeed_hash != tip.subfeed_hash {
        return Err(FeedRejection::WrongSubfeed);
    }
    signing::verify(
        &tip.feed_id,
        Purpose::FeedMessage,
        &object.body,
        &object.signature,
    )
    .map_err(|_| FeedRejection::BadSignature)?;

    let number = body.message_number;
    if number < tip.count {
        return match held_signature(number) {
            Some(held) if held == object.signature => Ok(None),
            _ => Err(FeedRejection::Fork { number }),
        };
    }
    if number > tip.count {
        return Err(FeedRejection::Gap {
            expected: tip.count,
            got: number,
        });
    }
    if body.previous_signature != tip.last_signature {
        return Err(FeedRejection::BrokenChain { number });
    }
    let size = to_canonical_vec(&Value::Object(body.message.clone()))
        .map_err(|_| FeedRejection::TooLarge)?
        .len();
    if size > MAX_MESSAGE_BYTES {
        return Err(FeedRejection::TooLarge);
    }
    Ok(Some(body))
}

/// Checks a head's signature and subject; its count and last signature are then trusted
/// as the feed owner's statement.
pub fn verify_head(
    feed_id: &NodeId,
    subfeed_hash: &Sha1Hash,
    object: &SignedFeedObject,
) -> Result<HeadBody, FeedRejection> {
    let body: HeadBody = serde_json::from_value(object.body.clone())
        .map_err(|_| FeedRejection::Shape { expected: "head" })?;
    if body.kind != "head" {
        return Err(FeedRejection::Shape { expected: "head" });
    }
    if &body.feed_id != feed_id || &body.subfeed_hash != subfeed_hash {
        return Err(FeedRejection::WrongSubfeed);
    }
    signing::verify(
        feed_id,
        Purpose::FeedMessage,
        &object.body,
        &object.signature,
    )
    .map_err(|_| FeedRejection::BadSignature)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    fn tip_of(messages: &[SignedFeedObject]) -> ChainTip {
        ChainTip {
            feed_id: signing::node_id_of(&key()),
            subfeed_hash: subfeed_hash("main").unwrap(),
            count: messages.len() as u64,
            last_signature: messages.last().map(|m| m.signature.clone()),
        }
    }

    fn chain(n: u64) -> Vec<SignedFeedObject> {
        let hash = subfeed_hash("main").unwrap();
        let mut messages: Vec<SignedFeedObject> = Vec::new();
        for number in 0..n {
            let previous = messages.last().map(|m| m.signature.clone());
            let message = json!({"n": number});
            messages.push(sign_message(&key(), hash, number, previous, 1_000, &message).unwrap());
        }
        messages
    }

    fn held(messages: &[SignedFeedObject]) -> impl Fn(u64) -> Option<String> + '_ {
        |n| messages.get(n as usize).map(|m| m.signature.clone())
    }

    #[test]
    fn subfeed_hash_of_names_and_tilde_hashes() {
        let hash = subfeed_hash("main").unwrap();
        assert_eq!(hash, Sha1Hash::of(b"main"));
        assert_eq!(subfeed_hash(&format!("~{hash}")).unwrap(), hash);
        assert!(subfeed_hash("").is_err());
        assert!(subfeed_hash(&format!("~{}", "Z".repeat(40))).is_err());
        // A tilde name of another length is just a name.
        assert_eq!(subfeed_hash("~x").unwrap(), Sha1Hash::of(b"~x"));
    }

    #[test]
    fn a_chain_verifies_in_order() {
        let messages = chain(3);
        for (idx, message) in messages.iter().enumerate() {
            let tip = tip_of(&messages[..idx]);
            let body = verify_next(&tip, message, held(&messages))
                .unwrap()
                .unwrap();
            assert_eq!(body.message_number, idx as u64);
        }
        assert_eq!(messages[0].body.get("previousSignature"), None);
    }

    #[test]
    fn duplicates_are_ignored_and_forks_gaps_and_forgeries_rejected() {
        let messages = chain(3);
        let tip = tip_of(&messages[..2]);

        assert_eq!(verify_next(&tip, &messages[1], held(&messages)), Ok(None));

        let gap = verify_next(&tip_of(&messages[..1]), &messages[2], held(&messages));
        assert_eq!(
            gap.unwrap_err(),
            FeedRejection::Gap {
                expected: 1,
                got: 2
            }
        );

        let hash = subfeed_hash("main").unwrap();
        let other = json!({"n": "other"});
        let fork = sign_message(
            &key(),
            hash,
            1,
            Some(messages[0].signature.clone()),
            1,
            &other,
        )
        .unwrap();
        let rejected = verify_next(&tip, &fork, held(&messages));
        assert_eq!(rejected.unwrap_err(), FeedRejection::Fork { number: 1 });

        let mut forged = messages[2].clone();
        forged.body["message"] = json!({"n": 99});
        let rejected = verify_next(&tip, &forged, held(&messages));
        assert_eq!(rejected.unwrap_err(), FeedRejection::BadSignature);

        let stranger = SigningKey::from_bytes(&[6; 32]);
        let mut impostor = sign_message(
            &stranger,
            hash,
            2,
            Some(messages[1].signature.clone()),
            1,
            &other,
        )
        .unwrap();
        impostor.body["feedId"] = json!(tip.feed_id.to_string());
        let rejected = verify_next(&tip, &impostor, held(&messages));
        assert_eq!(rejected.unwrap_err(), FeedRejection::BadSignature);

        let unchained = sign_message(&key(), hash, 2, None, 1, &other).unwrap();
        let rejected = verify_next(&tip, &unchained, held(&messages));
        assert_eq!(
            rejected.unwrap_err(),
            FeedRejection::BrokenChain { number: 2 }
        );
    }

    #[test]
    fn a_message_cannot_be_transplanted_to_another_subfeed() {
        let messages = chain(1);
        let mut tip = tip_of(&[]);
        tip.subfeed_hash = subfeed_hash("other").unwrap();
        let rejected = verify_next(&tip, &messages[0], |_| None);
        assert_eq!(rejected.unwrap_err(), FeedRejection::WrongSubfeed);
    }

    #[test]
    fn heads_verify_and_cannot_pass_as_messages() {
        let messages = chain(2);
        let hash = subfeed_hash("main").unwrap();
        let head = sign_head(&key(), hash, 2, messages[1].signature.clone(), 5);
        let feed_id = signing::node_id_of(&key());
        assert_eq!(
            verify_head(&feed_id, &hash, &head).unwrap().message_count,
            2
        );
        assert!(verify_next(&tip_of(&messages), &head, held(&messages)).is_err());
        assert!(verify_head(&feed_id, &hash, &messages[0]).is_err());
    }

    #[test]
    fn payload_limits() {
        assert_eq!(check_payload(&json!([1])), Err(FeedError::NotAnObject));
        let big = json!({"x": "a".repeat(MAX_MESSAGE_BYTES)});
        assert!(matches!(
            check_payload(&big),
            Err(FeedError::TooLarge { .. })
        ));
    }

    #[test]
    fn segments_are_aligned_to_the_segment_size() {
        assert_eq!(segment_ranges(0, 3), vec![(0, 3)]);
        assert_eq!(segment_ranges(2, 3), vec![(0, 3)]);
        assert_eq!(
            segment_ranges(999, 2_001),
            vec![(0, 1_000), (1_000, 2_000), (2_000, 2_001)]
        );
        assert!(segment_ranges(5, 5).is_empty());
    }
}

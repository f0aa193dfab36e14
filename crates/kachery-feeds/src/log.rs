//! Verified local subfeeds: what this node holds of each subfeed, owned or replicated.
//!
//! Each subfeed is one append-only JSON-lines file of signed messages,
//! `<store dir>/feeds/<feedId>/<subfeedHash>.jsonl`, plus an in-memory copy loaded on first
//! use. Nothing enters the file that did not pass [`feed::verify_next`] against the tip
//! held at that moment, and the file is re-verified when loaded, so a torn last line (a
//! crash mid-write) is dropped and rewritten away rather than trusted.
//!
//! Every subfeed has a `watch` channel carrying its message count, which is what long-polls
//! wait on.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kachery_protocol::feed::{self, ChainTip, FeedRejection, MessageBody, SignedFeedObject};
use kachery_protocol::{NodeId, Sha1Hash};
use serde_json::{Map, Value};
use tokio::sync::watch;

/// A subfeed: its feed id and subfeed hash.
pub type SubfeedId = (NodeId, Sha1Hash);

/// Why the local subfeed storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("failed to {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One message as read back: its number, the signer's timestamp and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub message_number: u64,
    pub timestamp: i64,
    pub message: Map<String, Value>,
}

/// A message that was refused, and where it came from.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub message_number: Option<u64>,
    pub reason: FeedRejection,
}

/// The subfeed files of one node.
pub struct FeedLog {
    dir: PathBuf,
    subfeeds: Mutex<HashMap<SubfeedId, Arc<Mutex<Subfeed>>>>,
}

struct Subfeed {
    path: PathBuf,
    tip: ChainTip,
    messages: Vec<SignedFeedObject>,
    bodies: Vec<MessageBody>,
    count: watch::Sender<u64>,
}

impl FeedLog {
    /// Subfeeds under `dir` (`<store dir>/feeds`).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            subfeeds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node holds any message of the subfeed (it may then serve it).
    pub fn holds(&self, id: &SubfeedId) -> bool {
        self.count(id).is_ok_and(|count| count > 0)
    }

    /// How many messages of the subfeed this node holds.
    pub fn count(&self, id: &SubfeedId) -> Result<u64, LogError> {
        let subfeed = self.subfeed(id)?;
        let count = subfeed.lock().expect("subfeed lock").tip.count;
        Ok(count)
    }

    /// The count as a watch, for long-polls.
    pub fn watch_count(&self, id: &SubfeedId) -> Result<watch::Receiver<u64>, LogError> {
        let subfeed = self.subfeed(id)?;
        let receiver = subfeed.lock().expect("subfeed lock").count.subscribe();
        Ok(receiver)
    }

    /// Up to `max` messages from `position` on.
    pub fn read(
        &self,
        id: &SubfeedId,
        position: u64,
        max: usize,
    ) -> Result<Vec<StoredMessage>, LogError> {
        let subfeed = self.subfeed(id)?;
        let subfeed = subfeed.lock().expect("subfeed lock");
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        Ok(subfeed
            .bodies
            .iter()
            .skip(start)
            .take(max)
            .map(|body| StoredMessage {
                message_number: body.message_number,
                timestamp: body.timestamp,
                message: body.message.clone(),
            })
            .collect())
    }

    /// The signed messages `from..to` (clamped to what is held), for pushing and uploads.
    pub fn signed(
        &self,
        id: &SubfeedId,
        from: u64,
        to: u64,
    ) -> Result<Vec<SignedFeedObject>, LogError> {
        let subfeed = self.subfeed(id)?;
        let subfeed = subfeed.lock().expect("subfeed lock");
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        let end = usize::try_from(to).unwrap_or(usize::MAX);
        Ok(subfeed
            .messages
            .iter()
            .take(end)
            .skip(start)
            .cloned()
            .collect())
    }

    /// The tip: count and last signature.
    pub fn tip(&self, id: &SubfeedId) -> Result<ChainTip, LogError> {
        let subfeed = self.subfeed(id)?;
        let tip = subfeed.lock().expect("subfeed lock").tip.clone();
        Ok(tip)
    }

    /// Signs and appends new messages as the owner: `make(number, previous)` signs message
    /// `number` chained to `previous`. Returns the new count.
    pub fn append_own<E>(
        &self,
        id: &SubfeedId,
        n_messages: usize,
        mut make: impl FnMut(u64, Option<String>, usize) -> Result<SignedFeedObject, E>,
    ) -> Result<Result<u64, E>, LogError> {
        let subfeed = self.subfeed(id)?;
        let mut subfeed = subfeed.lock().expect("subfeed lock");
        let mut signed = Vec::with_capacity(n_messages);
        let mut tip = subfeed.tip.clone();
        for idx in 0..n_messages {
            let object = match make(tip.count, tip.last_signature.clone(), idx) {
                Ok(object) => object,
                Err(error) => return Ok(Err(error)),
            };
            tip.count += 1;
            tip.last_signature = Some(object.signature.clone());
            signed.push(object);
        }
        subfeed.accept(signed)?;
        Ok(Ok(subfeed.tip.count))
    }

    /// Verifies `objects` in order against the held tip and keeps those that chain on.
    /// Returns how many were new, and every rejection; nothing after a rejection is kept
    /// (it could only be a gap).
    pub fn append_received(
        &self,
        id: &SubfeedId,
        objects: &[SignedFeedObject],
    ) -> Result<(u64, Vec<Rejected>), LogError> {
        let subfeed = self.subfeed(id)?;
        let mut subfeed = subfeed.lock().expect("subfeed lock");
        let mut tip = subfeed.tip.clone();
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        for object in objects {
            let held = |number: u64| {
                let idx = usize::try_from(number).ok()?;
                subfeed
                    .messages
                    .get(idx)
                    .or_else(|| accepted.get(idx.checked_sub(subfeed.messages.len())?))
                    .map(|held: &SignedFeedObject| held.signature.clone())
            };
            match feed::verify_next(&tip, object, held) {
                Ok(Some(_)) => {
                    tip.count += 1;
                    tip.last_signature = Some(object.signature.clone());
                    accepted.push(object.clone());
                }
                Ok(None) => {}
                Err(reason) => {
                    rejected.push(Rejected {
                        message_number: object.claimed_number(),
                        reason,
                    });
                    break;
                }
            }
        }
        let n_new = accepted.len() as u64;
        subfeed.accept(accepted)?;
        Ok((n_new, rejected))
    }

    fn subfeed(&self, id: &SubfeedId) -> Result<Arc<Mutex<Subfeed>>, LogError> {
        let mut subfeeds = self.subfeeds.lock().expect("subfeed map lock");
        if let Some(subfeed) = subfeeds.get(id) {
            return Ok(Arc::clone(subfeed));
        }
        let path = self
            .dir
            .join(id.0.to_string())
            .join(format!("{}.jsonl", id.1));
        let subfeed = Arc::new(Mutex::new(Subfeed::load(path, id)?));
        subfeeds.insert(*id, Arc::clone(&subfeed));
        Ok(subfeed)
    }
}

impl Subfeed {
    /// Reads and re-verifies the file; a bad or torn tail is dropped from the file.
    fn load(path: PathBuf, id: &SubfeedId) -> Result<Self, LogError> {
        let mut subfeed = Subfeed {
            path,
            tip: ChainTip {
                feed_id: id.0,
                subfeed_hash: id.1,
                count: 0,
                last_signature: None,
            },
            messages: Vec::new(),
            bodies: Vec::new(),
            count: watch::channel(0).0,
        };
        let file = match fs::File::open(&subfeed.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(subfeed),
            Err(source) => return Err(subfeed.io_error("open", source)),
        };

        let mut clean = true;
        for line in io::BufReader::new(file).lines() {
            let Ok(line) = line else {
                clean = false;
                break;
            };
            let parsed: Option<SignedFeedObject> = serde_json::from_str(&line).ok();
            let verified = parsed.as_ref().and_then(|object| {
                feed::verify_next(&subfeed.tip, object, |_| None)
                    .ok()
                    .flatten()
            });
            let (Some(object), Some(body)) = (parsed, verified) else {
                clean = false;
                break;
            };
            subfeed.push(object, body);
        }
        if !clean {
            tracing::warn!(path = %subfeed.path.display(), kept = subfeed.tip.count, "dropping an unverifiable tail of a subfeed file");
            subfeed.rewrite()?;
        }
        subfeed.count.send_replace(subfeed.tip.count);
        Ok(subfeed)
    }

    fn push(&mut self, object: SignedFeedObject, body: MessageBody) {
        self.tip.count += 1;
        self.tip.last_signature = Some(object.signature.clone());
        self.messages.push(object);
        self.bodies.push(body);
    }

    /// Appends already verified messages to the file, then to memory, then wakes waiters.
    fn accept(&mut self, objects: Vec<SignedFeedObject>) -> Result<(), LogError> {
        if objects.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for object in &objects {
            text.push_str(&serde_json::to_string(object).expect("signed objects serialize"));
            text.push('\n');
        }
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent).map_err(|source| self.io_error("create", source))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| self.io_error("open", source))?;
        file.write_all(text.as_bytes())
            .map_err(|source| self.io_error("append to", source))?;
        file.sync_data()
            .map_err(|source| self.io_error("sync", source))?;

        for object in objects {
            let body: MessageBody = serde_json::from_value(object.body.clone())
                .expect("accepted messages were parsed when verified");
            self.push(object, body);
        }
        self.count.send_replace(self.tip.count);
        Ok(())
    }

    fn rewrite(&self) -> Result<(), LogError> {
        let temp = self.path.with_extension("jsonl.tmp");
        let mut text = String::new();
        for object in &self.messages {
            text.push_str(&serde_json::to_string(object).expect("signed objects serialize"));
            text.push('\n');
        }
        fs::write(&temp, text).map_err(|source| self.io_error("write", source))?;
        fs::rename(&temp, &self.path).map_err(|source| self.io_error("replace", source))
    }

    fn io_error(&self, action: &'static str, source: io::Error) -> LogError {
        LogError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kachery_protocol::feed::{sign_message, subfeed_hash};
    use kachery_protocol::signing::node_id_of;
    use serde_json::json;

    use super::*;

    #[test]
    fn appends_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        let id = (node_id_of(&key), subfeed_hash("main").unwrap());
        let log = FeedLog::new(dir.path().to_owned());
        let count = log
            .append_own(&id, 3, |number, previous, idx| {
                sign_message(&key, id.1, number, previous, 1, &json!({"idx": idx}))
            })
            .unwrap()
            .unwrap();
        assert_eq!(count, 3);

        let path = dir
            .path()
            .join(id.0.to_string())
            .join(format!("{}.jsonl", id.1));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"body\":{\"kind\":\"mess").unwrap();

        let reopened = FeedLog::new(dir.path().to_owned());
        assert_eq!(reopened.count(&id).unwrap(), 3);
        let messages = reopened.read(&id, 1, 10).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].message["idx"], 1);

        // A copy received elsewhere verifies and chains; a replay adds nothing.
        let signed = reopened.signed(&id, 0, 3).unwrap();
        let replica = FeedLog::new(dir.path().join("replica"));
        assert_eq!(replica.append_received(&id, &signed).unwrap().0, 3);
        let (n_new, rejected) = replica.append_received(&id, &signed).unwrap();
        assert_eq!((n_new, rejected.len()), (0, 0));
    }
}

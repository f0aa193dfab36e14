//! Tasks (SPEC §17): function ids, task hashes, signed result records, the status a
//! provider reports, and the local-API types a worker process and a requester speak.
//!
//! A task is a call `functionId(kwargs)`. Its [`task_hash`] is the SHA-1 of the canonical
//! JSON `{"functionId": id, "kwargs": kwargs}`, so two nodes asking for the same call get
//! the same hash and pure results can be cached under it. A result is a payload blob plus
//! a [`SignedTaskResult`] record naming the payload's SHA-1 and size, signed by the
//! provider (purpose `task-result`); readers accept a record only after
//! [`SignedTaskResult::verify`] and a payload only when it hashes to the record's value.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{NodeId, Nonce, Sha1Hash};
use crate::jcs::{CanonicalError, to_canonical_vec};
use crate::signing::{self, Purpose, VerifyError};

/// Longest function id, in characters.
pub const MAX_FUNCTION_ID_CHARS: usize = 200;

/// Largest kwargs object, in canonical bytes. SPEC §17 says 16 KiB, but a `requestTask`
/// travels in one pub-sub envelope of at most 16,384 bytes; 12 KiB leaves room for the
/// envelope's other fields and signature.
pub const MAX_KWARGS_BYTES: usize = 12 * 1024;

/// Largest task result payload: one blob.
pub const MAX_RESULT_BYTES: u64 = crate::CHUNK_SIZE;

/// A task request id: 16 random bytes as hex, like file requests.
pub type TaskRequestId = Nonce;

/// A validated function id: ≤ 200 characters of dot-separated, non-empty segments of
/// `[A-Za-z0-9@_-]`, e.g. `lab.spikes.sort@2`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(String);

impl FunctionId {
    pub fn parse(text: &str) -> Result<Self, TaskInputError> {
        let fail = |reason: &str| TaskInputError::FunctionId {
            value: text.chars().take(60).collect(),
            reason: reason.to_owned(),
        };
        if text.is_empty() || text.chars().count() > MAX_FUNCTION_ID_CHARS {
            return Err(fail("must be 1 to 200 characters"));
        }
        let segment_ok = |segment: &str| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'_' | b'-'))
        };
        if !text.split('.').all(segment_ok) {
            return Err(fail(
                "must be non-empty segments of letters, digits, '@', '_' or '-' joined by '.'",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FunctionId({})", self.0)
    }
}

impl Serialize for FunctionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FunctionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FunctionId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How a task's result may be reused (SPEC §17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    /// Depends only on its kwargs: computed once, then served from the cache.
    PureCalculation,
    /// Asks the world something: run every time, the last cached answer is a fallback.
    Query,
    /// Has a side effect: run at most once per request; no stored result.
    Action,
}

impl TaskType {
    pub fn name(self) -> &'static str {
        match self {
            TaskType::PureCalculation => "pure-calculation",
            TaskType::Query => "query",
            TaskType::Action => "action",
        }
    }

    /// Whether results of this type are stored in the channel's bucket.
    pub fn stores_result(self) -> bool {
        !matches!(self, TaskType::Action)
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TaskType {
    type Err = TaskInputError;
    fn from_str(text: &str) -> Result<Self, TaskInputError> {
        match text {
            "pure-calculation" | "pure" => Ok(TaskType::PureCalculation),
            "query" => Ok(TaskType::Query),
            "action" => Ok(TaskType::Action),
            other => Err(TaskInputError::TaskType(other.chars().take(40).collect())),
        }
    }
}

/// Why a task request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskInputError {
    #[error("invalid function id {value:?}: {reason}")]
    FunctionId { value: String, reason: String },
    #[error("unknown task type {0:?}; use pure-calculation, query or action")]
    TaskType(String),
    #[error("kwargs must be a JSON object")]
    KwargsNotObject,
    #[error("kwargs are {0} bytes in canonical form; at most 12288 fit in a request")]
    KwargsTooLarge(usize),
    #[error("kwargs have no canonical JSON form (a number out of range?)")]
    KwargsNotCanonical,
}

/// Checks that `kwargs` is an object within [`MAX_KWARGS_BYTES`] canonical bytes.
pub fn check_kwargs(kwargs: &Value) -> Result<&Map<String, Value>, TaskInputError> {
    let object = kwargs.as_object().ok_or(TaskInputError::KwargsNotObject)?;
    let n_bytes = to_canonical_vec(kwargs)
        .map_err(|_| TaskInputError::KwargsNotCanonical)?
        .len();
    if n_bytes > MAX_KWARGS_BYTES {
        return Err(TaskInputError::KwargsTooLarge(n_bytes));
    }
    Ok(object)
}

/// SHA-1 of the canonical `{"functionId": id, "kwargs": kwargs}` [SPEC §17].
pub fn task_hash(
    function_id: &FunctionId,
    kwargs: &Map<String, Value>,
) -> Result<Sha1Hash, CanonicalError> {
    let call = serde_json::json!({ "functionId": function_id.as_str(), "kwargs": kwargs });
    Ok(Sha1Hash::of(&to_canonical_vec(&call)?))
}

/// The body of a signed result record, stored at `task_results/<pathify(taskHash)>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResultRecord {
    /// Always `"taskResult"`, so a record can never pass for another signed object.
    pub kind: String,
    pub task_hash: Sha1Hash,
    pub function_id: FunctionId,
    pub result_sha1: Sha1Hash,
    pub result_size: u64,
    pub provider_node_id: NodeId,
    pub timestamp: i64,
}

/// The `kind` every result record carries.
pub const RESULT_RECORD_KIND: &str = "taskResult";

/// A result record as stored: `{body, signature}`, signed by `body.providerNodeId`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedTaskResult {
    pub body: Value,
    pub signature: String,
}

/// Why a stored result record was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("the result record is not valid JSON of the expected shape")]
    Shape,
    #[error("the result record is for task {found}, not {expected}")]
    WrongTask { expected: Sha1Hash, found: Sha1Hash },
    #[error("the result record's signature does not verify")]
    Signature(#[source] VerifyError),
}

impl SignedTaskResult {
    /// Signs `record` with the provider's node key.
    pub fn seal(key: &ed25519_dalek::SigningKey, record: &TaskResultRecord) -> Self {
        let body = serde_json::to_value(record).expect("result records serialize to JSON");
        let signature =
            signing::sign(key, Purpose::TaskResult, &body).expect("result records are canonical");
        Self { body, signature }
    }

    /// Parses stored bytes without trusting them; see [`SignedTaskResult::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(|_| RecordError::Shape)
    }

    /// Checks kind, task hash and the provider's signature over the body as received.
    /// The payload hash is the reader's to check once it has the bytes.
    pub fn verify(&self, expected_task_hash: &Sha1Hash) -> Result<TaskResultRecord, RecordError> {
        let record: TaskResultRecord =
            serde_json::from_value(self.body.clone()).map_err(|_| RecordError::Shape)?;
        if record.kind != RESULT_RECORD_KIND {
            return Err(RecordError::Shape);
        }
        if record.task_hash != *expected_task_hash {
            return Err(RecordError::WrongTask {
                expected: *expected_task_hash,
                found: record.task_hash,
            });
        }
        signing::verify(
            &record.provider_node_id,
            Purpose::TaskResult,
            &self.body,
            &self.signature,
        )
        .map_err(RecordError::Signature)?;
        Ok(record)
    }
}

/// What a provider reports about one request on `provideTasks` (`taskStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum TaskState {
    /// The provider can run it; waiting for `acceptClaim`.
    Claimed,
    /// Accepted and waiting for a worker; repeated as a heartbeat.
    Queued,
    /// A worker runs it; repeated as a heartbeat.
    Running {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<String>,
    },
    /// Done. Pure and query results name their payload; actions carry none.
    #[serde(rename_all = "camelCase")]
    Finished {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result_sha1: Option<Sha1Hash>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result_size: Option<u64>,
    },
    /// The function failed, or the provider could not deliver its result.
    Error { message: String },
}

impl TaskState {
    /// `finished` or `error`.
    pub fn is_final(&self) -> bool {
        matches!(self, TaskState::Finished { .. } | TaskState::Error { .. })
    }
}

/// A function a provider offers, as announced in `taskFunctions` and by workers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFunction {
    pub function_id: FunctionId,
    pub function_type: TaskType,
}

/// `POST /v1/tasks/backends/poll`: a worker offers `functions` and waits up to `waitMs`
/// for a job. Polling keeps the functions registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerPollRequest {
    pub functions: Vec<TaskFunction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The answer to a poll: a job, or `null` when none came within the wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPollResponse {
    pub job: Option<WorkerJob>,
}

/// One call for a worker to run; report on it at `/v1/tasks/{jobId}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerJob {
    pub job_id: TaskRequestId,
    pub function_id: FunctionId,
    pub function_type: TaskType,
    pub task_hash: Sha1Hash,
    pub kwargs: Map<String, Value>,
}

/// `POST /v1/tasks/{jobId}/status` from a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase", deny_unknown_fields)]
pub enum WorkerReport {
    /// Still working; resets the job's lease.
    Running {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<String>,
    },
    /// Done; `result` is any JSON (stored as its canonical bytes). Actions may omit it.
    Finished {
        #[serde(default)]
        result: Value,
    },
    /// The function failed; `message` goes back to the requester.
    Error { message: String },
}

/// `POST /v1/tasks`: request a task through the node's channels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRunRequest {
    pub function_id: FunctionId,
    pub function_type: TaskType,
    #[serde(default = "empty_object")]
    pub kwargs: Value,
    /// Only these channels; every channel of the node when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<crate::ChannelName>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// What a requester sees of one task request (`GET /v1/tasks/{requestId}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub request_id: TaskRequestId,
    pub task_hash: Sha1Hash,
    pub function_id: FunctionId,
    pub function_type: TaskType,
    /// `requested`, `claimed`, `queued`, `running`, `finished` or `error`.
    pub state: String,
    /// Grows with every change; pass it as `since` to wait for the next one.
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_node_id: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<crate::ChannelName>,
    /// Set when finished with a stored result: `sha1://` of the payload, in the local store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_uri: Option<String>,
    /// The result itself when it is JSON of at most 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The result came from the bucket's cache, not from a run for this request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_cache: bool,
    /// On `error`: a stable code (`not_found`, `denied`, `integrity`, `timeout`,
    /// `unavailable`, `task_failed`, `invalid`) and a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl TaskView {
    pub fn is_final(&self) -> bool {
        self.state == "finished" || self.state == "error"
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    use super::*;

    #[test]
    fn function_ids() {
        for good in ["a", "lab.spikes.sort@2", "x_y-z.A9"] {
            FunctionId::parse(good).unwrap();
        }
        for bad in ["", ".a", "a..b", "a b", "a/b", &"x".repeat(201)] {
            assert!(FunctionId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn task_hash_is_canonical_and_order_free() {
        let id = FunctionId::parse("f.add").unwrap();
        let a = json!({"b": 2, "a": 1});
        let b: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let hash = task_hash(&id, a.as_object().unwrap()).unwrap();
        assert_eq!(hash, task_hash(&id, b.as_object().unwrap()).unwrap());
        assert_eq!(
            hash,
            Sha1Hash::of(br#"{"functionId":"f.add","kwargs":{"a":1,"b":2}}"#)
        );
    }

    #[test]
    fn kwargs_limits() {
        assert!(check_kwargs(&json!([1])).is_err());
        let big = json!({"x": "y".repeat(MAX_KWARGS_BYTES)});
        assert!(matches!(
            check_kwargs(&big),
            Err(TaskInputError::KwargsTooLarge(_))
        ));
        check_kwargs(&json!({"x": 1.5})).unwrap();
    }

    fn record(key: &SigningKey) -> TaskResultRecord {
        TaskResultRecord {
            kind: RESULT_RECORD_KIND.to_owned(),
            task_hash: Sha1Hash::of(b"task"),
            function_id: FunctionId::parse("f").unwrap(),
            result_sha1: Sha1Hash::of(b"42"),
            result_size: 2,
            provider_node_id: signing::node_id_of(key),
            timestamp: 1,
        }
    }

    #[test]
    fn records_verify_and_tampering_is_caught() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let sealed = SignedTaskResult::seal(&key, &record(&key));
        let bytes = serde_json::to_vec(&sealed).unwrap();
        let parsed = SignedTaskResult::from_bytes(&bytes).unwrap();
        assert_eq!(parsed.verify(&Sha1Hash::of(b"task")).unwrap(), record(&key));

        assert!(matches!(
            parsed.verify(&Sha1Hash::of(b"other")),
            Err(RecordError::WrongTask { .. })
        ));
        let mut tampered = parsed.clone();
        tampered.body["resultSize"] = json!(3);
        assert!(matches!(
            tampered.verify(&Sha1Hash::of(b"task")),
            Err(RecordError::Signature(_))
        ));
        // A record signed with one key but naming another provider fails too.
        let other = SigningKey::from_bytes(&[6; 32]);
        let forged = SignedTaskResult::seal(&other, &record(&key));
        assert!(forged.verify(&Sha1Hash::of(b"task")).is_err());
    }

    #[test]
    fn state_wire_form() {
        let finished = TaskState::Finished {
            result_sha1: Some(Sha1Hash::of(b"x")),
            result_size: Some(1),
        };
        let text = serde_json::to_string(&finished).unwrap();
        assert!(
            text.starts_with(r#"{"state":"finished","resultSha1":"#),
            "{text}"
        );
        assert_eq!(
            serde_json::to_string(&TaskType::PureCalculation).unwrap(),
            r#""pure-calculation""#
        );
    }
}

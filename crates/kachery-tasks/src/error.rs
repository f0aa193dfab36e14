//! How a task request fails ([`TaskError`], one variant per stable code) and why a
//! worker's report is refused ([`ReportError`]).

use kachery_protocol::task::{FunctionId, TaskInputError, TaskType};
use kachery_protocol::{ChannelName, Role};

/// Why a task request ended without a result.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The request itself is malformed (function id, kwargs).
    #[error(transparent)]
    Invalid(#[from] TaskInputError),

    /// No provider claimed it and no usable cached result exists.
    #[error(
        "no provider on channel(s) {} runs {function_id} with type {function_type}{}",
        list(channels_tried),
        if *cache_checked { " and no cached result exists" } else { "" }
    )]
    NotFound {
        function_id: FunctionId,
        /// Providers register a function with one type; a request names the type too.
        function_type: TaskType,
        channels_tried: Vec<ChannelName>,
        cache_checked: bool,
    },

    /// No channel lets this node request tasks.
    #[error(
        "no channel grants this node the {} role needed to request tasks (channels: {}); \
         ask a channel owner to grant it",
        Role::RequestTasks,
        list(channels)
    )]
    Denied { channels: Vec<ChannelName> },

    /// A cached result failed verification and nothing better was found.
    #[error("integrity check failed for the result of {function_id}: {detail}")]
    Integrity {
        function_id: FunctionId,
        detail: String,
    },

    /// The function ran and failed; the message is the worker's.
    #[error("task {function_id} failed: {message}")]
    TaskFailed {
        function_id: FunctionId,
        message: String,
    },

    /// Providers claimed it but stalled or failed through every attempt.
    #[error("gave up on {function_id} after {attempts} provider attempt(s): {detail}")]
    Timeout {
        function_id: FunctionId,
        attempts: u32,
        detail: String,
    },

    /// No live link, the hub is unreachable, or the local store failed.
    #[error("task exchange unavailable: {detail}")]
    Unavailable { detail: String },
}

impl TaskError {
    /// The stable code shown in `TaskView::error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            TaskError::Invalid(_) => "invalid",
            TaskError::NotFound { .. } => "not_found",
            TaskError::Denied { .. } => "denied",
            TaskError::Integrity { .. } => "integrity",
            TaskError::TaskFailed { .. } => "task_failed",
            TaskError::Timeout { .. } => "timeout",
            TaskError::Unavailable { .. } => "unavailable",
        }
    }
}

/// Why a worker's status report was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("no job {0} is running on this node (finished, failed or never handed out)")]
    UnknownJob(String),
    #[error("the result is {0} bytes; a task result is at most 20000000 bytes")]
    TooLarge(usize),
    #[error("the result has no canonical JSON form")]
    NotCanonical,
    #[error("failed to keep the result in the local store: {0}")]
    Store(String),
}

fn list(channels: &[ChannelName]) -> String {
    let names: Vec<&str> = channels.iter().map(ChannelName::as_str).collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

//! The channel test (SPEC §10.2): the hub exercises a channel's bucket and broker the way
//! nodes will, and reports each step with its outcome, latency and error text.
//!
//! [`bucket`] uploads a random 1 KiB blob through a presigned URL, reads it back through
//! the channel's read mode, checks that a wrong-size upload and an overwrite are refused,
//! and deletes the blob. [`pubsub`] gets a `probe`-band credential for two throw-away
//! identities, publishes a signed probe from one and waits up to 5 s for the other to
//! receive it. Both halves use the same seams as nodes do (presigned requests over HTTP,
//! broker credentials and the pub-sub client), so a pass means nodes can work.

mod bucket;
mod pubsub;

use std::time::Instant;

use kachery_protocol::Email;
use kachery_protocol::hub_views::{ChannelTestResponse, TestReport, TestStep};

use crate::app::AppState;
use crate::db::ChannelRecord;

/// Runs both halves; `tester` is recorded as the probe identities' owner.
pub async fn run(state: &AppState, channel: &ChannelRecord, tester: &Email) -> ChannelTestResponse {
    let bucket = bucket::run(state, channel).await;
    let pubsub = pubsub::run(state, channel, tester).await;
    ChannelTestResponse { bucket, pubsub }
}

/// Collects steps; a step that fails usually ends its half of the test.
#[derive(Default)]
struct Steps {
    steps: Vec<TestStep>,
}

impl Steps {
    /// Records `name` as done since `started`; returns whether it succeeded.
    fn record(&mut self, name: &str, started: Instant, outcome: StepOutcome) -> bool {
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (ok, error, warning) = match outcome {
            StepOutcome::Ok => (true, None, None),
            StepOutcome::Warning(warning) => (true, None, Some(warning)),
            StepOutcome::Failed(error) => (false, Some(error), None),
        };
        self.steps.push(TestStep {
            name: name.to_owned(),
            ok,
            latency_ms,
            error,
            warning,
        });
        ok
    }

    fn report(self) -> TestReport {
        TestReport {
            ok: !self.steps.is_empty() && self.steps.iter().all(|step| step.ok),
            steps: self.steps,
        }
    }
}

enum StepOutcome {
    Ok,
    /// Works, but weaker than it should be.
    Warning(String),
    Failed(String),
}

impl<E: std::fmt::Display> From<Result<(), E>> for StepOutcome {
    fn from(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => StepOutcome::Ok,
            Err(error) => StepOutcome::Failed(error.to_string()),
        }
    }
}

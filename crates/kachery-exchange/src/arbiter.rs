//! Claim arbitration for one object, as the requester runs it (SPEC §15.2 steps 3–6).
//!
//! [`Arbiter`] is a pure state machine: it is fed status messages and expired deadlines
//! and answers with the next [`Action`] (accept a claim, download, re-request, give up).
//! The requester performs the actions, so every rule here is unit-tested without a
//! network or a clock. The first claim wins; later ones wait as standby for
//! `standby`; an accepted provider must start within `start_timeout` and then report
//! progress at least every `stall_timeout`.

use kachery_protocol::pubsub::{FailureReason, FileStatus, RequestId};
use kachery_protocol::{ChannelName, NodeId, Sha1Hash};
use tokio::time::Instant;

use crate::options::ExchangeOptions;
use crate::router::StatusEvent;

/// A provider's claim on one of our requests.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claim {
    pub request_id: RequestId,
    pub channel: ChannelName,
    pub provider: NodeId,
}

/// What the requester must do next.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Wait for the next message or [`Arbiter::deadline`].
    Wait,
    /// Publish `acceptClaim` for this claim.
    Accept(Claim),
    /// The provider reports `uploaded`: fetch the object from the claim's channel.
    Download(Claim),
    /// Publish a fresh `requestFile` (after [`Arbiter::start_round`]).
    Rerequest,
    /// A provider holds the file whole and says it travels as chunks of this manifest.
    NeedsManifest(Sha1Hash),
    /// Stop: nobody claimed (`attempts == 0`) or every attempt failed.
    GiveUp(GiveUp),
}

/// Why arbitration ended without a download.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GiveUp {
    NoClaim,
    Exhausted { attempts: u32, last_failure: String },
}

#[derive(Debug)]
enum Phase {
    /// A `requestFile` is out; no claim accepted yet.
    AwaitingClaim { deadline: Instant },
    /// A claim is accepted; waiting for the first `uploading`.
    AwaitingStart { claim: Claim, deadline: Instant },
    /// The provider is uploading; `deadline` moves with each progress message.
    Uploading { claim: Claim, deadline: Instant },
}

/// The arbitration state of one object fetch.
#[derive(Debug)]
pub(crate) struct Arbiter {
    options: ExchangeOptions,
    phase: Phase,
    standby: Vec<(Claim, Instant)>,
    excluded: Vec<NodeId>,
    attempts: u32,
    last_failure: String,
    /// Whether `needs_manifest` answers apply (not for chunks, which have a manifest).
    accepts_manifest: bool,
}

impl Arbiter {
    pub(crate) fn new(options: &ExchangeOptions, accepts_manifest: bool, now: Instant) -> Self {
        Self {
            options: options.clone(),
            phase: Phase::AwaitingClaim {
                deadline: now + options.no_claim_timeout,
            },
            standby: Vec::new(),
            excluded: Vec::new(),
            attempts: 0,
            last_failure: "no provider attempt yet".to_owned(),
            accepts_manifest,
        }
    }

    /// Provider attempts made so far (accepted claims).
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Providers that stalled or never started; excluded from new requests.
    pub(crate) fn excluded(&self) -> &[NodeId] {
        &self.excluded
    }

    /// When the current phase times out.
    pub(crate) fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::AwaitingClaim { deadline }
            | Phase::AwaitingStart { deadline, .. }
            | Phase::Uploading { deadline, .. } => *deadline,
        }
    }

    /// Begins a new request round; fails once every attempt is used up.
    pub(crate) fn start_round(&mut self, now: Instant) -> Result<(), GiveUp> {
        if self.attempts >= self.options.max_attempts {
            return Err(self.exhausted());
        }
        self.phase = Phase::AwaitingClaim {
            deadline: now + self.options.no_claim_timeout,
        };
        Ok(())
    }

    /// Reacts to one `fileStatus` message.
    pub(crate) fn on_status(&mut self, event: StatusEvent, now: Instant) -> Action {
        let claim = Claim {
            request_id: event.request_id,
            channel: event.channel,
            provider: event.provider,
        };
        let from_active = self.active().is_some_and(|active| *active == claim);

        match event.status {
            FileStatus::Claimed => self.on_claim(claim, now),
            FileStatus::Uploading { .. } if from_active => {
                let deadline = now + self.options.stall_timeout;
                self.phase = Phase::Uploading { claim, deadline };
                Action::Wait
            }
            FileStatus::Uploaded if from_active => Action::Download(claim),
            FileStatus::Failed {
                reason: FailureReason::NeedsManifest,
                manifest_sha1,
            } => match manifest_sha1 {
                Some(manifest_sha1) if self.accepts_manifest => {
                    Action::NeedsManifest(manifest_sha1)
                }
                _ => self.on_failed(&claim, "needs_manifest without a usable manifest", now),
            },
            FileStatus::Failed { reason, .. } => {
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "failed".to_owned());
                self.on_failed(&claim, &reason, now)
            }
            FileStatus::Uploading { .. } | FileStatus::Uploaded => Action::Wait,
        }
    }

    /// Reacts to [`Arbiter::deadline`] having passed.
    pub(crate) fn on_deadline(&mut self, now: Instant) -> Action {
        match &self.phase {
            Phase::AwaitingClaim { .. } if self.attempts == 0 => Action::GiveUp(GiveUp::NoClaim),
            Phase::AwaitingClaim { .. } => Action::GiveUp(self.exhausted()),
            Phase::AwaitingStart { claim, .. } => {
                let provider = claim.provider;
                self.excluded.push(provider);
                self.last_failure = format!("provider {} never started", provider.short());
                self.fall_back(now)
            }
            Phase::Uploading { claim, .. } => {
                let provider = claim.provider;
                self.excluded.push(provider);
                self.last_failure = format!("provider {} stalled", provider.short());
                Action::Rerequest
            }
        }
    }

    /// The download after `uploaded` failed for a reason other than bad content.
    pub(crate) fn on_provider_failed(&mut self, detail: String, now: Instant) -> Action {
        self.last_failure = detail;
        self.fall_back(now)
    }

    fn on_claim(&mut self, claim: Claim, now: Instant) -> Action {
        if self.excluded.contains(&claim.provider) {
            return Action::Wait;
        }
        if matches!(self.phase, Phase::AwaitingClaim { .. })
            && self.attempts < self.options.max_attempts
        {
            return self.accept(claim, now);
        }
        let known = self
            .active()
            .is_some_and(|active| active.provider == claim.provider)
            || self
                .standby
                .iter()
                .any(|(standby, _)| standby.provider == claim.provider);
        if !known {
            self.standby.push((claim, now + self.options.standby));
        }
        Action::Wait
    }

    fn on_failed(&mut self, claim: &Claim, reason: &str, now: Instant) -> Action {
        if self.active() == Some(claim) {
            self.last_failure = format!("provider {} failed: {reason}", claim.provider.short());
            return self.fall_back(now);
        }
        self.standby
            .retain(|(standby, _)| standby.provider != claim.provider);
        Action::Wait
    }

    /// After a failed provider: a fresh standby claim if one is left, else a new round.
    fn fall_back(&mut self, now: Instant) -> Action {
        self.standby
            .retain(|(claim, expires)| *expires > now && !self.excluded.contains(&claim.provider));
        if self.attempts < self.options.max_attempts && !self.standby.is_empty() {
            let (claim, _) = self.standby.remove(0);
            return self.accept(claim, now);
        }
        Action::Rerequest
    }

    fn accept(&mut self, claim: Claim, now: Instant) -> Action {
        self.attempts += 1;
        let deadline = now + self.options.start_timeout;
        self.phase = Phase::AwaitingStart {
            claim: claim.clone(),
            deadline,
        };
        Action::Accept(claim)
    }

    fn active(&self) -> Option<&Claim> {
        match &self.phase {
            Phase::AwaitingClaim { .. } => None,
            Phase::AwaitingStart { claim, .. } | Phase::Uploading { claim, .. } => Some(claim),
        }
    }

    fn exhausted(&self) -> GiveUp {
        GiveUp::Exhausted {
            attempts: self.attempts,
            last_failure: self.last_failure.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kachery_protocol::Nonce;
    use kachery_protocol::pubsub::FileKey;

    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId::from_bytes([byte; 32])
    }

    fn event(provider: u8, status: FileStatus) -> StatusEvent {
        StatusEvent {
            channel: ChannelName::parse("lab.one").unwrap(),
            provider: node(provider),
            request_id: Nonce::from_bytes([7; 16]),
            file_key: FileKey {
                sha1: Sha1Hash::of(b"x"),
                manifest_sha1: None,
                chunk_of: None,
            },
            status,
        }
    }

    fn arbiter(now: Instant) -> Arbiter {
        Arbiter::new(&ExchangeOptions::default(), true, now)
    }

    #[test]
    fn first_claim_wins_and_later_ones_stand_by() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        let first = arbiter.on_status(event(1, FileStatus::Claimed), now);
        assert!(matches!(first, Action::Accept(claim) if claim.provider == node(1)));
        assert_eq!(
            arbiter.on_status(event(2, FileStatus::Claimed), now),
            Action::Wait
        );

        let failed = FileStatus::Failed {
            reason: FailureReason::UploadFailed,
            manifest_sha1: None,
        };
        let next = arbiter.on_status(event(1, failed), now + Duration::from_secs(1));
        assert!(matches!(next, Action::Accept(claim) if claim.provider == node(2)));
        assert_eq!(arbiter.attempts(), 2);
    }

    #[test]
    fn stale_standby_claims_are_not_used() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        arbiter.on_status(event(1, FileStatus::Claimed), now);
        arbiter.on_status(event(2, FileStatus::Claimed), now);
        let late = now + Duration::from_secs(11);
        assert_eq!(arbiter.on_deadline(late), Action::Rerequest);
        assert_eq!(arbiter.excluded(), &[node(1)]);
    }

    #[test]
    fn a_stall_excludes_the_provider_and_re_requests() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        arbiter.on_status(event(1, FileStatus::Claimed), now);
        let started =
            arbiter.on_status(event(1, FileStatus::Uploading { bytes: 0, total: 9 }), now);
        assert_eq!(started, Action::Wait);
        assert_eq!(arbiter.deadline(), now + Duration::from_secs(30));
        assert_eq!(arbiter.on_deadline(arbiter.deadline()), Action::Rerequest);
        assert_eq!(arbiter.excluded(), &[node(1)]);
    }

    #[test]
    fn silence_gives_not_found_and_used_attempts_give_exhausted() {
        let now = Instant::now();
        let mut silent = arbiter(now);
        assert_eq!(silent.on_deadline(now), Action::GiveUp(GiveUp::NoClaim));

        let mut busy = arbiter(now);
        for provider in 1..=3 {
            busy.start_round(now).unwrap();
            busy.on_status(event(provider, FileStatus::Claimed), now);
            busy.on_deadline(now + Duration::from_secs(10));
        }
        assert!(matches!(
            busy.start_round(now),
            Err(GiveUp::Exhausted { attempts: 3, .. })
        ));
    }

    #[test]
    fn needs_manifest_is_passed_on_only_when_accepted() {
        let now = Instant::now();
        let manifest_sha1 = Sha1Hash::of(b"m");
        let status = FileStatus::Failed {
            reason: FailureReason::NeedsManifest,
            manifest_sha1: Some(manifest_sha1),
        };
        assert_eq!(
            arbiter(now).on_status(event(1, status.clone()), now),
            Action::NeedsManifest(manifest_sha1)
        );
        let mut chunk = Arbiter::new(&ExchangeOptions::default(), false, now);
        assert_eq!(chunk.on_status(event(1, status), now), Action::Wait);
    }
}

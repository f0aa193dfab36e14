//! Claim arbitration for one requested object, as the requester runs it (SPEC §15.2
//! steps 3–6); the task exchange (SPEC §17) runs the same rules for task requests.
//!
//! [`Arbiter`] is a pure state machine: it is fed [`Signal`]s from providers and expired
//! deadlines and answers with the next [`Action`] (accept a claim, take the result,
//! re-request, give up). The requester performs the actions, so every rule here is
//! unit-tested without a network or a clock. The first claim wins; later ones wait as
//! standby for `standby`; an accepted provider must start within `start_timeout` and then
//! report progress at least every `stall_timeout`.

use kachery_protocol::pubsub::RequestId;
use kachery_protocol::{ChannelName, NodeId};
use tokio::time::Instant;

use crate::options::ExchangeOptions;

/// A provider's claim on one of our requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub request_id: RequestId,
    pub channel: ChannelName,
    pub provider: NodeId,
}

/// What a provider's status message means to arbitration.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The provider can serve the request.
    Claimed,
    /// The accepted provider started, or is still making progress.
    Progress,
    /// The accepted provider is done (uploaded, finished, or failed for good).
    Completed,
    /// The provider cannot deliver; the text says why.
    Failed(String),
}

/// What the requester must do next.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Wait for the next message or [`Arbiter::deadline`].
    Wait,
    /// Publish `acceptClaim` for this claim.
    Accept(Claim),
    /// The accepted provider completed: take its result (e.g. download the upload).
    Completed(Claim),
    /// Publish a fresh request (after [`Arbiter::start_round`]).
    Rerequest,
    /// Stop: nobody claimed (`attempts == 0`) or every attempt failed.
    GiveUp(GiveUp),
}

/// Why arbitration ended without a result.
#[derive(Debug, Clone, PartialEq)]
pub enum GiveUp {
    NoClaim,
    Exhausted { attempts: u32, last_failure: String },
}

#[derive(Debug)]
enum Phase {
    /// A request is out; no claim accepted yet.
    AwaitingClaim { deadline: Instant },
    /// A claim is accepted; waiting for the first progress signal.
    AwaitingStart { claim: Claim, deadline: Instant },
    /// The provider works; `deadline` moves with each progress signal.
    Working { claim: Claim, deadline: Instant },
}

/// The arbitration state of one request.
#[derive(Debug)]
pub struct Arbiter {
    options: ExchangeOptions,
    phase: Phase,
    standby: Vec<(Claim, Instant)>,
    excluded: Vec<NodeId>,
    attempts: u32,
    last_failure: String,
    /// Whether a provider that started and then stalled may be replaced. Actions (SPEC
    /// §17) are never reassigned once running: the side effect may already have happened.
    reassign_after_start: bool,
}

impl Arbiter {
    pub fn new(options: &ExchangeOptions, now: Instant) -> Self {
        Self {
            options: options.clone(),
            phase: Phase::AwaitingClaim {
                deadline: now + options.no_claim_timeout,
            },
            standby: Vec::new(),
            excluded: Vec::new(),
            attempts: 0,
            last_failure: "no provider attempt yet".to_owned(),
            reassign_after_start: true,
        }
    }

    /// The same arbiter, but giving up instead of re-requesting once a provider started.
    pub fn without_reassignment_after_start(mut self) -> Self {
        self.reassign_after_start = false;
        self
    }

    /// Provider attempts made so far (accepted claims).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Providers that stalled or never started; excluded from new requests.
    pub fn excluded(&self) -> &[NodeId] {
        &self.excluded
    }

    /// The accepted claim, if any.
    pub fn active(&self) -> Option<&Claim> {
        match &self.phase {
            Phase::AwaitingClaim { .. } => None,
            Phase::AwaitingStart { claim, .. } | Phase::Working { claim, .. } => Some(claim),
        }
    }

    /// When the current phase times out.
    pub fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::AwaitingClaim { deadline }
            | Phase::AwaitingStart { deadline, .. }
            | Phase::Working { deadline, .. } => *deadline,
        }
    }

    /// Begins a new request round; fails once every attempt is used up.
    pub fn start_round(&mut self, now: Instant) -> Result<(), GiveUp> {
        if self.attempts >= self.options.max_attempts {
            return Err(self.exhausted());
        }
        self.phase = Phase::AwaitingClaim {
            deadline: now + self.options.no_claim_timeout,
        };
        Ok(())
    }

    /// Reacts to one provider message about `claim`.
    pub fn on_signal(&mut self, claim: Claim, signal: Signal, now: Instant) -> Action {
        let from_active = self.active().is_some_and(|active| *active == claim);
        match signal {
            Signal::Claimed => self.on_claim(claim, now),
            Signal::Progress if from_active => {
                let deadline = now + self.options.stall_timeout;
                self.phase = Phase::Working { claim, deadline };
                Action::Wait
            }
            Signal::Completed if from_active => Action::Completed(claim),
            Signal::Failed(reason) => self.on_failed(&claim, &reason, now),
            Signal::Progress | Signal::Completed => Action::Wait,
        }
    }

    /// Reacts to [`Arbiter::deadline`] having passed.
    pub fn on_deadline(&mut self, now: Instant) -> Action {
        match &self.phase {
            Phase::AwaitingClaim { .. } if self.attempts == 0 => Action::GiveUp(GiveUp::NoClaim),
            Phase::AwaitingClaim { .. } => Action::GiveUp(self.exhausted()),
            Phase::AwaitingStart { claim, .. } => {
                let provider = claim.provider;
                self.excluded.push(provider);
                self.last_failure = format!("provider {} never started", provider.short());
                self.fall_back(now)
            }
            Phase::Working { claim, .. } => {
                let provider = claim.provider;
                self.excluded.push(provider);
                if !self.reassign_after_start {
                    self.last_failure = format!(
                        "provider {} stalled after starting; not reassigned, since it may \
                         already have run",
                        provider.short()
                    );
                    return Action::GiveUp(self.exhausted());
                }
                self.last_failure = format!("provider {} stalled", provider.short());
                Action::Rerequest
            }
        }
    }

    /// Taking the result of the active provider failed for a reason other than bad content.
    pub fn on_provider_failed(&mut self, detail: String, now: Instant) -> Action {
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

    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId::from_bytes([byte; 32])
    }

    fn claim(provider: u8) -> Claim {
        Claim {
            request_id: Nonce::from_bytes([7; 16]),
            channel: ChannelName::parse("lab.one").unwrap(),
            provider: node(provider),
        }
    }

    fn arbiter(now: Instant) -> Arbiter {
        Arbiter::new(&ExchangeOptions::default(), now)
    }

    #[test]
    fn first_claim_wins_and_later_ones_stand_by() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        let first = arbiter.on_signal(claim(1), Signal::Claimed, now);
        assert!(matches!(first, Action::Accept(claim) if claim.provider == node(1)));
        assert_eq!(
            arbiter.on_signal(claim(2), Signal::Claimed, now),
            Action::Wait
        );

        let failed = Signal::Failed("upload_failed".into());
        let next = arbiter.on_signal(claim(1), failed, now + Duration::from_secs(1));
        assert!(matches!(next, Action::Accept(claim) if claim.provider == node(2)));
        assert_eq!(arbiter.attempts(), 2);
    }

    #[test]
    fn stale_standby_claims_are_not_used() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        arbiter.on_signal(claim(1), Signal::Claimed, now);
        arbiter.on_signal(claim(2), Signal::Claimed, now);
        let late = now + Duration::from_secs(11);
        assert_eq!(arbiter.on_deadline(late), Action::Rerequest);
        assert_eq!(arbiter.excluded(), &[node(1)]);
    }

    #[test]
    fn a_stall_excludes_the_provider_and_re_requests() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        arbiter.on_signal(claim(1), Signal::Claimed, now);
        assert_eq!(
            arbiter.on_signal(claim(1), Signal::Progress, now),
            Action::Wait
        );
        assert_eq!(arbiter.deadline(), now + Duration::from_secs(30));
        assert_eq!(arbiter.on_deadline(arbiter.deadline()), Action::Rerequest);
        assert_eq!(arbiter.excluded(), &[node(1)]);
    }

    #[test]
    fn without_reassignment_a_stall_after_start_gives_up() {
        let now = Instant::now();
        let mut arbiter = arbiter(now).without_reassignment_after_start();
        arbiter.on_signal(claim(1), Signal::Claimed, now);
        arbiter.on_signal(claim(2), Signal::Claimed, now);
        arbiter.on_signal(claim(1), Signal::Progress, now);
        assert!(matches!(
            arbiter.on_deadline(arbiter.deadline()),
            Action::GiveUp(GiveUp::Exhausted { attempts: 1, .. })
        ));
    }

    #[test]
    fn only_the_active_provider_completes() {
        let now = Instant::now();
        let mut arbiter = arbiter(now);
        arbiter.on_signal(claim(1), Signal::Claimed, now);
        assert_eq!(
            arbiter.on_signal(claim(2), Signal::Completed, now),
            Action::Wait
        );
        assert_eq!(
            arbiter.on_signal(claim(1), Signal::Completed, now),
            Action::Completed(claim(1))
        );
    }

    #[test]
    fn silence_gives_not_found_and_used_attempts_give_exhausted() {
        let now = Instant::now();
        let mut silent = arbiter(now);
        assert_eq!(silent.on_deadline(now), Action::GiveUp(GiveUp::NoClaim));

        let mut busy = arbiter(now);
        for provider in 1..=3 {
            busy.start_round(now).unwrap();
            busy.on_signal(claim(provider), Signal::Claimed, now);
            busy.on_deadline(now + Duration::from_secs(10));
        }
        assert!(matches!(
            busy.start_round(now),
            Err(GiveUp::Exhausted { attempts: 3, .. })
        ));
    }
}

//! Clocks, jitter and backoff shared by the daemon's loops.
//!
//! Every periodic loop jitters its period by ±10 % so a fleet of nodes started together
//! does not hit the hub in lockstep, and every retry backs off exponentially (1 s, 2 s,
//! 4 s … up to a cap) with the same jitter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the unit of every wire time.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds since 1970 fit in i64")
}

/// A uniformly random fraction in [0, 1), from the OS random source; 0.5 if it fails,
/// which only makes the jitter less random.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// `period` moved by up to ±10 %.
pub(crate) fn jittered(period: Duration) -> Duration {
    period.mul_f64(0.9 + 0.2 * random_fraction())
}

/// The delay before retry number `failures` (1 for the first retry): 1 s doubling per
/// failure, capped at `cap`, jittered ±10 % (and still never above `cap`).
pub(crate) fn backoff(failures: u32, cap: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = Duration::from_secs(1).saturating_mul(1 << exponent);
    jittered(base.min(cap)).min(cap)
}

/// Wire time `delay` from now.
pub(crate) fn ms_after(delay: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

/// 16 random bytes for a pub-sub nonce.
pub(crate) fn random_nonce() -> Result<kachery_protocol::Nonce, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(kachery_protocol::Nonce::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_the_cap() {
        let cap = Duration::from_secs(300);
        let first = backoff(1, cap);
        assert!(first >= Duration::from_millis(900) && first <= Duration::from_millis(1100));
        let fourth = backoff(4, cap);
        assert!(fourth >= Duration::from_millis(7200) && fourth <= Duration::from_millis(8800));
        assert!(backoff(40, cap) <= cap);
        assert!(backoff(3, Duration::from_millis(500)) <= Duration::from_millis(500));
    }
}

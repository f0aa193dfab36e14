//! Per-key token buckets in memory, for the node API's limit per node id (SPEC §21).
//!
//! These buckets are per hub replica; the node API adds a limit that every replica of
//! one database shares, counted from the remembered nonces (`node_api`). A bucket is only
//! created after a request's signature and nonce checked out, so an attacker cannot fill
//! the map without making a key per entry; idle buckets (full again) are dropped by
//! [`RateLimiter::forget_idle`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// A token bucket per key: `per_second` sustained, `burst` at once.
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_minute` sustained, all of them at once: for the slow limits of SPEC §21
    /// (passcode entry, channel tests).
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; on refusal returns how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            refilled_at: now,
        });

        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled_at = now;

        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }

    /// Drops buckets that have refilled completely; they behave like absent ones.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets.retain(|_, bucket| {
            let elapsed = now
                .saturating_duration_since(bucket.refilled_at)
                .as_secs_f64();
            bucket.tokens + elapsed * self.per_second < self.burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let limiter = RateLimiter::new(20, 100);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.check_at(&"node", start).unwrap();
        }
        let wait = limiter.check_at(&"node", start).unwrap_err();
        assert!(wait <= Duration::from_millis(50) && wait > Duration::ZERO);
        limiter.check_at(&"other", start).unwrap();

        limiter
            .check_at(&"node", start + Duration::from_millis(50))
            .unwrap();
    }
}

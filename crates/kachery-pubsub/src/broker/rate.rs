//! Token buckets for the per-connection limits of the embedded broker (SPEC §21).

use std::time::Instant;

/// A bucket holding up to `burst` tokens, refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_second),
            burst,
            tokens: burst,
            refilled_at: now,
        }
    }

    /// Takes `cost` tokens if the bucket holds them; otherwise takes nothing.
    pub(crate) fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.refilled_at = now;

        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50, 200, start);
        assert_eq!(
            (0..300).filter(|_| bucket.try_take(1.0, start)).count(),
            200
        );

        let later = start + Duration::from_millis(100);
        assert_eq!((0..300).filter(|_| bucket.try_take(1.0, later)).count(), 5);
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50, 10, start);
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(
            (0..100)
                .filter(|_| bucket.try_take(1.0, much_later))
                .count(),
            10
        );
    }
}

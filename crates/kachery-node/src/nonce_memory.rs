//! The receiver's memory of recent pub-sub nonces (SPEC §4.3).
//!
//! A message whose (sender, nonce) pair arrived within the last 10 minutes is a replay.
//! Messages older than 5 minutes are already dropped as stale, so remembering 10 minutes
//! covers every message that could still pass the freshness check. The memory is bounded:
//! past `capacity` entries the oldest are forgotten first, which under a flood can let a
//! replay through, but never grows without limit.

use std::collections::{HashMap, VecDeque};

use kachery_protocol::limits::NONCE_MEMORY_MS;
use kachery_protocol::{NodeId, Nonce};

/// Default number of remembered nonces: 10 minutes at about 160 messages a second.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

pub(crate) struct NonceMemory {
    capacity: usize,
    seen_at: HashMap<(NodeId, Nonce), i64>,
    order: VecDeque<((NodeId, Nonce), i64)>,
}

impl NonceMemory {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen_at: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether the pair was seen in the last 10 minutes; records it when not.
    pub(crate) fn check_and_record(&mut self, sender: &NodeId, nonce: &Nonce, now_ms: i64) -> bool {
        self.forget_before(now_ms - NONCE_MEMORY_MS);
        let key = (*sender, *nonce);
        if self.seen_at.contains_key(&key) {
            return true;
        }
        while self.order.len() >= self.capacity {
            self.pop_oldest();
        }
        self.seen_at.insert(key, now_ms);
        self.order.push_back((key, now_ms));
        false
    }

    fn forget_before(&mut self, cutoff_ms: i64) {
        while self
            .order
            .front()
            .is_some_and(|(_, seen)| *seen < cutoff_ms)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((key, seen)) = self.order.pop_front() {
            // Only forget the map entry if it belongs to this queue entry.
            if self.seen_at.get(&key) == Some(&seen) {
                self.seen_at.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: u8) -> (NodeId, Nonce) {
        (NodeId::from_bytes([1; 32]), Nonce::from_bytes([n; 16]))
    }

    #[test]
    fn repeats_within_ten_minutes_are_replays() {
        let mut memory = NonceMemory::new(10);
        let (node, nonce) = pair(1);
        assert!(!memory.check_and_record(&node, &nonce, 0));
        assert!(memory.check_and_record(&node, &nonce, NONCE_MEMORY_MS - 1));
        assert!(!memory.check_and_record(&node, &nonce, NONCE_MEMORY_MS + 1));
    }

    #[test]
    fn capacity_bounds_the_memory() {
        let mut memory = NonceMemory::new(2);
        for n in 0..5 {
            let (node, nonce) = pair(n);
            assert!(!memory.check_and_record(&node, &nonce, 0));
        }
        assert_eq!(memory.seen_at.len(), 2);
        let (node, nonce) = pair(0);
        assert!(
            !memory.check_and_record(&node, &nonce, 0),
            "the oldest was forgotten"
        );
    }
}

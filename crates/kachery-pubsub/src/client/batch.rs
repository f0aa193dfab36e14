//! Batching of outgoing envelopes, one pending batch per band (SPEC §6.3).
//!
//! Each band sends at most one frame per `flush_delay` (150 ms by default): an envelope
//! queued on a band that sent nothing in the last `flush_delay` goes out at once, and
//! envelopes that follow within the window travel together in the next frame. A frame is
//! also sent early when the next envelope would push it past 32,000 bytes.
//!
//! SPEC §6.3 holds every first envelope for 150 ms. That adds 150 ms to each hop of the
//! file exchange (request, claim, accept, progress, uploaded: about 0.75 s for a small
//! file) while saving nothing on an idle band; sending the leading envelope at once keeps
//! the same frame rate bound under load and removes the delay when it buys nothing. Sizes
//! are tracked exactly: compact JSON of a frame is its fixed text plus each envelope's
//! encoding plus one comma between envelopes, so the broker never sees an oversized frame.

use std::collections::BTreeMap;

use tokio::time::{Duration, Instant};

use kachery_protocol::Band;
use kachery_protocol::limits::MAX_BROKER_MESSAGE_BYTES;
use kachery_protocol::pubsub::{BrokerBatch, BrokerClientFrame, PubsubEnvelope};

#[derive(Debug)]
struct PendingBatch {
    envelopes: Vec<PubsubEnvelope>,
    frame_len: usize,
    deadline: Instant,
}

/// Envelopes waiting to be sent, grouped by band.
#[derive(Debug)]
pub(crate) struct PendingBatches {
    flush_delay: Duration,
    by_band: BTreeMap<Band, PendingBatch>,
    /// When each band last sent a frame, to space frames `flush_delay` apart.
    last_sent: BTreeMap<Band, Instant>,
}

impl PendingBatches {
    pub(crate) fn new(flush_delay: Duration) -> Self {
        Self {
            flush_delay,
            by_band: BTreeMap::new(),
            last_sent: BTreeMap::new(),
        }
    }

    /// Queues an envelope whose compact JSON is `encoded_len` bytes. Returns a batch that
    /// must be sent first, because adding the envelope to it would pass the frame limit.
    pub(crate) fn push(
        &mut self,
        band: Band,
        envelope: PubsubEnvelope,
        encoded_len: usize,
        now: Instant,
    ) -> Option<BrokerBatch> {
        let full = match self.by_band.get(&band) {
            Some(pending) if pending.frame_len + 1 + encoded_len > MAX_BROKER_MESSAGE_BYTES => {
                self.by_band.remove(&band).map(|pending| BrokerBatch {
                    messages: pending.envelopes,
                })
            }
            _ => None,
        };
        if full.is_some() {
            self.last_sent.insert(band, now);
        }

        // Due at once on a quiet band, else one window after the band's last frame.
        let deadline = match self.last_sent.get(&band) {
            Some(last) => (*last + self.flush_delay).max(now),
            None => now,
        };
        let pending = self.by_band.entry(band).or_insert_with(|| PendingBatch {
            envelopes: Vec::new(),
            frame_len: empty_frame_len(band),
            deadline,
        });
        let separator_len = usize::from(!pending.envelopes.is_empty());
        pending.frame_len += separator_len + encoded_len;
        pending.envelopes.push(envelope);
        full
    }

    /// When the earliest pending batch is due; `None` when nothing is pending.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_band.values().map(|pending| pending.deadline).min()
    }

    /// Removes and returns the batches due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(Band, BrokerBatch)> {
        let due: Vec<Band> = self
            .by_band
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(band, _)| *band)
            .collect();
        for band in &due {
            self.last_sent.insert(*band, now);
        }
        due.into_iter().filter_map(|band| self.take(band)).collect()
    }

    /// Removes and returns every pending batch.
    pub(crate) fn take_all(&mut self) -> Vec<(Band, BrokerBatch)> {
        std::mem::take(&mut self.by_band)
            .into_iter()
            .map(|(band, pending)| {
                (
                    band,
                    BrokerBatch {
                        messages: pending.envelopes,
                    },
                )
            })
            .collect()
    }

    fn take(&mut self, band: Band) -> Option<(Band, BrokerBatch)> {
        let pending = self.by_band.remove(&band)?;
        Some((
            band,
            BrokerBatch {
                messages: pending.envelopes,
            },
        ))
    }
}

/// Length of a `pub` frame for `band` carrying no envelopes.
fn empty_frame_len(band: Band) -> usize {
    let frame = BrokerClientFrame::Pub {
        band,
        batch: BrokerBatch::default(),
    };
    serde_json::to_vec(&frame)
        .expect("client frames serialize to JSON")
        .len()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kachery_protocol::pubsub::{FileKey, PubsubBody, PubsubMessage};
    use kachery_protocol::{ChannelName, Nonce, Sha1Hash};

    use super::*;

    fn envelope(padding: usize) -> PubsubEnvelope {
        let body = PubsubBody {
            channel: ChannelName::parse("lab").unwrap(),
            timestamp: 1,
            nonce: Nonce::from_bytes([1; 16]),
            message: PubsubMessage::RequestFile {
                request_id: Nonce::from_bytes([2; 16]),
                file_key: FileKey {
                    sha1: Sha1Hash::of(b"x"),
                    manifest_sha1: None,
                    chunk_of: None,
                },
                exclude: vec![],
            },
        };
        let mut envelope = PubsubEnvelope::seal(&SigningKey::from_bytes(&[5; 32]), &body);
        envelope.body["padding"] = "p".repeat(padding).into();
        envelope
    }

    fn frame_len(band: Band, batch: BrokerBatch) -> usize {
        serde_json::to_vec(&BrokerClientFrame::Pub { band, batch })
            .unwrap()
            .len()
    }

    #[test]
    fn tracked_length_matches_the_serialized_frame() {
        let mut batches = PendingBatches::new(Duration::from_millis(150));
        let now = Instant::now();
        for padding in [0, 10, 300] {
            let envelope = envelope(padding);
            let encoded_len = serde_json::to_vec(&envelope).unwrap().len();
            assert!(
                batches
                    .push(Band::RequestFiles, envelope, encoded_len, now)
                    .is_none()
            );
        }
        let tracked = batches.by_band[&Band::RequestFiles].frame_len;
        let (band, batch) = batches.take_all().pop().unwrap();
        assert_eq!(tracked, frame_len(band, batch));
    }

    #[test]
    fn a_full_batch_is_handed_back_before_it_would_overflow() {
        let mut batches = PendingBatches::new(Duration::from_millis(150));
        let now = Instant::now();
        let big = envelope(12_000);
        let encoded_len = serde_json::to_vec(&big).unwrap().len();

        assert!(
            batches
                .push(Band::RequestFiles, big.clone(), encoded_len, now)
                .is_none()
        );
        assert!(
            batches
                .push(Band::RequestFiles, big.clone(), encoded_len, now)
                .is_none()
        );
        let full = batches
            .push(Band::RequestFiles, big, encoded_len, now)
            .expect("third overflows");
        assert_eq!(full.messages.len(), 2);
        assert!(frame_len(Band::RequestFiles, full) <= MAX_BROKER_MESSAGE_BYTES);
        assert_eq!(batches.by_band[&Band::RequestFiles].envelopes.len(), 1);
    }

    #[test]
    fn a_quiet_band_sends_at_once_and_a_busy_one_waits_its_window() {
        let mut batches = PendingBatches::new(Duration::from_millis(150));
        let start = Instant::now();

        // Nothing sent yet on either band: both are due immediately.
        batches.push(Band::RequestFiles, envelope(0), 1, start);
        assert_eq!(batches.next_deadline(), Some(start));
        let due = batches.take_due(start);
        assert_eq!(due.len(), 1);

        // The band just sent: the next envelopes wait for the window and go together.
        let later = start + Duration::from_millis(10);
        batches.push(Band::RequestFiles, envelope(0), 1, later);
        batches.push(Band::RequestFiles, envelope(0), 1, later);
        batches.push(Band::ProvideFiles, envelope(0), 1, later);
        assert_eq!(batches.next_deadline(), Some(later));
        let due = batches.take_due(later);
        assert_eq!(
            due.iter().map(|(band, _)| *band).collect::<Vec<_>>(),
            [Band::ProvideFiles]
        );
        assert_eq!(
            batches.next_deadline(),
            Some(start + Duration::from_millis(150))
        );
        let due = batches.take_due(start + Duration::from_millis(150));
        assert_eq!(due[0].1.messages.len(), 2);

        // A band quiet for a whole window is immediate again.
        let quiet = start + Duration::from_millis(400);
        batches.push(Band::RequestFiles, envelope(0), 1, quiet);
        assert_eq!(batches.next_deadline(), Some(quiet));
    }
}

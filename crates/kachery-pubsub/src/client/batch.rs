//! Batching of outgoing envelopes, one pending batch per band (SPEC §6.3).
//!
//! A batch is sent `flush_delay` (150 ms by default) after its first envelope was queued,
//! or earlier when the next envelope would push the `pub` frame past 32,000 bytes. Sizes
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
}

impl PendingBatches {
    pub(crate) fn new(flush_delay: Duration) -> Self {
        Self {
            flush_delay,
            by_band: BTreeMap::new(),
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

        let flush_delay = self.flush_delay;
        let pending = self.by_band.entry(band).or_insert_with(|| PendingBatch {
            envelopes: Vec::new(),
            frame_len: empty_frame_len(band),
            deadline: now + flush_delay,
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
    fn batches_fall_due_per_band_after_the_delay() {
        let mut batches = PendingBatches::new(Duration::from_millis(150));
        let start = Instant::now();
        batches.push(Band::RequestFiles, envelope(0), 1, start);
        batches.push(
            Band::ProvideFiles,
            envelope(0),
            1,
            start + Duration::from_millis(100),
        );
        assert_eq!(
            batches.next_deadline(),
            Some(start + Duration::from_millis(150))
        );

        let due = batches.take_due(start + Duration::from_millis(160));
        assert_eq!(
            due.iter().map(|(band, _)| *band).collect::<Vec<_>>(),
            [Band::RequestFiles]
        );
        assert_eq!(
            batches.next_deadline(),
            Some(start + Duration::from_millis(250))
        );
    }
}

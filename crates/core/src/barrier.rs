//! `SequenceBarrier`: what a consumer may read, given the cursor and the consumers it follows.

use crate::error::{Error, Result};
use crate::ring_buffer::RingBuffer;
use crate::wait_strategy::WaitStrategy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tracks the cursor and the sequences of the consumers a consumer depends on.
#[derive(Debug, Clone)]
pub struct SequenceBarrier {
    ring: RingBuffer,
    dependencies: u64,
    wait: WaitStrategy,
    alert: Arc<AtomicBool>,
}

impl SequenceBarrier {
    /// A barrier over the cursor and the consumers whose bits are set in `dependencies`.
    pub fn new(ring: RingBuffer, dependencies: u64, wait: WaitStrategy) -> Self {
        Self { ring, dependencies, wait, alert: Arc::new(AtomicBool::new(false)) }
    }

    /// The highest sequence that is published and released by every dependency.
    #[inline]
    pub fn available(&self) -> i64 {
        let cursor = self.ring.cursor();
        if self.dependencies == 0 {
            cursor
        } else {
            self.ring.min_sequence(self.dependencies, cursor)
        }
    }

    /// Wait until `sequence` can be read; return the highest readable sequence (>= `sequence`).
    #[inline]
    pub fn wait_for(&self, sequence: i64, timeout: Option<Duration>) -> Result<i64> {
        self.wait_for_up_to(sequence, i64::MAX, timeout)
    }

    /// Like [`wait_for`](Self::wait_for), but look no further than `limit` (>= `sequence`):
    /// on a multi-producer ring each readable sequence costs a flag check, so a consumer that
    /// takes at most n events at a time checks at most n flags.
    #[inline]
    pub fn wait_for_up_to(&self, sequence: i64, limit: i64, timeout: Option<Duration>) -> Result<i64> {
        // Fast path, inlined into the consumer loop: already readable.
        let published = self.ring.highest_published(sequence, self.available().min(limit));
        if published >= sequence {
            return Ok(published);
        }
        self.wait_for_slow(sequence, limit, timeout)
    }

    #[inline(never)]
    fn wait_for_slow(&self, sequence: i64, limit: i64, timeout: Option<Duration>) -> Result<i64> {
        let mut gap_since: Option<Instant> = None;
        let mut gap_spins = 0u32;
        loop {
            let available = self.wait.wait_for(&self.ring, sequence, || self.available(), &self.alert, timeout)?;
            let published = self.ring.highest_published(sequence, available.min(limit));
            if published >= sequence {
                return Ok(published);
            }
            // Multi-producer: claimed but not yet published. The gap usually closes within a few
            // stores, but the claiming producer may be descheduled or may never publish, so the
            // alert and the timeout must still end the wait (the wait strategy returns at once here).
            if self.alert.load(Ordering::Acquire) {
                return Err(Error::Alerted);
            }
            if let Some(t) = timeout {
                let since = *gap_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= t {
                    return Err(Error::Timeout { sequence, waited_ms: since.elapsed().as_millis() as u64 });
                }
            }
            // A hole that outlives a short spin belongs to a producer that lost its core: give
            // the core up so it can publish (on an oversubscribed machine spinning only delays it).
            gap_spins = gap_spins.wrapping_add(1);
            if gap_spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Readable now without waiting (may be below `sequence`).
    #[inline]
    pub fn poll(&self, sequence: i64) -> i64 {
        self.poll_up_to(sequence, i64::MAX)
    }

    /// Like [`poll`](Self::poll), looking no further than `limit`.
    #[inline]
    pub fn poll_up_to(&self, sequence: i64, limit: i64) -> i64 {
        self.ring.highest_published(sequence, self.available().min(limit))
    }

    /// Interrupt any wait on this barrier.
    pub fn alert(&self) {
        self.alert.store(true, Ordering::Release);
        self.ring.wake_all();
    }

    /// Clear the alert.
    pub fn clear_alert(&self) {
        self.alert.store(false, Ordering::Release);
    }

    /// Clear the alert and return whether it was set. A read-modify-write, so an alert raised
    /// after a publish is either returned here or still set for the next wait: reading the
    /// cursor after this call sees every publish that came before a consumed alert.
    pub fn take_alert(&self) -> bool {
        self.alert.swap(false, Ordering::AcqRel)
    }

    /// True while alerted.
    pub fn is_alerted(&self) -> bool {
        self.alert.load(Ordering::Acquire)
    }

    /// The wait strategy.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// The ring.
    pub fn ring(&self) -> &RingBuffer {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ProducerKind;
    use crate::ring_buffer::RingOptions;
    use crate::sequencer::{MultiProducerSequencer, Sequencer};

    #[test]
    fn alert_and_timeout_end_a_wait_on_a_claimed_but_unpublished_slot() {
        let ring = RingBuffer::create(&RingOptions::new(8, 8).producer(ProducerKind::Multi)).unwrap();
        let mut p = MultiProducerSequencer::new(ring.clone()).unwrap();
        // Claimed (the cursor is 0) but not published (its availability flag is not set).
        assert_eq!(p.next(1).unwrap(), 0);
        for wait in [WaitStrategy::BusySpin, WaitStrategy::default()] {
            let b = SequenceBarrier::new(ring.clone(), 0, wait);
            let r = b.wait_for(0, Some(Duration::from_millis(10)));
            assert!(matches!(r, Err(Error::Timeout { sequence: 0, .. })), "{wait:?}: {r:?}");
            let b2 = b.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                b2.alert();
            });
            assert!(matches!(b.wait_for(0, None), Err(Error::Alerted)), "{wait:?}");
            t.join().unwrap();
        }
        p.publish(0, 0);
        assert_eq!(SequenceBarrier::new(ring, 0, WaitStrategy::BusySpin).wait_for(0, None).unwrap(), 0);
    }
}

//! `SequenceBarrier`: what a consumer may read, given the cursor and the consumers it follows.

use crate::error::Result;
use crate::ring_buffer::RingBuffer;
use crate::wait_strategy::WaitStrategy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
        loop {
            let available = self.wait.wait_for(&self.ring, sequence, || self.available(), &self.alert, timeout)?;
            let published = self.ring.highest_published(sequence, available);
            if published >= sequence {
                return Ok(published);
            }
            // Multi-producer: claimed but not yet published; the gap closes within a few stores.
            std::hint::spin_loop();
        }
    }

    /// Readable now without waiting (may be below `sequence`).
    #[inline]
    pub fn poll(&self, sequence: i64) -> i64 {
        self.ring.highest_published(sequence, self.available())
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

//! `EventPoller`: the pull side of a consumer. The caller asks for what is available, reads it,
//! and commits, on its own thread.

use crate::barrier::SequenceBarrier;
use crate::error::Result;
use crate::ring_buffer::{ConsumerId, RingBuffer};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A pull consumer.
#[derive(Debug)]
pub struct EventPoller {
    ring: RingBuffer,
    consumer: ConsumerId,
    barrier: SequenceBarrier,
}

impl EventPoller {
    /// A poller for the registered consumer `consumer`.
    pub fn new(ring: RingBuffer, consumer: ConsumerId, barrier: SequenceBarrier) -> Self {
        Self { ring, consumer, barrier }
    }

    /// The last sequence this poller committed.
    pub fn sequence(&self) -> i64 {
        self.ring.consumer_sequence(self.consumer).load(Ordering::Acquire)
    }

    /// The contiguous run of readable sequences after the committed one, at most `max` long.
    #[inline]
    pub fn poll(&self, max: i64) -> Option<(i64, i64)> {
        let next = self.sequence() + 1;
        let last = next.saturating_add(max - 1);
        let available = self.barrier.poll_up_to(next, last);
        (available >= next).then(|| (next, self.ring.contiguous_end(next, available)))
    }

    /// Wait (with the barrier's wait strategy) until something is readable; then like `poll`.
    pub fn wait(&self, max: i64, timeout: Option<Duration>) -> Result<(i64, i64)> {
        let next = self.sequence() + 1;
        let available = self.barrier.wait_for_up_to(next, next.saturating_add(max - 1), timeout)?;
        Ok((next, self.ring.contiguous_end(next, available)))
    }

    /// Release everything up to `hi` back to producers.
    #[inline]
    pub fn commit(&self, hi: i64) {
        let seq = self.ring.consumer_sequence(self.consumer);
        let lo = seq.load(Ordering::Relaxed) + 1;
        seq.store(hi, Ordering::Release);
        if hi >= lo {
            self.ring.record_batch(self.consumer, (hi - lo + 1) as u64);
        }
        self.ring.signal_waiters();
    }

    /// The barrier (to alert a waiting poller from another thread).
    pub fn barrier(&self) -> &SequenceBarrier {
        &self.barrier
    }

    /// The consumer id.
    pub fn consumer(&self) -> ConsumerId {
        self.consumer
    }
}

//! Native handlers that run without Python: a checksum for benchmarks and a latency recorder.

use crate::clock::monotonic_ns;
use crate::histogram::LatencyRecorder;
use crate::processor::{Chunk, EventHandler, HandlerFailure};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[inline]
fn read_i64(slot: &[u8], offset: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&slot[offset..offset + 8]);
    i64::from_ne_bytes(b)
}

/// Counts events and sums an 8-byte integer field (wrapping), readable while running.
#[derive(Debug, Clone)]
pub struct ChecksumHandler {
    offset: usize,
    count: Arc<AtomicU64>,
    sum: Arc<AtomicU64>,
}

impl ChecksumHandler {
    /// Sum the i64 at `offset` of every slot.
    pub fn new(offset: usize) -> Self {
        Self { offset, count: Arc::default(), sum: Arc::default() }
    }
    /// Events seen.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
    /// Wrapping sum of the field.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Acquire)
    }
}

impl EventHandler for ChecksumHandler {
    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        let mut s = 0u64;
        for slot in chunk.data.chunks_exact(chunk.slot_size) {
            s = s.wrapping_add(read_i64(slot, self.offset) as u64);
        }
        self.sum.store(self.sum.load(Ordering::Relaxed).wrapping_add(s), Ordering::Release);
        self.count.store(self.count.load(Ordering::Relaxed) + chunk.len() as u64, Ordering::Release);
        Ok(())
    }
}

/// Records `now - timestamp` for the `CLOCK_MONOTONIC` nanosecond timestamp at `offset`.
#[derive(Debug, Clone)]
pub struct LatencyHandler {
    offset: usize,
    recorder: Arc<LatencyRecorder>,
}

impl LatencyHandler {
    /// Read the timestamp at `offset` of every slot.
    pub fn new(offset: usize) -> Self {
        Self { offset, recorder: Arc::new(LatencyRecorder::new()) }
    }
    /// The shared recorder.
    pub fn recorder(&self) -> Arc<LatencyRecorder> {
        self.recorder.clone()
    }
}

impl EventHandler for LatencyHandler {
    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        let now = monotonic_ns();
        let off = self.offset;
        self.recorder.record_all(
            chunk.data.chunks_exact(chunk.slot_size).map(|s| now.saturating_sub(read_i64(s, off)).max(0) as u64),
        );
        Ok(())
    }
}

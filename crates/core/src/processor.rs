//! `BatchEventProcessor`: a consumer loop that waits on a barrier and hands each available batch
//! to an [`EventHandler`], one contiguous chunk of slots at a time.

use crate::affinity::ThreadOptions;
use crate::barrier::SequenceBarrier;
use crate::error::{Error, Result};
use crate::ring_buffer::{ConsumerId, RingBuffer};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A contiguous run of published slots, `lo..=hi`.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// First sequence.
    pub lo: i64,
    /// Last sequence.
    pub hi: i64,
    /// The slots' bytes, `slot_size` each.
    pub data: &'a [u8],
    /// Bytes per slot.
    pub slot_size: usize,
    /// True for the last chunk of the batch the barrier returned.
    pub end_of_batch: bool,
}

impl<'a> Chunk<'a> {
    /// Events in the chunk.
    pub fn len(&self) -> usize {
        (self.hi - self.lo + 1) as usize
    }
    /// Never true: chunks hold at least one event.
    pub fn is_empty(&self) -> bool {
        self.hi < self.lo
    }
    /// The bytes of each slot with its sequence.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &'a [u8])> + 'a {
        let lo = self.lo;
        self.data.chunks_exact(self.slot_size).enumerate().map(move |(i, s)| (lo + i as i64, s))
    }
}

/// What a handler failure carries.
pub type HandlerFailure = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Callbacks of a consumer. Called on the processor's thread.
pub trait EventHandler: Send {
    /// Before the first batch.
    fn on_start(&mut self) {}
    /// One chunk of published events.
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> std::result::Result<(), HandlerFailure>;
    /// The wait for the next event timed out (only with a timeout set); `sequence` is the last handled.
    fn on_timeout(&mut self, _sequence: i64) -> std::result::Result<(), HandlerFailure> {
        Ok(())
    }
    /// `on_batch` failed for `lo..=hi` on attempt `attempt` (1-based).
    fn on_error(&mut self, _failure: &HandlerFailure, _lo: i64, _hi: i64, _attempt: u32) {}
    /// After the last batch.
    fn on_shutdown(&mut self) {}
}

/// What a processor does when its handler fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop the processor and report the failure to the owner; the failed events stay unreleased.
    #[default]
    Halt,
    /// Count the error, skip the failed chunk and go on.
    Continue,
    /// Call the handler again up to this many times, then halt.
    Retry(u32),
}

/// How a processor ended.
#[derive(Debug)]
pub enum ProcessorExit {
    /// Halted on request.
    Halted,
    /// Stopped after handling everything up to the drain target.
    Drained,
    /// The handler failed under [`ErrorPolicy::Halt`] (or retries ran out).
    Failed { lo: i64, hi: i64, failure: HandlerFailure },
}

const RUNNING: u32 = 0;
const DRAINING: u32 = 1;
const HALTING: u32 = 2;

/// Controls a running processor from another thread.
#[derive(Debug)]
pub struct ProcessorControl {
    state: AtomicU32,
    drain_target: AtomicI64,
    barrier: SequenceBarrier,
}

impl ProcessorControl {
    /// Stop as soon as the current batch is done, leaving later events unhandled.
    pub fn halt(&self) {
        self.state.store(HALTING, Ordering::Release);
        self.barrier.alert();
    }

    /// Handle every event up to `target`, then stop.
    pub fn drain(&self, target: i64) {
        self.drain_target.store(target, Ordering::Release);
        let _ = self.state.compare_exchange(RUNNING, DRAINING, Ordering::AcqRel, Ordering::Acquire);
        self.barrier.alert();
    }

    /// True until halt or drain was asked for.
    pub fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }
}

/// A consumer loop over a ring.
pub struct BatchEventProcessor<H: EventHandler> {
    ring: RingBuffer,
    consumer: ConsumerId,
    barrier: SequenceBarrier,
    handler: H,
    max_batch: i64,
    timeout: Option<Duration>,
    policy: ErrorPolicy,
    control: Arc<ProcessorControl>,
}

impl<H: EventHandler> std::fmt::Debug for BatchEventProcessor<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchEventProcessor")
            .field("consumer", &self.consumer)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl<H: EventHandler> BatchEventProcessor<H> {
    /// A processor for the registered consumer `consumer`, waiting with `barrier`.
    pub fn new(ring: RingBuffer, consumer: ConsumerId, barrier: SequenceBarrier, handler: H) -> Self {
        let control = Arc::new(ProcessorControl {
            state: AtomicU32::new(RUNNING),
            drain_target: AtomicI64::new(i64::MAX),
            barrier: barrier.clone(),
        });
        Self {
            ring,
            consumer,
            barrier,
            handler,
            max_batch: i64::MAX,
            timeout: None,
            policy: ErrorPolicy::Halt,
            control,
        }
    }

    /// Cap the events handed to the handler per batch.
    pub fn with_max_batch(mut self, max_batch: usize) -> Result<Self> {
        if max_batch == 0 {
            return Err(Error::invalid("max_batch", 0, "at least 1"));
        }
        self.max_batch = max_batch.min(i64::MAX as usize) as i64;
        Ok(self)
    }

    /// Call `on_timeout` when no event arrives for `timeout`.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Set the error policy.
    pub fn with_error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The handle to halt or drain this processor.
    pub fn control(&self) -> Arc<ProcessorControl> {
        self.control.clone()
    }

    /// Run on a new thread with `options`; the thread returns the handler and how it ended.
    pub fn spawn(
        self,
        options: &ThreadOptions,
    ) -> std::io::Result<std::thread::JoinHandle<(H, ProcessorExit, Vec<String>)>>
    where
        H: 'static,
    {
        options.spawn(move |warnings| {
            let (h, exit) = self.run();
            (h, exit, warnings)
        })
    }

    /// Run on the calling thread until halted, drained or failed.
    pub fn run(mut self) -> (H, ProcessorExit) {
        self.handler.on_start();
        let exit = self.run_loop();
        self.handler.on_shutdown();
        (self.handler, exit)
    }

    fn run_loop(&mut self) -> ProcessorExit {
        let ring = self.ring.clone();
        ring.set_failed(self.consumer, false);
        let sequence = ring.consumer_sequence(self.consumer);
        let mut next = sequence.load(Ordering::Acquire) + 1;
        loop {
            let available = match self.control.state.load(Ordering::Acquire) {
                RUNNING => {
                    match self.barrier.wait_for_up_to(next, next.saturating_add(self.max_batch - 1), self.timeout) {
                        Ok(a) => a,
                        Err(Error::Timeout { .. }) => {
                            if let Err(f) = self.handler.on_timeout(next - 1) {
                                self.ring.record_error(self.consumer);
                                self.handler.on_error(&f, next, next - 1, 1);
                            }
                            continue;
                        }
                        Err(_) => continue, // alerted: look at the new state
                    }
                }
                DRAINING => {
                    let target = self.control.drain_target.load(Ordering::Acquire);
                    if next > target {
                        return ProcessorExit::Drained;
                    }
                    let a = self.barrier.poll_up_to(next, next.saturating_add(self.max_batch - 1));
                    if a < next {
                        std::thread::yield_now();
                        continue;
                    }
                    a.min(target)
                }
                _ => return ProcessorExit::Halted,
            };
            let hi = available.min(next.saturating_add(self.max_batch - 1));
            if let Err((lo, chunk_hi, failure)) = self.handle(next, hi) {
                sequence.store(lo - 1, Ordering::Release);
                self.ring.set_failed(self.consumer, true);
                return ProcessorExit::Failed { lo, hi: chunk_hi, failure };
            }
            sequence.store(hi, Ordering::Release);
            self.ring.record_batch(self.consumer, (hi - next + 1) as u64);
            self.ring.signal_waiters();
            next = hi + 1;
        }
    }

    /// Hand `lo..=hi` to the handler chunk by chunk, applying the error policy.
    fn handle(&mut self, lo: i64, hi: i64) -> std::result::Result<(), (i64, i64, HandlerFailure)> {
        let mut start = lo;
        while start <= hi {
            let end = self.ring.contiguous_end(start, hi);
            let n = (end - start + 1) as usize;
            // SAFETY: `start..=end` is published (the barrier said so), not yet released by this
            // consumer (so no producer can overwrite it), and contiguous in the slot array.
            let data = unsafe { std::slice::from_raw_parts(self.ring.slot_ptr(start), n * self.ring.slot_size()) };
            let chunk = Chunk { lo: start, hi: end, data, slot_size: self.ring.slot_size(), end_of_batch: end == hi };
            let mut attempt = 1;
            loop {
                match self.handler.on_batch(&chunk) {
                    Ok(()) => break,
                    Err(f) => {
                        self.ring.record_error(self.consumer);
                        self.handler.on_error(&f, start, end, attempt);
                        match self.policy {
                            ErrorPolicy::Continue => break,
                            ErrorPolicy::Retry(n) if attempt <= n => attempt += 1,
                            _ => return Err((start, end, f)),
                        }
                    }
                }
            }
            start = end + 1;
        }
        Ok(())
    }
}

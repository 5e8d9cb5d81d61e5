//! The native steady-state path allocates nothing per event: a counting global allocator shows
//! that publishing through either sequencer to a `BatchEventProcessor` running the native
//! `ChecksumHandler` or `LatencyHandler` performs no heap allocation once warmed up.
//!
//! Only threads that take part (producers and the processor thread) count, so the test
//! harness's own threads cannot disturb the figures; the binary also holds a single test.

use market_intel_core::{
    monotonic_ns, BatchEventProcessor, ChecksumHandler, Chunk, EventHandler, HandlerFailure, LatencyHandler,
    MultiProducerSequencer, ProcessorExit, ProducerKind, RingBuffer, RingOptions, SequenceBarrier, Sequencer,
    SingleProducerSequencer, ThreadOptions, WaitStrategy,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts every allocation (including zeroed allocations and reallocations) made by threads
/// that called [`count_this_thread`].
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count_this_thread() {
    COUNTED.with(|c| c.set(true));
}

fn note_allocation() {
    if COUNTED.with(|c| c.get()) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// counting has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's layout, which meets `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` was allocated by this allocator (hence by `System`) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (hence by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Runs a native handler unchanged; only marks the processor thread as counted.
#[derive(Debug)]
struct Counted<H>(H);

impl<H: EventHandler> EventHandler for Counted<H> {
    fn on_start(&mut self) {
        count_this_thread();
        self.0.on_start();
    }
    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        self.0.on_batch(chunk)
    }
}

#[derive(Clone, Copy, Debug)]
enum Handler {
    Checksum,
    Latency,
}

/// Spin (yielding) until `cond` holds; never allocates.
fn wait_until(cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::yield_now();
    }
}

fn write_event(ring: &RingBuffer, seq: i64, handler: Handler) {
    let value = match handler {
        Handler::Checksum => seq,
        Handler::Latency => monotonic_ns(),
    };
    // SAFETY: the caller claimed `seq` and has not published it yet.
    unsafe { ring.slot_mut(seq) }.copy_from_slice(&value.to_ne_bytes());
}

/// Publish `n` events after a warm-up and return how many allocations the steady phase made.
fn steady_allocations(kind: ProducerKind, handler: Handler, wait: WaitStrategy, batch: i64, n: u64) -> usize {
    const WARM_UP: u64 = 20_000;
    let ring = RingBuffer::create(&RingOptions::new(1024, 8).producer(kind)).unwrap();
    let c = ring.add_consumer("c", &[], wait.is_blocking()).unwrap();
    let barrier = SequenceBarrier::new(ring.clone(), 0, wait);
    let checksum = ChecksumHandler::new(0);
    let latency = LatencyHandler::new(0);
    fn spawn<H: EventHandler + 'static>(
        p: BatchEventProcessor<H>,
    ) -> (Arc<market_intel_core::ProcessorControl>, std::thread::JoinHandle<ProcessorExit>) {
        let control = p.control();
        let h = p.spawn(&ThreadOptions { name: Some("no-alloc".into()), ..Default::default() }).unwrap();
        (control, std::thread::spawn(move || h.join().unwrap().1))
    }
    let (control, joiner) = match handler {
        Handler::Checksum => spawn(BatchEventProcessor::new(ring.clone(), c, barrier, Counted(checksum.clone()))),
        Handler::Latency => spawn(BatchEventProcessor::new(ring.clone(), c, barrier, Counted(latency.clone()))),
    };

    // Producers: this thread for a single-producer ring, two threads for a multi-producer ring.
    // Phase 1 is the warm-up, phase 2 the measured run; threads exist before either starts.
    let phase = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer_threads: Vec<_> = match kind {
        ProducerKind::Single => Vec::new(),
        ProducerKind::Multi => (0..2)
            .map(|_| {
                let (ring, phase, stop) = (ring.clone(), phase.clone(), stop.clone());
                std::thread::spawn(move || {
                    count_this_thread();
                    let mut p = MultiProducerSequencer::new(ring.clone()).unwrap();
                    let mut done_phase = 0;
                    while !stop.load(Ordering::Acquire) {
                        let ph = phase.load(Ordering::Acquire);
                        if ph == done_phase {
                            std::thread::yield_now();
                            continue;
                        }
                        let count = if ph == 1 { WARM_UP / 2 } else { n / 2 };
                        publish(&mut p, &ring, count, batch, handler);
                        done_phase = ph;
                    }
                })
            })
            .collect(),
    };
    let mut single = (kind == ProducerKind::Single).then(|| SingleProducerSequencer::new(ring.clone()).unwrap());
    let mut run_phase = |ph: u64, count: u64| match &mut single {
        Some(p) => publish(p, &ring, count, batch, handler),
        None => phase.store(ph, Ordering::Release),
    };
    let seq = ring.consumer_sequence(c);

    run_phase(1, WARM_UP);
    wait_until(|| seq.load(Ordering::Acquire) == WARM_UP as i64 - 1);
    let before = allocations();
    run_phase(2, n);
    wait_until(|| seq.load(Ordering::Acquire) == (WARM_UP + n) as i64 - 1);
    let during = allocations() - before;

    stop.store(true, Ordering::Release);
    for t in producer_threads {
        t.join().unwrap();
    }
    control.halt();
    assert!(matches!(joiner.join().unwrap(), ProcessorExit::Halted));
    match handler {
        Handler::Checksum => {
            assert_eq!(checksum.count(), WARM_UP + n);
            // Single producer: the values are the sequences 0..WARM_UP+n.
            if kind == ProducerKind::Single {
                let total = WARM_UP + n;
                assert_eq!(checksum.sum(), total * (total - 1) / 2);
            }
        }
        Handler::Latency => assert_eq!(latency.recorder().snapshot().count, WARM_UP + n),
    }
    during
}

fn publish(p: &mut dyn Sequencer, ring: &RingBuffer, count: u64, batch: i64, handler: Handler) {
    let mut left = count as i64;
    while left > 0 {
        let n = batch.min(left);
        let hi = p.next(n).unwrap();
        for s in hi - n + 1..=hi {
            write_event(ring, s, handler);
        }
        p.publish(hi - n + 1, hi);
        left -= n;
    }
}

/// A producer waiting on a stalled consumer of its own process (backoff, closed-ring and
/// dead-consumer checks, timeout) allocates nothing either.
fn waiting_allocations(kind: ProducerKind) -> usize {
    let ring = RingBuffer::create(&RingOptions::new(8, 8).producer(kind)).unwrap();
    let _stalled = ring.add_consumer("stalled", &[], false).unwrap();
    let mut p: Box<dyn Sequencer> = match kind {
        ProducerKind::Single => Box::new(SingleProducerSequencer::new(ring.clone()).unwrap()),
        ProducerKind::Multi => Box::new(MultiProducerSequencer::new(ring.clone()).unwrap()),
    };
    let hi = p.next(8).unwrap();
    p.publish(0, hi);
    let before = allocations();
    // Longer than the producer's dead-consumer check interval, so that check runs several times.
    let r = p.next_timeout(1, Some(Duration::from_millis(150)));
    let during = allocations() - before;
    assert!(matches!(r, Err(market_intel_core::Error::Timeout { .. })), "{r:?}");
    during
}

#[test]
fn steady_state_publishing_and_handling_allocate_nothing() {
    count_this_thread();
    for kind in [ProducerKind::Single, ProducerKind::Multi] {
        assert_eq!(waiting_allocations(kind), 0, "{kind:?}: a waiting producer allocated");
    }
    let mut report = Vec::new();
    for kind in [ProducerKind::Single, ProducerKind::Multi] {
        for handler in [Handler::Checksum, Handler::Latency] {
            for wait in [WaitStrategy::YIELDING, WaitStrategy::default()] {
                for batch in [1, 16] {
                    let small = steady_allocations(kind, handler, wait, batch, 100_000);
                    let large = steady_allocations(kind, handler, wait, batch, 1_000_000);
                    report.push(format!("{kind:?} {handler:?} {wait:?} batch {batch}: 100k -> {small}, 1M -> {large}"));
                    assert_eq!(
                        (small, large),
                        (0, 0),
                        "{kind:?} {handler:?} {wait:?} batch {batch}: allocations in the steady phase"
                    );
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

//! Shared helpers of the integration tests: a self-checking slot format, a verifying consumer,
//! a small PRNG and a runner that builds a topology from a description and checks every event.
//!
//! Slot format (32 bytes, native endian):
//! ```text
//! 0  sequence written by the producer (must equal the sequence it is read at)
//! 8  producer id
//! 16 index of the event in that producer's stream (0, 1, 2, ...)
//! 24 checksum of the three fields above
//! ```
//! A consumer that reads a slot at sequence `s` checks that the slot says `s` (a producer that
//! wrapped too early would have written `s + capacity`), that the checksum matches (no torn or
//! half-written slot), that each producer's indices arrive as 0, 1, 2, ... (per-producer order,
//! nothing lost or duplicated), that sequences arrive contiguously (exactly once), and that every
//! consumer it depends on has already released the sequence.

#![allow(dead_code)]

use market_intel_core::{
    BatchEventProcessor, Chunk, ConsumerId, Error, EventHandler, EventPoller, HandlerFailure, MultiProducerSequencer,
    ProcessorExit, ProducerKind, RingBuffer, RingOptions, SequenceBarrier, Sequencer, SingleProducerSequencer,
    ThreadOptions, WaitStrategy,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of a test slot.
pub const SLOT: usize = 32;

/// Longest any single run may take before the test fails instead of hanging.
pub const RUN_DEADLINE: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

/// Run heavy tests of one binary one at a time: the machine has 2 cores and spinning consumers
/// of parallel tests would starve each other.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The four wait strategies.
pub fn all_waits() -> [WaitStrategy; 4] {
    [WaitStrategy::BusySpin, WaitStrategy::YIELDING, WaitStrategy::SLEEPING, WaitStrategy::default()]
}

/// xorshift64* PRNG: deterministic for a seed, no dependencies.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Spread the seed so that small consecutive seeds give unrelated streams; never zero.
        Self(mix(seed, 0x5eed, 0) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// A 64-bit mix of three values (finaliser of splitmix64 over a combination).
pub fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut x = a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn word(slot: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(slot[i * 8..i * 8 + 8].try_into().unwrap())
}

/// Fill a slot for `sequence`.
pub fn write_slot(slot: &mut [u8], sequence: i64, producer: u64, index: u64) {
    slot[0..8].copy_from_slice(&(sequence as u64).to_ne_bytes());
    slot[8..16].copy_from_slice(&producer.to_ne_bytes());
    slot[16..24].copy_from_slice(&index.to_ne_bytes());
    slot[24..32].copy_from_slice(&mix(sequence as u64, producer, index).to_ne_bytes());
}

/// Decode a slot: `(sequence, producer, index)` if its checksum matches.
pub fn read_slot(slot: &[u8]) -> Option<(i64, u64, u64)> {
    let (s, p, i, c) = (word(slot, 0), word(slot, 1), word(slot, 2), word(slot, 3));
    (mix(s, p, i) == c).then_some((s as i64, p, i))
}

/// The checks every consumer of a test topology runs on what it reads.
#[derive(Debug)]
pub struct Verifier {
    pub name: String,
    ring: RingBuffer,
    deps: Vec<ConsumerId>,
    /// The next sequence expected.
    pub next_seq: i64,
    /// Per producer: the next index expected.
    pub next_index: Vec<u64>,
    /// Events seen.
    pub count: u64,
    /// Chunks seen and the largest one.
    pub chunks: u64,
    pub largest_chunk: usize,
    /// Violations (the first few are kept with details).
    pub violations: u64,
    pub messages: Vec<String>,
}

impl Verifier {
    pub fn new(name: &str, ring: RingBuffer, deps: Vec<ConsumerId>, producers: usize, first: i64) -> Self {
        Self {
            name: name.to_owned(),
            ring,
            deps,
            next_seq: first,
            next_index: vec![0; producers],
            count: 0,
            chunks: 0,
            largest_chunk: 0,
            violations: 0,
            messages: Vec::new(),
        }
    }

    fn fail(&mut self, msg: String) {
        self.violations += 1;
        if self.messages.len() < 8 {
            self.messages.push(format!("{}: {msg}", self.name));
        }
    }

    /// Check the contiguous slots `lo..=hi` whose bytes are `data`.
    pub fn check(&mut self, lo: i64, hi: i64, data: &[u8]) {
        self.chunks += 1;
        let n = (hi - lo + 1) as usize;
        self.largest_chunk = self.largest_chunk.max(n);
        if data.len() != n * SLOT {
            self.fail(format!("chunk {lo}..={hi} has {} bytes", data.len()));
            return;
        }
        if lo != self.next_seq {
            self.fail(format!("expected sequence {} next, got a chunk {lo}..={hi}", self.next_seq));
        }
        // The dependency invariant: every upstream consumer has released `hi` already.
        for k in 0..self.deps.len() {
            let d = self.deps[k];
            let up = self.ring.consumer_sequence(d).load(Ordering::Acquire);
            if up < hi {
                self.fail(format!("read {lo}..={hi} while dependency {d} had only released {up}"));
            }
        }
        for (k, slot) in data.chunks_exact(SLOT).enumerate() {
            let seq = lo + k as i64;
            match read_slot(slot) {
                None => self.fail(format!("slot {seq}: checksum mismatch (torn or overwritten)")),
                Some((s, p, i)) => {
                    if s != seq {
                        self.fail(format!("slot {seq}: holds sequence {s} (overwritten or stale)"));
                    }
                    match self.next_index.get(p as usize).copied() {
                        None => self.fail(format!("slot {seq}: unknown producer {p}")),
                        Some(expected) => {
                            if i != expected {
                                self.fail(format!("slot {seq}: producer {p} index {i}, expected {expected}"));
                            }
                            self.next_index[p as usize] = i + 1;
                        }
                    }
                }
            }
        }
        // Read again at the end: the slots are still ours, so a producer must not have touched them.
        for (k, slot) in data.chunks_exact(SLOT).enumerate() {
            let seq = lo + k as i64;
            if read_slot(slot).map(|(s, _, _)| s) != Some(seq) {
                self.fail(format!("slot {seq}: changed while the consumer held it"));
            }
        }
        self.count += n as u64;
        self.next_seq = hi + 1;
    }

    /// Panic with the details unless exactly `per_producer` events of every producer were seen.
    pub fn assert_complete(&self, first: i64, per_producer: &[u64], context: &str) {
        assert!(self.violations == 0, "{context}: {} violation(s): {:#?}", self.violations, self.messages);
        let total: u64 = per_producer.iter().sum();
        assert_eq!(self.count, total, "{context}: {} saw {} events, expected {total}", self.name, self.count);
        assert_eq!(self.next_seq, first + total as i64, "{context}: {} stopped at the wrong sequence", self.name);
        assert_eq!(self.next_index, per_producer, "{context}: {} per-producer counts", self.name);
    }
}

impl EventHandler for Verifier {
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        if chunk.slot_size != SLOT {
            self.fail(format!("slot size {}", chunk.slot_size));
        }
        self.check(chunk.lo, chunk.hi, chunk.data);
        Ok(())
    }
}

/// How producers claim slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// `next(1)` for every event.
    One,
    /// `next(n)` (the last claim may be smaller).
    Fixed(i64),
    /// Random sizes in `1..=max`, with `next` or with `try_next` retried until it succeeds.
    Random { max: i64, try_next: bool },
}

/// One consumer of a test topology.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// Indices (into the spec's consumer list) of the consumers this one runs after.
    pub deps: Vec<usize>,
    pub wait: WaitStrategy,
    /// Pull with an [`EventPoller`] on a plain thread instead of a [`BatchEventProcessor`].
    pub poller: bool,
    pub max_batch: Option<usize>,
}

impl ConsumerSpec {
    pub fn new(deps: &[usize], wait: WaitStrategy) -> Self {
        Self { deps: deps.to_vec(), wait, poller: false, max_batch: None }
    }
    pub fn poller(mut self, poller: bool) -> Self {
        self.poller = poller;
        self
    }
}

/// A whole test topology.
#[derive(Clone, Debug)]
pub struct TopologySpec {
    pub capacity: usize,
    pub kind: ProducerKind,
    pub producers: usize,
    pub events_per_producer: u64,
    pub claim: Claim,
    pub consumers: Vec<ConsumerSpec>,
    pub seed: u64,
}

impl TopologySpec {
    pub fn describe(&self) -> String {
        let cs: Vec<String> = self
            .consumers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "c{i}{}{:?}<-{:?}{}",
                    if c.poller { "[poll]" } else { "" },
                    c.wait,
                    c.deps,
                    c.max_batch.map(|m| format!(" max{m}")).unwrap_or_default()
                )
            })
            .collect();
        format!(
            "seed={} cap={} {:?} {}P x {} claim={:?} consumers=[{}]",
            self.seed,
            self.capacity,
            self.kind,
            self.producers,
            self.events_per_producer,
            self.claim,
            cs.join(", ")
        )
    }
}

/// Produce `count` events of producer `id` through `seq`, claiming as `claim` says.
pub fn produce(
    seq: &mut dyn Sequencer,
    id: u64,
    count: u64,
    claim: Claim,
    rng: &mut Rng,
    abort: &AtomicBool,
) -> Result<(), String> {
    let ring = seq.ring().clone();
    let deadline = Instant::now() + RUN_DEADLINE;
    let mut index = 0u64;
    while index < count {
        if abort.load(Ordering::Relaxed) {
            return Err(format!("producer {id}: aborted at index {index}"));
        }
        let left = (count - index) as i64;
        let (n, use_try) = match claim {
            Claim::One => (1, false),
            Claim::Fixed(n) => (n.min(left), false),
            Claim::Random { max, try_next } => (rng.range(1, max as u64) as i64, try_next && rng.chance(50)),
        };
        let n = n.min(left).min(ring.capacity());
        let hi = if use_try {
            loop {
                match seq.try_next(n) {
                    Ok(hi) => break hi,
                    Err(Error::InsufficientCapacity { .. }) => {
                        if Instant::now() > deadline || abort.load(Ordering::Relaxed) {
                            return Err(format!("producer {id}: try_next({n}) never found room"));
                        }
                        std::thread::yield_now();
                    }
                    Err(e) => return Err(format!("producer {id}: try_next({n}): {e}")),
                }
            }
        } else {
            let left_time = deadline.saturating_duration_since(Instant::now());
            seq.next_timeout(n, Some(left_time)).map_err(|e| format!("producer {id}: next({n}): {e}"))?
        };
        let lo = hi - n + 1;
        for s in lo..=hi {
            // SAFETY: `lo..=hi` was claimed by this producer and is not yet published.
            let slot = unsafe { ring.slot_mut(s) };
            write_slot(slot, s, id, index);
            index += 1;
        }
        seq.publish(lo, hi);
    }
    Ok(())
}

/// What a run of a topology produced: one verifier per consumer, in spec order.
#[derive(Debug)]
pub struct RunReport {
    pub verifiers: Vec<Verifier>,
    pub elapsed: Duration,
}

enum Running {
    Processor(Arc<market_intel_core::ProcessorControl>, JoinHandle<(Verifier, ProcessorExit, Vec<String>)>),
    Poller(JoinHandle<Verifier>),
}

fn join_within<T>(h: JoinHandle<T>, deadline: Instant, what: &str) -> T {
    while !h.is_finished() {
        assert!(Instant::now() < deadline, "{what}: did not finish in time (hang)");
        std::thread::sleep(Duration::from_millis(1));
    }
    h.join().unwrap_or_else(|_| panic!("{what}: thread panicked"))
}

/// Build the topology, publish everything, drain every consumer at the last sequence and check
/// each consumer saw every event exactly once, in per-producer order, after its dependencies.
pub fn run_topology(spec: &TopologySpec) -> RunReport {
    let ctx = spec.describe();
    let start = Instant::now();
    let deadline = start + RUN_DEADLINE;
    let ring = RingBuffer::create(&RingOptions::new(spec.capacity, SLOT).producer(spec.kind))
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let mut ids: Vec<ConsumerId> = Vec::new();
    for (i, c) in spec.consumers.iter().enumerate() {
        let deps: Vec<ConsumerId> = c.deps.iter().map(|&d| ids[d]).collect();
        ids.push(ring.add_consumer(&format!("c{i}"), &deps, c.wait.is_blocking()).unwrap());
    }
    let first = ring.cursor() + 1;
    let total = spec.producers as u64 * spec.events_per_producer;
    let last = first + total as i64 - 1;
    let abort = Arc::new(AtomicBool::new(false));

    let mut running = Vec::new();
    for (i, c) in spec.consumers.iter().enumerate() {
        let deps: Vec<ConsumerId> = c.deps.iter().map(|&d| ids[d]).collect();
        let mask = deps.iter().fold(0u64, |m, &d| m | 1 << d);
        let barrier = SequenceBarrier::new(ring.clone(), mask, c.wait);
        let verifier = Verifier::new(&format!("c{i}"), ring.clone(), deps, spec.producers, first);
        if c.poller {
            let poller = EventPoller::new(ring.clone(), ids[i], barrier);
            let (ring, abort) = (ring.clone(), abort.clone());
            let max = c.max_batch.map_or(1 << 40, |m| m as i64);
            let h = ThreadOptions { name: Some(format!("poller-c{i}")), ..Default::default() }
                .spawn(move |_| {
                    let mut v = verifier;
                    while v.next_seq <= last && !abort.load(Ordering::Relaxed) {
                        let (lo, hi) = match poller.wait(max, Some(Duration::from_millis(200))) {
                            Ok(r) => r,
                            Err(Error::Timeout { .. }) => continue,
                            Err(e) => panic!("poller: {e}"),
                        };
                        let hi = hi.min(last);
                        let n = (hi - lo + 1) as usize;
                        // SAFETY: the poller returned a published, contiguous run it has not
                        // committed, so no producer writes it while we read.
                        let data = unsafe { std::slice::from_raw_parts(ring.slot_ptr(lo), n * SLOT) };
                        v.check(lo, hi, data);
                        poller.commit(hi);
                    }
                    v
                })
                .unwrap();
            running.push(Running::Poller(h));
        } else {
            let mut p = BatchEventProcessor::new(ring.clone(), ids[i], barrier, verifier);
            if let Some(m) = c.max_batch {
                p = p.with_max_batch(m).unwrap();
            }
            let control = p.control();
            let h = p.spawn(&ThreadOptions { name: Some(format!("proc-c{i}")), ..Default::default() }).unwrap();
            running.push(Running::Processor(control, h));
        }
    }

    let go = Arc::new(std::sync::Barrier::new(spec.producers));
    let mut producers = Vec::new();
    for p in 0..spec.producers {
        let (ring, abort, go) = (ring.clone(), abort.clone(), go.clone());
        let (kind, count, claim, seed) = (spec.kind, spec.events_per_producer, spec.claim, spec.seed);
        producers.push(std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ ((p as u64 + 1) * 0x1234_5678));
            let mut seq: Box<dyn Sequencer> = match kind {
                ProducerKind::Single => Box::new(SingleProducerSequencer::new(ring).unwrap()),
                ProducerKind::Multi => Box::new(MultiProducerSequencer::new(ring).unwrap()),
            };
            go.wait();
            let r = produce(seq.as_mut(), p as u64, count, claim, &mut rng, &abort);
            if r.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut errors = Vec::new();
    for h in producers {
        if let Err(e) = join_within(h, deadline, &ctx) {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        abort.store(true, Ordering::Relaxed);
        for r in &running {
            if let Running::Processor(c, _) = r {
                c.halt();
            }
        }
        panic!("{ctx}: producers failed: {errors:?}");
    }
    assert_eq!(ring.cursor(), last, "{ctx}: cursor after all producers finished");

    // Drain: each processor must stop only after it handled everything up to `last`.
    for r in &running {
        if let Running::Processor(c, _) = r {
            c.drain(last);
        }
    }
    let mut verifiers = Vec::new();
    for (i, r) in running.into_iter().enumerate() {
        let v = match r {
            Running::Processor(_, h) => {
                let (v, exit, _) = join_within(h, deadline, &ctx);
                assert!(matches!(exit, ProcessorExit::Drained), "{ctx}: c{i} ended with {exit:?}");
                v
            }
            Running::Poller(h) => join_within(h, deadline, &ctx),
        };
        assert_eq!(ring.consumer_sequence(ids[i]).load(Ordering::Acquire), last, "{ctx}: c{i} released sequence");
        let per: Vec<u64> = vec![spec.events_per_producer; spec.producers];
        v.assert_complete(first, &per, &ctx);
        verifiers.push(v);
    }
    let elapsed = start.elapsed();
    eprintln!("{:>8.1} ms  {ctx}", elapsed.as_secs_f64() * 1e3);
    RunReport { verifiers, elapsed }
}

//! Randomized stress of whole topologies plus the processor's error policies, life-cycle
//! callbacks, batch limit, halting and the idle cost of the blocking wait strategy.
//!
//! The random cases are generated from a seed with a self-written xorshift PRNG; a failing case
//! prints its seed, and `MI_STRESS_SEED=<seed>` re-runs exactly that case. `MI_STRESS_SECS`
//! changes the time budget of the random sweep (default 8 s).

mod common;

use common::*;
use market_intel_core::{
    BatchEventProcessor, Chunk, ConsumerId, Error, ErrorPolicy, EventHandler, EventPoller, HandlerFailure,
    MultiProducerSequencer, ProcessorExit, ProducerKind, RingBuffer, RingOptions, SequenceBarrier, Sequencer,
    SingleProducerSequencer, ThreadOptions, WaitStrategy,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Random topologies

/// A random case, fully determined by its seed.
fn random_spec(seed: u64) -> TopologySpec {
    let mut r = Rng::new(seed);
    let capacity = 1usize << r.range(1, 10);
    let kind = if r.chance(50) { ProducerKind::Single } else { ProducerKind::Multi };
    let producers = if kind == ProducerKind::Single { 1 } else { r.range(1, 4) as usize };
    let n_consumers = r.range(1, 4) as usize;
    let mut consumers = Vec::new();
    for i in 0..n_consumers {
        let deps: Vec<usize> = (0..i).filter(|_| r.chance(40)).collect();
        let mut c = ConsumerSpec::new(&deps, r.pick(&all_waits()));
        c.poller = r.chance(30);
        if r.chance(30) {
            c.max_batch = Some(r.range(1, capacity as u64) as usize);
        }
        consumers.push(c);
    }
    let max_claim = capacity.min(64) as u64;
    let claim = match r.range(0, 3) {
        0 => Claim::One,
        1 => Claim::Fixed(r.range(1, max_claim) as i64),
        _ => Claim::Random { max: r.range(1, max_claim) as i64, try_next: r.chance(50) },
    };
    // Spinning consumers that outnumber the 2 cores only move when preempted: keep those short.
    let threads = producers + n_consumers;
    let spinning = consumers.iter().any(|c| c.wait == WaitStrategy::BusySpin);
    let total = if spinning && threads > 2 { (capacity as u64 * 16).clamp(64, 2_000) } else { r.range(2_000, 20_000) };
    TopologySpec {
        capacity,
        kind,
        producers,
        events_per_producer: (total / producers as u64).max(1),
        claim,
        consumers,
        seed,
    }
}

#[test]
fn randomized_topologies() {
    let _serial = serial();
    if let Ok(seed) = std::env::var("MI_STRESS_SEED") {
        let seed: u64 = seed.parse().expect("MI_STRESS_SEED is a number");
        run_topology(&random_spec(seed));
        return;
    }
    let budget =
        Duration::from_secs_f64(std::env::var("MI_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(8.0));
    let start = Instant::now();
    let mut cases = 0u64;
    let mut events = 0u64;
    let mut seed = 0x51_7e55;
    // At least MIN_CASES cases however slow the machine is, then as many as fit in the budget.
    const MIN_CASES: u64 = 10;
    while cases < MIN_CASES || start.elapsed() < budget {
        let spec = random_spec(seed);
        let outcome = std::panic::catch_unwind(|| run_topology(&spec));
        if let Err(p) = outcome {
            eprintln!("random case failed; re-run it with MI_STRESS_SEED={seed}");
            std::panic::resume_unwind(p);
        }
        cases += 1;
        events += spec.events_per_producer * spec.producers as u64 * spec.consumers.len() as u64;
        seed += 1;
    }
    eprintln!("{cases} random topologies, {events} verified deliveries in {:.1?}", start.elapsed());
}

// ---------------------------------------------------------------------------------------------
// A scripted handler for policy and life-cycle tests

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Start,
    Batch(i64, i64),
    Error(i64, i64, u32),
    Timeout(i64),
    Shutdown,
}

/// Fails every chunk containing a sequence of `fail` as many times as the map says.
#[derive(Debug)]
struct Scripted {
    fail: HashMap<i64, u32>,
    log: Arc<Mutex<Vec<Call>>>,
}

impl Scripted {
    fn new(fail: &[(i64, u32)]) -> (Self, Arc<Mutex<Vec<Call>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (Self { fail: fail.iter().copied().collect(), log: log.clone() }, log)
    }
    fn push(&self, c: Call) {
        self.log.lock().unwrap().push(c);
    }
}

impl EventHandler for Scripted {
    fn on_start(&mut self) {
        self.push(Call::Start);
    }
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        for s in chunk.lo..=chunk.hi {
            if let Some(left) = self.fail.get_mut(&s) {
                if *left > 0 {
                    *left -= 1;
                    return Err(format!("scripted failure at {s}").into());
                }
            }
        }
        self.push(Call::Batch(chunk.lo, chunk.hi));
        Ok(())
    }
    fn on_timeout(&mut self, sequence: i64) -> Result<(), HandlerFailure> {
        self.push(Call::Timeout(sequence));
        Ok(())
    }
    fn on_error(&mut self, failure: &HandlerFailure, lo: i64, hi: i64, attempt: u32) {
        assert!(failure.to_string().starts_with("scripted failure"));
        self.push(Call::Error(lo, hi, attempt));
    }
    fn on_shutdown(&mut self) {
        self.push(Call::Shutdown);
    }
}

/// A single-producer ring of `capacity` with one consumer and `events` published events.
fn filled_ring(capacity: usize, events: i64, wait: WaitStrategy) -> (RingBuffer, ConsumerId, SingleProducerSequencer) {
    let ring = RingBuffer::create(&RingOptions::new(capacity, SLOT)).unwrap();
    let c = ring.add_consumer("c", &[], wait.is_blocking()).unwrap();
    let mut p = SingleProducerSequencer::new(ring.clone()).unwrap();
    publish(&ring, &mut p, events);
    (ring, c, p)
}

fn publish(ring: &RingBuffer, p: &mut dyn Sequencer, events: i64) {
    for _ in 0..events {
        let s = p.next(1).unwrap();
        // SAFETY: `s` is claimed by this producer and not yet published.
        write_slot(unsafe { ring.slot_mut(s) }, s, 0, s as u64);
        p.publish(s, s);
    }
}

fn processor<H: EventHandler>(ring: &RingBuffer, c: ConsumerId, wait: WaitStrategy, h: H) -> BatchEventProcessor<H> {
    BatchEventProcessor::new(ring.clone(), c, SequenceBarrier::new(ring.clone(), 0, wait), h)
}

fn batches(log: &[Call]) -> Vec<(i64, i64)> {
    log.iter().filter_map(|c| if let Call::Batch(a, b) = c { Some((*a, *b)) } else { None }).collect()
}

fn handled(log: &[Call]) -> Vec<i64> {
    batches(log).into_iter().flat_map(|(a, b)| a..=b).collect()
}

fn errors(log: &[Call]) -> Vec<(i64, i64, u32)> {
    log.iter().filter_map(|c| if let Call::Error(a, b, n) = c { Some((*a, *b, *n)) } else { None }).collect()
}

// ---------------------------------------------------------------------------------------------
// Error policies

#[test]
fn continue_policy_counts_errors_and_goes_on() {
    let (ring, c, _p) = filled_ring(256, 200, WaitStrategy::YIELDING);
    let fail: Vec<(i64, u32)> = (0..200).filter(|s| s % 10 == 3).map(|s| (s, u32::MAX)).collect();
    let (h, log) = Scripted::new(&fail);
    let proc_ = processor(&ring, c, WaitStrategy::YIELDING, h)
        .with_max_batch(1)
        .unwrap()
        .with_error_policy(ErrorPolicy::Continue);
    let control = proc_.control();
    control.drain(199);
    let (_, exit, _) = proc_.spawn(&ThreadOptions::default()).unwrap().join().unwrap();
    assert!(matches!(exit, ProcessorExit::Drained), "{exit:?}");
    let log = log.lock().unwrap();
    let expected: Vec<i64> = (0..200).filter(|s| s % 10 != 3).collect();
    assert_eq!(handled(&log), expected, "every event but the failing ones, once each");
    let errs = errors(&log);
    assert_eq!(errs, fail.iter().map(|&(s, _)| (s, s, 1)).collect::<Vec<_>>(), "one attempt per failing event");
    assert_eq!(ring.consumer_info(c).errors, 20);
    assert_eq!(ring.consumer_sequence(c).load(Ordering::Acquire), 199, "failed events are released too");
}

#[test]
fn retry_policy_succeeds_when_the_handler_fails_fewer_times_than_the_limit() {
    let (ring, c, _p) = filled_ring(64, 20, WaitStrategy::default());
    // Retry(3): the handler may be called again up to 3 times, so 2 and even 3 failures recover.
    let (h, log) = Scripted::new(&[(5, 2), (9, 3), (12, 1)]);
    let proc_ = processor(&ring, c, WaitStrategy::default(), h)
        .with_max_batch(1)
        .unwrap()
        .with_error_policy(ErrorPolicy::Retry(3));
    proc_.control().drain(19);
    let (_, exit, _) = proc_.spawn(&ThreadOptions::default()).unwrap().join().unwrap();
    assert!(matches!(exit, ProcessorExit::Drained), "{exit:?}");
    let log = log.lock().unwrap();
    assert_eq!(handled(&log), (0..20).collect::<Vec<_>>(), "every event handled exactly once");
    assert_eq!(errors(&log), vec![(5, 5, 1), (5, 5, 2), (9, 9, 1), (9, 9, 2), (9, 9, 3), (12, 12, 1)]);
    assert_eq!(ring.consumer_info(c).errors, 6);
}

#[test]
fn retry_policy_gives_up_after_the_limit_and_reports_the_chunk() {
    let (ring, c, _p) = filled_ring(64, 20, WaitStrategy::BusySpin);
    let (h, log) = Scripted::new(&[(5, 4)]);
    let proc_ = processor(&ring, c, WaitStrategy::BusySpin, h)
        .with_max_batch(1)
        .unwrap()
        .with_error_policy(ErrorPolicy::Retry(3));
    let (_, exit, _) = proc_.spawn(&ThreadOptions::default()).unwrap().join().unwrap();
    match exit {
        ProcessorExit::Failed { lo, hi, failure } => {
            assert_eq!((lo, hi), (5, 5));
            assert_eq!(failure.to_string(), "scripted failure at 5");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let log = log.lock().unwrap();
    assert_eq!(errors(&log), vec![(5, 5, 1), (5, 5, 2), (5, 5, 3), (5, 5, 4)]);
    assert_eq!(handled(&log), (0..5).collect::<Vec<_>>());
    assert_eq!(ring.consumer_sequence(c).load(Ordering::Acquire), 4);
    assert_eq!(log.last(), Some(&Call::Shutdown), "on_shutdown runs after a failure too");
}

#[test]
fn halt_policy_fails_and_leaves_the_sequence_before_the_failed_chunk() {
    for wait in all_waits() {
        // Capacity 8: publish 0..=5, pretend they were consumed, then publish 6..=11, which wraps.
        // The processor's first batch is 6..=11, handed over as chunks 6..=7 and 8..=11.
        let (ring, c, mut p) = filled_ring(8, 6, wait);
        ring.reset_consumer(c, 5);
        publish(&ring, &mut p, 6);
        let (h, log) = Scripted::new(&[(9, 1)]);
        let proc_ = processor(&ring, c, wait, h);
        let (_, exit, _) = proc_.spawn(&ThreadOptions::default()).unwrap().join().unwrap();
        match exit {
            ProcessorExit::Failed { lo, hi, .. } => assert_eq!((lo, hi), (8, 11), "{wait:?}"),
            other => panic!("{wait:?}: expected Failed, got {other:?}"),
        }
        let log = log.lock().unwrap();
        assert_eq!(batches(&log), vec![(6, 7)], "{wait:?}: the chunk before the failure was handled");
        assert_eq!(errors(&log), vec![(8, 11, 1)], "{wait:?}");
        assert_eq!(ring.consumer_sequence(c).load(Ordering::Acquire), 7, "{wait:?}: released up to the failure");
        assert_eq!(ring.consumer_info(c).errors, 1);
        // The failed events 8..=11 stay unreleased and keep gating the producer: 4 slots are free.
        assert_eq!(p.remaining_capacity(), 4, "{wait:?}");
        publish(&ring, &mut p, 4);
        // A producer blocked by the halted consumer is told so instead of waiting forever.
        match p.next_timeout(1, Some(Duration::from_secs(20))) {
            Err(Error::ConsumerFailed { consumer, sequence }) => assert_eq!((consumer.as_str(), sequence), ("c", 7)),
            other => panic!("{wait:?}: expected ConsumerFailed, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Life cycle, batch limit, halt

#[test]
fn start_timeout_and_shutdown_callbacks() {
    let _serial = serial();
    for wait in all_waits() {
        let (ring, c, mut p) = filled_ring(16, 0, wait);
        let (h, log) = Scripted::new(&[]);
        let proc_ = processor(&ring, c, wait, h).with_timeout(Some(Duration::from_millis(10)));
        let control = proc_.control();
        let jh = proc_.spawn(&ThreadOptions::default()).unwrap();
        let wait_log = |pred: &dyn Fn(&[Call]) -> bool| {
            let t = Instant::now();
            while !pred(&log.lock().unwrap()) {
                assert!(t.elapsed() < Duration::from_secs(10), "{wait:?}: {:?}", log.lock().unwrap());
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        wait_log(&|l| l.contains(&Call::Timeout(-1)));
        publish(&ring, &mut p, 3);
        wait_log(&|l| l.contains(&Call::Timeout(2)));
        control.halt();
        let (_, exit, _) = jh.join().unwrap();
        assert!(matches!(exit, ProcessorExit::Halted), "{wait:?}: {exit:?}");
        let log = log.lock().unwrap();
        assert_eq!(log.first(), Some(&Call::Start), "{wait:?}");
        assert_eq!(log.last(), Some(&Call::Shutdown), "{wait:?}");
        assert_eq!(log.iter().filter(|c| **c == Call::Start).count(), 1);
        assert_eq!(log.iter().filter(|c| **c == Call::Shutdown).count(), 1);
        assert_eq!(handled(&log), vec![0, 1, 2], "{wait:?}");
        // Timeouts report the last handled sequence: -1 before the batch, 2 after it.
        let first_batch = log.iter().position(|c| matches!(c, Call::Batch(..))).unwrap();
        for (i, call) in log.iter().enumerate() {
            if let Call::Timeout(s) = call {
                assert_eq!(*s, if i < first_batch { -1 } else { 2 }, "{wait:?}: {log:?}");
            }
        }
    }
}

#[test]
fn max_batch_is_respected() {
    let _serial = serial();
    for wait in all_waits() {
        for max in [1usize, 3, 7, 64] {
            // A backlog of 100 events: every batch but the last is exactly `max` (or a ring wrap).
            let (ring, c, _p) = filled_ring(128, 100, wait);
            let (h, log) = Scripted::new(&[]);
            let proc_ = processor(&ring, c, wait, h).with_max_batch(max).unwrap();
            proc_.control().drain(99);
            let (_, exit, _) = proc_.spawn(&ThreadOptions::default()).unwrap().join().unwrap();
            assert!(matches!(exit, ProcessorExit::Drained));
            let log = log.lock().unwrap();
            let b = batches(&log);
            assert!(b.iter().all(|(lo, hi)| (hi - lo + 1) as usize <= max), "{wait:?} max {max}: {b:?}");
            assert_eq!(b.len(), 100usize.div_ceil(max), "{wait:?} max {max}: {b:?}");
            assert_eq!(handled(&log), (0..100).collect::<Vec<_>>());
        }
        // While a producer keeps publishing into a small ring.
        let ring = RingBuffer::create(&RingOptions::new(16, SLOT)).unwrap();
        let c = ring.add_consumer("c", &[], wait.is_blocking()).unwrap();
        let v = Verifier::new("c", ring.clone(), vec![], 1, 0);
        let proc_ = processor(&ring, c, wait, v).with_max_batch(5).unwrap();
        let control = proc_.control();
        let jh = proc_.spawn(&ThreadOptions::default()).unwrap();
        let mut p = SingleProducerSequencer::new(ring.clone()).unwrap();
        let never = AtomicBool::new(false);
        produce(&mut p, 0, 5_000, Claim::Fixed(16), &mut Rng::new(1), &never).unwrap();
        control.drain(4_999);
        let (v, _, _) = jh.join().unwrap();
        v.assert_complete(0, &[5_000], &format!("{wait:?}"));
        assert!(v.largest_chunk <= 5, "{wait:?}: chunk of {}", v.largest_chunk);
    }
}

fn join_in_time<T>(h: std::thread::JoinHandle<T>, what: &str) -> T {
    let t = Instant::now();
    while !h.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}: did not stop after halt");
        std::thread::sleep(Duration::from_millis(1));
    }
    h.join().unwrap()
}

#[test]
fn halt_stops_an_idle_processor_with_every_wait_strategy() {
    let _serial = serial();
    for wait in all_waits() {
        for timeout in [None, Some(Duration::from_millis(5))] {
            let (ring, c, _p) = filled_ring(8, 0, wait);
            let (h, log) = Scripted::new(&[]);
            let proc_ = processor(&ring, c, wait, h).with_timeout(timeout);
            let control = proc_.control();
            let jh = proc_.spawn(&ThreadOptions::default()).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            assert!(control.is_running());
            control.halt();
            assert!(!control.is_running());
            let (_, exit, _) = join_in_time(jh, &format!("{wait:?}"));
            assert!(matches!(exit, ProcessorExit::Halted), "{wait:?}: {exit:?}");
            assert_eq!(log.lock().unwrap().last(), Some(&Call::Shutdown));
        }
    }
}

#[test]
fn halt_stops_a_busy_processor_with_every_wait_strategy() {
    let _serial = serial();
    for wait in all_waits() {
        let ring = RingBuffer::create(&RingOptions::new(16, SLOT)).unwrap();
        let c = ring.add_consumer("c", &[], wait.is_blocking()).unwrap();
        let v = Verifier::new("c", ring.clone(), vec![], 1, 0);
        let proc_ = processor(&ring, c, wait, v);
        let control = proc_.control();
        let jh = proc_.spawn(&ThreadOptions::default()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (ring.clone(), stop.clone());
        let producer = std::thread::spawn(move || {
            let mut p = SingleProducerSequencer::new(r2.clone()).unwrap();
            let mut i = 0u64;
            while !s2.load(Ordering::Relaxed) {
                if let Ok(s) = p.try_next(1) {
                    // SAFETY: `s` is claimed by this producer and not yet published.
                    write_slot(unsafe { r2.slot_mut(s) }, s, 0, i);
                    p.publish(s, s);
                    i += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            i
        });
        std::thread::sleep(Duration::from_millis(50));
        control.halt();
        let (v, exit, _) = join_in_time(jh, &format!("{wait:?}"));
        stop.store(true, Ordering::Relaxed);
        let produced = producer.join().unwrap();
        assert!(matches!(exit, ProcessorExit::Halted), "{wait:?}: {exit:?}");
        assert!(v.violations == 0, "{:?}", v.messages);
        assert!(v.count <= produced);
        assert_eq!(ring.consumer_sequence(c).load(Ordering::Acquire), v.next_seq - 1);
    }
}

#[test]
fn halt_and_timeout_end_a_wait_on_a_claimed_but_unpublished_slot() {
    // Multi-producer: a producer claimed sequence 0 and never publishes it (it crashed or is
    // descheduled). The cursor says 0 exists; the availability flag says it is not published.
    let _serial = serial();
    for wait in all_waits() {
        let ring = RingBuffer::create(&RingOptions::new(8, SLOT).producer(ProducerKind::Multi)).unwrap();
        let c = ring.add_consumer("c", &[], wait.is_blocking()).unwrap();
        let mut p = MultiProducerSequencer::new(ring.clone()).unwrap();
        assert_eq!(p.next(1).unwrap(), 0);
        let (h, log) = Scripted::new(&[]);
        let proc_ = processor(&ring, c, wait, h).with_timeout(Some(Duration::from_millis(5)));
        let control = proc_.control();
        let jh = proc_.spawn(&ThreadOptions::default()).unwrap();
        let t = Instant::now();
        while !log.lock().unwrap().contains(&Call::Timeout(-1)) {
            assert!(t.elapsed() < Duration::from_secs(10), "{wait:?}: on_timeout never called during the gap");
            std::thread::sleep(Duration::from_millis(1));
        }
        control.halt();
        let (_, exit, _) = join_in_time(jh, &format!("{wait:?} gap"));
        assert!(matches!(exit, ProcessorExit::Halted), "{wait:?}: {exit:?}");
        assert!(batches(&log.lock().unwrap()).is_empty(), "the unpublished slot was never handed out");
        // A poller waiting on the same gap returns on alert.
        let c2 = ring.add_consumer("poller", &[], wait.is_blocking()).unwrap();
        ring.reset_consumer(c2, -1);
        let poller = EventPoller::new(ring.clone(), c2, SequenceBarrier::new(ring.clone(), 0, wait));
        assert_eq!(poller.poll(10), None);
        assert!(matches!(poller.wait(10, Some(Duration::from_millis(20))), Err(Error::Timeout { .. })));
        let b = poller.barrier().clone();
        let alerter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.alert();
        });
        assert!(matches!(poller.wait(10, None), Err(Error::Alerted)), "{wait:?}");
        alerter.join().unwrap();
        // Once published, the gap closes for a new barrier.
        p.publish(0, 0);
        poller.barrier().clear_alert();
        assert_eq!(poller.wait(10, Some(Duration::from_secs(5))).unwrap(), (0, 0));
    }
}

// ---------------------------------------------------------------------------------------------
// Idle cost of the blocking wait strategy

fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_THREAD measures the calling thread.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Measures the CPU time of the processor thread between `on_start` and `on_shutdown`.
#[derive(Debug, Default)]
struct CpuMeter {
    start: Option<(Instant, Duration)>,
    result: Option<(Duration, Duration)>,
}

impl EventHandler for CpuMeter {
    fn on_start(&mut self) {
        self.start = Some((Instant::now(), thread_cpu_time()));
    }
    fn on_batch(&mut self, _chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        Ok(())
    }
    fn on_shutdown(&mut self) {
        let (wall0, cpu0) = self.start.unwrap();
        self.result = Some((wall0.elapsed(), thread_cpu_time() - cpu0));
    }
}

#[test]
fn idle_blocking_consumer_does_not_burn_cpu() {
    let _serial = serial();
    // A processor that handles a few events and then idles (and a dependent one behind it).
    let (ring, c, mut p) = filled_ring(64, 0, WaitStrategy::default());
    let c2 = ring.add_consumer("behind", &[c], true).unwrap();
    let first = processor(&ring, c, WaitStrategy::default(), CpuMeter::default());
    let second = BatchEventProcessor::new(
        ring.clone(),
        c2,
        SequenceBarrier::new(ring.clone(), 1 << c, WaitStrategy::default()),
        CpuMeter::default(),
    );
    let (k1, k2) = (first.control(), second.control());
    let (j1, j2) = (first.spawn(&ThreadOptions::default()).unwrap(), second.spawn(&ThreadOptions::default()).unwrap());
    publish(&ring, &mut p, 10);
    // A pull consumer idling in `wait` on this thread.
    let c3 = ring.add_consumer("poller", &[], true).unwrap();
    let poller = EventPoller::new(ring.clone(), c3, SequenceBarrier::new(ring.clone(), 0, WaitStrategy::default()));
    let (wall0, cpu0) = (Instant::now(), thread_cpu_time());
    assert!(matches!(poller.wait(1, Some(Duration::from_millis(300))), Err(Error::Timeout { .. })));
    let (wall, cpu) = (wall0.elapsed(), thread_cpu_time() - cpu0);
    k1.halt();
    k2.halt();
    let mut report = vec![("poller", wall, cpu)];
    for (name, j) in [("processor", j1), ("dependent processor", j2)] {
        let (m, exit, _) = j.join().unwrap();
        assert!(matches!(exit, ProcessorExit::Halted));
        let (wall, cpu) = m.result.unwrap();
        report.push((name, wall, cpu));
    }
    for (name, wall, cpu) in report {
        assert!(wall >= Duration::from_millis(290), "{name}: idled only {wall:?}");
        assert!(
            cpu.as_secs_f64() < 0.2 * wall.as_secs_f64(),
            "{name}: {cpu:?} of CPU in {wall:?} idle: the blocking wait should sleep"
        );
    }
}

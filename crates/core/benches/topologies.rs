//! Native throughput and latency of the LMAX topologies, measured like the Java LMAX anchor
//! (`shared/anchors/lmax-java`): ring of 65,536 slots, one i64 per 8-byte slot, values 0..N-1,
//! consumers sum what they see and the sums are checked after every run; the timer runs from
//! the first publish until every consumer has seen the last sequence. Each row does one warm-up
//! run (N/4, not reported) and then `--reps` measured runs; the table shows the median.
//!
//! ```text
//! cargo bench -p market-intel-core --bench topologies -- --events 50000000 --reps 3
//! cargo bench -p market-intel-core --bench topologies -- --events 2000000 --pings 100000 --reps 1
//! options: --events N  --pings N  --reps R  --only NAME[/WAIT[/BATCH]][,...]  --json PATH
//!          --cap SECONDS (per run, default 10)  --quiet-wait SECONDS (default 0)  --pin
//! ```
//!
//! Topologies: one_to_one (batch 1, 10, 100), one_to_three_multicast, one_to_three_pipeline,
//! diamond, three_to_one (events/s), ping_pong_latency (one-way = RTT/2, ns). `busyspin` and
//! `yielding` are the wait strategies of the consumers (and of the ping-pong sides).

use market_intel_core::{
    monotonic_ns, BatchEventProcessor, ChecksumHandler, Chunk, ConsumerId, EventHandler, HandlerFailure,
    LatencyRecorder, LatencySnapshot, MultiProducerSequencer, ProcessorControl, ProducerKind, RingBuffer, RingOptions,
    SequenceBarrier, Sequencer, SingleProducerSequencer, ThreadOptions, WaitStrategy,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const RING: usize = 1 << 16;
const IMPLEMENTATION: &str = "market-intel native";
const THROUGHPUT: &str = "events/s";
const LATENCY: &str = "ns";

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Debug)]
struct Args {
    events: u64,
    pings: u64,
    reps: usize,
    only: Vec<String>,
    json: Option<String>,
    cap: Duration,
    quiet_wait: f64,
    pin: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "error: {msg}\nusage: topologies [--events N] [--pings N] [--reps R] [--only NAME[/WAIT[/BATCH]][,...]] [--json PATH] \
         [--cap SECONDS] [--quiet-wait SECONDS] [--pin]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        events: 20_000_000,
        pings: 1_000_000,
        reps: 3,
        only: Vec::new(),
        json: None,
        cap: Duration::from_secs(10),
        quiet_wait: 0.0,
        pin: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match flag.as_str() {
            "--events" => a.events = value("--events").parse().unwrap_or_else(|_| usage("--events: a count")),
            "--pings" => a.pings = value("--pings").parse().unwrap_or_else(|_| usage("--pings: a count")),
            "--reps" => a.reps = value("--reps").parse().unwrap_or_else(|_| usage("--reps: a count")),
            "--only" => a.only.extend(value("--only").split(',').map(str::to_owned)),
            "--json" => a.json = Some(value("--json")),
            "--cap" => {
                a.cap = Duration::from_secs_f64(value("--cap").parse().unwrap_or_else(|_| usage("--cap: seconds")))
            }
            "--quiet-wait" => {
                a.quiet_wait = value("--quiet-wait").parse().unwrap_or_else(|_| usage("--quiet-wait: seconds"))
            }
            "--pin" => a.pin = true,
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if a.reps == 0 || a.events < 300 || a.pings == 0 {
        usage("--reps and --pings must be at least 1, --events at least 300");
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Noise: CPU used by other processes during a run (like the anchor's meter)

fn system_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0) };
    let f: Vec<u64> = line.split_ascii_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if f.len() < 8 {
        return (0, 0);
    }
    // user + nice + system + irq + softirq, and steal.
    (f[0] + f[1] + f[2] + f[5] + f[6], f[7])
}

fn self_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0 };
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    // Fields 14 and 15 (utime, stime); `f` starts at field 3.
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

struct Meter {
    sys: (u64, u64),
    me: u64,
    t: Instant,
}

impl Meter {
    fn start() -> Self {
        Self { sys: system_jiffies(), me: self_jiffies(), t: Instant::now() }
    }
    /// (foreign %, steal %) of all cores since `start`.
    fn stop(&self) -> (f64, f64) {
        let wall = self.t.elapsed().as_secs_f64();
        let sys = system_jiffies();
        let me = self_jiffies();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = wall * 100.0 * ncpu; // USER_HZ = 100
        let foreign = (sys.0.saturating_sub(self.sys.0) as f64 - me.saturating_sub(self.me) as f64).max(0.0);
        (foreign / capacity * 100.0, sys.1.saturating_sub(self.sys.1) as f64 / capacity * 100.0)
    }
}

/// Wait (at most `max_s`) until two 250 ms windows in a row show < 5 % foreign CPU.
fn wait_quiet(max_s: f64) {
    let t = Instant::now();
    let mut quiet = 0;
    while quiet < 2 && t.elapsed().as_secs_f64() < max_s {
        let m = Meter::start();
        std::thread::sleep(Duration::from_millis(250));
        quiet = if m.stop().0 < 5.0 { quiet + 1 } else { 0 };
    }
}

// ---------------------------------------------------------------------------------------------
// Consumers

/// Runs a native handler unchanged and tells the bench when its thread is up.
#[derive(Debug)]
struct Started<H> {
    inner: H,
    started: Arc<AtomicUsize>,
}

impl<H: EventHandler> EventHandler for Started<H> {
    fn on_start(&mut self) {
        self.inner.on_start();
        self.started.fetch_add(1, Ordering::Release);
    }
    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        self.inner.on_batch(chunk)
    }
}

fn thread_options(name: &str, core: Option<usize>) -> ThreadOptions {
    ThreadOptions { name: Some(name.to_owned()), core, realtime_priority: None }
}

fn pin_main(pin: bool) {
    if pin {
        let w = thread_options("main", Some(0)).apply_to_current();
        if !w.is_empty() {
            eprintln!("warning: {w:?}");
        }
    }
}

type ConsumerThread = JoinHandle<(Started<ChecksumHandler>, market_intel_core::ProcessorExit, Vec<String>)>;

/// Consumer threads running `ChecksumHandler`s.
struct Consumers {
    ids: Vec<ConsumerId>,
    handlers: Vec<ChecksumHandler>,
    controls: Vec<Arc<ProcessorControl>>,
    threads: Vec<ConsumerThread>,
}

impl Consumers {
    /// `deps[i]`: indices of the consumers consumer `i` runs after.
    fn start(ring: &RingBuffer, deps: &[&[usize]], wait: WaitStrategy, pin: bool) -> Self {
        let mut ids = Vec::new();
        for (i, d) in deps.iter().enumerate() {
            let on: Vec<ConsumerId> = d.iter().map(|&k| ids[k]).collect();
            ids.push(ring.add_consumer(&format!("c{i}"), &on, wait.is_blocking()).expect("consumer slot"));
        }
        let started = Arc::new(AtomicUsize::new(0));
        let mut c = Consumers { ids, handlers: Vec::new(), controls: Vec::new(), threads: Vec::new() };
        for (i, d) in deps.iter().enumerate() {
            let mask = d.iter().fold(0u64, |m, &k| m | 1 << c.ids[k]);
            let h = ChecksumHandler::new(0);
            let p = BatchEventProcessor::new(
                ring.clone(),
                c.ids[i],
                SequenceBarrier::new(ring.clone(), mask, wait),
                Started { inner: h.clone(), started: started.clone() },
            );
            c.controls.push(p.control());
            let core = pin.then_some(1);
            c.threads.push(p.spawn(&thread_options(&format!("consumer-{i}"), core)).expect("spawn consumer"));
            c.handlers.push(h);
        }
        while started.load(Ordering::Acquire) < deps.len() {
            std::thread::yield_now();
        }
        c
    }

    /// Wait until every consumer has released `last`.
    fn await_sequence(&self, ring: &RingBuffer, last: i64) {
        loop {
            let min = self.ids.iter().map(|&id| ring.consumer_sequence(id).load(Ordering::Acquire)).min().unwrap();
            if min >= last {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Halt, join and check that each consumer saw `count` events summing to `sum`.
    fn finish(self, count: u64, sum: u64) -> Result<(), String> {
        for c in &self.controls {
            c.halt();
        }
        for t in self.threads {
            t.join().map_err(|_| "consumer thread panicked".to_owned())?;
        }
        for (i, h) in self.handlers.iter().enumerate() {
            if h.count() != count || h.sum() != sum {
                return Err(format!(
                    "consumer {i}: saw {} events summing to {}, expected {count} summing to {sum}",
                    h.count(),
                    h.sum()
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput runs

struct Run {
    events_per_s: f64,
    capped: bool,
}

/// Publish `n` values (0..n-1), `batch` per claim; stop early after `deadline`.
/// Returns (published, wrapping sum of the values).
#[inline(never)]
fn produce(ring: &RingBuffer, p: &mut impl Sequencer, n: u64, batch: i64, deadline: Instant) -> (u64, u64) {
    let mut sum = 0u64;
    if batch == 1 {
        for i in 0..n {
            let s = p.next(1).expect("claim");
            // SAFETY: `s` is claimed by this producer and not yet published; slots are 8 bytes
            // and 8-byte aligned.
            unsafe { (ring.slot_ptr(s) as *mut i64).write(i as i64) };
            p.publish(s, s);
            sum = sum.wrapping_add(i);
            if i & 0xffff == 0xffff && Instant::now() > deadline {
                return (i + 1, sum);
            }
        }
        return (n, sum);
    }
    let mut i = 0u64;
    let mut claims = 0u32;
    while i < n {
        let hi = p.next(batch).expect("claim");
        let lo = hi - (batch - 1);
        for s in lo..=hi {
            let v = i + (s - lo) as u64;
            // SAFETY: as above, for every sequence of the claimed range.
            unsafe { (ring.slot_ptr(s) as *mut i64).write(v as i64) };
            sum = sum.wrapping_add(v);
        }
        p.publish(lo, hi);
        i += batch as u64;
        claims += 1;
        if claims == 1024 {
            claims = 0;
            if Instant::now() > deadline {
                break;
            }
        }
    }
    (i, sum)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topology {
    OneToOne,
    Multicast,
    Pipeline,
    Diamond,
    ThreeToOne,
    PingPong,
}

impl Topology {
    fn name(self) -> &'static str {
        match self {
            Topology::OneToOne => "one_to_one",
            Topology::Multicast => "one_to_three_multicast",
            Topology::Pipeline => "one_to_three_pipeline",
            Topology::Diamond => "diamond",
            Topology::ThreeToOne => "three_to_one",
            Topology::PingPong => "ping_pong_latency",
        }
    }
    fn deps(self) -> &'static [&'static [usize]] {
        match self {
            Topology::OneToOne | Topology::ThreeToOne | Topology::PingPong => &[&[]],
            Topology::Multicast => &[&[], &[], &[]],
            Topology::Pipeline => &[&[], &[0], &[1]],
            Topology::Diamond => &[&[], &[], &[0, 1]],
        }
    }
    fn note(self) -> &'static str {
        match self {
            Topology::OneToOne => "Rust, 1 consumer thread; event = i64 in an 8-byte slot",
            Topology::Multicast => "events published/s; each seen by all 3 consumers",
            Topology::Pipeline => "events/s through C1 -> C2 -> C3",
            Topology::Diamond => "events/s through C1, C2 -> C3",
            Topology::ThreeToOne => "multi-producer ring, total over 3 producers",
            Topology::PingPong => "Rust threads, two rings, RTT/2 (HdrHistogram)",
        }
    }
}

fn run_one_producer(topology: Topology, wait: WaitStrategy, batch: i64, n: u64, a: &Args) -> Result<Run, String> {
    let n = n / batch as u64 * batch as u64;
    let ring = RingBuffer::create(&RingOptions::new(RING, 8)).map_err(|e| e.to_string())?;
    let consumers = Consumers::start(&ring, topology.deps(), wait, a.pin);
    let mut p = SingleProducerSequencer::new(ring.clone()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let (published, sum) = produce(&ring, &mut p, n, batch, t0 + a.cap);
    consumers.await_sequence(&ring, published as i64 - 1);
    let elapsed = t0.elapsed();
    consumers.finish(published, sum)?;
    Ok(Run { events_per_s: published as f64 / elapsed.as_secs_f64(), capped: published != n })
}

fn run_three_to_one(wait: WaitStrategy, n: u64, a: &Args) -> Result<Run, String> {
    const PRODUCERS: u64 = 3;
    let per = n / PRODUCERS;
    let ring =
        RingBuffer::create(&RingOptions::new(RING, 8).producer(ProducerKind::Multi)).map_err(|e| e.to_string())?;
    let consumers = Consumers::start(&ring, Topology::ThreeToOne.deps(), wait, a.pin);
    let go = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + a.cap + Duration::from_secs(1);
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let (ring, go) = (ring.clone(), go.clone());
            let core = a.pin.then_some(i as usize % 2);
            thread_options(&format!("producer-{i}"), core)
                .spawn(move |_| {
                    let mut p = MultiProducerSequencer::new(ring.clone()).expect("producer");
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    produce(&ring, &mut p, per, 1, deadline)
                })
                .expect("spawn producer")
        })
        .collect();
    let t0 = Instant::now();
    go.store(true, Ordering::Release);
    let mut published = 0;
    let mut sum = 0u64;
    for t in threads {
        let (p, s) = t.join().map_err(|_| "producer panicked".to_owned())?;
        published += p;
        sum = sum.wrapping_add(s);
    }
    consumers.await_sequence(&ring, published as i64 - 1);
    let elapsed = t0.elapsed();
    consumers.finish(published, sum)?;
    Ok(Run { events_per_s: published as f64 / elapsed.as_secs_f64(), capped: published != per * PRODUCERS })
}

// ---------------------------------------------------------------------------------------------
// Ping-pong latency

/// Echoes every ping back on the pong ring.
struct Ponger {
    pong: RingBuffer,
    producer: SingleProducerSequencer,
}

impl EventHandler for Ponger {
    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        for (_, slot) in chunk.iter() {
            let s = self.producer.next(1)?;
            // SAFETY: `s` is claimed by this producer and not yet published.
            unsafe { self.pong.slot_mut(s) }.copy_from_slice(slot);
            self.producer.publish(s, s);
        }
        Ok(())
    }
}

/// Sends the first ping when it starts; records (now - stamp) / 2 for every echo and sends the
/// next ping stamped with the clock, until `target` round trips are done.
struct Pinger {
    ping: RingBuffer,
    producer: SingleProducerSequencer,
    recorder: Arc<LatencyRecorder>,
    target: u64,
    count: u64,
    deadline: Instant,
    done: Arc<AtomicBool>,
    span: Option<(Instant, Instant)>,
    checks: u64,
}

impl Pinger {
    #[inline]
    fn send(&mut self) -> Result<(), HandlerFailure> {
        let s = self.producer.next(1)?;
        // SAFETY: `s` is claimed by this producer and not yet published.
        unsafe { self.ping.slot_mut(s) }.copy_from_slice(&monotonic_ns().to_ne_bytes());
        self.producer.publish(s, s);
        Ok(())
    }
}

impl EventHandler for Pinger {
    fn on_start(&mut self) {
        self.span = Some((Instant::now(), Instant::now()));
        self.send().expect("first ping");
    }
    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        for (_, slot) in chunk.iter() {
            let now = monotonic_ns();
            let stamp = i64::from_ne_bytes(slot.try_into().expect("8-byte slot"));
            if stamp <= 0 || stamp > now {
                return Err(format!("echo carries a bad stamp {stamp} (now {now})").into());
            }
            self.checks += 1;
            self.recorder.record(((now - stamp) / 2) as u64);
            self.count += 1;
            if self.count >= self.target || (self.count & 1023 == 0 && Instant::now() > self.deadline) {
                if let Some((start, _)) = self.span {
                    self.span = Some((start, Instant::now()));
                }
                self.done.store(true, Ordering::Release);
                return Ok(());
            }
            self.send()?;
        }
        Ok(())
    }
}

struct LatRun {
    snap: LatencySnapshot,
    rtt_per_s: f64,
    capped: bool,
}

fn run_ping_pong(wait: WaitStrategy, n: u64, a: &Args) -> Result<LatRun, String> {
    let ping = RingBuffer::create(&RingOptions::new(RING, 8)).map_err(|e| e.to_string())?;
    let pong = RingBuffer::create(&RingOptions::new(RING, 8)).map_err(|e| e.to_string())?;
    let c_ping = ping.add_consumer("ponger", &[], wait.is_blocking()).map_err(|e| e.to_string())?;
    let c_pong = pong.add_consumer("pinger", &[], wait.is_blocking()).map_err(|e| e.to_string())?;
    let recorder = Arc::new(LatencyRecorder::new());
    let done = Arc::new(AtomicBool::new(false));
    let ponger = BatchEventProcessor::new(
        ping.clone(),
        c_ping,
        SequenceBarrier::new(ping.clone(), 0, wait),
        Ponger { pong: pong.clone(), producer: SingleProducerSequencer::new(pong.clone()).map_err(|e| e.to_string())? },
    );
    let pinger = BatchEventProcessor::new(
        pong.clone(),
        c_pong,
        SequenceBarrier::new(pong.clone(), 0, wait),
        Pinger {
            ping: ping.clone(),
            producer: SingleProducerSequencer::new(ping.clone()).map_err(|e| e.to_string())?,
            recorder: recorder.clone(),
            target: n,
            count: 0,
            deadline: Instant::now() + a.cap,
            done: done.clone(),
            span: None,
            checks: 0,
        },
    );
    let (k1, k2) = (ponger.control(), pinger.control());
    let t1 = ponger.spawn(&thread_options("ponger", a.pin.then_some(1))).map_err(|e| e.to_string())?;
    let t2 = pinger.spawn(&thread_options("pinger", a.pin.then_some(0))).map_err(|e| e.to_string())?;
    // The supervising thread wakes rarely: on 2 cores, each wake-up preempts one of the two
    // spinning threads and shows up in the tail (a 1 ms poll cost about 15 % at p99.9).
    while !done.load(Ordering::Acquire) {
        if t1.is_finished() || t2.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    k1.halt();
    k2.halt();
    let (_, e1, _) = t1.join().map_err(|_| "ponger panicked")?;
    let (p, e2, _) = t2.join().map_err(|_| "pinger panicked")?;
    for e in [e1, e2] {
        if !matches!(e, market_intel_core::ProcessorExit::Halted) {
            return Err(format!("ping-pong side ended with {e:?}"));
        }
    }
    let snap = recorder.snapshot();
    if snap.count != p.count || p.checks != p.count || p.count == 0 {
        return Err(format!("recorded {} of {} round trips", snap.count, p.count));
    }
    let (start, end) = p.span.ok_or("pinger never started")?;
    Ok(LatRun { snap, rtt_per_s: p.count as f64 / (end - start).as_secs_f64(), capped: p.count != n })
}

// ---------------------------------------------------------------------------------------------
// Rows, table, JSON

struct Row {
    topology: Topology,
    wait: &'static str,
    batch: i64,
    metric: &'static str,
    size: u64,
    values: Vec<f64>,
    median: f64,
    percentiles: Option<[f64; 5]>,
    rtt_per_s: Option<f64>,
    foreign: Vec<f64>,
    steal: Vec<f64>,
    flag: String,
    error: Option<String>,
}

fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn wait_strategy(name: &str) -> WaitStrategy {
    match name {
        "busyspin" => WaitStrategy::BusySpin,
        "yielding" => WaitStrategy::YIELDING,
        _ => unreachable!("wait strategy {name}"),
    }
}

/// One measured run: the figure (events/s, or the p50 in ns), latency percentiles with the
/// round trips per second, and whether the run hit the time cap.
type Sample = (f64, Option<([f64; 5], f64)>, bool);

fn run_row(topology: Topology, wait: &'static str, batch: i64, a: &Args) -> Row {
    let ws = wait_strategy(wait);
    let latency = topology == Topology::PingPong;
    let size = if latency { a.pings } else { a.events };
    let mut row = Row {
        topology,
        wait,
        batch,
        metric: if latency { LATENCY } else { THROUGHPUT },
        size,
        values: Vec::new(),
        median: f64::NAN,
        percentiles: None,
        rtt_per_s: None,
        foreign: Vec::new(),
        steal: Vec::new(),
        flag: "ok".into(),
        error: None,
    };
    let mut pct_runs: Vec<[f64; 5]> = Vec::new();
    let mut rtts = Vec::new();
    let mut capped = false;
    let once = |k: u64| -> Result<Sample, String> {
        match topology {
            Topology::PingPong => {
                let r = run_ping_pong(ws, k, a)?;
                let s = r.snap;
                let p = [s.p50 as f64, s.p90 as f64, s.p99 as f64, s.p999 as f64, s.max as f64];
                Ok((p[0], Some((p, r.rtt_per_s)), r.capped))
            }
            Topology::ThreeToOne => run_three_to_one(ws, k, a).map(|r| (r.events_per_s, None, r.capped)),
            _ => run_one_producer(topology, ws, batch, k, a).map(|r| (r.events_per_s, None, r.capped)),
        }
    };
    // Warm-up: a quarter of the size, not reported.
    if let Err(e) = once((size / 4).max(300)) {
        row.error = Some(e);
        row.flag = "FAILED".into();
        return row;
    }
    for _ in 0..a.reps {
        if a.quiet_wait > 0.0 {
            wait_quiet(a.quiet_wait);
        }
        let m = Meter::start();
        match once(size) {
            Ok((v, lat, c)) => {
                let (f, s) = m.stop();
                row.values.push(v);
                row.foreign.push(f);
                row.steal.push(s);
                capped |= c;
                if let Some((p, rtt)) = lat {
                    pct_runs.push(p);
                    rtts.push(rtt);
                }
            }
            Err(e) => {
                row.error = Some(e);
                row.flag = "FAILED".into();
                return row;
            }
        }
    }
    row.median = median(&row.values);
    if !pct_runs.is_empty() {
        let mut p = [0.0; 5];
        for (k, slot) in p.iter_mut().enumerate() {
            *slot = median(&pct_runs.iter().map(|r| r[k]).collect::<Vec<_>>());
        }
        row.percentiles = Some(p);
        row.rtt_per_s = Some(median(&rtts));
    }
    row.flag = if capped {
        "CAPPED".into()
    } else if row.foreign.iter().any(|&f| f >= 5.0) {
        "NOISY".into()
    } else {
        "ok".into()
    };
    row
}

fn fmt_rate(v: f64) -> String {
    format!("{:.1} M/s", v / 1e6)
}

fn print_row(r: &Row) {
    let runs = |f: &dyn Fn(f64) -> String| r.values.iter().map(|&v| f(v)).collect::<Vec<_>>().join(" / ");
    let noise = format!("{} (foreign {:.0}%)", r.flag, r.foreign.iter().copied().fold(0.0, f64::max));
    if let Some(e) = &r.error {
        println!("{:<24} {:<9} {:>5}  FAILED: {e}", r.topology.name(), r.wait, r.batch);
    } else if let Some(p) = r.percentiles {
        println!(
            "{:<24} {:<9} {:>5}  p50 {:>6.0}  p90 {:>6.0}  p99 {:>6.0}  p99.9 {:>7.0}  max {:>9.0} ns  {:.2} M RTT/s  [{}]  {noise}",
            r.topology.name(),
            r.wait,
            r.batch,
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            r.rtt_per_s.unwrap_or(0.0) / 1e6,
            runs(&|v| format!("{v:.0}")),
        );
    } else {
        println!(
            "{:<24} {:<9} {:>5}  {:>12}  [{}]  {noise}",
            r.topology.name(),
            r.wait,
            r.batch,
            fmt_rate(r.median),
            runs(&|v| format!("{:.1}", v / 1e6)),
        );
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json_list(xs: &[f64]) -> String {
    format!("[{}]", xs.iter().map(|&v| json_num(v)).collect::<Vec<_>>().join(", "))
}

fn to_json(rows: &[Row], a: &Args) -> String {
    let mut out = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let pct = match r.percentiles {
            Some(p) => format!(
                "{{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"p99.9\": {}, \"max\": {}}}",
                json_num(p[0]),
                json_num(p[1]),
                json_num(p[2]),
                json_num(p[3]),
                json_num(p[4])
            ),
            None => "null".into(),
        };
        let mut notes = r.topology.note().to_owned();
        if let Some(e) = &r.error {
            notes = format!("FAILED: {e}");
        }
        let _ = writeln!(
            out,
            "  {{\"topology\": {}, \"implementation\": {}, \"wait\": {}, \"batch\": {}, \"metric\": {}, \
             \"values\": {}, \"median\": {}, \"percentiles\": {pct}, \"notes\": {}, \"higher_is_better\": {}, \
             \"params\": {{\"source\": \"crates/core/benches/topologies.rs\", \"wait\": {}, \"batch\": {}, \
             \"size\": {}, \"reps\": {}, \"warmup\": {}, \"ring\": {RING}, \"slot_size\": 8, \"pinned\": {}, \
             \"rtt_per_s\": {}, \"foreign_cpu_pct\": {}, \"steal_pct\": {}, \"flag\": {}}}}}{}",
            json_str(r.topology.name()),
            json_str(IMPLEMENTATION),
            json_str(r.wait),
            r.batch,
            json_str(r.metric),
            json_list(&r.values),
            json_num(r.median),
            json_str(&notes),
            r.metric != LATENCY,
            json_str(r.wait),
            r.batch,
            r.size,
            r.values.len(),
            (r.size / 4).max(300),
            a.pin,
            r.rtt_per_s.map_or("null".into(), json_num),
            json_list(&r.foreign),
            json_list(&r.steal),
            json_str(&r.flag),
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    out.push_str("]\n");
    out
}

/// `--only` entries: `NAME`, `NAME/WAIT` or `NAME/WAIT/BATCH` (for example `one_to_one/busyspin/10`).
fn selects(only: &str, t: Topology, wait: &str, batch: i64) -> bool {
    let mut parts = only.split('/');
    parts.next() == Some(t.name())
        && parts.next().is_none_or(|w| w == wait)
        && parts.next().is_none_or(|b| b.parse() == Ok(batch))
}

fn main() {
    let a = parse_args();
    pin_main(a.pin);
    let plan: Vec<(Topology, &'static str, i64)> = vec![
        (Topology::OneToOne, "busyspin", 1),
        (Topology::OneToOne, "busyspin", 10),
        (Topology::OneToOne, "busyspin", 100),
        (Topology::OneToOne, "yielding", 1),
        (Topology::OneToOne, "yielding", 10),
        (Topology::OneToOne, "yielding", 100),
        (Topology::Multicast, "yielding", 1),
        (Topology::Multicast, "busyspin", 1),
        (Topology::Pipeline, "yielding", 1),
        (Topology::Diamond, "yielding", 1),
        (Topology::ThreeToOne, "yielding", 1),
        (Topology::ThreeToOne, "busyspin", 1),
        (Topology::PingPong, "busyspin", 1),
        (Topology::PingPong, "yielding", 1),
    ];
    let plan: Vec<_> =
        plan.into_iter().filter(|&(t, w, b)| a.only.is_empty() || a.only.iter().any(|o| selects(o, t, w, b))).collect();
    if plan.is_empty() {
        usage(&format!("--only {:?} matches no topology", a.only));
    }
    let start = Instant::now();
    println!(
        "market-intel native: ring {RING} x 8 B, events {} (pings {}), {} rep(s) after a N/4 warm-up, {} cores{}",
        a.events,
        a.pings,
        a.reps,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if a.pin { ", pinned" } else { "" }
    );
    println!("{:<24} {:<9} {:>5}  {:>12}  [per run, M/s]  flag", "topology", "wait", "batch", "median");
    let mut rows = Vec::new();
    for (t, w, b) in plan {
        let r = run_row(t, w, b, &a);
        print_row(&r);
        rows.push(r);
    }
    println!("total {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = &a.json {
        if let Err(e) = std::fs::write(path, to_json(&rows, &a)) {
            eprintln!("error: writing {path}: {e}");
            std::process::exit(1);
        }
        println!("wrote {path}");
    }
    if rows.iter().any(|r| r.error.is_some()) {
        std::process::exit(1);
    }
}

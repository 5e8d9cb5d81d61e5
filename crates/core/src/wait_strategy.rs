//! How a consumer waits for a sequence: busy-spin, yielding, sleeping with backoff, or blocking
//! on a futex that lives in the ring itself (so it works across processes).
//!
//! Every wait can time out and every wait returns early when alerted.

use crate::error::{Error, Result};
use crate::ring_buffer::RingBuffer;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest single futex sleep: a safety net against a wake-up lost while a consumer registers.
const MAX_SLEEP_SLICE: Duration = Duration::from_millis(50);

/// A wait strategy, chosen per consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin on the sequence: lowest latency, burns a core.
    BusySpin,
    /// Spin `spin` times, then yield the core between checks.
    Yielding { spin: u32 },
    /// Spin, yield, then sleep with exponential backoff up to `max_sleep_ns`.
    Sleeping { spin: u32, yields: u32, max_sleep_ns: u64 },
    /// Spin `spin` times, then sleep on a futex until a producer wakes it: idle costs no CPU.
    Blocking { spin: u32 },
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::Blocking { spin: 200 }
    }
}

impl WaitStrategy {
    /// Yielding with the default spin count.
    pub const YIELDING: WaitStrategy = WaitStrategy::Yielding { spin: 100 };
    /// Sleeping with the default backoff.
    pub const SLEEPING: WaitStrategy = WaitStrategy::Sleeping { spin: 100, yields: 100, max_sleep_ns: 1_000_000 };

    /// True for the strategy that sleeps on the ring's futex.
    pub fn is_blocking(&self) -> bool {
        matches!(self, WaitStrategy::Blocking { .. })
    }

    /// Wait until `probe()` returns at least `target`; return that value.
    ///
    /// Fails with [`Error::Alerted`] once `alert` is set and [`Error::Timeout`] after `timeout`.
    pub fn wait_for(
        &self,
        ring: &RingBuffer,
        target: i64,
        probe: impl Fn() -> i64,
        alert: &AtomicBool,
        timeout: Option<Duration>,
    ) -> Result<i64> {
        let mut available = probe();
        if available >= target {
            return Ok(available);
        }
        // The clock is read only when a timeout needs it: spinning waits never pay for it.
        let start = timeout.map(|_| Instant::now());
        let deadline = start.zip(timeout).map(|(s, t)| s + t);
        let mut counter: u32 = 0;
        let mut sleep_ns: u64 = 1_000;
        loop {
            if alert.load(Ordering::Acquire) {
                return Err(Error::Alerted);
            }
            if let Some(d) = deadline {
                if counter % 64 == 0 && Instant::now() >= d {
                    let waited_ms = start.map_or(0, |s| s.elapsed().as_millis() as u64);
                    return Err(Error::Timeout { sequence: target, waited_ms });
                }
            }
            match *self {
                WaitStrategy::BusySpin => spin_loop(),
                WaitStrategy::Yielding { spin } => {
                    if counter < spin {
                        spin_loop()
                    } else {
                        std::thread::yield_now()
                    }
                }
                WaitStrategy::Sleeping { spin, yields, max_sleep_ns } => {
                    if counter < spin {
                        spin_loop()
                    } else if counter < spin.saturating_add(yields) {
                        std::thread::yield_now()
                    } else {
                        let mut d = Duration::from_nanos(sleep_ns);
                        if let Some(dl) = deadline {
                            d = d.min(dl.saturating_duration_since(Instant::now()));
                        }
                        std::thread::sleep(d);
                        sleep_ns = (sleep_ns * 2).min(max_sleep_ns.max(1_000));
                    }
                }
                WaitStrategy::Blocking { spin } => {
                    if counter < spin {
                        spin_loop()
                    } else {
                        let w = &ring.header().wakeup;
                        w.waiters.fetch_add(1, Ordering::SeqCst);
                        // Pairs with the producer's fence in `signal_waiters`: either it sees
                        // this waiter, or this re-check sees its publication.
                        std::sync::atomic::fence(Ordering::SeqCst);
                        let seen = w.signal.load(Ordering::SeqCst);
                        available = probe();
                        if available < target && !alert.load(Ordering::SeqCst) {
                            let mut slice = MAX_SLEEP_SLICE;
                            if let Some(dl) = deadline {
                                slice = slice.min(dl.saturating_duration_since(Instant::now()));
                            }
                            futex_wait(&w.signal, seen, slice);
                        }
                        w.waiters.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
            counter = counter.wrapping_add(1);
            available = probe();
            if available >= target {
                return Ok(available);
            }
        }
    }
}

/// Sleep while `word == expected`, at most `timeout`. Shared (not private) futex: works across
/// processes that map the same memory.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts =
        libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
    // SAFETY: `word` is a valid, aligned u32 for the whole call; the kernel only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            0usize,
            0u32,
        );
    }
}

/// Wake every sleeper on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access memory beyond it.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring_buffer::RingOptions;
    use std::sync::atomic::AtomicI64;
    use std::sync::Arc;

    fn strategies() -> [WaitStrategy; 4] {
        [WaitStrategy::BusySpin, WaitStrategy::YIELDING, WaitStrategy::SLEEPING, WaitStrategy::default()]
    }

    #[test]
    fn every_strategy_times_out() {
        let ring = RingBuffer::create(&RingOptions::new(8, 8)).unwrap();
        for s in strategies() {
            let never = AtomicBool::new(false);
            let r = s.wait_for(&ring, 5, || -1, &never, Some(Duration::from_millis(20)));
            assert!(matches!(r, Err(Error::Timeout { sequence: 5, .. })), "{s:?}: {r:?}");
        }
    }

    #[test]
    fn every_strategy_sees_progress_from_another_thread() {
        for s in strategies() {
            let ring = RingBuffer::create(&RingOptions::new(8, 8)).unwrap();
            if s.is_blocking() {
                ring.header().blocking_consumers.fetch_add(1, Ordering::SeqCst);
            }
            let value = Arc::new(AtomicI64::new(-1));
            let (r2, v2) = (ring.clone(), value.clone());
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                v2.store(3, Ordering::SeqCst);
                r2.signal_waiters();
            });
            let never = AtomicBool::new(false);
            let got = s.wait_for(&ring, 3, || value.load(Ordering::SeqCst), &never, Some(Duration::from_secs(5)));
            assert_eq!(got.unwrap(), 3, "{s:?}");
            t.join().unwrap();
        }
    }

    #[test]
    fn alert_interrupts_a_blocking_wait() {
        let ring = RingBuffer::create(&RingOptions::new(8, 8)).unwrap();
        let alert = Arc::new(AtomicBool::new(false));
        let (r2, a2) = (ring.clone(), alert.clone());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            a2.store(true, Ordering::SeqCst);
            r2.wake_all();
        });
        let r = WaitStrategy::default().wait_for(&ring, 1, || -1, &alert, None);
        assert!(matches!(r, Err(Error::Alerted)));
        t.join().unwrap();
    }
}

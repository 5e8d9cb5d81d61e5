//! Named rings in `/dev/shm`: several handles of one process, attach errors, cleanup by the
//! creator, stale segments left by a dead process, and consumers whose process died.
//!
//! Dead processes are real: a child made with `fork` does its part and leaves with `_exit`, so
//! no destructor runs and nothing is cleaned up, exactly as if it had crashed.

mod common;

use common::*;
use market_intel_core::layout::{Header, LAYOUT_VERSION, MAGIC};
use market_intel_core::shm::segment_path;
use market_intel_core::{
    BatchEventProcessor, DeadConsumerPolicy, Error, MemoryOptions, MultiProducerSequencer, ProcessorExit, ProducerKind,
    RingBuffer, RingOptions, SequenceBarrier, Sequencer, SingleProducerSequencer, StalePolicy, ThreadOptions,
    WaitStrategy,
};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// A segment name unique to this process and test.
fn name(tag: &str) -> String {
    format!("mi-it-{}-{tag}", std::process::id())
}

/// Removes a segment left behind by a failing test.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(segment_path(&self.0));
    }
}

/// Run `child` in a forked child process that then leaves with `_exit` (no destructors, no
/// cleanup); returns its exit code: 0 if `child` returned true.
fn in_dead_child(child: impl FnOnce() -> bool) -> i32 {
    // SAFETY: the child only runs `child` (file, mmap and /proc calls of this crate; glibc's
    // allocator stays usable after fork) and leaves with `_exit`, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: `_exit` ends the child at once, without running destructors or atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child and `status` is a valid, writable int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            // SAFETY: `pid` is our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("child {pid} did not finish");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(libc::WIFEXITED(status), "child ended abnormally: status {status}");
    libc::WEXITSTATUS(status)
}

fn child_pid_of(ring: &RingBuffer, consumer: &str) -> u32 {
    ring.consumer_info(ring.find_consumer(consumer).unwrap()).pid
}

#[test]
fn named_ring_shared_by_threads_through_separate_attachments() {
    for kind in [ProducerKind::Single, ProducerKind::Multi] {
        let n = name(&format!("threads-{kind:?}"));
        let _u = Unlink(n.clone());
        let creator = RingBuffer::create(&RingOptions::new(16, SLOT).producer(kind).named(&n)).unwrap();
        assert!(creator.is_creator());
        assert_eq!(creator.name(), Some(n.as_str()));
        // The consumer side attaches on its own and registers through its handle.
        let consumer_side = RingBuffer::attach(&n, &MemoryOptions::default()).unwrap();
        assert!(!consumer_side.is_creator());
        assert_eq!((consumer_side.capacity(), consumer_side.kind()), (16, kind));
        assert_ne!(consumer_side.slot_ptr(0), creator.slot_ptr(0), "distinct mappings");
        let c = consumer_side.add_consumer("reader", &[], true).unwrap();
        // Visible through the creator's handle: it gates the creator's producers.
        assert_eq!(creator.find_consumer("reader"), Some(c));
        let producers = if kind == ProducerKind::Single { 1 } else { 3 };
        let v = Verifier::new("reader", consumer_side.clone(), vec![], producers, 0);
        let proc_ = BatchEventProcessor::new(
            consumer_side.clone(),
            c,
            SequenceBarrier::new(consumer_side.clone(), 0, WaitStrategy::default()),
            v,
        );
        let control = proc_.control();
        let jh = proc_.spawn(&ThreadOptions { name: Some("shm-reader".into()), ..Default::default() }).unwrap();
        // Each producer thread attaches a handle of its own (the first one uses the creator's).
        let threads: Vec<_> = (0..producers)
            .map(|p| {
                let n = n.clone();
                let creator = creator.clone();
                std::thread::spawn(move || {
                    let ring =
                        if p == 0 { creator } else { RingBuffer::attach(&n, &MemoryOptions::default()).unwrap() };
                    let mut seq: Box<dyn Sequencer> = match kind {
                        ProducerKind::Single => Box::new(SingleProducerSequencer::new(ring).unwrap()),
                        ProducerKind::Multi => Box::new(MultiProducerSequencer::new(ring).unwrap()),
                    };
                    let never = AtomicBool::new(false);
                    produce(
                        seq.as_mut(),
                        p as u64,
                        5_000,
                        Claim::Random { max: 4, try_next: false },
                        &mut Rng::new(p as u64),
                        &never,
                    )
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let last = producers as i64 * 5_000 - 1;
        assert_eq!(creator.cursor(), last);
        control.drain(last);
        let (v, exit, _) = jh.join().unwrap();
        assert!(matches!(exit, ProcessorExit::Drained));
        v.assert_complete(0, &vec![5_000; producers], &format!("{kind:?}"));
        assert_eq!(creator.consumer_info(c).events, producers as u64 * 5_000, "shared counters");
    }
}

#[test]
fn a_single_producer_ring_has_one_producer_across_handles() {
    let n = name("one-producer");
    let _u = Unlink(n.clone());
    let creator = RingBuffer::create(&RingOptions::new(8, 8).named(&n)).unwrap();
    let other = RingBuffer::attach(&n, &MemoryOptions::default()).unwrap();
    let p = SingleProducerSequencer::new(creator.clone()).unwrap();
    assert!(matches!(SingleProducerSequencer::new(other.clone()), Err(Error::ProducerTaken { .. })));
    drop(p);
    assert!(SingleProducerSequencer::new(other).is_ok());
}

#[test]
fn attach_errors() {
    // No such segment.
    let missing = name("missing");
    match RingBuffer::attach(&missing, &MemoryOptions::default()) {
        Err(Error::NotFound { name, path }) => {
            assert_eq!(name, missing);
            assert!(path.ends_with(&missing), "{path}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Bad names are refused before touching the file system.
    assert!(matches!(
        RingBuffer::attach("../etc/passwd", &MemoryOptions::default()),
        Err(Error::InvalidArgument { .. })
    ));

    // A small file that is not a ring.
    let small = name("not-a-ring");
    let _u1 = Unlink(small.clone());
    std::fs::write(segment_path(&small), b"hello, I am not a ring").unwrap();
    match RingBuffer::attach(&small, &MemoryOptions::default()) {
        Err(Error::LayoutMismatch { field, .. }) => assert_eq!(field, "size"),
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }

    // A header-sized file with the magic of a ring but another layout version.
    let versioned = name("other-version");
    let _u2 = Unlink(versioned.clone());
    let mut bytes = vec![0u8; std::mem::size_of::<Header>()];
    bytes[0..8].copy_from_slice(&MAGIC.to_ne_bytes());
    bytes[8..12].copy_from_slice(&(LAYOUT_VERSION + 41).to_ne_bytes());
    std::fs::write(segment_path(&versioned), &bytes).unwrap();
    match RingBuffer::attach(&versioned, &MemoryOptions::default()) {
        Err(Error::LayoutMismatch { field, found, .. }) => {
            assert_eq!(field, "layout version");
            assert_eq!(found, (LAYOUT_VERSION + 41).to_string());
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }

    // A header-sized file of garbage: the magic never appears (attach waits briefly for a creator).
    let garbage = name("garbage");
    let _u3 = Unlink(garbage.clone());
    std::fs::write(segment_path(&garbage), vec![0xa5u8; std::mem::size_of::<Header>() + 4096]).unwrap();
    match RingBuffer::attach(&garbage, &MemoryOptions::default()) {
        Err(Error::LayoutMismatch { field, .. }) => assert_eq!(field, "magic"),
        other => panic!("expected LayoutMismatch on the magic, got {other:?}"),
    }
}

#[test]
fn the_creator_removes_the_segment_when_dropped() {
    let n = name("cleanup");
    let _u = Unlink(n.clone());
    let creator = RingBuffer::create(&RingOptions::new(8, 8).named(&n)).unwrap();
    let path = segment_path(&n);
    // Dropping an attachment leaves the segment alone.
    drop(RingBuffer::attach(&n, &MemoryOptions::default()).unwrap());
    assert!(path.exists());
    let other = RingBuffer::attach(&n, &MemoryOptions::default()).unwrap();
    // A second create of a live name is refused.
    assert!(matches!(RingBuffer::create(&RingOptions::new(8, 8).named(&n)), Err(Error::Exists { .. })));
    drop(creator);
    assert!(!path.exists(), "the creator unlinks the segment");
    assert!(matches!(RingBuffer::attach(&n, &MemoryOptions::default()), Err(Error::NotFound { .. })));
    // Mappings stay valid after the unlink: the remaining handle still works.
    let c = other.add_consumer("late", &[], false).unwrap();
    let mut p = SingleProducerSequencer::new(other.clone()).unwrap();
    let s = p.next(1).unwrap();
    // SAFETY: `s` is claimed by this producer and not yet published.
    unsafe { other.slot_mut(s) }.copy_from_slice(&7u64.to_ne_bytes());
    p.publish(s, s);
    // SAFETY: `s` is published and consumer `c` has not released it.
    assert_eq!(unsafe { other.slot(s) }, &7u64.to_ne_bytes());
    other.release_consumer(c);
    // The name can be created afresh now.
    let again = RingBuffer::create(&RingOptions::new(8, 8).named(&n)).unwrap();
    assert!(again.is_creator());
}

#[test]
fn a_segment_left_by_a_dead_process_is_stale() {
    let _serial = serial();
    let n = name("stale");
    let _u = Unlink(n.clone());
    let child_n = n.clone();
    let code = in_dead_child(move || {
        // Create and leave without cleanup, as a crash would.
        let ring = RingBuffer::create(&RingOptions::new(8, 8).named(&child_n)).unwrap();
        std::mem::forget(ring);
        true
    });
    assert_eq!(code, 0);
    assert!(segment_path(&n).exists(), "the dead child left its segment behind");

    let raise = RingOptions { stale: StalePolicy::Raise, ..RingOptions::new(16, 8).named(&n) };
    match RingBuffer::create(&raise) {
        Err(Error::Stale { name, pid }) => {
            assert_eq!(name, n);
            assert!(pid != 0 && pid != std::process::id(), "names the dead process, got {pid}");
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(segment_path(&n).exists(), "Raise leaves the stale segment in place");

    let reclaim = RingOptions { stale: StalePolicy::Reclaim, ..RingOptions::new(16, 8).named(&n) };
    let ring = RingBuffer::create(&reclaim).unwrap();
    assert!(ring.is_creator());
    assert_eq!(ring.capacity(), 16, "a fresh ring with the new geometry");
    assert_eq!(ring.cursor(), -1);
    drop(ring);
    assert!(!segment_path(&n).exists());
}

/// A ring whose consumer "child" was registered by a process that has died.
fn ring_with_a_dead_consumer(tag: &str, kind: ProducerKind, policy: DeadConsumerPolicy) -> (RingBuffer, Unlink) {
    let n = name(tag);
    let u = Unlink(n.clone());
    let opts = RingOptions { dead_consumers: policy, ..RingOptions::new(8, SLOT).producer(kind).named(&n) };
    let ring = RingBuffer::create(&opts).unwrap();
    let child_n = n.clone();
    let code = in_dead_child(move || {
        let ring = RingBuffer::attach(&child_n, &MemoryOptions::default()).unwrap();
        ring.add_consumer("child", &[], false).unwrap();
        std::mem::forget(ring);
        true
    });
    assert_eq!(code, 0);
    let id = ring.find_consumer("child").expect("the child registered its consumer");
    assert!(ring.consumer_info(id).active);
    (ring, u)
}

#[test]
fn a_dead_consumer_is_removed_and_the_producer_goes_on() {
    let _serial = serial();
    for kind in [ProducerKind::Single, ProducerKind::Multi] {
        let (ring, _u) = ring_with_a_dead_consumer(&format!("dead-remove-{kind:?}"), kind, DeadConsumerPolicy::Remove);
        let child = ring.find_consumer("child").unwrap();
        assert_ne!(child_pid_of(&ring, "child"), std::process::id());
        // A live consumer of this process keeps gating and sees everything.
        let live = ring.add_consumer("live", &[], false).unwrap();
        let v = Verifier::new("live", ring.clone(), vec![], 1, 0);
        let proc_ = BatchEventProcessor::new(
            ring.clone(),
            live,
            SequenceBarrier::new(ring.clone(), 0, WaitStrategy::YIELDING),
            v,
        );
        let control = proc_.control();
        let jh = proc_.spawn(&ThreadOptions::default()).unwrap();
        let mut p: Box<dyn Sequencer> = match kind {
            ProducerKind::Single => Box::new(SingleProducerSequencer::new(ring.clone()).unwrap()),
            ProducerKind::Multi => Box::new(MultiProducerSequencer::new(ring.clone()).unwrap()),
        };
        // 100 events through 8 slots: impossible unless the dead consumer stops gating.
        let never = AtomicBool::new(false);
        produce(p.as_mut(), 0, 100, Claim::One, &mut Rng::new(3), &never).unwrap();
        control.drain(99);
        let (v, exit, _) = jh.join().unwrap();
        assert!(matches!(exit, ProcessorExit::Drained));
        v.assert_complete(0, &[100], &format!("{kind:?}"));
        let info = ring.consumer_info(child);
        assert!(info.removed && !info.active, "{kind:?}: {info:?}");
        assert_eq!(info.sequence, -1, "the dead consumer never moved");
        assert!(ring.consumer_info(live).active);
    }
}

#[test]
fn a_dead_consumer_is_reported_with_the_raise_policy() {
    let _serial = serial();
    for kind in [ProducerKind::Single, ProducerKind::Multi] {
        let (ring, _u) = ring_with_a_dead_consumer(&format!("dead-raise-{kind:?}"), kind, DeadConsumerPolicy::Raise);
        let dead_pid = child_pid_of(&ring, "child");
        let mut p: Box<dyn Sequencer> = match kind {
            ProducerKind::Single => Box::new(SingleProducerSequencer::new(ring.clone()).unwrap()),
            ProducerKind::Multi => Box::new(MultiProducerSequencer::new(ring.clone()).unwrap()),
        };
        for _ in 0..8 {
            let s = p.next(1).unwrap();
            p.publish(s, s);
        }
        // The ring is full and its only consumer is dead: the claim fails instead of hanging.
        match p.next_timeout(1, Some(Duration::from_secs(20))) {
            Err(Error::ConsumerDied { consumer, pid, sequence }) => {
                assert_eq!(consumer, "child");
                assert_eq!(pid, dead_pid);
                assert_eq!(sequence, -1);
            }
            other => panic!("{kind:?}: expected ConsumerDied, got {other:?}"),
        }
        // Nothing was claimed by the failed call, and releasing the dead consumer frees the ring.
        assert_eq!(ring.cursor(), 7, "{kind:?}");
        ring.release_consumer(ring.find_consumer("child").unwrap());
        let s = p.next_timeout(1, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(s, 8);
        p.publish(s, s);
    }
}

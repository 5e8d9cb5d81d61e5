//! The LMAX topologies, end to end, with self-checking events: unicast, pipeline, multicast,
//! diamond and three-to-one, over small rings (so producers wrap and wait on consumers all the
//! time), every wait strategy, push consumers (`BatchEventProcessor` threads) and pull consumers
//! (`EventPoller`). Each consumer checks exactly-once delivery, per-producer order, untouched
//! slots and its dependencies (see `common`). Behaviour only: no timing is asserted.

mod common;

use common::*;
use market_intel_core::{
    BatchEventProcessor, Chunk, EventHandler, HandlerFailure, ProcessorExit, ProducerKind, RingBuffer, RingOptions,
    SequenceBarrier, Sequencer, SingleProducerSequencer, ThreadOptions, WaitStrategy,
};
use std::sync::atomic::Ordering;
use std::time::Duration;

const CAPACITIES: [usize; 3] = [8, 16, 64];

/// Fewer events when spinning consumers outnumber the 2 cores (they only progress when the
/// scheduler preempts them), more otherwise.
fn events(threads: usize, wait: WaitStrategy, capacity: usize) -> u64 {
    if wait == WaitStrategy::BusySpin && threads > 2 {
        40 * capacity as u64
    } else {
        10_000
    }
}

fn claim_for(capacity: usize) -> Claim {
    match capacity {
        8 => Claim::One,
        16 => Claim::Fixed(4),
        _ => Claim::Random { max: 16, try_next: true },
    }
}

/// Run every (capacity, wait strategy) combination of a topology.
fn sweep(kind: ProducerKind, producers: usize, consumers: impl Fn(WaitStrategy, usize) -> Vec<ConsumerSpec>) {
    let _serial = serial();
    let mut seed = 1;
    for capacity in CAPACITIES {
        for wait in all_waits() {
            seed += 1;
            let cs = consumers(wait, capacity);
            let spec = TopologySpec {
                capacity,
                kind,
                producers,
                events_per_producer: events(producers + cs.len(), wait, capacity) / producers as u64,
                claim: claim_for(capacity),
                consumers: cs,
                seed,
            };
            run_topology(&spec);
        }
    }
}

#[test]
fn unicast_one_producer_one_consumer() {
    sweep(ProducerKind::Single, 1, |w, _| vec![ConsumerSpec::new(&[], w)]);
}

#[test]
fn unicast_with_an_event_poller() {
    sweep(ProducerKind::Single, 1, |w, _| vec![ConsumerSpec::new(&[], w).poller(true)]);
}

#[test]
fn unicast_claims_of_the_whole_ring() {
    let _serial = serial();
    for capacity in CAPACITIES {
        for wait in all_waits() {
            run_topology(&TopologySpec {
                capacity,
                kind: ProducerKind::Single,
                producers: 1,
                events_per_producer: 5_000,
                claim: Claim::Fixed(capacity as i64),
                consumers: vec![ConsumerSpec::new(&[], wait)],
                seed: 7,
            });
        }
    }
}

#[test]
fn pipeline_each_stage_after_the_previous() {
    sweep(ProducerKind::Single, 1, |w, _| {
        vec![ConsumerSpec::new(&[], w), ConsumerSpec::new(&[0], w), ConsumerSpec::new(&[1], w)]
    });
}

#[test]
fn pipeline_with_event_pollers_in_the_middle() {
    // Processor -> poller -> processor, and poller -> processor -> poller.
    sweep(ProducerKind::Single, 1, |w, cap| {
        let middle_polls = cap != 16;
        vec![
            ConsumerSpec::new(&[], w).poller(!middle_polls),
            ConsumerSpec::new(&[0], w).poller(middle_polls),
            ConsumerSpec::new(&[1], w).poller(!middle_polls),
        ]
    });
}

#[test]
fn multicast_every_consumer_sees_every_event() {
    sweep(ProducerKind::Single, 1, |w, _| {
        vec![ConsumerSpec::new(&[], w), ConsumerSpec::new(&[], w), ConsumerSpec::new(&[], w)]
    });
}

#[test]
fn multicast_mixed_processors_and_pollers() {
    sweep(ProducerKind::Single, 1, |w, _| {
        vec![ConsumerSpec::new(&[], w), ConsumerSpec::new(&[], w).poller(true), ConsumerSpec::new(&[], w)]
    });
}

#[test]
fn diamond_joins_after_both_branches() {
    sweep(ProducerKind::Single, 1, |w, _| {
        vec![ConsumerSpec::new(&[], w), ConsumerSpec::new(&[], w), ConsumerSpec::new(&[0, 1], w)]
    });
}

#[test]
fn diamond_with_a_polling_join() {
    sweep(ProducerKind::Single, 1, |w, _| {
        vec![ConsumerSpec::new(&[], w), ConsumerSpec::new(&[], w), ConsumerSpec::new(&[0, 1], w).poller(true)]
    });
}

#[test]
fn three_to_one_keeps_each_producers_order() {
    sweep(ProducerKind::Multi, 3, |w, _| vec![ConsumerSpec::new(&[], w)]);
}

#[test]
fn three_to_one_with_an_event_poller() {
    sweep(ProducerKind::Multi, 3, |w, _| vec![ConsumerSpec::new(&[], w).poller(true)]);
}

#[test]
fn three_to_one_diamond_on_a_multi_producer_ring() {
    sweep(ProducerKind::Multi, 3, |w, _| {
        vec![ConsumerSpec::new(&[], w), ConsumerSpec::new(&[], w), ConsumerSpec::new(&[0, 1], w)]
    });
}

#[test]
fn wait_strategies_mixed_within_one_pipeline() {
    let _serial = serial();
    let w = all_waits();
    for capacity in CAPACITIES {
        for rot in 0..4 {
            run_topology(&TopologySpec {
                capacity,
                kind: ProducerKind::Multi,
                producers: 2,
                events_per_producer: 1_000,
                claim: Claim::Random { max: 4, try_next: false },
                consumers: vec![
                    ConsumerSpec::new(&[], w[(rot + 1) % 4]),
                    ConsumerSpec::new(&[0], w[(rot + 2) % 4]).poller(true),
                    ConsumerSpec::new(&[1], w[(rot + 3) % 4]),
                ],
                seed: 100 + rot as u64,
            });
        }
    }
}

/// A verifier that is slow, so a backlog is still there when drain is asked for.
#[derive(Debug)]
struct Slow(Verifier);

impl EventHandler for Slow {
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        std::thread::sleep(Duration::from_micros(200));
        self.0.on_batch(chunk)
    }
}

#[test]
fn drain_returns_only_after_every_published_event_was_handled() {
    let _serial = serial();
    for wait in all_waits() {
        let ring = RingBuffer::create(&RingOptions::new(1024, SLOT)).unwrap();
        let c = ring.add_consumer("slow", &[], wait.is_blocking()).unwrap();
        let mut p = SingleProducerSequencer::new(ring.clone()).unwrap();
        for i in 0..1000u64 {
            let s = p.next(1).unwrap();
            // SAFETY: `s` is claimed by this producer and not yet published.
            write_slot(unsafe { ring.slot_mut(s) }, s, 0, i);
            p.publish(s, s);
        }
        let v = Verifier::new("slow", ring.clone(), vec![], 1, 0);
        let proc_ = BatchEventProcessor::new(ring.clone(), c, SequenceBarrier::new(ring.clone(), 0, wait), Slow(v))
            .with_max_batch(10)
            .unwrap();
        let control = proc_.control();
        let h = proc_.spawn(&ThreadOptions::default()).unwrap();
        // Drain at once: 100 batches of 200 us are still to come.
        control.drain(ring.cursor());
        assert!(!control.is_running());
        let (Slow(v), exit, _) = h.join().unwrap();
        assert!(matches!(exit, ProcessorExit::Drained), "{wait:?}: {exit:?}");
        v.assert_complete(0, &[1000], &format!("{wait:?}"));
        assert!(v.largest_chunk <= 10);
        assert_eq!(ring.consumer_sequence(c).load(Ordering::Acquire), 999);
    }
}

#[test]
fn drain_of_a_pipeline_waits_for_the_upstream_stage() {
    let _serial = serial();
    for wait in all_waits() {
        let ring = RingBuffer::create(&RingOptions::new(256, SLOT)).unwrap();
        let c1 = ring.add_consumer("up", &[], wait.is_blocking()).unwrap();
        let c2 = ring.add_consumer("down", &[c1], wait.is_blocking()).unwrap();
        let mut p = SingleProducerSequencer::new(ring.clone()).unwrap();
        for i in 0..200u64 {
            let s = p.next(1).unwrap();
            // SAFETY: `s` is claimed by this producer and not yet published.
            write_slot(unsafe { ring.slot_mut(s) }, s, 0, i);
            p.publish(s, s);
        }
        let up = BatchEventProcessor::new(
            ring.clone(),
            c1,
            SequenceBarrier::new(ring.clone(), 0, wait),
            Slow(Verifier::new("up", ring.clone(), vec![], 1, 0)),
        )
        .with_max_batch(5)
        .unwrap();
        let down = BatchEventProcessor::new(
            ring.clone(),
            c2,
            SequenceBarrier::new(ring.clone(), 1 << c1, wait),
            Verifier::new("down", ring.clone(), vec![c1], 1, 0),
        );
        let (cu, cd) = (up.control(), down.control());
        // Drain the downstream stage first: it must still wait for everything upstream.
        cd.drain(ring.cursor());
        let hd = down.spawn(&ThreadOptions::default()).unwrap();
        let hu = up.spawn(&ThreadOptions::default()).unwrap();
        cu.drain(ring.cursor());
        let (vd, ed, _) = hd.join().unwrap();
        let (Slow(vu), eu, _) = hu.join().unwrap();
        assert!(matches!(ed, ProcessorExit::Drained) && matches!(eu, ProcessorExit::Drained));
        vu.assert_complete(0, &[200], &format!("{wait:?} up"));
        vd.assert_complete(0, &[200], &format!("{wait:?} down"));
    }
}

#[test]
fn producer_claims_never_overrun_a_stalled_consumer() {
    // A consumer that never runs: the producer fills the ring exactly once and then cannot claim.
    for capacity in CAPACITIES {
        let ring = RingBuffer::create(&RingOptions::new(capacity, SLOT)).unwrap();
        let _c = ring.add_consumer("stalled", &[], false).unwrap();
        let mut p = SingleProducerSequencer::new(ring.clone()).unwrap();
        for _ in 0..capacity {
            let s = p.try_next(1).unwrap();
            p.publish(s, s);
        }
        assert!(p.try_next(1).is_err());
        assert!(p.next_timeout(1, Some(Duration::from_millis(5))).is_err());
        assert_eq!(p.remaining_capacity(), 0);
    }
}

//! market-intel core: an LMAX-Disruptor-style ring buffer in pure Rust.
//!
//! The whole ring (header, cursor, consumer sequences, multi-producer availability flags and
//! slots) is one contiguous region addressed by offsets, so it can live in private memory or in
//! named shared memory attached by several processes.
//!
//! ```
//! use market_intel_core::{RingBuffer, RingOptions, ProducerKind, Sequencer, SingleProducerSequencer};
//!
//! let ring = RingBuffer::create(&RingOptions::new(8, 8).producer(ProducerKind::Single)).unwrap();
//! let consumer = ring.add_consumer("reader", &[], false).unwrap();
//! let mut producer = SingleProducerSequencer::new(ring.clone()).unwrap();
//! let seq = producer.next(1).unwrap();
//! // SAFETY: `seq` is claimed by this producer and not yet published.
//! unsafe { ring.slot_mut(seq) }.copy_from_slice(&42u64.to_le_bytes());
//! producer.publish(seq, seq);
//! assert_eq!(ring.cursor(), 0);
//! // SAFETY: sequence 0 is published and the consumer has not released it.
//! assert_eq!(unsafe { ring.slot(0) }, &42u64.to_le_bytes());
//! ring.release_consumer(consumer);
//! ```
//!
//! Topologies are built from [`SequenceBarrier`]s over the cursor and the sequences of the
//! consumers a consumer depends on:
//!
//! ```text
//!  one_to_one:   P -> [ring] -> C
//!  pipeline:     P -> [ring] -> C1 -> C2 -> C3
//!  multicast:    P -> [ring] -> C1, C2, C3   (each sees every event)
//!  diamond:      P -> [ring] -> C1, C2 -> C3 (C3 after both)
//!  three_to_one: P1, P2, P3 -> [ring, multi-producer] -> C
//! ```

pub mod affinity;
pub mod barrier;
pub mod clock;
pub mod error;
pub mod handlers;
pub mod histogram;
pub mod layout;
pub mod poller;
pub mod processor;
pub mod ring_buffer;
pub mod sequencer;
pub mod shm;
pub mod wait_strategy;

pub use affinity::ThreadOptions;
pub use barrier::SequenceBarrier;
pub use clock::{monotonic_ns, realtime_ns};
pub use error::{Error, Result};
pub use handlers::{ChecksumHandler, LatencyHandler};
pub use histogram::{LatencyRecorder, LatencySnapshot};
pub use layout::{ProducerKind, MAX_CONSUMERS, MAX_PROCESSES};
pub use poller::EventPoller;
pub use processor::{
    BatchEventProcessor, Chunk, ErrorPolicy, EventHandler, HandlerFailure, ProcessorControl, ProcessorExit,
};
pub use ring_buffer::{ConsumerId, ConsumerInfo, DeadConsumerPolicy, RingBuffer, RingOptions};
pub use sequencer::{MultiProducerSequencer, Sequencer, SingleProducerSequencer};
pub use shm::{MemoryOptions, StalePolicy};
pub use wait_strategy::WaitStrategy;

/// The value of a sequence before anything was published or consumed.
pub const INITIAL_SEQUENCE: i64 = -1;

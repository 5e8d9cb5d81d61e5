//! The memory layout of a ring: one contiguous region addressed by offsets, never pointers.
//!
//! ```text
//! offset 0              Header: identity (magic, version, capacity, slot size, dtype),
//!                       control (closed flag, producer owner), cursor, shared gating cache,
//!                       gating mask, wake-up word, process table, consumer slots
//! availability_offset   multi-producer only: one i32 flag per slot (sequence >> index_shift)
//! slots_offset          capacity * slot_size bytes of slots, cache-line aligned
//! ```
//! Every mutable field is an atomic; identity fields are written once by the creator before it
//! publishes `magic` with release ordering, and read by attachers after an acquire load of it.

use crossbeam_utils::CachePadded;
use std::mem::size_of;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8};

/// "MIRING01": marks an initialised ring region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MIRING01");
/// Bumped whenever the layout changes; attach refuses other versions.
pub const LAYOUT_VERSION: u32 = 1;
/// Consumers (gating sequences) a ring can hold.
pub const MAX_CONSUMERS: usize = 64;
/// Processes a named ring keeps track of (for stale-segment detection).
pub const MAX_PROCESSES: usize = 64;
/// Bytes of a consumer name.
pub const NAME_LEN: usize = 48;
/// Bytes of the dtype description stored for attach checks.
pub const DTYPE_LEN: usize = 2048;
/// Alignment of the availability buffer and of the slots.
pub const REGION_ALIGN: usize = 128;
/// Page size used to round the header and the total size.
pub const PAGE: usize = 4096;

/// How producers claim sequences.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerKind {
    /// One producer: claims without CAS, publishes by storing the cursor.
    Single = 1,
    /// Any number of producers: claims with an atomic add, publishes through availability flags.
    Multi = 2,
}

impl ProducerKind {
    pub(crate) fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Single),
            2 => Some(Self::Multi),
            _ => None,
        }
    }
}

/// Consumer slot states.
pub const SLOT_FREE: u32 = 0;
/// Being filled in by the process that claimed it.
pub const SLOT_CLAIMING: u32 = 1;
/// Gates producers.
pub const SLOT_ACTIVE: u32 = 2;
/// Its owner died and the slot was removed from gating by policy.
pub const SLOT_REMOVED: u32 = 3;

/// One consumer's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct ConsumerSlot {
    /// The last sequence this consumer has released.
    pub sequence: CachePadded<AtomicI64>,
    /// One of the `SLOT_*` states.
    pub state: AtomicU32,
    /// 1 if this consumer may sleep in the blocking wait strategy.
    pub blocking: AtomicU32,
    /// Process that owns the consumer.
    pub pid: AtomicU32,
    /// Bytes used in `name`.
    pub name_len: AtomicU32,
    /// Start time (clock ticks since boot) of `pid`, to tell a reused pid apart.
    pub start_time: AtomicU64,
    /// Bit mask of the consumer slots this one runs after.
    pub depends_on: AtomicU64,
    /// Events handled.
    pub events: AtomicU64,
    /// Batches handled.
    pub batches: AtomicU64,
    /// Handler errors seen.
    pub errors: AtomicU64,
    /// 1 after the consumer's processor halted on a handler failure (producers report it).
    pub failed: AtomicU32,
    /// Reserved.
    pub _reserved: AtomicU32,
    /// Name bytes (UTF-8).
    pub name: [AtomicU8; NAME_LEN],
}

/// A process registered with a named ring.
#[repr(C)]
#[derive(Debug)]
pub struct ProcessSlot {
    /// Process id, 0 when free.
    pub pid: AtomicU32,
    /// Reserved.
    pub _pad: AtomicU32,
    /// Start time of the process (clock ticks since boot).
    pub start_time: AtomicU64,
}

/// Futex word and sleeper count for the blocking wait strategy.
#[repr(C)]
#[derive(Debug)]
pub struct Wakeup {
    /// Consumers currently asleep (or about to sleep).
    pub waiters: AtomicU32,
    /// Bumped by every wake; sleepers wait on a change of it.
    pub signal: AtomicU32,
}

/// The header at offset 0 of every ring.
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    /// `MAGIC` once initialised.
    pub magic: AtomicU64,
    /// `LAYOUT_VERSION`.
    pub version: u32,
    /// `ProducerKind` as u32.
    pub producer_kind: u32,
    /// Slots, a power of two.
    pub capacity: u64,
    /// Bytes per slot.
    pub slot_size: u64,
    /// log2(capacity).
    pub index_shift: u32,
    /// `DeadConsumerPolicy` as u32.
    pub dead_policy: u32,
    /// Bytes of the whole region.
    pub total_size: u64,
    /// Offset of the availability flags (0 for single-producer rings).
    pub availability_offset: u64,
    /// Offset of the first slot.
    pub slots_offset: u64,
    /// Process that created the ring.
    pub creator_pid: u32,
    /// Bytes used in `dtype`.
    pub dtype_len: u32,
    /// Start time of the creator.
    pub creator_start: u64,
    /// A description of the slot type (for example a numpy dtype string), checked on attach.
    pub dtype: [u8; DTYPE_LEN],
    /// 1 after shutdown: nothing more may be published.
    pub closed: CachePadded<AtomicU32>,
    /// Pid of the producer of a single-producer ring (0: none).
    pub producer_pid: AtomicU32,
    /// Consumers using the blocking wait strategy; producers skip wake-ups when 0.
    pub blocking_consumers: AtomicU32,
    /// Highest published (single) or claimed (multi) sequence.
    pub cursor: CachePadded<AtomicI64>,
    /// Multi-producer: the last minimum of the gating sequences seen by any producer.
    pub gating_cache: CachePadded<AtomicI64>,
    /// Bit i set: consumer slot i gates producers.
    pub gating_mask: CachePadded<AtomicU64>,
    /// Blocking wait strategy.
    pub wakeup: CachePadded<Wakeup>,
    /// Processes attached to the ring.
    pub processes: [ProcessSlot; MAX_PROCESSES],
    /// Consumer slots.
    pub consumers: [ConsumerSlot; MAX_CONSUMERS],
}

/// Offsets and sizes derived from capacity, slot size and producer kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub capacity: usize,
    pub slot_size: usize,
    pub availability_offset: usize,
    pub slots_offset: usize,
    pub total_size: usize,
}

const fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

impl Geometry {
    /// Lay out a ring; the caller has validated `capacity` (a power of two) and `slot_size` (> 0).
    pub fn new(capacity: usize, slot_size: usize, kind: ProducerKind) -> Self {
        let header = round_up(size_of::<Header>(), PAGE);
        let (availability_offset, after) = match kind {
            ProducerKind::Single => (0, header),
            ProducerKind::Multi => (header, round_up(header + capacity * 4, REGION_ALIGN)),
        };
        let slots_offset = after;
        let total_size = round_up(slots_offset + capacity * slot_size, PAGE);
        Self { capacity, slot_size, availability_offset, slots_offset, total_size }
    }

    /// Bytes of slots alone.
    pub fn slot_bytes(&self) -> usize {
        self.capacity * self.slot_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fits_in_a_few_pages() {
        assert!(size_of::<Header>() < 8 * PAGE, "header is {} bytes", size_of::<Header>());
    }

    #[test]
    fn slots_are_cache_line_aligned_and_overhead_is_small() {
        for kind in [ProducerKind::Single, ProducerKind::Multi] {
            let g = Geometry::new(1 << 20, 64, kind);
            assert_eq!(g.slots_offset % REGION_ALIGN, 0);
            let overhead = (g.total_size - g.slot_bytes()) as f64 / g.slot_bytes() as f64;
            assert!(overhead <= 0.10, "{kind:?} overhead {overhead}");
        }
    }
}

//! `RingBuffer`: a preallocated ring of fixed-size slots plus the sequences that coordinate it.

use crate::error::{Error, Result};
use crate::layout::{
    ConsumerSlot, Geometry, Header, ProducerKind, DTYPE_LEN, LAYOUT_VERSION, MAGIC, MAX_CONSUMERS, NAME_LEN,
    SLOT_ACTIVE, SLOT_CLAIMING, SLOT_FREE, SLOT_REMOVED,
};
use crate::shm::{self, MemoryOptions, Region, StalePolicy};
use crate::wait_strategy::futex_wake;
use crate::INITIAL_SEQUENCE;
use std::sync::atomic::{fence, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What producers do when a consumer process that gates them has died.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeadConsumerPolicy {
    /// Remove the dead consumer from gating and go on.
    #[default]
    Remove = 0,
    /// Fail the producer's claim with [`Error::ConsumerDied`].
    Raise = 1,
}

/// Index of a consumer slot.
pub type ConsumerId = usize;

/// How to create a ring.
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// Slots; a power of two.
    pub capacity: usize,
    /// Bytes per slot.
    pub slot_size: usize,
    /// Single or multi producer.
    pub producer: ProducerKind,
    /// Name of a shared segment (`/dev/shm/<name>`), or private memory when `None`.
    pub name: Option<String>,
    /// Memory options.
    pub memory: MemoryOptions,
    /// Description of the slot type checked when other processes attach.
    pub dtype: Vec<u8>,
    /// Dead consumer processes.
    pub dead_consumers: DeadConsumerPolicy,
    /// A stale segment of the same name.
    pub stale: StalePolicy,
}

impl RingOptions {
    /// Options for a private single-producer ring.
    pub fn new(capacity: usize, slot_size: usize) -> Self {
        Self {
            capacity,
            slot_size,
            producer: ProducerKind::Single,
            name: None,
            memory: MemoryOptions::default(),
            dtype: Vec::new(),
            dead_consumers: DeadConsumerPolicy::Remove,
            stale: StalePolicy::Raise,
        }
    }
    /// Set the producer kind.
    pub fn producer(mut self, kind: ProducerKind) -> Self {
        self.producer = kind;
        self
    }
    /// Place the ring in a named shared segment.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

/// A snapshot of one consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub id: ConsumerId,
    pub name: String,
    pub sequence: i64,
    pub active: bool,
    pub removed: bool,
    pub pid: u32,
    pub events: u64,
    pub batches: u64,
    pub errors: u64,
    pub depends_on: Vec<ConsumerId>,
}

#[derive(Debug)]
struct Inner {
    region: Region,
    name: Option<String>,
    creator: bool,
    process_slot: Option<usize>,
    kind: ProducerKind,
    capacity: i64,
    mask: i64,
    slot_size: usize,
    index_shift: u32,
    slots: *mut u8,
    availability: *const AtomicI32,
}

// SAFETY: the raw pointers point into `region`, which lives as long as `Inner`; all shared
// mutable state in the region is accessed through atomics or under the ring's claim protocol.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

/// A ring buffer shared by producers and consumers; cloning shares the same ring.
#[derive(Clone, Debug)]
pub struct RingBuffer {
    inner: Arc<Inner>,
}

fn check_geometry(capacity: usize, slot_size: usize) -> Result<()> {
    if capacity < 2 || !capacity.is_power_of_two() || capacity > (1 << 31) {
        return Err(Error::invalid("capacity", capacity, "a power of two between 2 and 2**31"));
    }
    if slot_size == 0 || slot_size > (1 << 24) {
        return Err(Error::invalid("slot_size", slot_size, "between 1 and 16777216 bytes"));
    }
    if capacity.checked_mul(slot_size).is_none_or(|b| b > (1usize << 40)) {
        return Err(Error::invalid("capacity * slot_size", capacity as u128 * slot_size as u128, "at most 1 TiB"));
    }
    Ok(())
}

impl RingBuffer {
    /// Create a ring (private, or named in shared memory).
    pub fn create(opts: &RingOptions) -> Result<Self> {
        check_geometry(opts.capacity, opts.slot_size)?;
        if opts.dtype.len() > DTYPE_LEN {
            return Err(Error::invalid(
                "dtype",
                format!("{} bytes of description", opts.dtype.len()),
                format!("at most {DTYPE_LEN}"),
            ));
        }
        let geo = Geometry::new(opts.capacity, opts.slot_size, opts.producer);
        let region = match &opts.name {
            None => Region::anonymous(geo.total_size, &opts.memory)?,
            Some(name) => {
                shm::validate_name(name)?;
                loop {
                    if let Some(r) = Region::create_named(name, geo.total_size, &opts.memory)? {
                        break r;
                    }
                    // The name exists: in use, still being created, or stale.
                    match Self::probe_existing(name)? {
                        Probe::InUse(pid) => return Err(Error::Exists { name: name.clone(), pid }),
                        Probe::Stale(pid) => match opts.stale {
                            StalePolicy::Raise => return Err(Error::Stale { name: name.clone(), pid }),
                            StalePolicy::Reclaim => {
                                let _ = std::fs::remove_file(shm::segment_path(name));
                            }
                        },
                    }
                }
            }
        };
        let base = region.as_ptr();
        let hdr = base as *mut Header;
        // SAFETY: the region is at least `geo.total_size` bytes, zeroed, page aligned and not yet
        // visible to any other user (magic is still 0); we write the identity fields once.
        unsafe {
            (*hdr).version = LAYOUT_VERSION;
            (*hdr).producer_kind = opts.producer as u32;
            (*hdr).capacity = opts.capacity as u64;
            (*hdr).slot_size = opts.slot_size as u64;
            (*hdr).index_shift = opts.capacity.trailing_zeros();
            (*hdr).dead_policy = opts.dead_consumers as u32;
            (*hdr).total_size = geo.total_size as u64;
            (*hdr).availability_offset = geo.availability_offset as u64;
            (*hdr).slots_offset = geo.slots_offset as u64;
            (*hdr).creator_pid = shm::current_pid();
            (*hdr).creator_start = shm::current_start_time();
            (*hdr).dtype_len = opts.dtype.len() as u32;
            (&mut (*hdr).dtype)[..opts.dtype.len()].copy_from_slice(&opts.dtype);
        }
        // SAFETY: the header was initialised above; from here on it is only used through `&`.
        let h = unsafe { &*hdr };
        h.cursor.store(INITIAL_SEQUENCE, Ordering::Relaxed);
        h.gating_cache.store(INITIAL_SEQUENCE, Ordering::Relaxed);
        if opts.producer == ProducerKind::Multi {
            let avail = (base as usize + geo.availability_offset) as *const AtomicI32;
            for i in 0..opts.capacity {
                // SAFETY: `i < capacity` flags live at `availability_offset`, inside the region.
                unsafe { (*avail.add(i)).store(-1, Ordering::Relaxed) };
            }
        }
        h.magic.store(MAGIC, Ordering::Release);
        let ring = Self::from_region(region, opts.name.clone(), true)?;
        Ok(ring)
    }

    /// Attach to a named ring created by another process (or this one).
    pub fn attach(name: &str, memory: &MemoryOptions) -> Result<Self> {
        shm::validate_name(name)?;
        let region = Region::open_named(name, memory)?;
        if region.len() < std::mem::size_of::<Header>() {
            return Err(Error::LayoutMismatch {
                name: name.into(),
                field: "size",
                found: format!("{} bytes", region.len()),
                expected: format!("at least {} bytes (not a market-intel ring)", std::mem::size_of::<Header>()),
            });
        }
        // SAFETY: the region holds at least a header; its fields are read after the magic check.
        let h = unsafe { &*(region.as_ptr() as *const Header) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while h.magic.load(Ordering::Acquire) != MAGIC {
            if Instant::now() > deadline {
                return Err(Error::LayoutMismatch {
                    name: name.into(),
                    field: "magic",
                    found: format!("{:#x}", h.magic.load(Ordering::Relaxed)),
                    expected: format!("{MAGIC:#x} (an initialised market-intel ring)"),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if h.version != LAYOUT_VERSION {
            return Err(Error::LayoutMismatch {
                name: name.into(),
                field: "layout version",
                found: h.version.to_string(),
                expected: LAYOUT_VERSION.to_string(),
            });
        }
        if h.total_size as usize != region.len() {
            return Err(Error::LayoutMismatch {
                name: name.into(),
                field: "size",
                found: region.len().to_string(),
                expected: h.total_size.to_string(),
            });
        }
        Self::from_region(region, Some(name.to_owned()), false)
    }

    fn probe_existing(name: &str) -> Result<Probe> {
        if std::fs::metadata(shm::segment_path(name)).is_ok_and(|m| m.len() == 0) {
            return Ok(Probe::Stale(0)); // a creator died between create and sizing
        }
        let region = match Region::open_named(name, &MemoryOptions::default()) {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(Probe::Stale(0)),
            Err(e) => return Err(e),
        };
        let foreign = |found: String| Error::LayoutMismatch {
            name: name.to_owned(),
            field: "existing segment",
            found,
            expected: "a market-intel ring (the file belongs to something else; choose another name)".into(),
        };
        if region.len() < std::mem::size_of::<Header>() {
            return Err(foreign(format!("{} bytes", region.len())));
        }
        // SAFETY: the region holds at least a header.
        let h = unsafe { &*(region.as_ptr() as *const Header) };
        let magic = h.magic.load(Ordering::Acquire);
        if magic != MAGIC && magic != 0 {
            return Err(foreign(format!("magic {magic:#x}")));
        }
        if magic != MAGIC {
            // Possibly being created right now: give the creator a moment.
            std::thread::sleep(Duration::from_millis(50));
            if h.magic.load(Ordering::Acquire) != MAGIC {
                return Ok(Probe::Stale(0));
            }
        }
        if shm::process_alive(h.creator_pid, h.creator_start) {
            return Ok(Probe::InUse(h.creator_pid));
        }
        let mut last = h.creator_pid;
        for p in &h.processes {
            let pid = p.pid.load(Ordering::Acquire);
            if pid != 0 {
                last = pid;
                if shm::process_alive(pid, p.start_time.load(Ordering::Acquire)) {
                    return Ok(Probe::InUse(pid));
                }
            }
        }
        Ok(Probe::Stale(last))
    }

    fn from_region(region: Region, name: Option<String>, creator: bool) -> Result<Self> {
        let base = region.as_ptr();
        // SAFETY: callers checked that the region holds an initialised header.
        let h = unsafe { &*(base as *const Header) };
        let kind = ProducerKind::from_u32(h.producer_kind).ok_or_else(|| Error::LayoutMismatch {
            name: name.clone().unwrap_or_default(),
            field: "producer kind",
            found: h.producer_kind.to_string(),
            expected: "1 (single) or 2 (multi)".into(),
        })?;
        let capacity = h.capacity as i64;
        let geo = Geometry::new(h.capacity as usize, h.slot_size as usize, kind);
        if geo.slots_offset as u64 != h.slots_offset || geo.total_size as u64 != h.total_size {
            return Err(Error::LayoutMismatch {
                name: name.unwrap_or_default(),
                field: "geometry",
                found: format!("slots at {} of {}", h.slots_offset, h.total_size),
                expected: format!("slots at {} of {}", geo.slots_offset, geo.total_size),
            });
        }
        let process_slot = if name.is_some() { Self::register_process(h) } else { None };
        let inner = Inner {
            kind,
            capacity,
            mask: capacity - 1,
            slot_size: h.slot_size as usize,
            index_shift: h.index_shift,
            // SAFETY: offsets were validated against the region's size above.
            slots: unsafe { base.add(h.slots_offset as usize) },
            availability: if kind == ProducerKind::Multi {
                // SAFETY: as above.
                unsafe { base.add(h.availability_offset as usize) as *const AtomicI32 }
            } else {
                std::ptr::null()
            },
            region,
            name,
            creator,
            process_slot,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    fn register_process(h: &Header) -> Option<usize> {
        let pid = shm::current_pid();
        let start = shm::current_start_time();
        for (i, p) in h.processes.iter().enumerate() {
            let cur = p.pid.load(Ordering::Acquire);
            let free = cur == 0 || !shm::process_alive(cur, p.start_time.load(Ordering::Acquire));
            if free && p.pid.compare_exchange(cur, pid, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                p.start_time.store(start, Ordering::Release);
                return Some(i);
            }
        }
        None
    }

    /// The header.
    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: the region starts with an initialised header and outlives `self`.
        unsafe { &*(self.inner.region.as_ptr() as *const Header) }
    }

    /// Slots in the ring.
    #[inline]
    pub fn capacity(&self) -> i64 {
        self.inner.capacity
    }
    /// Bytes per slot.
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.inner.slot_size
    }
    /// Producer kind.
    #[inline]
    pub fn kind(&self) -> ProducerKind {
        self.inner.kind
    }
    /// Name of a shared ring.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }
    /// True for the process that created the ring.
    pub fn is_creator(&self) -> bool {
        self.inner.creator
    }
    /// Total bytes of the region.
    pub fn region_size(&self) -> usize {
        self.inner.region.len()
    }
    /// Fallbacks taken while mapping memory.
    pub fn memory_warnings(&self) -> &[String] {
        &self.inner.region.warnings
    }
    /// The dtype description stored at creation.
    pub fn dtype_descr(&self) -> &[u8] {
        let h = self.header();
        &h.dtype[..h.dtype_len as usize]
    }
    /// Dead consumer policy stored at creation.
    pub fn dead_consumer_policy(&self) -> DeadConsumerPolicy {
        if self.header().dead_policy == 1 {
            DeadConsumerPolicy::Raise
        } else {
            DeadConsumerPolicy::Remove
        }
    }
    /// Highest published (single producer) or claimed (multi producer) sequence.
    #[inline]
    pub fn cursor(&self) -> i64 {
        self.header().cursor.load(Ordering::Acquire)
    }
    /// Slot index of a sequence.
    #[inline]
    pub fn index(&self, sequence: i64) -> usize {
        (sequence & self.inner.mask) as usize
    }
    /// Pointer to the slot of `sequence`.
    #[inline]
    pub fn slot_ptr(&self, sequence: i64) -> *mut u8 {
        // SAFETY: the index is below capacity, so the slot lies inside the region.
        unsafe { self.inner.slots.add(self.index(sequence) * self.inner.slot_size) }
    }
    /// Read the slot of `sequence`.
    ///
    /// # Safety
    /// `sequence` must be published and not yet released by the caller's consumer, so no
    /// producer can write it while the slice lives.
    #[inline]
    pub unsafe fn slot(&self, sequence: i64) -> &[u8] {
        // SAFETY: in bounds (see `slot_ptr`); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.slot_ptr(sequence), self.inner.slot_size) }
    }
    /// Write the slot of `sequence`.
    ///
    /// # Safety
    /// `sequence` must be claimed by the caller and not yet published.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slot_mut(&self, sequence: i64) -> &mut [u8] {
        // SAFETY: in bounds (see `slot_ptr`); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.slot_ptr(sequence), self.inner.slot_size) }
    }
    /// The last sequence of the contiguous run that starts at `lo` and ends at most at `hi`.
    #[inline]
    pub fn contiguous_end(&self, lo: i64, hi: i64) -> i64 {
        let to_end = self.inner.capacity - (lo & self.inner.mask) - 1;
        hi.min(lo + to_end)
    }

    // ---- multi-producer availability ----

    #[inline]
    fn flag(&self, sequence: i64) -> i32 {
        (sequence >> self.inner.index_shift) as i32
    }
    #[inline]
    fn availability(&self, sequence: i64) -> &AtomicI32 {
        // SAFETY: multi-producer rings have `capacity` flags; the index is below capacity.
        unsafe { &*self.inner.availability.add(self.index(sequence)) }
    }
    /// Mark `lo..=hi` as published (multi-producer rings).
    #[inline]
    pub(crate) fn set_available(&self, lo: i64, hi: i64) {
        for s in lo..=hi {
            self.availability(s).store(self.flag(s), Ordering::Release);
        }
    }
    /// True if `sequence` is published.
    #[inline]
    pub fn is_available(&self, sequence: i64) -> bool {
        match self.inner.kind {
            ProducerKind::Single => sequence <= self.cursor(),
            ProducerKind::Multi => self.availability(sequence).load(Ordering::Acquire) == self.flag(sequence),
        }
    }
    /// The highest sequence in `lo..=available` such that every sequence up to it is published.
    #[inline]
    pub fn highest_published(&self, lo: i64, available: i64) -> i64 {
        if self.inner.kind == ProducerKind::Single {
            return available;
        }
        let mut s = lo;
        while s <= available {
            if !self.is_available(s) {
                return s - 1;
            }
            s += 1;
        }
        available
    }

    // ---- consumers and gating ----

    fn slot_of(&self, id: ConsumerId) -> &ConsumerSlot {
        &self.header().consumers[id]
    }

    /// Register a consumer that runs after `depends_on` and gates producers.
    ///
    /// It starts at the current cursor: it sees every event published after this call (on a
    /// multi-producer ring, every event claimed after it).
    pub fn add_consumer(&self, name: &str, depends_on: &[ConsumerId], blocking: bool) -> Result<ConsumerId> {
        if name.is_empty() || name.len() > NAME_LEN {
            return Err(Error::invalid("consumer name", format!("{name:?}"), format!("1 to {NAME_LEN} bytes")));
        }
        if self.find_consumer(name).is_some() {
            return Err(Error::invalid(
                "consumer name",
                format!("{name:?}"),
                "a name not used by another consumer of this ring",
            ));
        }
        let mut mask = 0u64;
        for &d in depends_on {
            if d >= MAX_CONSUMERS || self.slot_of(d).state.load(Ordering::Acquire) != SLOT_ACTIVE {
                return Err(Error::invalid("depends_on", d, "the id of an active consumer of this ring"));
            }
            mask |= 1 << d;
        }
        let h = self.header();
        // A freed slot that a registered consumer still depends on is not reused: its new owner
        // would silently gate that dependent.
        let depended_on = (0..MAX_CONSUMERS)
            .filter(|&i| matches!(self.slot_of(i).state.load(Ordering::Acquire), SLOT_ACTIVE | SLOT_REMOVED))
            .fold(0u64, |m, i| m | self.dependency_mask(i));
        for (id, slot) in h.consumers.iter().enumerate() {
            if depended_on & (1 << id) != 0 {
                continue;
            }
            if slot.state.compare_exchange(SLOT_FREE, SLOT_CLAIMING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                continue;
            }
            for (i, b) in slot.name.iter().enumerate() {
                b.store(name.as_bytes().get(i).copied().unwrap_or(0), Ordering::Relaxed);
            }
            slot.name_len.store(name.len() as u32, Ordering::Relaxed);
            slot.pid.store(shm::current_pid(), Ordering::Relaxed);
            slot.start_time.store(shm::current_start_time(), Ordering::Relaxed);
            slot.depends_on.store(mask, Ordering::Relaxed);
            slot.events.store(0, Ordering::Relaxed);
            slot.batches.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
            slot.failed.store(0, Ordering::Relaxed);
            slot.blocking.store(blocking as u32, Ordering::Relaxed);
            if blocking {
                h.blocking_consumers.fetch_add(1, Ordering::SeqCst);
            }
            // Start at the cursor, join gating, then re-read the cursor: a producer that computed
            // its gating minimum before the join cannot have wrapped past the second value.
            slot.sequence.store(self.cursor(), Ordering::SeqCst);
            slot.state.store(SLOT_ACTIVE, Ordering::SeqCst);
            h.gating_mask.fetch_or(1 << id, Ordering::SeqCst);
            slot.sequence.store(self.cursor(), Ordering::SeqCst);
            return Ok(id);
        }
        Err(Error::TooManyConsumers { max: MAX_CONSUMERS })
    }

    /// Set a consumer's sequence (for example to -1 before anything was published).
    pub fn reset_consumer(&self, id: ConsumerId, sequence: i64) {
        self.slot_of(id).sequence.store(sequence, Ordering::SeqCst);
    }

    /// Remove a consumer from gating and free its slot.
    pub fn release_consumer(&self, id: ConsumerId) {
        let h = self.header();
        let slot = self.slot_of(id);
        h.gating_mask.fetch_and(!(1 << id), Ordering::SeqCst);
        let prev = slot.state.swap(SLOT_FREE, Ordering::AcqRel);
        if prev != SLOT_FREE && slot.blocking.swap(0, Ordering::Relaxed) == 1 {
            h.blocking_consumers.fetch_sub(1, Ordering::SeqCst);
        }
        self.wake_all();
    }

    /// Find a consumer by name.
    pub fn find_consumer(&self, name: &str) -> Option<ConsumerId> {
        (0..MAX_CONSUMERS).find(|&id| {
            let s = self.slot_of(id);
            let st = s.state.load(Ordering::Acquire);
            (st == SLOT_ACTIVE || st == SLOT_REMOVED) && self.consumer_name(id) == name
        })
    }

    fn consumer_name(&self, id: ConsumerId) -> String {
        let s = self.slot_of(id);
        let n = (s.name_len.load(Ordering::Relaxed) as usize).min(NAME_LEN);
        let bytes: Vec<u8> = s.name[..n].iter().map(|b| b.load(Ordering::Relaxed)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The sequence of consumer `id`.
    #[inline]
    pub fn consumer_sequence(&self, id: ConsumerId) -> &AtomicI64 {
        &self.slot_of(id).sequence
    }

    /// Record a handled batch in the consumer's shared counters (single writer: the consumer).
    #[inline]
    pub fn record_batch(&self, id: ConsumerId, events: u64) {
        let s = self.slot_of(id);
        s.events.store(s.events.load(Ordering::Relaxed) + events, Ordering::Relaxed);
        s.batches.store(s.batches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Mark (or clear) a consumer as halted on a handler failure.
    pub fn set_failed(&self, id: ConsumerId, failed: bool) {
        self.slot_of(id).failed.store(failed as u32, Ordering::Release);
        self.wake_all();
    }

    /// The first gating consumer that halted on a handler failure, as an error.
    pub fn check_failed_consumers(&self) -> Result<()> {
        let mut mask = self.header().gating_mask.load(Ordering::Acquire);
        while mask != 0 {
            let id = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let s = self.slot_of(id);
            if s.failed.load(Ordering::Acquire) != 0 {
                return Err(Error::ConsumerFailed {
                    consumer: self.consumer_name(id),
                    sequence: s.sequence.load(Ordering::Acquire),
                });
            }
        }
        Ok(())
    }

    /// Count a handler error.
    pub fn record_error(&self, id: ConsumerId) {
        self.slot_of(id).errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Mask of consumers a consumer depends on.
    #[inline]
    pub fn dependency_mask(&self, id: ConsumerId) -> u64 {
        self.slot_of(id).depends_on.load(Ordering::Acquire)
    }

    /// The minimum sequence over the consumers in `mask` that still gate (removed ones are skipped),
    /// or `default` when none does.
    #[inline]
    pub fn min_sequence(&self, mask: u64, default: i64) -> i64 {
        let mut m = mask;
        let mut min = default;
        while m != 0 {
            let id = m.trailing_zeros() as usize;
            m &= m - 1;
            let slot = self.slot_of(id);
            let s = slot.sequence.load(Ordering::Acquire);
            if s < min && slot.state.load(Ordering::Relaxed) == SLOT_ACTIVE {
                min = s;
            }
        }
        min
    }

    /// The minimum over every gating consumer, or `default` when none.
    #[inline]
    pub fn min_gating(&self, default: i64) -> i64 {
        self.min_sequence(self.header().gating_mask.load(Ordering::Acquire), default)
    }

    /// A snapshot of consumer `id`.
    pub fn consumer_info(&self, id: ConsumerId) -> ConsumerInfo {
        let s = self.slot_of(id);
        let st = s.state.load(Ordering::Acquire);
        let deps = s.depends_on.load(Ordering::Relaxed);
        ConsumerInfo {
            id,
            name: self.consumer_name(id),
            sequence: s.sequence.load(Ordering::Acquire),
            active: st == SLOT_ACTIVE,
            removed: st == SLOT_REMOVED,
            pid: s.pid.load(Ordering::Relaxed),
            events: s.events.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            depends_on: (0..MAX_CONSUMERS).filter(|i| deps & (1 << i) != 0).collect(),
        }
    }

    /// Snapshots of every registered (or removed) consumer.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        (0..MAX_CONSUMERS)
            .filter(|&id| matches!(self.slot_of(id).state.load(Ordering::Acquire), SLOT_ACTIVE | SLOT_REMOVED))
            .map(|id| self.consumer_info(id))
            .collect()
    }

    /// Look for gating consumers whose process died. With [`DeadConsumerPolicy::Remove`] they
    /// are removed from gating (returns true if any was); with `Raise` the first one is reported.
    pub fn check_dead_consumers(&self) -> Result<bool> {
        let h = self.header();
        let mut mask = h.gating_mask.load(Ordering::Acquire);
        let mut removed = false;
        // Consumers of this very process are alive by definition; skipping them also keeps the
        // producer's wait free of /proc reads and heap allocations for private rings.
        let me = shm::current_pid();
        while mask != 0 {
            let id = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let s = self.slot_of(id);
            let pid = s.pid.load(Ordering::Relaxed);
            if pid == me || shm::process_alive(pid, s.start_time.load(Ordering::Relaxed)) {
                continue;
            }
            match self.dead_consumer_policy() {
                DeadConsumerPolicy::Raise => {
                    return Err(Error::ConsumerDied {
                        consumer: self.consumer_name(id),
                        pid,
                        sequence: s.sequence.load(Ordering::Acquire),
                    })
                }
                DeadConsumerPolicy::Remove => {
                    h.gating_mask.fetch_and(!(1 << id), Ordering::SeqCst);
                    if s.state.compare_exchange(SLOT_ACTIVE, SLOT_REMOVED, Ordering::AcqRel, Ordering::Acquire).is_ok()
                        && s.blocking.swap(0, Ordering::Relaxed) == 1
                    {
                        h.blocking_consumers.fetch_sub(1, Ordering::SeqCst);
                    }
                    removed = true;
                }
            }
        }
        Ok(removed)
    }

    // ---- wake-ups and shutdown ----

    /// Wake consumers sleeping in the blocking wait strategy, if any.
    #[inline]
    pub fn signal_waiters(&self) {
        let h = self.header();
        if h.blocking_consumers.load(Ordering::Relaxed) == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        if h.wakeup.waiters.load(Ordering::Relaxed) != 0 {
            self.wake_all();
        }
    }

    /// Wake every sleeper unconditionally.
    pub fn wake_all(&self) {
        let w = &self.header().wakeup;
        w.signal.fetch_add(1, Ordering::SeqCst);
        futex_wake(&w.signal);
    }

    /// Shut the ring down: later claims fail with [`Error::Closed`].
    pub fn close(&self) {
        self.header().closed.store(1, Ordering::SeqCst);
        self.wake_all();
    }

    /// True after [`RingBuffer::close`].
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.header().closed.load(Ordering::Relaxed) != 0
    }

    /// Reopen a closed ring (after a drained stop, to start again).
    pub fn reopen(&self) {
        self.header().closed.store(0, Ordering::SeqCst);
    }

    /// The error for publishing to a closed ring.
    #[cold]
    #[inline(never)]
    pub(crate) fn closed_error(&self) -> Error {
        Error::Closed { name: self.name().unwrap_or("<private>").to_owned() }
    }

    /// Remove the named segment now (mappings stay valid until dropped).
    pub fn unlink(&self) -> Result<()> {
        self.inner.region.unlink().map(|_| ()).map_err(|e| {
            let path = self.inner.region.path().map(|p| p.display().to_string()).unwrap_or_default();
            Error::io(format!("removing {path}"), e)
        })
    }
}

enum Probe {
    InUse(u32),
    Stale(u32),
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(i) = self.process_slot {
            // SAFETY: the region is still mapped (it is dropped after this runs).
            let h = unsafe { &*(self.region.as_ptr() as *const Header) };
            h.processes[i].pid.store(0, Ordering::Release);
        }
        if self.creator {
            let _ = self.region.unlink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_must_be_a_power_of_two() {
        let e = RingBuffer::create(&RingOptions::new(1000, 8)).unwrap_err();
        assert!(e.to_string().contains("capacity: 1000"), "{e}");
        assert!(RingBuffer::create(&RingOptions::new(1024, 0)).is_err());
    }

    #[test]
    fn contiguous_end_stops_at_the_ring_end() {
        let r = RingBuffer::create(&RingOptions::new(8, 8)).unwrap();
        assert_eq!(r.contiguous_end(5, 12), 7);
        assert_eq!(r.contiguous_end(8, 12), 12);
        assert_eq!(r.contiguous_end(6, 6), 6);
    }

    #[test]
    fn consumers_register_find_and_release() {
        let r = RingBuffer::create(&RingOptions::new(8, 8)).unwrap();
        let a = r.add_consumer("a", &[], false).unwrap();
        let b = r.add_consumer("b", &[a], true).unwrap();
        assert_eq!(r.find_consumer("b"), Some(b));
        assert!(r.add_consumer("b", &[], false).is_err());
        assert_eq!(r.consumer_info(b).depends_on, vec![a]);
        assert_eq!(r.header().blocking_consumers.load(Ordering::Relaxed), 1);
        r.release_consumer(b);
        assert_eq!(r.find_consumer("b"), None);
        assert_eq!(r.header().blocking_consumers.load(Ordering::Relaxed), 0);
        assert_eq!(r.min_gating(99), -1);
        r.release_consumer(a);
        assert_eq!(r.min_gating(99), 99);
    }

    #[test]
    fn too_many_consumers_is_an_error() {
        let r = RingBuffer::create(&RingOptions::new(8, 8)).unwrap();
        for i in 0..MAX_CONSUMERS {
            r.add_consumer(&format!("c{i}"), &[], false).unwrap();
        }
        assert!(matches!(r.add_consumer("x", &[], false), Err(Error::TooManyConsumers { .. })));
    }

    #[test]
    fn named_ring_attach_stale_and_cleanup() {
        let name = format!("mi-test-{}", std::process::id());
        let ring = RingBuffer::create(&RingOptions::new(16, 8).named(&name)).unwrap();
        let other = RingBuffer::attach(&name, &MemoryOptions::default()).unwrap();
        assert_eq!(other.capacity(), 16);
        assert!(matches!(RingBuffer::create(&RingOptions::new(16, 8).named(&name)), Err(Error::Exists { .. })));
        drop(other);
        drop(ring);
        assert!(matches!(RingBuffer::attach(&name, &MemoryOptions::default()), Err(Error::NotFound { .. })));
    }
}

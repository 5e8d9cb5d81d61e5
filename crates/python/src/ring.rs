//! `RingBuffer` for Python: creation and attach, publishing (records, numpy batches, in-place
//! claims) and statistics.

use crate::errors::{raise, IntoPyResult};
use crate::record::RecordLayout;
use crate::views::array_view;
use market_intel_core::shm::HugePages;
use market_intel_core::{
    DeadConsumerPolicy, Error, MemoryOptions, MultiProducerSequencer, ProducerKind, RingBuffer, RingOptions, Sequencer,
    SingleProducerSequencer, StalePolicy,
};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

/// Records up to this size are encoded on the stack before the claim.
const STACK_RECORD: usize = 256;
/// Batches above this many bytes are copied with the GIL released.
const RELEASE_GIL_COPY: usize = 1 << 16;

/// Runs a closure with the GIL released although it captures a non-`Send` guard: `detach`
/// runs the closure on the calling thread, so the guard never changes threads.
pub(crate) struct SameThread<T>(pub T);
// SAFETY: only used with `Python::detach`, which runs the closure on the current thread.
unsafe impl<T> Send for SameThread<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SameThread<T> {}

pub(crate) fn timeout_arg(py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => {
            Err(raise(py, "InvalidArgumentError", format!("timeout: {t} is not valid; expected None or seconds >= 0")))
        }
    }
}

fn open_claim_error(py: Python<'_>, lo: i64, hi: i64) -> PyErr {
    raise(
        py,
        "ProducerConflictError",
        format!("claim of sequences {lo}..{hi} is still open; publish it before publishing more"),
    )
}

#[derive(Debug)]
struct SingleState {
    sequencer: Option<SingleProducerSequencer>,
    open_claim: Option<(i64, i64)>,
}

#[derive(Debug)]
enum Producer {
    Single(Mutex<SingleState>),
    Multi(MultiProducerSequencer),
}

/// A lock-free ring of fixed-size records described by a numpy dtype.
#[pyclass(module = "market_intel._core", name = "RingBuffer", subclass, frozen)]
#[derive(Debug)]
pub struct PyRingBuffer {
    pub(crate) ring: RingBuffer,
    pub(crate) dtype: Py<PyArrayDescr>,
    layout: RecordLayout,
    producer: Producer,
}

fn parse_choice<'a>(py: Python<'_>, field: &str, value: &str, choices: &[&'a str]) -> PyResult<&'a str> {
    choices.iter().copied().find(|c| *c == value).ok_or_else(|| {
        raise(py, "InvalidArgumentError", format!("{field}: {value:?} is not valid; expected one of {choices:?}"))
    })
}

fn dtype_description(py: Python<'_>, dtype: &Bound<'_, PyArrayDescr>) -> PyResult<String> {
    let fmt = py.import("numpy.lib.format")?;
    let descr = fmt.call_method1("dtype_to_descr", (dtype,))?;
    Ok(descr.repr()?.to_string())
}

fn dtype_from_description<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyArrayDescr>> {
    let value = py.import("ast")?.call_method1("literal_eval", (text,))?;
    let dt = py.import("numpy.lib.format")?.call_method1("descr_to_dtype", (value,))?;
    Ok(dt.cast_into::<PyArrayDescr>()?)
}

impl PyRingBuffer {
    fn build(py: Python<'_>, ring: RingBuffer, dtype: Bound<'_, PyArrayDescr>) -> PyResult<Self> {
        let layout = RecordLayout::new(py, &dtype)?;
        let producer = match ring.kind() {
            ProducerKind::Single => Producer::Single(Mutex::new(SingleState { sequencer: None, open_claim: None })),
            ProducerKind::Multi => Producer::Multi(MultiProducerSequencer::new(ring.clone()).py_err(py)?),
        };
        for w in ring.memory_warnings() {
            let cat = py.import("market_intel.errors")?.getattr("MemoryOptionWarning")?;
            PyErr::warn(py, &cat, &std::ffi::CString::new(w.as_str()).unwrap_or_default(), 1)?;
        }
        Ok(Self { ring, dtype: dtype.unbind(), layout, producer })
    }

    fn itemsize(&self) -> usize {
        self.ring.slot_size()
    }

    /// Encode a record into `buf` (checked completely before anything is claimed).
    fn encode(
        &self,
        py: Python<'_>,
        record: Option<&Bound<'_, PyAny>>,
        fields: Option<&Bound<'_, PyDict>>,
        buf: *mut u8,
    ) -> PyResult<()> {
        let values = match (record, fields) {
            (Some(r), None) => self.layout.values(py, r)?,
            (None, Some(d)) => self.layout.dict_values(py, d)?,
            (Some(_), Some(_)) => {
                return Err(raise(
                    py,
                    "RecordError",
                    "record: got a positional record and keywords; expected one or the other",
                ))
            }
            (None, None) => {
                return Err(raise(
                    py,
                    "RecordError",
                    format!("record: nothing given; expected the fields ({})", self.layout.names()),
                ))
            }
        };
        let dtype = self.dtype.bind(py);
        let n = self.itemsize();
        self.layout.write(py, buf, &values, |t| {
            // numpy writes the record into a temporary array whose bytes are then copied.
            let np = py.import("numpy")?;
            let tmp = np.call_method1("zeros", (1, dtype))?;
            let rec: Bound<'_, PyAny> = if dtype.has_fields() { t.clone().into_any() } else { t.get_item(0)? };
            tmp.set_item(0, rec)?;
            let arr = tmp.cast::<PyUntypedArray>()?;
            // SAFETY: `tmp` is a fresh C-contiguous array of one record of `n` bytes; `buf` holds `n` bytes.
            unsafe { std::ptr::copy_nonoverlapping(crate::views::array_data(arr) as *const u8, buf, n) };
            Ok(())
        })
    }

    /// Claim `n` sequences (blocking with the GIL released, or not at all when `wait` is false).
    pub(crate) fn claim_seq(&self, py: Python<'_>, n: i64, wait: bool, timeout: Option<Duration>) -> PyResult<i64> {
        match &self.producer {
            Producer::Multi(m) => match m.claim_now(n) {
                Ok(hi) => Ok(hi),
                Err(Error::InsufficientCapacity { .. }) if wait => py.detach(|| m.claim_next(n, timeout)).py_err(py),
                Err(e) => Err(crate::errors::to_py(py, e)),
            },
            Producer::Single(state) => {
                let mut guard = self.single_state(py, state)?;
                if let Some((lo, hi)) = guard.open_claim {
                    return Err(open_claim_error(py, lo, hi));
                }
                let sequencer = guard.sequencer.as_mut().expect("created by single_state");
                match sequencer.try_next(n) {
                    Ok(hi) => Ok(hi),
                    Err(Error::InsufficientCapacity { .. }) if wait => {
                        let g = SameThread(&mut guard);
                        py.detach(move || {
                            let g = g;
                            g.0.sequencer.as_mut().expect("created").next_timeout(n, timeout)
                        })
                        .py_err(py)
                    }
                    Err(e) => Err(crate::errors::to_py(py, e)),
                }
            }
        }
    }

    fn single_state<'a>(
        &self,
        py: Python<'_>,
        state: &'a Mutex<SingleState>,
    ) -> PyResult<std::sync::MutexGuard<'a, SingleState>> {
        let mut guard = match state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(raise(
                    py,
                    "ProducerConflictError",
                    format!(
                        "ring {}: a single-producer ring was published from two threads at once; create it with producer='multi'",
                        self.display_name()
                    ),
                ))
            }
        };
        if guard.sequencer.is_none() {
            guard.sequencer = Some(SingleProducerSequencer::new(self.ring.clone()).py_err(py)?);
        }
        Ok(guard)
    }

    pub(crate) fn publish_seq(&self, lo: i64, hi: i64) {
        match &self.producer {
            Producer::Multi(m) => m.publish_range(lo, hi),
            Producer::Single(state) => {
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(s) = g.sequencer.as_mut() {
                    s.publish(lo, hi)
                }
            }
        }
    }

    fn display_name(&self) -> String {
        self.ring.name().map(|n| format!("'{n}'")).unwrap_or_else(|| "<private>".into())
    }

    fn publish_one(
        &self,
        py: Python<'_>,
        record: Option<&Bound<'_, PyAny>>,
        fields: Option<&Bound<'_, PyDict>>,
        wait: bool,
    ) -> PyResult<i64> {
        let n = self.itemsize();
        let mut stack = [0u8; STACK_RECORD];
        let mut heap = Vec::new();
        let buf = if n <= STACK_RECORD {
            stack.as_mut_ptr()
        } else {
            heap.resize(n, 0u8);
            heap.as_mut_ptr()
        };
        // Encode completely before claiming: a bad record never leaves a claimed hole.
        let fast = match (record, fields) {
            (Some(r), None) => self.layout.write_tuple_fast(py, buf, r)?,
            _ => false,
        };
        if !fast {
            self.encode(py, record, fields, buf)?;
        }
        match &self.producer {
            Producer::Single(state) => {
                let mut guard = self.single_state(py, state)?;
                if let Some((lo, hi)) = guard.open_claim {
                    return Err(open_claim_error(py, lo, hi));
                }
                let sequencer = guard.sequencer.as_mut().expect("created by single_state");
                let seq = match sequencer.try_next(1) {
                    Ok(s) => s,
                    Err(Error::InsufficientCapacity { .. }) if wait => {
                        let g = SameThread(&mut *sequencer);
                        py.detach(move || {
                            let g = g;
                            g.0.next(1)
                        })
                        .py_err(py)?
                    }
                    Err(e) => return Err(crate::errors::to_py(py, e)),
                };
                // SAFETY: `seq` was just claimed by this producer and is unpublished; `buf` holds `n` bytes.
                unsafe { std::ptr::copy_nonoverlapping(buf, self.ring.slot_ptr(seq), n) };
                sequencer.publish(seq, seq);
                Ok(seq)
            }
            Producer::Multi(m) => {
                let seq = match m.claim_now(1) {
                    Ok(s) => s,
                    Err(Error::InsufficientCapacity { .. }) if wait => {
                        py.detach(|| m.claim_next(1, None)).py_err(py)?
                    }
                    Err(e) => return Err(crate::errors::to_py(py, e)),
                };
                // SAFETY: as above.
                unsafe { std::ptr::copy_nonoverlapping(buf, self.ring.slot_ptr(seq), n) };
                m.publish_range(seq, seq);
                Ok(seq)
            }
        }
    }

    /// Copy `n` records from `src` into the claimed `lo..=hi`, in one or two parts.
    ///
    /// # Safety
    /// `lo..=hi` must be claimed and unpublished, `src` valid for `(hi-lo+1) * itemsize` bytes.
    pub(crate) unsafe fn copy_in(&self, src: *const u8, lo: i64, hi: i64) {
        let size = self.itemsize();
        let first_end = self.ring.contiguous_end(lo, hi);
        let first = ((first_end - lo + 1) as usize) * size;
        // SAFETY: per the contract; the first part ends at the ring end, the second starts at slot 0.
        unsafe {
            std::ptr::copy_nonoverlapping(src, self.ring.slot_ptr(lo), first);
            if first_end < hi {
                let rest = ((hi - first_end) as usize) * size;
                std::ptr::copy_nonoverlapping(src.add(first), self.ring.slot_ptr(first_end + 1), rest);
            }
        }
    }

    pub(crate) fn check_dtype(&self, py: Python<'_>, what: &str, dtype: &Bound<'_, PyArrayDescr>) -> PyResult<()> {
        let mine = self.dtype.bind(py);
        if !mine.is_equiv_to(dtype) {
            return Err(raise(
                py,
                "DtypeMismatchError",
                format!("{what}: dtype {} does not match the ring's dtype {}", dtype.repr()?, mine.repr()?),
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl PyRingBuffer {
    #[new]
    #[pyo3(signature = (capacity=None, dtype=None, *, name=None, create=true, producer=None, prefault=false, lock=false, huge_pages="off", dead_consumers="remove", on_stale="raise"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        capacity: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
        name: Option<String>,
        create: bool,
        producer: Option<&str>,
        prefault: bool,
        lock: bool,
        huge_pages: &str,
        dead_consumers: &str,
        on_stale: &str,
    ) -> PyResult<Self> {
        let huge = match parse_choice(py, "huge_pages", huge_pages, &["off", "transparent", "explicit"])? {
            "transparent" => HugePages::Transparent,
            "explicit" => HugePages::Explicit,
            _ => HugePages::Off,
        };
        let memory = MemoryOptions { prefault, lock, huge_pages: huge };
        let wanted_dtype = match dtype {
            Some(d) => Some(PyArrayDescr::new(py, d).map_err(|e| {
                raise(
                    py,
                    "InvalidArgumentError",
                    format!(
                        "dtype: {} is not valid; expected a numpy dtype ({e})",
                        d.repr().map(|r| r.to_string()).unwrap_or_default()
                    ),
                )
            })?),
            None => None,
        };
        let wanted_capacity: Option<i64> = match capacity {
            Some(c) => Some(c.extract().map_err(|_| {
                raise(
                    py,
                    "InvalidArgumentError",
                    format!(
                        "capacity: {} is not valid; expected a power of two",
                        c.repr().map(|r| r.to_string()).unwrap_or_default()
                    ),
                )
            })?),
            None => None,
        };
        if !create {
            let Some(name) = name else {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    "name: None is not valid with create=False; expected the name of a shared ring",
                ));
            };
            let ring = py.detach(|| RingBuffer::attach(&name, &memory)).py_err(py)?;
            let stored = String::from_utf8_lossy(ring.dtype_descr()).into_owned();
            let ring_dtype = dtype_from_description(py, &stored)?;
            if let Some(want) = &wanted_dtype {
                if !want.is_equiv_to(&ring_dtype) {
                    return Err(raise(
                        py,
                        "LayoutMismatchError",
                        format!("ring segment '{name}': dtype is {}, expected {}", ring_dtype.repr()?, want.repr()?),
                    ));
                }
            }
            if let Some(c) = wanted_capacity {
                if c != ring.capacity() {
                    return Err(raise(
                        py,
                        "LayoutMismatchError",
                        format!("ring segment '{name}': capacity is {}, expected {c}", ring.capacity()),
                    ));
                }
            }
            let kind = match ring.kind() {
                ProducerKind::Single => "single",
                ProducerKind::Multi => "multi",
            };
            if let Some(want) = producer {
                parse_choice(py, "producer", want, &["single", "multi"])?;
                if want != kind {
                    return Err(raise(
                        py,
                        "LayoutMismatchError",
                        format!("ring segment '{name}': producer is '{kind}', expected '{want}'"),
                    ));
                }
            }
            return Self::build(py, ring, ring_dtype);
        }
        let Some(capacity) = wanted_capacity else {
            return Err(raise(py, "InvalidArgumentError", "capacity: None is not valid; expected a power of two"));
        };
        let Some(dtype) = wanted_dtype else {
            return Err(raise(py, "InvalidArgumentError", "dtype: None is not valid; expected a numpy dtype"));
        };
        if !(2..=(1 << 31)).contains(&capacity) || (capacity & (capacity - 1)) != 0 {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("capacity: {capacity} is not valid; expected a power of two between 2 and 2**31"),
            ));
        }
        if dtype.itemsize() == 0 {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("dtype: {} is not valid; expected a dtype with a non-zero itemsize", dtype.repr()?),
            ));
        }
        if dtype.has_object() {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("dtype: {} is not valid; expected a dtype without Python objects", dtype.repr()?),
            ));
        }
        let kind = match parse_choice(py, "producer", producer.unwrap_or("single"), &["single", "multi"])? {
            "multi" => ProducerKind::Multi,
            _ => ProducerKind::Single,
        };
        let dead = match parse_choice(py, "dead_consumers", dead_consumers, &["remove", "raise"])? {
            "raise" => DeadConsumerPolicy::Raise,
            _ => DeadConsumerPolicy::Remove,
        };
        let stale = match parse_choice(py, "on_stale", on_stale, &["raise", "reclaim"])? {
            "reclaim" => StalePolicy::Reclaim,
            _ => StalePolicy::Raise,
        };
        let opts = RingOptions {
            capacity: capacity as usize,
            slot_size: dtype.itemsize(),
            producer: kind,
            memory,
            dtype: if name.is_some() { dtype_description(py, &dtype)?.into_bytes() } else { Vec::new() },
            dead_consumers: dead,
            stale,
            name,
        };
        let ring = py.detach(|| RingBuffer::create(&opts)).py_err(py)?;
        Self::build(py, ring, dtype)
    }

    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> i64 {
        self.ring.capacity()
    }

    /// The record dtype.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDescr> {
        self.dtype.bind(py).clone()
    }

    /// Bytes per slot.
    #[getter]
    fn slot_size(&self) -> usize {
        self.itemsize()
    }

    /// Bytes of the whole ring (header, flags and slots).
    #[getter]
    fn nbytes(&self) -> usize {
        self.ring.region_size()
    }

    /// 'single' or 'multi'.
    #[getter]
    fn producer(&self) -> &'static str {
        match self.ring.kind() {
            ProducerKind::Single => "single",
            ProducerKind::Multi => "multi",
        }
    }

    /// Name of a shared ring, or None.
    #[getter]
    fn name(&self) -> Option<String> {
        self.ring.name().map(str::to_owned)
    }

    /// True for the process that created the ring (it removes the segment on close).
    #[getter]
    fn is_owner(&self) -> bool {
        self.ring.is_creator()
    }

    /// Highest published (single) or claimed (multi) sequence; -1 before the first.
    #[getter]
    fn cursor(&self) -> i64 {
        self.ring.cursor()
    }

    /// True after shutdown.
    #[getter]
    fn closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Memory options that fell back (also issued as MemoryOptionWarning).
    #[getter]
    fn memory_warnings(&self) -> Vec<String> {
        self.ring.memory_warnings().to_vec()
    }

    /// Free slots now (claimed but unpublished slots are not free).
    fn remaining_capacity(&self) -> i64 {
        let produced = self.claimed();
        self.ring.capacity() - (produced - self.ring.min_gating(produced))
    }

    /// Publish one record (a tuple in field order, a dict, or a scalar for a plain dtype);
    /// wait while the ring is full. Returns its sequence.
    #[pyo3(signature = (record, /))]
    fn publish(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<i64> {
        self.publish_one(py, Some(record), None, true)
    }

    /// Publish one record given as keywords, one per field; wait while the ring is full.
    #[pyo3(signature = (**fields))]
    fn publish_fields(&self, py: Python<'_>, fields: Option<&Bound<'_, PyDict>>) -> PyResult<i64> {
        let empty = PyDict::new(py);
        self.publish_one(py, None, Some(fields.unwrap_or(&empty)), true)
    }

    /// Publish one record only if a slot is free now, else raise InsufficientCapacity.
    #[pyo3(signature = (record, /))]
    fn try_publish(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<i64> {
        self.publish_one(py, Some(record), None, false)
    }

    /// Copy a 1-D array of records (the ring's dtype) into the ring in one go; wait while full.
    /// Returns the sequence of the last record (the cursor when the array is empty).
    #[pyo3(signature = (array, *, timeout=None))]
    fn publish_batch(&self, py: Python<'_>, array: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<i64> {
        let timeout = timeout_arg(py, timeout)?;
        let arr = array.cast::<PyUntypedArray>().map_err(|_| {
            raise(
                py,
                "InvalidArgumentError",
                format!(
                    "array: {} is not valid; expected a numpy array of the ring's dtype",
                    array.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ),
            )
        })?;
        self.check_dtype(py, "array", &arr.dtype())?;
        if arr.ndim() != 1 {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("array: {} dimensions is not valid; expected a 1-D array of records", arr.ndim()),
            ));
        }
        let n = arr.len() as i64;
        if n == 0 {
            return Ok(self.ring.cursor());
        }
        if n > self.ring.capacity() {
            return Err(raise(
                py,
                "BatchTooLargeError",
                format!("array: {n} records is not valid; expected at most the capacity {}", self.ring.capacity()),
            ));
        }
        let contiguous;
        let arr = if arr.is_c_contiguous() {
            arr.clone()
        } else {
            contiguous = py.import("numpy")?.call_method1("ascontiguousarray", (arr,))?;
            contiguous.cast::<PyUntypedArray>()?.clone()
        };
        let hi = self.claim_seq(py, n, true, timeout)?;
        let lo = hi - n + 1;
        // SAFETY: the array is C-contiguous with n records of the ring's itemsize.
        let src = crate::views::array_data(&arr) as *const u8;
        let bytes = n as usize * self.itemsize();
        if bytes > RELEASE_GIL_COPY {
            let src = SameThread(src);
            py.detach(|| {
                let s = src;
                // SAFETY: `lo..=hi` is claimed and unpublished; `arr` (and so `src`) stays alive.
                unsafe { self.copy_in(s.0, lo, hi) }
            });
        } else {
            // SAFETY: as above.
            unsafe { self.copy_in(src, lo, hi) };
        }
        self.publish_seq(lo, hi);
        Ok(hi)
    }

    /// Claim `n` slots and return a Claim whose writable `view` is filled in place; the records
    /// are published by `Claim.publish()` (or on leaving a `with` block).
    #[pyo3(signature = (n, *, timeout=None))]
    fn claim(slf: &Bound<'_, Self>, n: i64, timeout: Option<f64>) -> PyResult<crate::claim::Claim> {
        let py = slf.py();
        let this = slf.get();
        if n < 1 || n > this.ring.capacity() {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("n: {n} is not valid; expected between 1 and the capacity {}", this.ring.capacity()),
            ));
        }
        let timeout = timeout_arg(py, timeout)?;
        let hi = this.claim_seq(py, n, true, timeout)?;
        let lo = hi - n + 1;
        if let Producer::Single(state) = &this.producer {
            state.lock().unwrap_or_else(|p| p.into_inner()).open_claim = Some((lo, hi));
        }
        crate::claim::Claim::new(slf, lo, hi)
    }

    /// Shut down: later publishes raise RingClosedError; waiting consumers are woken.
    fn shutdown(&self) {
        self.ring.close();
    }

    /// Accept publishes again after shutdown().
    fn reopen(&self) {
        self.ring.reopen();
    }

    /// Remove the shared segment now (attached processes keep their mapping).
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        self.ring.unlink().py_err(py)
    }

    /// Check for consumer processes that died; returns True if one was removed from gating.
    fn check_dead_consumers(&self, py: Python<'_>) -> PyResult<bool> {
        self.ring.check_dead_consumers().py_err(py)
    }

    /// (cursor, capacity, remaining capacity, published count).
    fn _ring_stats(&self) -> (i64, i64, i64, i64) {
        let cursor = self.ring.cursor();
        let claimed = self.claimed();
        let min = self.ring.min_gating(claimed);
        let oldest = (cursor - self.ring.capacity() + 1).max(0);
        let from = match self.ring.min_gating(i64::MAX) {
            i64::MAX => oldest,
            gating => (gating + 1).max(oldest),
        };
        let published = self.ring.highest_published(from, cursor) + 1;
        (cursor, self.ring.capacity(), self.ring.capacity() - (claimed - min), published)
    }

    /// One tuple per consumer: (id, name, sequence, events, batches, errors, pid, active, removed, depends_on).
    fn _consumer_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for c in self.ring.consumers() {
            let t = PyTuple::new(
                py,
                [
                    c.id.into_pyobject(py)?.into_any(),
                    c.name.into_pyobject(py)?.into_any(),
                    c.sequence.into_pyobject(py)?.into_any(),
                    c.events.into_pyobject(py)?.into_any(),
                    c.batches.into_pyobject(py)?.into_any(),
                    c.errors.into_pyobject(py)?.into_any(),
                    c.pid.into_pyobject(py)?.into_any(),
                    pyo3::types::PyBool::new(py, c.active).to_owned().into_any(),
                    pyo3::types::PyBool::new(py, c.removed).to_owned().into_any(),
                    PyTuple::new(py, c.depends_on)?.into_any(),
                ],
            )?;
            out.append(t)?;
        }
        Ok(out)
    }

    /// A read-only view of the published records `lo..=hi` (contiguous, not wrapping).
    /// For inspection and tests: the records may be overwritten once consumers release them.
    fn _peek<'py>(slf: &Bound<'py, Self>, lo: i64, hi: i64) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if hi < lo || this.ring.contiguous_end(lo, hi) != hi || lo < 0 {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("lo..hi: {lo}..{hi} is not valid; expected a non-wrapping range"),
            ));
        }
        // SAFETY: the range is inside the slot array; it is read-only.
        unsafe {
            array_view(py, this.dtype.bind(py), this.ring.slot_ptr(lo), (hi - lo + 1) as usize, false, slf.as_any())
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RingBuffer(capacity={}, slot_size={}, producer='{}', name={}, cursor={})",
            self.ring.capacity(),
            self.itemsize(),
            self.producer(),
            self.ring.name().map(|n| format!("'{n}'")).unwrap_or_else(|| "None".into()),
            self.ring.cursor()
        )
    }
}

impl PyRingBuffer {
    /// The highest claimed sequence: this process's producer for single-producer rings (the
    /// cursor when it is busy or absent), the shared cursor for multi-producer rings.
    fn claimed(&self) -> i64 {
        match &self.producer {
            Producer::Single(state) => match state.try_lock() {
                Ok(g) => g.sequencer.as_ref().map_or_else(|| self.ring.cursor(), |s| s.claimed()),
                Err(_) => self.ring.cursor(),
            },
            Producer::Multi(_) => self.ring.cursor(),
        }
    }

    /// Roll back (single) or zero-fill and publish (multi) a claim that was not filled.
    pub(crate) fn abort_claim(&self, lo: i64, hi: i64) -> bool {
        match &self.producer {
            Producer::Single(state) => {
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                g.open_claim = None;
                if let Some(s) = g.sequencer.as_mut() {
                    let _ = s.unclaim(lo - 1);
                }
                false
            }
            Producer::Multi(m) => {
                for s in lo..=hi {
                    // SAFETY: `s` is claimed by this producer and unpublished.
                    unsafe { std::ptr::write_bytes(self.ring.slot_ptr(s), 0, self.itemsize()) };
                }
                m.publish_range(lo, hi);
                true
            }
        }
    }

    /// Publish a filled claim.
    pub(crate) fn finish_claim(&self, lo: i64, hi: i64) {
        if let Producer::Single(state) = &self.producer {
            state.lock().unwrap_or_else(|p| p.into_inner()).open_claim = None;
        }
        self.publish_seq(lo, hi);
    }
}

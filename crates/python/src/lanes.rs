//! `MessageLanes`: the engine's publish path for message objects.
//!
//! A message goes into the priority lane (CRITICAL and HIGH) or the normal lane (NORMAL and
//! LOW). One call reads the message's header attributes, stamps `published_ns`, writes the
//! header into the lane's record slot, puts the object into the lane's object column (a list
//! of `capacity` entries indexed by `sequence & (capacity - 1)`), and publishes. A publish to
//! the priority lane alerts the normal-lane pollers that wait, so an idle processor looks at
//! the priority lane at once.
//!
//! Everything that can fail (attribute reads, conversions) happens before the slot is claimed,
//! so a bad message never leaves an unpublished hole in a lane.

use crate::consumer::PyEventPoller;
use crate::errors::raise;
use crate::ring::PyRingBuffer;
use crate::views::field_offset;
use market_intel_core::{realtime_ns, LatencyRecorder};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyType};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Message types are 1..=7; index 0 counts nothing.
const TYPE_SLOTS: usize = 8;
/// Priorities at or below this value (CRITICAL = 0, HIGH = 1) take the priority lane.
const PRIORITY_LANE_MAX: u8 = 1;
/// `FLAG_OBJECT` of `market_intel.records`: the message object travels beside the record.
const FLAG_OBJECT: u8 = 1;

#[derive(Debug, Clone, Copy)]
struct Offsets {
    id: usize,
    created_ns: usize,
    published_ns: usize,
    type_: usize,
    priority: usize,
    flags: usize,
}

/// Where a message class keeps its header fields: byte offsets of its member slots.
///
/// A message class with `__slots__`-style members (as msgspec structs have) stores each field
/// as an object pointer at a fixed offset, described by the member descriptor in the class
/// dictionary. Reading those pointers directly skips four attribute lookups per publish.
#[derive(Debug, Clone, Copy)]
struct MemberSlots {
    type_: isize,
    priority: isize,
    id: isize,
    created_ns: isize,
    published_ns: isize,
}

fn member_offset(py: Python<'_>, class: &Bound<'_, PyType>, name: &str) -> Option<isize> {
    let descr = class.getattr("__dict__").ok()?.get_item(name).ok()?;
    let member_type = py.import("types").ok()?.getattr("MemberDescriptorType").ok()?;
    if !descr.is_instance(&member_type).ok()? {
        return None;
    }
    // SAFETY: `descr` is a member descriptor (checked above), whose C layout is
    // PyMemberDescrObject; its d_member points to the class's static PyMemberDef.
    let def = unsafe { *(*(descr.as_ptr() as *const pyo3::ffi::PyMemberDescrObject)).d_member };
    (def.type_code == pyo3::ffi::Py_T_OBJECT_EX).then_some(def.offset)
}

/// Read the object stored in a member slot (None if it is unset).
///
/// # Safety
/// `obj` must be an instance of exactly the class the offset was read from.
unsafe fn slot_get<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>, offset: isize) -> Option<Bound<'py, PyAny>> {
    // SAFETY: per the contract, `offset` addresses an object-pointer member of `obj`.
    unsafe {
        let p = *((obj.as_ptr() as *const u8).offset(offset) as *const *mut pyo3::ffi::PyObject);
        Bound::from_borrowed_ptr_or_opt(py, p)
    }
}

#[derive(Debug)]
struct Names {
    type_: Py<PyString>,
    priority: Py<PyString>,
    id: Py<PyString>,
    created_ns: Py<PyString>,
    published_ns: Py<PyString>,
}

/// The priority and normal lanes of an engine, with their object columns.
#[pyclass(module = "market_intel._core", name = "_MessageLanes", frozen)]
#[derive(Debug)]
pub struct PyMessageLanes {
    lanes: [Py<PyRingBuffer>; 2],
    objects: [Py<PyList>; 2],
    masks: [i64; 2],
    message_class: Py<PyType>,
    slots: Option<MemberSlots>,
    offsets: Offsets,
    names: Names,
    counts: [AtomicU64; TYPE_SLOTS],
    waiters: Mutex<Vec<Py<PyEventPoller>>>,
}

impl PyMessageLanes {
    fn lane_of(&self, priority: u8) -> usize {
        usize::from(priority > PRIORITY_LANE_MAX)
    }

    fn alert_waiters(&self) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for w in waiters.iter() {
            w.get().alert_barrier();
        }
    }

    fn publish_one(&self, py: Python<'_>, msg: &Bound<'_, PyAny>, wait: bool) -> PyResult<i64> {
        if !msg.is_instance(self.message_class.bind(py))? {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("message: {} is not a CoreMessage; expected a CoreMessage", msg.get_type().name()?),
            ));
        }
        // Member offsets, only for an instance of exactly the message class.
        let fast = match self.slots {
            Some(o) if msg.get_type().is(self.message_class.bind(py)) => Some(o),
            _ => None,
        };
        let n = &self.names;
        let read = |offset: Option<isize>, name: &Py<PyString>| -> PyResult<Bound<'_, PyAny>> {
            // SAFETY: an offset is only given with `fast`, i.e. for an instance of exactly the
            // class the offsets were read from, so it addresses one of its object members.
            match offset.and_then(|o| unsafe { slot_get(py, msg, o) }) {
                Some(v) => Ok(v),
                None => msg.getattr(name.bind(py)),
            }
        };
        let ty: u8 = read(fast.map(|o| o.type_), &n.type_)?.extract()?;
        let priority: u8 = read(fast.map(|o| o.priority), &n.priority)?.extract()?;
        let id: u64 = read(fast.map(|o| o.id), &n.id)?.extract()?;
        let created: i64 = read(fast.map(|o| o.created_ns), &n.created_ns)?.extract()?;
        if ty == 0 || usize::from(ty) >= TYPE_SLOTS {
            return Err(raise(
                py,
                "MessageValidationError",
                format!("CoreMessage.type: {ty} is not a MessageType; expected 1..{}", TYPE_SLOTS - 1),
            ));
        }
        let now = realtime_ns();
        let stamp = now.into_pyobject(py)?;
        match fast {
            // SAFETY: exact class (see above); the member holds a strong reference, which is
            // swapped for the new stamp and released, as the member setter does.
            Some(o) => unsafe {
                let slot = (msg.as_ptr() as *mut u8).offset(o.published_ns) as *mut *mut pyo3::ffi::PyObject;
                let old = std::ptr::replace(slot, stamp.into_ptr());
                pyo3::ffi::Py_XDECREF(old);
            },
            None => {
                // The message class is frozen for its users; the engine stamps `published_ns`
                // through the field's own descriptor, as the generic attribute setter does.
                // SAFETY: all three pointers are live objects held by this frame.
                let rc = unsafe {
                    pyo3::ffi::PyObject_GenericSetAttr(msg.as_ptr(), n.published_ns.as_ptr(), stamp.as_ptr())
                };
                if rc != 0 {
                    return Err(PyErr::fetch(py));
                }
            }
        }
        let lane = self.lane_of(priority);
        let ring = self.lanes[lane].get();
        let seq = ring.claim_seq(py, 1, wait, None)?;
        let o = self.offsets;
        // SAFETY: `seq` is claimed by this producer and unpublished, so its slot is ours to write;
        // every offset lies inside the slot (checked against the dtype at construction).
        unsafe {
            let p = ring.ring.slot_ptr(seq);
            std::ptr::write_bytes(p, 0, ring.ring.slot_size());
            std::ptr::write_unaligned(p.add(o.id) as *mut u64, id);
            std::ptr::write_unaligned(p.add(o.created_ns) as *mut i64, created);
            std::ptr::write_unaligned(p.add(o.published_ns) as *mut i64, now);
            *p.add(o.type_) = ty;
            *p.add(o.priority) = priority;
            *p.add(o.flags) = FLAG_OBJECT;
        }
        let index = (seq & self.masks[lane]) as usize;
        let objects = self.objects[lane].bind(py);
        // SAFETY: `index` < the list's length (checked at construction: it equals the capacity);
        // PyList_SetItem steals the new reference and releases the old item.
        unsafe {
            pyo3::ffi::PyList_SetItem(objects.as_ptr(), index as pyo3::ffi::Py_ssize_t, msg.clone().into_ptr());
        }
        ring.publish_seq(seq, seq);
        self.counts[usize::from(ty)].fetch_add(1, Ordering::Relaxed);
        if lane == 0 {
            self.alert_waiters();
        }
        Ok(seq)
    }
}

#[pymethods]
impl PyMessageLanes {
    #[new]
    fn new(
        py: Python<'_>,
        priority: Bound<'_, PyRingBuffer>,
        normal: Bound<'_, PyRingBuffer>,
        priority_objects: Bound<'_, PyList>,
        normal_objects: Bound<'_, PyList>,
        message_class: Bound<'_, PyType>,
    ) -> PyResult<Self> {
        let dtype = priority.get().dtype.bind(py).clone();
        let other = normal.get().dtype.bind(py).clone();
        if !dtype.is_equiv_to(&other) {
            return Err(raise(py, "DtypeMismatchError", "lanes: the two rings have different dtypes; expected one"));
        }
        let field = |d: &Bound<'_, PyArrayDescr>, name: &str, kind: u8, size: usize| {
            field_offset(py, d, "lane dtype", name, kind, size)
        };
        let offsets = Offsets {
            id: field(&dtype, "id", b'u', 8)?,
            created_ns: field(&dtype, "created_ns", b'i', 8)?,
            published_ns: field(&dtype, "published_ns", b'i', 8)?,
            type_: field(&dtype, "type", b'u', 1)?,
            priority: field(&dtype, "priority", b'u', 1)?,
            flags: field(&dtype, "flags", b'u', 1)?,
        };
        let mut masks = [0i64; 2];
        for (i, (ring, objects)) in [(&priority, &priority_objects), (&normal, &normal_objects)].into_iter().enumerate()
        {
            let capacity = ring.get().ring.capacity();
            if objects.len() as i64 != capacity {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    format!(
                        "lanes: object column of {} entries for a ring of {capacity}; expected equal",
                        objects.len()
                    ),
                ));
            }
            masks[i] = capacity - 1;
        }
        let names = Names {
            type_: PyString::intern(py, "type").unbind(),
            priority: PyString::intern(py, "priority").unbind(),
            id: PyString::intern(py, "id").unbind(),
            created_ns: PyString::intern(py, "created_ns").unbind(),
            published_ns: PyString::intern(py, "published_ns").unbind(),
        };
        let slot = |name: &str| member_offset(py, &message_class, name);
        let slots = match (slot("type"), slot("priority"), slot("id"), slot("created_ns"), slot("published_ns")) {
            (Some(type_), Some(priority), Some(id), Some(created_ns), Some(published_ns)) => {
                Some(MemberSlots { type_, priority, id, created_ns, published_ns })
            }
            _ => None,
        };
        Ok(Self {
            slots,
            lanes: [priority.unbind(), normal.unbind()],
            objects: [priority_objects.unbind(), normal_objects.unbind()],
            masks,
            message_class: message_class.unbind(),
            offsets,
            names,
            counts: Default::default(),
            waiters: Mutex::new(Vec::new()),
        })
    }

    /// Publish one message into its lane; returns its sequence in that lane.
    #[pyo3(signature = (message, /))]
    fn publish(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<i64> {
        self.publish_one(py, message, true)
    }

    /// Publish one message if its lane has a free slot now; else raise InsufficientCapacity
    /// (nothing is published).
    #[pyo3(signature = (message, /))]
    fn try_publish(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<i64> {
        self.publish_one(py, message, false)
    }

    /// Publish messages in order; returns how many.
    #[pyo3(signature = (messages, /))]
    fn publish_many(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut n = 0;
        for m in messages.try_iter()? {
            self.publish_one(py, &m?, true)?;
            n += 1;
        }
        Ok(n)
    }

    /// Count `n` record messages of type `message_type` published by another path.
    fn add_count(&self, message_type: usize, n: u64) {
        if message_type < TYPE_SLOTS {
            self.counts[message_type].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Published messages per type code (index = `MessageType` value).
    fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Alert `poller` whenever a message enters the priority lane.
    fn add_waiter(&self, poller: Py<PyEventPoller>) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).push(poller);
    }

    /// Stop alerting `poller`.
    fn remove_waiter(&self, poller: &Bound<'_, PyEventPoller>) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).retain(|w| !w.is(poller));
    }

    /// Alert every registered poller (to make idle processors look at their state).
    fn alert_all(&self) {
        self.alert_waiters();
    }
}

/// An HdrHistogram of nanoseconds that records whole numpy columns at once.
#[pyclass(module = "market_intel._core", name = "_LatencyRecorder", frozen)]
#[derive(Debug, Default)]
pub struct PyLatencyRecorder {
    recorder: LatencyRecorder,
}

#[pymethods]
impl PyLatencyRecorder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Record one value in nanoseconds (values below 1 count as 1).
    fn record(&self, value: i64) {
        self.recorder.record(value.max(1) as u64);
    }

    /// Record `now - t` for every stamp `t` > 0 of an int64 array (any stride); returns how many.
    fn record_since(&self, py: Python<'_>, stamps: PyReadonlyArray1<'_, i64>, now: i64) -> usize {
        let view = stamps.as_array();
        let mut values = Vec::with_capacity(view.len());
        values.extend(view.iter().filter(|&&t| t > 0).map(|&t| (now - t).max(1) as u64));
        let n = values.len();
        py.detach(|| self.recorder.record_all(values));
        n
    }

    /// (count, min, mean, p50, p90, p99, p99.9, max) in nanoseconds.
    fn _snapshot(&self) -> (u64, u64, f64, u64, u64, u64, u64, u64) {
        let s = self.recorder.snapshot();
        (s.count, s.min, s.mean, s.p50, s.p90, s.p99, s.p999, s.max)
    }

    /// Forget what was recorded.
    fn reset(&self) {
        self.recorder.reset();
    }
}

/// Call `handler(message)` for `messages[start:]` in order, stopping at the first exception.
///
/// Returns `(next, error)`: `next` is the index after the last message handed over (the
/// failing one included), `error` the exception raised, or None when every call returned.
/// The per-message loop of a `process_event` agent that takes every message.
#[pyfunction]
#[pyo3(signature = (handler, messages, start=0, /))]
pub fn _deliver<'py>(
    py: Python<'py>,
    handler: &Bound<'py, PyAny>,
    messages: &Bound<'py, PyList>,
    start: usize,
) -> (usize, Option<Bound<'py, PyAny>>) {
    let mut i = start;
    // The length is read each time: `cut_short` empties the list to end the loop early.
    while i < messages.len() {
        // `get_item` cannot fail for i < len; a list changed by the handler is re-measured.
        let Ok(m) = messages.get_item(i) else { break };
        i += 1;
        if let Err(e) = handler.call1((m,)) {
            return (i, Some(e.into_value(py).into_bound(py).into_any()));
        }
    }
    (i, None)
}

//! `Claim`: claimed slots filled in place through a writable numpy view, then published.

use crate::errors::raise;
use crate::ring::PyRingBuffer;
use crate::views::array_view;
use numpy::PyUntypedArray;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const PUBLISHED: u8 = 1;
const ABORTED: u8 = 2;

/// Claimed sequences `lo..=hi`; write the records into `view`, then `publish()`.
///
/// A claim that wraps around the ring end is filled in a scratch array and copied on publish.
#[pyclass(module = "market_intel._core", name = "Claim", frozen)]
#[derive(Debug)]
pub struct Claim {
    ring: Py<PyRingBuffer>,
    lo: i64,
    hi: i64,
    view: Py<PyAny>,
    scratch: bool,
    state: AtomicU8,
}

impl Claim {
    pub(crate) fn new(ring: &Bound<'_, PyRingBuffer>, lo: i64, hi: i64) -> PyResult<Self> {
        let py = ring.py();
        let r = ring.get();
        let n = (hi - lo + 1) as usize;
        let scratch = r.ring.contiguous_end(lo, hi) != hi;
        let view = if scratch {
            py.import("numpy")?.call_method1("zeros", (n, r.dtype.bind(py)))?
        } else {
            // SAFETY: `lo..=hi` is claimed by this producer, unpublished and contiguous.
            unsafe { array_view(py, r.dtype.bind(py), r.ring.slot_ptr(lo), n, true, ring.as_any())? }
        };
        Ok(Self { ring: ring.clone().unbind(), lo, hi, view: view.unbind(), scratch, state: AtomicU8::new(OPEN) })
    }

    fn take(&self, py: Python<'_>, to: u8) -> PyResult<()> {
        if let Err(prev) = self.state.compare_exchange(OPEN, to, Ordering::AcqRel, Ordering::Acquire) {
            let what = if prev == PUBLISHED { "published" } else { "aborted" };
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("claim {}..{}: already {what}; expected an open claim", self.lo, self.hi),
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl Claim {
    /// The writable records of the claim.
    #[getter]
    fn view(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    /// First claimed sequence.
    #[getter]
    fn sequence(&self) -> i64 {
        self.lo
    }

    /// Last claimed sequence.
    #[getter]
    fn last_sequence(&self) -> i64 {
        self.hi
    }

    /// True once published or aborted.
    #[getter]
    fn done(&self) -> bool {
        self.state.load(Ordering::Acquire) != OPEN
    }

    fn __len__(&self) -> usize {
        (self.hi - self.lo + 1) as usize
    }

    /// Make the records visible to consumers.
    fn publish(&self, py: Python<'_>) -> PyResult<i64> {
        self.take(py, PUBLISHED)?;
        let ring = self.ring.get();
        if self.scratch {
            let arr = self.view.bind(py).cast::<PyUntypedArray>()?;
            // SAFETY: the scratch array holds n records of the ring's itemsize; the range is claimed.
            unsafe { ring.copy_in(crate::views::array_data(arr) as *const u8, self.lo, self.hi) };
        }
        ring.finish_claim(self.lo, self.hi);
        Ok(self.hi)
    }

    /// Give the claim up: a single-producer ring takes the sequences back; a multi-producer
    /// ring cannot, so it publishes them zero-filled. Returns True if records were published.
    fn abort(&self, py: Python<'_>) -> PyResult<bool> {
        self.take(py, ABORTED)?;
        Ok(self.ring.get().abort_claim(self.lo, self.hi))
    }

    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.state.load(Ordering::Acquire) != OPEN {
            return Ok(false);
        }
        if exc_type.is_some_and(|t| !t.is_none()) {
            self.abort(py)?;
        } else {
            self.publish(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Claim(sequence={}, last_sequence={}, done={})", self.lo, self.hi, self.done())
    }
}

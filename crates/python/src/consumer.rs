//! Consumers for Python: the pull `EventPoller` and the push `BatchEventProcessor` running on a
//! native thread, plus native handlers that never take the GIL.

use crate::errors::{raise, to_py, IntoPyResult};
use crate::ring::{timeout_arg, PyRingBuffer, SameThread};
use crate::views::array_view;
use market_intel_core::{
    BatchEventProcessor, ChecksumHandler, Chunk, ConsumerId, ErrorPolicy, EventHandler, EventPoller, HandlerFailure,
    LatencyHandler, ProcessorControl, ProcessorExit, RingBuffer, SequenceBarrier, ThreadOptions, WaitStrategy,
};
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Read a wait strategy from a name or from an object with `kind`, `spin`, `yields`, `max_sleep_ns`.
pub fn wait_strategy(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<WaitStrategy> {
    let (kind, spin, yields, max_sleep): (String, Option<u32>, Option<u32>, Option<u64>) =
        if let Ok(s) = spec.extract::<String>() {
            (s, None, None, None)
        } else {
            let read = || -> PyResult<_> {
                Ok((
                    spec.getattr("kind")?.extract()?,
                    spec.getattr("spin")?.extract()?,
                    spec.getattr("yields")?.extract()?,
                    spec.getattr("max_sleep_ns")?.extract()?,
                ))
            };
            read().map_err(|_| {
                raise(
                    py,
                    "InvalidArgumentError",
                    format!(
                    "wait: {} is not valid; expected 'blocking', 'sleeping', 'yielding', 'busy_spin' or a WaitStrategy",
                    spec.repr().map(|r| r.to_string()).unwrap_or_default()
                ),
                )
            })?
        };
    Ok(match kind.as_str() {
        "blocking" => WaitStrategy::Blocking { spin: spin.unwrap_or(200) },
        "sleeping" => WaitStrategy::Sleeping {
            spin: spin.unwrap_or(100),
            yields: yields.unwrap_or(100),
            max_sleep_ns: max_sleep.unwrap_or(1_000_000),
        },
        "yielding" => WaitStrategy::Yielding { spin: spin.unwrap_or(100) },
        "busy_spin" => WaitStrategy::BusySpin,
        other => {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("wait: {other:?} is not valid; expected 'blocking', 'sleeping', 'yielding' or 'busy_spin'"),
            ))
        }
    })
}

/// Consumer names from names or consumer objects (anything with a `name` attribute).
fn consumer_names(after: &[Bound<'_, PyAny>]) -> PyResult<Vec<String>> {
    after
        .iter()
        .map(|a| match a.extract::<String>() {
            Ok(s) => Ok(s),
            Err(_) => a.getattr("name")?.extract::<String>(),
        })
        .collect()
}

/// Register a consumer named `name` after the consumers named in `after`.
fn register(
    py: Python<'_>,
    ring: &RingBuffer,
    name: &str,
    after: &[Bound<'_, PyAny>],
    wait: WaitStrategy,
) -> PyResult<(ConsumerId, SequenceBarrier)> {
    let after = consumer_names(after)?;
    let mut deps = Vec::with_capacity(after.len());
    for a in &after {
        match ring.find_consumer(a) {
            Some(id) => deps.push(id),
            None => {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    format!("after: {a:?} is not valid; expected the name of a consumer of this ring"),
                ))
            }
        }
    }
    let id = ring.add_consumer(name, &deps, wait.is_blocking()).py_err(py)?;
    let mask = deps.iter().fold(0u64, |m, d| m | (1 << d));
    Ok((id, SequenceBarrier::new(ring.clone(), mask, wait)))
}

fn max_batch_arg(py: Python<'_>, max_batch: Option<i64>, capacity: i64) -> PyResult<i64> {
    match max_batch {
        None => Ok(capacity),
        Some(n) if n >= 1 => Ok(n.min(capacity)),
        Some(n) => Err(raise(py, "InvalidArgumentError", format!("max_batch: {n} is not valid; expected at least 1"))),
    }
}

// ---------------------------------------------------------------------------------------------

/// A pull consumer: take what is available, read it as numpy, commit.
#[pyclass(module = "market_intel._core", name = "EventPoller", subclass, frozen)]
#[derive(Debug)]
pub struct PyEventPoller {
    ring: Py<PyRingBuffer>,
    poller: EventPoller,
    name: String,
    max_batch: i64,
    pending: Mutex<Option<i64>>,
    released: std::sync::atomic::AtomicBool,
}

impl PyEventPoller {
    fn commit_pending(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hi) = p.take() {
            self.poller.commit(hi);
        }
    }

    fn view<'py>(&self, py: Python<'py>, lo: i64, hi: i64) -> PyResult<Bound<'py, PyAny>> {
        let ring = self.ring.bind(py);
        let r = ring.get();
        // SAFETY: `lo..=hi` is published, contiguous, and not released until the next commit.
        unsafe { array_view(py, r.dtype.bind(py), r.ring.slot_ptr(lo), (hi - lo + 1) as usize, false, ring.as_any()) }
    }

    /// Interrupt a wait of this poller (the engine's priority lane wakes normal-lane waiters).
    pub(crate) fn alert_barrier(&self) {
        self.poller.barrier().alert();
    }

    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.released.load(std::sync::atomic::Ordering::Acquire) {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("poller '{}': closed; expected an open poller", self.name),
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl PyEventPoller {
    #[new]
    #[pyo3(signature = (ring, name, *, after=Vec::new(), wait=None, max_batch=None))]
    fn new(
        py: Python<'_>,
        ring: Bound<'_, PyRingBuffer>,
        name: String,
        after: Vec<Bound<'_, PyAny>>,
        wait: Option<&Bound<'_, PyAny>>,
        max_batch: Option<i64>,
    ) -> PyResult<Self> {
        let wait = wait.map_or(Ok(WaitStrategy::default()), |w| wait_strategy(py, w))?;
        let r = ring.get().ring.clone();
        let max_batch = max_batch_arg(py, max_batch, r.capacity())?;
        let (id, barrier) = register(py, &r, &name, &after, wait)?;
        Ok(Self {
            poller: EventPoller::new(r, id, barrier),
            ring: ring.unbind(),
            name,
            max_batch,
            pending: Mutex::new(None),
            released: Default::default(),
        })
    }

    /// Consumer name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Consumer id in the ring.
    #[getter]
    fn consumer_id(&self) -> usize {
        self.poller.consumer()
    }

    /// The last committed sequence.
    #[getter]
    fn sequence(&self) -> i64 {
        self.poller.sequence()
    }

    /// Commit the previous batch, then return a read-only view of the next available records
    /// (at most `max_batch`, never wrapping), or None. `timeout`: 0 does not wait, None waits
    /// forever, else seconds. The view is valid until the next call or `commit()`.
    #[pyo3(signature = (timeout=0.0))]
    fn next_batch<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.check_open(py)?;
        self.commit_pending();
        let range = match self.poller.poll(self.max_batch) {
            Some(r) => Some(r),
            None if timeout == Some(0.0) => None,
            None => {
                let t = timeout_arg(py, timeout)?;
                match py.detach(|| self.poller.wait(self.max_batch, t)) {
                    Ok(r) => Some(r),
                    Err(market_intel_core::Error::Timeout { .. }) => None,
                    Err(e) => return Err(to_py(py, e)),
                }
            }
        };
        match range {
            None => Ok(None),
            Some((lo, hi)) => {
                *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(hi);
                self.view(py, lo, hi).map(Some)
            }
        }
    }

    /// Release the batch returned by the last `next_batch()`.
    fn commit(&self) {
        self.commit_pending();
    }

    /// Call `handler(batch, sequence, end_of_batch)` for what is available (in up to two chunks
    /// when it wraps), committing after each. Returns 'processing', 'gating' (published but held
    /// back by a consumer this one follows) or 'idle'.
    fn poll(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<&'static str> {
        self.check_open(py)?;
        self.commit_pending();
        let ring = &self.ring.get().ring;
        let next = self.poller.sequence() + 1;
        let available = self.poller.barrier().poll_up_to(next, next.saturating_add(self.max_batch - 1));
        if available < next {
            return Ok(if ring.is_available(next) { "gating" } else { "idle" });
        }
        let hi = available.min(next + self.max_batch - 1);
        let mut lo = next;
        while lo <= hi {
            let end = ring.contiguous_end(lo, hi);
            handler.call1((self.view(py, lo, end)?, lo, end == hi))?;
            self.poller.commit(end);
            lo = end + 1;
        }
        Ok("processing")
    }

    /// Wait until at least one record is readable; returns how many are (0 on timeout).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<i64> {
        self.check_open(py)?;
        let t = timeout_arg(py, timeout)?;
        let next = self.poller.sequence() + 1;
        match py.detach(|| self.poller.barrier().wait_for(next, t)) {
            Ok(a) => Ok(a - next + 1),
            Err(market_intel_core::Error::Timeout { .. }) => Ok(0),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Interrupt a `wait` in another thread (it raises AlertedError).
    fn alert(&self) {
        self.poller.barrier().alert();
    }

    /// Clear an alert so the next `wait` blocks again; returns whether one was set.
    fn clear_alert(&self) -> bool {
        self.poller.barrier().take_alert()
    }

    /// Stop gating producers and free the consumer slot.
    fn close(&self) {
        if !self.released.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.poller.barrier().alert();
            self.ring.get().ring.release_consumer(self.poller.consumer());
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }
}

impl Drop for PyEventPoller {
    fn drop(&mut self) {
        if !self.released.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.ring.get().ring.release_consumer(self.poller.consumer());
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Counts records and sums an 8-byte integer field, natively (no GIL).
#[pyclass(module = "market_intel._core", name = "ChecksumHandler", subclass, frozen)]
#[derive(Debug)]
pub struct PyChecksumHandler {
    field: Option<String>,
    bound: OnceLock<ChecksumHandler>,
}

#[pymethods]
impl PyChecksumHandler {
    #[new]
    #[pyo3(signature = (field=None))]
    fn new(field: Option<String>) -> Self {
        Self { field, bound: OnceLock::new() }
    }
    /// Records seen.
    #[getter]
    fn count(&self) -> u64 {
        self.bound.get().map_or(0, ChecksumHandler::count)
    }
    /// Wrapping 64-bit sum of the field.
    #[getter]
    fn checksum(&self) -> u64 {
        self.bound.get().map_or(0, ChecksumHandler::sum)
    }
}

/// Records `CLOCK_MONOTONIC now - field` in an HdrHistogram, natively (no GIL).
#[pyclass(module = "market_intel._core", name = "LatencyHandler", subclass, frozen)]
#[derive(Debug)]
pub struct PyLatencyHandler {
    field: String,
    bound: OnceLock<LatencyHandler>,
}

#[pymethods]
impl PyLatencyHandler {
    #[new]
    fn new(field: String) -> Self {
        Self { field, bound: OnceLock::new() }
    }
    /// (count, min, mean, p50, p90, p99, p99.9, max) in nanoseconds.
    fn _snapshot(&self) -> (u64, u64, f64, u64, u64, u64, u64, u64) {
        let s = self.bound.get().map(|h| h.recorder().snapshot()).unwrap_or_default();
        (s.count, s.min, s.mean, s.p50, s.p90, s.p99, s.p999, s.max)
    }
    /// Forget what was recorded.
    fn reset(&self) {
        if let Some(h) = self.bound.get() {
            h.recorder().reset();
        }
    }
}

/// The offset of an 8-byte integer field (or the whole slot for a plain 8-byte integer dtype).
fn int64_offset(py: Python<'_>, dtype: &Bound<'_, PyArrayDescr>, field: Option<&str>) -> PyResult<usize> {
    let (fd, offset) = match field {
        Some(f) if dtype.has_fields() => dtype.get_field(f).map_err(|_| {
            raise(
                py,
                "InvalidArgumentError",
                format!(
                    "field: {f:?} is not valid; expected one of the ring's fields {:?}",
                    dtype.names().unwrap_or_default()
                ),
            )
        })?,
        None if !dtype.has_fields() => (dtype.clone(), 0),
        None => (
            dtype.get_field(&dtype.names().unwrap_or_default()[0])?.0,
            dtype.get_field(&dtype.names().unwrap_or_default()[0])?.1,
        ),
        Some(f) => {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("field: {f:?} is not valid; the ring's dtype has no fields"),
            ))
        }
    };
    if !(matches!(fd.kind(), b'i' | b'u' | b'M' | b'm') && fd.itemsize() == 8) {
        return Err(raise(
            py,
            "InvalidArgumentError",
            format!("field: {:?} has dtype {}; expected an 8-byte integer", field.unwrap_or("<first>"), fd.repr()?),
        ));
    }
    Ok(offset)
}

struct PyHandler {
    ring: Py<PyRingBuffer>,
    on_event: Py<PyAny>,
    handler: Py<PyAny>,
    name: String,
    log: bool,
}

enum AnyHandler {
    Python(PyHandler),
    Checksum(ChecksumHandler),
    Latency(LatencyHandler),
}

impl PyHandler {
    fn call_optional(
        &self,
        method: &str,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
    ) -> PyResult<()> {
        Python::attach(|py| {
            let h = self.handler.bind(py);
            if h.hasattr(method)? {
                h.call_method1(method, args(py)?)?;
            }
            Ok(())
        })
    }
}

impl EventHandler for AnyHandler {
    fn on_start(&mut self) {
        if let AnyHandler::Python(h) = self {
            if let Err(e) = h.call_optional("on_start", |py| Ok(PyTuple::empty(py))) {
                report_unraisable(e);
            }
        }
    }

    #[inline]
    fn on_batch(&mut self, chunk: &Chunk<'_>) -> Result<(), HandlerFailure> {
        match self {
            AnyHandler::Checksum(h) => h.on_batch(chunk),
            AnyHandler::Latency(h) => h.on_batch(chunk),
            AnyHandler::Python(h) => Python::attach(|py| {
                let ring = h.ring.bind(py);
                let r = ring.get();
                // SAFETY: the chunk is published, contiguous and unreleased while the handler runs.
                let view = unsafe {
                    array_view(py, r.dtype.bind(py), chunk.data.as_ptr() as *mut u8, chunk.len(), false, ring.as_any())
                }?;
                h.on_event.bind(py).call1((view, chunk.lo, chunk.end_of_batch))?;
                Ok::<(), PyErr>(())
            })
            .map_err(|e| Box::new(e) as HandlerFailure),
        }
    }

    fn on_timeout(&mut self, sequence: i64) -> Result<(), HandlerFailure> {
        match self {
            AnyHandler::Python(h) => h
                .call_optional("on_timeout", |py| PyTuple::new(py, [sequence]))
                .map_err(|e| Box::new(e) as HandlerFailure),
            _ => Ok(()),
        }
    }

    fn on_error(&mut self, failure: &HandlerFailure, lo: i64, hi: i64, attempt: u32) {
        let AnyHandler::Python(h) = self else { return };
        if !h.log {
            return;
        }
        Python::attach(|py| {
            let exc = failure.downcast_ref::<PyErr>().map(|e| e.value(py).clone().into_any());
            let msg =
                format!("consumer '{}': handler raised on sequences {lo}..{hi} (attempt {attempt}): {failure}", h.name);
            if let Ok(logger) =
                py.import("logging").and_then(|l| l.call_method1("getLogger", ("market_intel.processor",)))
            {
                let kwargs = pyo3::types::PyDict::new(py);
                if let Some(e) = exc {
                    let _ = kwargs.set_item("exc_info", e);
                }
                let _ = logger.call_method("error", (msg,), Some(&kwargs));
            }
        });
    }

    fn on_shutdown(&mut self) {
        if let AnyHandler::Python(h) = self {
            if let Err(e) = h.call_optional("on_shutdown", |py| Ok(PyTuple::empty(py))) {
                report_unraisable(e);
            }
        }
    }
}

/// Report an exception from a lifecycle callback through `sys.unraisablehook`.
fn report_unraisable(e: PyErr) {
    Python::attach(|py| e.write_unraisable(py, None));
}

type Joined = (AnyHandler, ProcessorExit, Vec<String>);

struct Running {
    handle: Option<JoinHandle<Joined>>,
    pending: Option<BatchEventProcessor<AnyHandler>>,
    exit: Option<String>,
    error: Option<Py<PyAny>>,
    warnings: Vec<String>,
}

/// A consumer that runs on its own native thread and calls its handler once per batch.
#[pyclass(module = "market_intel._core", name = "BatchEventProcessor", subclass, frozen)]
pub struct PyBatchEventProcessor {
    ring: Py<PyRingBuffer>,
    consumer: ConsumerId,
    name: String,
    control: Arc<ProcessorControl>,
    options: ThreadOptions,
    state: Mutex<Running>,
    native: bool,
}

impl std::fmt::Debug for PyBatchEventProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchEventProcessor").field("name", &self.name).finish()
    }
}

impl PyBatchEventProcessor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Join the thread if it finished (or within `timeout`); record how it ended.
    fn join_inner(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<bool> {
        let handle = {
            let mut st = self.lock();
            match st.handle.take() {
                Some(h) => h,
                None => return Ok(true),
            }
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        let h = SameThread(handle);
        let finished = py.detach(|| {
            let h = &h;
            loop {
                if h.0.is_finished() {
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let handle = h.0;
        if !finished {
            self.lock().handle = Some(handle);
            return Ok(false);
        }
        let (handler, exit, warnings) = match handle.join() {
            Ok(j) => j,
            Err(_) => {
                let mut st = self.lock();
                st.exit = Some("panicked".into());
                st.error = Some(
                    raise(py, "HandlerError", format!("consumer '{}': processor thread panicked", self.name))
                        .into_value(py)
                        .into_any(),
                );
                return Ok(true);
            }
        };
        drop(handler);
        let mut st = self.lock();
        st.warnings = warnings;
        st.exit = Some(
            match &exit {
                ProcessorExit::Halted => "halted",
                ProcessorExit::Drained => "drained",
                ProcessorExit::Failed { .. } => "failed",
            }
            .into(),
        );
        if let ProcessorExit::Failed { lo, hi, failure } = exit {
            let err = raise(
                py,
                "HandlerError",
                format!("consumer '{}': handler failed on sequences {lo}..{hi}: {failure}", self.name),
            );
            if let Ok(cause) = failure.downcast::<PyErr>() {
                err.set_cause(py, Some(*cause));
            }
            let value = err.value(py);
            let _ = value.setattr("consumer", &self.name);
            let _ = value.setattr("first_sequence", lo);
            let _ = value.setattr("last_sequence", hi);
            st.error = Some(err.into_value(py).into_any());
        }
        Ok(true)
    }

    fn raise_error(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(e) = self.lock().error.as_ref() {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        Ok(())
    }
}

#[pymethods]
impl PyBatchEventProcessor {
    #[new]
    #[pyo3(signature = (ring, handler, *, name=None, after=Vec::new(), wait=None, max_batch=None, timeout=None, on_error="halt", retries=3, thread_name=None, core=None, realtime_priority=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ring: Bound<'_, PyRingBuffer>,
        handler: Bound<'_, PyAny>,
        name: Option<String>,
        after: Vec<Bound<'_, PyAny>>,
        wait: Option<&Bound<'_, PyAny>>,
        max_batch: Option<i64>,
        timeout: Option<f64>,
        on_error: &str,
        retries: u32,
        thread_name: Option<String>,
        core: Option<usize>,
        realtime_priority: Option<i32>,
    ) -> PyResult<Self> {
        let wait = wait.map_or(Ok(WaitStrategy::default()), |w| wait_strategy(py, w))?;
        let r = ring.get().ring.clone();
        let max_batch = max_batch_arg(py, max_batch, r.capacity())?;
        let timeout = timeout_arg(py, timeout)?;
        let (policy, log) = match on_error {
            "halt" => (ErrorPolicy::Halt, false),
            "log" => (ErrorPolicy::Continue, true),
            "retry" => (ErrorPolicy::Retry(retries), true),
            other => {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    format!("on_error: {other:?} is not valid; expected 'halt', 'log' or 'retry'"),
                ))
            }
        };
        let dtype = ring.get().dtype.bind(py).clone();
        let (any, native, default_name) = if let Ok(c) = handler.cast::<PyChecksumHandler>() {
            let h = ChecksumHandler::new(int64_offset(py, &dtype, c.get().field.as_deref())?);
            if c.get().bound.set(h.clone()).is_err() {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    "handler: this ChecksumHandler already runs in a processor; expected a new one",
                ));
            }
            (AnyHandler::Checksum(h), true, "checksum".to_string())
        } else if let Ok(l) = handler.cast::<PyLatencyHandler>() {
            let h = LatencyHandler::new(int64_offset(py, &dtype, Some(&l.get().field))?);
            if l.get().bound.set(h.clone()).is_err() {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    "handler: this LatencyHandler already runs in a processor; expected a new one",
                ));
            }
            (AnyHandler::Latency(h), true, "latency".to_string())
        } else {
            let on_event = if handler.hasattr(intern!(py, "on_event"))? {
                handler.getattr(intern!(py, "on_event"))?
            } else if handler.is_callable() {
                handler.clone()
            } else {
                return Err(raise(
                    py,
                    "InvalidArgumentError",
                    format!("handler: {} is not valid; expected a callable or an object with on_event(batch, sequence, end_of_batch)", handler.repr()?),
                ));
            };
            let default = match handler.getattr(intern!(py, "__name__")).and_then(|n| n.extract::<String>()) {
                Ok(n) => n,
                Err(_) => handler.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "handler".into()),
            };
            (
                AnyHandler::Python(PyHandler {
                    ring: ring.clone().unbind(),
                    on_event: on_event.unbind(),
                    handler: handler.clone().unbind(),
                    name: String::new(),
                    log,
                }),
                false,
                default,
            )
        };
        let name = name.unwrap_or(default_name);
        let mut any = any;
        if let AnyHandler::Python(h) = &mut any {
            h.name = name.clone();
        }
        let (id, barrier) = register(py, &r, &name, &after, wait)?;
        let processor = BatchEventProcessor::new(r.clone(), id, barrier, any)
            .with_max_batch(max_batch as usize)
            .py_err(py)?
            .with_timeout(timeout)
            .with_error_policy(policy);
        let control = processor.control();
        let mut thread = thread_name.unwrap_or_else(|| format!("mi-{name}"));
        thread.truncate(15);
        Ok(Self {
            ring: ring.unbind(),
            consumer: id,
            name,
            control,
            options: ThreadOptions { name: Some(thread), core, realtime_priority },
            state: Mutex::new(Running {
                handle: None,
                pending: Some(processor),
                exit: None,
                error: None,
                warnings: Vec::new(),
            }),
            native,
        })
    }

    /// Consumer name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Consumer id in the ring.
    #[getter]
    fn consumer_id(&self) -> usize {
        self.consumer
    }

    /// True for native handlers (no GIL on the processor thread).
    #[getter]
    fn native(&self) -> bool {
        self.native
    }

    /// The last released sequence.
    #[getter]
    fn sequence(&self) -> i64 {
        self.ring.get().ring.consumer_sequence(self.consumer).load(std::sync::atomic::Ordering::Acquire)
    }

    /// True while the thread runs.
    #[getter]
    fn running(&self) -> bool {
        self.lock().handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// How the processor ended: None while running, else 'halted', 'drained' or 'failed'.
    #[getter]
    fn exit(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.join_inner(py, Some(Duration::ZERO))?;
        Ok(self.lock().exit.clone())
    }

    /// The HandlerError that halted the processor, if any.
    #[getter]
    fn error(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.join_inner(py, Some(Duration::ZERO))?;
        Ok(self.lock().error.as_ref().map(|e| e.clone_ref(py)))
    }

    /// Thread options that could not be applied (core pinning, real-time priority).
    #[getter]
    fn thread_warnings(&self) -> Vec<String> {
        self.lock().warnings.clone()
    }

    /// Start the native thread.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let mut st = self.lock();
        let Some(p) = st.pending.take() else {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("processor '{}': already started; expected a processor that was not started", self.name),
            ));
        };
        let handle =
            p.spawn(&self.options).map_err(|e| raise(py, "SharedMemoryError", format!("starting thread: {e}")))?;
        st.handle = Some(handle);
        Ok(())
    }

    /// Stop after the current batch, leaving later events unhandled; waits for the thread.
    #[pyo3(signature = (timeout=None))]
    fn halt(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.control.halt();
        self.join(py, timeout)
    }

    /// Ask the processor to handle everything up to `sequence` (default: the cursor now) and stop.
    #[pyo3(signature = (sequence=None))]
    fn drain(&self, sequence: Option<i64>) {
        let target = sequence.unwrap_or_else(|| self.ring.get().ring.cursor());
        self.control.drain(target);
    }

    /// Drain everything published so far, stop, and wait; raises HandlerError if the handler failed.
    #[pyo3(signature = (timeout=None))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let not_started = self.lock().pending.is_some();
        if not_started {
            self.start(py)?;
        }
        self.drain(None);
        self.join(py, timeout)
    }

    /// Wait for the thread to end; raises HandlerError if the handler failed.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let t = timeout_arg(py, timeout)?;
        if !self.join_inner(py, t)? {
            return Err(raise(
                py,
                "WaitTimeoutError",
                format!("processor '{}': still running after {timeout:?} s", self.name),
            ));
        }
        self.raise_error(py)
    }

    /// Stop gating producers and free the consumer slot (after the processor ended).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.lock().handle.is_some() && !self.join_inner(py, Some(Duration::ZERO))? {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("processor '{}': still running; expected halt() or stop() first", self.name),
            ));
        }
        self.ring.get().ring.release_consumer(self.consumer);
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    /// Leaving a `with` block drains and stops (or halts, on an exception) and frees the slot.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let result = if exc_type.is_some_and(|t| !t.is_none()) { self.halt(py, None) } else { self.stop(py, None) };
        self.close(py)?;
        result.map(|_| false)
    }

    fn __repr__(&self) -> String {
        format!("BatchEventProcessor(name='{}', consumer_id={}, native={})", self.name, self.consumer, self.native)
    }
}

impl Drop for PyBatchEventProcessor {
    fn drop(&mut self) {
        self.control.halt();
        let handle = self.state.get_mut().unwrap_or_else(|e| e.into_inner()).handle.take();
        if let Some(h) = handle {
            // The thread may need the GIL to finish its batch; release it while joining.
            Python::attach(|py| py.detach(|| SameThread(h).0.join().ok()));
        }
        self.ring.get().ring.release_consumer(self.consumer);
    }
}

//! Map core errors onto the exception tree of `market_intel.errors`.

use market_intel_core::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// An exception of class `name` from `market_intel.errors` with `message`.
pub fn raise(py: Python<'_>, name: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    let module = match ERRORS.get_or_try_init(py, || PyModule::import(py, "market_intel.errors").map(Bound::unbind)) {
        Ok(m) => m.bind(py),
        Err(e) => return e,
    };
    match module.getattr(name).and_then(|cls| cls.call1((message,))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// The Python exception for a core error.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let class = match &err {
        Error::InvalidArgument { .. } => "InvalidArgumentError",
        Error::InsufficientCapacity { .. } => "InsufficientCapacity",
        Error::Closed { .. } => "RingClosedError",
        Error::Timeout { .. } => "WaitTimeoutError",
        Error::Alerted => "AlertedError",
        Error::NotFound { .. } => "SegmentNotFoundError",
        Error::Exists { .. } => "SegmentExistsError",
        Error::Stale { .. } => "StaleSegmentError",
        Error::LayoutMismatch { .. } => "LayoutMismatchError",
        Error::ConsumerDied { .. } => "ConsumerDiedError",
        Error::TooManyConsumers { .. } => "TooManyConsumersError",
        Error::ConsumerFailed { .. } => "ConsumerFailedError",
        Error::UnknownConsumer { .. } => "InvalidArgumentError",
        Error::ProducerTaken { .. } => "ProducerConflictError",
        Error::Io { .. } => "SharedMemoryError",
    };
    raise(py, class, err.to_string())
}

/// Extension to turn core results into Python results.
pub trait IntoPyResult<T> {
    /// Convert the error with [`to_py`].
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    #[inline]
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

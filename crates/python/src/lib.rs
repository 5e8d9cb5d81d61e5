//! The `market_intel._core` extension module: PyO3 glue over the pure-Rust core.

mod binance;
mod claim;
mod consumer;
mod errors;
mod lanes;
mod record;
mod ring;
mod views;

use pyo3::prelude::*;

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock as `time.monotonic_ns()`.
#[pyfunction]
fn monotonic_ns() -> i64 {
    market_intel_core::monotonic_ns()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ring::PyRingBuffer>()?;
    m.add_class::<claim::Claim>()?;
    m.add_class::<consumer::PyEventPoller>()?;
    m.add_class::<consumer::PyBatchEventProcessor>()?;
    m.add_class::<consumer::PyChecksumHandler>()?;
    m.add_class::<consumer::PyLatencyHandler>()?;
    m.add_class::<lanes::PyMessageLanes>()?;
    m.add_class::<lanes::PyLatencyRecorder>()?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(lanes::_deliver, m)?)?;
    binance::register(m)?;
    m.add("MAX_CONSUMERS", market_intel_core::MAX_CONSUMERS)?;
    Ok(())
}

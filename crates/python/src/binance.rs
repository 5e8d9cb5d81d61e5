//! The Binance adapter: `_decode_binance` (a buffer of recorded lines) and `_load_binance`
//! (gzip recordings, merged by receive time), over `market_intel_adapters::binance`.
//!
//! Both read the record layout from the dtype they are given, decode with the GIL released,
//! and return a new array of that dtype, allocated once at its final size and filled in place.

use crate::errors::raise;
use crate::views::field_offset;
use market_intel_adapters::binance::{read_recordings, Recording, RecordingFile, Replay, ReplayError};
use market_intel_adapters::{DecodeError, LoadError, RecordLayout};
use numpy::{PyArray1, PyArrayDescr, PyArrayDescrMethods, PyArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;

/// Register the adapter's functions in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_decode_binance, m)?)?;
    m.add_function(wrap_pyfunction!(_load_binance, m)?)?;
    Ok(())
}

/// Decode recorded Binance lines (`<receive_ns> <json>`, newline separated) into records of
/// `dtype` in line order, ids from 1.
#[pyfunction]
#[pyo3(signature = (data, venue, symbol_hint, dtype, /))]
fn _decode_binance<'py>(
    py: Python<'py>,
    data: &[u8],
    venue: &str,
    symbol_hint: Option<&str>,
    dtype: &Bound<'py, PyArrayDescr>,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = record_layout(py, dtype)?;
    let recording = py.detach(|| Recording::new(data, venue, symbol_hint)).map_err(|e| decode_error(py, e, None))?;
    let replay = Replay::in_line_order(recording);
    fill(py, &replay, &layout, dtype, |e| decode_error(py, e.source, None))
}

/// Read, gunzip and decode `(path, venue, symbol_hint)` recordings into records of `dtype`
/// merged by receive time (stable), ids from 1.
#[pyfunction]
#[pyo3(signature = (files, dtype, /))]
fn _load_binance<'py>(
    py: Python<'py>,
    files: Vec<(PathBuf, String, Option<String>)>,
    dtype: &Bound<'py, PyArrayDescr>,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = record_layout(py, dtype)?;
    let files: Vec<RecordingFile> =
        files.into_iter().map(|(path, venue, symbol_hint)| RecordingFile { path, venue, symbol_hint }).collect();
    let replay = py.detach(|| read_recordings(&files, threads()).map(Replay::merged)).map_err(|e| load_error(py, e))?;
    fill(py, &replay, &layout, dtype, |e| decode_error(py, e.source, Some(&files[e.recording].path)))
}

/// Allocate the records (`numpy.zeros`, so the array owns its memory) and decode the replay
/// into them, through a uint8 view of the same memory, without the GIL.
fn fill<'py>(
    py: Python<'py>,
    replay: &Replay<'_>,
    layout: &RecordLayout,
    dtype: &Bound<'py, PyArrayDescr>,
    on_error: impl FnOnce(ReplayError) -> PyErr,
) -> PyResult<Bound<'py, PyAny>> {
    let records = py.import("numpy")?.call_method1("zeros", (replay.len(), dtype))?;
    let bytes = records.call_method1("view", ("u1",))?.cast_into::<PyArray1<u8>>()?;
    {
        let mut buffer = bytes.readwrite();
        let out = buffer.as_slice_mut().map_err(|e| raise(py, "InvalidArgumentError", e.to_string()))?;
        py.detach(|| replay.decode_into(layout, out, threads())).map_err(on_error)?;
    }
    Ok(records)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The offsets of the fields the adapter writes, from a structured dtype.
fn record_layout(py: Python<'_>, dtype: &Bound<'_, PyArrayDescr>) -> PyResult<RecordLayout> {
    let field = |name: &str, kind: u8, size: usize| field_offset(py, dtype, "record dtype", name, kind, size);
    let layout = RecordLayout {
        size: dtype.itemsize(),
        id: field("id", b'u', 8)?,
        message_type: field("type", b'u', 1)?,
        priority: field("priority", b'u', 1)?,
        kind: field("kind", b'u', 1)?,
        symbol: field("symbol", b'S', 16)?,
        venue: field("venue", b'S', 16)?,
        source: field("source", b'S', 16)?,
        bid: field("bid", b'f', 8)?,
        ask: field("ask", b'f', 8)?,
        bid_size: field("bid_size", b'f', 8)?,
        ask_size: field("ask_size", b'f', 8)?,
        last_price: field("last_price", b'f', 8)?,
        last_size: field("last_size", b'f', 8)?,
        volume: field("volume", b'f', 8)?,
        update_id: field("update_id", b'u', 8)?,
        exchange_ns: field("exchange_ns", b'i', 8)?,
        receive_ns: field("receive_ns", b'i', 8)?,
    };
    layout.check().map_err(|e| raise(py, "DtypeMismatchError", e.to_string()))?;
    Ok(layout)
}

/// `InvalidArgumentError` for a bad argument, `MessageValidationError` for a bad line; the
/// message starts with the recording's path when there is one.
fn decode_error(py: Python<'_>, error: DecodeError, path: Option<&PathBuf>) -> PyErr {
    let class = match error {
        DecodeError::InvalidText { .. } => "InvalidArgumentError",
        DecodeError::Line { .. } => "MessageValidationError",
    };
    match path {
        Some(path) => raise(py, class, format!("{}: {error}", path.display())),
        None => raise(py, class, error.to_string()),
    }
}

/// An `OSError` (of the subclass the I/O error kind maps to) naming the file, or the decode
/// error of a line.
fn load_error(py: Python<'_>, error: LoadError) -> PyErr {
    match error {
        LoadError::Io { path, source } => {
            std::io::Error::new(source.kind(), format!("{}: {source}", path.display())).into()
        }
        LoadError::Decode { path, source } => decode_error(py, source, Some(&path)),
    }
}

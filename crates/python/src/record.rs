//! Write one Python record (tuple, dict or keywords) into a slot, field by field, following the
//! ring's numpy dtype. Fields with a plain native-endian numeric or bytes type are written
//! directly; anything else (datetimes, sub-arrays, nested records) goes through numpy.

use crate::errors::raise;
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Bytes(usize),
    /// Written by numpy.
    Other,
}

#[derive(Debug)]
struct Field {
    name: String,
    key: Py<PyString>,
    offset: usize,
    kind: Kind,
    type_name: String,
}

/// How to write records of one dtype.
#[derive(Debug)]
pub struct RecordLayout {
    dtype: Py<PyArrayDescr>,
    fields: Vec<Field>,
    structured: bool,
    direct: bool,
}

fn kind_of(descr: &Bound<'_, PyArrayDescr>) -> Kind {
    if descr.has_subarray() || descr.has_fields() || descr.is_native_byteorder() == Some(false) {
        return Kind::Other;
    }
    match (descr.kind(), descr.itemsize()) {
        (b'b', 1) => Kind::Bool,
        (b'i', 1) => Kind::I8,
        (b'i', 2) => Kind::I16,
        (b'i', 4) => Kind::I32,
        (b'i', 8) => Kind::I64,
        (b'u', 1) => Kind::U8,
        (b'u', 2) => Kind::U16,
        (b'u', 4) => Kind::U32,
        (b'u', 8) => Kind::U64,
        (b'f', 4) => Kind::F32,
        (b'f', 8) => Kind::F64,
        (b'S', n) => Kind::Bytes(n),
        _ => Kind::Other,
    }
}

fn type_name(descr: &Bound<'_, PyArrayDescr>) -> String {
    descr.str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into())
}

impl RecordLayout {
    /// Compile the writer for `dtype`.
    pub fn new(py: Python<'_>, dtype: &Bound<'_, PyArrayDescr>) -> PyResult<Self> {
        let mut fields = Vec::new();
        let structured = dtype.has_fields();
        if structured {
            for name in dtype.names().unwrap_or_default() {
                let (fd, offset) = dtype.get_field(&name)?;
                fields.push(Field {
                    key: PyString::intern(py, &name).unbind(),
                    kind: kind_of(&fd),
                    type_name: type_name(&fd),
                    name,
                    offset,
                });
            }
        } else {
            fields.push(Field {
                name: "value".into(),
                key: PyString::intern(py, "value").unbind(),
                offset: 0,
                kind: kind_of(dtype),
                type_name: type_name(dtype),
            });
        }
        let direct = fields.iter().all(|f| f.kind != Kind::Other);
        Ok(Self { dtype: dtype.clone().unbind(), fields, structured, direct })
    }

    /// Field names, for messages.
    pub fn names(&self) -> String {
        self.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Check a record before anything is claimed; returns the values in field order.
    pub fn values<'py>(&self, py: Python<'py>, record: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        if !self.structured {
            if record.is_instance_of::<PyTuple>() || record.is_instance_of::<PyDict>() {
                return Err(raise(
                    py,
                    "RecordError",
                    format!(
                        "record: {} is not valid; expected one scalar of {}",
                        short_repr(record),
                        self.fields[0].type_name
                    ),
                ));
            }
            return Ok(vec![record.clone()]);
        }
        if let Ok(t) = record.cast::<PyTuple>() {
            if t.len() != self.fields.len() {
                return Err(raise(
                    py,
                    "RecordError",
                    format!(
                        "record: a tuple of {} value(s) is not valid; expected {} values for the fields ({})",
                        t.len(),
                        self.fields.len(),
                        self.names()
                    ),
                ));
            }
            return Ok(t.iter().collect());
        }
        if let Ok(d) = record.cast::<PyDict>() {
            return self.dict_values(py, d);
        }
        Err(raise(
            py,
            "RecordError",
            format!(
                "record: {} is not valid; expected a tuple, a dict or keywords with the fields ({})",
                short_repr(record),
                self.names()
            ),
        ))
    }

    /// Values of a dict (or keywords) in field order; missing or extra keys are errors.
    pub fn dict_values<'py>(&self, py: Python<'py>, d: &Bound<'py, PyDict>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let mut out = Vec::with_capacity(self.fields.len());
        let mut missing = Vec::new();
        for f in &self.fields {
            match d.get_item(f.key.bind(py))? {
                Some(v) => out.push(v),
                None => missing.push(f.name.as_str()),
            }
        }
        let extra: Vec<String> = if d.len() != out.len() {
            d.keys()
                .iter()
                .filter(|k| !self.fields.iter().any(|f| k.eq(f.key.bind(py)).unwrap_or(false)))
                .map(|k| k.to_string())
                .collect()
        } else {
            Vec::new()
        };
        if !missing.is_empty() || !extra.is_empty() {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing field(s) {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                parts.push(format!("unknown field(s) {}", extra.join(", ")));
            }
            return Err(raise(
                py,
                "RecordError",
                format!("record: {}; expected exactly the fields ({})", parts.join(" and "), self.names()),
            ));
        }
        Ok(out)
    }

    /// Write a tuple record straight into `buf` when every field is direct; `Ok(false)` when
    /// the record needs the general path (not a tuple of the right length, or numpy fields).
    #[inline]
    pub fn write_tuple_fast(&self, py: Python<'_>, buf: *mut u8, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        if !self.direct {
            return Ok(false);
        }
        if !self.structured {
            if record.is_instance_of::<PyTuple>() || record.is_instance_of::<PyDict>() {
                return Ok(false);
            }
            // SAFETY: `buf` holds a whole record; the single field is at offset 0.
            unsafe { write_field(py, &self.fields[0], buf, record)? };
            return Ok(true);
        }
        let Ok(t) = record.cast_exact::<PyTuple>() else { return Ok(false) };
        if t.len() != self.fields.len() {
            return Ok(false);
        }
        for (i, f) in self.fields.iter().enumerate() {
            // SAFETY: `i < len` of the tuple, checked above.
            let v = unsafe { t.get_borrowed_item_unchecked(i) };
            // SAFETY: `buf` holds a whole record and each field lies inside it.
            unsafe { write_field(py, f, buf.add(f.offset), &v)? };
        }
        Ok(true)
    }

    /// Name the field whose value numpy refused (each field is tried alone in a scratch record).
    fn locate_error(&self, py: Python<'_>, values: &[Bound<'_, PyAny>], err: PyErr) -> PyErr {
        let dtype = self.dtype.bind(py);
        if self.structured {
            for (f, v) in self.fields.iter().zip(values) {
                let probe = py
                    .import("numpy")
                    .and_then(|np| np.call_method1("zeros", (1, dtype)))
                    .and_then(|a| a.set_item(f.name.as_str(), v));
                if let Err(e) = probe {
                    return raise(
                        py,
                        "RecordError",
                        format!(
                            "field '{}': {} is not valid for {}; expected a value numpy can store there ({})",
                            f.name,
                            short_repr(v),
                            f.type_name,
                            e.value(py)
                        ),
                    );
                }
            }
        }
        let shown = PyTuple::new(py, values).map(|t| short_repr(t.as_any())).unwrap_or_default();
        raise(
            py,
            "RecordError",
            format!(
                "record: {shown} is not valid for the fields ({}); expected values numpy can store ({})",
                self.names(),
                err.value(py)
            ),
        )
    }

    /// Write checked values into `slot` (which is `itemsize` bytes). With a numpy fallback field,
    /// `fallback` assigns the whole record through a writable one-element view of the slot.
    pub fn write(
        &self,
        py: Python<'_>,
        slot: *mut u8,
        values: &[Bound<'_, PyAny>],
        fallback: impl FnOnce(&Bound<'_, PyTuple>) -> PyResult<()>,
    ) -> PyResult<()> {
        if !self.direct {
            let t = PyTuple::new(py, values)?;
            return fallback(&t).map_err(|e| self.locate_error(py, values, e));
        }
        for (f, v) in self.fields.iter().zip(values) {
            // SAFETY: `slot` points to a whole slot and `offset + size` of each field lies inside
            // it (numpy guarantees field offsets fit the itemsize).
            unsafe { write_field(py, f, slot.add(f.offset), v)? };
        }
        Ok(())
    }
}

fn short_repr(v: &Bound<'_, PyAny>) -> String {
    let s = v.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unprintable>".into());
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

fn bad_value(py: Python<'_>, f: &Field, v: &Bound<'_, PyAny>, why: &PyErr) -> PyErr {
    let expected = match f.kind {
        Kind::Bool => "a bool".to_string(),
        Kind::F32 | Kind::F64 => "a number".to_string(),
        Kind::Bytes(n) => format!("bytes or ASCII str of at most {n} bytes"),
        _ => format!("an integer that fits {}", f.type_name),
    };
    let why = why.value(py).to_string();
    raise(
        py,
        "RecordError",
        format!("field '{}': {} is not valid for {}; expected {expected} ({why})", f.name, short_repr(v), f.type_name),
    )
}

/// # Safety
/// `dst` must be valid for writes of the field's size.
#[inline]
unsafe fn write_field(py: Python<'_>, f: &Field, dst: *mut u8, v: &Bound<'_, PyAny>) -> PyResult<()> {
    macro_rules! put {
        ($t:ty) => {{
            let x: $t = v.extract().map_err(|e: PyErr| bad_value(py, f, v, &e))?;
            // SAFETY: the caller guarantees `dst` is writable for this field's size.
            unsafe { (dst as *mut $t).write_unaligned(x) };
        }};
    }
    match f.kind {
        Kind::F64 => put!(f64),
        Kind::I64 => put!(i64),
        Kind::F32 => {
            let x: f64 = v.extract().map_err(|e: PyErr| bad_value(py, f, v, &e))?;
            // SAFETY: as above.
            unsafe { (dst as *mut f32).write_unaligned(x as f32) };
        }
        Kind::I32 => put!(i32),
        Kind::I16 => put!(i16),
        Kind::I8 => put!(i8),
        Kind::U64 => put!(u64),
        Kind::U32 => put!(u32),
        Kind::U16 => put!(u16),
        Kind::U8 => put!(u8),
        Kind::Bool => {
            let x: bool = v.extract().map_err(|e: PyErr| bad_value(py, f, v, &e))?;
            // SAFETY: as above.
            unsafe { dst.write(x as u8) };
        }
        Kind::Bytes(n) => {
            let owned;
            let bytes: &[u8] = if let Ok(b) = v.cast::<PyBytes>() {
                owned = b.as_bytes().to_vec();
                &owned
            } else if let Ok(s) = v.cast::<PyString>() {
                owned = s.to_str()?.as_bytes().to_vec();
                &owned
            } else {
                let e = pyo3::exceptions::PyTypeError::new_err("not bytes or str");
                return Err(bad_value(py, f, v, &e));
            };
            if bytes.len() > n {
                let e = pyo3::exceptions::PyValueError::new_err(format!("{} bytes long", bytes.len()));
                return Err(bad_value(py, f, v, &e));
            }
            // SAFETY: as above; `bytes.len() <= n`.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
                std::ptr::write_bytes(dst.add(bytes.len()), 0, n - bytes.len());
            }
        }
        Kind::Other => unreachable!("fallback fields are written by numpy"),
    }
    Ok(())
}

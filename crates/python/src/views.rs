//! numpy arrays over ring memory, without copying.

use numpy::npyffi::{self, NPY_ARRAY_WRITEABLE, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::prelude::*;

/// A 1-D array of `len` records of `dtype` at `data`, kept alive by `owner`.
///
/// # Safety
/// `data` must point to `len * itemsize` bytes that stay mapped while `owner` lives, and the
/// caller must uphold the ring protocol for the time the array is used (read-only views of
/// published, unreleased slots; writable views of claimed, unpublished slots).
pub unsafe fn array_view<'py>(
    py: Python<'py>,
    dtype: &Bound<'py, PyArrayDescr>,
    data: *mut u8,
    len: usize,
    writable: bool,
    owner: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut dims = [len as npyffi::npy_intp];
    let descr = dtype.as_dtype_ptr();
    // SAFETY: PyArray_NewFromDescr steals a reference to `descr`, so add one first; the data
    // pointer is valid per the caller's contract; strides NULL means C-contiguous.
    unsafe {
        pyo3::ffi::Py_INCREF(descr as *mut pyo3::ffi::PyObject);
        let arr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr,
            1,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            data as *mut std::ffi::c_void,
            if writable { NPY_ARRAY_WRITEABLE } else { 0 },
            std::ptr::null_mut(),
        );
        if arr.is_null() {
            return Err(PyErr::fetch(py));
        }
        let arr = Bound::from_owned_ptr(py, arr);
        // PyArray_SetBaseObject steals a reference to the owner.
        pyo3::ffi::Py_INCREF(owner.as_ptr());
        if PY_ARRAY_API.PyArray_SetBaseObject(py, arr.as_ptr() as *mut npyffi::PyArrayObject, owner.as_ptr()) < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(arr)
    }
}

/// The data pointer of an array.
pub fn array_data(arr: &Bound<'_, numpy::PyUntypedArray>) -> *mut u8 {
    use numpy::PyUntypedArrayMethods;
    // SAFETY: `arr` is a live ndarray; reading its data pointer field is always valid.
    unsafe { (*arr.as_array_ptr()).fields.data as *mut u8 }
}

/// The byte offset of field `name` of a structured dtype, checked to be of numpy kind `kind`
/// (`b'u'`, `b'i'`, `b'f'`, `b'S'`), `size` bytes and native byte order. `what` names the
/// dtype in the `DtypeMismatchError` raised otherwise.
pub fn field_offset(
    py: Python<'_>,
    dtype: &Bound<'_, PyArrayDescr>,
    what: &str,
    name: &str,
    kind: u8,
    size: usize,
) -> PyResult<usize> {
    let mismatch = |found: String| {
        crate::errors::raise(
            py,
            "DtypeMismatchError",
            format!("{what}: field '{name}' {found}; expected {}{size}", kind as char),
        )
    };
    let fields = dtype.getattr("fields")?;
    let entry = fields.get_item(name).map_err(|_| mismatch("is missing".into()))?;
    let field_dtype = entry.get_item(0)?.cast_into::<PyArrayDescr>()?;
    if field_dtype.kind() != kind || field_dtype.itemsize() != size || field_dtype.is_native_byteorder() == Some(false)
    {
        return Err(mismatch(format!("is {}", field_dtype.str()?)));
    }
    entry.get_item(1)?.extract()
}

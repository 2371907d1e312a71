//! The Python-visible request objects, as heap types created once per interpreter from
//! static specs (never `#[pyclass]`, whose type objects are process-wide).

pub mod input;
pub mod log;
pub mod start_response;

use super::request::RequestHandle;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{CStr, c_void};
use std::sync::Arc;

/// Layout of the objects bound to one request (`wsgi.input`, start_response): a reference
/// on the request's handle, which stays valid (closed) after the request.
#[repr(C)]
pub struct RequestBound {
    ob_base: ffi::PyObject,
    handle: *const RequestHandle,
}

/// Creates an instance of a [`RequestBound`] type on `handle`.
pub fn new_bound<'py>(
    py: Python<'py>,
    tp: &Bound<'py, PyAny>,
    handle: &Arc<RequestHandle>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: our request-bound types are made with basicsize = size_of::<RequestBound>();
    // the reference taken here is given back in `bound_dealloc`.
    unsafe {
        let obj = alloc::<RequestBound>(py, tp.as_ptr())?;
        (*obj).handle = Arc::into_raw(handle.clone());
        Ok(Bound::from_owned_ptr(py, obj.cast()))
    }
}

/// The request handle of a request-bound instance.
///
/// # Safety
/// `slf` is an instance of one of our request-bound types, alive for the returned borrow.
pub unsafe fn handle_of<'a>(slf: *mut ffi::PyObject) -> &'a RequestHandle {
    // SAFETY: set by `new_bound` and released only when the object dies.
    unsafe { &*(*slf.cast::<RequestBound>()).handle }
}

/// `tp_dealloc` of the request-bound types: drop the handle reference, then free.
///
/// # Safety
/// Installed as `Py_tp_dealloc`; only CPython calls it.
pub unsafe extern "C" fn bound_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once on our instance; the handle came from Arc::into_raw (or is null if
    // the object died before it was set).
    unsafe {
        let h = (*obj.cast::<RequestBound>()).handle;
        if !h.is_null() {
            drop(Arc::from_raw(h));
        }
        dealloc(obj);
    }
}

/// A static method table (CPython keeps pointers into it for the type's life).
#[repr(transparent)]
pub struct Methods<const N: usize>(pub [ffi::PyMethodDef; N]);

// SAFETY: method tables are immutable plain data pointing at static strings and functions.
unsafe impl<const N: usize> Sync for Methods<N> {}

/// A method-table row for a `METH_FASTCALL` function.
pub const fn fastcall(
    name: &'static CStr,
    f: unsafe extern "C" fn(
        *mut ffi::PyObject,
        *mut *mut ffi::PyObject,
        ffi::Py_ssize_t,
    ) -> *mut ffi::PyObject,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: f },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: std::ptr::null(),
    }
}

/// A method-table row for a `METH_NOARGS` function.
pub const fn noargs(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: f },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: std::ptr::null(),
    }
}

/// The terminating row of a method table.
pub const END: ffi::PyMethodDef = ffi::PyMethodDef::zeroed();

/// Creates a heap type in the current interpreter. `slots` need not be terminated.
pub fn make_type(
    py: Python<'_>,
    name: &'static CStr,
    basicsize: usize,
    slots: &[(libc::c_int, *mut c_void)],
) -> PyResult<*mut ffi::PyObject> {
    let mut raw: Vec<ffi::PyType_Slot> = slots
        .iter()
        .map(|&(slot, pfunc)| ffi::PyType_Slot { slot, pfunc })
        .collect();
    raw.push(ffi::PyType_Slot {
        slot: 0,
        pfunc: std::ptr::null_mut(),
    });
    let mut spec = ffi::PyType_Spec {
        name: name.as_ptr(),
        basicsize: basicsize as libc::c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION) as libc::c_uint,
        slots: raw.as_mut_ptr(),
    };
    // SAFETY: the spec and slot array are valid for the call; CPython copies what it keeps
    // (method tables referenced by slots are static).
    let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
    if tp.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(tp)
    }
}

/// Allocates an instance of one of our heap types (fields zeroed).
///
/// # Safety
/// `tp` is a live heap type created by [`make_type`] whose basicsize is `size_of::<T>()`.
pub unsafe fn alloc<T>(py: Python<'_>, tp: *mut ffi::PyObject) -> PyResult<*mut T> {
    // SAFETY: PyType_GenericAlloc zero-fills basicsize bytes and sets the type (with a
    // reference on heap types).
    let obj = unsafe { ffi::PyType_GenericAlloc(tp.cast(), 0) };
    if obj.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(obj.cast())
    }
}

/// `tp_dealloc` for our heap types without GC: free the object, then drop the type
/// reference every heap-type instance holds.
///
/// # Safety
/// Installed as `Py_tp_dealloc`; only CPython calls it.
pub unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_dealloc once, with the GIL held, on an object of a heap type.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        if free.is_null() {
            ffi::PyObject_Free(obj.cast());
        } else {
            let free: ffi::freefunc = std::mem::transmute(free);
            free(obj.cast());
        }
        ffi::Py_DECREF(tp.cast());
    }
}

/// Borrows positional fast-call arguments as a slice.
///
/// # Safety
/// `args` points to `nargs` borrowed references (CPython's fast-call convention).
pub unsafe fn args<'a>(
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> &'a [*mut ffi::PyObject] {
    if nargs <= 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: forwarded contract.
        unsafe { std::slice::from_raw_parts(args, nargs as usize) }
    }
}

/// The one positional argument of fast-call method `method`, borrowed for the call.
///
/// # Safety
/// As [`args`].
pub unsafe fn one_arg<'py>(
    py: Python<'py>,
    a: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
    method: &str,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: forwarded contract.
    let [arg] = (unsafe { args(a, n) }) else {
        return Err(PyTypeError::new_err(format!(
            "{method}() takes exactly one argument"
        )));
    };
    // SAFETY: a borrowed argument reference, alive for the call.
    Ok(unsafe { Bound::from_borrowed_ptr(py, *arg) })
}

/// The name of `v`'s type, for error messages.
pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Returns `None` as a new reference.
pub fn none() -> *mut ffi::PyObject {
    // SAFETY: Py_None is immortal-ish and always valid while attached.
    unsafe {
        let n = ffi::Py_None();
        ffi::Py_INCREF(n);
        n
    }
}

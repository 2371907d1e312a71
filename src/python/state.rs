//! What mod_rwsgi keeps per interpreter: its heap types, interned environ keys, constant
//! values, and the loaded WSGI scripts. Every pointer here is a strong reference owned by
//! the interpreter it was created in, touched only while holding that interpreter's GIL.

use super::objects::{input, log, start_response};
use super::request::Stream;
use crate::wsgi::environ::Key;
use pyo3::ffi;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// A strong reference owned by one interpreter.
#[derive(Clone, Copy)]
pub struct Owned(pub *mut ffi::PyObject);

// SAFETY: only dereferenced with the owning interpreter's GIL held (module contract).
unsafe impl Send for Owned {}
// SAFETY: as above.
unsafe impl Sync for Owned {}

impl Owned {
    /// Borrows the object for this GIL scope.
    pub fn bind<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        // SAFETY: a live strong reference of the current interpreter.
        unsafe { Bound::from_borrowed_ptr(py, self.0) }
    }
}

/// A loaded WSGI script module.
pub struct ScriptEntry {
    pub module: Owned,
    pub mtime: i64,
}

/// Per-interpreter state.
pub struct InterpState {
    pub input_type: Owned,
    pub log_type: Owned,
    pub start_response_type: Owned,
    pub file_wrapper_type: Owned,
    keys: Vec<Owned>,
    pub wsgi_version: Owned,
    pub mod_wsgi_version: Owned,
    pub apache_version: Owned,
    /// Scripts by path.
    pub scripts: Mutex<HashMap<String, ScriptEntry>>,
    /// Serialises script loading (taken with the GIL released).
    pub load_lock: Mutex<()>,
    /// The `mod_wsgi` and `apache` modules of this interpreter.
    pub modules: super::modules::ModState,
}

const HELPERS: &std::ffi::CStr = c"
class FileWrapper(object):
    '''wsgi.file_wrapper: iterates a file-like object in blocks; mod_rwsgi sends a real
    file it wraps straight from the file descriptor instead.'''
    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close
    def __iter__(self):
        return self
    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
FileWrapper.__module__ = 'mod_wsgi'
";

impl InterpState {
    /// Builds the state in the current interpreter and installs its `sys.stdout`/`stderr`.
    pub fn create(
        py: Python<'_>,
        group: &str,
        apache_version: (u32, u32, u32),
    ) -> PyResult<InterpState> {
        let keys = Key::ALL
            .iter()
            .map(|k| {
                let s = pyo3::types::PyString::new(py, k.name());
                let mut p = s.into_ptr();
                // SAFETY: interning in place replaces our reference with the interned one.
                unsafe { ffi::PyUnicode_InternInPlace(&mut p) };
                Owned(p)
            })
            .collect();
        let globals = pyo3::types::PyDict::new(py);
        globals.set_item("__builtins__", py.import("builtins")?)?;
        py.run(HELPERS, Some(&globals), None)?;
        let fw = globals
            .get_item("FileWrapper")?
            .expect("FileWrapper defined");
        let log_type = Owned(log::make_type(py)?);
        // Imported here, on the thread that created the interpreter, so `threading` takes
        // it (not the first request thread) as its main thread.
        py.import("threading")?;
        let sys = py.import("sys")?;
        sys.setattr(
            "stdout",
            log::for_process(py, &log_type.bind(py), Stream::Stdout)?,
        )?;
        sys.setattr(
            "stderr",
            log::for_process(py, &log_type.bind(py), Stream::Stderr)?,
        )?;
        sys.setattr("argv", vec!["mod_wsgi"])?;
        // Before the search path is set up, so `.pth` files and what they import can
        // `import mod_wsgi` (its application_group included).
        let modules = super::modules::install(py, &fw, group)?;
        // A restricted sys.stdout replaces the log stream installed above.
        super::options::apply(py, group)?;
        // Once the search path is complete: a `mod_wsgi` package on it (pip's, which
        // mod_wsgi-express configs import) lends its submodules.
        super::modules::adopt_package_path(py, group);
        let own = |b: Bound<'_, PyAny>| Owned(b.into_ptr());
        Ok(InterpState {
            input_type: Owned(input::make_type(py)?),
            log_type,
            start_response_type: Owned(start_response::make_type(py)?),
            file_wrapper_type: own(fw),
            keys,
            wsgi_version: own((1, 0).into_pyobject(py)?.into_any()),
            mod_wsgi_version: own((4, 9, 4).into_pyobject(py)?.into_any()),
            apache_version: own(apache_version.into_pyobject(py)?.into_any()),
            scripts: Mutex::new(HashMap::new()),
            load_lock: Mutex::new(()),
            modules,
        })
    }

    /// The interned key object.
    pub fn key(&self, k: Key) -> *mut ffi::PyObject {
        self.keys[k as usize].0
    }
}

//! Application groups: the main interpreter (`%{GLOBAL}`, the empty name) and one
//! sub-interpreter per other group name, created on first use and kept for the process.

use super::attach::{self, Attached};
use super::state::InterpState;
use pyo3::ffi;
use std::sync::Mutex;

/// One interpreter and mod_rwsgi's state in it.
pub struct Interp {
    /// Application group name (`""` for the main interpreter).
    pub name: String,
    pub ptr: *mut ffi::PyInterpreterState,
    pub state: InterpState,
}

// SAFETY: the interpreter pointer is only used to attach; the state's objects are used
// only with this interpreter's GIL held.
unsafe impl Send for Interp {}
// SAFETY: as above.
unsafe impl Sync for Interp {}

/// Interpreters live until the process ends, so references are `'static`.
static REGISTRY: Mutex<Vec<&'static Interp>> = Mutex::new(Vec::new());

/// Registers the main interpreter (done once by runtime initialisation).
pub fn register_main(interp: Interp) -> &'static Interp {
    let leaked: &'static Interp = Box::leak(Box::new(interp));
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(0, leaked);
    leaked
}

/// The main interpreter, once Python is initialised.
pub fn main() -> Option<&'static Interp> {
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first()
        .copied()
}

/// Every interpreter created so far (main first).
pub fn all() -> Vec<&'static Interp> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Serialises interpreter creation (taken without the GIL; creation attaches itself).
static CREATE: Mutex<()> = Mutex::new(());

const RECENT: usize = 4;

thread_local! {
    /// The interpreters this thread used last: the per-request lookup then takes no lock
    /// that all request threads would contend for. Plain pointers, so no TLS destructor.
    static RECENT_USED: std::cell::Cell<[usize; RECENT]> = const { std::cell::Cell::new([0; RECENT]) };
}

fn find(name: &str) -> Option<&'static Interp> {
    let recent = RECENT_USED.with(|r| r.get());
    for p in recent.iter().filter(|p| **p != 0) {
        // SAFETY: only pointers to leaked ('static) interpreters are stored.
        let i: &'static Interp = unsafe { &*(*p as *const Interp) };
        if i.name == name {
            return Some(i);
        }
    }
    let found = REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|i| i.name == name)
        .copied()?;
    RECENT_USED.with(|r| {
        let mut v = r.get();
        v.rotate_right(1);
        v[0] = found as *const Interp as usize;
        r.set(v);
    });
    Some(found)
}

/// The interpreter for an application group (`""` is the main interpreter), creating a
/// sub-interpreter on first use. The caller must not be attached to any interpreter.
pub fn for_group(name: &str, apache_version: (u32, u32, u32)) -> Result<&'static Interp, String> {
    if let Some(i) = find(name) {
        return Ok(i);
    }
    if main().is_none() {
        return Err("Python is not initialised in this process".to_string());
    }
    let _creating = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = find(name) {
        return Ok(i);
    }
    let interp: &'static Interp = Box::leak(Box::new(create(name, apache_version)?));
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(interp);
    Ok(interp)
}

/// Creates a sub-interpreter for `name` (the caller holds the creation lock).
fn create(name: &str, apache_version: (u32, u32, u32)) -> Result<Interp, String> {
    let main = main().ok_or("Python is not initialised in this process")?;
    // SAFETY: attach to main (some GIL must be held to create an interpreter); the guard is
    // forgotten because Py_NewInterpreter swaps this thread to the new interpreter's state.
    let guard = unsafe { Attached::new(main.ptr) };
    let main_ts = guard.tstate();
    std::mem::forget(guard);
    // SAFETY: GIL held by this thread.
    let ts = unsafe { ffi::Py_NewInterpreter() };
    if ts.is_null() {
        // SAFETY: back to the main state we hold, then release the GIL.
        unsafe {
            ffi::PyThreadState_Swap(main_ts);
            ffi::PyEval_SaveThread();
        }
        return Err(format!(
            "could not create the Python sub-interpreter '{name}'"
        ));
    }
    // SAFETY: ts is this thread's new, current state.
    let ptr = unsafe { ffi::PyThreadState_GetInterpreter(ts) };
    attach::remember(ptr, ts);
    // The new interpreter's GIL is held by this thread.
    let state = super::callback::enter(|py| {
        InterpState::create(py, name, apache_version).map_err(|e| e.to_string())
    })
    .unwrap_or_else(|| Err("panic while setting up the interpreter".to_string()))
    .map_err(|e| format!("could not set up the Python sub-interpreter '{name}': {e}"));
    // SAFETY: release the GIL, saving the new interpreter's state for this thread.
    unsafe { ffi::PyEval_SaveThread() };
    Ok(Interp {
        name: name.to_string(),
        ptr,
        state: state?,
    })
}

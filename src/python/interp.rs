//! Application groups: the main interpreter (`%{GLOBAL}`, the empty name) and one
//! sub-interpreter per other group name, created on first use and kept for the process,
//! at most `WSGIMaximumInterpreters` of them. A group whose set-up failed is remembered and
//! refused, never created again.

use super::attach::{self, Attached};
use super::callback::{end_interpreter, log_exception};
use super::state::InterpState;
use crate::wsgi::failure::Failure;
use crate::wsgi::gateway::{RequestLog, Severity};
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
    crate::python::runtime::host().interpreters(all().len());
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

/// Application groups whose sub-interpreter failed to set up, with the one-line reason.
/// Kept for the process so a broken group costs one interpreter, not one per request.
static FAILED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Why an application group has no interpreter to run a request in.
#[derive(Debug)]
pub enum GroupError {
    /// Python is not initialised in this process.
    NoPython,
    /// A new sub-interpreter would pass `WSGIMaximumInterpreters`.
    Limit { group: String, limit: u32 },
    /// The group's set-up failed: just now (`first`, its full error already logged) or in
    /// an earlier request of this process.
    SetUpFailed {
        group: String,
        reason: String,
        first: bool,
    },
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::NoPython => f.write_str("Python is not initialised in this process"),
            GroupError::Limit { group, limit } => write!(
                f,
                "application group '{group}' needs a new Python sub-interpreter, but this \
                 process (pid {}) already created {limit}, the limit set by \
                 WSGIMaximumInterpreters; use fewer application groups (a fixed \
                 WSGIApplicationGroup name, or %{{GLOBAL}}) or raise WSGIMaximumInterpreters",
                std::process::id()
            ),
            GroupError::SetUpFailed { group, reason, .. } => write!(
                f,
                "application group '{group}' is unavailable: its Python sub-interpreter failed \
                 to set up earlier in this process (pid {}): {reason}; the full error was logged \
                 once (RWSGI0041). Fix it, then restart Apache",
                std::process::id()
            ),
        }
    }
}

impl From<&GroupError> for Failure {
    fn from(e: &GroupError) -> Failure {
        let detail = e.to_string();
        match e {
            GroupError::NoPython => Failure::NoPython { detail },
            GroupError::Limit { .. } => Failure::InterpreterLimit { detail },
            GroupError::SetUpFailed { first, .. } => Failure::InterpreterSetUpFailed {
                detail,
                logged: *first,
            },
        }
    }
}

/// The first line of an error, at most 200 characters, for the repeated short log line.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

fn failed_reason(name: &str) -> Option<String> {
    FAILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(g, _)| g == name)
        .map(|(_, r)| r.clone())
}

/// The interpreter for an application group (`""` is the main interpreter), creating a
/// sub-interpreter on first use. A failed set-up is logged in full to `log` once, and the
/// group is refused from then on. The caller must not be attached to any interpreter.
pub fn for_group(
    name: &str,
    apache_version: (u32, u32, u32),
    log: &RequestLog,
) -> Result<&'static Interp, GroupError> {
    if let Some(i) = find(name) {
        return Ok(i);
    }
    if main().is_none() {
        return Err(GroupError::NoPython);
    }
    let refused = |reason| GroupError::SetUpFailed {
        group: name.to_string(),
        reason,
        first: false,
    };
    if let Some(reason) = failed_reason(name) {
        return Err(refused(reason));
    }
    let _creating = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = find(name) {
        return Ok(i);
    }
    if let Some(reason) = failed_reason(name) {
        return Err(refused(reason));
    }
    let limit = super::options::get().maximum_interpreters();
    let created = all().len() - 1 + FAILED.lock().unwrap_or_else(|e| e.into_inner()).len();
    if created >= limit as usize {
        return Err(GroupError::Limit {
            group: name.to_string(),
            limit,
        });
    }
    match create(name, apache_version, log) {
        Ok(interp) => {
            let interp: &'static Interp = Box::leak(Box::new(interp));
            REGISTRY
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(interp);
            crate::python::runtime::host().interpreters(all().len());
            Ok(interp)
        }
        Err(reason) => {
            FAILED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name.to_string(), reason.clone()));
            Err(GroupError::SetUpFailed {
                group: name.to_string(),
                reason,
                first: true,
            })
        }
    }
}

/// Creates a sub-interpreter for `name` (the caller holds the creation lock). On failure the
/// full error is logged and the one-line reason returned; the interpreter is ended unless
/// its set-up left threads running in it.
fn create(name: &str, apache_version: (u32, u32, u32), log: &RequestLog) -> Result<Interp, String> {
    let main = main().ok_or("Python is not initialised in this process")?;
    let what = format!(
        "RWSGI0041: setting up the Python sub-interpreter of application group '{name}' failed \
         (pid {}); the group's requests get 500 until this process is replaced. Fix the error \
         below (WSGIPythonPath, .pth files and what they import run in every new \
         interpreter), then restart Apache",
        std::process::id()
    );
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
        log.log(Severity::Error, &what);
        let reason = "Py_NewInterpreter() failed (CPython printed why on stderr)".to_string();
        log.log(Severity::Error, &reason);
        return Err(reason);
    }
    // SAFETY: ts is this thread's new, current state.
    let ptr = unsafe { ffi::PyThreadState_GetInterpreter(ts) };
    attach::remember(ptr, ts);
    // The new interpreter's GIL is held by this thread.
    let state = super::callback::enter(|py| {
        InterpState::create(py, name, apache_version).map_err(|e| {
            log_exception(py, log, &what, &e);
            one_line(&e.to_string())
        })
    })
    .unwrap_or_else(|| {
        log.log(Severity::Error, &what);
        // SAFETY: the trampoline left the panic as the current exception.
        unsafe { ffi::PyErr_Clear() };
        Err("internal error (panic) while setting up the interpreter".to_string())
    });
    match state {
        Ok(state) => {
            // SAFETY: release the GIL, saving the new interpreter's state for this thread.
            unsafe { ffi::PyEval_SaveThread() };
            log.log(
                Severity::Debug,
                &format!(
                    "{}: created the Python sub-interpreter of application group '{name}' \
                     (pid {})",
                    crate::log_ids::INTERPRETER_CREATED,
                    std::process::id()
                ),
            );
            Ok(Interp {
                name: name.to_string(),
                ptr,
                state,
            })
        }
        Err(reason) => {
            // SAFETY: this thread holds the GIL with `ts`, the new interpreter's only state
            // of ours, and `main_ts` is its state for the main interpreter.
            unsafe { end_failed(name, ptr, ts, main_ts, log) };
            Err(reason)
        }
    }
}

/// Failed interpreters left in place because threads still ran in them: (interpreter, our
/// thread state in it).
static LEFT: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// How many thread states of `interp` there are besides `ts`.
///
/// # Safety
/// The caller holds the GIL, so the interpreter's thread list is stable while we walk it.
unsafe fn other_threads(
    interp: *mut ffi::PyInterpreterState,
    ts: *mut ffi::PyThreadState,
) -> usize {
    let mut others = 0;
    // SAFETY: forwarded contract; `interp` is live.
    unsafe {
        let mut t = ffi::PyInterpreterState_ThreadHead(interp);
        while !t.is_null() {
            if t != ts {
                others += 1;
            }
            t = ffi::PyThreadState_Next(t);
        }
    }
    others
}

/// At process exit, ends the failed interpreters that were left in place if their threads
/// have finished since. False when one still runs a thread: CPython's finalisation would
/// then abort the process ("remaining subinterpreters"), so the caller must skip it.
///
/// # Safety
/// The caller holds the GIL with `main_ts`, this thread's main-interpreter state, which is
/// current again on return; no request thread runs Python any more.
pub unsafe fn end_left_over(main_ts: *mut ffi::PyThreadState) -> bool {
    let mut left = LEFT.lock().unwrap_or_else(|e| e.into_inner());
    left.retain(|&(interp, ts)| {
        let (interp, ts) = (
            interp as *mut ffi::PyInterpreterState,
            ts as *mut ffi::PyThreadState,
        );
        // SAFETY: the GIL is held; the interpreter was never ended, so it is live.
        if unsafe { other_threads(interp, ts) } > 0 {
            return true;
        }
        // SAFETY: `ts` is its only thread state, created on the thread that set it up; thread
        // states are not bound to OS threads in 3.11, and the GIL is held throughout.
        unsafe {
            ffi::PyThreadState_Swap(ts);
            end_interpreter(ts);
            ffi::PyThreadState_Swap(main_ts);
        }
        false
    });
    left.is_empty()
}

/// Ends a sub-interpreter whose set-up failed, so it does not stay in memory, then
/// releases the GIL. A thread its set-up started (an import that starts a thread) cannot be
/// stopped, and ending an interpreter that still has one aborts the process: such an
/// interpreter is left as it is, with a warning.
///
/// # Safety
/// The caller holds the GIL with `ts`, the current state, created on this thread with
/// `Py_NewInterpreter` for `interp`; `main_ts` is this thread's main-interpreter state.
unsafe fn end_failed(
    name: &str,
    interp: *mut ffi::PyInterpreterState,
    ts: *mut ffi::PyThreadState,
    main_ts: *mut ffi::PyThreadState,
    log: &RequestLog,
) {
    // SAFETY: the GIL is held (caller contract).
    let others = unsafe { other_threads(interp, ts) };
    if others > 0 {
        log.log(
            Severity::Warning,
            &format!(
                "RWSGI0043: the failed sub-interpreter of application group '{name}' still \
                 runs {others} Python thread(s) started while it was set up; it is left in \
                 memory, not ended (ending it would abort the process)"
            ),
        );
        LEFT.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((interp as usize, ts as usize));
        // SAFETY: releases the GIL; `ts` stays this thread's state for the interpreter.
        unsafe { ffi::PyEval_SaveThread() };
        return;
    }
    // SAFETY: `ts` is current and the interpreter's only thread state; afterwards no state
    // is current, and the GIL is handed back through this thread's main state.
    unsafe {
        end_interpreter(ts);
        attach::forget(interp);
        ffi::PyThreadState_Swap(main_ts);
        ffi::PyEval_SaveThread();
    }
}

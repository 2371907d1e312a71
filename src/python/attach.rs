//! Thread states: one per (OS thread, interpreter), created on first use and kept for the
//! thread's life (so `threading.local` and contextvars survive between requests). On every
//! thread the main interpreter's state is created first, because CPython 3.11's PyGILState
//! machinery adopts the first thread state of a thread — C extensions using
//! `PyGILState_Ensure` in `%{GLOBAL}` apps must find the main interpreter's.
//!
//! A request can start on a thread whose own request is not over: an output filter
//! (mod_include) runs a subrequest on the same thread while the outer request waits in a
//! pass. The writer releases the GIL around every pass through a filter that could do that,
//! so the inner request attaches as usual: the same (detached) state when both use one
//! interpreter, its frames stacked above the outer request's, or this thread's state for the
//! other interpreter. It detaches before the outer request re-attaches.

use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::RefCell;
use std::sync::Mutex;

const SLOTS: usize = 16;

thread_local! {
    /// (interpreter, thread state) pairs of this thread; plain integers, so no TLS destructor.
    static LOCAL: RefCell<[(usize, usize); SLOTS]> = const { RefCell::new([(0, 0); SLOTS]) };
}

/// Thread states beyond the local slots: (thread, interpreter) -> state.
static OVERFLOW: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());

/// Every thread state created, for teardown: (interpreter, state).
static ALL: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

fn thread_key() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

fn lookup(interp: usize) -> Option<usize> {
    let local = LOCAL.with(|l| {
        l.borrow()
            .iter()
            .find(|(i, _)| *i == interp)
            .map(|(_, t)| *t)
    });
    local.or_else(|| {
        let me = thread_key();
        let ov = OVERFLOW.lock().unwrap_or_else(|e| e.into_inner());
        ov.iter()
            .find(|(t, i, _)| *t == me && *i == interp)
            .map(|(_, _, s)| *s)
    })
}

/// Records `tstate` as this thread's state for `interp`.
pub fn remember(interp: *mut ffi::PyInterpreterState, tstate: *mut ffi::PyThreadState) {
    let (i, t) = (interp as usize, tstate as usize);
    let stored = LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        match l.iter_mut().find(|(k, _)| *k == 0) {
            Some(slot) => {
                *slot = (i, t);
                true
            }
            None => false,
        }
    });
    if !stored {
        OVERFLOW
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((thread_key(), i, t));
    }
    ALL.lock().unwrap_or_else(|e| e.into_inner()).push((i, t));
}

/// This thread's state for `interp`, created (after the main interpreter's) on first use.
///
/// # Safety
/// Python is initialised and `interp` is a live interpreter.
pub unsafe fn state_for(interp: *mut ffi::PyInterpreterState) -> *mut ffi::PyThreadState {
    if let Some(t) = lookup(interp as usize) {
        return t as *mut ffi::PyThreadState;
    }
    // SAFETY: the main interpreter exists once Python is initialised.
    let main = unsafe { ffi::PyInterpreterState_Main() };
    if interp != main && lookup(main as usize).is_none() {
        // SAFETY: PyThreadState_New needs no GIL; the main state must come first.
        let ts = unsafe { ffi::PyThreadState_New(main) };
        remember(main, ts);
    }
    // SAFETY: as above.
    let ts = unsafe { ffi::PyThreadState_New(interp) };
    remember(interp, ts);
    ts
}

/// This thread is attached to an interpreter (holds the GIL) while the guard lives.
pub struct Attached {
    tstate: *mut ffi::PyThreadState,
}

impl Attached {
    /// Attaches this thread to `interp`, blocking until the GIL is free.
    ///
    /// # Safety
    /// Python is initialised, `interp` is live, and this thread is not attached already.
    pub unsafe fn new(interp: *mut ffi::PyInterpreterState) -> Attached {
        // SAFETY: forwarded contract.
        let tstate = unsafe { state_for(interp) };
        let waited = std::time::Instant::now();
        // SAFETY: our own thread state for this thread; we do not hold the GIL.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        super::modules::metrics::gil_wait_attach(waited.elapsed());
        Attached { tstate }
    }

    /// The token for Python calls while attached.
    pub fn py(&self) -> Python<'_> {
        // SAFETY: the guard holds the GIL with a thread state of this thread.
        unsafe { Python::assume_attached() }
    }

    /// The thread state in use.
    pub fn tstate(&self) -> *mut ffi::PyThreadState {
        self.tstate
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: releases the GIL taken in `new`; the current state is ours.
        unsafe { ffi::PyEval_SaveThread() };
    }
}

/// Thread states created for `interp` (for clearing them before it ends).
pub fn states_of(interp: *mut ffi::PyInterpreterState) -> Vec<*mut ffi::PyThreadState> {
    ALL.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(i, _)| *i == interp as usize)
        .map(|(_, t)| *t as *mut ffi::PyThreadState)
        .collect()
}

/// Drops every record of `interp`'s thread states, after it was ended on this thread (its
/// only state was this thread's; the pointers may be reused by a later interpreter).
pub fn forget(interp: *mut ffi::PyInterpreterState) {
    let i = interp as usize;
    LOCAL.with(|l| {
        for slot in l.borrow_mut().iter_mut().filter(|(k, _)| *k == i) {
            *slot = (0, 0);
        }
    });
    OVERFLOW
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(_, k, _)| *k != i);
    ALL.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(k, _)| *k != i);
}

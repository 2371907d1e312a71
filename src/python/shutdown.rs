//! Stopping Python when an Apache child exits, in a bounded time and without crashing on what
//! apps leave running. Apps start their own threads (SDKs do it at import); CPython 3.11
//! aborts the process in `Py_EndInterpreter` when another thread state exists, and both
//! `Py_EndInterpreter` and `Py_FinalizeEx` join non-daemon threads without a limit. So each
//! interpreter first joins its non-daemon threads with a shared deadline and runs its atexit
//! callbacks; one that still has threads is then left as it is (the process exits anyway),
//! and only interpreters without foreign threads are torn down.
//!
//! In prefork the child's exit cleanups run in the SIGTERM/SIGHUP handler, on the thread that
//! may be in the middle of a request inside Python (holding the GIL it would wait for), so
//! nothing is finalised while a request is in Python.
//!
//! A threaded MPM's ungraceful stop (`-k stop`, `-k restart`) joins its worker threads before
//! the exit cleanups run; a request looping in Python would keep the child alive until
//! Apache's SIGKILL, so such requests are interrupted with `SystemExit` when the child starts
//! stopping.

use super::attach;
use super::callback::{blocking, end_interpreter, enter};
use super::interp::{self, Interp};
use crate::wsgi::gateway::{RequestLog, Severity};
use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long, in all, the child waits for non-daemon app threads to finish before atexit.
const JOIN_WAIT: Duration = Duration::from_millis(200);

/// How long, in all, the child waits for app threads that atexit callbacks told to stop.
/// With [`JOIN_WAIT`] kept under half a second: Apache's parent polls for exited children at
/// doubling intervals (about 0.48 s, then 0.98 s), so a longer wait costs a whole second.
const AFTER_ATEXIT: Duration = Duration::from_millis(100);

/// How long an ungraceful stop lets running requests end by themselves before it raises
/// `SystemExit` in them; well under the harness's and operators' expectation of a prompt stop.
const INTERRUPT_GRACE: Duration = Duration::from_millis(300);

/// Requests of this process running in (or between calls into) Python.
static IN_PYTHON: AtomicUsize = AtomicUsize::new(0);

/// Marks a request as inside Python for as long as it lives.
pub struct InPython(());

/// Marks the calling request as inside Python until the guard drops.
pub fn in_python() -> InPython {
    IN_PYTHON.fetch_add(1, Ordering::SeqCst);
    InPython(())
}

impl Drop for InPython {
    fn drop(&mut self) {
        IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Requests running an app: (interpreter, thread ident as `threading.get_ident()` has it).
static RUNNING: Mutex<Vec<(usize, libc::c_ulong)>> = Mutex::new(Vec::new());

/// Set once an ungraceful stop has interrupted the running requests.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Registers the calling thread as running an app in an interpreter until it drops.
pub struct Running(libc::c_ulong);

/// Registers the calling thread as running an app in `interp` (for [`interrupt_requests`]).
pub fn running(interp: &Interp) -> Running {
    // SAFETY: pthread_self has no preconditions; CPython's thread ident is this value.
    let me = unsafe { libc::pthread_self() };
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((interp.ptr as usize, me));
    Running(me)
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut r = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = r.iter().position(|(_, t)| *t == self.0) {
            r.swap_remove(i);
        }
    }
}

/// The calling thread's id, as [`raise_request_timeout`] takes it.
pub fn thread_id() -> libc::c_ulong {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// Raises its interpreter's `mod_wsgi.RequestTimeout` in the app running on `thread`
/// (daemon mode's interrupt-timeout). Python delivers it at the app's next bytecode, not
/// inside a blocking C call. False when that thread runs no app. The caller must not be
/// attached to any interpreter.
pub fn raise_request_timeout(thread: libc::c_ulong) -> bool {
    let found = RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(_, t)| *t == thread)
        .map(|(p, _)| *p);
    let Some(interp) = found.and_then(|p| interp::all().into_iter().find(|i| i.ptr as usize == p))
    else {
        return false;
    };
    // SAFETY: Python is initialised (the interpreter exists) and this thread is not
    // attached; the class object lives in the interpreter's module state.
    unsafe {
        let _attached = attach::Attached::new(interp.ptr);
        ffi::PyThreadState_SetAsyncExc(
            thread as libc::c_long,
            interp.state.modules.request_timeout_class(),
        ) == 1
    }
}

/// Takes the main interpreter's GIL and gives it back: returns once the GIL could be had
/// (daemon mode's deadlock-timeout probe). False when Python is not running. The caller
/// is a thread of its own, never attached otherwise.
pub fn probe_gil() -> bool {
    let Some(main) = interp::main() else {
        return false;
    };
    // SAFETY: Python is initialised (the main interpreter exists) and the calling thread
    // is attached to no interpreter.
    let _attached = unsafe { attach::Attached::new(main.ptr) };
    true
}

/// True when `err` is the `SystemExit` an ungraceful stop raised in a running request.
pub fn is_interruption(py: Python<'_>, err: &PyErr) -> bool {
    INTERRUPTED.load(Ordering::SeqCst) && err.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
}

/// At the start of an ungraceful stop of a threaded child: raises `SystemExit` in every
/// request still running an app after [`INTERRUPT_GRACE`], so worker threads can be joined instead of the child being
/// killed. Does nothing on a thread that is itself running a request (prefork runs this
/// from a signal handler), or when that cannot be told.
pub fn interrupt_requests() {
    if !super::runtime::is_ready() {
        return;
    }
    // SAFETY: no preconditions.
    let me = unsafe { libc::pthread_self() };
    // try_lock: in a signal handler the interrupted thread may hold the lock.
    let snapshot = || RUNNING.try_lock().ok().map(|r| r.clone());
    let Some(mut running) = snapshot() else {
        return;
    };
    if running.iter().any(|(_, t)| *t == me) {
        return;
    }
    // An asynchronous exception lands at whatever bytecode runs next, also inside
    // importlib between taking the import lock and the `try` that releases it: the lock
    // then stays with a finished thread and every later import in the process waits for
    // ever, so the child never exits. The stop has just closed the requests' sockets, so
    // most requests end by themselves within milliseconds (logging their client-gone
    // error, which imports `traceback`); only those still running after a grace period
    // are interrupted.
    let grace = Instant::now() + INTERRUPT_GRACE;
    while !running.is_empty() && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(5));
        running = match snapshot() {
            Some(r) => r,
            None => continue,
        };
    }
    if running.is_empty() {
        return;
    }
    INTERRUPTED.store(true, Ordering::SeqCst);
    for i in interp::all() {
        let threads: Vec<_> = running
            .iter()
            .filter(|(p, _)| *p == i.ptr as usize)
            .map(|(_, t)| *t)
            .collect();
        if threads.is_empty() {
            continue;
        }
        // SAFETY: Python is initialised and this thread is not attached (it runs no
        // request); the async exception is looked up among this interpreter's threads.
        unsafe {
            let _attached = attach::Attached::new(i.ptr);
            for t in threads {
                ffi::PyThreadState_SetAsyncExc(t as libc::c_long, ffi::PyExc_SystemExit);
            }
        }
    }
}

/// Per interpreter, as `threading._shutdown` and then `atexit` do at interpreter exit, but
/// bounded: run threading's own exit hooks (they stop `concurrent.futures` executors, whose
/// workers are non-daemon threads; they join those without a limit, hence a helper thread),
/// join non-daemon threads until the deadline, run the atexit callbacks, and name the
/// threads still alive. Threads of requests (dummy threads) and the thread that created the
/// interpreter are not the app's.
const WIND_DOWN: &std::ffi::CStr = c"
def wind_down(seconds):
    import atexit, threading, time
    end = time.monotonic() + seconds
    me = threading.current_thread()
    first = threading.main_thread()
    def theirs():
        return [t for t in threading.enumerate()
                if t is not me and t is not first
                and not isinstance(t, threading._DummyThread) and t.is_alive()]
    hooks = list(reversed(getattr(threading, '_threading_atexits', [])))
    if hooks:
        threading._SHUTTING_DOWN = True
        def run_hooks():
            for hook in hooks:
                hook()
        helper = threading.Thread(target=run_hooks, name='mod_wsgi-exit-hooks', daemon=True)
        helper.start()
        helper.join(max(0.0, end - time.monotonic()))
    for t in theirs():
        left = end - time.monotonic()
        if left <= 0:
            break
        if not t.daemon:
            t.join(left)
    atexit._run_exitfuncs()
    return [t.name for t in theirs()]
";

/// Runs [`WIND_DOWN`] in the current interpreter; the names of the app's threads still alive.
fn wind_down(py: Python<'_>, deadline: Instant) -> PyResult<Vec<String>> {
    let globals = pyo3::types::PyDict::new(py);
    globals.set_item("__builtins__", py.import("builtins")?)?;
    py.run(WIND_DOWN, Some(&globals), None)?;
    let f = globals.get_item("wind_down")?.expect("wind_down defined");
    let left = deadline.saturating_duration_since(Instant::now());
    f.call1((left.as_secs_f64(),))?.extract()
}

/// Thread states of `interp` that mod_rwsgi did not create (the app's threads).
///
/// # Safety
/// The GIL is held, so the interpreter's thread list does not change under us.
unsafe fn foreign_states(interp: *mut ffi::PyInterpreterState) -> usize {
    let ours = attach::states_of(interp);
    let mut n = 0;
    // SAFETY: walking the live list of a live interpreter with the GIL held.
    unsafe {
        let mut ts = ffi::PyInterpreterState_ThreadHead(interp);
        while !ts.is_null() {
            if !ours.contains(&ts) {
                n += 1;
            }
            ts = ffi::PyThreadState_Next(ts);
        }
    }
    n
}

fn group_label(i: &Interp) -> &str {
    if i.name.is_empty() {
        "%{GLOBAL}"
    } else {
        &i.name
    }
}

/// Winds the current interpreter down; true when it has no foreign thread left and may be
/// ended. The caller holds the GIL with its own thread state of `i`.
fn settle(i: &Interp, deadlines: (Instant, Instant), log: &RequestLog) -> bool {
    let (joins, after) = deadlines;
    let names = enter(|py| {
        wind_down(py, joins).unwrap_or_else(|e| {
            let msg = format!(
                "RWSGI0052: running atexit callbacks in application group '{}' failed at \
                 child exit: {e}",
                group_label(i)
            );
            log.log(Severity::Warning, &msg);
            Vec::new()
        })
    })
    .unwrap_or_default();
    // Threads told to stop by an atexit callback get a moment, with the GIL released.
    let grace = after.min(Instant::now() + AFTER_ATEXIT);
    // SAFETY: GIL held (caller contract).
    while unsafe { foreign_states(i.ptr) } > 0 && Instant::now() < grace {
        blocking(|| std::thread::sleep(Duration::from_millis(5)));
    }
    // SAFETY: as above.
    let left = unsafe { foreign_states(i.ptr) };
    if left == 0 {
        return true;
    }
    let names = if names.is_empty() {
        "threads not started through the threading module".to_string()
    } else {
        names.join(", ")
    };
    log.log(
        Severity::Warning,
        &format!(
            "RWSGI0050: application group '{}' still has {left} thread(s) of its own at \
             child exit ({names}); its atexit callbacks ran, but the interpreter is left as \
             it is instead of being destroyed, which would abort or hang the process. Stop \
             such threads from an atexit callback, or make them daemon threads",
            group_label(i)
        ),
    );
    false
}

/// Finalises Python at process exit (request threads have stopped by then): runs atexit in
/// every interpreter and ends those that have no threads of their own left, main last.
/// Nothing with `WSGIDestroyInterpreter Off`: the process then exits without running
/// Python's shutdown (and so without atexit callbacks), the cure for threads that would
/// hang it.
pub fn finalize(log: &RequestLog) {
    if !super::runtime::mark_stopped() {
        return;
    }
    if IN_PYTHON.load(Ordering::SeqCst) > 0 {
        // Only a signal handler interrupting a request gets here (prefork's stop and
        // restart); the interrupted frame may hold the GIL, so waiting for it would never end.
        log.log(
            Severity::Warning,
            "RWSGI0051: the child was stopped while a request was running Python; Python is \
             not finalised in it and atexit callbacks do not run",
        );
        return;
    }
    let Some(main) = interp::main() else { return };
    // SAFETY: runs on the thread doing the child's exit cleanups once no request is in
    // Python. The GIL is taken with this thread's main state; each sub-interpreter is
    // entered by swapping to this thread's state for it, and we swap back.
    unsafe {
        let main_ts = attach::state_for(main.ptr);
        ffi::PyEval_RestoreThread(main_ts);
        // Before any interpreter ends, so `process_stopping` subscribers still find theirs.
        super::modules::process_stopping();
        if !super::options::get().destroy_interpreter() {
            // WSGIDestroyInterpreter Off: subscribers heard that the process stops; no
            // interpreter is torn down.
            ffi::PyEval_SaveThread();
            return;
        }
        let started = Instant::now();
        let joins = started + JOIN_WAIT;
        let deadlines = (joins, joins + AFTER_ATEXIT);
        let mut all_ended = true;
        for sub in interp::all()
            .into_iter()
            .rev()
            .filter(|i| i.ptr != main.ptr)
        {
            let ts = attach::state_for(sub.ptr);
            ffi::PyThreadState_Swap(ts);
            if settle(sub, deadlines, log) {
                for other in attach::states_of(sub.ptr) {
                    if other != ts {
                        ffi::PyThreadState_Clear(other);
                        ffi::PyThreadState_Delete(other);
                    }
                }
                end_interpreter(ts);
                log.log(
                    Severity::Debug,
                    &format!(
                        "{}: ended the Python sub-interpreter of application group '{}' at \
                         child exit (pid {})",
                        crate::log_ids::INTERPRETER_ENDED,
                        group_label(sub),
                        std::process::id()
                    ),
                );
            } else {
                all_ended = false;
            }
            ffi::PyThreadState_Swap(main_ts);
        }
        let main_settled = settle(main, deadlines, log);
        // CPython aborts finalisation while any sub-interpreter remains ("remaining
        // subinterpreters"), including one whose set-up failed and that still runs threads.
        let failed_ended = interp::end_left_over(main_ts);
        if !failed_ended {
            log.log(
                Severity::Warning,
                "RWSGI0044: Python is not finalised at exit: a sub-interpreter whose set-up \
                 failed still runs threads (see RWSGI0043)",
            );
        }
        let finalized = main_settled && all_ended && failed_ended;
        if finalized {
            ffi::Py_FinalizeEx();
        }
        log.log(
            Severity::Info,
            &format!(
                "RWSGI0054: Python stopped at child exit in {} ms ({})",
                started.elapsed().as_millis(),
                if finalized {
                    "finalised"
                } else {
                    "left running: app threads"
                }
            ),
        );
        // Otherwise the GIL stays with this thread: the app threads left running cannot run
        // Python while the process tears down the rest of its state and exits.
    }
}

//! Calling one function of a hook script (`WSGIAccessScript`, `WSGIAuthUserScript`,
//! `WSGIAuthGroupScript`, `WSGIDispatchScript`) for a request: the script is loaded (and
//! reloaded) like a WSGI script, called with a small environ, and its answer checked.

use super::attach::Attached;
use super::callback::{enter, latin1, log_exception, summary};
use super::environ::{DictSink, ModWsgiFacts};
use super::interp::Interp;
use super::objects::{log, type_name};
use super::request::LogShared;
use super::script;
use super::state::InterpState;
use crate::wsgi::environ::{self, Key, RequestFacts};
use crate::wsgi::gateway::{RequestLog, Severity};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction, PyDict, PyString, PyTuple};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which function is called, which decides the answers it may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `allow_access(environ, host)`: True, False or None.
    AllowAccess,
    /// `check_password(environ, user, password)`: True, False, None or a user name.
    CheckPassword,
    /// `get_realm_hash(environ, user, realm)`: None or the hex MD5 of `user:realm:password`.
    GetRealmHash,
    /// `groups_for_user(environ, user)`: an iterable of group names.
    GroupsForUser,
    /// [`DISPATCH`] of a dispatch script, each optional and given the same environ, each
    /// answering None or a name.
    Dispatch,
}

/// A dispatch script's functions, in the order they are called.
pub const DISPATCH: [&str; 3] = ["process_group", "application_group", "callable_object"];

impl Function {
    /// The Python function's name.
    pub fn name(self) -> &'static str {
        match self {
            Function::AllowAccess => "allow_access",
            Function::CheckPassword => "check_password",
            Function::GetRealmHash => "get_realm_hash",
            Function::GroupsForUser => "groups_for_user",
            Function::Dispatch => "process_group/application_group/callable_object",
        }
    }
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Yes,
    No,
    /// None (or, for a dispatch function, no such function in the script).
    Nothing,
    /// A name or a hash (UTF-8 for user names, latin-1 otherwise, as mod_wsgi encodes them).
    Text(Vec<u8>),
    Groups(Vec<Vec<u8>>),
    /// The dispatch functions' answers, in [`DISPATCH`] order (None: absent or None).
    Dispatch([Option<Vec<u8>>; 3]),
}

/// The hook could not give an answer; the reason has been logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

/// What the environ of a hook call is made of.
pub enum HookEnviron<'a> {
    /// Access and auth scripts: the cut-down set.
    CutDown {
        facts: &'a RequestFacts<'a>,
        application_group: &'a str,
        script_reloading: bool,
    },
    /// Dispatch scripts: the request's CGI variables and its current `mod_wsgi.*` choices.
    Request {
        facts: &'a RequestFacts<'a>,
        mod_wsgi: &'a ModWsgiFacts<'a>,
    },
}

/// What a script may ask about the connection's TLS (mod_ssl), answered by the transport.
pub trait SslInfo {
    /// True when the connection uses TLS.
    fn is_https(&self) -> bool;
    /// A mod_ssl variable (`SSL_CLIENT_S_DN`, `HTTPS`, …), if it has a value.
    fn var(&self, name: &[u8]) -> Option<Vec<u8>>;
}

/// One call.
pub struct HookCall<'a> {
    pub script: &'a str,
    /// The script's mtime when reloading is on (None: never reload).
    pub reload_mtime: Option<i64>,
    pub function: Function,
    /// The arguments after the environ (latin-1 `str`, or None).
    pub args: &'a [Option<&'a [u8]>],
    pub environ: HookEnviron<'a>,
    /// Behind `mod_ssl.is_https()` and `mod_ssl.var_lookup(name)` in the environ.
    pub ssl: &'a dyn SslInfo,
}

/// Runs the call in `interp`. The caller is not attached to any interpreter.
pub fn call(interp: &Interp, call: &HookCall<'_>, log: RequestLog) -> Result<Reply, Failed> {
    // SAFETY: Python is initialised (the interpreter exists) and the caller is not attached.
    let _guard = unsafe { Attached::new(interp.ptr) };
    let _running = super::shutdown::running(interp);
    match enter(|py| call_attached(py, &interp.state, call, log)) {
        Some(r) => r,
        None => {
            log.log(
                Severity::Error,
                &format!(
                    "RWSGI0450: internal error (panic) while calling {}() of '{}'",
                    call.function.name(),
                    call.script
                ),
            );
            // SAFETY: attached; `enter` left the panic as the current exception.
            unsafe { ffi::PyErr_Clear() };
            Err(Failed)
        }
    }
}

fn call_attached(
    py: Python<'_>,
    state: &InterpState,
    call: &HookCall<'_>,
    log: RequestLog,
) -> Result<Reply, Failed> {
    let fname = call.function.name();
    let module = match script::load(py, state, call.script, call.reload_mtime, &log) {
        Ok(m) => m,
        Err(e) => {
            let what = format!(
                "RWSGI0451: failed to load script '{}' (for {fname}())",
                call.script
            );
            log_exception(py, &log, &what, &e);
            return Err(Failed);
        }
    };
    let names: &[&'static str] = match call.function {
        Function::Dispatch => &DISPATCH,
        _ => std::slice::from_ref(&fname),
    };
    let mut functions = Vec::with_capacity(names.len());
    for name in names {
        match module.getattr_opt(*name) {
            Ok(Some(f)) => functions.push((*name, f)),
            Ok(None) if call.function == Function::Dispatch => {}
            Ok(None) => {
                log.log(
                    Severity::Error,
                    &format!(
                        "RWSGI0452: script '{}' does not define {name}(), which this \
                         configuration needs",
                        call.script
                    ),
                );
                return Err(Failed);
            }
            Err(e) => {
                let what = format!("RWSGI0452: looking up {name} in '{}' failed", call.script);
                log_exception(py, &log, &what, &e);
                return Err(Failed);
            }
        }
    }
    if functions.is_empty() {
        return Ok(Reply::Dispatch(Default::default()));
    }
    let logs = Box::into_raw(Box::new(LogShared::new(log)));
    let result = run(py, state, call, &functions, logs);
    // SAFETY: `logs` came from Box::into_raw above; the errors object that points to it was
    // disarmed in `run`, so nothing reaches it any more; GIL held.
    unsafe {
        LogShared::flush(logs, None);
        drop(Box::from_raw(logs));
    }
    result.map_err(|(name, e)| {
        let what = format!(
            "RWSGI0453: exception occurred in {name}() of script '{}': {}",
            call.script,
            summary(py, &e)
        );
        log_exception(py, &log, &what, &e);
        Failed
    })
}

/// Calls the functions in order with one environ; an error names the function that failed.
fn run(
    py: Python<'_>,
    state: &InterpState,
    call: &HookCall<'_>,
    functions: &[(&'static str, Bound<'_, PyAny>)],
    logs: *mut LogShared,
) -> Result<Reply, (&'static str, PyErr)> {
    let first = functions[0].0;
    let errors = log::for_request(py, &state.log_type.bind(py), logs).map_err(|e| (first, e))?;
    let live = Arc::new(AtomicBool::new(true));
    let answer = (|| {
        let env = build_environ(py, state, &call.environ, &errors)
            .and_then(|env| add_ssl(&env, call.ssl, &live).map(|()| env))
            .map_err(|e| (first, e))?;
        let mut args = vec![env.into_any()];
        for a in call.args {
            args.push(match a {
                Some(b) => latin1(py, b),
                None => py.None().into_bound(py),
            });
        }
        let args = PyTuple::new(py, args).map_err(|e| (first, e))?;
        let mut dispatch: [Option<Vec<u8>>; 3] = Default::default();
        for (name, f) in functions {
            let reply = f
                .call1(&args)
                .and_then(|r| check(call.function, name, &r))
                .map_err(|e| (*name, e))?;
            if call.function != Function::Dispatch {
                return Ok(reply);
            }
            if let (Reply::Text(v), Some(slot)) = (reply, DISPATCH.iter().position(|n| n == name)) {
                dispatch[slot] = Some(v);
            }
        }
        Ok(Reply::Dispatch(dispatch))
    })();
    log::disarm(&errors);
    live.store(false, Ordering::Release);
    answer
}

/// The transport's TLS facts for the length of one call (see [`add_ssl`]).
#[derive(Clone, Copy)]
struct SslRef(*const (dyn SslInfo + 'static));
// SAFETY: only dereferenced while the call that lent it runs, which `live` tells.
unsafe impl Send for SslRef {}
// SAFETY: as above.
unsafe impl Sync for SslRef {}

impl SslRef {
    /// # Safety
    /// The call that lent the facts is still running.
    unsafe fn info(&self) -> &dyn SslInfo {
        // SAFETY: function contract.
        unsafe { &*self.0 }
    }
}

fn expired() -> PyErr {
    PyRuntimeError::new_err("request object has expired")
}

/// Adds `mod_ssl.is_https` and `mod_ssl.var_lookup`, as mod_wsgi gives hook scripts. A
/// script that keeps them gets RuntimeError once its call is over.
fn add_ssl(env: &Bound<'_, PyDict>, ssl: &dyn SslInfo, live: &Arc<AtomicBool>) -> PyResult<()> {
    let py = env.py();
    // SAFETY: only the lifetime is erased; the closures below use the pointer only while
    // `live` is set, which `run` clears before the call (and `ssl`) ends.
    let ssl = SslRef(unsafe {
        std::mem::transmute::<*const dyn SslInfo, *const (dyn SslInfo + 'static)>(ssl)
    });
    let flag = live.clone();
    let is_https = PyCFunction::new_closure(
        py,
        Some(c"ssl_is_https"),
        None,
        move |_args, _kwargs| -> PyResult<i32> {
            if !flag.load(Ordering::Acquire) {
                return Err(expired());
            }
            // SAFETY: live: the lender is still running (see above).
            Ok(i32::from(unsafe { ssl.info() }.is_https()))
        },
    )?;
    let flag = live.clone();
    let var_lookup = PyCFunction::new_closure(
        py,
        Some(c"ssl_var_lookup"),
        None,
        move |args, _kwargs| -> PyResult<Option<Py<PyAny>>> {
            if !flag.load(Ordering::Acquire) {
                return Err(expired());
            }
            let py = args.py();
            let name = args.get_item(0)?;
            let name = text(&name, false, "variable name")?.ok_or_else(|| {
                PyTypeError::new_err("ssl_var_lookup() takes the variable name as str")
            })?;
            // SAFETY: live: the lender is still running (see above).
            let value = unsafe { ssl.info() }.var(&name);
            Ok(value.map(|v| latin1(py, &v).unbind()))
        },
    )?;
    env.set_item("mod_ssl.is_https", is_https)?;
    env.set_item("mod_ssl.var_lookup", var_lookup)?;
    Ok(())
}

fn build_environ<'py>(
    py: Python<'py>,
    state: &InterpState,
    env: &HookEnviron<'_>,
    errors: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let mut sink = DictSink::new(py, &dict, state);
    let s = |v: &str| PyString::new(py, v).into_any();
    match env {
        HookEnviron::CutDown {
            facts,
            application_group,
            script_reloading,
        } => {
            environ::build_for_hook(facts, &mut sink);
            sink.put(state.key(Key::MwProcessGroup), &s(""));
            sink.put(state.key(Key::MwApplicationGroup), &s(application_group));
            // An int here, as mod_wsgi gives these scripts.
            let reloading = i64::from(*script_reloading).into_pyobject(py)?.into_any();
            sink.put(state.key(Key::MwScriptReloading), &reloading);
        }
        HookEnviron::Request { facts, mod_wsgi } => {
            environ::build(facts, &mut sink);
            sink.put(state.key(Key::MwProcessGroup), &s(mod_wsgi.process_group));
            sink.put(
                state.key(Key::MwApplicationGroup),
                &s(mod_wsgi.application_group),
            );
            sink.put(
                state.key(Key::MwCallableObject),
                &s(mod_wsgi.callable_object),
            );
            sink.put(
                state.key(Key::MwRequestHandler),
                &latin1(py, mod_wsgi.request_handler),
            );
            sink.put(
                state.key(Key::MwScriptReloading),
                &s(if mod_wsgi.script_reloading { "1" } else { "0" }),
            );
        }
    }
    sink.put(state.key(Key::WsgiErrors), errors);
    sink.put(state.key(Key::MwVersion), &state.mod_wsgi_version.bind(py));
    sink.put(
        state.key(Key::ApacheVersion),
        &state.apache_version.bind(py),
    );
    if sink.failed {
        return Err(PyErr::fetch(py));
    }
    Ok(dict)
}

/// A `str` as bytes: latin-1 (an error for other characters) or UTF-8.
fn text(item: &Bound<'_, PyAny>, utf8: bool, what: &str) -> PyResult<Option<Vec<u8>>> {
    if let Ok(b) = item.cast::<PyBytes>() {
        return Ok(Some(b.as_bytes().to_vec()));
    }
    let Ok(s) = item.cast::<PyString>() else {
        return Ok(None);
    };
    let s = s.to_str()?;
    if utf8 {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Some)
        .ok_or_else(|| PyTypeError::new_err(format!("{what} contains non latin-1 characters")))
}

/// Checks the function's answer against what it may return.
fn check(f: Function, name: &str, result: &Bound<'_, PyAny>) -> PyResult<Reply> {
    if result.is_none() && f != Function::GroupsForUser {
        return Ok(Reply::Nothing);
    }
    let is_bool = result.is_exact_instance_of::<pyo3::types::PyBool>();
    match f {
        Function::AllowAccess | Function::CheckPassword if is_bool => Ok(if result.is_truthy()? {
            Reply::Yes
        } else {
            Reply::No
        }),
        Function::AllowAccess => Err(PyTypeError::new_err(format!(
            "allow_access() must return True, False or None, not {}",
            type_name(result)
        ))),
        Function::CheckPassword => match result.cast::<PyString>() {
            // A user name: the authenticated user becomes that name (UTF-8, as mod_wsgi).
            Ok(s) => Ok(Reply::Text(s.to_str()?.as_bytes().to_vec())),
            Err(_) => Err(PyTypeError::new_err(format!(
                "check_password() must return True, False, None or a user name as str, not {}",
                type_name(result)
            ))),
        },
        Function::GetRealmHash => match text(result, false, "get_realm_hash() result")? {
            Some(h) => Ok(Reply::Text(h)),
            None => Err(PyTypeError::new_err(format!(
                "get_realm_hash() must return None or the hash as str, not {}",
                type_name(result)
            ))),
        },
        Function::GroupsForUser => {
            let iter = result.try_iter().map_err(|_| {
                PyTypeError::new_err(format!(
                    "groups_for_user() must return an iterable of group names, not {}",
                    type_name(result)
                ))
            })?;
            let mut groups = Vec::new();
            for item in iter {
                let item = item?;
                match text(&item, false, "group name")? {
                    Some(g) => groups.push(g),
                    None => {
                        return Err(PyTypeError::new_err(format!(
                            "groups_for_user() must give group names as str, not {}",
                            type_name(&item)
                        )));
                    }
                }
            }
            Ok(Reply::Groups(groups))
        }
        Function::Dispatch => match result.cast::<PyString>() {
            Ok(s) => Ok(Reply::Text(s.to_str()?.as_bytes().to_vec())),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{name}() must return None or a str, not {}",
                type_name(result)
            ))),
        },
    }
}

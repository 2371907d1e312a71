//! `WSGIDispatchScript`: per request, the script's optional `process_group(environ)`,
//! `application_group(environ)` and `callable_object(environ)` may override where and what
//! runs. It runs in this Apache child, in its own application group (`%{GLOBAL}` unless
//! `application-group=` says otherwise).

use super::route::Choice;
use crate::config::{HookScript, expand};
use crate::httpd::log::Level;
use crate::httpd::request::Request;
use crate::python;
use crate::python::environ::ModWsgiFacts;
use crate::python::hook::{self, Function, HookCall, HookEnviron, Reply};
use crate::sys;
use crate::wsgi::environ::RequestFacts;
use crate::wsgi::gateway::RequestLog;

/// Asks the dispatch script. Err is the status to answer with (the reason is logged).
pub fn choose(
    r: Request<'_>,
    script: &HookScript,
    script_name: &[u8],
    facts: &RequestFacts<'_>,
    current: &ModWsgiFacts<'_>,
    log: RequestLog,
) -> Result<Choice, i32> {
    let failed = sys::HTTP_INTERNAL_SERVER_ERROR as i32;
    let interp = match super::hook_interp(r, script_name, script, &log) {
        Ok((_, interp)) => interp,
        Err(e) => {
            r.log(
                Level::Error,
                &format!(
                    "RWSGI0460: WSGIDispatchScript '{}' cannot run: {e}",
                    script.path
                ),
            );
            return Err(failed);
        }
    };
    let call = HookCall {
        script: &script.path,
        reload_mtime: if current.script_reloading {
            python::preload::apr_mtime(&script.path)
        } else {
            None
        },
        function: Function::Dispatch,
        args: &[],
        environ: HookEnviron::Request {
            facts,
            mod_wsgi: current,
        },
        ssl: &super::auth::RequestSsl(r),
    };
    let [pg, ag, co] = match hook::call(interp, &call, log) {
        Ok(Reply::Dispatch(answers)) => {
            answers.map(|a| a.map(|v| String::from_utf8_lossy(&v).into_owned()))
        }
        _ => return Err(failed),
    };
    let choice = super::with_expand(r, script_name, |ctx| Choice {
        process_group: pg.map(|v| expand::expand_group(&v, ctx)),
        application_group: ag.map(|v| expand::expand_group(&v, ctx)),
        callable_object: co.map(|v| expand::expand_callable(&v, ctx.env)),
    });
    Ok(choice)
}

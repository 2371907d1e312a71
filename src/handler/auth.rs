//! The access, authentication and group-authorisation hooks served by Python scripts
//! (`WSGIAccessScript`, `WSGIAuthUserScript`, `WSGIAuthGroupScript`). They always run in
//! this Apache child, in the script's application group (`%{GLOBAL}` unless
//! `application-group=` says otherwise), and sit beside Apache's own `Require` rules.

use super::facts;
use crate::config::HookScript;
use crate::httpd::config_store;
use crate::httpd::log::{self, Level};
use crate::httpd::request::Request;
use crate::python;
use crate::python::hook::{self, Failed, Function, HookCall, HookEnviron, Reply, SslInfo};
use crate::sys;

/// An authn provider's answer (Apache's `authn_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authn {
    Denied,
    Granted,
    UserFound,
    UserNotFound,
    GeneralError,
}

/// An authz provider's answer (Apache's `authz_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authz {
    Denied,
    Granted,
    Neutral,
    GeneralError,
    DeniedNoUser,
}

/// mod_ssl's answers for a request.
pub struct RequestSsl<'r>(pub Request<'r>);

impl SslInfo for RequestSsl<'_> {
    fn is_https(&self) -> bool {
        self.0.ssl_is_https()
    }
    fn var(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.0.ssl_var(name)
    }
}

/// Calls `function` of a hook script for `r` with the cut-down environ.
fn run(
    r: Request<'_>,
    script: &HookScript,
    function: Function,
    args: &[Option<&[u8]>],
) -> Result<Reply, Failed> {
    let fname = function.name();
    if !python::runtime::is_ready() {
        r.log(
            Level::Error,
            &format!(
                "RWSGI0454: Python is not available in this Apache child, so script '{}' \
                 cannot decide this request; see the start-up errors in the main error log",
                script.path
            ),
        );
        return Err(Failed);
    }
    let conf = config_store::request_server_config(&r);
    let dir = config_store::request_dir_config(&r);
    let storage = facts::collect(r, conf, dir, false);
    let log = log::request_logger(&r);
    let _in_python = python::shutdown::in_python();
    let (group, interp) = match super::hook_interp(r, &storage.script_name, script, &log) {
        Ok(found) => found,
        Err(e) => {
            r.log(
                Level::Error,
                &format!(
                    "RWSGI0455: script '{}' ({fname}) cannot run: {e}",
                    script.path
                ),
            );
            return Err(Failed);
        }
    };
    let reloading = dir.script_reloading.unwrap_or(true);
    let facts = facts::facts(r, &storage, false);
    let call = HookCall {
        script: &script.path,
        reload_mtime: if reloading {
            python::preload::apr_mtime(&script.path)
        } else {
            None
        },
        function,
        args,
        environ: HookEnviron::CutDown {
            facts: &facts,
            application_group: &group,
            script_reloading: reloading,
        },
        ssl: &RequestSsl(r),
    };
    hook::call(interp, &call, log)
}

/// The access_checker hook: `allow_access(environ, host)`.
pub fn check_access(r: Request<'_>) -> i32 {
    let dir = config_store::request_dir_config(&r);
    let Some(script) = &dir.access_script else {
        return sys::DECLINED;
    };
    let host = r.remote_host().unwrap_or_else(|| r.remote_ip());
    match run(r, script, Function::AllowAccess, &[Some(host)]) {
        Ok(Reply::Yes) => sys::OK as i32,
        Ok(Reply::No) => {
            r.log(
                Level::Error,
                &format!(
                    "RWSGI0456: client denied by allow_access() of '{}': {}",
                    script.path,
                    String::from_utf8_lossy(r.filename())
                ),
            );
            sys::HTTP_FORBIDDEN as i32
        }
        Ok(_) => sys::DECLINED,
        Err(Failed) => sys::HTTP_INTERNAL_SERVER_ERROR as i32,
    }
}

fn missing(r: Request<'_>, directive: &str, provider: &str) {
    r.log(
        Level::Error,
        &format!(
            "RWSGI0457: {provider} is used for {} but no {directive} applies there; add \
             {directive} to the same <Directory>/<Location>",
            String::from_utf8_lossy(r.uri())
        ),
    );
}

/// The `wsgi` authn provider for Basic: `check_password(environ, user, password)`.
pub fn check_password(r: Request<'_>, user: &[u8], password: &[u8]) -> Authn {
    let dir = config_store::request_dir_config(&r);
    let Some(script) = &dir.auth_user_script else {
        missing(r, "WSGIAuthUserScript", "AuthBasicProvider wsgi");
        return Authn::GeneralError;
    };
    match run(
        r,
        script,
        Function::CheckPassword,
        &[Some(user), Some(password)],
    ) {
        Ok(Reply::Yes) => Authn::Granted,
        Ok(Reply::No) => Authn::Denied,
        Ok(Reply::Text(name)) => {
            r.set_user(&name);
            Authn::Granted
        }
        Ok(_) => Authn::UserNotFound,
        Err(Failed) => Authn::GeneralError,
    }
}

/// The `wsgi` authn provider for Digest: `get_realm_hash(environ, user, realm)`, the hex
/// MD5 of `user:realm:password`.
pub fn realm_hash(r: Request<'_>, user: &[u8], realm: &[u8]) -> (Authn, Option<Vec<u8>>) {
    let dir = config_store::request_dir_config(&r);
    let Some(script) = &dir.auth_user_script else {
        missing(r, "WSGIAuthUserScript", "AuthDigestProvider wsgi");
        return (Authn::GeneralError, None);
    };
    match run(
        r,
        script,
        Function::GetRealmHash,
        &[Some(user), Some(realm)],
    ) {
        Ok(Reply::Text(hash)) => (Authn::UserFound, Some(hash)),
        Ok(_) => (Authn::UserNotFound, None),
        Err(Failed) => (Authn::GeneralError, None),
    }
}

/// The `wsgi-group` authz provider: grants when `groups_for_user(environ, user)` names one
/// of the `Require wsgi-group` groups.
pub fn check_groups(r: Request<'_>, required: &[Vec<u8>]) -> Authz {
    let Some(user) = r.user() else {
        return Authz::DeniedNoUser;
    };
    let dir = config_store::request_dir_config(&r);
    let Some(script) = &dir.auth_group_script else {
        missing(r, "WSGIAuthGroupScript", "Require wsgi-group");
        // As mod_wsgi: no script, no group membership.
        return Authz::Denied;
    };
    let groups = match run(r, script, Function::GroupsForUser, &[Some(user)]) {
        Ok(Reply::Groups(g)) => g,
        Ok(_) => Vec::new(),
        Err(Failed) => return Authz::GeneralError,
    };
    if required.iter().any(|want| groups.contains(want)) {
        return Authz::Granted;
    }
    let authoritative = dir.group_authoritative.unwrap_or(true);
    // With WSGIGroupAuthoritative Off the failure is no verdict: the other Require lines
    // of the section decide.
    let (level, id, verdict) = if authoritative {
        (Level::Error, "RWSGI0458", Authz::Denied)
    } else {
        (Level::Info, "RWSGI0459", Authz::Neutral)
    };
    r.log(
        level,
        &format!(
            "{id}: user '{}' is in none of the groups '{}' that {} requires (groups from \
             '{}': {})",
            String::from_utf8_lossy(user),
            required
                .iter()
                .map(|g| String::from_utf8_lossy(g).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(r.uri()),
            script.path,
            groups.len()
        ),
    );
    verdict
}

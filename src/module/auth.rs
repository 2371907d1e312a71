//! The `extern "C"` side of the script-driven access control: the access_checker hook,
//! the `wsgi` authn provider and the `wsgi-group` authz provider, registered per
//! configuration (`AP_AUTH_INTERNAL_PER_CONF`) so internal requests that share the
//! original request's configuration are not checked again.

use crate::handler::auth::{self, Authn, Authz};
use crate::httpd::cstr_bytes;
use crate::httpd::request::Request;
use crate::httpd::trampoline::guard;
use crate::sys;

fn authn_raw(a: Authn) -> sys::authn_status {
    match a {
        Authn::Denied => sys::authn_status_AUTH_DENIED,
        Authn::Granted => sys::authn_status_AUTH_GRANTED,
        Authn::UserFound => sys::authn_status_AUTH_USER_FOUND,
        Authn::UserNotFound => sys::authn_status_AUTH_USER_NOT_FOUND,
        Authn::GeneralError => sys::authn_status_AUTH_GENERAL_ERROR,
    }
}

fn authz_raw(a: Authz) -> sys::authz_status {
    match a {
        Authz::Denied => sys::authz_status_AUTHZ_DENIED,
        Authz::Granted => sys::authz_status_AUTHZ_GRANTED,
        Authz::Neutral => sys::authz_status_AUTHZ_NEUTRAL,
        Authz::GeneralError => sys::authz_status_AUTHZ_GENERAL_ERROR,
        Authz::DeniedNoUser => sys::authz_status_AUTHZ_DENIED_NO_USER,
    }
}

unsafe extern "C" fn check_access(r: *mut sys::request_rec) -> libc::c_int {
    guard(
        "access_checker",
        sys::HTTP_INTERNAL_SERVER_ERROR as libc::c_int,
        || {
            // SAFETY: Apache passes the live request.
            auth::check_access(unsafe { Request::from_raw(r) })
        },
    )
}

unsafe extern "C" fn check_password(
    r: *mut sys::request_rec,
    user: *const libc::c_char,
    password: *const libc::c_char,
) -> sys::authn_status {
    guard(
        "check_password",
        sys::authn_status_AUTH_GENERAL_ERROR,
        || {
            // SAFETY: Apache passes the live request and strings from its pool.
            let (r, user, password) =
                unsafe { (Request::from_raw(r), cstr_bytes(user), cstr_bytes(password)) };
            authn_raw(auth::check_password(r, user, password))
        },
    )
}

unsafe extern "C" fn get_realm_hash(
    r: *mut sys::request_rec,
    user: *const libc::c_char,
    realm: *const libc::c_char,
    rethash: *mut *mut libc::c_char,
) -> sys::authn_status {
    guard(
        "get_realm_hash",
        sys::authn_status_AUTH_GENERAL_ERROR,
        || {
            // SAFETY: Apache passes the live request and strings from its pool.
            let (req, user, realm) =
                unsafe { (Request::from_raw(r), cstr_bytes(user), cstr_bytes(realm)) };
            let (status, hash) = auth::realm_hash(req, user, realm);
            if let Some(h) = hash {
                // SAFETY: mod_auth_digest reads the hash during this request; the copy lives
                // in the request pool.
                unsafe { *rethash = crate::httpd::pstrdup(req.pool(), &h) };
            }
            authn_raw(status)
        },
    )
}

unsafe extern "C" fn check_authorization(
    r: *mut sys::request_rec,
    require_args: *const libc::c_char,
    _parsed: *const libc::c_void,
) -> sys::authz_status {
    guard(
        "check_authorization",
        sys::authz_status_AUTHZ_GENERAL_ERROR,
        || {
            // SAFETY: Apache passes the live request.
            let req = unsafe { Request::from_raw(r) };
            let mut groups = Vec::new();
            let mut rest = require_args;
            // SAFETY: `rest` walks the NUL-terminated Require arguments; ap_getword_conf
            // returns pool copies of each word (Apache's quoting rules) and advances it.
            unsafe {
                while !rest.is_null() && *rest != 0 {
                    let w = sys::ap_getword_conf(req.pool(), &mut rest);
                    let w = cstr_bytes(w);
                    if w.is_empty() {
                        break;
                    }
                    groups.push(w.to_vec());
                }
            }
            authz_raw(auth::check_groups(req, &groups))
        },
    )
}

static AUTHN: sys::authn_provider = sys::authn_provider {
    check_password: Some(check_password),
    get_realm_hash: Some(get_realm_hash),
};

static AUTHZ: sys::authz_provider = sys::authz_provider {
    check_authorization: Some(check_authorization),
    parse_require_line: None,
};

/// mod_wsgi's order: after mod_ssl (its client certificate facts), before mod_authz_host.
static AFTER_SSL: super::hooks::Names<2> =
    super::hooks::Names([c"mod_ssl.c".as_ptr(), std::ptr::null()]);
static BEFORE_HOST: super::hooks::Names<2> =
    super::hooks::Names([c"mod_authz_host.c".as_ptr(), std::ptr::null()]);

/// Registers the access hook and the two providers.
///
/// # Safety
/// Called from register_hooks with Apache's configuration pool.
pub unsafe fn register(p: *mut sys::apr_pool_t) {
    let per_conf = sys::AP_AUTH_INTERNAL_PER_CONF as libc::c_int;
    // SAFETY: the providers and name lists are statics, as Apache keeps pointers to them.
    unsafe {
        sys::ap_hook_check_access(
            Some(check_access),
            AFTER_SSL.0.as_ptr(),
            BEFORE_HOST.0.as_ptr(),
            sys::APR_HOOK_MIDDLE as libc::c_int,
            per_conf,
        );
        sys::ap_register_auth_provider(
            p,
            c"authn".as_ptr(),
            c"wsgi".as_ptr(),
            c"0".as_ptr(),
            (&raw const AUTHN).cast(),
            per_conf,
        );
        sys::ap_register_auth_provider(
            p,
            c"authz".as_ptr(),
            c"wsgi-group".as_ptr(),
            c"0".as_ptr(),
            (&raw const AUTHZ).cast(),
            per_conf,
        );
    }
}

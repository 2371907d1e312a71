//! Regex script aliases (`WSGIScriptAliasMatch`) matched with Apache's regex engine, which
//! compiled them at configuration time.

use super::request::Request;
use crate::sys;
use std::ffi::{CStr, CString};

/// Regex alias matching: the substituted target and where the match ended in the URI.
pub fn regex_substitute(
    r: Request<'_>,
    re: usize,
    target: &str,
    uri: &[u8],
) -> Option<(Vec<u8>, usize)> {
    let curi = CString::new(uri).ok()?;
    let ctarget = CString::new(target).ok()?;
    let mut pm = [sys::ap_regmatch_t {
        rm_so: -1,
        rm_eo: -1,
    }; 10];
    // SAFETY: `re` is a regex compiled at config time in the config pool (alive for this
    // generation); pmatch has room for 10 matches; ap_pregsub allocates in the request pool.
    unsafe {
        if sys::ap_regexec(
            re as *const sys::ap_regex_t,
            curi.as_ptr(),
            pm.len(),
            pm.as_mut_ptr(),
            0,
        ) != 0
        {
            return None;
        }
        let out = sys::ap_pregsub(
            r.pool(),
            ctarget.as_ptr(),
            curi.as_ptr(),
            pm.len(),
            pm.as_mut_ptr(),
        );
        if out.is_null() {
            return None;
        }
        Some((
            CStr::from_ptr(out).to_bytes().to_vec(),
            pm[0].rm_eo.max(0) as usize,
        ))
    }
}

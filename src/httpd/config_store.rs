//! Keeps the Rust configuration structs in Apache's config vectors: each one is boxed, its
//! pointer handed to Apache, and dropped by a cleanup on the pool it was created in (pools
//! die at every restart, so nothing outlives its generation).

use super::request::Request;
use crate::config::{DirConfig, Merge, ServerConfig};
use crate::sys;
use std::ffi::c_void;

/// This module's index in config vectors, as Apache assigned it at load time.
pub fn module_index() -> libc::c_int {
    // SAFETY: Apache writes module_index once while loading the module, before any hook or
    // directive runs; reading a plain int field of the exported static is sound.
    unsafe { crate::rwsgi_module.module_index }
}

fn module_ptr() -> *const sys::module {
    &raw const crate::rwsgi_module
}

unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) -> sys::apr_status_t {
    super::trampoline::guard("config cleanup", 0, || {
        // SAFETY: `data` came from Box::into_raw::<T> in `store` and this cleanup runs once.
        drop(unsafe { Box::from_raw(data.cast::<T>()) });
        0
    })
}

/// Moves `value` into a box owned by `pool` and returns the pointer Apache keeps.
///
/// # Safety
/// `pool` is a live APR pool.
pub unsafe fn store<T>(pool: *mut sys::apr_pool_t, value: T) -> *mut c_void {
    let ptr = Box::into_raw(Box::new(value)).cast::<c_void>();
    // SAFETY: the cleanup frees exactly this box when `pool` is cleared or destroyed.
    unsafe {
        sys::apr_pool_cleanup_register(
            pool,
            ptr,
            Some(drop_boxed::<T>),
            Some(sys::apr_pool_cleanup_null),
        )
    };
    ptr
}

pub(crate) unsafe extern "C" fn create_server_config(
    p: *mut sys::apr_pool_t,
    _s: *mut sys::server_rec,
) -> *mut c_void {
    // SAFETY: Apache passes its live config pool.
    super::trampoline::guard("create_server_config", std::ptr::null_mut(), || unsafe {
        store(p, ServerConfig::default())
    })
}

pub(crate) unsafe extern "C" fn merge_server_config(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    super::trampoline::guard("merge_server_config", std::ptr::null_mut(), || {
        // SAFETY: both were created by create_server_config and live in pools at least as
        // long as `p`.
        let (base, add) = unsafe { (&*base.cast::<ServerConfig>(), &*add.cast::<ServerConfig>()) };
        // SAFETY: `p` is the live config pool.
        unsafe { store(p, base.merge(add)) }
    })
}

pub(crate) unsafe extern "C" fn create_dir_config(
    p: *mut sys::apr_pool_t,
    _dir: *mut libc::c_char,
) -> *mut c_void {
    // SAFETY: Apache passes its live config pool.
    super::trampoline::guard("create_dir_config", std::ptr::null_mut(), || unsafe {
        store(p, DirConfig::default())
    })
}

pub(crate) unsafe extern "C" fn merge_dir_config(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    super::trampoline::guard("merge_dir_config", std::ptr::null_mut(), || {
        // SAFETY: both were created by create_dir_config/merge_dir_config.
        let (base, add) = unsafe { (&*base.cast::<DirConfig>(), &*add.cast::<DirConfig>()) };
        // SAFETY: `p` is the live pool the merged config must live in.
        unsafe { store(p, base.merge(add)) }
    })
}

/// The server configuration of the request's (virtual) server.
pub fn request_server_config<'r>(r: &Request<'r>) -> &'r ServerConfig {
    // SAFETY: a live request's server_rec belongs to the current generation.
    unsafe { server_config(r.server()) }
}

/// The merged per-directory configuration of a request.
pub fn request_dir_config<'r>(r: &Request<'r>) -> &'r DirConfig {
    // SAFETY: the request is live (Request's construction contract).
    unsafe { dir_config(r.as_ptr()) }
}

/// The alias that matched this request in translate_name, if any.
pub fn matched_alias<'r>(r: &Request<'r>) -> Option<&'r crate::config::ScriptAlias> {
    // SAFETY: the request is live.
    unsafe { request_alias(r.as_ptr()) }
}

/// Remembers the alias that matched this request (it lives in the server configuration).
pub fn remember_alias(r: &Request<'_>, alias: &crate::config::ScriptAlias) {
    // SAFETY: the request is live; aliases live in the server config of this generation.
    unsafe { set_request_alias(r.as_ptr(), alias) }
}

/// The server configuration of `s`.
///
/// # Safety
/// `s` is a live server_rec of this configuration generation.
pub unsafe fn server_config<'a>(s: *const sys::server_rec) -> &'a ServerConfig {
    // SAFETY: the slot was filled by create/merge_server_config for every server.
    unsafe {
        &*sys::rwsgi_get_module_config((*s).module_config, module_ptr()).cast::<ServerConfig>()
    }
}

/// Mutable server configuration while directives are being read.
///
/// # Safety
/// Only during configuration reading (single-threaded); `s` is live.
pub unsafe fn server_config_mut<'a>(s: *const sys::server_rec) -> &'a mut ServerConfig {
    // SAFETY: as above, and config reading is single-threaded.
    unsafe {
        &mut *sys::rwsgi_get_module_config((*s).module_config, module_ptr()).cast::<ServerConfig>()
    }
}

/// The merged per-directory configuration of a request.
///
/// # Safety
/// `r` is the live request.
pub unsafe fn dir_config<'a>(r: *const sys::request_rec) -> &'a DirConfig {
    // SAFETY: Apache merged a DirConfig for every request's per_dir_config.
    unsafe { &*sys::rwsgi_get_module_config((*r).per_dir_config, module_ptr()).cast::<DirConfig>() }
}

/// The alias that matched this request in translate_name, if any.
///
/// # Safety
/// `r` is the live request.
pub unsafe fn request_alias<'a>(
    r: *const sys::request_rec,
) -> Option<&'a crate::config::ScriptAlias> {
    // SAFETY: the slot is null or was set by `set_request_alias` to an alias living in the
    // server config, which outlives every request.
    unsafe {
        let p = sys::rwsgi_get_module_config((*r).request_config, module_ptr());
        p.cast::<crate::config::ScriptAlias>().as_ref()
    }
}

/// Remembers the alias that matched this request.
///
/// # Safety
/// `r` is live; `alias` lives in the server config of this generation.
pub unsafe fn set_request_alias(r: *mut sys::request_rec, alias: &crate::config::ScriptAlias) {
    // SAFETY: request_config has a slot per module.
    unsafe {
        sys::rwsgi_set_module_config(
            (*r).request_config,
            module_ptr(),
            (alias as *const crate::config::ScriptAlias)
                .cast_mut()
                .cast(),
        )
    }
}

//! Borrowed views of APR tables (headers, notes, subprocess_env).

use crate::sys;
use std::marker::PhantomData;

/// A borrowed `apr_table_t`, valid while its request is.
#[derive(Clone, Copy)]
pub struct Table<'r> {
    t: *mut sys::apr_table_t,
    pool: *mut sys::apr_pool_t,
    _life: PhantomData<&'r ()>,
}

impl<'r> Table<'r> {
    /// # Safety
    /// `t` and `pool` are live for `'r`; values added are copied into `pool`.
    pub unsafe fn from_raw(t: *mut sys::apr_table_t, pool: *mut sys::apr_pool_t) -> Self {
        Table {
            t,
            pool,
            _life: PhantomData,
        }
    }

    /// Entries in insertion order (duplicates kept).
    pub fn iter(&self) -> impl Iterator<Item = (&'r [u8], &'r [u8])> + '_ {
        // SAFETY: apr_table_elts exposes the table's array; entries are apr_table_entry_t.
        let arr = unsafe { &*sys::apr_table_elts(self.t) };
        let entries = arr.elts.cast::<sys::apr_table_entry_t>();
        (0..arr.nelts.max(0) as usize).filter_map(move |i| {
            // SAFETY: i < nelts; keys and values are NUL-terminated pool strings (a null
            // key marks a deleted entry).
            unsafe {
                let e = &*entries.add(i);
                if e.key.is_null() {
                    None
                } else {
                    Some((super::cstr_bytes(e.key), super::cstr_bytes(e.val)))
                }
            }
        })
    }

    /// The first value for `key` (case-insensitive).
    pub fn get(&self, key: &std::ffi::CStr) -> Option<&'r [u8]> {
        // SAFETY: apr_table_get returns a pool string or null.
        unsafe { super::opt_cstr_bytes(sys::apr_table_get(self.t, key.as_ptr())) }
    }

    /// Looks a key given as bytes up.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&'r [u8]> {
        let k = std::ffi::CString::new(key).ok()?;
        self.get(&k)
    }

    /// Adds an entry (copies key and value into the pool; duplicates are kept).
    pub fn add(&self, key: &[u8], value: &[u8]) {
        // SAFETY: both strings are copied into the request pool, then handed over with addn.
        unsafe {
            sys::apr_table_addn(
                self.t,
                super::pstrdup(self.pool, key),
                super::pstrdup(self.pool, value),
            )
        }
    }

    /// Sets an entry, replacing any existing ones.
    pub fn set(&self, key: &[u8], value: &[u8]) {
        // SAFETY: as for `add`.
        unsafe {
            sys::apr_table_setn(
                self.t,
                super::pstrdup(self.pool, key),
                super::pstrdup(self.pool, value),
            )
        }
    }
}

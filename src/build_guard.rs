//! Refuses to build without `--cfg pyo3_disable_reference_pool`.
//!
//! Without that cfg PyO3 queues a reference dropped by a thread that it does not count as
//! attached and releases it on the next thread that attaches, whatever interpreter that
//! thread is in: silent corruption with sub-interpreters. With it, such a drop aborts. The
//! cfg comes from .cargo/config.toml, which a RUSTFLAGS variable replaces and a build started
//! in another directory never reads, hence this check. It is a file of its own so a test can
//! compile it alone.

#[cfg(not(pyo3_disable_reference_pool))]
compile_error!(
    "mod_rwsgi must be built with `--cfg pyo3_disable_reference_pool` for every crate: build \
     from the repository directory (its .cargo/config.toml sets it), or, when RUSTFLAGS is set, \
     add `--cfg pyo3_disable_reference_pool` to RUSTFLAGS"
);

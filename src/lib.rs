//! mod_rwsgi: an Apache httpd module hosting Python WSGI applications, a drop-in
//! replacement for mod_wsgi. `rwsgi_module` is what `LoadModule rwsgi_module …` finds.

mod build_guard;
pub mod config;
pub mod daemon;
#[cfg(test)]
mod docs_check;
pub mod handler;
pub mod httpd;
#[cfg(test)]
mod layering;
pub mod log_ids;
pub mod module;
pub mod python;
pub mod stats;
pub mod sys;
pub mod util;
pub mod wsgi;

/// The module record Apache loads. Apache writes `module_index`, `next` and
/// `dynamic_load_handle` into it; nothing else ever mutates it.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static mut rwsgi_module: sys::module = sys::module {
    version: sys::RWSGI_MODULE_MAGIC_NUMBER_MAJOR,
    minor_version: sys::RWSGI_MODULE_MAGIC_NUMBER_MINOR,
    module_index: -1,
    name: c"mod_rwsgi.c".as_ptr(),
    dynamic_load_handle: std::ptr::null_mut(),
    next: std::ptr::null_mut(),
    magic: sys::RWSGI_MODULE_MAGIC_COOKIE,
    rewrite_args: None,
    create_dir_config: Some(httpd::config_store::create_dir_config),
    merge_dir_config: Some(httpd::config_store::merge_dir_config),
    create_server_config: Some(httpd::config_store::create_server_config),
    merge_server_config: Some(httpd::config_store::merge_server_config),
    cmds: &raw const httpd::directive::COMMANDS as *const sys::command_rec,
    register_hooks: Some(module::hooks::register_hooks),
    flags: 0,
};

//! mod_rwsgi refuses to run beside mod_wsgi: both host the process's one Python and claim the
//! same `WSGI*` directives, so a config loading both fails at check time with the cure.
mod common;
use common::*;

const REFUSAL: &str =
    "RWSGI0003: mod_wsgi (wsgi_module) and mod_rwsgi (rwsgi_module) are both loaded";
const CURE: &str = "a2dismod wsgi";

fn load_reference() -> String {
    let reference = Module::reference().expect("mod_wsgi is installed (.ci/install-deps)");
    format!("LoadModule wsgi_module {}", reference.path.display())
}

#[test]
fn config_test_refuses_mod_wsgi_loaded_too() {
    let t = server("conflict_t").conf(&load_reference()).config_test();
    assert!(!t.ok, "apache2 -t accepted both modules:\n{}", t.output);
    assert!(t.output.contains(REFUSAL), "{}", t.output);
    assert!(t.output.contains(CURE), "{}", t.output);
}

#[test]
fn start_refuses_mod_wsgi_loaded_first() {
    // mod_wsgi's LoadModule before ours, the order a2enmod gives (wsgi.load sorts before
    // rwsgi.load) when both are enabled.
    let ours = module();
    let reference = Module::reference().expect("mod_wsgi is installed (.ci/install-deps)");
    let failure = server("conflict_first")
        .module(reference)
        .conf(&format!("LoadModule {} {}", ours.sym, ours.path.display()))
        .start_attempt()
        .err()
        .expect("apache2 -k start accepted both modules");
    assert_ne!(failure.code, Some(0));
    assert!(failure.output.contains(REFUSAL), "{}", failure.output);
    assert!(failure.output.contains(CURE), "{}", failure.output);
}

#[test]
fn start_refuses_mod_wsgi_loaded_after() {
    let failure = server("conflict_after")
        .conf(&load_reference())
        .start_attempt()
        .err()
        .expect("apache2 -k start accepted both modules");
    assert!(failure.output.contains(REFUSAL), "{}", failure.output);
}

#[test]
fn only_rwsgi_loaded_starts_and_serves() {
    let srv = server("conflict_alone")
        .fragment("apps")
        .start_attempt()
        .unwrap_or_else(|f| panic!("refused without mod_wsgi:\n{}", f.output));
    let r = srv.get("/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"Hello World!\n");
    assert!(!srv.error_log_text().contains("RWSGI0003"));
}

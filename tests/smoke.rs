//! Harness self-check: a hello app is served, and the harness sees the error log.
mod common;
use common::*;

#[test]
fn hello_is_served() {
    let srv = server("smoke").fragment("apps").start();
    let r = srv.get("/hello");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"Hello World!\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert!(!srv.child_pids().is_empty(), "no apache children found");
}

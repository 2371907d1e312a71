//! A stop of the event MPM child while request threads are blocked flushing responses to
//! clients that do not read (the GIL released around the pass), with the clients resetting
//! their connections at nearly the same moment: the stop closes the workers' sockets under
//! them, interrupts the requests, joins the threads and finalises Python. The child must
//! exit cleanly and promptly: never by a signal (AH00052 "exit signal Segmentation fault"),
//! never hung until Apache's SIGKILL (a `SystemExit` raised into a request inside
//! importlib left the import lock held by a finished thread).
mod common;
use common::*;
use std::time::Duration;

/// Stops per run; each resets its clients at another moment of the child's stop.
const ITERATIONS: usize = 12;

/// Connections per stop, each with its own worker blocked in a flush.
const CLIENTS: usize = 7;

/// Starts one process holding `n` connections that each sent a request for `path` and never
/// read; returns once all requests went out. Killing it resets them all at once.
fn stuck_clients(port: u16, path: &str, n: usize) -> std::process::Child {
    let script = format!(
        "import socket, time\n\
         socks = []\n\
         for _ in range({n}):\n\
         \x20   s = socket.socket()\n\
         \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)\n\
         \x20   s.connect(('127.0.0.1', {port}))\n\
         \x20   s.sendall(b'GET {path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
         \x20   socks.append(s)\n\
         print('sent', flush=True)\n\
         time.sleep(8)\n"
    );
    python_client(&script, "sent")
}

#[test]
fn stop_while_writers_are_blocked_and_their_clients_reset() {
    let mut crashed = Vec::new();
    for i in 0..ITERATIONS {
        // The list path (one flushed pass with the end) and write() (a flush per chunk).
        let path = if i % 2 == 0 {
            "/plain/big?kib=30"
        } else {
            "/plain/write?kib=30"
        };
        let mut s = server("stop_blocked_writer")
            .single_process()
            .fragment("output_filters")
            .conf("SendBufferSize 4096")
            .allow_log("exit signal")
            .allow_log("AH00046")
            // write() raising OSError for the reset client, uncaught by the app.
            .allow_log("failed to write response data")
            .allow_log("Traceback (most recent call last)")
            .allow_log("output_filters.wsgi\", line")
            .allow_log("write(b'w' * 1024)")
            .start();
        let mut stuck = stuck_clients(s.port, path, CLIENTS);
        // Let the workers reach the flush that blocks.
        std::thread::sleep(Duration::from_millis(150));
        // The clients reset first; the stop (SIGTERM to the parent, as `apache2 -k stop`
        // sends, without that command's own start-up time) then reaches the child while the
        // request threads are handling the reset: logging the client-gone error imports
        // `traceback` in Python.
        let _ = stuck.kill();
        std::thread::sleep(Duration::from_micros(
            [500, 1000, 2000, 3000, 5000, 8000][i / 2 % 6],
        ));
        // SAFETY: signals the Apache parent this test started.
        unsafe { libc::kill(s.parent_pid() as libc::pid_t, libc::SIGTERM) };
        let _ = stuck.wait();
        s.stop();
        // A child killed by a signal, or one that hung until Apache's SIGKILL.
        let mut died: Vec<_> = s
            .unexpected_log_lines()
            .into_iter()
            .filter(|l| l.contains("exit signal") || l.contains("AH00046"))
            .collect();
        // Taken, so the harness leaves the verdict to the count below.
        if let Some(t) = s.stop_took.take().filter(|t| *t > Duration::from_secs(4)) {
            died.push(format!("the stop took {t:?}"));
        }
        if !died.is_empty() {
            crashed.push(format!("stop {i} ({path}): {}", died.join("; ")));
        }
    }
    assert!(
        crashed.is_empty(),
        "{} of {ITERATIONS} stops killed or hung the child:\n{}",
        crashed.len(),
        crashed.join("\n")
    );
}

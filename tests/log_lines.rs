//! Output without a newline to wsgi.errors, sys.stdout and sys.stderr (print(end=''), '\r'
//! progress bars) is not held without bound: once a partial line reaches 4 KiB it goes to the
//! error log in 4 KiB pieces while the request still runs.
mod common;
use common::*;
use std::time::{Duration, Instant};

fn partial_lines_are_logged_in_bounded_pieces_during_the_request(mode: Mode) {
    let mut srv = server("log_partial_lines")
        .mode(mode)
        .conf("WSGIScriptAlias /partial \"@APPS@/partial_log.wsgi\"")
        .start();
    for stream in ["errors", "stdout", "stderr"] {
        let t = token(stream);
        let mut c = srv.connect();
        c.send(
            format!(
                "GET /partial?stream={stream}&kib=64&token={t} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let port = c.local_port();
        srv.allow_log(&Server::client_tag(port));
        // 64 KiB without a newline: at least 15 full pieces reach the log before the app
        // answers (it waits for the go file).
        let deadline = Instant::now() + Duration::from_secs(5);
        let pieces = loop {
            let pieces: Vec<String> = srv
                .log_lines_of(port)
                .into_iter()
                .filter(|l| l.contains("progress"))
                .collect();
            if pieces.len() >= 15 || Instant::now() > deadline {
                break pieces;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            pieces.len() >= 15,
            "{stream}: {} log entries while the request runs; log tail:\n{}",
            pieces.len(),
            tail(&srv.error_log_text(), 10)
        );
        for p in &pieces {
            let text = &p[p.find("progress").unwrap()..];
            assert!(
                p.len() < 4096 + 300 && text.len() > 3000,
                "{stream}: an entry of {} bytes: {p:.200}",
                p.len()
            );
        }
        std::fs::write(srv.data.join(format!("go-{t}")), "").unwrap();
        c.set_timeout(Duration::from_secs(20));
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{stream}: {}", r.describe());
    }
}

both_modes!(partial_lines_are_logged_in_bounded_pieces_during_the_request,);

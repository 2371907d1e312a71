//! wsgi.errors, print() (sys.stdout) and sys.stderr reach the error log of the request's vhost,
//! tagged with the client address; each test in embedded and in daemon mode (where the vhosts
//! inherit the main server's `WSGIProcessGroup`; `tests/common/modes.rs`).
mod common;
use common::*;

fn vhosts(mode: Mode) -> Server {
    server("logging").mode(mode)
        .conf(
            "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName main.test\n  WSGIScriptAlias /errors \"@APPS@/errors.wsgi\"\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:@PORT@>\n  ServerName vhost.test\n  ErrorLog \"@ROOT@/logs/vhost_error.log\"\n  \
             WSGIScriptAlias /errors \"@APPS@/errors.wsgi\"\n</VirtualHost>",
        )
        .start()
}

fn hit(s: &Server, host: &str, tok: &str) -> Response {
    let req =
        format!("GET /errors?token={tok} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let r = s.raw(req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, b"logged");
    r
}

const STREAMS: &[&str] = &[
    "wsgi.errors line",
    "writelines one",
    "writelines two",
    "stdout line",
    "stderr line",
];

fn app_output_reaches_the_vhost_error_log_tagged_with_the_request(mode: Mode) {
    let mut s = vhosts(mode);
    let tok = token("vh");
    let r = hit(&s, "vhost.test", &tok);
    s.allow_log(&Server::client_tag(r.client_port));
    // In both modes (daemon: as mod_wsgi 4.9.4) a request's lines go to the error log of the
    // virtual host that served it, even when the daemon group is defined in the main server.
    let (log, other) = ("vhost_error.log", "error.log");
    for what in STREAMS {
        let needle = format!("{what} {tok}");
        assert!(
            s.wait_log_file(log, &needle, std::time::Duration::from_secs(5)),
            "{needle:?} not in {log}:\n{}",
            tail(&s.log_text(log), 30)
        );
        let line = s
            .log_text(log)
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap()
            .to_string();
        assert!(
            line.contains(&Server::client_tag(r.client_port)),
            "not tagged with the request: {line}"
        );
    }
    assert!(
        !s.log_text(other).contains(&tok),
        "lines leaked into {other}"
    );
}

fn app_output_of_main_vhost_goes_to_main_log(mode: Mode) {
    let mut s = vhosts(mode);
    let tok = token("main");
    let r = hit(&s, "main.test", &tok);
    for what in STREAMS {
        s.expect_error(r.client_port, &format!("{what} {tok}"));
    }
    assert!(
        !s.log_text("vhost_error.log").contains(&tok),
        "main-vhost lines in the vhost log"
    );
}

fn each_line_is_a_log_entry(mode: Mode) {
    // Multi-line writes become one log entry per line; a partial line is held until its newline
    // (or the end of the request).
    let mut s = vhosts(mode);
    let tok = token("lines");
    let r = hit(&s, "main.test", &tok);
    let lines = s.expect_error(r.client_port, &format!("writelines two {tok}"));
    let n = lines.iter().filter(|l| l.contains(&tok)).count();
    assert_eq!(n, STREAMS.len(), "{}", lines.join("\n"));
}

both_modes!(
    app_output_reaches_the_vhost_error_log_tagged_with_the_request,
    app_output_of_main_vhost_goes_to_main_log,
    each_line_is_a_log_entry,
);

//! The `mod_wsgi` and `apache` Python modules: importable in sub-interpreters and in
//! `%{GLOBAL}`, attributes matching the environ and the MPM, LogHandler lines at the mapped
//! Apache level in the request's vhost log, events in order with mod_wsgi's arguments,
//! per-request `request_data()`, `active_requests`, metrics that grow with real work, and
//! `subscribe_shutdown` callbacks run at `apache2 -k stop`; in embedded and in daemon mode
//! (`tests/common/modes.rs`).
mod common;
use common::*;
use std::time::Duration;

fn modules_server(b: Builder) -> Server {
    b.conf("WSGIScriptAlias /sub \"@APPS@/modules.wsgi\"")
        .conf("WSGIScriptAlias /global \"@APPS@/modules.wsgi\" application-group=%{GLOBAL}")
        .start()
}

fn get_json(s: &Server, path: &str) -> Json {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.describe());
    r.json()
}

/// `threads` and `processes`: the Apache MPM's shape, which is the app's in embedded mode; a
/// daemon app sees its group's (the harness's one process of 8 threads).
fn check_info(s: &Server, prefix: &str, threads: f64, processes: f64, mpm: &str) {
    let j = get_json(s, &format!("{prefix}/info"));
    let nums = |k: &str| -> Vec<f64> { j.at(k).arr().iter().map(Json::num).collect() };
    assert_eq!(nums("version"), vec![4.0, 9.0, 4.0]);
    assert_eq!(nums("environ_version"), nums("version"));
    assert_eq!(nums("mod_rwsgi_version").len(), 3);
    assert_eq!(j.s("process_group"), s.mode.process_group());
    let group = j.s("environ_group");
    assert_eq!(j.s("application_group"), group, "{prefix}");
    assert_eq!(j.s("group_at_import"), group, "{prefix}");
    if prefix == "/global" {
        assert_eq!(group, "");
    } else {
        assert!(group.ends_with("|/sub"), "{group}");
    }
    let (app_threads, app_processes) = match s.mode {
        Mode::Embedded => (threads, processes),
        Mode::Daemon => (8.0, 1.0),
    };
    assert_eq!(j.n("threads_per_process"), app_threads, "{prefix}");
    assert_eq!(j.n("maximum_processes"), app_processes, "{prefix}");
    assert_eq!(j.n("apache_threads_per_process"), threads);
    assert_eq!(j.n("apache_maximum_processes"), processes);
    assert!(j.b("file_wrapper_same"));
    assert!(j.b("log_handler_is_handler"));
    assert!(j.b("request_data_same"));
    assert!(j.b("active_has_current"));
    assert!(j.b("active_is_data"));
    assert_eq!(j.at("functions").arr().len(), 6);
    assert_eq!(nums("apache_version"), nums("environ_apache_version"));
    assert_eq!(nums("apache_version")[0], 2.0);
    assert_eq!(j.s("mpm_name"), mpm);
    assert!(
        j.s("description").starts_with("Apache/2.4"),
        "{}",
        j.s("description")
    );
    assert!(!j.s("build_date").is_empty());
    // request_data() is fresh for every request.
    let again = get_json(s, &format!("{prefix}/info"));
    assert_eq!(
        again.at("request_data_keys").arr().len(),
        0,
        "request data leaked from an earlier request"
    );
    assert_ne!(again.s("request_id"), j.s("request_id"));
}

fn modules_import_in_sub_interpreter_and_global(mode: Mode) {
    let s = modules_server(server("modules_info").mode(mode));
    for prefix in ["/sub", "/global"] {
        check_info(&s, prefix, 8.0, 2.0, "event");
    }
}

fn modules_report_prefork_shape(mode: Mode) {
    let s = modules_server(server("modules_prefork").mode(mode).mpm(Mpm::Prefork));
    check_info(&s, "/sub", 1.0, 2.0, "prefork");
    check_info(&s, "/global", 1.0, 2.0, "prefork");
}

fn log_handler_writes_mapped_levels_to_the_vhost_log(mode: Mode) {
    // The first vhost is the default for the address; the second has its own ErrorLog.
    let mut s = server("modules_log")
        .mode(mode)
        .conf(
            "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName main.test\n  \
             WSGIScriptAlias /sub \"@APPS@/modules.wsgi\"\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:@PORT@>\n  ServerName vhost.test\n  \
             ErrorLog \"@ROOT@/logs/vhost_error.log\"\n  \
             WSGIScriptAlias /sub \"@APPS@/modules.wsgi\"\n</VirtualHost>",
        )
        .start();
    let tok = token("lh");
    s.allow_log(&tok);
    let req = format!(
        "GET /sub/log?token={tok} HTTP/1.1\r\nHost: vhost.test\r\nConnection: close\r\n\r\n"
    );
    let r = s.raw(req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.describe());
    // In both modes (daemon: as mod_wsgi 4.9.4) a request's lines go to the error log of the
    // virtual host that served it, even when the daemon group is defined in the main server.
    let (log, other) = ("vhost_error.log", "error.log");
    let needle = format!("CRITICAL critical line {tok}");
    assert!(
        s.wait_log_file(log, &needle, Duration::from_secs(5)),
        "{}",
        tail(&s.log_text(log), 30)
    );
    let text = s.log_text(log);
    let line = |what: &str| -> String {
        text.lines()
            .find(|l| l.contains(&format!("{what} line {tok}")))
            .unwrap_or_else(|| panic!("no {what} line:\n{text}"))
            .to_string()
    };
    assert!(
        line("warning").contains("[rwsgi:warn]"),
        "{}",
        line("warning")
    );
    assert!(line("error").contains("[rwsgi:error]"), "{}", line("error"));
    assert!(
        line("critical").contains("[rwsgi:crit]"),
        "{}",
        line("critical")
    );
    assert!(line("info").contains("[rwsgi:info]"), "{}", line("info"));
    assert!(
        line("warning").contains(&Server::client_tag(r.client_port)),
        "not tagged with the request"
    );
    assert!(
        !text.contains(&format!("debug line {tok}")),
        "debug passed LogLevel info"
    );
    assert!(
        !s.log_text(other).contains(&tok),
        "lines leaked into {other}"
    );
}

fn log_handler_debug_shows_with_loglevel_debug(mode: Mode) {
    let mut s = modules_server(
        server("modules_log_debug")
            .mode(mode)
            .log_level("info rwsgi:debug"),
    );
    let tok = token("lhd");
    s.allow_log(&tok);
    let r = s.get(&format!("/global/log?token={tok}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    s.assert_log(&format!("DEBUG debug line {tok}"));
    let text = s.error_log_text();
    let l = text.lines().find(|l| l.contains("debug line")).unwrap();
    assert!(l.contains("[rwsgi:debug]"), "{l}");
}

fn events_of<'a>(all: &'a [Json], request_id: &str) -> Vec<&'a Json> {
    all.iter()
        .filter(|e| e.opt_s("request_id") == Some(request_id))
        .collect()
}

fn names(evs: &[&Json]) -> Vec<String> {
    evs.iter().map(|e| e.s("name").to_string()).collect()
}

fn keys(e: &Json) -> Vec<String> {
    e.at("keys")
        .arr()
        .iter()
        .map(|k| k.str().to_string())
        .collect()
}

fn check_events(prefix: &str, mode: Mode) {
    let mut s = modules_server(server("modules_events").mode(mode).single_process());
    let hello = s.get(&format!("{prefix}/ev/hello"));
    assert_eq!(hello.status, 200, "{}", hello.describe());
    let ok = hello.json();
    let rid = ok.s("request_id").to_string();
    let r = s.get(&format!("{prefix}/ev/raise"));
    assert_eq!(r.status, 500);
    s.expect_error(r.client_port, "app failure on purpose");
    let bad = s.get(&format!("{prefix}/ev/badcb"));
    assert_eq!(bad.status, 200, "a failing callback broke the request");
    s.expect_error(bad.client_port, "RWSGI0301");
    s.allow_log("callback failure on purpose");
    // A daemon records request_finished once the request has ended, which may be after the
    // Apache child has relayed the whole response: wait (bounded) for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let doc = loop {
        let doc = get_json(&s, &format!("{prefix}/events"));
        let done = events_of(doc.at("events").arr(), &rid)
            .iter()
            .any(|e| e.s("name") == "request_finished");
        if done || std::time::Instant::now() > deadline {
            break doc;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let all = doc.at("events").arr();

    let evs = events_of(all, &rid);
    assert_eq!(
        names(&evs),
        ["request_started", "response_started", "request_finished"],
        "{prefix}"
    );
    let started = evs[0];
    for k in [
        "application_object",
        "application_start",
        "request_data",
        "request_environ",
        "request_id",
        "request_start",
        "thread_id",
    ] {
        assert!(
            keys(started).iter().any(|x| x == k),
            "request_started lacks {k}"
        );
    }
    assert!(started.b("app_is_callable"));
    assert_eq!(started.s("path"), "/ev/hello");
    assert!(started.n("application_start") >= started.n("request_start"));
    assert!(started.n("request_start") > 1.6e9);
    assert_eq!(evs[1].s("status"), "200 OK");
    for k in [
        "exception_info",
        "response_headers",
        "response_status",
        "request_data",
    ] {
        assert!(
            keys(evs[1]).iter().any(|x| x == k),
            "response_started lacks {k}"
        );
    }
    let finished = evs[2];
    for k in [
        "application_finish",
        "application_time",
        "cpu_system_time",
        "cpu_user_time",
        "input_length",
        "input_reads",
        "input_time",
        "output_length",
        "output_time",
        "output_writes",
        "request_data",
        "request_environ",
    ] {
        assert!(
            keys(finished).iter().any(|x| x == k),
            "request_finished lacks {k}"
        );
    }
    assert!(finished.n("application_time") >= 0.0);
    assert_eq!(finished.n("output_length"), hello.body.len() as f64);
    assert!(finished.n("output_writes") >= 1.0);
    assert_eq!(finished.n("input_length"), 0.0, "a GET reads no body");
    // One request_data dict through the request: the one request_data() returned.
    assert!(finished.b("seen_started"));
    for e in &evs {
        assert_eq!(e.n("data_id"), ok.n("data_id"), "{}", e.s("name"));
    }

    let raised: Vec<&Json> = all
        .iter()
        .filter(|e| e.s("path") == "/ev/raise" || e.s("name") == "request_exception")
        .collect();
    assert_eq!(
        names(&raised),
        ["request_started", "request_exception", "request_finished"],
        "{prefix}"
    );
    assert_eq!(raised[1].s("exc_type"), "RuntimeError");
    assert!(keys(raised[1]).iter().any(|x| x == "exception_info"));
}

fn events_fire_in_order_with_mod_wsgi_arguments_in_sub_interpreter(mode: Mode) {
    check_events("/sub", mode);
}

fn events_fire_in_order_with_mod_wsgi_arguments_in_global(mode: Mode) {
    check_events("/global", mode);
}

fn process_metrics_counters_and_cpu_grow_after_requests(mode: Mode) {
    let s = modules_server(
        server("modules_metrics")
            .mode(mode)
            .single_process()
            .conf("WSGIServerMetrics On"),
    );
    let first_rm = get_json(&s, "/sub/rmetrics");
    assert!(
        first_rm.keys().is_empty(),
        "first request_metrics() starts sampling"
    );
    let m1 = get_json(&s, "/sub/metrics");
    for k in [
        "pid",
        "request_count",
        "request_busy_time",
        "memory_rss",
        "memory_max_rss",
        "cpu_user_time",
        "cpu_system_time",
        "restart_time",
        "current_time",
        "running_time",
        "request_threads",
        "active_requests",
        "threads",
    ] {
        assert!(m1.get(k).is_some(), "process_metrics() lacks {k}");
    }
    // 4.9.4's 13 keys, and 6.x's cpu_time (tests/wsgi6.rs checks its value).
    let own = usize::from(!s.module.is_reference());
    assert_eq!(m1.keys().len(), 13 + own, "{:?}", m1.keys());
    let pid = m1.n("pid") as u32;
    assert!(s.child_pids().contains(&pid));
    assert!(m1.n("memory_rss") > 1e6);
    assert!(m1.n("memory_max_rss") >= m1.n("memory_rss") * 0.5);
    assert!(
        m1.n("active_requests") >= 1.0,
        "the asking request is in flight"
    );
    assert!(m1.n("current_time") >= m1.n("restart_time"));
    let n = 20;
    for _ in 0..n {
        let b = get_json(&s, "/global/burn");
        assert_eq!(b.n("pid") as u32, pid);
    }
    // A daemon records a request's end just after the client has the response: ask again
    // (bounded) until the last burn is counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let m2 = loop {
        let m = get_json(&s, "/sub/metrics");
        let begun: f64 = m
            .at("threads")
            .arr()
            .iter()
            .map(|t| t.n("request_count"))
            .sum();
        if begun == m.n("request_count") + 1.0 || std::time::Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(m2.n("pid") as u32, pid);
    assert!(
        m2.n("request_count") >= m1.n("request_count") + n as f64,
        "request_count {} -> {}",
        m1.n("request_count"),
        m2.n("request_count")
    );
    let cpu = |m: &Json| m.n("cpu_user_time") + m.n("cpu_system_time");
    assert!(cpu(&m2) > cpu(&m1), "cpu {} -> {}", cpu(&m1), cpu(&m2));
    assert!(m2.n("request_busy_time") > m1.n("request_busy_time"));
    assert!(m2.n("current_time") > m1.n("current_time"));
    let threads = m2.at("threads").arr();
    assert_eq!(threads.len() as f64, m2.n("request_threads"));
    let served: f64 = threads.iter().map(|t| t.n("request_count")).sum();
    // Every begun request, including the one asking (not yet counted as completed).
    assert_eq!(served, m2.n("request_count") + 1.0);
    for t in threads {
        assert!(t.n("thread_id") >= 1.0);
    }
    let rm = get_json(&s, "/sub/rmetrics");
    assert!(rm.n("request_count") >= n as f64, "{:?}", rm.keys());
    assert!(rm.n("sample_period") > 0.0);
    assert!(rm.n("application_time") > 0.0);
    assert_eq!(rm.at("application_time_buckets").arr().len(), 16);
    assert_eq!(rm.n("request_threads_maximum"), 8.0);
    let sm = get_json(&s, "/sub/smetrics");
    if mode == Mode::Daemon {
        // As mod_wsgi 4.9.4: a daemon reads the scoreboard only with its group's
        // `server-metrics=On` (tests/daemon_options.rs), not with WSGIServerMetrics.
        assert!(sm.is_null(), "{sm}");
        return;
    }
    let pids = server_metrics_pids(
        &sm,
        &[
            "current_time",
            "processes",
            "restart_time",
            "running_generation",
            "running_time",
            "server_limit",
            "thread_limit",
        ],
    );
    assert!(pids.contains(&pid));
}

/// As under mod_wsgi 4.9.4, embedded code gets the scoreboard whatever WSGIServerMetrics says.
/// Embedded only: a daemon needs its group's server-metrics=On (tests/daemon_options.rs).
#[test]
fn server_metrics_answer_in_embedded_mode_without_the_directive() {
    let s = modules_server(server("modules_smetrics_default"));
    let r = s.get("/sub/smetrics");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.text().contains("\"processes\""), "{}", r.text());
}

fn subscribe_shutdown_runs_at_stop_in_every_interpreter(mode: Mode) {
    let mut s = modules_server(server("modules_shutdown").mode(mode).single_process());
    let sub = get_json(&s, "/sub/shutdown");
    let global = get_json(&s, "/global/shutdown");
    let pid = sub.n("pid") as u32;
    assert_eq!(global.n("pid") as u32, pid);
    let safe = |g: &str| -> String {
        let g = if g.is_empty() { "GLOBAL" } else { g };
        g.chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .collect()
    };
    let names = [
        format!("shutdown-{}-{pid}", safe(sub.s("group"))),
        format!("shutdown-{}-{pid}", safe(global.s("group"))),
    ];
    for n in &names {
        assert!(!s.data.join(n).exists(), "{n} written before stop");
    }
    s.stop();
    for n in &names {
        let text = s
            .wait_data_file(n, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{n} not written at stop"));
        let j = Json::parse(&text).unwrap();
        assert_eq!(j.s("name"), "process_stopping");
        assert_eq!(j.n("active"), 0.0);
    }
}

both_modes!(
    modules_import_in_sub_interpreter_and_global,
    modules_report_prefork_shape,
    log_handler_writes_mapped_levels_to_the_vhost_log,
    log_handler_debug_shows_with_loglevel_debug,
    events_fire_in_order_with_mod_wsgi_arguments_in_sub_interpreter,
    events_fire_in_order_with_mod_wsgi_arguments_in_global,
    process_metrics_counters_and_cpu_grow_after_requests,
    subscribe_shutdown_runs_at_stop_in_every_interpreter,
);

/// As in mod_wsgi, `mod_wsgi.process_group` names the daemon process group the module was
/// imported in (`""` in an Apache child), and the shape is the group's.
#[test]
fn modules_in_a_daemon_report_its_process_group() {
    let s = server("modules_daemon")
        .conf("WSGIDaemonProcess site processes=2 threads=3")
        .conf("WSGIScriptAlias /d \"@APPS@/modules.wsgi\" process-group=site")
        .conf("WSGIScriptAlias /sub \"@APPS@/modules.wsgi\"")
        .start();
    let d = get_json(&s, "/d/info");
    assert_eq!(d.s("process_group"), "site");
    assert_eq!(d.n("maximum_processes"), 2.0);
    assert_eq!(d.n("threads_per_process"), 3.0);
    assert_eq!(get_json(&s, "/sub/info").s("process_group"), "");
}

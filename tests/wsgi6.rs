//! mod_wsgi 6.x's Python-visible additions, beside the 4.9.4 names they renamed: the
//! environ's float timing keys (`application_start`, `queue_start`, `daemon_start`) next to
//! 4.9.4's microsecond strings, `request_metrics()`'s response-class counters and other 6.x
//! keys, and `mod_wsgi.RequestTimeout` (uncaught: 504 with an info line, no traceback).
mod common;
use common::*;
use std::time::Duration;

fn wsgi6_server(b: Builder) -> Server {
    b.conf("WSGIScriptAlias /w6 \"@APPS@/wsgi6.wsgi\"").start()
}

fn get_json(s: &Server, path: &str) -> Json {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.describe());
    r.json()
}

/// Both generations of timing keys, with their types and one timeline:
/// request_start <= script_start == application_start <= time.time() in the app, and the
/// `request_started` event carrying the same instants as the environ (as in 6.x).
fn check_timing(s: &Server) {
    let mut last_request_start = 0.0;
    for _ in 0..3 {
        let j = get_json(s, "/w6/timing");
        let (v, t) = (j.at("values"), j.at("types"));
        assert_eq!(t.s("request_start"), "str", "4.9.4 format kept");
        assert_eq!(t.s("script_start"), "str", "4.9.4 name and format kept");
        for k in ["application_start", "queue_start", "daemon_start"] {
            assert_eq!(t.s(k), "float", "6.x key {k}");
        }
        let us = |k: &str| -> f64 {
            v.s(k)
                .parse::<i64>()
                .unwrap_or_else(|e| panic!("{k} = {:?}: {e}", v.s(k))) as f64
        };
        let request_start = us("request_start") / 1e6;
        let script_start = us("script_start") / 1e6;
        let application_start = v.n("application_start");
        let now = j.n("now");
        assert!(request_start > 1.6e9, "epoch seconds: {request_start}");
        assert!(
            (script_start - application_start).abs() < 2e-6,
            "script_start {script_start} and application_start {application_start} differ"
        );
        assert!(
            request_start <= application_start,
            "{request_start} > {application_start}"
        );
        assert!(application_start <= now, "{application_start} > now {now}");
        assert!(now - request_start < 10.0, "{request_start} not near {now}");
        assert_eq!(v.n("queue_start"), 0.0, "no queue phase when embedded");
        assert_eq!(v.n("daemon_start"), 0.0, "no daemon phase when embedded");
        let ev = j.at("event");
        assert!(
            (ev.n("request_start") - request_start).abs() < 2e-6,
            "{ev:?}"
        );
        assert!(
            (ev.n("application_start") - application_start).abs() < 2e-6,
            "{ev:?}"
        );
        assert_eq!(ev.n("queue_start"), 0.0);
        assert_eq!(ev.n("daemon_start"), 0.0);
        assert!(
            request_start >= last_request_start,
            "request_start went back: {last_request_start} -> {request_start}"
        );
        last_request_start = request_start;
    }
}

#[test]
fn timing_keys_in_both_formats_event() {
    check_timing(&wsgi6_server(server("wsgi6_timing")));
}

#[test]
fn timing_keys_in_both_formats_prefork() {
    check_timing(&wsgi6_server(
        server("wsgi6_timing_prefork").mpm(Mpm::Prefork),
    ));
}

fn count(m: &Json, k: &str) -> f64 {
    m.get(k)
        .unwrap_or_else(|| panic!("request_metrics() lacks {k}: {:?}", m.keys()))
        .num()
}

/// Known responses by class, then one `request_metrics()` sample: the class counters match
/// exactly and add up to `request_count`, and the other 6.x keys sit beside 4.9.4's.
fn check_status_counters(b: Builder) {
    let mut s = wsgi6_server(b.single_process());
    // Opt in as 6.x wants (4.9.4's first-call start works too: see modules.rs).
    get_json(&s, "/w6/start");
    let mut sent = [0u32; 5];
    sent[1] += 1; // the /start request itself ends inside the sample
    for code in [200, 201, 204] {
        assert_eq!(s.get(&format!("/w6/status/{code}")).status, code);
        sent[1] += 1;
    }
    for code in [302, 304] {
        assert_eq!(s.get(&format!("/w6/status/{code}")).status, code);
        sent[2] += 1;
    }
    for code in [404, 404, 410] {
        assert_eq!(s.get(&format!("/w6/status/{code}")).status, code);
        sent[3] += 1;
    }
    assert_eq!(s.get("/w6/status/503").status, 503);
    let r = s.get("/w6/raise");
    assert_eq!(r.status, 500, "{}", r.describe());
    s.expect_error(r.client_port, "deliberate failure for the 5xx count");
    assert_eq!(s.get("/w6/timeout").status, 504);
    sent[4] += 3;
    let m = get_json(&s, "/w6/rmetrics");
    let got: Vec<f64> = (1..=5)
        .map(|c| count(&m, &format!("status_{c}xx")))
        .collect();
    let want: Vec<f64> = sent.iter().map(|&n| n as f64).collect();
    assert_eq!(got, want, "status_1xx..status_5xx");
    assert_eq!(got.iter().sum::<f64>(), count(&m, "request_count"));
    // 4.9.4's keys stay beside 6.x's.
    for k in [
        "pid",
        "start_time",
        "stop_time",
        "sample_period",
        "cpu_user_time",
        "cpu_system_time",
        "memory_max_rss",
        "memory_rss",
        "request_threads_maximum",
        "request_threads_started",
        "request_threads_active",
        "capacity_utilization",
        "request_throughput",
        "server_time",
        "application_time",
        "server_time_buckets",
        "queue_time_buckets",
        "daemon_time_buckets",
        "application_time_buckets",
        "request_threads_buckets",
    ] {
        assert!(m.get(k).is_some(), "4.9.4 key {k} missing");
    }
    assert_eq!(
        count(&m, "cpu_user_utilization"),
        count(&m, "cpu_user_time")
    );
    assert_eq!(
        count(&m, "cpu_system_utilization"),
        count(&m, "cpu_system_time")
    );
    let cpu = count(&m, "cpu_utilization");
    assert!(
        (cpu - count(&m, "cpu_user_time") - count(&m, "cpu_system_time")).abs() < 1e-9,
        "cpu_utilization {cpu}"
    );
    assert_eq!(
        m.at("request_threads_completed"),
        m.at("request_threads_buckets"),
        "6.x name and 4.9.4 alias"
    );
    let requests = count(&m, "request_count");
    let per_thread: f64 = m
        .at("request_threads_completed")
        .arr()
        .iter()
        .map(Json::num)
        .sum();
    assert_eq!(per_thread, requests);
    // 6.x's per-thread arrays, one entry per thread like request_threads_completed.
    let column = |k: &str| -> Vec<f64> { m.at(k).arr().iter().map(Json::num).collect() };
    let threads = column("request_threads_completed").len();
    for k in [
        "slot_busy_time_us",
        "slot_cpu_time_us",
        "slot_max_duration_ms",
        "slot_current_elapsed_ms",
    ] {
        assert_eq!(column(k).len(), threads, "{k}");
        assert!(column(k).iter().all(|&v| v >= 0.0), "{k}: {:?}", column(k));
    }
    let longest = column("slot_max_duration_ms")
        .into_iter()
        .fold(0.0, f64::max);
    assert!(longest >= 50.0, "the 504 slept 50 ms: {longest}");
    let busy: f64 = column("slot_busy_time_us").iter().sum();
    assert!(busy >= 50_000.0, "busy {busy} us");
    let cpu: f64 = column("slot_cpu_time_us").iter().sum();
    assert!(cpu > 0.0, "no CPU time in {requests} requests");
    // Every request waited for the GIL at least once: to attach to its interpreter.
    assert!(
        count(&m, "gil_wait_count") >= requests,
        "gil_wait_count {}",
        count(&m, "gil_wait_count")
    );
    assert!(count(&m, "gil_wait_time") >= 0.0);
    assert!(count(&m, "gil_wait_time_min_us") <= count(&m, "gil_wait_time_max_us"));
    let waits: f64 = m
        .at("gil_wait_time_buckets")
        .arr()
        .iter()
        .map(Json::num)
        .sum();
    assert_eq!(waits, requests);
    // request_time = server_time + application_time when embedded.
    let total = count(&m, "server_time") + count(&m, "application_time");
    assert!(
        (count(&m, "request_time") - total).abs() < 1e-3,
        "request_time {} vs {total}",
        count(&m, "request_time")
    );
    assert!(
        count(&m, "request_time_max_us") >= 50_000.0,
        "the 504 slept 50 ms"
    );
    assert!(count(&m, "request_time_min_us") <= count(&m, "request_time_max_us"));
    let buckets: f64 = m
        .at("request_time_buckets")
        .arr()
        .iter()
        .map(Json::num)
        .sum();
    assert_eq!(buckets, requests);
    assert_eq!(m.at("queue_time"), &Json::Null);
    assert_eq!(m.at("daemon_time_min_us"), &Json::Null);
    assert!(count(&m, "output_bytes") > 0.0);
    assert!(count(&m, "output_writes") >= 1.0);
    assert!(m.get("input_bytes").is_some() && m.get("input_reads").is_some());
    // The next sample starts empty.
    let again = get_json(&s, "/w6/rmetrics");
    assert_eq!(
        count(&again, "request_count"),
        1.0,
        "only the previous /rmetrics"
    );
    assert_eq!(count(&again, "status_2xx"), 1.0);
    // process_metrics() gains 6.x's cpu_time.
    let p = get_json(&s, "/w6/pmetrics");
    assert!(
        (count(&p, "cpu_time") - count(&p, "cpu_user_time") - count(&p, "cpu_system_time")).abs()
            < 1e-6
    );
}

#[test]
fn request_metrics_count_responses_by_status_class_event() {
    check_status_counters(server("wsgi6_status_event"));
}

#[test]
fn request_metrics_count_responses_by_status_class_prefork() {
    check_status_counters(server("wsgi6_status_prefork").mpm(Mpm::Prefork));
}

fn check_request_timeout(b: Builder) {
    let s = wsgi6_server(b.log_level("info"));
    let r = s.get("/w6/timeout");
    assert_eq!(r.status, 504, "{}", r.describe());
    assert!(
        s.wait_log("RWSGI0600", Duration::from_secs(5)),
        "no RWSGI0600 line:\n{}",
        tail(&s.error_log_text(), 20)
    );
    let lines = s.log_lines_of(r.client_port);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RWSGI0600") && l.contains("wsgi6.wsgi") && l.contains(":info]")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Traceback") || l.contains(":error]")),
        "logged as an app error: {lines:#?}"
    );
    // After the body started: the status stays, the body is cut short, an info line says so.
    let r = s.get("/w6/timeout/late");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.chunked, "{}", r.describe());
    assert!(
        !r.complete,
        "a cut response must look incomplete: {}",
        r.describe()
    );
    assert!(r.text().starts_with("partial"), "{}", r.describe());
    assert!(s.wait_log("RWSGI0601", Duration::from_secs(5)));
    let lines = s.log_lines_of(r.client_port);
    assert!(!lines.iter().any(|l| l.contains("Traceback")), "{lines:#?}");
    // A caught one is just an exception; the class is a BaseException, as in 6.x.
    let j = get_json(&s, "/w6/timeout/caught");
    assert!(j.b("base_exception"));
    assert!(j.b("not_exception"), "except Exception must not swallow it");
}

#[test]
fn request_timeout_gives_504_and_an_info_line_event() {
    check_request_timeout(server("wsgi6_timeout_event"));
}

#[test]
fn request_timeout_gives_504_and_an_info_line_prefork() {
    check_request_timeout(server("wsgi6_timeout_prefork").mpm(Mpm::Prefork));
}

/// The `request_finished` event carries 6.x's additions: the final status (504 for an
/// uncaught RequestTimeout, 500 for an exception before start_response), the request's
/// thread and timeline.
#[test]
fn request_finished_event_has_the_final_status() {
    let mut s = wsgi6_server(server("wsgi6_finished").single_process());
    assert_eq!(s.get("/w6/status/404").status, 404);
    assert_eq!(s.get("/w6/timeout").status, 504);
    let r = s.get("/w6/raise");
    assert_eq!(r.status, 500);
    s.expect_error(r.client_port, "deliberate failure");
    let all = get_json(&s, "/w6/finished");
    for (path, status) in [
        ("/status/404", 404.0),
        ("/timeout", 504.0),
        ("/raise", 500.0),
    ] {
        let e = all.at(path);
        assert_eq!(e.n("status"), status, "{path}: {e:?}");
        assert!(e.n("thread_id") >= 1.0);
        assert!(e.n("request_start") > 1.6e9);
        assert!(e.n("application_finish") >= e.n("request_start"));
        assert_eq!(e.n("queue_start"), 0.0);
        assert_eq!(e.n("daemon_start"), 0.0);
        assert!(e.n("gil_wait_count") >= 1.0, "{e:?}");
        assert!(e.n("gil_wait_time") >= 0.0, "{e:?}");
        assert!(
            (e.n("cpu_time") - e.n("cpu_user_time") - e.n("cpu_system_time")).abs() < 1e-9,
            "{e:?}"
        );
    }
}

//! mod_rwsgi's figures in shared memory: the mod_rwsgi section of `/server-status` (HTML and
//! `?auto`) and the `rwsgi-metrics` OpenMetrics / Prometheus endpoint, rendered by an Apache
//! child other than the one that served the requests.
mod common;
use common::metrics::{self, Exposition};
use common::*;
use std::collections::BTreeMap;

/// One request on a kept-alive connection; returns the status and the serving pid (the
/// app's body).
fn call(c: &mut Conn, path: &str) -> (u16, u32) {
    let r = get_on(c, path, &[]);
    let pid = r.text().trim().parse().unwrap_or(0);
    (r.status, pid)
}

fn get_on(c: &mut Conn, path: &str, headers: &[(&str, &str)]) -> Response {
    c.send(&request_bytes("GET", path, headers, b""))
        .expect("send");
    c.read_response(false)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// What the test sent: requests per (pid), and per (group, status class).
#[derive(Default)]
struct Sent {
    by_pid: BTreeMap<u32, u64>,
    by_class: BTreeMap<(&'static str, u16), u64>,
}

impl Sent {
    fn call(&mut self, c: &mut Conn, group: &'static str, query: &str) -> u32 {
        let (status, pid) = call(c, &format!("/status-{group}{query}"));
        assert!(pid > 0, "no pid from /status-{group}{query} ({status})");
        *self.by_pid.entry(pid).or_default() += 1;
        *self
            .by_class
            .entry((
                match group {
                    "a" => "group-a",
                    "b" => "group-b",
                    _ => "%{GLOBAL}",
                },
                status / 100,
            ))
            .or_default() += 1;
        pid
    }
    fn total(&self) -> u64 {
        self.by_pid.values().sum()
    }
    fn class(&self, group: &str, class: u16) -> u64 {
        self.by_class
            .iter()
            .filter(|((g, c), _)| *g == group && *c == class)
            .map(|(_, n)| n)
            .sum()
    }
}

/// `/metrics` of `s` in the classic text format: the page, and its parse.
fn get_metrics(s: &Server) -> (String, Exposition) {
    let body = s.get("/metrics").text();
    let m = metrics::parse(&body, false).unwrap_or_else(|e| panic!("{e}\n{body}"));
    (body, m)
}

fn check_histogram(m: &Exposition, group: &str, sent: u64) {
    let want = [("application_group", group)];
    let buckets = m.samples("rwsgi_response_time_seconds_bucket", &want);
    assert_eq!(buckets.len(), 12, "{group}: bucket count");
    let mut last = 0.0;
    let mut last_le = 0.0;
    for b in &buckets {
        let le: f64 = match b.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        assert!(le > last_le, "{group}: le not increasing at {le}");
        assert!(b.value >= last, "{group}: buckets not monotonic at le={le}");
        last = b.value;
        last_le = le;
    }
    assert_eq!(last_le, f64::INFINITY, "{group}: last bucket is not +Inf");
    let count = m.sum("rwsgi_response_time_seconds_count", &want);
    assert_eq!(last, count, "{group}: +Inf bucket != _count");
    assert_eq!(count, sent as f64, "{group}: _count != requests sent");
    assert!(
        m.sum("rwsgi_response_time_seconds_sum", &want) > 0.0,
        "{group}: _sum"
    );
}

fn figures_survive_in_another_child(mpm: Mpm) {
    let s = server(&format!("status_{}", mpm.name()))
        .mpm(mpm)
        .threads(4)
        .fragment("status")
        .conf("StartServers 2")
        .start();
    let mut sent = Sent::default();
    // Connection A: every request on one child (kept alive).
    let mut a = s.connect();
    let mut served = 0;
    for _ in 0..5 {
        served = sent.call(&mut a, "a", "");
    }
    for _ in 0..3 {
        sent.call(&mut a, "a", "?status=404");
    }
    for _ in 0..4 {
        sent.call(&mut a, "b", "?sleep=30");
    }
    sent.call(&mut a, "g", "?status=302");
    // Apache closes the connection after a 500, so it comes last.
    sent.call(&mut a, "b", "?status=500");
    assert_eq!(sent.by_pid.len(), 1, "connection A moved between children");
    drop(a);
    // Connection B: on another child.
    let mut b = None;
    for _ in 0..40 {
        let mut c = s.connect();
        if sent.call(&mut c, "a", "") != served {
            b = Some(c);
            break;
        }
    }
    let mut b = b.expect("no connection reached a second child");
    assert_eq!(sent.by_pid.len(), 2);
    let other = *sent.by_pid.keys().find(|&&p| p != served).unwrap();

    // ?auto, rendered by the other child.
    let r = get_on(&mut b, "/server-status?auto", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let text = r.text();
    let auto = metrics::auto_lines(&text);
    assert_eq!(auto["RWSGIRequests"], sent.total().to_string(), "{text}");
    let mut per_process_sum = 0;
    let mut seen = BTreeMap::new();
    for (k, v) in &auto {
        if let Some(rest) = k.strip_prefix("RWSGIProcess")
            && let Some(slot) = rest.strip_suffix("Pid")
        {
            let f = |field: &str| auto[&format!("RWSGIProcess{slot}{field}")].clone();
            let pid: u32 = v.parse().unwrap();
            let requests: u64 = f("Requests").parse().unwrap();
            per_process_sum += requests;
            seen.insert(pid, requests);
            assert_eq!(f("Mode"), "embedded");
            assert_eq!(f("Live"), "1");
            assert_eq!(f("ActiveRequests"), "0");
            assert_eq!(f("Restarts"), "0");
            assert!(f("RSSBytes").parse::<u64>().unwrap() > 1 << 20, "{text}");
            if pid == served {
                // The main interpreter, group-a and group-b.
                assert_eq!(f("Interpreters"), "3", "{text}");
                assert!(f("MaxResponseMs").parse::<f64>().unwrap() >= 30.0, "{text}");
                assert!(f("MeanResponseMs").parse::<f64>().unwrap() > 0.0, "{text}");
            }
        }
    }
    assert_eq!(per_process_sum, sent.total(), "{text}");
    assert_eq!(seen.get(&served), sent.by_pid.get(&served), "{text}");
    assert_eq!(seen.get(&other), sent.by_pid.get(&other), "{text}");

    // The HTML section.
    let r = get_on(&mut b, "/server-status", &[]);
    let html = r.text();
    assert!(
        html.contains("<h2 id=\"mod_rwsgi\">mod_rwsgi</h2>"),
        "{html}"
    );
    assert!(html.contains(&format!("<td>{served}</td>")), "{html}");
    assert!(html.contains("<td>group-b</td>"), "{html}");
    let html = get_on(&mut b, "/server-status?notable", &[]).text();
    assert!(html.contains("RWSGIProcess"), "{html}");
    assert!(!html.contains("<td>group-b</td>"), "{html}");

    // OpenMetrics, when asked for, as Prometheus asks.
    let r = get_on(
        &mut b,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let body = r.text();
    let m = metrics::parse(&body, true).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(m.family("rwsgi_requests").kind, "counter");
    assert_eq!(m.family("rwsgi_response_time_seconds").kind, "histogram");
    for group in ["group-a", "group-b", "%{GLOBAL}"] {
        for class in 1..=5u16 {
            let got = m.sum(
                "rwsgi_requests_total",
                &[
                    ("application_group", group),
                    ("status_class", &format!("{class}xx")),
                ],
            );
            assert_eq!(
                got,
                sent.class(group, class) as f64,
                "{group} {class}xx\n{body}"
            );
        }
        let total: u64 = (1..=5).map(|c| sent.class(group, c)).sum();
        check_histogram(&m, group, total);
    }
    // The four 30 ms requests of group-b are past the 25 ms bucket.
    let b25 = m.sum(
        "rwsgi_response_time_seconds_bucket",
        &[("application_group", "group-b"), ("le", "0.025")],
    );
    assert!(b25 <= 2.0, "{body}");
    assert_eq!(
        m.sum("rwsgi_process_requests_total", &[]),
        sent.total() as f64,
        "{body}"
    );
    assert_eq!(
        m.sum("rwsgi_process_pid", &[]) as u64,
        (served + other) as u64,
        "{body}"
    );

    let r = s.post("/metrics", b"", &[]);
    assert_eq!(r.status, 405, "{}", r.describe());

    // The classic text format otherwise.
    let r = get_on(&mut b, "/metrics", &[]);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = r.text();
    let m = metrics::parse(&body, false).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(m.family("rwsgi_requests_total").kind, "counter");
    assert_eq!(
        m.sum("rwsgi_requests_total", &[]),
        sent.total() as f64,
        "{body}"
    );
}

#[test]
fn figures_survive_in_another_child_event() {
    figures_survive_in_another_child(Mpm::Event);
}

#[test]
fn figures_survive_in_another_child_prefork() {
    figures_survive_in_another_child(Mpm::Prefork);
}

/// The table lives in the process pool: a graceful restart keeps the figures, and the new
/// child that takes the old one's slot adds to them and counts a restart.
fn figures_are_cumulative_across_graceful(mpm: Mpm) {
    let s = server(&format!("status_graceful_{}", mpm.name()))
        .mpm(mpm)
        .single_process()
        .threads(4)
        .fragment("status")
        .start();
    let pid_of = |r: &Response| -> u32 {
        assert_eq!(r.status, 200, "{}", r.describe());
        r.text().trim().parse().unwrap()
    };
    let mut sent = 0u64;
    let old = pid_of(&s.get("/status-a"));
    sent += 1;
    for _ in 0..2 {
        assert_eq!(pid_of(&s.get("/status-b")), old);
        sent += 1;
    }
    let since = std::time::Instant::now();
    control::signal(&s, "graceful");
    assert!(
        control::wait_exited(&[old], since, std::time::Duration::from_secs(5)).is_some(),
        "the old child did not exit after graceful"
    );
    let new = loop {
        let p = pid_of(&s.get("/status-a"));
        sent += 1;
        if p != old {
            break p;
        }
        assert!(sent < 50, "no new child after graceful");
    };
    let text = s.get("/server-status?auto").text();
    let auto = metrics::auto_lines(&text);
    assert_eq!(auto["RWSGIRequests"], sent.to_string(), "{text}");
    assert_eq!(auto["RWSGIProcesses"], "1", "{text}");
    assert_eq!(auto["RWSGIProcess0Pid"], new.to_string(), "{text}");
    assert_eq!(auto["RWSGIProcess0Requests"], sent.to_string(), "{text}");
    assert_eq!(auto["RWSGIProcess0Restarts"], "1", "{text}");
    let (body, m) = get_metrics(&s);
    assert_eq!(m.sum("rwsgi_requests_total", &[]), sent as f64, "{body}");
    assert_eq!(m.sum("rwsgi_process_restarts_total", &[]), 1.0, "{body}");
}

#[test]
fn figures_are_cumulative_across_graceful_event() {
    figures_are_cumulative_across_graceful(Mpm::Event);
}

#[test]
fn figures_are_cumulative_across_graceful_prefork() {
    figures_are_cumulative_across_graceful(Mpm::Prefork);
}

/// Each process keeps 15 named application groups; later ones are counted together as
/// `(other)`, still without a lock on the request path.
#[test]
fn groups_past_the_table_size_are_counted_as_other() {
    let s = server("status_overflow")
        .single_process()
        .threads(4)
        .fragment("status")
        .start();
    let mut c = s.connect();
    for i in 0..18 {
        let r = get_on(&mut c, &format!("/status-many/g{i}"), &[]);
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    let (body, m) = get_metrics(&s);
    let groups: std::collections::BTreeSet<String> = m
        .samples("rwsgi_requests_total", &[])
        .iter()
        .map(|s| s.labels["application_group"].clone())
        .collect();
    assert_eq!(groups.len(), 16, "{groups:?}");
    for i in 0..15 {
        let g = format!("g{i}");
        assert_eq!(
            m.sum("rwsgi_requests_total", &[("application_group", &g)]),
            1.0,
            "{body}"
        );
    }
    let other = [("application_group", "(other)"), ("status_class", "2xx")];
    assert_eq!(m.sum("rwsgi_requests_total", &other), 3.0, "{body}");
    assert_eq!(
        m.sum(
            "rwsgi_response_time_seconds_count",
            &[("application_group", "(other)")]
        ),
        3.0
    );
}

/// A status server whose `/status-d` runs in daemon group `stats` (`options`), application
/// group `group-d`.
fn daemon_status_server(name: &str, options: &str) -> Builder {
    server(name)
        .fragment("status")
        .conf(&format!("WSGIDaemonProcess stats {options}"))
        .conf(
            "WSGIScriptAlias /status-d \"@APPS@/status.wsgi\" process-group=stats \
             application-group=group-d",
        )
}

/// The daemon entries of `?auto`: pid → (slot, field → value).
fn daemon_entries(
    auto: &BTreeMap<String, String>,
) -> BTreeMap<u32, (String, BTreeMap<String, String>)> {
    let mut out = BTreeMap::new();
    for (k, v) in auto {
        if let Some(rest) = k.strip_prefix("RWSGIProcess")
            && let Some(slot) = rest.strip_suffix("Mode")
            && v == "daemon"
        {
            let prefix = format!("RWSGIProcess{slot}");
            let fields: BTreeMap<String, String> = auto
                .iter()
                .filter_map(|(k, v)| {
                    let f = k.strip_prefix(&prefix)?;
                    // RWSGIProcess1... must not take RWSGIProcess12's lines.
                    f.starts_with(|c: char| c.is_ascii_uppercase())
                        .then(|| (f.to_string(), v.clone()))
                })
                .collect();
            out.insert(fields["Pid"].parse().unwrap(), (slot.to_string(), fields));
        }
    }
    out
}

/// The pids the parent logged starting for group `stats`.
fn started_daemons(s: &Server) -> Vec<u32> {
    let needle = "daemon process group 'stats' started process ";
    s.error_log_text()
        .lines()
        .filter_map(|l| l.split(needle).nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Each daemon process has its own entry (its group, its pid) and counts the requests it
/// runs; the Apache child that relays them does not count them again. A daemon re-forked
/// into its slot keeps the slot's figures and counts a restart.
fn daemon_processes_have_their_own_entries(mpm: Mpm) {
    let mut s = daemon_status_server(
        &format!("status_daemon_{}", mpm.name()),
        "processes=2 threads=2",
    )
    .mpm(mpm)
    .threads(8)
    .allow_log("AH00161")
    .start();
    assert!(
        s.wait_log("started process", std::time::Duration::from_secs(5)),
        "no daemon started"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut daemons = started_daemons(&s);
    while daemons.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        daemons = started_daemons(&s);
    }
    daemons.sort();
    assert_eq!(daemons.len(), 2, "{}", s.error_log_text());

    // Two clients at once, so that both daemon processes are likely to serve.
    const PER_CLIENT: usize = 6;
    let served: Vec<u32> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    (0..PER_CLIENT)
                        .map(|_| {
                            let r = s.get("/status-d?sleep=20");
                            assert_eq!(r.status, 200, "{}", r.describe());
                            r.text().trim().parse::<u32>().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let n = served.len() as u64;
    let mut by_pid: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &served {
        assert!(daemons.contains(p), "{p} is not a daemon of {daemons:?}");
        *by_pid.entry(*p).or_default() += 1;
    }
    let embedded = 3u64;
    for _ in 0..embedded {
        let r = s.get("/status-a");
        assert_eq!(r.status, 200, "{}", r.describe());
    }

    let text = s.get("/server-status?auto").text();
    let auto = metrics::auto_lines(&text);
    let entries = daemon_entries(&auto);
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        daemons,
        "{text}"
    );
    let mut daemon_sum = 0;
    for (pid, (_, f)) in &entries {
        assert_eq!(f["ProcessGroup"], "stats", "{text}");
        assert_eq!(f["Live"], "1", "{text}");
        assert_eq!(f["Restarts"], "0", "{text}");
        assert_eq!(f["ActiveRequests"], "0", "{text}");
        assert!(f["RSSBytes"].parse::<u64>().unwrap() > 1 << 20, "{text}");
        let requests: u64 = f["Requests"].parse().unwrap();
        assert_eq!(requests, by_pid.get(pid).copied().unwrap_or(0), "{text}");
        if requests > 0 {
            assert!(f["MaxResponseMs"].parse::<f64>().unwrap() >= 20.0, "{text}");
            assert!(f["Interpreters"].parse::<u32>().unwrap() >= 1, "{text}");
        }
        daemon_sum += requests;
    }
    assert_eq!(daemon_sum, n, "{text}");
    // Relayed requests are not counted again by the Apache children.
    assert_eq!(auto["RWSGIRequests"], (n + embedded).to_string(), "{text}");

    let (body, m) = get_metrics(&s);
    let daemon_labels = [
        ("mode", "daemon"),
        ("process_group", "stats"),
        ("application_group", "group-d"),
    ];
    assert_eq!(
        m.sum("rwsgi_requests_total", &daemon_labels),
        n as f64,
        "{body}"
    );
    assert_eq!(
        m.sum("rwsgi_response_time_seconds_count", &daemon_labels),
        n as f64,
        "{body}"
    );
    assert_eq!(
        m.sum("rwsgi_requests_total", &[("mode", "embedded")]),
        embedded as f64,
        "{body}"
    );
    assert_eq!(
        m.sum(
            "rwsgi_process_pid",
            &[("mode", "daemon"), ("process_group", "stats")]
        ) as u64,
        daemons.iter().map(|&p| p as u64).sum::<u64>(),
        "{body}"
    );

    // Kill one daemon: its replacement takes the same slot.
    let victim = daemons[0];
    let (victim_slot, before) = entries[&victim].clone();
    s.allow_log(&format!("process {victim} died"));
    let st = std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (text, auto) = loop {
        let text = s.get("/server-status?auto").text();
        let auto = metrics::auto_lines(&text);
        let pid = &auto[&format!("RWSGIProcess{victim_slot}Pid")];
        let live = &auto[&format!("RWSGIProcess{victim_slot}Live")];
        if *pid != victim.to_string() && live == "1" {
            break (text, auto);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new daemon in slot {victim_slot}:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let f = |field: &str| auto[&format!("RWSGIProcess{victim_slot}{field}")].clone();
    assert_eq!(f("Restarts"), "1", "{text}");
    assert_eq!(f("ProcessGroup"), "stats", "{text}");
    assert_eq!(f("Requests"), before["Requests"], "{text}");
    let new_pid: u32 = f("Pid").parse().unwrap();
    assert!(started_daemons(&s).contains(&new_pid), "{text}");
    let entries = daemon_entries(&auto);
    assert_eq!(entries.len(), 2, "{text}");
    assert_eq!(entries[&daemons[1]].1["Restarts"], "0", "{text}");
    let (body, m) = get_metrics(&s);
    assert_eq!(
        m.sum(
            "rwsgi_process_restarts_total",
            &[("mode", "daemon"), ("slot", &victim_slot)]
        ),
        1.0,
        "{body}"
    );
}

#[test]
fn daemon_processes_have_their_own_entries_event() {
    daemon_processes_have_their_own_entries(Mpm::Event);
}

#[test]
fn daemon_processes_have_their_own_entries_prefork() {
    daemon_processes_have_their_own_entries(Mpm::Prefork);
}

/// After a graceful restart the new daemon takes the slot while the old one still finishes
/// a request; that request ends counted, and leaves the new daemon's active count right.
#[test]
fn a_draining_daemon_leaves_its_successors_active_count_alone() {
    let s = daemon_status_server(
        "status_daemon_graceful",
        "processes=1 threads=2 graceful-timeout=10",
    )
    .threads(8)
    .start();
    let pid_of = |r: &Response| -> u32 {
        assert_eq!(r.status, 200, "{}", r.describe());
        r.text().trim().parse().unwrap()
    };
    let old = pid_of(&s.get("/status-d"));
    let active = |s: &Server| {
        let text = s.get("/server-status?auto").text();
        let auto = metrics::auto_lines(&text);
        let (_, f) = daemon_entries(&auto).into_values().next().expect(&text);
        (f["Pid"].parse::<u32>().unwrap(), f, text)
    };
    std::thread::scope(|sc| {
        let slow = sc.spawn(|| pid_of(&s.get("/status-d?sleep=1500")));
        // The slow request is running in the old daemon.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while active(&s).1["ActiveRequests"] != "1" {
            assert!(std::time::Instant::now() < deadline, "{}", active(&s).2);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        control::signal(&s, "graceful");
        assert_eq!(slow.join().unwrap(), old);
    });
    // The new daemon owns the slot; one request in flight there shows as one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while active(&s).0 == old {
        assert!(std::time::Instant::now() < deadline, "{}", active(&s).2);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::scope(|sc| {
        let slow = sc.spawn(|| pid_of(&s.get("/status-d?sleep=1000")));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (_, f, text) = active(&s);
            if f["ActiveRequests"] == "1" {
                assert_eq!(f["Restarts"], "1", "{text}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_ne!(slow.join().unwrap(), old);
    });
    // The daemon records a request's end just after the client has the response.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while active(&s).1["ActiveRequests"] != "0" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (_, f, text) = active(&s);
    assert_eq!(f["Requests"], "3", "{text}");
    assert_eq!(f["ActiveRequests"], "0", "{text}");
}

/// Daemon processes past the table's 32 daemon slots still serve, uncounted, and the
/// start-up log says so.
#[test]
fn daemon_processes_past_the_table_are_named_at_start() {
    let s = daemon_status_server("status_daemon_full", "processes=33 threads=1")
        .allow_log("RWSGI0660")
        .start();
    s.assert_log(
        "RWSGI0660: 33 daemon processes are configured (all WSGIDaemonProcess groups together) \
         but the mod_status and rwsgi-metrics figures have room for 32",
    );
    let r = s.get("/status-d");
    assert_eq!(r.status, 200, "{}", r.describe());
    let text = s.get("/server-status?auto").text();
    let auto = metrics::auto_lines(&text);
    assert_eq!(daemon_entries(&auto).len(), 32, "{text}");
}

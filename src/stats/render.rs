//! Reports of the figures table: mod_status's `?auto` lines and HTML section, and the
//! OpenMetrics / Prometheus text exposition.

use super::table::{BUCKETS, GroupFigures, STATUS_CLASSES, SlotFigures};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The `le` labels of the histogram buckets (seconds, OpenMetrics canonical floats).
const LE: [&str; BUCKETS] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf",
];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn mean_us(time_us: u64, requests: u64) -> u64 {
    time_us.checked_div(requests).unwrap_or(0)
}

/// mod_status `?auto` lines: totals, then one block per process, every key starting with
/// `RWSGI` (`RWSGIProcess<slot><Field>: value`).
pub fn auto(slots: &[SlotFigures]) -> String {
    let mut o = String::new();
    let live = slots.iter().filter(|s| s.live);
    let _ = writeln!(o, "RWSGIProcesses: {}", live.clone().count());
    let _ = writeln!(
        o,
        "RWSGIRequests: {}",
        slots.iter().map(SlotFigures::requests).sum::<u64>()
    );
    let _ = writeln!(
        o,
        "RWSGIActiveRequests: {}",
        live.map(|s| s.active).sum::<i64>()
    );
    for s in slots {
        let p = format!("RWSGIProcess{}", s.index);
        let requests = s.requests();
        let _ = writeln!(o, "{p}Mode: {}", s.kind.name());
        let _ = writeln!(o, "{p}Live: {}", u8::from(s.live));
        let _ = writeln!(o, "{p}Pid: {}", s.pid);
        let _ = writeln!(o, "{p}ProcessGroup: {}", s.process_group);
        let _ = writeln!(o, "{p}Generation: {}", s.generation);
        let _ = writeln!(o, "{p}Interpreters: {}", s.interpreters);
        let _ = writeln!(o, "{p}Requests: {requests}");
        let _ = writeln!(o, "{p}ActiveRequests: {}", s.active);
        let _ = writeln!(
            o,
            "{p}MeanResponseMs: {:.3}",
            ms(mean_us(s.time_us(), requests))
        );
        let _ = writeln!(o, "{p}MaxResponseMs: {:.3}", ms(s.max_us));
        let _ = writeln!(o, "{p}Restarts: {}", s.restarts);
        let _ = writeln!(o, "{p}RSSBytes: {}", s.rss_bytes);
    }
    o
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// mod_status's HTML section: a table of processes and one of application groups.
pub fn html(slots: &[SlotFigures]) -> String {
    let mut o = String::from(
        "<hr /><h2 id=\"mod_rwsgi\">mod_rwsgi</h2>\n<table border=\"0\"><tr><th>Slot</th>\
         <th>Mode</th><th>PID</th><th>Process group</th><th>Interpreters</th><th>Requests</th>\
         <th>Active</th><th>Mean ms</th><th>Max ms</th><th>Restarts</th><th>RSS MiB</th></tr>\n",
    );
    for s in slots {
        let requests = s.requests();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{:.1}</td></tr>",
            s.index,
            s.kind.name(),
            if s.live { "" } else { " (exited)" },
            s.pid,
            html_escape(&s.process_group),
            s.interpreters,
            requests,
            s.active,
            ms(mean_us(s.time_us(), requests)),
            ms(s.max_us),
            s.restarts,
            s.rss_bytes as f64 / (1024.0 * 1024.0),
        );
    }
    o.push_str(
        "</table>\n<table border=\"0\"><tr><th>Slot</th><th>Application group</th><th>1xx</th>\
         <th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>Mean ms</th></tr>\n",
    );
    for s in slots {
        for g in &s.groups {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td>",
                s.index,
                html_escape(&g.name)
            );
            for n in g.status {
                let _ = write!(o, "<td>{n}</td>");
            }
            let _ = writeln!(
                o,
                "<td>{:.3}</td></tr>",
                ms(mean_us(g.time_us, g.requests()))
            );
        }
    }
    o.push_str("</table>\n");
    o
}

/// mod_status's HTML section for `?notable` (for browsers without tables): the `?auto`
/// lines, preformatted.
pub fn html_without_tables(slots: &[SlotFigures]) -> String {
    format!(
        "<hr /><h2 id=\"mod_rwsgi\">mod_rwsgi</h2>\n<pre>{}</pre>\n",
        html_escape(&auto(slots))
    )
}

/// Which text exposition to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Exposition {
    /// Picks the format from the request's `Accept` header: OpenMetrics when it asks for it
    /// (as Prometheus' scraper does), the classic text format otherwise, which every
    /// consumer (older Prometheus, curl users, other scrapers) reads.
    pub fn for_accept(accept: &str) -> Exposition {
        if accept.contains("application/openmetrics-text") {
            Exposition::OpenMetrics
        } else {
            Exposition::Prometheus
        }
    }

    /// The response's Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

fn label_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The figures of one (mode, process group, application group) summed over processes.
type GroupKey = (&'static str, String, String);

struct Writer {
    out: String,
    format: Exposition,
}

impl Writer {
    /// `# HELP`/`# TYPE` of a family; counters are named without `_total` in OpenMetrics.
    fn family(&mut self, name: &str, kind: &str, help: &str, unit: Option<&str>) -> String {
        let fam = match (self.format, kind) {
            (Exposition::Prometheus, "counter") => format!("{name}_total"),
            _ => name.to_string(),
        };
        let _ = writeln!(self.out, "# HELP {fam} {help}");
        let _ = writeln!(self.out, "# TYPE {fam} {kind}");
        if let (Exposition::OpenMetrics, Some(u)) = (self.format, unit) {
            let _ = writeln!(self.out, "# UNIT {fam} {u}");
        }
        name.to_string()
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
    }
}

fn group_labels(k: &GroupKey) -> String {
    format!(
        "mode=\"{}\",process_group=\"{}\",application_group=\"{}\"",
        k.0,
        label_escape(&k.1),
        label_escape(&k.2)
    )
}

fn slot_labels(s: &SlotFigures) -> String {
    format!(
        "mode=\"{}\",process_group=\"{}\",slot=\"{}\"",
        s.kind.name(),
        label_escape(&s.process_group),
        s.index
    )
}

fn sum_groups(slots: &[SlotFigures]) -> BTreeMap<GroupKey, GroupFigures> {
    let mut by: BTreeMap<GroupKey, GroupFigures> = BTreeMap::new();
    for s in slots {
        for g in &s.groups {
            let e = by
                .entry((s.kind.name(), s.process_group.clone(), g.name.clone()))
                .or_default();
            for i in 0..STATUS_CLASSES {
                e.status[i] += g.status[i];
            }
            for i in 0..BUCKETS {
                e.buckets[i] += g.buckets[i];
            }
            e.time_us += g.time_us;
        }
    }
    by
}

/// The text exposition: requests by status class and a response-time histogram per
/// process group and application group, then per-process figures labelled by slot.
pub fn metrics(slots: &[SlotFigures], format: Exposition) -> String {
    let mut w = Writer {
        out: String::new(),
        format,
    };
    let groups = sum_groups(slots);
    let secs = |us: u64| us as f64 / 1e6;

    let n = w.family(
        "rwsgi_requests",
        "counter",
        "WSGI requests finished, by status class.",
        None,
    );
    for (k, g) in &groups {
        for (i, c) in g.status.iter().enumerate() {
            let labels = format!("{},status_class=\"{}xx\"", group_labels(k), i + 1);
            w.sample(&format!("{n}_total"), &labels, c);
        }
    }

    let n = w.family(
        "rwsgi_response_time_seconds",
        "histogram",
        "WSGI response time, from request received to response done.",
        Some("seconds"),
    );
    for (k, g) in &groups {
        let labels = group_labels(k);
        let mut cum = 0;
        for (i, c) in g.buckets.iter().enumerate() {
            cum += c;
            w.sample(
                &format!("{n}_bucket"),
                &format!("{labels},le=\"{}\"", LE[i]),
                cum,
            );
        }
        w.sample(&format!("{n}_sum"), &labels, secs(g.time_us));
        w.sample(&format!("{n}_count"), &labels, cum);
    }

    type Field = fn(&SlotFigures) -> f64;
    let per_process: [(&str, &str, &str, Option<&str>, Field); 8] = [
        ("rwsgi_process_pid", "gauge", "Process id.", None, |s| {
            s.pid as f64
        }),
        (
            "rwsgi_process_live",
            "gauge",
            "1 while the process runs, 0 once it exited.",
            None,
            |s| f64::from(u8::from(s.live)),
        ),
        (
            "rwsgi_process_interpreters",
            "gauge",
            "Python interpreters in the process.",
            None,
            |s| s.interpreters as f64,
        ),
        (
            "rwsgi_process_requests",
            "counter",
            "WSGI requests finished by the processes of this slot.",
            None,
            |s| s.requests() as f64,
        ),
        (
            "rwsgi_process_active_requests",
            "gauge",
            "WSGI requests in progress.",
            None,
            |s| s.active as f64,
        ),
        (
            "rwsgi_process_response_time_max_seconds",
            "gauge",
            "Longest WSGI response time.",
            Some("seconds"),
            |s| s.max_us as f64 / 1e6,
        ),
        (
            "rwsgi_process_restarts",
            "counter",
            "Times a new process took over this slot.",
            None,
            |s| s.restarts as f64,
        ),
        (
            "rwsgi_process_memory_rss_bytes",
            "gauge",
            "Resident set size.",
            Some("bytes"),
            |s| s.rss_bytes as f64,
        ),
    ];
    for (name, kind, help, unit, field) in per_process {
        let n = w.family(name, kind, help, unit);
        let sample = if kind == "counter" {
            format!("{n}_total")
        } else {
            n
        };
        for s in slots {
            w.sample(&sample, &slot_labels(s), field(s));
        }
    }
    if format == Exposition::OpenMetrics {
        w.out.push_str("# EOF\n");
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::super::table::{SlotKind, tests::table};
    use super::*;

    fn figures() -> Vec<SlotFigures> {
        let t = table(2, 0);
        for (i, pid) in [(0, 100), (1, 101)] {
            let s = t.embedded(i).unwrap();
            s.claim(pid, SlotKind::Embedded, "", 1, 1);
            let a = s.claim_group("a\"b");
            let b = s.claim_group("c");
            s.begin(pid);
            s.end(a, 200, 3_000, pid, true);
            s.begin(pid);
            s.end(b, 500, 30_000, pid, true);
        }
        t.used().map(|(i, s)| s.snapshot(i)).collect()
    }

    #[test]
    fn auto_lines_are_prefixed_and_sum_up() {
        let text = auto(&figures());
        assert!(text.lines().all(|l| l.starts_with("RWSGI")));
        assert!(text.contains("RWSGIRequests: 4\n"));
        assert!(text.contains("RWSGIProcess1Pid: 101\n"));
        assert!(text.contains("RWSGIProcess0MaxResponseMs: 30.000\n"));
    }

    #[test]
    fn openmetrics_sums_groups_over_processes() {
        let text = metrics(&figures(), Exposition::OpenMetrics);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE rwsgi_requests counter\n"));
        assert!(text.contains(
            "rwsgi_requests_total{mode=\"embedded\",process_group=\"\",application_group=\"a\\\"b\",status_class=\"2xx\"} 2\n"
        ));
        assert!(text.contains(
            "rwsgi_response_time_seconds_bucket{mode=\"embedded\",process_group=\"\",application_group=\"c\",le=\"0.025\"} 0\n"
        ));
        assert!(text.contains(
            "rwsgi_response_time_seconds_bucket{mode=\"embedded\",process_group=\"\",application_group=\"c\",le=\"0.05\"} 2\n"
        ));
        let classic = metrics(&figures(), Exposition::Prometheus);
        assert!(classic.contains("# TYPE rwsgi_requests_total counter\n"));
        assert!(!classic.contains("# EOF"));
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(
            Exposition::for_accept("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            Exposition::OpenMetrics
        );
        assert_eq!(Exposition::for_accept("*/*"), Exposition::Prometheus);
    }
}

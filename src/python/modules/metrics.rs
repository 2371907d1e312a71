//! Process-wide request accounting behind `mod_wsgi.process_metrics()`,
//! `request_metrics()` and `server_metrics()`, and the `mod_wsgi.thread_id` /
//! `thread_requests` / `total_requests` environ values. Counters are atomics (the request
//! path never takes a lock unless `request_metrics()` sampling was switched on); the Python
//! dicts are built on demand in whichever interpreter asks.

use crate::httpd::scoreboard;
use crate::util::clock::{now_us, rss_bytes};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// One request thread's figures (leaked: threads are bounded by the MPM and live as long
/// as the child).
pub struct ThreadSlot {
    pub id: u64,
    requests: AtomicU64,
}

thread_local! {
    /// This thread's slot (a plain pointer: no TLS destructor).
    static SLOT: Cell<*const ThreadSlot> = const { Cell::new(std::ptr::null()) };
    /// The environ counters of the request this thread runs.
    static COUNTERS: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
}

static SLOTS: Mutex<Vec<&'static ThreadSlot>> = Mutex::new(Vec::new());

/// Requests begun, requests finished, requests in flight.
static STARTED: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static ACTIVE: AtomicI64 = AtomicI64::new(0);
/// Busy time of finished requests, and the sum of the start times of requests in flight:
/// busy(now) = done + active * now - sum_starts, without a lock.
static BUSY_DONE_US: AtomicI64 = AtomicI64::new(0);
static ACTIVE_START_SUM_US: AtomicI64 = AtomicI64::new(0);
/// When this child started serving (mod_wsgi's `restart_time`).
static RESTART_US: AtomicI64 = AtomicI64::new(0);

fn secs(us: i64) -> f64 {
    us as f64 / 1_000_000.0
}

/// Records the child's start time (first call wins).
pub fn mark_process_start() {
    let _ = RESTART_US.compare_exchange(0, now_us(), Ordering::AcqRel, Ordering::Acquire);
}

fn thread_slot() -> &'static ThreadSlot {
    let p = SLOT.with(|s| s.get());
    if !p.is_null() {
        // SAFETY: slots are leaked, so the pointer stays valid for the process.
        return unsafe { &*p };
    }
    let mut all = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    let slot: &'static ThreadSlot = Box::leak(Box::new(ThreadSlot {
        id: all.len() as u64 + 1,
        requests: AtomicU64::new(0),
    }));
    all.push(slot);
    SLOT.with(|s| s.set(slot));
    slot
}

/// A request being accounted.
pub struct Running {
    pub start_us: i64,
    pub request_start_us: i64,
    pub slot: &'static ThreadSlot,
}

/// Starts accounting a request on this thread.
pub fn begin(request_start_us: i64) -> Running {
    let start_us = now_us();
    let slot = thread_slot();
    let total_requests = STARTED.fetch_add(1, Ordering::Relaxed);
    ACTIVE_START_SUM_US.fetch_add(start_us, Ordering::Relaxed);
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    let thread_requests = slot.requests.fetch_add(1, Ordering::Relaxed);
    COUNTERS.with(|c| c.set((slot.id, thread_requests, total_requests)));
    Running {
        start_us,
        request_start_us,
        slot,
    }
}

/// Ends accounting; returns the finish time.
pub fn end(run: &Running) -> i64 {
    let finish = now_us();
    BUSY_DONE_US.fetch_add((finish - run.start_us).max(0), Ordering::Relaxed);
    ACTIVE_START_SUM_US.fetch_sub(run.start_us, Ordering::Relaxed);
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
    COMPLETED.fetch_add(1, Ordering::Relaxed);
    if SAMPLING.load(Ordering::Relaxed) {
        sample(run, finish);
    }
    finish
}

/// (thread id, requests this thread served before, requests begun before) of the request
/// this thread runs, for the environ.
pub fn current_counters() -> (u64, u64, u64) {
    COUNTERS.with(|c| c.get())
}

fn busy_us(now: i64) -> i64 {
    let active = ACTIVE.load(Ordering::Relaxed);
    let sum = ACTIVE_START_SUM_US.load(Ordering::Relaxed);
    BUSY_DONE_US.load(Ordering::Relaxed) + (active * now - sum).max(0)
}

/// (user, system) CPU seconds of `who`.
pub fn cpu_times(who: libc::c_int) -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the provided struct.
    if unsafe { libc::getrusage(who, ru.as_mut_ptr()) } != 0 {
        return (0.0, 0.0);
    }
    // SAFETY: initialised by the successful call (and zeroed before).
    let ru = unsafe { ru.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// Peak resident set size in bytes.
fn max_rss() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: as in `cpu_times`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: initialised by the successful call; Linux reports KiB.
    (unsafe { ru.assume_init() }).ru_maxrss.max(0) as u64 * 1024
}

/// Current resident set size in bytes.
fn rss() -> u64 {
    rss_bytes(std::process::id())
}

fn request_threads() -> usize {
    SLOTS.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// `mod_wsgi.process_metrics()` (mod_wsgi 4.9.4's keys).
pub fn process_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let now = now_us();
    let restart = RESTART_US.load(Ordering::Acquire);
    let (user, system) = cpu_times(libc::RUSAGE_SELF);
    d.set_item("pid", std::process::id())?;
    d.set_item("request_count", COMPLETED.load(Ordering::Relaxed))?;
    d.set_item("request_busy_time", secs(busy_us(now)))?;
    d.set_item("memory_rss", rss())?;
    d.set_item("memory_max_rss", max_rss())?;
    d.set_item("cpu_user_time", user)?;
    d.set_item("cpu_system_time", system)?;
    d.set_item("restart_time", secs(restart))?;
    d.set_item("current_time", secs(now))?;
    d.set_item("running_time", ((now - restart) / 1_000_000).max(0))?;
    d.set_item("request_threads", request_threads())?;
    d.set_item("active_requests", ACTIVE.load(Ordering::Relaxed).max(0))?;
    let threads = PyList::empty(py);
    let slots: Vec<&'static ThreadSlot> = SLOTS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for s in slots {
        let t = PyDict::new(py);
        t.set_item("thread_id", s.id)?;
        t.set_item("request_count", s.requests.load(Ordering::Relaxed))?;
        threads.append(t)?;
    }
    d.set_item("threads", threads)?;
    Ok(d)
}

// ---- request_metrics(): sampling between calls, as mod_wsgi 4.9.4 does ----

/// Switched on by the first `request_metrics()` call.
static SAMPLING: AtomicBool = AtomicBool::new(false);

const BUCKETS: usize = 16;

struct Sampler {
    start_us: i64,
    start_busy_us: i64,
    start_count: u64,
    start_cpu: (f64, f64),
    requests: u64,
    server_time: f64,
    application_time: f64,
    server_buckets: [u64; BUCKETS],
    application_buckets: [u64; BUCKETS],
    /// Requests per thread id (index id - 1) in this sample.
    thread_buckets: Vec<u64>,
}

static SAMPLER: Mutex<Option<Sampler>> = Mutex::new(None);

/// mod_wsgi's buckets: <= 5 ms, then doubling, the last one open-ended.
fn bucket(seconds: f64) -> usize {
    let mut threshold = 0.005;
    for i in 0..BUCKETS - 2 {
        if seconds <= threshold {
            return i;
        }
        threshold *= 2.0;
    }
    BUCKETS - 2
}

fn sample(run: &Running, finish: i64) {
    let server = secs((run.start_us - run.request_start_us).max(0));
    let app = secs((finish - run.start_us).max(0));
    let mut g = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = g.as_mut() {
        s.requests += 1;
        s.server_time += server;
        s.application_time += app;
        s.server_buckets[bucket(server)] += 1;
        s.application_buckets[bucket(app)] += 1;
        let i = run.slot.id as usize - 1;
        if s.thread_buckets.len() <= i {
            s.thread_buckets.resize(i + 1, 0);
        }
        s.thread_buckets[i] += 1;
    }
}

/// `mod_wsgi.request_metrics()`: figures for the period since the previous call (the first
/// call starts sampling and returns an empty dict, as in mod_wsgi).
pub fn request_metrics(py: Python<'_>, max_threads: i32) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let now = now_us();
    let busy = busy_us(now);
    let count = COMPLETED.load(Ordering::Relaxed);
    let cpu = cpu_times(libc::RUSAGE_SELF);
    let fresh = |thread_buckets: Vec<u64>| Sampler {
        start_us: now,
        start_busy_us: busy,
        start_count: count,
        start_cpu: cpu,
        requests: 0,
        server_time: 0.0,
        application_time: 0.0,
        server_buckets: [0; BUCKETS],
        application_buckets: [0; BUCKETS],
        thread_buckets,
    };
    let prev = {
        let mut g = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
        let prev = g.take();
        *g = Some(fresh(Vec::new()));
        SAMPLING.store(true, Ordering::Relaxed);
        prev
    };
    let Some(p) = prev else { return Ok(d) };
    let max_threads = max_threads.max(1) as usize;
    let period = secs(now - p.start_us);
    let per = |v: f64| if period > 0.0 { v / period } else { 0.0 };
    let requests = count - p.start_count;
    d.set_item("pid", std::process::id())?;
    d.set_item("start_time", secs(p.start_us))?;
    d.set_item("stop_time", secs(now))?;
    d.set_item("sample_period", period)?;
    d.set_item("cpu_user_time", per(cpu.0 - p.start_cpu.0))?;
    d.set_item("cpu_system_time", per(cpu.1 - p.start_cpu.1))?;
    d.set_item("memory_max_rss", max_rss())?;
    d.set_item("memory_rss", rss())?;
    d.set_item("request_threads_maximum", max_threads)?;
    d.set_item("request_threads_started", request_threads())?;
    d.set_item(
        "capacity_utilization",
        per(secs(busy - p.start_busy_us)) / max_threads as f64,
    )?;
    d.set_item("request_count", requests)?;
    d.set_item("request_throughput", per(requests as f64))?;
    d.set_item("server_time_buckets", p.server_buckets.to_vec())?;
    d.set_item("queue_time_buckets", vec![0u64; BUCKETS])?;
    d.set_item("daemon_time_buckets", vec![0u64; BUCKETS])?;
    d.set_item("application_time_buckets", p.application_buckets.to_vec())?;
    let mut threads = p.thread_buckets;
    threads.resize(max_threads.max(threads.len()), 0);
    d.set_item(
        "request_threads_active",
        threads.iter().filter(|&&n| n > 0).count(),
    )?;
    d.set_item("request_threads_buckets", threads)?;
    let avg = |total: f64| {
        if p.requests > 0 {
            total / p.requests as f64
        } else {
            0.0
        }
    };
    d.set_item("server_time", avg(p.server_time))?;
    d.set_item("queue_time", py.None())?;
    d.set_item("daemon_time", py.None())?;
    d.set_item("application_time", avg(p.application_time))?;
    Ok(d)
}

// ---- server_metrics(): Apache's scoreboard ----

/// The scoreboard status flags mod_wsgi reports (Apache's SERVER_* order).
const STATUS: &[&str] = &[".", "S", "_", "R", "W", "K", "L", "D", "C", "G", "I"];

/// `mod_wsgi.server_metrics()`: the scoreboard, or None when there is none. In embedded
/// mode it answers whatever `WSGIServerMetrics` says, as mod_wsgi 4.9.4 does there.
pub fn server_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let Some(sb) = scoreboard::snapshot() else {
        return Ok(py.None().into_bound(py));
    };
    let now = now_us();
    let d = PyDict::new(py);
    d.set_item("server_limit", sb.server_limit)?;
    d.set_item("thread_limit", sb.thread_limit)?;
    d.set_item("running_generation", sb.running_generation)?;
    d.set_item("restart_time", secs(sb.restart_time))?;
    d.set_item("current_time", secs(now))?;
    d.set_item("running_time", ((now - sb.restart_time) / 1_000_000).max(0))?;
    let processes = PyList::empty(py);
    for (i, ps) in sb.processes.iter().enumerate() {
        let p = PyDict::new(py);
        p.set_item("process_num", i)?;
        p.set_item("pid", ps.pid)?;
        p.set_item("generation", ps.generation)?;
        p.set_item("quiescing", ps.quiescing)?;
        let workers = PyList::empty(py);
        for ws in &ps.workers {
            let w = PyDict::new(py);
            w.set_item("thread_num", ws.thread_num)?;
            w.set_item("generation", ws.generation)?;
            w.set_item(
                "status",
                STATUS.get(ws.status as usize).copied().unwrap_or("?"),
            )?;
            w.set_item("access_count", ws.access_count)?;
            w.set_item("bytes_served", ws.bytes_served)?;
            w.set_item("start_time", secs(ws.start_time))?;
            w.set_item("stop_time", secs(ws.stop_time))?;
            w.set_item("last_used", secs(ws.last_used))?;
            w.set_item("client", &ws.client)?;
            w.set_item("request", &ws.request)?;
            w.set_item("vhost", &ws.vhost)?;
            workers.append(w)?;
        }
        p.set_item("workers", workers)?;
        processes.append(p)?;
    }
    d.set_item("processes", processes)?;
    Ok(d.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_from_five_ms() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(0.005), 0);
        assert_eq!(bucket(0.006), 1);
        assert_eq!(bucket(0.011), 2);
        assert_eq!(bucket(1e9), BUCKETS - 2);
    }
}

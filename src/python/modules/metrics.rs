//! Process-wide request accounting behind `mod_wsgi.process_metrics()`,
//! `request_metrics()` and `server_metrics()`, and the `mod_wsgi.thread_id` /
//! `thread_requests` / `total_requests` environ values. Counters are atomics (the request
//! path never takes a lock unless `request_metrics()` sampling was switched on); the Python
//! dicts are built on demand in whichever interpreter asks.

use crate::python::request::IoStats;
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
    /// When the request this thread runs began (0: idle), for `request_metrics()`.
    running_since_us: AtomicI64,
}

thread_local! {
    /// This thread's slot (a plain pointer: no TLS destructor).
    static SLOT: Cell<*const ThreadSlot> = const { Cell::new(std::ptr::null()) };
    /// The environ counters of the request this thread runs.
    static COUNTERS: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
    /// Time (µs) and count of this thread's waits for the GIL since it last attached to
    /// an interpreter (mod_wsgi 6.x's `gil_wait_*`).
    static GIL_WAIT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Records the wait of a thread attaching to an interpreter (the start of a request or a
/// hook): earlier waits on this thread belong to no request any more.
pub fn gil_wait_attach(waited: std::time::Duration) {
    GIL_WAIT.with(|g| g.set((waited.as_micros() as u64, 1)));
}

/// Records a wait to take the GIL back after blocking I/O.
pub fn gil_wait_add(waited: std::time::Duration) {
    GIL_WAIT.with(|g| {
        let (us, n) = g.get();
        g.set((us + waited.as_micros() as u64, n + 1));
    });
}

/// The GIL waits recorded since this thread attached, (µs, count), reset.
pub fn take_gil_wait() -> (u64, u64) {
    GIL_WAIT.with(|g| g.replace((0, 0)))
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
        running_since_us: AtomicI64::new(0),
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
    /// The slot's `running_since_us` before this request (a request it runs inside, such
    /// as a mod_include subrequest's parent), restored at the end.
    outer_since_us: i64,
    /// This thread's CPU seconds at the start, measured only while sampling.
    cpu_start: Option<f64>,
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
    let outer_since_us = slot.running_since_us.swap(start_us, Ordering::Relaxed);
    Running {
        start_us,
        request_start_us,
        slot,
        outer_since_us,
        cpu_start: SAMPLING.load(Ordering::Relaxed).then(thread_cpu),
    }
}

/// How a request ended, for `request_metrics()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Finished {
    /// When the app was called (0: never, e.g. the script failed to load).
    pub application_start_us: i64,
    /// The status the client got (0 when none is known, counted as 5xx as in mod_wsgi 6.x).
    pub status: u16,
    /// Response body bytes sent.
    pub output_bytes: u64,
    pub io: IoStats,
    /// GIL waits during the request, (µs, count).
    pub gil_wait: (u64, u64),
}

/// Ends accounting; returns the finish time.
pub fn end(run: &Running, done: &Finished) -> i64 {
    let finish = now_us();
    run.slot
        .running_since_us
        .store(run.outer_since_us, Ordering::Relaxed);
    BUSY_DONE_US.fetch_add((finish - run.start_us).max(0), Ordering::Relaxed);
    ACTIVE_START_SUM_US.fetch_sub(run.start_us, Ordering::Relaxed);
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
    COMPLETED.fetch_add(1, Ordering::Relaxed);
    if SAMPLING.load(Ordering::Relaxed) {
        sample(run, done, finish);
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

/// This thread's CPU seconds (user plus system).
fn thread_cpu() -> f64 {
    let (user, system) = cpu_times(libc::RUSAGE_THREAD);
    user + system
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

/// `mod_wsgi.process_metrics()` (mod_wsgi 4.9.4's keys, and 6.x's `cpu_time`).
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
    // Added in mod_wsgi 6.x: the sum of the two.
    d.set_item("cpu_time", user + system)?;
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
    server: Phase,
    application: Phase,
    /// Request received to response done (mod_wsgi 6.x's `request_time`).
    request: Phase,
    input_read: Phase,
    output_write: Phase,
    gil_wait: Phase,
    gil_wait_count: u64,
    /// Responses by class: 1xx to 5xx.
    status: [u64; 5],
    input_bytes: u64,
    input_reads: u64,
    output_bytes: u64,
    output_writes: u64,
    /// Per request thread (index id - 1), this sample's figures.
    slots: Vec<SlotStats>,
}

/// One request thread's figures in a sample (mod_wsgi 6.x's `slot_*` and 4.9.4's
/// `request_threads_buckets`).
#[derive(Default, Clone, Copy)]
struct SlotStats {
    completed: u64,
    /// Busy time within the sample of the requests completed in it.
    busy_us: i64,
    cpu_us: i64,
    max_duration_us: i64,
}

/// One phase's durations in a sample: total, histogram, and exact extremes in µs.
#[derive(Default)]
struct Phase {
    total: f64,
    buckets: [u64; BUCKETS],
    min_max_us: Option<(i64, i64)>,
}

impl Phase {
    fn add(&mut self, us: i64) {
        let us = us.max(0);
        let seconds = secs(us);
        self.total += seconds;
        self.buckets[bucket(seconds)] += 1;
        self.min_max_us = Some(match self.min_max_us {
            Some((lo, hi)) => (lo.min(us), hi.max(us)),
            None => (us, us),
        });
    }

    /// Sets `<name>` (mean over `requests`), `<name>_buckets`, `<name>_min_us` and
    /// `<name>_max_us` (None when no request was seen), as mod_wsgi 6.x names them.
    fn publish(&self, d: &Bound<'_, PyDict>, name: &str, requests: u64) -> PyResult<()> {
        let mean = if requests > 0 {
            self.total / requests as f64
        } else {
            0.0
        };
        d.set_item(name, mean)?;
        d.set_item(format!("{name}_buckets"), self.buckets.to_vec())?;
        let (lo, hi) = self.min_max_us.unzip();
        d.set_item(format!("{name}_min_us"), lo)?;
        d.set_item(format!("{name}_max_us"), hi)?;
        Ok(())
    }
}

/// The index of a status's class in `Sampler::status`: 0 (no status: the app failed
/// before one was set) counts as 5xx, as in mod_wsgi 6.x.
fn status_class(status: u16) -> Option<usize> {
    match status {
        0 => Some(4),
        100..=599 => Some(status as usize / 100 - 1),
        _ => None,
    }
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

fn sample(run: &Running, done: &Finished, finish: i64) {
    let app_start = if done.application_start_us > 0 {
        done.application_start_us
    } else {
        run.start_us
    };
    let cpu_us = run
        .cpu_start
        .map(|c0| ((thread_cpu() - c0) * 1e6).max(0.0) as i64);
    let mut g = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = g.as_mut() {
        s.requests += 1;
        s.server.add(app_start - run.request_start_us);
        s.application.add(finish - app_start);
        s.request.add(finish - run.request_start_us);
        s.input_read.add(done.io.input_time_us as i64);
        s.output_write.add(done.io.output_time_us as i64);
        s.gil_wait.add(done.gil_wait.0 as i64);
        s.gil_wait_count += done.gil_wait.1;
        if let Some(i) = status_class(done.status) {
            s.status[i] += 1;
        }
        s.input_bytes += done.io.input_length;
        s.input_reads += done.io.input_reads;
        s.output_bytes += done.output_bytes;
        s.output_writes += done.io.output_writes;
        let i = run.slot.id as usize - 1;
        if s.slots.len() <= i {
            s.slots.resize(i + 1, SlotStats::default());
        }
        let since = run.start_us.max(s.start_us);
        let slot = &mut s.slots[i];
        slot.completed += 1;
        slot.busy_us += (finish - since).max(0);
        slot.cpu_us += cpu_us.unwrap_or(0);
        slot.max_duration_us = slot.max_duration_us.max(finish - run.start_us);
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
    let fresh = |slots: Vec<SlotStats>| Sampler {
        start_us: now,
        start_busy_us: busy,
        start_count: count,
        start_cpu: cpu,
        requests: 0,
        server: Phase::default(),
        application: Phase::default(),
        request: Phase::default(),
        input_read: Phase::default(),
        output_write: Phase::default(),
        gil_wait: Phase::default(),
        gil_wait_count: 0,
        status: [0; 5],
        input_bytes: 0,
        input_reads: 0,
        output_bytes: 0,
        output_writes: 0,
        slots,
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
    // 4.9.4 calls the CPU utilisation rates `*_time`; 6.x adds `*_utilization` beside them.
    let (user, system) = (per(cpu.0 - p.start_cpu.0), per(cpu.1 - p.start_cpu.1));
    d.set_item("cpu_user_time", user)?;
    d.set_item("cpu_system_time", system)?;
    d.set_item("cpu_user_utilization", user)?;
    d.set_item("cpu_system_utilization", system)?;
    d.set_item("cpu_utilization", user + system)?;
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
    for (i, n) in p.status.iter().enumerate() {
        d.set_item(format!("status_{}xx", i + 1), n)?;
    }
    d.set_item("input_bytes", p.input_bytes)?;
    d.set_item("input_reads", p.input_reads)?;
    d.set_item("output_bytes", p.output_bytes)?;
    d.set_item("output_writes", p.output_writes)?;
    p.server.publish(&d, "server_time", p.requests)?;
    p.application.publish(&d, "application_time", p.requests)?;
    p.request.publish(&d, "request_time", p.requests)?;
    p.input_read.publish(&d, "input_read_time", p.requests)?;
    p.output_write
        .publish(&d, "output_write_time", p.requests)?;
    p.gil_wait.publish(&d, "gil_wait_time", p.requests)?;
    d.set_item("gil_wait_count", p.gil_wait_count)?;
    // Embedded mode has no queue or daemon phase: None, with empty histograms.
    for name in ["queue_time", "daemon_time"] {
        d.set_item(name, py.None())?;
        d.set_item(format!("{name}_buckets"), vec![0u64; BUCKETS])?;
        d.set_item(format!("{name}_min_us"), py.None())?;
        d.set_item(format!("{name}_max_us"), py.None())?;
    }
    publish_slots(&d, p.slots, max_threads, p.start_us, now)?;
    Ok(d)
}

/// The per-thread arrays: 4.9.4's `request_threads_buckets` (requests completed) and
/// `request_threads_active`, and 6.x's `slot_*`, where the requests still running count
/// their time so far.
fn publish_slots(
    d: &Bound<'_, PyDict>,
    mut slots: Vec<SlotStats>,
    max_threads: usize,
    sample_start: i64,
    now: i64,
) -> PyResult<()> {
    let running: Vec<i64> = SLOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|s| s.running_since_us.load(Ordering::Relaxed))
        .collect();
    let n = max_threads.max(slots.len()).max(running.len());
    slots.resize(n, SlotStats::default());
    let mut current_ms = vec![0i64; n];
    for (i, &since) in running.iter().enumerate() {
        if since > 0 {
            slots[i].busy_us += (now - since.max(sample_start)).max(0);
            current_ms[i] = (now - since).max(0) / 1000;
        }
    }
    let completed: Vec<u64> = slots.iter().map(|s| s.completed).collect();
    d.set_item(
        "request_threads_active",
        completed.iter().filter(|&&n| n > 0).count(),
    )?;
    // 6.x's name, and 4.9.4's (kept by 6.x as an alias).
    d.set_item("request_threads_completed", completed.clone())?;
    d.set_item("request_threads_buckets", completed)?;
    let column = |f: fn(&SlotStats) -> i64| slots.iter().map(f).collect::<Vec<i64>>();
    d.set_item("slot_busy_time_us", column(|s| s.busy_us))?;
    d.set_item("slot_cpu_time_us", column(|s| s.cpu_us))?;
    d.set_item("slot_max_duration_ms", column(|s| s.max_duration_us / 1000))?;
    d.set_item("slot_current_elapsed_ms", current_ms)?;
    Ok(())
}

// ---- server_metrics(): Apache's scoreboard ----

/// The scoreboard status flags mod_wsgi reports (Apache's SERVER_* order).
const STATUS: &[&str] = &[".", "S", "_", "R", "W", "K", "L", "D", "C", "G", "I"];

/// `mod_wsgi.server_metrics()`: the scoreboard, or None when there is none. In embedded
/// mode it answers whatever `WSGIServerMetrics` says, as mod_wsgi 4.9.4 does there; in a
/// daemon process only with its group's `server-metrics=On` (the directive is not inherited).
pub fn server_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let allowed = crate::python::runtime::identity()
        .daemon
        .is_none_or(|d| d.server_metrics);
    let Some(sb) = allowed
        .then(|| crate::python::runtime::host().scoreboard())
        .flatten()
    else {
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

//! The daemon process: drops privileges, starts Python, then `threads` workers wait on one
//! epoll set holding the group's listening socket and every idle connection, and run each
//! request through the same WSGI core as embedded mode, with the socket as the transport.
//! A connection stays open between requests (the Apache child pools it) until either side
//! gives it up.

use super::protocol::{self, Kind, ProtoError, RequestHead};
use super::{Group, os, pool};
use crate::config::daemon::Ident;
use crate::python::environ::{ModWsgiFacts, ProcessFacts};
use crate::python::interp::{self, GroupError};
use crate::python::{app, preload, runtime};
use crate::wsgi::environ::RequestFacts;
use crate::wsgi::gateway::{After, Gateway, ReadFailure, RequestLog, ResponseHead, WriteError};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs one daemon process of `group` (in the freshly forked child, after the Apache layer
/// reset its signals and closed Apache's listeners). Never returns.
pub fn run(
    group: Arc<Group>,
    others: &[Arc<Group>],
    delay: Duration,
    identity: runtime::Identity,
    host: &'static dyn runtime::Host,
    logger: fn() -> RequestLog,
) -> ! {
    let apache_version = identity.apache_version;
    let log = logger();
    started();
    for g in others {
        if !Arc::ptr_eq(g, &group) {
            os::close(g.listener);
        }
    }
    let name = &group.def.name;
    let fail = |what: String| -> ! {
        log.log(
            crate::wsgi::gateway::Severity::Critical,
            &format!(
                "RWSGI0510: daemon process group '{name}' (pid {}): {what}; the process exits \
                 and will be started again",
                os::pid()
            ),
        );
        os::exit_now(1)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let starting = Instant::now();
    // From here only the main thread takes the parent's stop and drain signals (threads that
    // Python or import scripts start inherit the mask); they are acted on once it waits.
    os::block_control_signals();
    if let Err(e) = become_user(&group) {
        fail(e);
    }
    if let Err(e) = runtime::initialize(identity, host, &group.python) {
        fail(e);
    }
    // The group's own WSGIImportScript lines, loaded as the embedded ones are in children.
    let scripts: Vec<_> = group
        .import_scripts
        .iter()
        .map(|s| crate::config::ImportScript {
            process_group: String::new(),
            ..s.clone()
        })
        .collect();
    if group.def.is_service() {
        // A service script may never return: it runs on a thread of its own, and the main
        // thread stays free for the parent's signals. No requests, so no request timers.
        let spawned = std::thread::Builder::new()
            .name("wsgi-service".into())
            .spawn(move || preload::run(&scripts, apache_version, &logger()));
        if let Err(e) = spawned {
            fail(format!("cannot start the service script thread: {e}"));
        }
        loop {
            // Nothing in flight to drain: a stop, drain or eviction ends it at once.
            if os::wait_control(None).is_some() {
                os::exit_now(0);
            }
        }
    }
    preload::run(&scripts, apache_version, &log);
    log.log(
        crate::wsgi::gateway::Severity::Info,
        &format!(
            "RWSGI0580: daemon process group '{name}' process {} ready: Python and import \
             scripts took {:.2} s, {} threads",
            os::pid(),
            starting.elapsed().as_secs_f64(),
            group.def.threads
        ),
    );
    let listener = os::listener(group.listener);
    // Accepted only after epoll reports it readable; non-blocking, as another process of the
    // group may have taken the connection meanwhile.
    if let Err(e) = listener.set_nonblocking(true) {
        fail(format!("cannot poll the listening socket: {e}"));
    }
    let epoll = match os::Epoll::new() {
        Ok(e) => e,
        Err(e) => fail(format!("cannot create the epoll set: {e}")),
    };
    if let Err(e) = epoll.add(listener.as_raw_fd(), LISTENER) {
        fail(format!("cannot watch the listening socket: {e}"));
    }
    let shared = Arc::new(Shared { epoll, listener });
    let process = ProcessFacts {
        multithread: group.def.threads > 1,
        multiprocess: group.def.processes_set,
    };
    for i in 0..group.def.threads {
        let (sh, g) = (shared.clone(), group.clone());
        let mut builder = std::thread::Builder::new().name(format!("wsgi-{i}"));
        if let Some(size) = group.def.stack_size {
            builder = builder.stack_size(size);
        }
        let spawned = builder.spawn(move || {
            let w = Worker {
                shared: &sh,
                group: &g,
                process,
                apache_version,
                log: logger(),
            };
            w.run()
        });
        if let Err(e) = spawned {
            fail(format!("cannot start request thread: {e}"));
        }
    }
    start_recycle_timer(&group, logger);
    start_idle_sweep(&group, logger);
    start_deadlock_probe(&group, logger);
    start_startup_timer(&group, logger);
    loop {
        match os::wait_control(None) {
            Some(os::Control::Drain) => drain(&group, group.def.graceful_timeout, logger),
            Some(os::Control::Evict) => {
                log.log(
                    crate::wsgi::gateway::Severity::Info,
                    &format!(
                        "RWSGI0516: daemon process group '{}' process {} recycles: evicted \
                         (SIGUSR1)",
                        group.def.name,
                        os::pid()
                    ),
                );
                RECYCLING.store(true, Ordering::SeqCst);
                let t = match group.def.eviction_timeout {
                    0 => group.def.graceful_timeout,
                    t => t,
                };
                drain(&group, t, logger)
            }
            Some(os::Control::Stop) => exit_process(&group, Instant::now(), logger),
            None => {}
        }
    }
}

/// Set once this process recycles itself: it takes no more connections.
static RECYCLING: AtomicBool = AtomicBool::new(false);
/// Requests served by this process.
static SERVED: AtomicU64 = AtomicU64::new(0);
/// Requests this process has taken on, counted before each accept (maximum-requests).
static ADMITTED: AtomicU64 = AtomicU64::new(0);
/// When the last request counted as activity started or ended, in milliseconds since this
/// process started.
static LAST_ACTIVITY: AtomicU64 = AtomicU64::new(0);

fn since_start_ms() -> u64 {
    started().elapsed().as_millis() as u64
}

/// How long no request that counts as activity has started or ended.
fn idle_ms() -> u64 {
    since_start_ms().saturating_sub(LAST_ACTIVITY.load(Ordering::SeqCst))
}

fn started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Stops taking connections and has the main thread end this process once idle; the
/// parent starts a replacement at once (exit status 0).
fn recycle(group: &Group, why: &str, log: &RequestLog) {
    if !RECYCLING.swap(true, Ordering::SeqCst) {
        shed_idle(true);
        log.log(
            crate::wsgi::gateway::Severity::Info,
            &format!(
                "RWSGI0516: daemon process group '{}' process {} recycles: {why}",
                group.def.name,
                os::pid()
            ),
        );
        os::drain_self();
    }
}

/// restart-interval and inactivity-timeout.
fn start_recycle_timer(group: &Arc<Group>, logger: fn() -> RequestLog) {
    let (life, idle) = (group.def.restart_interval, group.def.inactivity_timeout);
    let request_limit = (group.def.request_timeout > 0).then(|| {
        Duration::from_secs_f64(
            group.def.request_timeout as f64 * (1.0 + f64::from(group.def.threads).ln()),
        )
    });
    if life == 0 && idle == 0 && request_limit.is_none() {
        return;
    }
    let g = group.clone();
    let _ = std::thread::Builder::new()
        .name("wsgi-monitor".into())
        .spawn(move || {
            let log = logger();
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let now = started().elapsed().as_secs();
                if life > 0 && now >= life {
                    recycle(&g, &format!("restart-interval={life} reached"), &log);
                } else if idle > 0
                    && COUNTED.load(Ordering::SeqCst) == 0
                    && idle_ms() >= idle.saturating_mul(1000)
                {
                    recycle(&g, &format!("inactivity-timeout={idle} reached"), &log);
                } else if let Some(limit) = request_limit
                    && let Some(ran) = overdue(limit, &g, &log)
                {
                    log.log(
                        crate::wsgi::gateway::Severity::Error,
                        &format!(
                            "RWSGI0518: daemon process group '{}' process {}: a request has run \
                             {:.1} s, longer than request-timeout={} allows ({:.1} s with {} \
                             threads); the process restarts once its requests end or \
                             graceful-timeout={} s passes",
                            g.def.name,
                            os::pid(),
                            ran.as_secs_f64(),
                            g.def.request_timeout,
                            limit.as_secs_f64(),
                            g.def.threads,
                            g.def.graceful_timeout
                        ),
                    );
                    recycle(&g, "request-timeout", &log);
                }
            }
        });
}

/// startup-timeout, as mod_wsgi's: from this process's first request on, a WSGI script must
/// load within N seconds, or the process stops and is replaced (an app whose import keeps
/// failing or hangs, such as Django with broken settings, starts afresh). The timer ends at
/// the first successful load and never runs again.
fn start_startup_timer(group: &Arc<Group>, logger: fn() -> RequestLog) {
    let limit = group.def.startup_timeout;
    if limit == 0 {
        return;
    }
    let name = group.def.name.clone();
    let _ = std::thread::Builder::new()
        .name("wsgi-startup".into())
        .spawn(move || {
            let tick = Duration::from_millis(100);
            while NEXT_TOKEN.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(tick);
            }
            let armed = Instant::now();
            while !app::script_loaded() {
                if armed.elapsed() >= Duration::from_secs(limit) {
                    logger().log(
                        crate::wsgi::gateway::Severity::Warning,
                        &format!(
                            "RWSGI0590: daemon process group '{name}' process {}: no WSGI \
                             script has loaded within startup-timeout={limit} s of the first \
                             request; the process stops and is replaced",
                            os::pid()
                        ),
                    );
                    os::stop_self();
                    return;
                }
                std::thread::sleep(tick);
            }
        });
}

/// When the GIL probe last got the GIL, in seconds since this process started.
static LAST_GIL: AtomicU64 = AtomicU64::new(0);
/// Set before Python is finalised: the GIL probe stops (a thread taking the GIL during or
/// after `Py_FinalizeEx` is ended by CPython), and so does the deadlock check that needs it.
static FINALIZING: AtomicBool = AtomicBool::new(false);
/// Held by the GIL probe while it takes the GIL, so finalisation can wait out a probe.
static PROBING: Mutex<()> = Mutex::new(());

/// deadlock-timeout: one thread takes the GIL every second; another checks that it still
/// can. A process whose GIL stays held (a C extension stuck with it) is ended and replaced:
/// nothing else can run Python in it any more.
fn start_deadlock_probe(group: &Arc<Group>, logger: fn() -> RequestLog) {
    let limit = group.def.deadlock_timeout;
    if limit == 0 {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("wsgi-gil-probe".into())
        .spawn(|| {
            loop {
                {
                    let _probing = PROBING.lock().unwrap_or_else(|e| e.into_inner());
                    if FINALIZING.load(Ordering::SeqCst) {
                        return;
                    }
                    if crate::python::shutdown::probe_gil() {
                        LAST_GIL.store(started().elapsed().as_secs(), Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    let g = group.clone();
    let _ = std::thread::Builder::new()
        .name("wsgi-deadlock".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                if FINALIZING.load(Ordering::SeqCst) {
                    return;
                }
                let stuck = started()
                    .elapsed()
                    .as_secs()
                    .saturating_sub(LAST_GIL.load(Ordering::SeqCst));
                if stuck > limit {
                    logger().log(
                        crate::wsgi::gateway::Severity::Error,
                        &format!(
                            "RWSGI0520: daemon process group '{}' process {}: the GIL has not \
                             been free for {stuck} s, longer than deadlock-timeout={limit}; \
                             the process ends and is replaced",
                            g.def.name,
                            os::pid()
                        ),
                    );
                    os::exit_now(1);
                }
            }
        });
}

/// Requests being served by this process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// One running request: its [`Busy`] token, when it started, the thread running it, and
/// when interrupt-timeout's exception was raised in it.
struct Run {
    token: u64,
    since: Instant,
    thread: libc::c_ulong,
    interrupted: Option<Instant>,
}

static RUNNING: Mutex<Vec<Run>> = Mutex::new(Vec::new());
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(0);

/// request-timeout: how long the oldest request past `limit` has run, once the process
/// must restart for it. With interrupt-timeout, a request past the limit first gets
/// `mod_wsgi.RequestTimeout` raised in it (the app may unwind: 504, the process lives);
/// only one still running interrupt-timeout later makes the process restart.
fn overdue(limit: Duration, g: &Group, log: &RequestLog) -> Option<Duration> {
    let grace = Duration::from_secs(g.def.interrupt_timeout);
    let mut running = RUNNING.lock().ok()?;
    let mut restart = None;
    for r in running.iter_mut().filter(|r| r.since.elapsed() > limit) {
        match r.interrupted {
            _ if grace.is_zero() => restart = Some(r.since.elapsed()),
            None => {
                if crate::python::shutdown::raise_request_timeout(r.thread) {
                    log.log(
                        crate::wsgi::gateway::Severity::Info,
                        &format!(
                            "RWSGI0519: daemon process group '{}' process {}: a request has run \
                             {:.1} s, longer than request-timeout={} allows; \
                             mod_wsgi.RequestTimeout raised in it (interrupt-timeout={})",
                            g.def.name,
                            os::pid(),
                            r.since.elapsed().as_secs_f64(),
                            g.def.request_timeout,
                            g.def.interrupt_timeout
                        ),
                    );
                }
                r.interrupted = Some(Instant::now());
            }
            Some(at) if at.elapsed() > grace => restart = Some(r.since.elapsed()),
            Some(_) => {}
        }
    }
    restart
}

/// Counts one request in [`ACTIVE`] and [`RUNNING`] for as long as it lives.
struct Busy(u64);

impl Busy {
    fn new() -> Busy {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        let token = NEXT_TOKEN.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut running) = RUNNING.lock() {
            running.push(Run {
                token,
                since: Instant::now(),
                thread: crate::python::shutdown::thread_id(),
                interrupted: None,
            });
        }
        Busy(token)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut running) = RUNNING.lock() {
            running.retain(|r| r.token != self.0);
        }
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Requests running that count as activity for inactivity-timeout: all but those under
/// `WSGIIgnoreActivity On` (a health check must not keep an idle process alive).
static COUNTED: AtomicUsize = AtomicUsize::new(0);

/// One request that counts as activity: it restarts the idle clock when it starts and ends.
struct Activity;

impl Activity {
    fn new() -> Activity {
        COUNTED.fetch_add(1, Ordering::SeqCst);
        LAST_ACTIVITY.store(since_start_ms(), Ordering::SeqCst);
        Activity
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        LAST_ACTIVITY.store(since_start_ms(), Ordering::SeqCst);
        COUNTED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Ends this process. As in an Apache child, Python is finalised first (atexit callbacks,
/// `process_stopping` subscribers) when no request is in hand by `deadline` (a stop: at
/// once; a drain: its own end); otherwise it exits without.
fn exit_process(group: &Group, deadline: Instant, logger: fn() -> RequestLog) -> ! {
    RECYCLING.store(true, Ordering::SeqCst);
    shed_idle(true);
    // A request thread that saw the listener readable before RECYCLING was set may still
    // accept one connection: it shows in ACTIVE; a stop then exits at once, a drain waits
    // for it.
    let seen = Instant::now() + Duration::from_millis(250);
    loop {
        let (now, active) = (Instant::now(), ACTIVE.load(Ordering::SeqCst) > 0);
        if now >= deadline.max(seen) || (active && deadline <= seen) || (!active && now >= seen) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if ACTIVE.load(Ordering::SeqCst) == 0 {
        finalize_within(group, logger);
    }
    os::exit_now(0)
}

/// Finalises Python, bounded by shutdown-timeout (0: unbounded, as mod_wsgi's): an atexit
/// callback that hangs must not keep a draining process, which no one else kills.
fn finalize_within(group: &Group, logger: fn() -> RequestLog) {
    let limit = group.def.shutdown_timeout;
    if limit > 0 {
        let name = group.def.name.clone();
        let _ = std::thread::Builder::new()
            .name("wsgi-reaper".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_secs(limit.into()));
                logger().log(
                    crate::wsgi::gateway::Severity::Warning,
                    &format!(
                        "RWSGI0591: daemon process group '{name}' process {}: Python's \
                         finalisation (atexit callbacks, process_stopping subscribers) did not \
                         end within shutdown-timeout={limit} s; the process exits without it",
                        os::pid()
                    ),
                );
                os::exit_now(0)
            });
    }
    FINALIZING.store(true, Ordering::SeqCst);
    drop(PROBING.lock().unwrap_or_else(|e| e.into_inner()));
    crate::python::shutdown::finalize(&logger());
}

/// Graceful restart: the Apache children of the old generation still finish their
/// requests here; once none is in hand or waiting (twice in a row, 20 ms apart) — or
/// graceful-timeout has passed — the process ends, finalising Python if it can. A stop
/// signal ends it at once.
fn drain(group: &Group, timeout: u32, logger: fn() -> RequestLog) -> ! {
    // Idle connections are not waited for: their Apache children retry elsewhere.
    shed_idle(true);
    let deadline = Instant::now() + Duration::from_secs(timeout.into());
    let mut idle_seen = 0;
    while Instant::now() < deadline {
        let idle = ACTIVE.load(Ordering::SeqCst) == 0
            && (RECYCLING.load(Ordering::SeqCst) || !os::has_pending(group.listener));
        idle_seen = if idle { idle_seen + 1 } else { 0 };
        if idle_seen >= 2 {
            break;
        }
        if os::wait_control(Some(Duration::from_millis(20))) == Some(os::Control::Stop) {
            // A stop waits for nothing.
            exit_process(group, Instant::now(), logger)
        }
    }
    exit_process(group, deadline, logger)
}

/// Takes the group's user and group, refusing root, and the process settings; with
/// `chroot=`, the jail comes first (as mod_wsgi: chroot, setgid, setgroups, setuid, then
/// home, which is a path inside the jail).
fn become_user(group: &Group) -> Result<(), String> {
    let d = &group.def;
    if let Some(n) = d.cpu_priority {
        os::set_priority(n)?;
    }
    for (which, v) in [
        (os::Limit::Data, d.memory_limit),
        (os::Limit::AddressSpace, d.virtual_memory_limit),
        (os::Limit::CpuSeconds, d.cpu_time_limit),
    ] {
        if v > 0 {
            os::set_limit(which, v)?;
        }
    }
    if os::euid() == 0 {
        let user = os::user(d.user.as_ref().unwrap_or(&Ident::Id(group.child_ids.0)))?;
        if user.uid == 0 {
            return Err(
                "refusing to run a daemon process as root; set user= to an unprivileged user"
                    .into(),
            );
        }
        let gid = match &d.group {
            Some(g) => os::group(g)?,
            None if d.user.is_some() => user.gid,
            None => group.child_ids.1,
        };
        // Everything is looked up before the chroot: the jail need not hold the databases.
        let mut groups = os::group_list(&user.name, gid)?;
        for g in &d.supplementary_groups {
            groups.push(os::group(g)?);
        }
        if let Some(jail) = &d.chroot {
            os::chroot(jail)?;
        }
        os::drop_privileges(user.uid, gid, &groups)?;
        let home = d
            .home
            .clone()
            .or_else(|| d.user.as_ref().map(|_| user.home.clone()));
        if let Some(h) = home {
            std::env::set_current_dir(&h).map_err(|e| format!("home={h}: {e}"))?;
        }
    } else if let Some(h) = &d.home {
        std::env::set_current_dir(h).map_err(|e| format!("home={h}: {e}"))?;
    }
    if let Some(m) = d.umask {
        os::set_umask(m);
    }
    if let Some(l) = &d.lang {
        os::set_env_single_threaded("LANG", l);
    }
    if let Some(l) = &d.locale {
        os::set_env_single_threaded("LC_ALL", l);
    }
    Ok(())
}

/// The send buffer of a connection when send-buffer-size is not given (the kernel doubles it).
const SEND_BUF: u32 = 512 << 10;

/// The listener's token in the epoll set; connections get 1, 2, ...
const LISTENER: u64 = 0;
static NEXT_TOKEN_CONN: AtomicU64 = AtomicU64::new(LISTENER + 1);

/// What the request threads share.
struct Shared {
    epoll: os::Epoll,
    listener: UnixListener,
}

/// A connection from an Apache child, kept between its requests.
struct Conn {
    stream: UnixStream,
    /// Its epoll token, never reused (a stale event cannot reach a newer connection).
    token: u64,
    /// Requests it has carried.
    served: u64,
    /// When it last became idle.
    idle_since: Instant,
}

/// The idle connections, each registered in the epoll set under its token. `closing`: this
/// process keeps no more (it recycles, drains or stops).
struct Idle {
    closing: bool,
    conns: BTreeMap<u64, Conn>,
}

static IDLE: Mutex<Idle> = Mutex::new(Idle {
    closing: false,
    conns: BTreeMap::new(),
});
/// Mirrors `Idle::closing`, read without the lock.
static CLOSING: AtomicBool = AtomicBool::new(false);

/// Tells an idle connection's Apache child that this process gives it up, and closes it
/// (on drop). A request the child sent on it meanwhile is not run: the child retries it.
fn say_closing(c: &Conn) {
    let _ = protocol::write_frame(&mut &c.stream, Kind::Closing, &[]);
}

/// Closes every idle connection; `stop`: and keeps none from now on.
fn shed_idle(stop: bool) {
    let conns = match IDLE.lock() {
        Ok(mut idle) => {
            if stop {
                idle.closing = true;
                CLOSING.store(true, Ordering::SeqCst);
            }
            std::mem::take(&mut idle.conns)
        }
        Err(_) => return,
    };
    conns.values().for_each(say_closing);
}

/// Takes out of `conns` those idle [`pool::DAEMON_IDLE`] or longer at `now`; also says how
/// long until the next of the others is due.
fn take_stale(conns: &mut BTreeMap<u64, Conn>, now: Instant) -> (Vec<Conn>, Duration) {
    let mut next = pool::DAEMON_IDLE;
    let mut stale = Vec::new();
    for (&token, c) in conns.iter() {
        match pool::DAEMON_IDLE.checked_sub(now.saturating_duration_since(c.idle_since)) {
            Some(left) if !left.is_zero() => next = next.min(left),
            _ => stale.push(token),
        }
    }
    let stale = stale.iter().filter_map(|t| conns.remove(t)).collect();
    (stale, next)
}

/// Gives up, with `Closing`, each connection idle longer than its Apache child keeps one in
/// its pool: a child that sees little traffic would otherwise hold them (and this process's
/// descriptors) until it next takes from that pool, which may be never.
fn start_idle_sweep(group: &Arc<Group>, logger: fn() -> RequestLog) {
    let name = group.def.name.clone();
    let _ = std::thread::Builder::new()
        .name("wsgi-idle".into())
        .spawn(move || {
            let mut wait = pool::DAEMON_IDLE;
            loop {
                // A floor, so that connections falling due together go together.
                std::thread::sleep(wait.max(Duration::from_millis(100)));
                let stale = match IDLE.lock() {
                    Ok(mut idle) => {
                        let (stale, next) = take_stale(&mut idle.conns, Instant::now());
                        wait = next;
                        stale
                    }
                    Err(_) => return,
                };
                if stale.is_empty() {
                    continue;
                }
                stale.iter().for_each(say_closing);
                logger().log(
                    crate::wsgi::gateway::Severity::Debug,
                    &format!(
                        "RWSGI0545: daemon process group '{name}' process {}: gave up {} \
                         connection(s) idle for {} s",
                        os::pid(),
                        stale.len(),
                        pool::DAEMON_IDLE.as_secs()
                    ),
                );
            }
        });
}

/// Claims one request's place under maximum-requests (always granted without one).
fn admit(max: u64) -> bool {
    max == 0
        || ADMITTED
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
}

/// What a connection brought.
enum Served {
    /// No request (the Apache child closed it, or it was refused).
    Nothing,
    /// One request; `keep` when the exchange ended cleanly and the connection can carry the
    /// next.
    Request { keep: bool },
}

/// One request thread.
struct Worker<'a> {
    shared: &'a Shared,
    group: &'a Group,
    process: ProcessFacts,
    apache_version: (u32, u32, u32),
    log: RequestLog,
}

impl Worker<'_> {
    fn run(&self) {
        loop {
            let Some(token) = self.shared.epoll.wait() else {
                continue;
            };
            let conn = if token == LISTENER {
                self.accept()
            } else {
                IDLE.lock().ok().and_then(|mut i| i.conns.remove(&token))
            };
            if let Some(c) = conn {
                self.handle(c);
            }
        }
    }

    /// Takes one new connection from the listener. A process that recycles or has admitted
    /// its maximum-requests stops watching the listener: the connections stay queued for
    /// the other processes and its replacement.
    fn accept(&self) -> Option<Conn> {
        let max = self.group.def.maximum_requests;
        // Each request's place under maximum-requests is claimed before the accept: counted
        // after serving, threads accepting while the last ones run would take more.
        if RECYCLING.load(Ordering::SeqCst) || !admit(max) {
            return None;
        }
        let accepted = self.shared.listener.accept();
        let _ = self
            .shared
            .epoll
            .rearm(self.shared.listener.as_raw_fd(), LISTENER);
        let stream = match accepted {
            Ok((c, _)) => c,
            Err(e) => {
                if max > 0 {
                    ADMITTED.fetch_sub(1, Ordering::SeqCst);
                }
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) {
                    error(
                        &self.log,
                        &format!(
                            "RWSGI0511: daemon process group '{}': accept failed: {e}",
                            self.group.def.name
                        ),
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                return None;
            }
        };
        let conn = Conn {
            stream,
            token: NEXT_TOKEN_CONN.fetch_add(1, Ordering::Relaxed),
            served: 0,
            idle_since: Instant::now(),
        };
        match os::peer_uid(conn.stream.as_raw_fd()) {
            Some(uid) if uid == self.group.child_uid => {}
            other => {
                error(
                    &self.log,
                    &format!(
                        "RWSGI0512: daemon process group '{}': refused a connection from uid \
                         {other:?}; only Apache's children (uid {}) may connect",
                        self.group.def.name, self.group.child_uid
                    ),
                );
                if max > 0 {
                    ADMITTED.fetch_sub(1, Ordering::SeqCst);
                }
                return None;
            }
        }
        let _ = conn.stream.set_nonblocking(false);
        if self.group.def.send_buffer_size == 0 {
            // A response of up to about a MiB fits at once: the request's thread is free
            // while the Apache child still sends it, and neither side waits on the other.
            os::set_send_buffer(conn.stream.as_raw_fd(), SEND_BUF);
        }
        let _ = conn.stream.set_read_timeout(Some(self.group.io_timeout));
        let _ = conn.stream.set_write_timeout(Some(self.group.io_timeout));
        Some(conn)
    }

    /// Serves the next request of `conn` (its place already claimed when it is new), then
    /// keeps the connection idle or closes it.
    fn handle(&self, mut conn: Conn) {
        let max = self.group.def.maximum_requests;
        let reused = conn.served > 0;
        if reused && !admit(max) {
            // The last requests are in hand; the recycle follows when they end.
            say_closing(&conn);
            return;
        }
        let served = {
            let _busy = Busy::new();
            // A request waiting on a connection of a process whose threads are all busy
            // would wait there while another process may be idle: the idle connections are
            // given up, and their Apache children come back through the shared queue.
            if self.group.def.processes > 1
                && ACTIVE.load(Ordering::SeqCst) >= self.group.def.threads as usize
            {
                shed_idle(false);
            }
            let mut bufs = BUFFERS.take();
            let served = serve(
                &conn.stream,
                reused,
                self.group,
                self.process,
                self.apache_version,
                self.log,
                &mut bufs,
            );
            BUFFERS.set(bufs);
            served
        };
        let keep = match served {
            Served::Nothing => {
                if max > 0 {
                    ADMITTED.fetch_sub(1, Ordering::SeqCst);
                }
                return;
            }
            Served::Request { keep } => keep,
        };
        conn.served += 1;
        let n = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
        if max > 0 && n >= max {
            recycle(
                self.group,
                &format!("maximum-requests={max} reached"),
                &self.log,
            );
        }
        if keep {
            self.park(conn);
        }
    }

    /// Makes `conn` idle: watched for its next request, unless this process keeps none.
    fn park(&self, mut conn: Conn) {
        let Ok(mut idle) = IDLE.lock() else {
            return;
        };
        conn.idle_since = Instant::now();
        if idle.closing {
            drop(idle);
            say_closing(&conn);
            return;
        }
        // Rearmed under the lock: its event, if it fires at once, waits for the insert.
        let fd = conn.stream.as_raw_fd();
        let watched = if conn.served == 1 {
            self.shared.epoll.add(fd, conn.token)
        } else {
            self.shared.epoll.rearm(fd, conn.token)
        };
        if watched.is_ok() {
            idle.conns.insert(conn.token, conn);
        }
    }
}

fn error(log: &RequestLog, msg: &str) {
    log.log(crate::wsgi::gateway::Severity::Error, msg);
}

/// A request thread's buffers, kept from one request to the next.
#[derive(Default)]
struct Buffers {
    /// The request head frame.
    head: Vec<u8>,
    /// What reads from the Apache child go through.
    read: Vec<u8>,
}

thread_local! {
    static BUFFERS: std::cell::Cell<Buffers> = std::cell::Cell::new(Buffers::default());
}

/// Serves the next request of a connection (`reused`: it carried one before).
fn serve(
    conn: &UnixStream,
    reused: bool,
    group: &Group,
    process: ProcessFacts,
    apache_version: (u32, u32, u32),
    log: RequestLog,
    bufs: &mut Buffers,
) -> Served {
    let name = &group.def.name;
    let buf = &mut bufs.head;
    let mut rd = protocol::Buffered::new(conn, &mut bufs.read, READ_BUF);
    let head = match protocol::read_frame(&mut rd, buf) {
        Ok(Some(Kind::RequestHead)) => RequestHead::decode(buf),
        // The Apache child closed the connection (a pooled one, perhaps with our last frames
        // unread): no request, nothing to say.
        Ok(None) => return Served::Nothing,
        Err(ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Served::Nothing;
        }
        Ok(Some(k)) => Err(ProtoError::Malformed(if k == Kind::RequestBody {
            "body before the request head"
        } else {
            "unexpected frame instead of the request head"
        })),
        Err(e) => Err(e),
    };
    let head = match head {
        Ok(h) => h,
        Err(e) => {
            error(
                &log,
                &format!("RWSGI0513: daemon process group '{name}': bad request frame: {e}"),
            );
            return Served::Nothing;
        }
    };
    if !protocol::secret_matches(&head.secret, &group.secret) {
        error(
            &log,
            &format!(
                "RWSGI0514: daemon process group '{name}': request without this generation's \
                 secret refused"
            ),
        );
        return Served::Nothing;
    }
    // Checked after this request shows in ACTIVE, so a drain that saw none running has set
    // CLOSING first. The Apache child sends the request again on a new connection.
    if reused && CLOSING.load(Ordering::SeqCst) {
        let _ = protocol::write_frame(&mut &*conn, Kind::Closing, &[]);
        return Served::Nothing;
    }
    let head = in_jail(group, head);
    let _activity = (!head.ignore_activity).then(Activity::new);
    let ag = String::from_utf8_lossy(&head.application_group).into_owned();
    let counted = crate::httpd::status::begin_daemon(head.request_start_us, &ag);
    let daemon_start_us = now_us();
    let waited_us = daemon_start_us.saturating_sub(head.request_start_us);
    let queue_timeout = group.def.queue_timeout;
    let late = queue_timeout > 0 && waited_us > (queue_timeout as i64).saturating_mul(1_000_000);
    let mut gw = SocketGateway {
        conn,
        rd,
        out: Vec::new(),
        frame: Vec::new(),
        pos: 0,
        body_done: false,
        head: None,
        head_sent: false,
        ended: false,
        broken: false,
        failed: false,
        status: 500,
    };
    // Lines about this request go to its host's log and carry its client, as Apache's own
    // request lines do.
    let tagged = crate::httpd::log::Tagged {
        prefix: format!(
            "[client {}:{}] ",
            String::from_utf8_lossy(&head.remote_addr),
            head.remote_port
        ),
        base: crate::httpd::log::server_logger(head.vhost).unwrap_or(log),
    };
    let log = tagged.logger();
    let outcome = if late {
        // Too late to be of use: the client has most likely given up, and running it would
        // only delay the requests queued behind it.
        error(
            &log,
            &format!(
                "RWSGI0517: daemon process group '{name}': request waited {:.1} s for a \
                 thread, more than queue-timeout={queue_timeout}; answered 504 without running \
                 the application",
                waited_us as f64 / 1e6
            ),
        );
        app::Outcome::Status(504)
    } else {
        match interp::for_group(&ag, apache_version, &log) {
            Ok(interp) => run_app(interp, &head, daemon_start_us, name, process, &mut gw, log),
            Err(e) => {
                let status = match e {
                    GroupError::Limit { .. } => 503,
                    _ => 500,
                };
                if !matches!(e, GroupError::SetUpFailed { first: true, .. }) {
                    error(
                        &log,
                        &format!("RWSGI0515: daemon process group '{name}': {e}"),
                    );
                }
                app::Outcome::Status(status)
            }
        }
    };
    gw.finish(outcome);
    if let Some(rec) = counted {
        crate::httpd::status::end(rec, gw.status.into());
    }
    Served::Request {
        keep: gw.ended && !gw.broken && !gw.failed && gw.rd.buffer().is_empty(),
    }
}

/// With `chroot=`: the script and the paths the app sees, as they are inside the jail.
fn in_jail(group: &Group, mut head: RequestHead) -> RequestHead {
    if group.def.chroot.is_some() {
        for p in [
            &mut head.script,
            &mut head.script_filename,
            &mut head.document_root,
        ] {
            *p = group.def.in_jail(p).to_vec();
        }
    }
    head
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn run_app(
    interp: &interp::Interp,
    h: &RequestHead,
    daemon_start_us: i64,
    group: &str,
    process: ProcessFacts,
    gw: &mut SocketGateway<'_>,
    log: RequestLog,
) -> app::Outcome {
    let (headers, env) = (borrow(&h.headers), borrow(&h.env));
    let facts = RequestFacts {
        method: &h.method,
        protocol: &h.protocol,
        request_uri: &h.request_uri,
        query_string: &h.query_string,
        script_name: &h.script_name,
        path_info: &h.path_info,
        path_translated: h.path_translated.as_deref(),
        script_filename: &h.script_filename,
        headers: &headers,
        env: &env,
        server_software: &h.server_software,
        server_name: &h.server_name,
        server_addr: &h.server_addr,
        server_port: h.server_port,
        server_admin: &h.server_admin,
        server_signature: &h.server_signature,
        remote_addr: &h.remote_addr,
        remote_port: h.remote_port,
        document_root: &h.document_root,
        context_prefix: &h.context_prefix,
        context_document_root: &h.context_document_root,
        request_scheme: &h.request_scheme,
        remote_user: h.remote_user.as_deref(),
        auth_type: h.auth_type.as_deref(),
        pass_authorization: h.pass_authorization,
        cgi_pass_auth: h.cgi_pass_auth,
        proxy: h.proxy.as_ref(),
    };
    let script = String::from_utf8_lossy(&h.script).into_owned();
    let callable = String::from_utf8_lossy(&h.callable).into_owned();
    let ag = String::from_utf8_lossy(&h.application_group).into_owned();
    let job = app::Job {
        script: &script,
        reload_mtime: h.reload_mtime,
        callable: &callable,
        facts: &facts,
        mod_wsgi: ModWsgiFacts {
            process_group: group,
            application_group: &ag,
            callable_object: &callable,
            request_handler: &h.request_handler,
            handler_script: &h.handler_script,
            script_name: &h.script_name,
            path_info: &h.path_info,
            listener_host: &h.listener_host,
            listener_port: h.listener_port,
            request_id: &h.request_id,
            connection_id: h.connection_id.as_deref(),
            request_start_us: h.request_start_us,
            queue_start_us: h.queue_start_us,
            daemon_start_us,
            script_reloading: h.script_reloading,
            enable_sendfile: h.enable_sendfile,
            ignore_activity: h.ignore_activity,
            // A request_rec exists only in the Apache child.
            apache_request: None,
        },
        process,
    };
    app::run(interp, &job, gw, log)
}

fn borrow(v: &protocol::Pairs) -> Vec<(&[u8], &[u8])> {
    v.iter().map(|(k, v)| (&k[..], &v[..])).collect()
}

/// The least body a read asks the Apache child for.
const WANT: usize = 64 << 10;

/// What the request's reads from the Apache child are buffered in: a head usually comes in
/// one read; a bigger body frame's payload is read past the buffer, uncopied.
const READ_BUF: usize = 16 << 10;
/// Frames up to this size in all are gathered into one write.
const GATHER: usize = 64 << 10;

/// The daemon socket as a WSGI transport.
struct SocketGateway<'c> {
    conn: &'c UnixStream,
    rd: protocol::Buffered<'c, &'c UnixStream>,
    /// Small frames not written yet: they go out with the next big one, at the end of the
    /// response, or when the app flushes or reads.
    out: Vec<u8>,
    /// The request body frame being consumed.
    frame: Vec<u8>,
    pos: usize,
    body_done: bool,
    /// The head the app chose, sent with the first body bytes.
    head: Option<Vec<u8>>,
    head_sent: bool,
    ended: bool,
    /// The response ended cut short.
    broken: bool,
    /// The Apache child is gone, or the exchange lost its footing: nothing more is written.
    failed: bool,
    /// The response status, for the figures.
    status: u16,
}

impl SocketGateway<'_> {
    fn send(&mut self, kind: Kind, flags: u8, data: &[u8]) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::ClientGone);
        }
        if let Some(h) = self.head.take() {
            self.head_sent = true;
            self.queue(Kind::ResponseHead, 0, &h);
        }
        let flush = flags & protocol::FLAG_FLUSH != 0;
        let r = match kind {
            Kind::ResponseBody if data.is_empty() => Ok(()),
            Kind::ResponseBody if flush || self.out.len() + data.len() >= GATHER => {
                let r = protocol::write_after(&mut self.conn, &self.out, kind, flags, data);
                self.out.clear();
                r
            }
            _ => {
                self.queue(kind, flags, data);
                Ok(())
            }
        };
        let r = match kind {
            Kind::ResponseEnd | Kind::ResponseStatus => r.and_then(|_| self.flush()),
            _ => r,
        };
        r.map_err(|_| {
            self.failed = true;
            WriteError::ClientGone
        })
    }

    fn queue(&mut self, kind: Kind, flags: u8, payload: &[u8]) {
        self.out
            .extend_from_slice(&protocol::header(kind, flags, payload.len()));
        self.out.extend_from_slice(payload);
    }

    /// Writes the frames gathered so far.
    fn flush(&mut self) -> std::io::Result<()> {
        let r = std::io::Write::write_all(&mut self.conn, &self.out);
        self.out.clear();
        r
    }

    /// Asks the Apache child for the next body bytes (at least [`WANT`], so that small
    /// reads do not each cost a round trip) and reads its answer into `frame`. Body the app
    /// wrote goes first; a head not yet sent stays back (the app may still fail before it).
    fn pull(&mut self, want: usize) -> Result<Option<(Kind, u8)>, ProtoError> {
        let want = want.clamp(WANT, protocol::MAX_BODY) as u32;
        self.queue(Kind::BodyWanted, 0, &protocol::encode_wanted(want));
        self.flush()?;
        protocol::read_flagged(&mut self.rd, &mut self.frame)
    }

    fn end(&mut self, broken: bool) {
        if !self.ended {
            self.ended = true;
            self.broken = broken;
            let _ = self.send(Kind::ResponseEnd, 0, &[broken as u8]);
        }
    }

    /// Ends the exchange for whatever the app left undone.
    fn finish(&mut self, outcome: app::Outcome) {
        match outcome {
            app::Outcome::Done => self.end(false),
            app::Outcome::Status(s) if !self.head_sent => {
                self.status = s;
                self.head = None;
                self.ended = true;
                let _ = self.send(Kind::ResponseStatus, 0, &s.to_le_bytes());
            }
            app::Outcome::Status(_) => self.end(true),
            app::Outcome::WriteFailed => self.failed = true,
        }
    }

    /// Hands the Apache child the file's descriptor with a `ResponseFile` frame, so it sends
    /// the bytes itself (sendfile) instead of this process copying them through the socket.
    /// Ok(false) when the descriptor could not be attached: the caller copies instead.
    fn pass_file(
        &mut self,
        fd: i32,
        offset: u64,
        len: u64,
        after: After,
    ) -> Result<bool, WriteError> {
        // The head and the body so far go first, without the descriptor.
        self.send(Kind::ResponseBody, 0, &[])?;
        self.flush().map_err(|_| {
            self.failed = true;
            WriteError::ClientGone
        })?;
        let flags = if after == After::Flush {
            protocol::FLAG_FLUSH
        } else {
            0
        };
        let frame = protocol::file_frame(offset, len, flags);
        let sent = match os::send_with_fd(self.conn.as_raw_fd(), &frame, fd) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPIPE | libc::ECONNRESET | libc::EAGAIN | libc::ETIMEDOUT)
                ) =>
            {
                self.failed = true;
                return Err(WriteError::ClientGone);
            }
            // Too many descriptors in flight, a security module's refusal, ...: nothing was
            // sent, so the bytes can still go through the socket.
            Err(_) => return Ok(false),
        };
        let mut w = self.conn;
        std::io::Write::write_all(&mut w, &frame[sent..]).map_err(|_| {
            self.failed = true;
            WriteError::ClientGone
        })?;
        Ok(true)
    }
}

impl Gateway for SocketGateway<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadFailure> {
        loop {
            if self.pos < self.frame.len() {
                let n = buf.len().min(self.frame.len() - self.pos);
                buf[..n].copy_from_slice(&self.frame[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.body_done || buf.is_empty() {
                return Ok(0);
            }
            if self.ended {
                // The Apache child took the end frame as the end of the exchange: it no
                // longer answers for the body (a thread of the app still reading, or a read
                // in close()), and Apache discards what is left of it.
                return Err(ReadFailure::request_ended());
            }
            self.pos = 0;
            match self.pull(buf.len()) {
                Ok(Some((Kind::RequestBody, flags))) => {
                    self.body_done = flags & protocol::FLAG_END != 0;
                }
                Ok(Some((Kind::RequestEnd, _))) => {
                    self.body_done = true;
                    self.frame.clear();
                }
                other => {
                    self.body_done = true;
                    self.failed = true;
                    self.frame.clear();
                    let what = match other {
                        Err(e) => e.to_string(),
                        _ => "unexpected frame in the request body".into(),
                    };
                    return Err(ReadFailure {
                        status: 400,
                        message: format!("reading the request body from Apache failed: {what}"),
                    });
                }
            }
        }
    }

    fn set_head(&mut self, head: &ResponseHead) {
        self.status = head.status;
        self.head = Some(protocol::encode_response_head(head));
    }

    fn write(&mut self, data: &[u8], after: After) -> Result<(), WriteError> {
        let flags = if after == After::Flush {
            protocol::FLAG_FLUSH
        } else {
            0
        };
        self.send(Kind::ResponseBody, flags, data)?;
        if after == After::End {
            self.end(false);
        }
        if self.failed {
            Err(WriteError::ClientGone)
        } else {
            Ok(())
        }
    }

    fn quick_write(&self, _len: usize, _after: After) -> bool {
        false
    }

    fn send_file(
        &mut self,
        fd: i32,
        offset: u64,
        len: u64,
        after: After,
    ) -> Result<(), WriteError> {
        if len > 0 && self.pass_file(fd, offset, len, after)? {
            return self.write(&[], after);
        }
        let mut chunk = vec![0u8; protocol::MAX_BODY];
        let (mut at, end) = (offset, offset.saturating_add(len));
        while at < end {
            let want = ((end - at) as usize).min(chunk.len());
            let n = os::pread(fd, &mut chunk[..want], at)
                .map_err(|e| WriteError::Failed(format!("reading the file failed: {e}")))?;
            if n == 0 {
                break;
            }
            self.send(Kind::ResponseBody, 0, &chunk[..n])?;
            at += n as u64;
        }
        self.write(&[], after)
    }

    fn end_broken(&mut self) {
        self.end(true);
    }

    fn client_gone(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(token: u64, idle_since: Instant) -> Conn {
        Conn {
            stream: UnixStream::pair().unwrap().0,
            token,
            served: 1,
            idle_since,
        }
    }

    #[test]
    fn the_sweep_takes_connections_idle_past_the_pools_limit_and_waits_for_the_next() {
        let limit = pool::DAEMON_IDLE;
        // The daemon gives up a connection only after its Apache child stopped reusing it.
        assert!(limit > pool::MAX_IDLE);
        let now = Instant::now() + limit * 2;
        let mut conns: BTreeMap<u64, Conn> = [
            (1, limit * 2),
            (2, limit),
            (3, limit - Duration::from_secs(5)),
            (4, Duration::from_secs(1)),
        ]
        .into_iter()
        .map(|(t, age)| (t, conn(t, now - age)))
        .collect();
        let (stale, next) = take_stale(&mut conns, now);
        let mut gone: Vec<u64> = stale.iter().map(|c| c.token).collect();
        gone.sort();
        assert_eq!(gone, [1, 2]);
        assert_eq!(conns.keys().copied().collect::<Vec<_>>(), [3, 4]);
        // Connection 3 falls due first.
        assert_eq!(next, Duration::from_secs(5));
        // None idle: a full period.
        let (stale, next) = take_stale(&mut BTreeMap::new(), now);
        assert!(stale.is_empty());
        assert_eq!(next, limit);
    }
}

#!/usr/bin/python3
"""mod_rwsgi benchmark: static files vs mod_wsgi vs mod_rwsgi, embedded or daemon mode.

Method (bench/README.md, docs decisions §5): every target runs in its own Apache with the same
MPM, keep-alive, logging and sendfile settings; the client is always `wrk -t1 -c32 -d10s`
after an unrecorded 3 s warm-up; rounds interleave the targets; medians are reported.
Started by bench/run.sh. Settings come from the environment (see ENV below).
"""

import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")

ENV = {
    "TARGETS": "static mod_wsgi rwsgi",
    "SCENARIOS": "hello 1m 10m upload64k",
    "ROUNDS": "3",
    "DURATION": "10",  # seconds per measured run
    "WARMUP": "3",  # seconds of unrecorded warm-up before each measured run
    "CONNECTIONS": "32",
    "THREADS": "1",
    "BASE_PORT": "38080",  # first port tried; busy ports are skipped
    "LOGLEVEL": "warn",
    "RWSGI_MODULE": os.path.join(ROOT, "target", "mod_rwsgi.so"),
    "MOD_WSGI_MODULE": "/usr/lib/apache2/modules/mod_wsgi.so",
    "RESULTS": os.path.join(BENCH, "results", "latest.md"),
    "KEEP_WORKDIR": "",
    # 1: both WSGI targets get `WSGIEnableSendfile On` (mod_wsgi uses sendfile for
    # wsgi.file_wrapper only with it); 0: neither does.
    "WSGI_SENDFILE": "1",
}
CFG = {k: os.environ.get(k, v) for k, v in ENV.items()}

HTTPD = shutil.which("apache2") or "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"
MiB = 1024 * 1024
HELLO = b"Hello world\n"
UPLOAD = b"u" * 65536  # must match bench/post64k.lua
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# target key -> (name in the reports, WSGI module key or None, daemon mode?)
TARGETS = {
    "static": ("static", None, False),
    "mod_wsgi": ("mod_wsgi", "mod_wsgi", False),
    "rwsgi": ("mod_rwsgi", "rwsgi", False),
    "mod_wsgi-daemon": ("mod_wsgi-daemon", "mod_wsgi", True),
    "rwsgi-daemon": ("mod_rwsgi-daemon", "rwsgi", True),
}
TARGET_ALIASES = {"mod_rwsgi": "rwsgi", "mod_rwsgi-daemon": "rwsgi-daemon"}
# Daemon targets: one group with the shape of the embedded targets' Apache children
# (2 processes x 25 threads), so the same number of Python threads serves the same 32
# connections. display-name gives the daemons a title both modules write into argv[0]: that
# is how the harness tells them from the Apache children, which have the same parent.
DAEMON_GROUP = "bench"
DAEMON_TITLE = f"(wsgi:{DAEMON_GROUP})"
DAEMON_CONF = (f"WSGIDaemonProcess {DAEMON_GROUP} processes=2 threads=25 display-name=%{{GROUP}}\n"
               f"WSGIProcessGroup {DAEMON_GROUP}\n")
# scenario -> (url path, body size, applies to static?, wsgi app file)
SCENARIOS = {
    "hello": ("/hello", len(HELLO), True, "hello.wsgi"),
    "1m": ("/1m", MiB, True, "big1m.wsgi"),
    "10m": ("/10m", 10 * MiB, True, "file10m.wsgi"),
    "upload64k": ("/upload", len(UPLOAD), False, "echo.wsgi"),
}

# The server settings every target shares (bench/httpd.conf.in, shared with bench/soak.sh).
# Only the module lines and the routes differ.
with open(os.path.join(BENCH, "httpd.conf.in")) as _f:
    COMMON_CONF = _f.read()


def log(msg):
    print(msg, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- /proc helpers

def children_of(ppid):
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            kids.append(int(name))
    return kids


def server_pids(parent):
    """The Apache parent and all its descendants."""
    pids, todo = [], [parent]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children_of(p))
    return sorted(pids)


def cpu_ticks(pids):
    """{pid: utime+stime} for the pids that still exist (whole process, all threads)."""
    out = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return out


def rss_of(pid):
    """RSS bytes of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def memory(pids):
    """(RSS bytes, PSS bytes) summed over pids."""
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * PAGE
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return rss, pss


class MemSampler(threading.Thread):
    """Peak RSS/PSS summed over pids, and the peak RSS of each of the `each` pids."""

    def __init__(self, pids, each=(), interval=0.25):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peak_rss = self.peak_pss = 0
        self.peak_each = {p: 0 for p in each}
        self.stop_event = threading.Event()

    def sample(self):
        rss, pss = memory(self.pids)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        for p in self.peak_each:
            self.peak_each[p] = max(self.peak_each[p], rss_of(p))

    def run(self):
        while True:
            self.sample()
            if self.stop_event.wait(self.interval):
                return

    def finish(self):
        self.stop_event.set()
        self.join()
        self.sample()


# ---------------------------------------------------------------- servers

class Server:
    def __init__(self, key, port, work):
        self.key, self.port, self.work = key, port, work
        self.name, self.module, self.daemon = TARGETS[key]
        self.dir = os.path.join(work, "servers", self.name)
        self.conf = os.path.join(self.dir, "conf", "httpd.conf")
        self.pidfile = os.path.join(self.dir, "run", "httpd.pid")
        self.error_log = os.path.join(self.dir, "logs", "error_log")
        self.parent = None
        self.known_pids = set()
        self.stop_seconds = None

    def scenarios(self, wanted):
        return [s for s in wanted if self.module or SCENARIOS[s][2]]

    def render(self, wanted):
        for sub in ("conf", "logs", "run", "modules"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o755, exist_ok=True)
        data, apps = os.path.join(self.work, "data"), os.path.join(self.work, "apps")
        module_lines, routes = "", []
        if not self.module:
            files = {"hello": "hello.txt", "1m": "1m.bin", "10m": "10m.bin"}
            for s in self.scenarios(wanted):
                routes.append(f'Alias {SCENARIOS[s][0]} "{data}/{files[s]}"')
        else:
            src, sym = ((CFG["MOD_WSGI_MODULE"], "wsgi_module") if self.module == "mod_wsgi"
                        else (CFG["RWSGI_MODULE"], "rwsgi_module"))
            if not os.path.isfile(src):
                raise BenchError(f"{self.name}: module {src} not found"
                                 + (" (run 'make build')" if self.module == "rwsgi" else ""))
            # A private copy: a rebuild during the run cannot change the mapped file.
            mod = os.path.join(self.dir, "modules", os.path.basename(src))
            shutil.copyfile(src, mod)
            os.chmod(mod, 0o644)
            module_lines = (f"LoadModule {sym} {mod}\n"
                            "WSGIApplicationGroup %{GLOBAL}\n")
            if CFG["WSGI_SENDFILE"] == "1":
                module_lines += "WSGIEnableSendfile On\n"
            if self.daemon:
                module_lines += DAEMON_CONF
            for s in self.scenarios(wanted):
                routes.append(f'WSGIScriptAlias {SCENARIOS[s][0]} "{apps}/{SCENARIOS[s][3]}"')
        with open(self.conf, "w") as f:
            f.write(COMMON_CONF.format(dir=self.dir, port=self.port, moddir=MODDIR,
                                       module_lines=module_lines, loglevel=CFG["LOGLEVEL"],
                                       work=self.work, routes="\n".join(routes)))
        os.chmod(self.conf, 0o644)

    def _httpd(self, *args, timeout=30):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        return subprocess.run([HTTPD, "-f", self.conf, *args], env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def config_test(self):
        r = self._httpd("-t")
        if r.returncode:
            hint = ("\n(WSGI_SENDFILE=0 leaves WSGIEnableSendfile out for both WSGI targets)"
                    if "WSGIEnableSendfile" in r.stdout else "")
            raise BenchError(f"{self.name}: config test failed:\n{r.stdout}{hint}")

    def start(self):
        if port_open(self.port):
            raise BenchError(f"port {self.port} is already in use (set BASE_PORT)")
        r = self._httpd("-k", "start")
        if r.returncode:
            raise BenchError(f"{self.name}: start failed:\n{r.stdout}\n{self.log_tail()}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with open(self.pidfile) as f:
                    self.parent = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        else:
            raise BenchError(f"{self.name}: no pid file after 20 s\n{self.log_tail()}")
        while time.monotonic() < deadline:
            if len(server_pids(self.parent)) >= 3 and port_open(self.port):
                break
            time.sleep(0.1)
        else:
            raise BenchError(f"{self.name}: not serving after 20 s\n{self.log_tail()}")
        self.known_pids.update(server_pids(self.parent))

    def pids(self):
        pids = server_pids(self.parent)
        self.known_pids.update(pids)
        return pids

    def daemon_pids(self, pids):
        """Those of pids that are WSGI daemon processes (by their title)."""
        return [p for p in pids if self.daemon and cmdline(p).startswith(DAEMON_TITLE.encode())]

    def stop(self):
        if self.parent is None:
            return
        t0 = time.monotonic()
        try:
            self._httpd("-k", "stop", timeout=15)
        except (subprocess.TimeoutExpired, OSError):
            pass
        deadline = time.monotonic() + 20  # Apache itself SIGKILLs stuck children after ~6 s
        while time.monotonic() < deadline and pid_alive(self.parent):
            time.sleep(0.1)
        self.stop_seconds = time.monotonic() - t0
        # Anything left over: by the pids we saw, never by name.
        for p in sorted(self.known_pids):
            if pid_alive(p) and (pid_is_httpd(p, self.conf)
                                 or self.daemon_pids([p])):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.parent = None

    def log_tail(self, n=20):
        try:
            with open(self.error_log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no error log)"

    def bad_log_lines(self):
        """(client-gone lines, other lines) at level error or above, or with a traceback.

        wrk closes its connections when a run ends, in the middle of large responses; the
        modules log those failed writes. They are counted apart from everything else."""
        gone, other = [], []
        try:
            with open(self.error_log, errors="replace") as f:
                for line in f:
                    if not re.search(r":(error|crit|alert|emerg)\]|Traceback", line):
                        continue
                    (gone if CLIENT_GONE.search(line) else other).append(line.rstrip())
        except OSError:
            pass
        return gone, other


def free_port(start, taken):
    """The first port from start on that nothing listens on and that we can bind."""
    for port in range(start, start + 200):
        if port in taken or port_open(port):
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Apache does
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise BenchError(f"no free port in {start}..{start + 199}")


CLIENT_GONE = re.compile(r"failed to write response data|Connection reset by peer|Broken pipe"
                         r"|Exception occurred processing WSGI script")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def pid_is_httpd(pid, conf):
    return conf.encode() in cmdline(pid)


# ---------------------------------------------------------------- checks

def expected_body(scenario, work):
    if scenario == "hello":
        return HELLO
    if scenario == "1m":
        return b"x" * MiB
    if scenario == "10m":
        with open(os.path.join(work, "data", "10m.bin"), "rb") as f:
            return f.read()
    return UPLOAD


def check_body(server, scenario, work):
    url = f"http://127.0.0.1:{server.port}{SCENARIOS[scenario][0]}"
    data = UPLOAD if scenario == "upload64k" else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            body, status = resp.read(), resp.status
    except urllib.error.HTTPError as e:
        raise BenchError(f"{server.name} {url}: HTTP {e.code}\n{server.log_tail()}")
    except OSError as e:
        raise BenchError(f"{server.name} {url}: {e}\n{server.log_tail()}")
    want = expected_body(scenario, work)
    if status != 200 or body != want:
        raise BenchError(
            f"{server.name} {url}: status {status}, {len(body)} bytes "
            f"(sha256 {hashlib.sha256(body).hexdigest()[:12]}), expected {len(want)} bytes "
            f"(sha256 {hashlib.sha256(want).hexdigest()[:12]})")


def sendfile_check(server):
    """Count sendfile calls while three 10 MiB responses are served (strace on the children)."""
    strace = shutil.which("strace")
    if not strace:
        return "no strace"
    kids = [p for p in server.pids() if p != server.parent]
    out = os.path.join(server.dir, "logs", "strace.out")
    args = [strace, "-f", "-qq", "-e", "trace=sendfile,sendfile64", "-o", out]
    for p in kids:
        args += ["-p", str(p)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # attach
        if proc.poll() is not None:
            return "strace failed: " + proc.stderr.read().decode(errors="replace")[:80]
        for _ in range(3):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/10m", timeout=15).read()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        with open(out) as f:
            calls = [l for l in f if "sendfile" in l and "resumed>" not in l]
    except OSError:
        calls = []
    if not calls:
        return "no"
    daemons = {str(p) for p in server.daemon_pids(kids)}
    in_daemons = sum(1 for l in calls if l.split(None, 1)[0] in daemons)
    return f"yes ({len(calls)} calls" + (f", {in_daemons} in daemons)" if daemons else ")")


# ---------------------------------------------------------------- wrk

UNITS_T = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
UNITS_B = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def wrk_cmd(server, scenario, seconds):
    cmd = ["wrk", f"-t{CFG['THREADS']}", f"-c{CFG['CONNECTIONS']}", f"-d{seconds}s",
           "--latency", "--timeout", "10s"]
    if scenario == "upload64k":
        cmd += ["-s", os.path.join(BENCH, "post64k.lua")]
    return cmd + [f"http://127.0.0.1:{server.port}{SCENARIOS[scenario][0]}"]


def parse_wrk(text):
    r = {"requests": 0, "rps": 0.0, "p99_ms": float("nan"), "read_bytes": 0,
         "non2xx": 0, "socket_errors": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text)
    if m:
        r["requests"] = int(m.group(1))
        r["read_bytes"] = float(m.group(4)) * UNITS_B.get(m.group(5), 1)
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if m:
        r["p99_ms"] = float(m.group(1)) * UNITS_T[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
        r["socket_error_kinds"] = ", ".join(
            f"{n} {k}" for k, n in zip(("connect", "read", "write", "timeout"), m.groups())
            if n != "0")
    return r


def machine_ticks():
    """(process time, total) jiffies over all CPUs, from /proc/stat.

    Process time is user + nice + system. irq and softirq time (much of it the loopback
    traffic of the benchmark itself) is left out, as it is from the per-process figures."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[1] + v[2], sum(v)


def run_wrk(server, scenario, seconds):
    """Runs wrk; returns (parsed figures with wrk's own CPU seconds, raw output)."""
    seconds = int(seconds)
    p = subprocess.Popen(wrk_cmd(server, scenario, seconds), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    timer = threading.Timer(seconds + 60, p.kill)
    timer.start()
    try:
        out = p.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
        p.stdout.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise BenchError(f"wrk failed ({p.returncode}):\n{out}")
    r = parse_wrk(out)
    r["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    return r, out


def measure(server, scenario):
    # Unrecorded warm-up with the same client settings.
    warm, _ = run_wrk(server, scenario, CFG["WARMUP"])
    if warm["requests"] == 0:
        raise BenchError(f"{server.name} {scenario}: warm-up completed no requests\n"
                         f"{server.log_tail()}")
    time.sleep(0.5)
    pids = server.pids()  # the fixed set, after warm-up
    dpids = server.daemon_pids(pids)
    if server.daemon and not dpids:
        raise BenchError(f"{server.name}: no process titled {DAEMON_TITLE} among {pids}")
    idle_rss, idle_pss = memory(pids)
    # Per daemon process: the largest of the daemons (NaN for embedded targets).
    idle_daemon = max((rss_of(p) for p in dpids), default=float("nan"))
    sampler = MemSampler(pids, dpids)
    before, m_before = cpu_ticks(pids), machine_ticks()
    sampler.start()
    try:
        r, raw = run_wrk(server, scenario, CFG["DURATION"])
    finally:
        sampler.finish()
    after, m_after = cpu_ticks(pids), machine_ticks()
    notes = []
    if set(server.pids()) != set(pids) or set(after) != set(before):
        notes.append("server processes changed during the run")
    ticks = sum(after[p] - before[p] for p in before if p in after)
    r["cpu_s"] = ticks / CLK_TCK
    r["cpu_us_per_req"] = r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else float("nan")
    n = r["requests"] or float("nan")
    # The daemons' share of it: how the cost splits between relaying and running the app.
    dticks = sum(after[p] - before[p] for p in dpids if p in before and p in after)
    r["daemon_cpu_us_per_req"] = dticks * 1e6 / CLK_TCK / n if dpids else float("nan")
    r["client_cpu_us_per_req"] = r["client_cpu_s"] * 1e6 / n
    # Whatever else used the CPUs during the run: other processes on this shared machine,
    # and the harness itself. High values make the run less trustworthy.
    busy = (m_after[0] - m_before[0]) / CLK_TCK
    total = (m_after[1] - m_before[1]) / CLK_TCK
    r["other_cpu_pct"] = 100.0 * max(0.0, busy - r["cpu_s"] - r["client_cpu_s"]) / total \
        if total else float("nan")
    if r["other_cpu_pct"] > 15:
        r.setdefault("pre_info", []).append(
            f"{r['other_cpu_pct']:.0f}% of the machine's CPU went to other processes")
    r.update(idle_rss=idle_rss, idle_pss=idle_pss, peak_rss=sampler.peak_rss,
             peak_pss=sampler.peak_pss, pids=len(pids), daemons=len(dpids),
             daemon_idle_rss=idle_daemon,
             daemon_peak_rss=max(sampler.peak_each.values(), default=float("nan")))
    if r["non2xx"]:
        notes.append(f"{r['non2xx']} non-2xx responses")
    r["info"] = r.pop("pre_info", [])
    if r["socket_errors"] > max(64, r["requests"] // 200):
        notes.append(f"socket errors: {r['socket_error_kinds']}")
    elif r["socket_errors"]:
        # A few read errors are normal: the event MPM closes keep-alive connections when all
        # workers of a child are busy, and wrk reconnects.
        r["info"].append(f"socket errors: {r['socket_error_kinds']}")
    body = SCENARIOS[scenario][1]
    if body >= MiB and r["requests"] and r["read_bytes"] < 0.99 * r["requests"] * body:
        notes.append(f"read {r['read_bytes'] / MiB:.0f} MiB < requests x body")
    r["notes"] = notes
    r["raw"] = raw
    return r


# ---------------------------------------------------------------- report

def med(values):
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def fmt(v, nd=0):
    if v != v:
        return "n/a"
    return f"{v:,.{nd}f}"


def mib(v):
    return fmt(v / MiB, 1)


def summarize(results, servers, scenarios, meta):
    lines = []
    add = lines.append
    add("# mod_rwsgi benchmark results")
    add("")
    add(f"- Date: {meta['date']}; host: {meta['host']}")
    add(f"- Apache: {meta['apache']}; Python: {meta['python']}; wrk: {meta['wrk']}")
    add(f"- Targets: {', '.join(s.name for s in servers)}; checkout: {meta['checkout']}")
    if meta.get("rwsgi_module"):
        add(f"- mod_rwsgi module: {meta['rwsgi_module']}")
    add(f"- Client: `wrk -t{CFG['THREADS']} -c{CFG['CONNECTIONS']} -d{CFG['DURATION']}s "
        f"--latency` on 127.0.0.1 after a {CFG['WARMUP']} s unrecorded warm-up; "
        f"{CFG['ROUNDS']} rounds, targets interleaved, medians shown (req/s range in brackets).")
    add("- Server: event MPM, StartServers 2, ServerLimit 2, ThreadsPerChild 25, "
        "MaxRequestWorkers 50, KeepAlive On, MaxKeepAliveRequests 0, EnableSendfile On, "
        f"LogLevel {CFG['LOGLEVEL']}, no access log; WSGI targets with "
        "`WSGIApplicationGroup %{GLOBAL}`"
        + (" and `WSGIEnableSendfile On`." if CFG["WSGI_SENDFILE"] == "1"
           else "; WSGIEnableSendfile not set."))
    if any(s.daemon for s in servers):
        add("- Daemon targets (`-daemon`): the same Apache plus `"
            + DAEMON_CONF.strip().replace("\n", "` and `") + "`: 2 processes × 25 threads, "
            "the shape of the embedded targets' Apache children. Their CPU and the summed "
            "memory include the daemon processes (the daemons' own share of the CPU in "
            "brackets); *daemon RSS* is per daemon process (the "
            "larger of the two), idle just before the measured run, peak sampled during it.")
    others = [r["other_cpu_pct"] for runs in results.values() for r in runs]
    if others:
        add(f"- CPU used by other processes on the machine during the measured runs: median "
            f"{fmt(med(others))}%, max {fmt(max(others))}% of all CPUs.")
    add("- CPU µs/req: utime+stime of the Apache parent and children (/proc/PID/stat) over "
        "the measured run, divided by requests. Memory: summed over those pids; idle is just "
        "before the measured run (after warm-up), peak is sampled every 0.25 s during it.")
    add(f"- sendfile seen during 10m (strace): "
        + "; ".join(f"{k}: {v}" for k, v in meta["sendfile"].items()))
    stops = [f"{s.name} {s.stop_seconds:.1f} s" for s in servers if s.stop_seconds is not None]
    if stops:
        add(f"- Time for `apache2 -k stop` until the parent exited: {'; '.join(stops)}")
    add("")
    add("| scenario | target | req/s | p99 ms | CPU µs/req | idle RSS MiB | peak RSS MiB "
        "| idle PSS MiB | peak PSS MiB | daemon RSS idle/peak MiB |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for sc in scenarios:
        for s in servers:
            runs = results.get((sc, s.name))
            if not runs:
                continue
            m = {k: med([r[k] for r in runs]) for k in
                 ("rps", "p99_ms", "cpu_us_per_req", "daemon_cpu_us_per_req", "idle_rss",
                  "peak_rss", "idle_pss", "peak_pss", "daemon_idle_rss", "daemon_peak_rss")}
            medians[(sc, s.name)] = m
            lo, hi = min(r["rps"] for r in runs), max(r["rps"] for r in runs)
            flag = " ⚠" if any(r["notes"] for r in runs) else ""
            add(f"| {sc} | {s.name}{flag} | {fmt(m['rps'])} ({fmt(lo)}–{fmt(hi)}) "
                f"| {fmt(m['p99_ms'], 2)} | {fmt(m['cpu_us_per_req'], 1)}"
                + (f" ({fmt(m['daemon_cpu_us_per_req'], 1)} in daemons) " if s.daemon else " ")
                + f"| {mib(m['idle_rss'])} | {mib(m['peak_rss'])} | {mib(m['idle_pss'])} "
                f"| {mib(m['peak_pss'])} "
                + (f"| {mib(m['daemon_idle_rss'])} / {mib(m['daemon_peak_rss'])} |" if s.daemon
                   else "| – |"))
    pairs = [("mod_rwsgi", "static"), ("mod_rwsgi", "mod_wsgi"), ("mod_wsgi", "static"),
             ("mod_rwsgi-daemon", "mod_wsgi-daemon"), ("mod_rwsgi-daemon", "mod_rwsgi"),
             ("mod_wsgi-daemon", "mod_wsgi")]
    ratio_lines = []
    for sc in scenarios:
        for a, b in pairs:
            ma, mb = medians.get((sc, a)), medians.get((sc, b))
            if not ma or not mb:
                continue

            def ratio(k):
                return ma[k] / mb[k] if mb[k] and mb[k] == mb[k] and ma[k] == ma[k] else float(
                    "nan")
            ratio_lines.append(f"| {sc} | {a} / {b} | {fmt(ratio('rps'), 2)} "
                               f"| {fmt(ratio('cpu_us_per_req'), 2)} | {fmt(ratio('p99_ms'), 2)} "
                               f"| {fmt(ratio('peak_rss'), 2)} "
                               f"| {fmt(ratio('daemon_idle_rss'), 2)} "
                               f"| {fmt(ratio('daemon_peak_rss'), 2)} |")
    if ratio_lines:
        add("")
        add("Ratios of medians (within about ±5% counts as equal on this machine):")
        add("")
        add("| scenario | ratio | req/s | CPU µs/req | p99 | peak RSS | daemon idle RSS "
            "| daemon peak RSS |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        lines.extend(ratio_lines)
    goal_lines = daemon_goals(medians)
    if goal_lines:
        add("")
        add("Daemon-mode goals (ratios of medians above):")
        add("")
        lines.extend(goal_lines)
    notes = [f"- round {r['round']} {sc} {name}: {'; '.join(r['notes'])}"
             for (sc, name), runs in results.items() for r in runs if r["notes"]]
    if notes:
        add("")
        add("Warnings (⚠):")
        lines.extend(notes)
    if meta.get("log_problems"):
        add("")
        add("Error-log lines at level error or above (whole run, warm-ups included):")
        for name, (gone, other) in meta["log_problems"].items():
            text = f"- {name}: {len(gone)} about clients that went away (wrk closing its " \
                   f"connections at the end of a run), {len(other)} others"
            if other:
                text += f", e.g. `{other[0][:200]}`"
            add(text)
    add("")
    add("Per-round figures (req/s / p99 ms / CPU µs/req, and wrk socket errors if any):")
    add("")
    for (sc, name), runs in results.items():
        add(f"- {sc} {name}: " + ", ".join(
            f"r{r['round']} {fmt(r['rps'])} / {fmt(r['p99_ms'], 2)} / "
            f"{fmt(r['cpu_us_per_req'], 1)}"
            + (f" ({r['socket_error_kinds']})" if r["socket_errors"] else "") for r in runs))
    return "\n".join(lines) + "\n"


# (scenario, numerator, denominator, figure, at least (True) or at most (False) this ratio)
DAEMON_GOALS = [
    ("hello", "mod_rwsgi-daemon", "mod_wsgi-daemon", "rps", True, 2.0),
    ("1m", "mod_rwsgi-daemon", "mod_wsgi-daemon", "rps", True, 3.0),
    ("10m", "mod_rwsgi-daemon", "mod_rwsgi", "rps", True, 0.9),
    ("upload64k", "mod_rwsgi-daemon", "mod_wsgi-daemon", "rps", True, 1.5),
]


def daemon_goals(medians):
    out = []
    goals = list(DAEMON_GOALS)
    for sc in SCENARIOS:
        for k in ("daemon_idle_rss", "daemon_peak_rss"):
            goals.append((sc, "mod_rwsgi-daemon", "mod_wsgi-daemon", k, False, 1.0))
    for sc, a, b, k, at_least, want in goals:
        ma, mb = medians.get((sc, a)), medians.get((sc, b))
        if not ma or not mb or not mb[k] or ma[k] != ma[k] or mb[k] != mb[k]:
            continue
        got = ma[k] / mb[k]
        ok = got >= want if at_least else got <= want
        out.append(f"- {sc} {k.replace('_', ' ')}: {a} / {b} = {got:.2f} "
                   f"({'≥' if at_least else '≤'} {want:g}: {'met' if ok else 'NOT met'})")
    return out


def cmd_out(args):
    try:
        return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def meta_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    apache = cmd_out([HTTPD, "-v"]).splitlines()[0].split(":", 1)[-1].strip()
    rev = cmd_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", ROOT, "status", "--porcelain", "--", "src"])
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "host": f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}",
        "apache": apache,
        "python": cmd_out(["/usr/bin/python3", "--version"]).replace("Python ", ""),
        "wrk": cmd_out(["wrk", "--version"]).split()[1] if cmd_out(["wrk", "--version"]) else "?",
        "checkout": (rev if re.fullmatch(r"[0-9a-f]+", rev) else "no commit")
        + (" + uncommitted src/" if dirty and dirty != "?" else ""),
        "sendfile": {},
    }


# ---------------------------------------------------------------- main

def prepare_work():
    work = tempfile.mkdtemp(prefix="mod_rwsgi-bench-")
    os.chmod(work, 0o755)
    for sub in ("data", "apps", "servers"):
        os.makedirs(os.path.join(work, sub), mode=0o755)
    data = os.path.join(work, "data")
    with open(os.path.join(data, "hello.txt"), "wb") as f:
        f.write(HELLO)
    with open(os.path.join(data, "1m.bin"), "wb") as f:
        f.write(b"x" * MiB)
    with open(os.path.join(data, "10m.bin"), "wb") as f:
        f.write(bytes(range(256)) * (10 * MiB // 256))
    for name in os.listdir(os.path.join(BENCH, "apps")):
        with open(os.path.join(BENCH, "apps", name)) as f:
            text = f.read().replace("@DATA@", data)
        with open(os.path.join(work, "apps", name), "w") as f:
            f.write(text)
    for dirpath, dirs, files in os.walk(work):
        for d in dirs:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for fn in files:
            os.chmod(os.path.join(dirpath, fn), 0o644)
    return work


def main():
    keys = [TARGET_ALIASES.get(k, k) for k in CFG["TARGETS"].split()]
    for k in keys:
        if k not in TARGETS:
            raise BenchError(f"unknown target {k!r} ({', '.join(TARGETS)})")
    keys = list(dict.fromkeys(keys))
    scenarios = CFG["SCENARIOS"].split()
    for s in scenarios:
        if s not in SCENARIOS:
            raise BenchError(f"unknown scenario {s!r} ({', '.join(SCENARIOS)})")
    rounds = int(CFG["ROUNDS"])
    for tool in ("wrk", HTTPD):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found: run 'make deps'")
    if os.geteuid() != 0:
        raise BenchError("run as root: Apache must switch to www-data and /proc of its "
                         "children must be readable")

    runs_per_round = sum(len(Server(k, 0, "/").scenarios(scenarios)) for k in keys)
    est = rounds * runs_per_round * (int(CFG["WARMUP"]) + int(CFG["DURATION"]) + 1.5) + 30
    log(f"bench: targets {keys}, scenarios {scenarios}, {rounds} rounds, "
        f"{runs_per_round} runs per round: about {est / 60:.1f} min")

    work = prepare_work()
    servers, ports = [], set()
    for k in keys:
        port = free_port(int(CFG["BASE_PORT"]), ports)
        ports.add(port)
        servers.append(Server(k, port, work))
    meta = meta_info()
    if any(TARGETS[k][1] == "rwsgi" for k in keys) and os.path.isfile(CFG["RWSGI_MODULE"]):
        with open(CFG["RWSGI_MODULE"], "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        built = datetime.datetime.fromtimestamp(os.path.getmtime(CFG["RWSGI_MODULE"]))
        meta["rwsgi_module"] = (f"`{CFG['RWSGI_MODULE']}`, sha256 {digest}, "
                                f"modified {built:%Y-%m-%d %H:%M}")
    results = {}

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    try:
        for s in servers:
            s.render(scenarios)
            s.config_test()
        for s in servers:
            s.start()
            for sc in s.scenarios(scenarios):
                check_body(s, sc, work)
            log(f"bench: {s.name} on 127.0.0.1:{s.port} (pid {s.parent}, "
                f"{len(s.pids())} processes): bodies OK")
            if "10m" in scenarios:
                meta["sendfile"][s.name] = sendfile_check(s)
                log(f"bench: {s.name} sendfile during 10m: {meta['sendfile'][s.name]}")
        for rnd in range(1, rounds + 1):
            order = servers[(rnd - 1) % len(servers):] + servers[:(rnd - 1) % len(servers)]
            for sc in scenarios:
                for s in order:
                    if sc not in s.scenarios(scenarios):
                        continue
                    r = measure(s, sc)
                    r["round"] = rnd
                    results.setdefault((sc, s.name), []).append(r)
                    log(f"round {rnd} {sc:9} {s.name:9} {fmt(r['rps']):>9} req/s  "
                        f"p99 {fmt(r['p99_ms'], 2):>7} ms  "
                        f"CPU {fmt(r['cpu_us_per_req'], 1):>7} µs/req "
                        + (f"({fmt(r['daemon_cpu_us_per_req'], 1)} in daemons) " if s.daemon
                           else "")
                        + f"(wrk {fmt(r['client_cpu_us_per_req'], 1)}, others "
                        f"{fmt(r['other_cpu_pct'])}%)  "
                        f"RSS idle/peak {mib(r['idle_rss'])}/{mib(r['peak_rss'])} MiB"
                        + (f" (per daemon {mib(r['daemon_idle_rss'])}/"
                           f"{mib(r['daemon_peak_rss'])})" if s.daemon else "")
                        + (f"  ⚠ {'; '.join(r['notes'])}" if r["notes"] else "")
                        + (f"  ({'; '.join(r['info'])})" if r["info"] else ""))
        problems = {s.name: s.bad_log_lines() for s in servers}
        meta["log_problems"] = {k: v for k, v in problems.items() if v[0] or v[1]}
    finally:
        for s in servers:
            s.stop()
        if not CFG["KEEP_WORKDIR"]:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"bench: kept {work}")

    report = summarize(results, servers, scenarios, meta)
    print()
    print(report, end="")
    out = CFG["RESULTS"]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(report)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"meta": meta, "config": CFG,
                   "runs": [{"scenario": sc, "target": name,
                             **r}
                            for (sc, name), runs in results.items() for r in runs]},
                  f, indent=1, default=str)
    log(f"bench: wrote {out}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)

#!/usr/bin/python3
"""Sub-interpreter costs, mod_wsgi vs mod_rwsgi (issue: memory per extra interpreter and
per-request cost of a sub-interpreter request versus a %{GLOBAL} one).

One Apache child per target (event MPM, 1 process x 25 threads, same settings for both).
Memory: the child's RSS/PSS after every thread served %{GLOBAL} requests, then after
N more application groups (each its own sub-interpreter) each imported bench/apps/smallapp.wsgi;
the difference divided by N is the cost of one interpreter. Per-request cost: wrk -t1 -c32 for
DURATION s (after a 3 s warm-up) on a hello app in %{GLOBAL} and in a sub-interpreter; server
CPU (utime+stime of parent and child from /proc) per request. Rounds alternate the targets.
Usage: bench/interp.py  (env: RWSGI_MODULE, N, DURATION, ROUNDS)
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("N", "10"))
DURATION = os.environ.get("DURATION", "8")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
MODULES = {
    "mod_wsgi": ("/usr/lib/apache2/modules/mod_wsgi.so", "wsgi_module"),
    "mod_rwsgi": (os.environ.get("RWSGI_MODULE", os.path.join(ROOT, "target", "mod_rwsgi.so")),
                  "rwsgi_module"),
}
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

CONF = """ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile run/httpd.pid
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule {sym} {mod}
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
KeepAlive On
MaxKeepAliveRequests 0
ErrorLog logs/error_log
LogLevel warn
<Directory "{apps}">
    Require all granted
</Directory>
WSGIScriptAlias /global "{apps}/hello.wsgi" application-group=%{{GLOBAL}}
WSGIScriptAlias /sub "{apps}/hello.wsgi" application-group=sub
{groups}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        assert r.status == 200, (path, r.status)
        return r.read()


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def rss_pss_kib(pid):
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def ticks(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return t


class Target:
    def __init__(self, name, work, apps):
        self.name = name
        self.dir = os.path.join(work, name)
        self.port = free_port()
        mod, sym = MODULES[name]
        if not os.path.isfile(mod):
            sys.exit(f"{name}: {mod} not found (run 'make build')")
        for d in ("conf", "logs", "run"):
            os.makedirs(os.path.join(self.dir, d), mode=0o755)
        os.chmod(os.path.dirname(self.dir), 0o755)
        shutil.copyfile(mod, os.path.join(self.dir, "mod.so"))
        groups = "\n".join(f'WSGIScriptAlias /g{i} "{apps}/smallapp.wsgi"' for i in range(N))
        self.conf = os.path.join(self.dir, "conf", "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=self.dir, port=self.port, sym=sym,
                                mod=os.path.join(self.dir, "mod.so"), apps=apps,
                                groups=groups))
        self.parent = None

    def httpd(self, *args):
        return subprocess.run(["apache2", "-f", self.conf, *args], capture_output=True,
                              text=True, env={"PATH": "/usr/sbin:/usr/bin:/bin"}, timeout=60)

    def start(self):
        r = self.httpd("-k", "start")
        if r.returncode:
            sys.exit(f"{self.name}: {r.stdout}{r.stderr}")
        deadline = time.time() + 20
        last = None
        while time.time() < deadline:
            try:
                with open(os.path.join(self.dir, "run", "httpd.pid")) as f:
                    self.parent = int(f.read())
                if children(self.parent):
                    get(self.port, "/global")
                    return
            except (OSError, ValueError, ConnectionError, urllib.error.URLError) as e:
                last = e
            time.sleep(0.2)
        with open(os.path.join(self.dir, "logs", "error_log"), errors="replace") as f:
            tail = f.read()[-2000:]
        self.stop()
        sys.exit(f"{self.name}: not serving after 20 s ({last})\n{tail}")

    def child(self):
        kids = children(self.parent)
        assert len(kids) == 1, kids
        return kids[0]

    def stop(self):
        if self.parent:
            self.httpd("-k", "stop")
            deadline = time.time() + 15
            while time.time() < deadline and os.path.exists(f"/proc/{self.parent}"):
                time.sleep(0.1)
            self.parent = None

    def memory_per_interp(self):
        # Every worker thread serves %{GLOBAL} first, so per-thread costs (thread states,
        # malloc arenas) are in the baseline and the difference is the interpreters' own.
        subprocess.run(["wrk", "-t1", "-c32", "-d2s", f"http://127.0.0.1:{self.port}/global"],
                       capture_output=True)
        time.sleep(0.5)
        c = self.child()
        base = rss_pss_kib(c)
        for i in range(N):
            get(self.port, f"/g{i}")
        time.sleep(0.5)
        after = rss_pss_kib(c)
        return ((after[0] - base[0]) / N / 1024, (after[1] - base[1]) / N / 1024)

    def cpu_per_request(self, path):
        url = f"http://127.0.0.1:{self.port}{path}"
        subprocess.run(["wrk", "-t1", "-c32", "-d3s", url], capture_output=True)
        pids = [self.parent] + children(self.parent)
        t0 = ticks(pids)
        out = subprocess.run(["wrk", "-t1", "-c32", f"-d{DURATION}s", url],
                             capture_output=True, text=True).stdout
        t1 = ticks(pids)
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        return rps, (t1 - t0) / CLK * 1e6 / max(reqs, 1)


def main():
    work = tempfile.mkdtemp(prefix="rwsgi-interp-bench-")
    os.chmod(work, 0o755)
    shutil.copytree(os.path.join(ROOT, "bench", "apps"), os.path.join(work, "apps"))
    for dp, dn, fn in os.walk(work):
        for d in dn:
            os.chmod(os.path.join(dp, d), 0o755)
        for f in fn:
            os.chmod(os.path.join(dp, f), 0o644)
    results = {name: {"rss": [], "pss": [], "g": [], "s": []} for name in MODULES}
    try:
        for rnd in range(ROUNDS):
            for name in MODULES:
                t = Target(name, os.path.join(work, f"r{rnd}"), os.path.join(work, "apps"))
                t.start()
                try:
                    rss, pss = t.memory_per_interp()
                    g = t.cpu_per_request("/global")
                    s = t.cpu_per_request("/sub")
                finally:
                    t.stop()
                r = results[name]
                r["rss"].append(rss)
                r["pss"].append(pss)
                r["g"].append(g)
                r["s"].append(s)
                print(f"round {rnd + 1} {name}: +{rss:.2f} MiB RSS/interp, "
                      f"%{{GLOBAL}} {g[0]:,.0f} req/s {g[1]:.1f} µs, "
                      f"sub {s[0]:,.0f} req/s {s[1]:.1f} µs", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print(f"\n| target | RSS per extra interpreter (MiB) | PSS per interpreter (MiB) | "
          f"%{{GLOBAL}} req/s | %{{GLOBAL}} CPU µs/req | sub-interp req/s | sub-interp CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {med(r['rss']):.2f} | {med(r['pss']):.2f} | "
              f"{med(x[0] for x in r['g']):,.0f} | {med(x[1] for x in r['g']):.1f} | "
              f"{med(x[0] for x in r['s']):,.0f} | {med(x[1] for x in r['s']):.1f} |")
    print(f"\n(N={N} interpreters; {ROUNDS} rounds, medians; wrk -t1 -c32 -d{DURATION}s; "
          "1 child x 25 threads, event MPM)")


if __name__ == "__main__":
    main()

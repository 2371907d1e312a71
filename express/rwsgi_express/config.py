"""Renders a server root: ``httpd.conf``, the ``apachectl`` wrapper and the start-up script.

The configuration is built from sections, each a function of the settings. The WSGI section is
chosen by ``Settings.mode``: ``daemon`` (the default, as with mod_wsgi-express: the app runs in a
``WSGIDaemonProcess`` group sized by --processes/--threads, and the Apache children only relay
requests to it) or ``embedded`` (the app runs inside the Apache children, sized through the MPM).
"""

import math
import os
import time
from dataclasses import dataclass, field

MPMS = ("event", "worker", "prefork")

# The WSGIDaemonProcess options the command sets, each also a command-line option
# (--OPTION, --daemon-backlog for listen-backlog), with mod_wsgi-express's defaults. A zero
# value is the directive's own default (off) and is left out of the config. startup-timeout
# is not offered yet; response-buffer-size and response-socket-timeout are not offered:
# mod_rwsgi accepts them without effect (docs/directives.md).
DAEMON_OPTIONS = (
    ("maximum-requests", 0, "requests a daemon process serves before it is replaced; 0: no limit"),
    ("inactivity-timeout", 0, "seconds without requests after which a daemon process restarts; 0: never"),
    ("restart-interval", 0, "seconds after which a daemon process is replaced; 0: never"),
    ("request-timeout", 60, "seconds a request may run before its daemon process restarts; 0: no limit"),
    ("connect-timeout", 15, "seconds an Apache child tries to reach a daemon (then 503)"),
    ("socket-timeout", 60, "seconds of silence on the daemon socket (then 504)"),
    ("queue-timeout", 45, "seconds a request may wait for a daemon thread (then 504)"),
    ("graceful-timeout", 15, "seconds a recycling daemon process waits for its requests"),
    ("eviction-timeout", 0, "seconds an evicted (SIGUSR1) daemon process waits for its requests; 0: as graceful-timeout"),
    ("shutdown-timeout", 5, "seconds a stopping daemon process is given before SIGKILL"),
    ("deadlock-timeout", 60, "seconds the GIL may stay held before the daemon process restarts"),
    ("listen-backlog", 100, "connections queued on the daemon socket"),
    ("header-buffer-size", 32768, "longest response header line from the app, in bytes"),
)


def daemon_flag(option):
    """The command-line option that sets a WSGIDaemonProcess option."""
    return "--daemon-backlog" if option == "listen-backlog" else "--" + option


# Threads per Apache child in daemon mode, where the children only relay requests.
RELAY_THREADS_PER_CHILD = 25


@dataclass
class Settings:
    """Every resolved value the generated files depend on (absolute paths only)."""

    script: str
    server_root: str
    httpd: str
    modules_dir: str
    module: str
    port: int
    host: str = None
    processes: int = 1
    threads: int = 5
    user: str = None
    group: str = None
    mount_point: str = "/"
    url_aliases: list = field(default_factory=list)
    python_path: list = field(default_factory=list)
    python_home: str = None
    working_directory: str = None
    include_files: list = field(default_factory=list)
    reload_on_changes: bool = False
    log_to_terminal: bool = False
    access_log: bool = False
    log_level: str = "warn"
    server_status: bool = False
    callable_object: str = "application"
    mime_types: str = None
    mode: str = "daemon"
    server_mpm: str = None
    daemon_options: dict = field(default_factory=lambda: {o: v for o, v, _ in DAEMON_OPTIONS})

    @property
    def process_group(self):
        """The daemon process group's name, HOST:PORT as mod_wsgi-express names it."""
        return "%s:%d" % (self.host or "localhost", self.port)

    @property
    def display_name(self):
        return "(wsgi:%s:%d:%d)" % (self.host or "localhost", self.port, os.getuid())

    @property
    def max_clients(self):
        """Connections the Apache children take in daemon mode: the daemons' capacity with
        half again as many for requests that queue or are static, plus headroom (the sizing
        mod_wsgi-express uses)."""
        return 10 + max(10, int(1.5 * self.processes * self.threads))

    @property
    def conf_path(self):
        return os.path.join(self.server_root, "httpd.conf")

    @property
    def apachectl_path(self):
        return os.path.join(self.server_root, "apachectl")

    @property
    def startup_script(self):
        return os.path.join(self.server_root, "startup.py")

    @property
    def error_log(self):
        return "/dev/stderr" if self.log_to_terminal else os.path.join(self.server_root, "error_log")

    @property
    def access_log_file(self):
        return "/dev/stdout" if self.log_to_terminal else os.path.join(self.server_root, "access_log")

    @property
    def mpm(self):
        """event (or worker) for threaded children; prefork in embedded mode when the app
        wants one thread per process (daemon-mode children only relay, so threads suit them)."""
        if self.server_mpm:
            return self.server_mpm
        have = [m for m in MPMS if os.path.exists(self._mod("mpm_%s" % m))]
        if self.mode == "embedded" and self.threads == 1 and "prefork" in have:
            return "prefork"
        threaded = [m for m in have if m != "prefork"]
        return (threaded or have or ["event"])[0]

    def _mod(self, name):
        return os.path.join(self.modules_dir, "mod_%s.so" % name)

    def url(self):
        host = self.host or "localhost"
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d%s" % (host, self.port, self.mount_point)


def q(value):
    """A value as one double-quoted Apache config argument."""
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def load(s, name, required=True):
    """LoadModule for a standard module unless httpd has it built in. An optional module that
    is absent is left out; a required one is named anyway, so that Apache's own error says
    which file is missing."""
    path = s._mod(name)
    if not required and not os.path.exists(path):
        return ""
    return "<IfModule !%s_module>\nLoadModule %s_module %s\n</IfModule>" % (name, name, q(path))


def general(s):
    if s.host:
        listen = "[%s]:%d" % (s.host, s.port) if ":" in s.host else "%s:%d" % (s.host, s.port)
    else:
        listen = str(s.port)
    lines = [
        "ServerRoot %s" % q(s.server_root),
        "ServerName %s" % (s.host if s.host and ":" not in s.host else "localhost"),
        "PidFile %s" % q(os.path.join(s.server_root, "httpd.pid")),
        "DefaultRuntimeDir %s" % q(s.server_root),
        "Mutex file:%s default" % s.server_root,
        "Listen %s" % listen,
        "ServerSignature Off",
        "ServerTokens Prod",
        "HostnameLookups Off",
        "Timeout 60",
        "User %s" % s.user,
        "Group %s" % s.group,
    ]
    return "\n".join(lines)


def mpm(s):
    name = s.mpm
    out = ["LoadModule mpm_%s_module %s" % (name, q(s._mod("mpm_" + name)))]
    if s.mode == "embedded":
        # The children are the app's processes, so --processes/--threads size them, with
        # spare bounds that keep all of them alive: there is no other place the app lives.
        p, t = s.processes, s.threads
        start, spare_min = p, 1
    else:
        # The children only relay requests to the daemons: size them for connections,
        # starting one child and growing on demand. A quarter of the threads kept spare, as
        # Apache's defaults do (a spare minimum near MaxRequestWorkers logs AH10159).
        total = s.max_clients
        t = 1 if name == "prefork" else min(RELAY_THREADS_PER_CHILD, total)
        p = math.ceil(total / t)
        start, spare_min = 1, max(1, p * t // 4)
    if name == "prefork":
        out += [
            "StartServers %d" % start,
            "MinSpareServers 1",
            "MaxSpareServers %d" % max(p if s.mode == "embedded" else 2, 1),
            "ServerLimit %d" % p,
            "MaxRequestWorkers %d" % p,
        ]
    else:
        out += [
            "StartServers %d" % start,
            "ServerLimit %d" % p,
            "ThreadLimit %d" % t,
            "ThreadsPerChild %d" % t,
            "MaxRequestWorkers %d" % (p * t),
            "MinSpareThreads %d" % spare_min,
            "MaxSpareThreads %d" % max(p * t, spare_min + t),
        ]
    out.append("MaxConnectionsPerChild 0")
    return "\n".join(out)


def modules(s):
    out = [
        load(s, "unixd"),
        load(s, "authn_core"),
        load(s, "authz_core"),
        load(s, "authz_host"),
        load(s, "mime"),
        load(s, "alias"),
        load(s, "env", required=False),
    ]
    if s.access_log:
        out.append(load(s, "log_config"))
    if s.server_status:
        out.append(load(s, "status"))
    out.append("LoadModule rwsgi_module %s" % q(s.module))
    return "\n".join(x for x in out if x)


def files(s):
    out = []
    if s.mime_types:
        out.append("TypesConfig %s" % q(s.mime_types))
    htdocs = os.path.join(s.server_root, "htdocs")
    out += [
        "DocumentRoot %s" % q(htdocs),
        "<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>",
        "<Directory %s>\n    Require all granted\n</Directory>" % q(htdocs),
    ]
    return "\n".join(out)


def logging(s):
    out = ["ErrorLog %s" % q(s.error_log), "LogLevel %s" % s.log_level]
    if s.access_log:
        out += [
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b" common',
            "CustomLog %s common" % q(s.access_log_file),
        ]
    return "\n".join(out)


def aliases(s):
    out = []
    for url, path in s.url_aliases:
        if os.path.isdir(path):
            out.append("Alias %s %s\n<Directory %s>\n    Require all granted\n</Directory>" % (q(url), q(path), q(path)))
        else:
            d, f = os.path.split(path)
            out.append(
                "Alias %s %s\n<Directory %s>\n    <Files %s>\n        Require all granted\n    </Files>\n</Directory>"
                % (q(url), q(path), q(d), q(f))
            )
    return "\n".join(out)


def server_status(s):
    if not s.server_status:
        return ""
    return (
        "ExtendedStatus On\n<Location /server-status>\n    SetHandler server-status\n"
        "    Require local\n</Location>"
    )


def python_path(s):
    """sys.path additions: --python-path entries, then the working directory (as the
    daemon's home= adds it under mod_wsgi-express)."""
    paths = list(s.python_path)
    if s.working_directory and s.working_directory not in paths:
        paths.append(s.working_directory)
    return paths


def wsgi_embedded(s):
    out = []
    if s.python_home:
        out.append("WSGIPythonHome %s" % q(s.python_home))
    paths = python_path(s)
    if paths:
        out.append("WSGIPythonPath %s" % q(":".join(paths)))
    out += [
        "WSGIScriptReloading %s" % ("On" if s.reload_on_changes else "Off"),
        "WSGIPassAuthorization On",
    ]
    if s.callable_object != "application":
        out.append("WSGICallableObject %s" % s.callable_object)
    if s.working_directory:
        out.append(
            "WSGIImportScript %s process-group=%%{GLOBAL} application-group=%%{GLOBAL}"
            % q(s.startup_script)
        )
    out += [
        script_access(s),
        "WSGIScriptAlias %s %s process-group=%%{GLOBAL} application-group=%%{GLOBAL}"
        % (q(s.mount_point), q(s.script)),
    ]
    return "\n".join(out)


def script_access(s):
    d, f = os.path.split(s.script)
    return "<Directory %s>\n    <Files %s>\n        Require all granted\n    </Files>\n</Directory>" % (q(d), q(f))


def wsgi_daemon(s):
    group = q(s.process_group)
    opts = [
        "processes=%d" % s.processes,
        "threads=%d" % s.threads,
        "user=%s" % q(s.user),
        "group=%s" % q(s.group),
        "display-name=%s" % q(s.display_name),
    ]
    if s.working_directory:
        opts.append("home=%s" % q(s.working_directory))
    if s.python_home:
        opts.append("python-home=%s" % q(s.python_home))
    paths = python_path(s)
    if paths:
        opts.append("python-path=%s" % q(":".join(paths)))
    opts += ["%s=%d" % (o, v) for o, v in s.daemon_options.items() if v]
    out = []
    if s.python_home:
        # The Apache children start Python too; the same one as the daemons.
        out.append("WSGIPythonHome %s" % q(s.python_home))
    out += [
        "WSGIDaemonProcess %s \\\n    %s" % (group, " \\\n    ".join(opts)),
        "WSGIProcessGroup %s" % group,
        "WSGIApplicationGroup %{GLOBAL}",
        "WSGIScriptReloading %s" % ("On" if s.reload_on_changes else "Off"),
        "WSGIPassAuthorization On",
    ]
    if s.callable_object != "application":
        out.append("WSGICallableObject %s" % s.callable_object)
    if s.reload_on_changes:
        out.append(
            "WSGIImportScript %s process-group=%s application-group=%%{GLOBAL}"
            % (q(s.startup_script), group)
        )
    out += [
        script_access(s),
        "WSGIScriptAlias %s %s process-group=%s application-group=%%{GLOBAL}"
        % (q(s.mount_point), q(s.script), group),
    ]
    return "\n".join(out)


WSGI_SECTIONS = {"embedded": wsgi_embedded, "daemon": wsgi_daemon}


def includes(s):
    return "\n".join("Include %s" % q(f) for f in s.include_files)


SECTIONS = (
    ("server", general),
    ("processes and threads", mpm),
    ("modules", modules),
    ("files", files),
    ("logs", logging),
    ("static files (--url-alias)", aliases),
    ("server status (--server-status)", server_status),
    ("WSGI application", lambda s: WSGI_SECTIONS[s.mode](s)),
    ("extra configuration (--include-file)", includes),
)


def httpd_conf(s, argv):
    """The complete httpd.conf text."""
    head = "# Written by rwsgi-express on %s: %s\n# Run the command again to change it; edits here are overwritten.\n" % (
        time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        " ".join(argv),
    )
    parts = [head]
    for title, section in SECTIONS:
        text = section(s)
        if text:
            parts.append("# --- %s\n%s\n" % (title, text))
    return "\n".join(parts)


def httpd_args(s):
    """Arguments that start this server's httpd (the apachectl wrapper adds -k ACTION)."""
    return [s.httpd, "-f", s.conf_path]


def apachectl(s):
    """A shell wrapper: start/stop/restart/graceful/graceful-stop/configtest this server."""
    httpd = " ".join(shq(a) for a in httpd_args(s))
    return """#!/bin/sh
# Controls the Apache instance that rwsgi-express set up in this directory.
# Usage: apachectl start|stop|restart|graceful|graceful-stop|configtest [httpd options]
# (start -DFOREGROUND keeps httpd in the foreground.)
action=$1
[ $# -gt 0 ] && shift
case "$action" in
start|stop|restart|graceful|graceful-stop)
    exec %(httpd)s -k "$action" "$@" ;;
configtest)
    exec %(httpd)s -t "$@" ;;
*)
    echo "usage: $0 start|stop|restart|graceful|graceful-stop|configtest" >&2
    exit 2 ;;
esac
""" % {"httpd": httpd}


STARTUP = """# Written by rwsgi-express: the working directory of the app's processes.
import os
import sys

try:
    os.chdir(%(dir)r)
except OSError as e:
    print("rwsgi-express: the app runs in %%s, not in the working directory %(dir)s (%%s); "
          "give --working-directory a directory that user %(user)s can enter"
          %% (os.getcwd(), e.strerror), file=sys.stderr)
"""


RELOADER = """# Written by rwsgi-express (--reload-on-changes): restarts this daemon process once the
# WSGI script or a Python module it has loaded changes on disk. SIGUSR1 sent to itself makes
# the process finish its requests and exit; the Apache parent starts a new one at once.
import os
import signal
import sys
import threading
import time

SCRIPT = %(script)r


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _files():
    yield SCRIPT
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            yield path


def _monitor():
    seen = {}
    while True:
        for path in _files():
            mtime = _mtime(path)
            if path not in seen:
                seen[path] = mtime
            elif seen[path] != mtime:
                print("rwsgi-express: %%s changed; restarting daemon process %%d"
                      %% (path, os.getpid()), file=sys.stderr)
                os.kill(os.getpid(), signal.SIGUSR1)
                return
        time.sleep(1.0)


threading.Thread(target=_monitor, name="rwsgi-express-reloader", daemon=True).start()
"""


def startup(s):
    """The start-up script: in embedded mode, run in each child before requests to enter the
    working directory (as daemon home= does); in daemon mode, the reloader."""
    if s.mode == "daemon":
        return RELOADER % {"script": s.script}
    return STARTUP % {"dir": s.working_directory, "user": s.user}


def needs_startup(s):
    return s.reload_on_changes if s.mode == "daemon" else bool(s.working_directory)


def shq(a):
    """Quote one word for /bin/sh."""
    return "'%s'" % a.replace("'", "'\\''")


def write(path, text, mode):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_server_root(s, argv):
    """Create the server root (readable by the Apache user) and write its files."""
    os.makedirs(s.server_root, exist_ok=True)
    os.chmod(s.server_root, 0o755)
    htdocs = os.path.join(s.server_root, "htdocs")
    os.makedirs(htdocs, exist_ok=True)
    os.chmod(htdocs, 0o755)
    write(s.conf_path, httpd_conf(s, argv), 0o644)
    write(s.apachectl_path, apachectl(s), 0o755)
    if needs_startup(s):
        write(s.startup_script, startup(s), 0o644)

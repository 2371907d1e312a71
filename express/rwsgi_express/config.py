"""Renders a server root: ``httpd.conf``, the ``apachectl`` wrapper and the start-up script.

The configuration is built from sections, each a function of the settings. The WSGI section is
chosen by ``Settings.mode``: only ``embedded`` exists today (the app runs inside the Apache
children, sized through the MPM); a daemon-mode section goes beside it when mod_rwsgi has
``WSGIDaemonProcess``.
"""

import os
import time
from dataclasses import dataclass, field

MPMS = ("event", "worker", "prefork")


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
    mode: str = "embedded"

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
        """event (or worker) for threaded children; prefork when one thread per process."""
        have = [m for m in MPMS if os.path.exists(self._mod("mpm_%s" % m))]
        if self.threads == 1 and "prefork" in have:
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
    # Embedded mode: the children are the app's processes, so --processes/--threads size them.
    # In daemon mode they will only relay requests, and be sized for connections instead.
    name = s.mpm
    p, t = s.processes, s.threads
    out = ["LoadModule mpm_%s_module %s" % (name, q(s._mod("mpm_" + name)))]
    if name == "prefork":
        out += [
            "StartServers %d" % p,
            "MinSpareServers 1",
            "MaxSpareServers %d" % p,
            "ServerLimit %d" % p,
            "MaxRequestWorkers %d" % p,
        ]
    else:
        # Spare-thread bounds that keep all `p` children alive: embedded mode has no other
        # place where the app's processes live.
        out += [
            "StartServers %d" % p,
            "ServerLimit %d" % p,
            "ThreadLimit %d" % t,
            "ThreadsPerChild %d" % t,
            "MaxRequestWorkers %d" % (p * t),
            "MinSpareThreads 1",
            "MaxSpareThreads %d" % (p * t),
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
    d, f = os.path.split(s.script)
    out += [
        "<Directory %s>\n    <Files %s>\n        Require all granted\n    </Files>\n</Directory>" % (q(d), q(f)),
        "WSGIScriptAlias %s %s process-group=%%{GLOBAL} application-group=%%{GLOBAL}"
        % (q(s.mount_point), q(s.script)),
    ]
    return "\n".join(out)


WSGI_SECTIONS = {"embedded": wsgi_embedded}


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


def startup(s):
    """Run in each child before requests: the working directory, as daemon home= does."""
    return STARTUP % {"dir": s.working_directory, "user": s.user}


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
    if s.working_directory:
        write(s.startup_script, startup(s), 0o644)

"""Command line: parse the options, resolve them into config.Settings, write the server root
and, for start-server, replace this process with httpd in the foreground."""

import argparse
import grp
import os
import pwd
import sys

from rwsgi_express import config, locate

COMMANDS = ("start-server", "setup-server", "module-location")

def server_options():
    """The options of start-server and setup-server, in one parser used as a parent."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("script", nargs="?", help="the WSGI script file to serve (required)")
    g = p.add_argument_group("server options")
    g.add_argument("--port", type=int, default=8000, metavar="NUMBER",
                   help="TCP port to listen on (default 8000)")
    g.add_argument("--host", metavar="IP-ADDRESS",
                   help="address to listen on (default: every interface); also the ServerName")
    g.add_argument("--processes", type=positive, default=1, metavar="NUMBER",
                   help="daemon processes that run the app (default 1); with --embedded-mode, "
                        "Apache children")
    g.add_argument("--threads", type=positive, default=5, metavar="NUMBER",
                   help="request threads per process (default 5); with --embedded-mode, 1 selects "
                        "the prefork MPM")
    g.add_argument("--user", metavar="USERNAME",
                   help="account the app's processes (and the Apache children) run as when "
                        "started by root (required then; default: the current user)")
    g.add_argument("--group", metavar="GROUP",
                   help="group the app's processes (and the Apache children) run as when "
                        "started by root "
                        "(default: the primary group of --user)")
    g.add_argument("--server-root", metavar="DIRECTORY",
                   help="where httpd.conf, apachectl, the pid file and the logs go "
                        "(default /tmp/rwsgi-express-HOST-PORT-UID)")
    g.add_argument("--mount-point", default="/", metavar="URL-PATH",
                   help="URL path the app is mounted at (default /)")
    g.add_argument("--url-alias", nargs=2, action="append", default=[],
                   metavar=("URL-PATH", "FILE-OR-DIRECTORY"),
                   help="serve a static file or directory at URL-PATH (repeatable)")
    g.add_argument("--reload-on-changes", action="store_true",
                   help="daemon mode: restart the daemon processes once the WSGI script or a "
                        "Python module they have loaded changes (checked each second), and "
                        "reload the script on the next request after it changes; with "
                        "--embedded-mode only the script itself is reloaded, not the modules "
                        "it imports")
    g.add_argument("--log-to-terminal", action="store_true",
                   help="error log to stderr and access log (with --access-log) to stdout, "
                        "instead of files in the server root")
    g.add_argument("--access-log", action="store_true",
                   help="write an access log (SERVER_ROOT/access_log, or stdout)")
    g.add_argument("--log-level", default="warn", metavar="LEVEL",
                   help="Apache LogLevel (default warn)")
    g.add_argument("--python-path", action="append", default=[], metavar="DIRECTORY",
                   help="add a directory to the app's sys.path (repeatable)")
    g.add_argument("--working-directory", metavar="DIRECTORY",
                   help="current directory of the app's processes (daemon home=), also added to "
                        "sys.path (default: the directory the command runs in)")
    g.add_argument("--callable-object", default="application", metavar="NAME",
                   help="name of the WSGI callable in the script (default application)")
    g.add_argument("--include-file", action="append", default=[], metavar="FILE",
                   help="Include this Apache config file at the end (repeatable)")
    g.add_argument("--embedded-mode", action="store_true",
                   help="run the app inside the Apache children instead of in a daemon process "
                        "group (WSGIDaemonProcess, the default)")
    g.add_argument("--server-mpm", choices=config.MPMS,
                   help="Apache MPM (default: event, else worker; prefork with --embedded-mode "
                        "--threads 1)")
    d = p.add_argument_group("daemon process options (ignored with --embedded-mode)")
    for option, default, text in config.DAEMON_OPTIONS:
        d.add_argument(config.daemon_flag(option), type=non_negative, default=default,
                       metavar="NUMBER", dest=option.replace("-", "_"),
                       help="%s (%s=, default %d)" % (text, option, default))
    g.add_argument("--server-status", action="store_true",
                   help="enable mod_status at /server-status, for requests from this host only")
    g.add_argument("--setup-only", action="store_true",
                   help="start-server: write the files and exit, as setup-server does")
    g.add_argument("--module", metavar="FILE",
                   help="mod_rwsgi.so to load (default: the wheel's, the checkout's "
                        "target/mod_rwsgi.so, or Apache's module directory)")
    g.add_argument("--httpd-executable", metavar="FILE",
                   help="Apache binary (default $HTTPD, else apache2 or httpd on PATH/sbin)")
    g.add_argument("--modules-directory", metavar="DIRECTORY",
                   help="Apache's module directory (default: found from the usual places)")
    return p


def positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1, not %s" % text)
    return n


def non_negative(text):
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, not %s" % text)
    return n


def parser():
    common = server_options()
    top = argparse.ArgumentParser(
        prog="rwsgi-express",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a WSGI script through Apache httpd and mod_rwsgi, with a generated "
                    "configuration in its own server root.",
        epilog="The server options of start-server and setup-server:\n\n"
               + options_text(common),
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    top.commands = {}
    top.commands["start-server"] = sub.add_parser("start-server", parents=[common],
                   help="write the server root, then run httpd in the foreground",
                   description="Write the server root, then run httpd in the foreground until "
                               "SIGINT or SIGTERM.")
    top.commands["setup-server"] = sub.add_parser("setup-server", parents=[common],
                   help="write httpd.conf and an apachectl wrapper, without starting",
                   description="Write httpd.conf and an apachectl wrapper into the server root "
                               "without starting; run SERVER_ROOT/apachectl start later.")
    loc = sub.add_parser("module-location", help="print the path of the mod_rwsgi.so in use")
    top.commands["module-location"] = loc
    loc.add_argument("--module", metavar="FILE")
    loc.add_argument("--modules-directory", metavar="DIRECTORY")
    return top


def options_text(common):
    """The option list of the common parser, as argparse formats it, without its usage line."""
    text = common.format_help()
    return text[text.index("\n\n") + 2:] if "\n\n" in text else text


def run_identity(args, fail):
    """(user, group) for the User/Group directives. Apache refuses to serve requests as root, so
    as mod_wsgi-express does, a root start needs --user naming another account."""
    if args.user:
        try:
            pw = pwd.getpwnam(args.user)
        except KeyError:
            fail("--user %s: no such user" % args.user)
        user = args.user
    else:
        pw = pwd.getpwuid(os.getuid())
        user = pw.pw_name
    if os.getuid() == 0 and pw.pw_uid == 0:
        fail("when started by root, Apache must run its children as another account: give --user "
             "and --group (for example --user www-data --group www-data); the app's files must "
             "be readable by that account")
    if args.group:
        try:
            grp.getgrnam(args.group)
        except KeyError:
            fail("--group %s: no such group" % args.group)
        group = args.group
    else:
        try:
            group = grp.getgrgid(pw.pw_gid).gr_name
        except KeyError:
            group = "#%d" % pw.pw_gid
    return user, group


def settings(args, fail):
    """Resolve the parsed options into config.Settings, failing on anything that cannot work."""
    if not args.script:
        fail("the WSGI script file to serve is missing (rwsgi-express %s app.wsgi ...)" % args.command)
    script = os.path.abspath(args.script)
    if not os.path.isfile(script):
        fail("WSGI script %s does not exist" % script)
    if not 1 <= args.port <= 65535:
        fail("--port %d is not a TCP port" % args.port)
    user, group = run_identity(args, fail)
    try:
        httpd = locate.httpd_executable(args.httpd_executable)
        modules_dir = locate.modules_directory(args.modules_directory)
        module = locate.rwsgi_module(args.module, modules_dir)
    except locate.NotFound as e:
        fail(str(e))
    host_tag = args.host or "localhost"
    server_root = args.server_root or "/tmp/rwsgi-express-%s-%d-%d" % (
        host_tag.replace(":", "_"), args.port, os.getuid())
    aliases = []
    for url, path in args.url_alias:
        path = os.path.abspath(path)
        if not os.path.exists(path):
            fail("--url-alias %s %s: no such file or directory" % (url, path))
        aliases.append((normalise_url(url), path))
    for f in args.include_file:
        if not os.path.isfile(f):
            fail("--include-file %s: no such file" % f)
    for d in args.python_path:
        if not os.path.isdir(d):
            fail("--python-path %s: no such directory" % d)
    workdir = os.path.abspath(args.working_directory or os.getcwd())
    if not os.path.isdir(workdir):
        fail("--working-directory %s: no such directory" % workdir)
    mode = "embedded" if args.embedded_mode else "daemon"
    if mode == "daemon" and not can_enter(user, workdir):
        # A daemon whose home= it cannot enter never starts; say so now rather than have
        # every request wait for it.
        fail("--working-directory %s: user %s cannot enter it; the daemon processes start "
             "there (give a directory that user can enter)" % (workdir, user))
    return config.Settings(
        script=script,
        server_root=os.path.abspath(server_root),
        httpd=httpd,
        modules_dir=modules_dir,
        module=module,
        port=args.port,
        host=args.host,
        processes=args.processes,
        threads=args.threads,
        user=user,
        group=group,
        mount_point=normalise_url(args.mount_point),
        url_aliases=aliases,
        python_path=[os.path.abspath(d) for d in args.python_path],
        # The running interpreter's environment, when it is a venv (the wheel installed in it).
        python_home=sys.prefix if sys.prefix != sys.base_prefix else None,
        working_directory=workdir,
        include_files=[os.path.abspath(f) for f in args.include_file],
        reload_on_changes=args.reload_on_changes,
        log_to_terminal=args.log_to_terminal,
        access_log=args.access_log,
        log_level=args.log_level,
        server_status=args.server_status,
        callable_object=args.callable_object,
        mime_types=locate.mime_types(),
        mode=mode,
        server_mpm=args.server_mpm,
        daemon_options={o: getattr(args, o.replace("-", "_")) for o, _, _ in config.DAEMON_OPTIONS},
    )


def can_enter(user, directory):
    """True when `user` can enter `directory`, checked in a child that takes the user's ids
    (only a root start runs the app as another account)."""
    if os.getuid() != 0:
        return os.access(directory, os.X_OK)
    pw = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        try:
            os.initgroups(user, pw.pw_gid)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os._exit(0 if os.access(directory, os.X_OK) else 1)
        finally:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def normalise_url(url):
    return "/" + url.strip("/")


def report(s, command, setup_only):
    print("Server URL         :", s.url())
    if s.server_status:
        print("Server Status      :", s.url().rstrip("/") + "/server-status")
    print("Server Root        :", s.server_root)
    print("Server Conf        :", s.conf_path)
    print("Module             :", s.module)
    if s.mode == "daemon":
        print("Process Group      :", s.process_group)
        print("Daemon Processes   : %d x %d threads" % (s.processes, s.threads))
    else:
        print("Embedded Mode      : %s MPM, %d x %d threads" % (s.mpm, s.processes, s.threads))
    print("Error Log File     :", s.error_log)
    if s.access_log:
        print("Access Log File    :", s.access_log_file)
    if command == "setup-server" or setup_only:
        print("Control Script     :", s.apachectl_path)
    sys.stdout.flush()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    args, unknown = top.parse_known_args(argv)
    if args.command is None:
        top.error("no command given (one of %s)" % ", ".join(COMMANDS))
    sub = top.commands[args.command]
    if unknown:
        sub.error("unrecognized arguments: %s (see rwsgi-express %s --help)"
                  % (" ".join(unknown), args.command))
    sub_fail = sub.error
    if args.command == "module-location":
        try:
            print(locate.rwsgi_module(args.module, locate.modules_directory(args.modules_directory)))
        except locate.NotFound as e:
            sub_fail(str(e))
        return 0
    s = settings(args, sub_fail)
    config.write_server_root(s, ["rwsgi-express"] + argv)
    report(s, args.command, args.setup_only)
    if args.command == "setup-server" or args.setup_only:
        return 0
    # httpd replaces this process: SIGINT/SIGTERM sent to it (Ctrl-C, a supervisor, docker
    # stop) reach httpd itself, which stops its children and exits.
    own_process_group()
    cmd = config.httpd_args(s) + ["-k", "start", "-DFOREGROUND"]
    os.execv(cmd[0], cmd)


def own_process_group():
    """A foreground httpd stops by sending SIGTERM to its whole process group. Started by a
    program without job control (a script, a test runner, a supervisor's child), that group is
    the caller's, which would be killed too; so move to a group of our own. In a terminal's
    foreground job, stay: there the shell made the group, and Ctrl-C must keep reaching us."""
    if os.getpgrp() == os.getpid():
        return
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return
        except OSError:
            pass
    os.setpgid(0, 0)

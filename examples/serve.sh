#!/usr/bin/env bash
# Serves examples/hello.wsgi with mod_rwsgi on http://127.0.0.1:8000 until Ctrl-C.
#
# Renders its own Apache tree (ServerRoot, config, logs, a copy of the app) into
# $SERVE_DIR (default /tmp/mod_rwsgi-serve), readable by the Apache user (www-data), and runs
# `apache2 -f CONF -DFOREGROUND` there. It does not touch the system Apache or its config.
# Normally started by `make serve`, which installs dependencies and builds the module first.
#
# Environment: PORT (8000), SERVE_DIR, APP (examples/hello.wsgi), LOGLEVEL (warn),
#   MODULE (target/mod_rwsgi.so) and MODULE_SYMBOL (rwsgi_module); for a side-by-side look at
#   Debian's mod_wsgi: MODULE=/usr/lib/apache2/modules/mod_wsgi.so MODULE_SYMBOL=wsgi_module
set -euo pipefail
umask 022

root=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-8000}
SERVE_DIR=${SERVE_DIR:-/tmp/mod_rwsgi-serve}
MODULE=${MODULE:-$root/target/mod_rwsgi.so}
MODULE_SYMBOL=${MODULE_SYMBOL:-rwsgi_module}
APP=${APP:-$root/examples/hello.wsgi}
LOGLEVEL=${LOGLEVEL:-warn}
HTTPD=${HTTPD:-$(command -v apache2 || echo /usr/sbin/apache2)}
MODDIR=/usr/lib/apache2/modules
RUN_USER=${RUN_USER:-www-data}
RUN_GROUP=${RUN_GROUP:-www-data}

die() { echo "serve: $*" >&2; exit 1; }

[[ -x $HTTPD ]] || die "apache2 not found: run 'make deps' (or .ci/install-deps)"
[[ -f $MODULE ]] || die "$MODULE not found: run 'make build' first"
[[ -f $APP ]] || die "app $APP not found"

conf=$SERVE_DIR/conf/httpd.conf
pidfile=$SERVE_DIR/run/httpd.pid
if [[ -f $pidfile ]]; then
  old=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -n $old ]] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF -- "$conf"; then
    die "already running as pid $old (stop it with: $HTTPD -f $conf -k stop)"
  fi
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$PORT (choose another with PORT=...)"
fi

# Fresh tree, every directory 0755 and file 0644 so that www-data can read it.
if [[ -e $SERVE_DIR && ! -f $SERVE_DIR/.mod_rwsgi-serve ]] && [[ -n $(ls -A "$SERVE_DIR") ]]; then
  die "$SERVE_DIR exists and was not made by serve.sh; choose another SERVE_DIR"
fi
rm -rf "$SERVE_DIR"
install -d -m 0755 "$SERVE_DIR" "$SERVE_DIR"/{conf,logs,run,app,modules}
touch "$SERVE_DIR/.mod_rwsgi-serve"
install -m 0644 "$APP" "$SERVE_DIR/app/app.wsgi"
install -m 0644 "$MODULE" "$SERVE_DIR/modules/$(basename "$MODULE")"

cat >"$conf" <<CONF
# Rendered by examples/serve.sh: $(basename "$MODULE") serving $(basename "$APP").
ServerRoot "$SERVE_DIR"
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile run/httpd.pid
DefaultRuntimeDir run
User $RUN_USER
Group $RUN_GROUP

LoadModule mpm_event_module $MODDIR/mod_mpm_event.so
LoadModule authz_core_module $MODDIR/mod_authz_core.so
LoadModule $MODULE_SYMBOL $SERVE_DIR/modules/$(basename "$MODULE")

StartServers 2
ThreadsPerChild 25
MaxRequestWorkers 50
ServerLimit 2
MinSpareThreads 25
MaxSpareThreads 50

ErrorLog logs/error_log
LogLevel $LOGLEVEL
LogFormat "%h %l %u %t \"%r\" %>s %b %D" timed
CustomLog logs/access_log timed

<Directory />
    Require all denied
    AllowOverride None
</Directory>

WSGIApplicationGroup %{GLOBAL}
WSGIScriptAlias / $SERVE_DIR/app/app.wsgi
<Directory $SERVE_DIR/app>
    Require all granted
</Directory>
CONF
chmod 0644 "$conf"

"$HTTPD" -f "$conf" -t >/dev/null 2>"$SERVE_DIR/logs/configtest" || {
  cat "$SERVE_DIR/logs/configtest" >&2
  die "configuration test failed for $conf"
}

# Start in the foreground (no detach) but as our child, so that we can stop it on any exit.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$HTTPD" -f "$conf" -DFOREGROUND &
httpd_pid=$!

stop() {
  trap - INT TERM EXIT
  if kill -0 "$httpd_pid" 2>/dev/null; then
    echo
    echo "serve: stopping Apache (pid $httpd_pid)"
    local kids
    kids=$(pgrep -P "$httpd_pid" || true)
    kill -TERM "$httpd_pid" 2>/dev/null || true
    # Apache itself SIGKILLs children that do not exit within about 6 s.
    for _ in $(seq 150); do kill -0 "$httpd_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$httpd_pid" 2>/dev/null; then
      echo "serve: Apache did not stop within 15 s; killing pid $httpd_pid" $kids >&2
      kill -KILL "$httpd_pid" $kids 2>/dev/null || true
    fi
  fi
  wait "$httpd_pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

url=http://127.0.0.1:$PORT/
for _ in $(seq 150); do
  kill -0 "$httpd_pid" 2>/dev/null || {
    tail -n 30 "$SERVE_DIR/logs/error_log" >&2 2>/dev/null || true
    die "Apache exited during start-up (error log: $SERVE_DIR/logs/error_log)"
  }
  curl -s -o /dev/null --max-time 2 "$url" && break
  sleep 0.1
done

cat <<MSG
$(basename "$MODULE" .so) is serving $(basename "$APP") at $url  (also ${url}stream and ${url}upload)
  Apache pid: $httpd_pid   config: $conf
  error log:  $SERVE_DIR/logs/error_log
  access log: $SERVE_DIR/logs/access_log
Press Ctrl-C to stop.
MSG
rc=0
wait "$httpd_pid" || rc=$?
if ((rc)); then
  echo "serve: Apache exited with status $rc; see $SERVE_DIR/logs/error_log" >&2
else
  echo "serve: stopped"
fi
exit "$rc"

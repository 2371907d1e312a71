#!/usr/bin/env bash
# Package test: builds the Debian package, installs it on this machine, enables it the Debian
# way (a2enmod) and serves a hello app with Debian's apache2. Needs root (dpkg -i).
#
# The system Apache is never started or reloaded: dpkg runs under a policy-rc.d that forbids
# service actions, and the test server has its own config (-f) that includes the machine's
# mods-enabled/ but listens only on 127.0.0.1:<free port>, with its pid file, logs and
# runtime files in a temporary directory. Afterwards the package is purged and
# /etc/apache2/mods-enabled and /var/lib/apache2/module are put back as they were.
#
# Prints `package-test: N passed, N failed` last; exits non-zero on any failure.
# Usage: packaging/package-test.sh        (or `make package-test`)
set -euo pipefail
umask 022

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PKG=libapache2-mod-rwsgi
HTTPD=/usr/sbin/apache2
MODS_ENABLED=/etc/apache2/mods-enabled
MODULE_STATE=/var/lib/apache2/module
started=$(date +%s)

die() { echo "package-test: $*" >&2; echo "package-test: 0 passed, 1 failed"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (dpkg -i, a2enmod)"
[[ -x $HTTPD ]] || die "apache2 not found: run 'make deps'"

# One run at a time on a machine: two would fight over dpkg and mods-enabled/.
exec 9>/run/lock/rwsgi-package-test.lock
flock -w 300 9 || die "another package test holds /run/lock/rwsgi-package-test.lock"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# A package installed before would be purged by this test: refuse instead of guessing.
if dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | grep -q '^.[iUFHWt]'; then
  die "$PKG is already installed; this test installs and purges it (dpkg --purge $PKG first)"
fi

mkdir -p target/debian
build_log=$root/target/debian/build.log
echo "package-test: building the package (log: $build_log)"
if ! bash packaging/deb/build.sh >"$build_log" 2>&1; then
  tail -n 40 "$build_log"
  die "packaging/deb/build.sh failed"
fi
deb=$(ls target/debian/${PKG}_*_"$(dpkg --print-architecture)".deb)
echo "package-test: built $deb in $(($(date +%s) - started)) s"

work=$(mktemp -d /tmp/rwsgi-package-test.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work"/{state,run,lock,logs,app,htdocs}
cp -a "$MODS_ENABLED" "$work/state/mods-enabled"
[[ -d $MODULE_STATE ]] && cp -a "$MODULE_STATE" "$work/state/module"

made_policy=0
pid=
conf=$work/httpd.conf

# Puts each entry of $1 (a snapshot) back into $2 and removes entries the snapshot lacks.
restore_dir() {
  local snap=$1 dir=$2 e
  [[ -d $snap ]] || return 0
  for e in "$dir"/* "$dir"/.[!.]*; do
    [[ -e $e || -L $e ]] || continue
    [[ -e $snap/${e##*/} || -L $snap/${e##*/} ]] || rm -rf -- "$e"
  done
  cp -a "$snap"/. "$dir"/
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    $HTTPD -f "$conf" -k stop 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  dpkg --purge "$PKG" >/dev/null 2>&1
  restore_dir "$work/state/mods-enabled" "$MODS_ENABLED"
  restore_dir "$work/state/module" "$MODULE_STATE"
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

# Keep dpkg's maintainer scripts from starting or restarting the system Apache.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  made_policy=1
fi

# dpkg refuses to wait for its lock: retry for a bounded time while another install runs.
dpkg_retry() {
  local out
  for _ in $(seq 1 60); do
    if out=$(dpkg "$@" 2>&1); then echo "$out"; return 0; fi
    grep -q 'lock' <<<"$out" || { echo "$out" >&2; return 1; }
    sleep 2
  done
  echo "$out" >&2
  return 1
}

enabled() { [[ -e $MODS_ENABLED/$1.load ]]; }
installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | grep -q '^ii'; }
has_wsgi=0
[[ -e /etc/apache2/mods-available/wsgi.load ]] && has_wsgi=1

# 1. With mod_wsgi enabled, installing leaves mod_rwsgi disabled and says how to switch.
if ((has_wsgi)); then
  a2enmod -q wsgi >/dev/null
  out=$(dpkg_retry -i "$deb" 2>&1) || true
  check "dpkg -i with mod_wsgi enabled" installed
  check "postinst leaves rwsgi disabled while wsgi is enabled" test ! -e "$MODS_ENABLED/rwsgi.load"
  check "postinst points to README.Debian" grep -q "how to switch: .*README.Debian" <<<"$out"
  dpkg_retry --purge "$PKG" >/dev/null
  a2dismod -q wsgi >/dev/null
fi

# 2. A fresh install enables the module (dh_apache2 postinst) and ships the files.
dpkg_retry -i "$deb" >/dev/null || true
check "dpkg -i" installed
check "module installed" test -f /usr/lib/apache2/modules/mod_rwsgi.so
check "rwsgi.load installed" grep -q "^LoadModule rwsgi_module /usr/lib/apache2/modules/mod_rwsgi.so" /etc/apache2/mods-available/rwsgi.load
check "libpython3.11 resolves" bash -c "ldd /usr/lib/apache2/modules/mod_rwsgi.so | grep -q 'libpython3.11.so.1.0 => /'"
check "postinst enabled rwsgi" enabled rwsgi
a2enmod -q rwsgi >/dev/null
check "a2enmod rwsgi" enabled rwsgi

# The test server: the machine's enabled modules, nothing else of the system config.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp tests/apps/hello.wsgi "$work/app/hello.wsgi"
echo ready >"$work/htdocs/ready.txt"
chmod -R a+rX "$work"
export APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data APACHE_RUN_DIR=$work/run \
  APACHE_LOCK_DIR=$work/lock APACHE_LOG_DIR=$work/logs APACHE_PID_FILE=$work/run/apache2.pid
cat >"$conf" <<CONF
ServerRoot /etc/apache2
ServerName localhost
DefaultRuntimeDir \${APACHE_RUN_DIR}
PidFile \${APACHE_PID_FILE}
Mutex file:\${APACHE_LOCK_DIR} default
User \${APACHE_RUN_USER}
Group \${APACHE_RUN_GROUP}
ErrorLog \${APACHE_LOG_DIR}/error.log
LogLevel info
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
Listen 127.0.0.1:$port
DocumentRoot $work/htdocs
<Directory />
    Require all denied
</Directory>
<Directory $work/htdocs>
    Require all granted
</Directory>
<Directory $work/app>
    Require all granted
</Directory>
WSGIScriptAlias /hello $work/app/hello.wsgi
CONF

# 3. Both modules enabled: the configuration is refused with the cure.
if ((has_wsgi)); then
  a2enmod -q wsgi >/dev/null
  if out=$($HTTPD -f "$conf" -t 2>&1); then
    fail "apache2 -t accepted mod_wsgi + mod_rwsgi"
  else
    check "apache2 -t refuses wsgi + rwsgi with RWSGI0003 and the cure" \
      grep -q "RWSGI0003.*a2dismod wsgi" <<<"$out"
  fi
  a2dismod -q wsgi >/dev/null
fi

# 4. Serve with only mod_rwsgi.
check "apache2 -t" bash -c "$HTTPD -f '$conf' -t 2>/dev/null"
check "rwsgi_module loaded, wsgi_module not" bash -c \
  "$HTTPD -f '$conf' -M 2>/dev/null | grep -q rwsgi_module && ! $HTTPD -f '$conf' -M 2>/dev/null | grep -qw wsgi_module"
if $HTTPD -f "$conf" -k start; then
  for _ in $(seq 1 100); do
    pid=$(cat "$APACHE_PID_FILE" 2>/dev/null || true)
    [[ -n $pid ]] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/ready.txt" && break
    sleep 0.1
  done
  body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/hello" || true)
  check "GET /hello says Hello World!" test "$body" = "Hello World!"
  server=$(curl -sS --max-time 10 -o /dev/null -D - "http://127.0.0.1:$port/hello" | tr -d '\r' |
    sed -n 's/^Server: //Ip')
  check "Server header names mod_rwsgi ($server)" grep -q "mod_rwsgi/" <<<"$server"
  $HTTPD -f "$conf" -k stop
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  check "apache2 -k stop ends the server" bash -c "! kill -0 $pid 2>/dev/null"
  check "no error lines in the log" bash -c "! grep -E '\\[(.*:)?(error|crit|alert|emerg)\\]|Traceback' '$work/logs/error.log'"
else
  fail "apache2 -k start"
  cat "$work/logs/error.log" 2>/dev/null || true
fi

# 5. Purge removes the module and disables it.
dpkg_retry --purge "$PKG" >/dev/null || fail "dpkg --purge"
check "purge removes the module" test ! -e /usr/lib/apache2/modules/mod_rwsgi.so
check "purge disables rwsgi" test ! -e "$MODS_ENABLED/rwsgi.load"

echo "package-test: took $(($(date +%s) - started)) s"
echo "package-test: $passed passed, $failed failed"
((failed == 0))

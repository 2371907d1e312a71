#!/usr/bin/env bash
# Package test: builds the Debian package and uses it the way an administrator of a Debian
# machine with mod_wsgi would: `apt-get install ./…deb` while mod_wsgi is enabled (the package
# stays disabled and says how to switch), a2enmod refusing rwsgi while wsgi is enabled, the
# switch with a2dismod/a2enmod, a site in sites-available serving an app from /var/www,
# apache2ctl configtest/start/graceful/stop, then `apt-get purge`, checking that no file of the
# package is left. A second install with mod_wsgi disabled checks that the postinst enables
# the module. Needs root.
#
# Safety on a shared machine: Apache runs from the system config (/etc/apache2) but listens
# only on 127.0.0.1:<free port> (ports.conf is replaced while the test runs, and the test
# refuses to start when another enabled file has a Listen line), writes its logs to a
# temporary directory (APACHE_ENVVARS adds that to /etc/apache2/envvars), and is stopped
# through the pid file, which no other Apache may hold: the test refuses to run when it names a
# live process. dpkg runs under a policy-rc.d that forbids service actions, so the maintainer
# scripts never start or restart the system Apache. On exit, whatever happened, the package
# is purged and ports.conf, mods-enabled/, sites-enabled/, the test site, its app directory
# and /var/lib/apache2 (a2enmod's state) are put back as they were; the run then checks that
# /etc/apache2 and /var/lib/apache2 equal their snapshots from before.
#
# Prints `package-test: N passed, N failed` last; exits non-zero on any failure.
# Usage: packaging/package-test.sh        (or `make package-test`)
set -euo pipefail
umask 022

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PKG=libapache2-mod-rwsgi
ETC=/etc/apache2
STATE=/var/lib/apache2
SITE=rwsgi-test
SITE_CONF=$ETC/sites-available/$SITE.conf
APP_DIR=/var/www/$SITE
export DEBIAN_FRONTEND=noninteractive
# The system's instance of apache2ctl: no other config directory, envvars or systemd start.
unset APACHE_CONFDIR APACHE_ENVVARS APACHE_ARGUMENTS APACHE_HTTPD
started=$(date +%s)

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
die() {
  echo "package-test: $*" >&2
  echo "package-test: $passed passed, $((failed + 1)) failed"
  exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get install, a2enmod, apache2ctl)"
for tool in apt-get dpkg apache2ctl a2enmod a2dismod a2ensite a2dissite curl ss flock; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run 'make deps'"
done
[[ -e $ETC/mods-available/wsgi.load ]] ||
  die "mod_wsgi is not installed (libapache2-mod-wsgi-py3): run 'make deps'"

# One run at a time on a machine: two would fight over dpkg and /etc/apache2.
exec 9>/run/lock/rwsgi-package-test.lock
flock -w 300 9 || die "another package test holds /run/lock/rwsgi-package-test.lock"

# Refuse, rather than guess, whenever the machine is not in a state this test can restore.
pidfile=$(set +u && . "$ETC/envvars" && echo "$APACHE_PID_FILE")
pidfile_live() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
if pidfile_live; then
  die "$pidfile names a running Apache (pid $(cat "$pidfile")); apache2ctl stop would stop it"
fi
if dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | grep -q '^.[iUFHWtc]'; then
  die "$PKG is installed; this test installs and purges it (apt-get purge $PKG first)"
fi
for leftover in "$SITE_CONF" "$ETC/sites-enabled/$SITE.conf" "$APP_DIR"; do
  [[ -e $leftover || -L $leftover ]] && die "$leftover exists (an interrupted run?): remove it first"
done
if others=$(grep -rlisE '^[[:space:]]*Listen[[:space:]]' "$ETC/apache2.conf" "$ETC"/conf-enabled/ \
  "$ETC"/mods-enabled/ "$ETC"/sites-enabled/); then
  die "Listen lines outside ports.conf would open more ports: $others"
fi

mkdir -p target/debian
build_log=$root/target/debian/build.log
echo "package-test: building the package (log: $build_log)"
if ! bash packaging/deb/build.sh >"$build_log" 2>&1; then
  tail -n 40 "$build_log"
  die "packaging/deb/build.sh failed"
fi
built=$(date +%s)
deb_built=$(ls target/debian/${PKG}_*_"$(dpkg --print-architecture)".deb)
echo "package-test: built $deb_built in $((built - started)) s"

work=$(mktemp -d /tmp/rwsgi-package-test.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work/logs"
# In a directory apt's unprivileged _apt user can read.
deb=$work/${deb_built##*/}
install -m 0644 "$deb_built" "$deb"
cp -a "$ETC" "$work/etc"
cp -a "$STATE" "$work/state"
wsgi_was_enabled=0
[[ -e $ETC/mods-enabled/wsgi.load ]] && wsgi_was_enabled=1

# The test Apache: the system config through apache2ctl, with its logs in $work.
printf '. %s/envvars\nexport APACHE_LOG_DIR=%s/logs\n' "$ETC" "$work" >"$work/envvars"
actl() { APACHE_ENVVARS=$work/envvars APACHE_STARTED_BY_SYSTEMD=1 apache2ctl "$@"; }

made_policy=0
pid=

# Makes directory $2 equal to its snapshot $1: removes what the snapshot lacks, copies the rest.
restore_tree() {
  local snap=$1 dir=$2 e
  while IFS= read -r -d '' e; do
    [[ -e $snap/${e#"$dir"/} || -L $snap/${e#"$dir"/} ]] || rm -rf -- "$e"
  done < <(find "$dir" -mindepth 1 -depth -print0)
  cp -a "$snap"/. "$dir"/
}

# apache2ctl stop signals whatever the pid file names: only while that is still our server.
stop_apache() {
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  if [[ $(cat "$pidfile" 2>/dev/null) == "$pid" ]]; then actl stop >/dev/null 2>&1; else kill -TERM "$pid"; fi
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}

apt_get() { apt-get -y -q -o DPkg::Lock::Timeout=300 "$@"; }
known() { dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | grep -q '^.[iUFHWtc]'; }

restore_machine() {
  stop_apache
  if known; then apt_get purge "$PKG" >/dev/null 2>&1 || dpkg --purge "$PKG" >/dev/null 2>&1; fi
  cp -a "$work/etc/ports.conf" "$ETC/ports.conf"
  rm -f "$SITE_CONF"
  restore_tree "$work/etc/mods-enabled" "$ETC/mods-enabled"
  restore_tree "$work/etc/sites-enabled" "$ETC/sites-enabled"
  restore_tree "$work/state" "$STATE"
  rm -rf "$APP_DIR"
}

cleanup() {
  local rc=$?
  set +e
  restore_machine
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Keep dpkg's maintainer scripts from starting or restarting the system Apache.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  made_policy=1
fi

enabled() { [[ -e $ETC/mods-enabled/$1.load ]]; }
installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | grep -q '^ii'; }
field() { dpkg-query -W -f="\${$1}" "$PKG"; }

# Checks that purging left no file or directory of the package (the dpkg -L list taken while
# it was installed), except directories that other packages own too.
check_purged() {
  local list=$1 path left=()
  while IFS= read -r path; do
    [[ $path == /. ]] && continue
    [[ -e $path || -L $path ]] || continue
    [[ -d $path && ! -L $path ]] && dpkg -S "$path" >/dev/null 2>&1 && continue
    left+=("$path")
  done <"$list"
  check "apt-get purge" bash -c "! dpkg-query -W -f='\${db:Status-Abbrev}' $PKG 2>/dev/null | grep -q '^.[iUFHWtc]'"
  if ((${#left[@]})); then fail "purge left ${left[*]}"; else ok "purge left none of the $(wc -l <"$list") paths of dpkg -L"; fi
  check "purge disabled rwsgi" bash -c "! ls $ETC/mods-enabled/rwsgi.* >/dev/null 2>&1"
  check "purge dropped a2enmod's state of rwsgi" bash -c "! find $STATE -name rwsgi | grep -q ."
}

# 1. Installing while mod_wsgi is enabled: succeeds, leaves rwsgi disabled, says how to switch.
a2enmod -q wsgi >/dev/null
if out=$(apt_get install --no-install-recommends "$deb" 2>&1); then ok "apt-get install with mod_wsgi enabled"; else
  fail "apt-get install with mod_wsgi enabled"
  echo "$out"
fi
check "installed" installed
check "postinst leaves rwsgi disabled while wsgi is enabled" bash -c "! ls $ETC/mods-enabled/rwsgi.* >/dev/null 2>&1"
check "postinst prints the switch commands" grep -qF "a2dismod wsgi && a2enmod rwsgi" <<<"$out"
grep '^libapache2-mod-rwsgi: ' <<<"$out" | sed 's/^/     | /' || true
check "module in /usr/lib/apache2/modules" test -f /usr/lib/apache2/modules/mod_rwsgi.so
check "rwsgi.load loads it and conflicts with wsgi" bash -c \
  "grep -qx '# Conflicts: wsgi' $ETC/mods-available/rwsgi.load &&
   grep -q '^LoadModule rwsgi_module /usr/lib/apache2/modules/mod_rwsgi.so$' $ETC/mods-available/rwsgi.load"
conffiles=$(field Conffiles)
check "rwsgi.load and rwsgi.conf are conffiles" bash -c \
  "grep -q ' $ETC/mods-available/rwsgi.load ' <<<'$conffiles' && grep -q ' $ETC/mods-available/rwsgi.conf ' <<<'$conffiles'"
depends=$(field Depends)
check "Depends: apache2-api-20120211, libpython3.11 ($depends)" bash -c \
  "grep -qw 'apache2-api-20120211' <<<'$depends' && grep -qw 'libpython3.11' <<<'$depends'"
check "copyright file" test -s /usr/share/doc/$PKG/copyright
check "manual page of rwsgi-express" test -s /usr/share/man/man1/rwsgi-express.1.gz
check "libpython3.11 resolves" bash -c "ldd /usr/lib/apache2/modules/mod_rwsgi.so | grep -q 'libpython3.11.so.1.0 => /'"

# 2. a2enmod refuses rwsgi while wsgi is enabled; the switch is a2dismod wsgi && a2enmod rwsgi.
if out=$(a2enmod rwsgi 2>&1); then fail "a2enmod rwsgi refuses while wsgi is enabled"; else
  check "a2enmod rwsgi refuses while wsgi is enabled" grep -q "Module wsgi is enabled - cannot proceed due to conflicts" <<<"$out"
fi
check "rwsgi still disabled" bash -c "! ls $ETC/mods-enabled/rwsgi.* >/dev/null 2>&1"
check "a2dismod wsgi && a2enmod rwsgi" bash -c "a2dismod -q wsgi >/dev/null && a2enmod -q rwsgi >/dev/null"
check "rwsgi enabled, wsgi disabled" bash -c "test -e $ETC/mods-enabled/rwsgi.load && ! test -e $ETC/mods-enabled/wsgi.load"

# 3. A site serving an app from /var/www, on 127.0.0.1 only.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '# package-test.sh: only 127.0.0.1, for the duration of the test\nListen 127.0.0.1:%s\n' "$port" \
  >"$ETC/ports.conf"
mkdir -p "$APP_DIR"
install -m 0644 tests/apps/hello.wsgi "$APP_DIR/app.wsgi"
cat >"$SITE_CONF" <<CONF
<VirtualHost 127.0.0.1:$port>
    ServerName localhost
    WSGIScriptAlias / $APP_DIR/app.wsgi
    <Directory $APP_DIR>
        Require all granted
    </Directory>
</VirtualHost>
CONF
check "a2ensite $SITE" bash -c "a2ensite -q $SITE >/dev/null"
check "apache2ctl configtest" bash -c "APACHE_ENVVARS=$work/envvars apache2ctl configtest 2>/dev/null"
modules=$(actl -M 2>/dev/null || true)
check "rwsgi_module loaded, wsgi_module not" bash -c \
  "grep -qw rwsgi_module <<<'$modules' && ! grep -qw wsgi_module <<<'$modules'"

# mod_wsgi's wsgi.load has no Conflicts line: a2enmod wsgi succeeds, and the module itself
# then fails the config check.
if a2enmod -q wsgi >/dev/null 2>&1; then
  if out=$(actl configtest 2>&1); then fail "apache2ctl configtest refuses wsgi + rwsgi"; else
    check "apache2ctl configtest refuses wsgi + rwsgi with RWSGI0003 and the cure" \
      grep -q "RWSGI0003.*a2dismod wsgi" <<<"$out"
  fi
else
  fail "a2enmod wsgi beside rwsgi"
fi
a2dismod -q wsgi >/dev/null

get() { curl -sS --max-time 10 "http://127.0.0.1:$port/" 2>&1 || true; }
resumed() { grep -c 'resuming normal operations' "$work/logs/error.log" 2>/dev/null || true; }

# 4. apache2ctl start, a request, graceful, a request, stop.
if pidfile_live; then
  fail "apache2ctl start: $pidfile names a process started meanwhile; not starting"
elif actl start >"$work/start.out" 2>&1; then
  for _ in $(seq 1 100); do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [[ -n $pid ]] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  ok "apache2ctl start (pid $pid)"
  listening=$(ss -ltnpH | grep "pid=$pid," | awk '{print $4}' | sort -u | tr '\n' ' ')
  check "listens only on 127.0.0.1:$port ($listening)" test "$listening" = "127.0.0.1:$port "
  check "GET / says Hello World!" test "$(get)" = "Hello World!"
  before=$(resumed)
  check "apache2ctl graceful" bash -c "APACHE_ENVVARS=$work/envvars apache2ctl graceful >/dev/null 2>&1"
  for _ in $(seq 1 100); do (($(resumed) > before)) && break; sleep 0.1; done
  check "graceful restart done, same parent" bash -c "(($(resumed) > before)) && kill -0 $pid"
  check "GET / after graceful says Hello World!" test "$(get)" = "Hello World!"
  actl stop >/dev/null 2>&1 || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  check "apache2ctl stop ends the server" bash -c "! kill -0 $pid 2>/dev/null && ! test -e $pidfile"
  check "no error lines in the log" bash -c \
    "! grep -E '\\[(.*:)?(error|crit|alert|emerg)\\]|Traceback' '$work/logs/error.log'"
else
  fail "apache2ctl start"
  cat "$work/start.out" "$work/logs/error.log" 2>/dev/null || true
fi
check "a2dissite $SITE" bash -c "a2dissite -q $SITE >/dev/null"

# 5. Purge: nothing of the package is left.
dpkg -L "$PKG" >"$work/files-1"
apt_get purge "$PKG" >/dev/null 2>&1 || true
check_purged "$work/files-1"

# 6. Installing while mod_wsgi is disabled enables rwsgi (apache2_invoke in the postinst).
apt_get install --no-install-recommends "$deb" >/dev/null 2>&1 || true
check "apt-get install with mod_wsgi disabled" installed
check "postinst enabled rwsgi" enabled rwsgi
dpkg -L "$PKG" >"$work/files-2"
apt_get purge "$PKG" >/dev/null 2>&1 || true
check_purged "$work/files-2"

# 7. The machine is as before.
restore_machine
check "wsgi enabled as before" test "$([[ -e $ETC/mods-enabled/wsgi.load ]] && echo 1 || echo 0)" = "$wsgi_was_enabled"
check "/etc/apache2 as before" diff -r --no-dereference "$work/etc" "$ETC"
check "/var/lib/apache2 as before" diff -r --no-dereference "$work/state" "$STATE"
check "$APP_DIR removed" test ! -e "$APP_DIR"

echo "package-test: took $(($(date +%s) - started)) s ($(($(date +%s) - built)) s after the build)"
echo "package-test: $passed passed, $failed failed"
((failed == 0))

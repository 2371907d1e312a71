#!/usr/bin/env bash
# Soak: a long, bounded run of hello requests against mod_rwsgi, watching the RSS of each Apache
# child for growth after warm-up. One fresh Apache per target:
#   global  WSGIScriptAlias with application-group=%{GLOBAL} (the main interpreter)
#   sub     the default application group (a sub-interpreter)
# Per target: WARMUP requests, then the RSS of every child (VmRSS from /proc/PID/status of the
# children of the parent this script started), then REQUESTS more with `ab -k`, sampling the
# children's RSS every INTERVAL seconds, then their RSS at the end. A target passes when no
# request failed, the children are the same ones throughout, and no child grew by MAX_GROWTH
# percent or more from warm-up to the end.
#
#   bench/soak.sh                          both targets, 1,000,000 requests each (a few minutes)
#   REQUESTS=100000 TARGETS=sub bench/soak.sh
#
# Settings (environment): TARGETS (global sub), REQUESTS (1000000), WARMUP (100000),
# CONNECTIONS (24), INTERVAL (10), MAX_GROWTH (5), RWSGI_MODULE (target/mod_rwsgi.so; when
# set, `make build` is skipped), RESULTS (bench/results/soak.md), KEEP_WORKDIR (1: keep the
# rendered servers and logs). Server settings: bench/httpd.conf.in, as for bench/run.sh (event
# MPM, 2 children x 25 threads, KeepAlive On, MaxKeepAliveRequests 0, MaxConnectionsPerChild 0,
# no access log).
# Must run as root (Apache switches to www-data). Exit status 1 when a target fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
targets=${TARGETS:-global sub}
requests=${REQUESTS:-1000000}
warmup=${WARMUP:-100000}
# Fewer connections than a child has threads (25): with 32, one child now and then holds 25+
# connections, finds all its workers busy, and the event MPM then closes keep-alive
# connections with a request in flight, which ab counts as failed (Length) requests.
connections=${CONNECTIONS:-24}
interval=${INTERVAL:-10}
max_growth=${MAX_GROWTH:-5}
results=${RESULTS:-$root/bench/results/soak.md}
moddir=/usr/lib/apache2/modules
httpd=/usr/sbin/apache2

if [[ -z ${RWSGI_MODULE:-} ]]; then
  make -C "$root" --no-print-directory build >&2
  module=$root/target/mod_rwsgi.so
else
  module=$RWSGI_MODULE
fi
[[ -f $module ]] || { echo "soak: module $module not found" >&2; exit 1; }
command -v ab >/dev/null || { echo "soak: ab not found (apache2-utils; make deps)" >&2; exit 1; }

work=$(mktemp -d /tmp/rwsgi-soak-XXXXXX)
chmod 0755 "$work"
parents=()
cleanup() {
  for conf in "$work"/*/conf/httpd.conf; do
    [[ -f $conf ]] && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$httpd" -f "$conf" -k stop >/dev/null 2>&1 || true
  done
  # Wait for the parents we started (by pid) to go.
  for p in "${parents[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  if [[ ${KEEP_WORKDIR:-0} == 1 ]]; then echo "soak: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# children PARENT: the pids whose parent is PARENT, one a line, sorted.
children() { ps -o pid= --ppid "$1" | tr -d ' ' | sort -n; }

# rss_kb PID: VmRSS in kB (empty when the process is gone).
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# render TARGET PORT: lays out $work/TARGET and prints the config path.
render() {
  local t=$1 port=$2 dir=$work/$1 group=""
  mkdir -p "$dir"/{conf,logs,run,apps,modules}
  chmod -R 0755 "$dir"
  cp "$root/bench/apps/hello.wsgi" "$dir/apps/hello.wsgi"
  # A private copy: a rebuild during the run cannot change the mapped file.
  cp "$module" "$dir/modules/mod_rwsgi.so"
  chmod 0644 "$dir/apps/hello.wsgi" "$dir/modules/mod_rwsgi.so"
  [[ $t == global ]] && group=" application-group=%{GLOBAL}"
  # The benchmark's server settings (bench/httpd.conf.in), with one route.
  /usr/bin/python3 -c 'import sys; print(open(sys.argv[1]).read().format(**dict(a.split("=", 1) for a in sys.argv[2:])), end="")' \
    "$root/bench/httpd.conf.in" dir="$dir" port="$port" moddir="$moddir" loglevel=warn work="$dir" \
    module_lines="LoadModule rwsgi_module $dir/modules/mod_rwsgi.so" \
    routes="WSGIScriptAlias /hello \"$dir/apps/hello.wsgi\"$group" >"$dir/conf/httpd.conf"
  chmod 0644 "$dir/conf/httpd.conf"
  echo "$dir/conf/httpd.conf"
}

# ab_run URL N OUT: N keep-alive requests; ab's report goes to OUT.
ab_run() { ab -q -k -s 30 -c "$connections" -n "$2" "$1" >"$3" 2>&1; }

# calc EXPR [DECIMALS]: floating-point arithmetic (awk; no bc needed).
calc() { awk "BEGIN { printf \"%.${2:-2}f\", ($1) }"; }

ab_field() { awk -F: -v k="$1" '$1 == k {sub(/^[ \t]+/, "", $2); print $2}' "$2" | awk '{print $1}'; }

rows=()
notes=()
status=0
for t in $targets; do
  port=$(free_port)
  conf=$(render "$t" "$port")
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$httpd" -f "$conf" -k start
  pidfile=$work/$t/run/httpd.pid
  for _ in $(seq 200); do [[ -s $pidfile ]] && break; sleep 0.1; done
  parent=$(cat "$pidfile")
  parents+=("$parent")
  for _ in $(seq 200); do (($(children "$parent" | wc -l) >= 2)) && break; sleep 0.1; done
  url=http://127.0.0.1:$port/hello
  body=$(curl -sS "$url")
  [[ $body == "Hello world" ]] || { echo "soak: $t: unexpected body: $body" >&2; exit 1; }

  echo "soak: $t: warm-up, $warmup requests" >&2
  ab_run "$url" "$warmup" "$work/$t/ab-warmup.txt"
  mapfile -t kids < <(children "$parent")
  declare -A warm=() peak=()
  for k in "${kids[@]}"; do warm[$k]=$(rss_kb "$k"); peak[$k]=${warm[$k]}; done

  echo "soak: $t: $requests requests, RSS every ${interval}s" >&2
  samples=$work/$t/rss.tsv
  printf 'seconds\tpid\trss_kb\n' >"$samples"
  start=$(date +%s.%N)
  ab_run "$url" "$requests" "$work/$t/ab.txt" &
  abpid=$!
  while kill -0 "$abpid" 2>/dev/null; do
    sleep "$interval"
    now=$(date +%s.%N)
    for k in "${kids[@]}"; do
      r=$(rss_kb "$k")
      [[ -n $r ]] || continue
      printf '%s\t%s\t%s\n' "$(calc "$now - $start" 0)" "$k" "$r" >>"$samples"
      if ((r > peak[$k])); then peak[$k]=$r; fi
    done
  done
  wait "$abpid" || { echo "soak: $t: ab failed:" >&2; cat "$work/$t/ab.txt" >&2; exit 1; }

  ab=$work/$t/ab.txt
  complete=$(ab_field "Complete requests" "$ab")
  failed=$(ab_field "Failed requests" "$ab")
  non2xx=$(ab_field "Non-2xx responses" "$ab")
  rps=$(ab_field "Requests per second" "$ab")
  took=$(ab_field "Time taken for tests" "$ab")
  now_kids=$(children "$parent" | tr '\n' ' ')
  same="yes"
  [[ "$now_kids" == "$(printf '%s ' "${kids[@]}")" ]] || same="no (now: $now_kids)"
  verdict=pass
  [[ $complete == "$requests" && $failed == 0 && -z $non2xx && $same == yes ]] || verdict=FAIL
  for k in "${kids[@]}"; do
    end=$(rss_kb "$k")
    end=${end:-0}
    growth=$(calc "($end - ${warm[$k]}) * 100 / ${warm[$k]}")
    if [[ $(calc "$growth >= $max_growth" 0) == 1 ]]; then verdict=FAIL; fi
    rows+=("| $t | $k | $complete | ${failed}${non2xx:+ (+$non2xx non-2xx)} | $rps | $took | $(calc "${warm[$k]}/1024" 1) | $(calc "${peak[$k]}/1024" 1) | $(calc "$end/1024" 1) | $growth% | $same | VERDICT |")
  done
  # One verdict per target, on each of its rows.
  for i in "${!rows[@]}"; do rows[i]=${rows[i]/VERDICT/$verdict}; done
  [[ $verdict == pass ]] || status=1
  bad=$(grep -cE '\[(\w+:)?(error|crit|alert|emerg)\]|exit signal|Traceback' "$work/$t/logs/error_log" || true)
  # The samples, one entry per sampling time: seconds into the run, then MiB per child.
  series=$(awk -F'\t' 'NR > 1 { if ($1 != t) { if (t != "") printf "%s; ", line; t = $1; line = t "s:" }
                                 line = line sprintf(" %.1f", $3 / 1024) }
                        END { if (t != "") printf "%s", line }' "$samples")
  # ab details its failed requests only when there are some.
  breakdown=$( (grep -E '^\s+\(Connect:' "$ab" || true) | tr -s ' ' | sed 's/^ //')
  notes+=("- $t: failed requests: ${failed}${breakdown:+ $breakdown}; error-log lines at error level or above: $bad. RSS samples (s: MiB per child): $series")
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$httpd" -f "$conf" -k stop
  for _ in $(seq 100); do kill -0 "$parent" 2>/dev/null || break; sleep 0.1; done
  ((bad == 0)) || { echo "soak: $t: $bad error-log lines:" >&2; tail -20 "$work/$t/logs/error_log" >&2; status=1; }
done

{
  echo "# mod_rwsgi soak results"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) CPUs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- Checkout: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown); module: \`$module\` (sha256 $(sha256sum "$module" | cut -c1-12))"
  echo "- Command: \`${SOAK_COMMAND:-bench/soak.sh}\` (TARGETS=\"$targets\" REQUESTS=$requests WARMUP=$warmup CONNECTIONS=$connections INTERVAL=$interval MAX_GROWTH=$max_growth)"
  echo "- Client: \`ab -k -c $connections -n $requests\` on 127.0.0.1 after $warmup warm-up requests; server: event MPM, 2 children x 25 threads, KeepAlive On, MaxKeepAliveRequests 0, MaxConnectionsPerChild 0, LogLevel warn, no access log; app \`bench/apps/hello.wsgi\`."
  echo "- RSS: VmRSS of each child (/proc/PID/status), just after warm-up, highest sample (every ${interval} s) and at the end; growth is end vs warm-up. Pass: every request a 200, the same children throughout, growth < ${max_growth}% for every child."
  echo
  echo "| target | child pid | requests | failed | req/s | seconds | RSS warm-up MiB | RSS peak MiB | RSS end MiB | growth | same children | verdict |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${notes[@]}"
} >"$results"
cat "$results"
exit "$status"

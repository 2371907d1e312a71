#!/usr/bin/env bash
# Benchmark: static files vs mod_wsgi vs mod_rwsgi (embedded or daemon mode). See bench/README.md.
#   bench/run.sh                              all targets and scenarios (~8 min)
#   TARGETS="static mod_wsgi" bench/run.sh    a subset (static, mod_wsgi, rwsgi,
#                                             mod_wsgi-daemon, rwsgi-daemon)
#   SCENARIOS="hello 10m" ROUNDS=5 bench/run.sh
# Results: printed, and written to bench/results/latest.md (+ latest.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
targets=${TARGETS:-static mod_wsgi rwsgi}
if [[ " $targets " =~ \ (mod_)?rwsgi(-daemon)?\  ]]; then
  [[ -z ${RWSGI_MODULE:-} ]] && make -C "$root" --no-print-directory build
fi
# Debian's Python runs the harness (any python3 would do; this one is always there).
exec /usr/bin/python3 "$root/bench/bench.py"

#!/usr/bin/env bash
# Runs every benchmark and writes docs/benchmarks.md: each figure beside its target, the
# command that reproduces it, and the machine it ran on.
#
#   bench/all.sh [--quick]      (from the project root; needs `make setup` and, for the
#                                scale-out benches, PostgreSQL and Redis on 127.0.0.1)
#
# --quick runs smaller workloads (for trying the script, not for the published figures).
# A bench that fails is reported as such in the document; the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=docs/benchmarks.md
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

# name | command | what it measures (targets are printed by the benches themselves)
BENCHES=(
  "capacity|$PY bench/inflight.py --part a --jobs $([ $QUICK = 1 ] && echo 200 || echo 1000)|One worker holding many jobs that wait on fal: time until all are in flight, its RSS and CPU while they wait."
  "overhead|$PY bench/inflight.py --part b --k 1,50|Brenia's per-job cost next to the bare fal-client, one job at a time and 50 at once, on SQLite and PostgreSQL."
  "submissions|$PY bench/submissions.py|Accepted submissions per second on the scale-out profile next to a hello-world django-ninja POST on the same daphne."
  "websockets|$PY bench/ws_fanout.py --clients $([ $QUICK = 1 ] && echo 100 || echo 500)|Live-update delivery to many WebSocket clients: per-job streams and one stream to every socket."
  "cache|$PY bench/cache.py --requests $([ $QUICK = 1 ] && echo 5 || echo 20)|A result-cache hit next to a miss."
  "runner-hints|$PY bench/runner_hints.py --through-brenia|Cold model loads with and without X-Fal-Runner-Hint, through Brenia's API."
  "composition|$PY bench/compose.py --runs $([ $QUICK = 1 ] && echo 2 || echo 5)|Composing each template format (Pillow), and its memory."
  "fault-drills|$PY bench/drills.py all|Killed processes, a Redis restart, dropped database connections and injected provider faults during a run."
)

started=$(date -u +"%Y-%m-%d %H:%M UTC")
revision=$(git rev-parse --short HEAD 2>/dev/null || echo "unknown")
git diff --quiet HEAD 2>/dev/null || revision="$revision, with uncommitted changes"
for entry in "${BENCHES[@]}"; do
  IFS='|' read -r name command _ <<<"$entry"
  echo "== $name: $command"
  began=$(date +%s)
  # DEBUG off, as production runs; each bench starts its own servers with it off too.
  DEBUG=0 $command >"$LOGS/$name.log" 2>&1
  echo "$? $(( $(date +%s) - began ))" >"$LOGS/$name.rc"
  grep '^RESULT |' "$LOGS/$name.log" || true
done

{
  echo "# Benchmarks"
  echo
  echo "Written by \`bench/all.sh\` on $started (commit $revision). Every figure below comes"
  echo "from that run; run \`bench/all.sh\` to measure again, or a bench's own command for one"
  echo "figure."
  echo
  echo "## The machine"
  echo
  echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- Memory: $(free -g | awk '/^Mem:/ {print $2}') GiB; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $($PY --version 2>&1); PostgreSQL $(psql -h 127.0.0.1 -U postgres -tAc 'show server_version' 2>/dev/null || echo '?'); Redis $(redis-cli -h 127.0.0.1 info server 2>/dev/null | awk -F: '/^redis_version/ {print $2}' | tr -d '\r' || echo '?')"
  echo "- Providers are Brenia's built-in emulators (fal queue and Gemini) in their own processes."
  echo
  echo "## Summary"
  echo
  echo "| Figure | Measured | Target | Verdict | Bench |"
  echo "|---|---|---|---|---|"
  for entry in "${BENCHES[@]}"; do
    IFS='|' read -r name _ _ <<<"$entry"
    read -r rc _ <"$LOGS/$name.rc"
    if ! grep -q '^RESULT |' "$LOGS/$name.log"; then
      echo "| $name | bench failed (exit $rc): see its section | | **failed** | $name |"
    fi
    grep '^RESULT |' "$LOGS/$name.log" | while IFS='|' read -r _ figure measured target verdict; do
      verdict=$(echo "$verdict" | xargs)
      [ "$verdict" = "missed" ] && verdict="**missed**"
      echo "|$figure|$measured|$target| $verdict | [$name](#$name) |"
    done
  done
  echo
  if [ -f bench/causes.md ]; then
    echo "## What misses its target, and why"
    echo
    cat bench/causes.md
    echo
  fi
  echo "## Each bench's report"
  for entry in "${BENCHES[@]}"; do
    IFS='|' read -r name command what <<<"$entry"
    read -r rc seconds <"$LOGS/$name.rc"
    echo
    echo "### $name"
    echo
    echo "$what"
    echo
    echo "\`$command\` — exit $rc, ${seconds} s"
    echo
    echo '```text'
    grep -v '^RESULT |' "$LOGS/$name.log" | tail -n 80
    echo '```'
  done
} >"$OUT"
echo "wrote $OUT"

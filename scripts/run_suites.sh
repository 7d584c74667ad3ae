#!/usr/bin/env bash
# Run the suite under both profiles at once (they share nothing but the machine:
# own databases, free ports, content-addressed media), then show both reports.
# Exits non-zero if either run fails, including pytest's "no tests ran" (5).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
BIN=.venv/bin

echo "== suite, embedded profile (SQLite, in-memory channel layer, in-process jobs)"
echo "== suite, scale-out profile (PostgreSQL, Redis, procrastinate worker processes)"
"$BIN/pytest" -p no:cacheprovider > test-artifacts/embedded.log 2>&1 &
embedded=$!
DATABASE_URL=postgres://postgres@127.0.0.1:5432/brenia REDIS_URL=redis://127.0.0.1:6379/0 \
  BRENIA_JOBS=procrastinate BRENIA_REDIS_PREFIX="brenia-test-$$" \
  "$BIN/pytest" -p no:cacheprovider > test-artifacts/scaleout.log 2>&1 &
scaleout=$!

wait "$embedded"; embedded_rc=$?
wait "$scaleout"; scaleout_rc=$?

for profile in embedded scaleout; do
  echo
  echo "== $profile profile report (full log: test-artifacts/$profile.log)"
  # Server access lines are noise in a report; everything else is kept.
  grep -avE '"(GET|POST|PUT) /|WSCONNECT|WSDISCONNECT|WSCONNECTING' "test-artifacts/$profile.log"
done
echo
echo "embedded exit: $embedded_rc, scale-out exit: $scaleout_rc"
[ "$embedded_rc" -eq 0 ] && [ "$scaleout_rc" -eq 0 ]

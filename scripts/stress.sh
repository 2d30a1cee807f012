#!/usr/bin/env bash
# make stress: the long variants of the reliability suite (reliability/),
# against the real daemon and real plugin processes: every plugin fault 50
# times under API load, alone and all at once; 100 SIGKILLs of the daemon
# during attestations; the audit log's file system filled and freed; and the
# long variants of the abuse and tamper tests. Bounded: go test cuts the run
# at 10 minutes. Prints the figures each test reports, and the wall and CPU
# time the run took.
#
#   STRESS_RUN=REGEXP   run only the matching tests (go test -run)
#   ATTESTOR_SEED=N     replay the random kill points of an earlier run
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
report="$(mktemp -t attestor-stress-XXXXXX)"
log="$(mktemp -t attestor-stress-log-XXXXXX)"
trap 'rm -f "$report" "$log"' EXIT

echo "stress: reliability suite, long variants (ATTESTOR_STRESS=1), at most 10 minutes"
start=$(date +%s)
status=0
# -parallel: the scenarios spend much of their time waiting on plugin
# timeouts, kills and restarts; side by side they stay under 10 minutes on
# 2 cores. Without -v, go test prints only what failing tests logged; the
# passing ones' figures go to $ATTESTOR_REPORT.
TIMEFORMAT='%R %U %S'
times=$( { time ATTESTOR_STRESS=1 ATTESTOR_REPORT="$report" \
  "$GO" test -count=1 -timeout 10m -parallel 8 -run "${STRESS_RUN:-.}" ./reliability/ >"$log" 2>&1 || echo "status $?" >>"$log"; } 2>&1 )
if grep -q '^status ' "$log"; then
  status=$(sed -n 's/^status //p' "$log" | tail -1)
fi
read -r wall user sys <<<"$times"
elapsed=$(( $(date +%s) - start ))

echo
echo "figures:"
sort "$report" | sed 's/^/  /'
echo
awk -v w="$wall" -v u="$user" -v s="$sys" 'BEGIN { printf "wall %.0fs, CPU %.0fs (user %.0fs, system %.0fs: test process, daemons and plugins)\n", w, u + s, u, s }'
if [ "$status" -ne 0 ]; then
  echo "stress: FAILED after ${elapsed}s:"
  grep -v '^status ' "$log" | head -400
  exit "$status"
fi
tail -1 "$log"
echo "stress: passed in ${elapsed}s"

#!/usr/bin/env bash
# `make bench` (after `make deps build`): builds the light test plugin and
# the benchmark harness, then runs bench/cmd/attestor-bench from the
# repository root. It prints one table and writes bench/results.json
# (git-ignored) and bench/RESULTS.md. See docs/performance.md.
#   BENCH_QUICK=1   every size shrunk: about a minute, for working on the harness
#   BENCH_IDLE=60s  idle CPU window
#   BENCH_DIR=/x    where the ~2.1 GiB of temporary files go (default $TMPDIR or /tmp)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
go=${GO:-go}
for exe in bin/runtime-attestor bin/attestctl; do
  [[ -x $exe ]] || { echo "bench: $exe is missing: run make build" >&2; exit 1; }
done
# wrk comes with scripts/install-deps.sh; the openssl and sha256sum
# executables are the hashing baselines (Debian packages openssl, coreutils).
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v wrk >/dev/null || missing+=(wrk)
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p bin/bench
"$go" build -o bin/bench/attestor-check-light ./testplugins/light
"$go" build -o bin/bench/attestor-bench ./bench/cmd/attestor-bench
echo "bench: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# One plugin start through the launcher (verify, confine, execveat the
# verified descriptor, handshake, describe, configure, measure, stop), wall
# and CPU of both sides per start (docs/performance.md).
echo "bench: plugin start, on demand, through the launcher:" >&2
"$go" test -run '^$' -bench '^BenchmarkPluginStart$' -benchtime 30x -count 3 ./core/pluginhost/ | grep '^Benchmark' >&2
exec bin/bench/attestor-bench -root "$root" -bin bin -light bin/bench/attestor-check-light \
  -json bench/results.json -md bench/RESULTS.md

#!/usr/bin/env bash
# `make bench` (after `make deps build`): builds bench/ and runs it from the
# repository root. It runs the daemon under the unit's limits in cgroups of
# its own (root needed), prints the table and writes bench/RESULTS.md
# (docs/performance.md). Arguments go to attestor-bench (-runs, -files, …).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
go=${GO:-go}
for exe in bin/runtime-attestor bin/attestctl; do
  [[ -x $exe ]] || { echo "bench: $exe is missing: run make build" >&2; exit 1; }
done
mkdir -p bin/bench
"$go" build -o bin/bench/attestor-bench ./bench
echo "bench: $(uptime)" >&2
exec bin/bench/attestor-bench -root "$root" -bin bin -o bench/RESULTS.md "$@"

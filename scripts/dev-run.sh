#!/usr/bin/env bash
# `make run`: start the daemon in the foreground on 127.0.0.1:8505 with the
# development policy. Creates a development HMAC key and API token under
# .run/ (mode 0600) the first time, renders the development policy there and
# prints how to query the daemon.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/.run"
mkdir -p "$run"
chmod 0700 "$run"
# The daemon trusts its plugin folder only when nobody else can write it
# (docs/deployment.md, "Files the daemon trusts"); a umask of 002 would not do.
chmod go-w "$root/bin" "$root/bin/plugins" 2>/dev/null || true
umask 077
if [[ ! -s "$run/hmac.key" ]]; then
  head -c 32 /dev/urandom >"$run/hmac.key"
  echo "make run: created development HMAC key $run/hmac.key" >&2
fi
if [[ ! -s "$run/api-token" ]]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/api-token"
  echo "make run: created development API token $run/api-token" >&2
fi
sed -e "s|@ROOT@|$root|g" -e "s|@RUN@|$run|g" "$root/policy/examples/development.yaml.in" >"$run/development.yaml"
cat >&2 <<EOT

runtime-attestor (development policy $run/development.yaml) on http://127.0.0.1:8505
  curl -s http://127.0.0.1:8505/health
  curl -s http://127.0.0.1:8505/api/v1/verify
  curl -s http://127.0.0.1:8505/api/v1/attest
  curl -s http://127.0.0.1:8505/api/security/status
  curl -s -X POST -H "Authorization: Bearer \$(cat $run/api-token)" http://127.0.0.1:8505/api/v1/refresh
  $root/bin/attestctl status
  $root/bin/attestctl verify-bundle --key $run/hmac.key <(curl -s http://127.0.0.1:8505/api/v1/attest)
  $root/bin/attestctl audit verify --seed $run/audit.key.seed $run/audit.jsonl
Stop with Ctrl-C.

EOT
exec "$root/bin/runtime-attestor" --config "$run/development.yaml"

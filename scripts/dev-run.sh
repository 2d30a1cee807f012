#!/usr/bin/env bash
# `make run`: start the daemon in the foreground on 127.0.0.1:8505 with the
# development policy. Creates a development HMAC key and API token under
# .run/ (mode 0600) and a signing key (.run/signing.key, Ed25519, with
# signing.key.pub, made by attestctl keygen) the first time, renders the
# development policy there the first time (your edits to .run/development.yaml are kept; delete it,
# or run `make run-reset`, to render it again) and prints how to query the
# daemon.
#
#   scripts/dev-run.sh [--render-only]   # --render-only: prepare .run/, do not start
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/.run"
policy="$run/development.yaml"
template="$root/policy/examples/development.yaml.in"
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
# The signing key: kept once made (attestctl keygen never replaces a key).
"$root/bin/attestctl" keygen --if-missing --out "$run/signing.key" | sed 's/^/make run: signing key: /' >&2
render() { sed -e "s|@ROOT@|$root|g" -e "s|@RUN@|$run|g" "$template"; }
if [[ ! -e "$policy" ]]; then
  render >"$policy"
  render | sha256sum | cut -d' ' -f1 >"$run/development.yaml.rendered"
  echo "make run: rendered $policy from $template" >&2
else
  now=$(render | sha256sum | cut -d' ' -f1)
  if [[ "$(cat "$run/development.yaml.rendered" 2>/dev/null)" != "$now" ]]; then
    echo "make run: keeping your $policy; $template has changed since it was rendered:" >&2
    echo "make run:   to take the new one (dropping your edits): make run-reset" >&2
  fi
fi
cat >&2 <<EOT

runtime-attestor (development policy $policy) on http://127.0.0.1:8505
  curl -s http://127.0.0.1:8505/health
  curl -s http://127.0.0.1:8505/api/v1/verify
  curl -s http://127.0.0.1:8505/api/v1/attest
  curl -s http://127.0.0.1:8505/api/security/status
  curl -s -X POST -H "Authorization: Bearer \$(cat $run/api-token)" http://127.0.0.1:8505/api/v1/refresh
  $root/bin/attestctl status
  $root/bin/attestctl verify-bundle --key $run/hmac.key <(curl -s http://127.0.0.1:8505/api/v1/attest)
  $root/bin/attestctl verify-bundle --pubkey $run/signing.key.pub <(curl -s http://127.0.0.1:8505/api/v1/attest)
  $root/bin/attestctl gate --pubkey $run/signing.key.pub
  $root/bin/attestctl audit verify --seed $run/audit.key.seed $run/audit.jsonl
Edit $policy and send SIGHUP (kill -HUP \$(pgrep -n runtime-attestor)) or restart to apply;
make run keeps your edits (make run-reset renders it again). Stop with Ctrl-C.

EOT
if [[ "${1:-}" == "--render-only" ]]; then
  exit 0
fi
exec "$root/bin/runtime-attestor" --config "$policy"

#!/usr/bin/env bash
# `make tpm-demo`: the whole TPM path without TPM hardware.
#
# Starts Debian's swtpm (a software TPM 2.0) in .run/tpm/, plays the firmware
# that measures a boot into PCRs 0-7, pins the values it then reads in a
# policy rendered from policy/examples/development.yaml.in with
# require_tpm: true and the tpm plugin pointed at swtpm's socket (its TPM
# clock state file in .run/tpm/ too), and runs the daemon in the foreground
# on 127.0.0.1:8505. /api/v1/attest then shows the real PCRs and
# tpm_quote_verified: true. With the daemon's signing key (.run/signing.key,
# made by attestctl keygen) and evidence_tpm_socket pointing at swtpm, it then
# runs scripts/evidence-roundtrip.sh: GET /api/v1/evidence with a fresh nonce,
# verified by attestctl verify-evidence and by tpm2_checkquote. swtpm stops
# when the daemon does (Ctrl-C).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/.run"
tpmdir="$run/tpm"
sock="$tpmdir/swtpm.sock"
ctrl="$tpmdir/swtpm.ctrl"
# The TPM clock's high-water mark (plugins.tpm.config.state_file): kept
# between runs like swtpm's state, so a rolled-back TPM is caught.
clockstate="$tpmdir/tpm-clock.json"
policy="$run/tpm-demo.yaml"
template="$root/policy/examples/development.yaml.in"

die() { echo "tpm-demo: $*" >&2; exit 1; }

command -v swtpm >/dev/null || die "swtpm is not installed: run make deps (or apt-get install swtpm)"
[[ -x "$root/bin/runtime-attestor" && -x "$root/bin/plugins/attestor-check-tpm" ]] || die "the daemon is not built: run make build"
[[ -r "$template" ]] || die "no policy template at $template"

mkdir -p "$tpmdir/state"
chmod 0700 "$run" "$tpmdir" "$tpmdir/state"
umask 077
if [[ ! -s "$run/hmac.key" ]]; then
  head -c 32 /dev/urandom >"$run/hmac.key"
  echo "tpm-demo: created development HMAC key $run/hmac.key" >&2
fi
"$root/bin/attestctl" keygen --if-missing --out "$run/signing.key" >&2
if [[ ! -s "$run/api-token" ]]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/api-token"
  echo "tpm-demo: created development API token $run/api-token" >&2
fi

# A swtpm left running by an interrupted demo holds the socket: stop it.
if [[ -s "$tpmdir/swtpm.pid" ]]; then
  old=$(cat "$tpmdir/swtpm.pid")
  if [[ "$(cat "/proc/$old/comm" 2>/dev/null)" == swtpm ]]; then
    kill "$old" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
fi
rm -f "$sock" "$ctrl" "$tpmdir/swtpm.pid"

# The TPM state (its endorsement seed, hence the attestation key) persists
# in .run/tpm/state; PCRs start from zero at every start (startup-clear).
swtpm socket --tpm2 \
  --server "type=unixio,path=$sock" \
  --ctrl "type=unixio,path=$ctrl" \
  --tpmstate "dir=$tpmdir/state" \
  --flags not-need-init,startup-clear \
  --pid "file=$tpmdir/swtpm.pid" \
  --log "file=$tpmdir/swtpm.log" &
swtpm_pid=$!
stop_swtpm() {
  kill "$swtpm_pid" 2>/dev/null || true
  wait "$swtpm_pid" 2>/dev/null || true
}
trap stop_swtpm EXIT

for _ in $(seq 100); do
  [[ -S "$sock" ]] && break
  kill -0 "$swtpm_pid" 2>/dev/null || die "swtpm exited; see $tpmdir/swtpm.log"
  sleep 0.1
done
[[ -S "$sock" ]] || die "swtpm did not open $sock; see $tpmdir/swtpm.log"

# The demo's helper speaks to swtpm with go-tpm (scripts/tpmdemo).
(cd "$root" && go build -o "$tpmdir/tpmdemo" ./scripts/tpmdemo)
"$tpmdir/tpmdemo" -socket "$sock" boot
pins=$("$tpmdir/tpmdemo" -socket "$sock" pcrs)

sed -e "s|@ROOT@|$root|g" -e "s|@RUN@|$run|g" \
  -e "s|^require_tpm: false\$|require_tpm: true|" \
  -e "s|^expected_pcrs: {}\$|expected_pcrs: $pins|" \
  -e "s|^\\( *\\)device: /dev/tpmrm0\$|\\1swtpm_socket: \"$sock\"\\n\\1state_file: \"$clockstate\"|" \
  "$template" >"$policy"
cat >>"$policy" <<EOT

# The TPM evidence is quoted by swtpm (docs/tpm.md); the signing key is the
# template's (signing_key_path: $run/signing.key).
evidence_tpm_socket: "$sock"
EOT
grep -q '^require_tpm: true$' "$policy" &&
  grep -q '^expected_pcrs: {"0": ' "$policy" &&
  grep -q "swtpm_socket: \"$sock\"" "$policy" &&
  grep -q "state_file: \"$clockstate\"" "$policy" ||
  die "$template no longer has the lines this script rewrites (require_tpm: false, expected_pcrs: {}, device: /dev/tpmrm0 under plugins.tpm.config): update scripts/tpm-demo.sh"

cat >&2 <<EOT

runtime-attestor TPM demo (policy $policy) on http://127.0.0.1:8505
swtpm on $sock, PCRs 0-7 pinned to:
  $pins

See the TPM part of the bundle:
  curl -s http://127.0.0.1:8505/api/v1/attest | jq '{state, tpm_available: .bundle.tpm_available, tpm_quote_verified: .bundle.tpm_quote_verified, pcrs: .bundle.boot_measurements.pcrs}'
  curl -s http://127.0.0.1:8505/api/v1/attest | jq '.bundle.checks.tpm'
Tamper with the boot and refresh: tpm.pcr_mismatch, state degraded:
  $tpmdir/tpmdemo -socket $sock extend 4 "a different boot loader"
  curl -s -X POST -H "Authorization: Bearer \$(cat $run/api-token)" http://127.0.0.1:8505/api/v1/refresh | jq '{state, failures: .bundle.failures}'
The TPM clock's high-water mark is kept in $clockstate. Push it an hour
ahead (a TPM restored from an older copy) and refresh: tpm.clock_rollback,
state failed (delete the file before the next demo):
  jq '.tpms[].clock += 3600000' $clockstate >$clockstate.new && mv $clockstate.new $clockstate
The evidence round trip runs as soon as the daemon is attested; run it
again with: scripts/evidence-roundtrip.sh http://127.0.0.1:8505 $run/signing.key.pub $tpmdir/evidence
Stop with Ctrl-C (stops swtpm too).

EOT
"$root/bin/runtime-attestor" --config "$policy" &
daemon_pid=$!
stop_all() {
  kill "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
  stop_swtpm
}
trap stop_all EXIT
trap 'exit 130' INT TERM
for _ in $(seq 300); do
  curl -sf http://127.0.0.1:8505/api/v1/verify >/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || die "the daemon exited"
  sleep 0.2
done
"$root/scripts/evidence-roundtrip.sh" http://127.0.0.1:8505 "$run/signing.key.pub" "$tpmdir/evidence" ||
  echo "tpm-demo: the evidence round trip failed (see above)" >&2
wait "$daemon_pid"

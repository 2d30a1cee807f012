#!/usr/bin/env bash
# The evidence round trip a remote verifier makes, against a running daemon:
# pin the AK, send a fresh nonce, verify the answer with attestctl, then with
# tpm2_checkquote (tpm2-tools) using qualifying data computed by hand, then
# show that a changed bundle field and a replayed quote are refused.
#   scripts/evidence-roundtrip.sh URL PUBKEY WORKDIR
# Run by scripts/tpm-demo.sh once the daemon is attested.
set -euo pipefail
url=${1:?usage: evidence-roundtrip.sh URL PUBKEY WORKDIR}
pub=${2:?usage: evidence-roundtrip.sh URL PUBKEY WORKDIR}
dir=${3:?usage: evidence-roundtrip.sh URL PUBKEY WORKDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
attestctl="$root/bin/attestctl"
for t in curl jq xxd sha256sum tpm2_checkquote; do
  command -v "$t" >/dev/null || { echo "evidence-roundtrip: $t is not installed (make deps; jq, xxd)" >&2; exit 1; }
done
mkdir -p "$dir"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "pin the attestation key (GET /api/v1/ak)"
curl -sf "$url/api/v1/ak" | jq -r .pem >"$dir/ak.pem"
cat "$dir/ak.pem"

nonce=$(head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \n')
step "GET /api/v1/evidence?nonce=$nonce"
curl -sf "$url/api/v1/evidence?nonce=$nonce" >"$dir/evidence.json"
jq '{nonce, bundle_digest, qualifying_data, state: .bundle.state, pcrs: .quote.pcrs}' "$dir/evidence.json"

step "attestctl verify-evidence"
"$attestctl" verify-evidence --ak "$dir/ak.pem" --nonce "$nonce" --pubkey "$pub" --export "$dir/cq" "$dir/evidence.json"

step "tpm2_checkquote, qualifying data by hand: SHA-256(nonce || SHA-256(JCS(bundle without signatures)))"
digest=$(jq -cS '.bundle | del(.bundle_hmac, .bundle_signature)' "$dir/evidence.json" | tr -d '\n' | sha256sum | cut -c1-64)
qd=$(printf '%s%s' "$nonce" "$digest" | xxd -r -p | sha256sum | cut -c1-64)
echo "bundle digest   $digest"
echo "qualifying data $qd"
[[ "$qd" == "$(cat "$dir/cq/qualification.hex")" ]] || { echo "evidence-roundtrip: the hand-computed qualifying data differs from the evidence's" >&2; exit 1; }
tpm2_checkquote -u "$dir/ak.pem" -m "$dir/cq/quote.msg" -s "$dir/cq/quote.sig" -f "$dir/cq/pcrs.bin" -g sha256 -q "$qd" >/dev/null
echo "tpm2_checkquote: OK"

step "a changed bundle field is refused"
jq '.bundle.score = 1' "$dir/evidence.json" >"$dir/changed.json"
if "$attestctl" verify-evidence --ak "$dir/ak.pem" --nonce "$nonce" "$dir/changed.json"; then
  echo "evidence-roundtrip: a changed bundle verified" >&2; exit 1
fi

step "the same evidence replayed to a verifier with a new nonce is refused"
fresh=$(head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \n')
if "$attestctl" verify-evidence --ak "$dir/ak.pem" --nonce "$fresh" "$dir/evidence.json"; then
  echo "evidence-roundtrip: a replayed quote verified" >&2; exit 1
fi
printf '\nevidence round trip OK\n'

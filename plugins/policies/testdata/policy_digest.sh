#!/bin/bash
# policy_digest.sh FILE...: the policies plugin's policy_digest, computed
# with coreutils alone. Pass absolute paths, in the policy's order.
# For each file: 8-byte big-endian length of the path, the path, 8-byte
# big-endian length of the content, the content; SHA-256 over it all.
set -euo pipefail
export LC_ALL=C
u64be() { printf "$(printf '%016x' "$1" | sed 's/../\\x&/g')"; }
for f in "$@"; do
  u64be "$(printf %s "$f" | wc -c)"; printf %s "$f"
  u64be "$(stat -L -c %s "$f")"; cat "$f"
done | sha256sum | cut -d' ' -f1

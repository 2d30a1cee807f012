#!/usr/bin/env bash
# Installs the Debian packages the build and the test suite need, only when
# they are missing. Safe to run again; does nothing when all is present.
# With --build, only what `make build` needs (musl-tools), and nothing
# when ${LAUNCHER_CC:-musl-gcc} already builds the launcher.
#   musl-tools       musl-gcc, which builds the launcher (cmd/attestor-launcher,
#                    static C against musl: docs/performance.md, "The launcher")
#   gcc, libc6-dev   the race detector's and the TPM simulator's cgo builds
#   libssl-dev       cgo build of the TPM 2.0 simulator used by the tests
#   swtpm, swtpm-tools  software TPM for the end-to-end TPM test and demo
#   protobuf-compiler  protoc for `make proto`
#   openssl          `openssl dgst -sha256`, the hashing baseline of `make bench`
#   systemd          systemd-analyze for the unit tests
#   ostree           writes the real sysroots the ostree plugin's tests measure
#   fsverity         `fsverity digest`, which checks the plugin's composefs digests
#   prometheus       promtool, which tests deploy/prometheus/'s alerting rules
#                    (the package's own server is disabled again when this
#                    script installed it)
set -euo pipefail
if [[ "${1:-}" == "--build" ]]; then
  # A C compiler that builds the launcher (static) is all the build
  # needs: when one is there (installed by any means), nothing is
  # installed. `make build` passes its compiler and flags.
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  src="$(dirname "$0")/../cmd/attestor-launcher/attestor-launcher.c"
  # shellcheck disable=SC2086 # the flags are words, and so may the compiler be (make splits it)
  if ${LAUNCHER_CC:-musl-gcc} ${LAUNCHER_CFLAGS:--static} -o "$probe/a" "$src" 2>/dev/null; then
    exit 0
  fi
fi
if [[ "${1:-}" == "--build" ]]; then
  want=(musl-tools)
  # Another compiler than musl's (LAUNCHER_CC=cc): the launcher against
  # glibc. Any word naming musl counts (LAUNCHER_CC="ccache musl-gcc").
  case ${LAUNCHER_CC:-musl-gcc} in
    *musl*) ;;
    *) want=(gcc libc6-dev) ;;
  esac
else
  want=(musl-tools gcc libc6-dev libssl-dev swtpm swtpm-tools protobuf-compiler openssl systemd ostree fsverity prometheus)
  # tpm2-tools: tpm2_checkquote, which the evidence tests and `make tpm-demo` run.
  # python3-cryptography: the docs' Python verifiers of bundle_signature and EAR.
  want+=(tpm2-tools python3-cryptography)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "install-deps: missing ${missing[*]} (Debian package names), and this machine has no apt-get: install them with its package manager; the launcher builds with any static C compiler given as LAUNCHER_CC (LAUNCHER_CC=cc for glibc)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # promtool comes with Debian's Prometheus server, which starts itself on
  # :9090 where systemd runs; the tests need only promtool.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

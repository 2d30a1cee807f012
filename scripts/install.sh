#!/usr/bin/env bash
# install.sh DESTDIR PREFIX: lays out a built runtime-attestor (`make build`
# output in bin/ and bin/plugins/) as docs/deployment.md describes. `make
# install DESTDIR=/tmp/root PREFIX=/usr` calls it; a package build does the
# same with its staging root as DESTDIR.
#
#   $PREFIX/libexec/secure-ai/runtime-attestor/runtime-attestor        daemon
#   $PREFIX/libexec/secure-ai/runtime-attestor/attestor-launcher       plugin launcher
#   $PREFIX/libexec/secure-ai/runtime-attestor/runtime-attestor-keygen ExecStartPre
#   $PREFIX/libexec/secure-ai/runtime-attestor/plugins/attestor-check-* plugins
#   $PREFIX/bin/attestctl
#   $PREFIX/lib/systemd/system/secure-ai-runtime-attestor.service
#   $PREFIX/lib/systemd/system/secure-ai-runtime-attestor.socket
#   $PREFIX/lib/sysusers.d/secure-ai-runtime-attestor.conf
#   $PREFIX/share/doc/runtime-attestor/{deployment.md,gate-on-attestor.conf,sysctl-cfs-bandwidth-slice.conf}
#   $SYSCONFDIR/secure-ai/policy/attestation.yaml   only when absent
#
# Only the built-in plugins are installed (PLUGINS, the Makefile's list);
# anything else in bin/plugins/ (a test plugin, a vendor's build) is left
# out and named: install a third-party plugin into plugin_dir yourself.
#
# Environment: BIN_DIR (default <repo>/bin), POLICY_SRC (default
# <repo>/policy/examples/production.yaml), SYSCONFDIR (default /etc),
# PLUGINS (default: the <name> of every <repo>/cmd/attestor-check-<name>).
set -euo pipefail

usage() { echo "usage: $0 DESTDIR PREFIX" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
destdir=${1%/}
prefix=${2%/}
[[ -n $prefix && $prefix == /* ]] || { echo "install.sh: PREFIX must be an absolute path, got '$2'" >&2; exit 2; }
[[ -z $destdir || $destdir == /* ]] || { echo "install.sh: DESTDIR must be empty or an absolute path, got '$1'" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN_DIR:-$root/bin}
policy_src=${POLICY_SRC:-$root/policy/examples/production.yaml}
sysconfdir=${SYSCONFDIR:-/etc}

libexec=$prefix/libexec/secure-ai/runtime-attestor
plugins=$libexec/plugins
unitdir=$prefix/lib/systemd/system
sysusersdir=$prefix/lib/sysusers.d
docdir=$prefix/share/doc/runtime-attestor
policy=$sysconfdir/secure-ai/policy/attestation.yaml

owner=()
[[ $(id -u) -eq 0 ]] && owner=(-o root -g root)

die() { echo "install.sh: $*" >&2; exit 1; }
[[ -x $bin/runtime-attestor ]] || die "$bin/runtime-attestor not built (run make build)"
[[ -x $bin/attestor-launcher ]] || die "$bin/attestor-launcher not built (run make build)"
[[ -x $bin/attestctl ]] || die "$bin/attestctl not built (run make build)"
shopt -s nullglob
if [[ -n ${PLUGINS:-} ]]; then
  read -r -a builtin_plugins <<<"$PLUGINS"
else
  builtin_plugins=()
  for d in "$root"/cmd/attestor-check-*/; do
    d=${d%/}
    builtin_plugins+=("${d##*/attestor-check-}")
  done
fi
plugin_bins=()
for p in "${builtin_plugins[@]}"; do
  [[ -x $bin/plugins/attestor-check-$p ]] || die "$bin/plugins/attestor-check-$p not built (run make build)"
  plugin_bins+=("$bin/plugins/attestor-check-$p")
done
for f in "$bin"/plugins/*; do
  builtin=
  for p in "${plugin_bins[@]}"; do [[ $f == "$p" ]] && builtin=1; done
  [[ -n $builtin ]] || echo "install.sh: not installing $f: not a built-in plugin (install third-party plugins into plugin_dir yourself)" >&2
done
[[ -f $policy_src ]] || die "policy $policy_src missing"

install -d -m 0755 "${owner[@]}" "$destdir$libexec" "$destdir$plugins" "$destdir$prefix/bin" \
  "$destdir$unitdir" "$destdir$sysusersdir" "$destdir$docdir"
install -m 0755 "${owner[@]}" "$bin/runtime-attestor" "$destdir$libexec/runtime-attestor"
# The daemon starts each plugin through it (core/pluginhost/launch).
install -m 0755 "${owner[@]}" "$bin/attestor-launcher" "$destdir$libexec/attestor-launcher"
# The helper runs attestctl keygen: follow PREFIX.
sed -e "s|/usr/bin/attestctl|$prefix/bin/attestctl|g" "$root/deploy/runtime-attestor-keygen" >"$destdir$libexec/runtime-attestor-keygen.tmp"
chmod 0755 "$destdir$libexec/runtime-attestor-keygen.tmp"
[[ ${#owner[@]} -eq 0 ]] || chown root:root "$destdir$libexec/runtime-attestor-keygen.tmp"
mv -f "$destdir$libexec/runtime-attestor-keygen.tmp" "$destdir$libexec/runtime-attestor-keygen"
for p in "${plugin_bins[@]}"; do
  install -m 0755 "${owner[@]}" "$p" "$destdir$plugins/$(basename "$p")"
done
install -m 0755 "${owner[@]}" "$bin/attestctl" "$destdir$prefix/bin/attestctl"

# The unit and the drop-in name /usr paths; follow PREFIX.
sed -e "s|/usr/libexec/secure-ai/runtime-attestor/|$libexec/|g" -e "s|/usr/bin/attestctl|$prefix/bin/attestctl|g" \
  -e "s|/usr/share/doc/runtime-attestor/|$docdir/|g" \
  "$root/deploy/secure-ai-runtime-attestor.service" >"$destdir$unitdir/secure-ai-runtime-attestor.service.tmp"
chmod 0644 "$destdir$unitdir/secure-ai-runtime-attestor.service.tmp"
mv -f "$destdir$unitdir/secure-ai-runtime-attestor.service.tmp" "$destdir$unitdir/secure-ai-runtime-attestor.service"
sed -e "s|/usr/share/doc/runtime-attestor/|$docdir/|g" \
  "$root/deploy/secure-ai-runtime-attestor.socket" >"$destdir$unitdir/secure-ai-runtime-attestor.socket.tmp"
chmod 0644 "$destdir$unitdir/secure-ai-runtime-attestor.socket.tmp"
mv -f "$destdir$unitdir/secure-ai-runtime-attestor.socket.tmp" "$destdir$unitdir/secure-ai-runtime-attestor.socket"
install -m 0644 "${owner[@]}" "$root/deploy/sysusers.d/secure-ai-runtime-attestor.conf" "$destdir$sysusersdir/secure-ai-runtime-attestor.conf"
sed -e "s|/usr/bin/attestctl|$prefix/bin/attestctl|g" "$root/deploy/examples/gate-on-attestor.conf" >"$destdir$docdir/gate-on-attestor.conf"
chmod 0644 "$destdir$docdir/gate-on-attestor.conf"
# An example, not applied: it changes a setting of the whole kernel.
install -m 0644 "${owner[@]}" "$root/deploy/examples/sysctl-cfs-bandwidth-slice.conf" "$destdir$docdir/sysctl-cfs-bandwidth-slice.conf"
if [[ -f $root/docs/deployment.md ]]; then
  install -m 0644 "${owner[@]}" "$root/docs/deployment.md" "$destdir$docdir/deployment.md"
fi

# The policy is the operator's once installed: never overwrite it.
if [[ -e $destdir$policy ]]; then
  echo "install.sh: keeping existing $destdir$policy" >&2
else
  install -d -m 0755 "${owner[@]}" "$destdir$(dirname "$policy")"
  install -m 0644 "${owner[@]}" "$policy_src" "$destdir$policy"
fi
if [[ $prefix != /usr ]]; then
  echo "install.sh: PREFIX=$prefix: set plugin_dir: $plugins in $policy (the default is /usr/libexec/...)" >&2
fi
echo "install.sh: installed into ${destdir:-/} (PREFIX=$prefix)" >&2

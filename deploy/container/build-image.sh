#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the insa-exporter container image from Debian packages and the
# project's own build, without pulling anything from an image registry:
#
#   sudo deploy/container/build-image.sh [--binary build/insa-exporter] [--tag insa-exporter:0.1.0]
#                                        [--suite bookworm] [--mirror URL]... [--rootfs DIR]
#
# 1. The Debian packages that own the binary's shared libraries (`ldd`, then
#    `dpkg-query -S`) are unpacked by mmdebstrap (variant "extract": those
#    packages and their hard dependencies, nothing else: no shell, no
#    package manager) from the suite the build host runs, so the sonames match.
#    Documentation, manual pages, locales and iconv modules are left out.
# 2. The binary goes in as /usr/local/bin/insa-exporter without its debug
#    sections (`objcopy --strip-debug`: symbols kept for backtraces), with
#    /etc/ld.so.cache, /etc/passwd and /etc/group for root and nobody, an empty
#    /etc/insa-exporter for the probes.yaml mount, and /var/lib/dpkg/status
#    listing the unpacked packages (for image scanners).
# 3. `chroot ROOTFS insa-exporter --version` proves every library resolves
#    inside the image, then `tar | podman import` makes the image: entrypoint
#    the exporter, default arguments those of the systemd unit, port 9091,
#    user root (the capabilities come from the runtime: README.md, "A cluster").
#
# Prints the image's weight (uncompressed and gzip-compressed). Needs root,
# mmdebstrap, podman, binutils; apt access to a Debian mirror (--mirror
# overrides the default deb.debian.org with its updates and security
# suites). --rootfs keeps the unpacked tree in DIR (default: a temporary one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=$root/build/insa-exporter
tag=insa-exporter:0.1.0
suite=
mirrors=()
rootfs=
usage() { echo "usage:" >&2; sed -n '7,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --binary) binary=${2:?}; shift 2 ;;
    --tag) tag=${2:?}; shift 2 ;;
    --suite) suite=${2:?}; shift 2 ;;
    --mirror) mirrors+=("${2:?}"); shift 2 ;;
    --rootfs) rootfs=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
die() { echo "build-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "mmdebstrap (root mode) and podman's system storage need root: sudo $0"
for t in mmdebstrap podman objcopy ldconfig dpkg-query dpkg-deb chroot; do
  command -v "$t" >/dev/null || die "$t not found (tests/install-deps.sh installs it)"
done
[ -x "$binary" ] || die "$binary: no such executable (build first: cmake --build build)"
if [ -z "$suite" ]; then
  # shellcheck disable=SC1091
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$suite" ] || die "/etc/os-release has no VERSION_CODENAME: give --suite (the Debian suite the binary was built on)"
fi

# ---- which packages ---------------------------------------------------------
ldd_out=$(ldd "$binary") || die "ldd $binary failed"
if grep -q 'not found' <<<"$ldd_out"; then
  die "$binary has unresolved libraries: $(grep 'not found' <<<"$ldd_out" | xargs)"
fi
# "libx.so.1 => /lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
libs=$(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$ldd_out" | sort -u)
owner() {
  # Debian 12 registers some libraries under /lib, some under /usr/lib (merged /usr):
  # try the path, its target, and both spellings of each.
  local p c
  for p in "$1" "$(readlink -f "$1")"; do
    for c in "$p" "/usr$p" "${p#/usr}"; do
      dpkg-query -S "$c" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
    done
  done
  return 1
}
pkgs=()
for l in $libs; do
  p=$(owner "$l") || die "$l (needed by $binary) belongs to no Debian package: the image is built from packages only"
  pkgs+=("$p")
done
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
echo "build-image: $binary needs $(wc -w <<<"$libs") libraries from: ${pkgs[*]}"

# ---- rootfs -------------------------------------------------------------------
tmp=$(mktemp -d /tmp/insa-image.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
[ -n "$rootfs" ] || rootfs=$tmp/rootfs
[ ! -e "$rootfs" ] || [ -z "$(ls -A "$rootfs")" ] || die "$rootfs exists and is not empty"
excludes=()
for p in /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/lintian/* \
         /usr/share/gcc/* /usr/share/gdb/* /usr/lib/x86_64-linux-gnu/gconv/*; do
  excludes+=(--dpkgopt="path-exclude=$p")
done
# The extract variant leaves dpkg's status empty; write one from the packages
# themselves so scanners (trivy, grype, syft) see what the image holds.
status_hook='mkdir -p "$1/var/lib/dpkg"; for d in "$1"/var/cache/apt/archives/*.deb; do
  dpkg-deb -f "$d" | sed "/^Package:/a Status: install ok installed"; echo; done >"$1/var/lib/dpkg/status"'
log=$tmp/mmdebstrap.log
if ! mmdebstrap --variant=extract --include="$(IFS=,; echo "${pkgs[*]}")" "${excludes[@]}" \
    --extract-hook="$status_hook" "$suite" "$rootfs" "${mirrors[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  die "mmdebstrap failed (above)"
fi
# What a container runtime provides or the exporter never reads.
rm -rf "$rootfs"/etc/apt "$rootfs"/etc/dpkg "$rootfs"/var/cache "$rootfs"/var/lib/apt "$rootfs"/var/log \
       "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf "$rootfs"/etc/fstab "$rootfs"/dev/*
mkdir -p "$rootfs"/{proc,sys,dev,tmp,etc/insa-exporter,usr/local/bin}
chmod 1777 "$rootfs/tmp"
objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/insa-exporter"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
  >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
echo 'include /etc/ld.so.conf.d/*.conf' >"$rootfs/etc/ld.so.conf"
ldconfig -r "$rootfs"
got=$(chroot "$rootfs" /usr/local/bin/insa-exporter --version 2>&1) \
  || die "the exporter does not run inside the image's rootfs: $got"
echo "build-image: chroot $rootfs insa-exporter --version: $got"

# ---- image ------------------------------------------------------------------
version=${tag##*:}
old_id=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
# Fixed owners and order: the same inputs give the same layer.
tar -C "$rootfs" --sort=name --numeric-owner --owner=0 --group=0 -cf "$tmp/rootfs.tar" .
podman import --quiet \
  --change 'ENTRYPOINT ["/usr/local/bin/insa-exporter"]' \
  --change 'CMD ["--config.file", "/etc/insa-exporter/probes.yaml", "--web.listen-address", ":9091", "--log.level", "info"]' \
  --change 'EXPOSE 9091/tcp' \
  --change 'USER 0:0' \
  --change 'WORKDIR /' \
  --change 'STOPSIGNAL SIGTERM' \
  --change 'LABEL org.opencontainers.image.title=insa-exporter' \
  --change "LABEL org.opencontainers.image.version=$version" \
  --change "LABEL org.opencontainers.image.description=\"eBPF agent serving Prometheus metrics of unmodified worker processes\"" \
  --change "LABEL org.opencontainers.image.base.name=\"debian:$suite (mmdebstrap extract: ${pkgs[*]})\"" \
  --message "insa-exporter $version on Debian $suite runtime libraries" \
  "$tmp/rootfs.tar" "$tag" >/dev/null
new_id=$(podman image inspect --format '{{.Id}}' "$tag")
# A rebuild leaves the previous image untagged: remove it unless a container uses it.
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi

size=$(podman image inspect --format '{{.Size}}' "$tag")
gz=$(gzip -c "$tmp/rootfs.tar" | wc -c)
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1000000}'; }
echo "build-image: $tag (${new_id:0:12}): $(mb "$size") uncompressed, $(mb "$gz") gzip-compressed" \
     "(exporter $(mb "$(stat -c %s "$rootfs/usr/local/bin/insa-exporter")"), $(grep -c '^Package:' "$rootfs/var/lib/dpkg/status") Debian packages)"

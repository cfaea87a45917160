#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian package insa-exporter needs to build, test and run its demo.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
      prometheus-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libgtest-dev libgmock-dev
      libcapstone-dev libsqlite3-dev sqlite3 prometheus bpftrace curl systemd
      libcpp-httplib-dev libssl-dev libcrypt-dev openssl
      binutils systemtap-sdt-dev python3 python3.11 procps psmisc)
# libFuzzer runtime for Debian's clang 14 (tests/fuzz: the config fuzzer).
pkgs+=(libclang-rt-14-dev)
missing=()
# RE2 for label regexes; PostgreSQL 15 for the root test on a binary no one here wrote.
pkgs+=(libre2-dev postgresql-15 postgresql-client-15)
# Containers (tests/e2e_container.sh, deploy/container/build-image.sh, tests/root/container_test.cpp):
# podman with runc (crun fails on hybrid cgroups without CAP_SYS_RESOURCE; the scripts and tests
# pass --runtime runc), mmdebstrap for the image's Debian rootfs, capsh to read capabilities.
pkgs+=(podman runc mmdebstrap libcap2-bin)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

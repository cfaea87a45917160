#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one test command (README, CI): installs every package, builds, runs the
# unit tests, the root tests (real BPF, real processes), the deployment checks
# and the end-to-end Prometheus proof. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: root tests load BPF programs; run as root: sudo tests/run.sh" >&2
  exit 1
fi
step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
tests/install-deps.sh

step "build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

step "unit tests (no BPF, no privileges needed)"
build/insa_unit_tests --gtest_brief=1

step "fuzzing: config parser and plan builder under libFuzzer + AddressSanitizer, 60 s"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINSA_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target insa_config_fuzzer
tests/fuzz/run_config_fuzzer.sh 60

step "root tests (real BPF, real processes)"
build/insa_root_tests --gtest_brief=1

step "ThreadSanitizer: unit tests, and the scrape/reload/replace root tests against a TSan exporter"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINSA_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$(nproc)" --target insa_unit_tests insa_root_tests insa-exporter
build-tsan/insa_unit_tests --gtest_brief=1
build-tsan/insa_root_tests --gtest_brief=1 --gtest_filter='Serving.*:ReloadKeep.*:Lifecycle.ReplacedBinary*'

step "deployment checks (promtool, systemd-analyze, k8s schemas, dashboard lint)"
tests/deploy/check_deploy.sh

step "end to end: Prometheus scraping the exporter on the demo platform"
tests/e2e.sh

step "end to end: Prometheus scraping over TLS with basic auth, refused without credentials"
tests/e2e_tls.sh

step "end to end: the exporter image under podman (host PID, the unit's capabilities), workers on the host and in containers"
tests/e2e_container.sh

step "end to end: agent-mode remote_write to a second Prometheus, federation of the recording rules"
tests/e2e_remote_write.sh

echo
echo "tests/run.sh: all tests passed"

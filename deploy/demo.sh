#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: installs what is needed, builds, starts the unmodified demo platform
# and insa-exporter with the top-level probes.yaml, prints live insa_* lines,
# and runs until Ctrl-C. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "deploy/demo.sh: the exporter loads BPF programs; run as root: sudo deploy/demo.sh" >&2
  exit 1
fi
port=${INSA_DEMO_PORT:-9091}
tests/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

run_dir=/tmp/insa-demo
mkdir -p "$run_dir"
tests/workers/run_platform.sh stop --run-dir "$run_dir" >/dev/null 2>&1 || true
cleanup() {
  echo; echo "stopping"
  [ -n "${exp_pid:-}" ] && kill "$exp_pid" 2>/dev/null || true
  tests/workers/run_platform.sh stop --run-dir "$run_dir" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

build/insa-exporter --config.file probes.yaml --web.listen-address ":$port" 2>"$run_dir/exporter.log" &
exp_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break
  if ! kill -0 "$exp_pid" 2>/dev/null; then cat "$run_dir/exporter.log"; exit 1; fi
  sleep 0.2
done
tests/workers/run_platform.sh demo --run-dir "$run_dir" >"$run_dir/platform.log" 2>&1 &
echo "insa-exporter is measuring the demo platform (no metrics code in it):"
echo "  metrics:      http://localhost:$port/metrics"
echo "  landing page: http://localhost:$port/"
echo "  logs:         $run_dir/exporter.log, $run_dir/platform.log"
sleep 8
echo "--- a few live insa_* lines:"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^insa_(agent_requests_total|cache_hits_total|worker_health_status|message_bus_messages_total)' | head -12
echo "--- running until Ctrl-C (every family has samples within the first minute)"
while kill -0 "$exp_pid" 2>/dev/null; do sleep 1; done

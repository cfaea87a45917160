#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: installs what is needed, builds, starts an unmodified demo platform and
# insa-exporter, prints live insa_* lines, and runs until Ctrl-C. Idempotent; run as root.
#
#   deploy/demo.sh          the Python platform (tests/workers/python, Debian's python3.11)
#                           measured with probes-python.yaml on :9091
#   deploy/demo.sh --cpp    the C++ platform (tests/workers) with probes.yaml on :9091 instead
#   deploy/demo.sh --both   both: Python on :9091, C++ on :9092 (two exporters)
#
# Both platforms export the same 30 families with the same labels, so the dashboards in
# dashboards/ work on either (point Prometheus at the port you want).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=python
case ${1:-} in
  "") ;;
  --cpp) mode=cpp ;;
  --both) mode=both ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "deploy/demo.sh: the exporter loads BPF programs; run as root: sudo deploy/demo.sh" >&2
  exit 1
fi
port=${INSA_DEMO_PORT:-9091}
tests/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

py_dir=/tmp/insa-demo-py
cpp_dir=/tmp/insa-demo
mkdir -p "$py_dir" "$cpp_dir"
tests/workers/python/run_platform.sh stop --run-dir "$py_dir" >/dev/null 2>&1 || true
tests/workers/run_platform.sh stop --run-dir "$cpp_dir" >/dev/null 2>&1 || true
pids=()
cleanup() {
  echo; echo "stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  tests/workers/python/run_platform.sh stop --run-dir "$py_dir" >/dev/null 2>&1 || true
  tests/workers/run_platform.sh stop --run-dir "$cpp_dir" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# start_exporter CONFIG PORT LOG: starts insa-exporter and waits until it is ready.
start_exporter() {
  build/insa-exporter --config.file "$1" --web.listen-address ":$2" 2>"$3" &
  pids+=($!)
  for _ in $(seq 100); do
    # /metrics, not /-/ready: a Python probe is attached once a process of its script runs.
    curl -sf "http://127.0.0.1:$2/metrics" >/dev/null && return 0
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$3"; exit 1; fi
    sleep 0.2
  done
}

show() {  # show PORT: a few live lines
  curl -s "http://127.0.0.1:$1/metrics" |
    grep -E '^insa_(agent_requests_total|cache_hits_total|worker_health_status|message_bus_messages_total)' | head -14
}

if [[ $mode == python || $mode == both ]]; then
  start_exporter probes-python.yaml "$port" "$py_dir/exporter.log"
  # The exporter hooks a Python process at its process scan: --start-delay-ms lets it do
  # so before the first request (and before a restarted worker's first message).
  tests/workers/python/run_platform.sh demo --run-dir "$py_dir" --start-delay-ms 3000 \
    >"$py_dir/platform.log" 2>&1 &
  pids+=($!)
  echo "insa-exporter is measuring the Python platform (python3.11 workers, no metrics code in them):"
  echo "  metrics:      http://localhost:$port/metrics"
  echo "  landing page: http://localhost:$port/"
  echo "  logs:         $py_dir/exporter.log, $py_dir/platform.log"
fi
if [[ $mode == cpp || $mode == both ]]; then
  cport=$port
  [[ $mode == both ]] && cport=$((port + 1))
  start_exporter probes.yaml "$cport" "$cpp_dir/exporter.log"
  tests/workers/run_platform.sh demo --run-dir "$cpp_dir" >"$cpp_dir/platform.log" 2>&1 &
  pids+=($!)
  echo "insa-exporter is measuring the C++ platform (no metrics code in it):"
  echo "  metrics:      http://localhost:$cport/metrics"
  echo "  logs:         $cpp_dir/exporter.log, $cpp_dir/platform.log"
fi
sleep 12
if [[ $mode != cpp ]]; then echo "--- Python platform, a few live insa_* lines:"; show "$port"; fi
if [[ $mode != python ]]; then echo "--- C++ platform, a few live insa_* lines:"; show "${cport}"; fi
echo "--- running until Ctrl-C (every family has samples within the first minute)"
while kill -0 "${pids[0]}" 2>/dev/null; do sleep 1; done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end: the demo platform under insa-exporter (top-level probes.yaml),
# Debian's prometheus scraping it, every dashboard query and rule answered.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${E2E_PORT:-19191}
run_dir=$(mktemp -d /tmp/insa-e2e.XXXXXX)
log=$run_dir/exporter.log
cleanup() {
  [ -n "${exp_pid:-}" ] && kill "$exp_pid" 2>/dev/null || true
  tests/workers/run_platform.sh stop --run-dir "$run_dir/platform" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

build/insa-exporter --config.file probes.yaml --web.listen-address "127.0.0.1:$port" >"$log" 2>&1 &
exp_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break
  kill -0 "$exp_pid" 2>/dev/null || { cat "$log"; echo "e2e: exporter exited"; exit 1; }
  sleep 0.2
done
tests/workers/run_platform.sh demo --run-dir "$run_dir/platform" --restart-after 5 >"$run_dir/platform.log" 2>&1 &
# Let the platform go through a restart, breaker trips, DLQ replays and DB errors.
sleep 15
if ! tests/deploy/prom_e2e.sh "http://127.0.0.1:$port"; then
  echo "--- exporter log (tail)"; tail -20 "$log"
  exit 1
fi

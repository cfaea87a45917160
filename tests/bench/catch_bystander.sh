#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# No harm to bystanders: an unrelated C++ program's exception loop (ctr_thrower_a run on
# the host, N throws) timed without the exporter, with the exporter running a config whose
# tracked probes target other processes (tests/root/configs/container.yaml: containers'
# /app/... paths), and after. Before per-process catch hooks, libstdc++'s
# __cxa_begin_catch was hooked host-wide and every throw here paid a uprobe trap.
# Prints figures; not a test. Run as root under the shared lock:
#   flock /tmp/insa-root.lock tests/bench/catch_bystander.sh [build-dir]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
n=${N:-200000}
port=${PORT:-19790}
prog="$build/tests/fixtures/ctr_thrower_a"
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  "$prog" --tag bench --calls "$n" --every 1 >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
without=$(secs)
log=$(mktemp)
"$build/insa-exporter" --config.file "$here/tests/root/configs/container.yaml" \
  --web.listen-address "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
with=$(secs)
kill "$pid"
wait "$pid" 2>/dev/null || true
after=$(secs)
echo "unrelated C++ program, $n throws: ${without} s without the exporter, ${with} s with it, ${after} s after"

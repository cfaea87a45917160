#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Proves prom_e2e.sh without the exporter: serves fixtures/metrics.prom as
# /metrics with "python3 -m http.server" and rewrites it every second with
# every _total/_bucket/_sum/_count value multiplied by the seconds elapsed,
# so counters grow like the real ones. Then runs prom_e2e.sh against it.
#   tests/deploy/prom_e2e_fake.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "FAIL python3 not found"; exit 1; }
TMP=$(mktemp -d)
SRV_PID= TICK_PID=
cleanup() {
  for p in $TICK_PID $SRV_PID; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

render() {  # render N: the fixture at tick N
  awk -v n="$1" '/^#/ || NF < 2 { print; next }
    $1 ~ /(_total|_bucket|_sum|_count)($|\{)/ { $NF = $NF * n } { print }' "$HERE/fixtures/metrics.prom" >"$TMP/www/metrics.tmp" &&
    mv "$TMP/www/metrics.tmp" "$TMP/www/metrics"
}
mkdir -p "$TMP/www"
render 1
( n=1; while sleep 1; do n=$((n + 1)); render "$n"; done ) &
TICK_PID=$!

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$TMP/www" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >"$TMP/http.log" 2>&1) &
SRV_PID=$!
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/metrics" 2>/dev/null && break; sleep 0.1; done
echo "prom_e2e_fake: fake exporter (pid $SRV_PID) on http://127.0.0.1:$PORT/metrics"
"$HERE/prom_e2e.sh" "http://127.0.0.1:$PORT"

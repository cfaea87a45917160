#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# End-to-end proof of the dashboards and rules against a running exporter:
#   tests/deploy/prom_e2e.sh http://127.0.0.1:9091
# Starts Debian's prometheus on a free local port with a temporary config
# that scrapes EXPORTER_URL (path /metrics unless the URL has one) every 1 s
# as job "insa-exporter", evaluates deploy/prometheus/rules every 1 s, waits
# until the target is up and E2E_MIN_SAMPLES (20) scrapes happened, then
# runs every dashboard query and every rule through /api/v1/query
# (tests/deploy/prom_e2e_queries.mjs explains what is checked for alerts).
# $__rate_interval becomes E2E_RATE_INTERVAL (15s: ~15 samples per window).
# Exit 0 only if every query returned data. Prometheus is stopped on exit;
# its log is printed on failure.
set -u
URL=${1:?usage: $0 EXPORTER_URL (e.g. http://127.0.0.1:9091)}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
JOB=insa-exporter

for tool in prometheus node npm; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found (apt-get install prometheus nodejs npm)"; exit 1; }
done
if [ ! -d "$HERE/node_modules/yaml" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || { echo "FAIL npm ci in tests/deploy"; exit 1; }
fi

scheme=${URL%%://*}
[ "$scheme" = "$URL" ] && { scheme=http; rest=$URL; } || rest=${URL#*://}
hostport=${rest%%/*}
path=/${rest#"$hostport"}
path=${path#/}
[ -z "$path" ] || [ "$path" = "/" ] && path=/metrics

TMP=$(mktemp -d)
PROM_PID=
cleanup() {
  if [ -n "$PROM_PID" ]; then kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
{
  echo "global:"
  echo "  scrape_interval: 1s"
  echo "  scrape_timeout: 1s"
  echo "  evaluation_interval: 1s"
  echo "rule_files:"
  for f in "$ROOT"/deploy/prometheus/rules/*.yml; do echo "  - \"$f\""; done
  echo "scrape_configs:"
  echo "  - job_name: $JOB"
  echo "    scheme: $scheme"
  echo "    metrics_path: \"$path\""
  echo "    static_configs:"
  echo "      - targets: [\"$hostport\"]"
} >"$TMP/prometheus.yml"

promtool check config "$TMP/prometheus.yml" >"$TMP/check.log" 2>&1 || { echo "FAIL generated config:"; cat "$TMP/check.log"; exit 1; }
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
echo "prom_e2e: prometheus pid $PROM_PID on 127.0.0.1:$PORT scraping $scheme://$hostport$path every 1s"

node "$HERE/prom_e2e_queries.mjs" --prometheus "http://127.0.0.1:$PORT" --job "$JOB" --instance "$hostport"
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "--- prometheus log (last 20 lines)"
  tail -n 20 "$TMP/prometheus.log"
fi
exit "$rc"

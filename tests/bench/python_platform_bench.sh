#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The Python platform's cost under insa-exporter, in one run (root):
#
#     sudo tests/bench/python_platform_bench.sh
#
# Starts agent_message_bus.py, sizing_agent_worker.py and crm_agent_worker.py (Debian's
# python3.11, --work-scale 0: requests do not sleep, so the platform runs as fast as Python
# lets it and any overhead shows) and drives sizing_agent with tests/bench/py_load.py
# (closed loop, CONCURRENCY tasks in flight, task -> result round trip; 64 keeps the agent's
# queue from running empty, so the agent never idles in its 10 ms poll and the figure is
# CPU-bound: the exporter's cost shows in full). Rounds alternate:
#   none   no exporter
#   eval   insa-exporter with only the probes of probes-python.yaml that use the default
#          (eval) mechanism
#   full   insa-exporter with all of probes-python.yaml (18 probes use mechanism: call)
# and it prints requests/s and p50/p99 latency per mode (median over ROUNDS) and the loss
# against `none`. Not a test: nothing here is timed in CI.
#
# WITH_CRM=0 leaves crm_agent_worker out (handoffs then wait on the bus): on a 2-core machine
# the CRM's SQL work competes for the CPUs with the measured path (bus + sizing agent), and
# an exporter that slows the CRM (per-call probes on every statement) makes that path faster.
#
# Knobs: ROUNDS=3 SECONDS_PER_ROUND=10 CONCURRENCY=64 WITH_CRM=1 PORT=19595 PYTHON=/usr/bin/python3.11
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_ROUND:-10}
CONC=${CONCURRENCY:-64}
WITH_CRM=${WITH_CRM:-1}
PORT=${PORT:-19595}
PY=${PYTHON:-/usr/bin/python3.11}
[[ $(id -u) == 0 ]] || { echo "python_platform_bench.sh: needs root (BPF)" >&2; exit 1; }
[[ -x $BUILD_DIR/insa-exporter ]] || { echo "build first: cmake --build build" >&2; exit 1; }

work=$(mktemp -d /tmp/insa-pybench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/s" "$work/run"
cp "$REPO"/tests/workers/python/*.py "$work/s/"
# Private copies: the probes match only this benchmark's processes.
sed -e "s#source: tests/workers/python/#source: $work/s/#" -e "s#script: #script: $work/s/#" \
  "$REPO/probes-python.yaml" > "$work/full.yaml"
# eval only: drop every probe whose python: line says mechanism: call (each probe starts
# with "  - name:" under probes:).
awk '/^probes:/ { inp = 1 } !inp { print; next }
     /^  - name:/ { if (buf != "" && !call) printf "%s", buf; buf = ""; call = 0 }
     { buf = buf $0 "\n"; if ($0 ~ /mechanism: call/ && $0 !~ /^ *#/) call = 1 }
     END { if (buf != "" && !call) printf "%s", buf }' "$work/full.yaml" > "$work/eval.yaml"
"$BUILD_DIR/insa-exporter" check "$work/eval.yaml" >/dev/null
nprobes() { awk '/^probes:/ { p = 1 } p && /^  - name:/ { n++ } END { print n }' "$1"; }
echo "probes: eval-only config $(nprobes "$work/eval.yaml"), full config $(nprobes "$work/full.yaml")" >&2

round() {  # round MODE -> prints the py_load line
  local mode=$1 exp=
  rm -rf "$work/run"; mkdir -p "$work/run"
  if [[ $mode != none ]]; then
    "$BUILD_DIR/insa-exporter" --config.file "$work/$mode.yaml" --web.listen-address "127.0.0.1:$PORT" \
      >"$work/exporter.log" 2>&1 &
    exp=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null && break; sleep 0.1; done
  fi
  "$PY" "$work/s/agent_message_bus.py" --run-dir "$work/run" >/dev/null 2>&1 & local bus=$!
  for _ in $(seq 100); do [[ -S $work/run/bus.sock ]] && break; sleep 0.05; done
  "$PY" "$work/s/sizing_agent_worker.py" --run-dir "$work/run" --work-scale 0 >/dev/null 2>&1 & local sz=$!
  local crm=
  if [[ $WITH_CRM == 1 ]]; then
    "$PY" "$work/s/crm_agent_worker.py" --run-dir "$work/run" --work-scale 0 >/dev/null 2>&1 & crm=$!
  fi
  sleep 6  # the exporter hooks the new processes at its process scan
  "$PY" "$REPO/tests/bench/py_load.py" --run-dir "$work/run" --seconds "$SECS" --concurrency "$CONC"
  if [[ -n $exp ]]; then
    curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^insa_agent_requests_total\{agent_type="sizing_agent"' |
      awk -v m="$mode" '{ n += $2 } END { printf "  (%s: the exporter counted %d sizing_agent requests)\n", m, n }' >&2
  fi
  kill -TERM $crm $sz $bus 2>/dev/null || true
  wait $crm $sz $bus 2>/dev/null || true
  if [[ -n $exp ]]; then kill $exp; wait $exp 2>/dev/null || true; fi
}

declare -A rps p50 p99
for r in $(seq "$ROUNDS"); do
  for mode in none eval full; do
    line=$(round $mode)
    echo "round $r $mode: $line" >&2
    rps[$mode]+="$(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$line") "
    p50[$mode]+="$(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$line") "
    p99[$mode]+="$(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$line") "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
base=$(median <<<"${rps[none]}")
echo
echo "Python platform (sizing_agent, --work-scale 0, concurrency $CONC, crm_agent_worker $([[ $WITH_CRM == 1 ]] && echo running || echo "not running"), ${SECS}s x $ROUNDS rounds, median)"
echo "| mode | requests/s | p50 ms | p99 ms | throughput vs none |"
echo "|---|---|---|---|---|"
for mode in none eval full; do
  m=$(median <<<"${rps[$mode]}")
  printf "| %s | %s | %s | %s | %+.1f %% |\n" "$mode" "$m" "$(median <<<"${p50[$mode]}")" \
    "$(median <<<"${p99[$mode]}")" "$(awk -v a="$m" -v b="$base" 'BEGIN { print (a / b - 1) * 100 }')"
done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Python probes benchmark (issue 9), one command, root:
#
#     sudo tests/bench/run_python_bench.sh
#
# For each interpreter (Debian 3.11, pyenv 3.12.1 and 3.13.0) runs
# tests/bench/python/py_bench.py, which times an ordinary call, a call of a
# watched function and a step of a watched coroutine (ns, median of 5 rounds), in
# these setups, one after the other in one run:
#   none   no exporter
#   eval   the exporter, default mechanism, probe on the coroutine
#   call   the exporter, per-call mechanism on the function and the coroutine
#   bpftrace  (3.11 only) bpftrace counting python:function__return (USDT)
# and prints a markdown table with ratios to `none`. Figures, not a test: nothing here
# is called by tests/run.sh. Goals (issue 9): eval adds <= 5 % to an unwatched call;
# a watched coroutine step costs <= 2 us more than an unwatched one.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build}
PORT=${PORT:-19595}
B=$REPO/tests/bench/python
PYENV=${PYENV_ROOT:-$HOME/.pyenv}
INTERPRETERS=${INTERPRETERS:-"/usr/bin/python3.11 $PYENV/versions/3.12.1/bin/python3.12 $PYENV/versions/3.13.0/bin/python3.13"}
[ "$(id -u)" = 0 ] || { echo "run as root (the exporter loads BPF)" >&2; exit 1; }
[ -x "$BUILD_DIR/insa-exporter" ] || cmake --build "$BUILD_DIR" --target insa-exporter -j2 >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# run_one SETUP PYTHON -> lines "what ns"
run_one() {
  local setup=$1 py=$2 go=$WORK/go exp_pid="" bt_pid=""
  rm -f "$go"
  "$py" "$B/py_bench.py" --go "$go" > "$WORK/out" 2>&1 &
  local wpid=$!
  until grep -q ready "$WORK/out" 2>/dev/null; do sleep 0.05; done
  case $setup in
    eval|call)
      "$BUILD_DIR/insa-exporter" --config.file "$B/$setup.yaml" --web.listen-address 127.0.0.1:$PORT \
        > "$WORK/exp.log" 2>&1 &
      exp_pid=$!
      until grep -q "hooked pid $wpid" "$WORK/exp.log" 2>/dev/null; do sleep 0.05; done ;;
    bpftrace)
      bpftrace -p "$wpid" -e "usdt:$py:python:function__return { @n = count(); }" > "$WORK/bt.log" 2>&1 &
      bt_pid=$!
      until grep -q Attaching "$WORK/bt.log" 2>/dev/null; do sleep 0.05; done; sleep 0.5 ;;
  esac
  touch "$go"
  wait "$wpid"
  [ -n "$exp_pid" ] && { curl -s 127.0.0.1:$PORT/metrics | grep -E '^bench_(calls|coro)_total' > "$WORK/counts.$setup" || true; kill "$exp_pid"; wait "$exp_pid" 2>/dev/null || true; }
  [ -n "$bt_pid" ] && { kill -INT "$bt_pid"; wait "$bt_pid" 2>/dev/null || true; }
  grep -v ready "$WORK/out"
}

echo "| interpreter | setup | ordinary call ns | watched call ns | coroutine step ns | watched coroutine step ns |"
echo "|---|---|---|---|---|---|"
for py in $INTERPRETERS; do
  ver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  setups="none eval call"
  [[ $ver == 3.11.* && $py == /usr/bin/* ]] && setups="$setups bpftrace"
  declare -A base=()
  for s in $setups; do
    declare -A r=()
    while read -r k v; do r[$k]=$v; done < <(run_one "$s" "$py")
    if [ "$s" = none ]; then for k in "${!r[@]}"; do base[$k]=${r[$k]}; done; fi
    cell() { awk -v v="${r[$1]}" -v b="${base[$1]}" 'BEGIN { printf "%.0f (%.2fx)", v, v / b }'; }
    echo "| $ver | $s | $(cell unwatched_call) | $(cell watched_call) | $(cell unwatched_coro_step) | $(cell watched_coro_step) |"
    [ -f "$WORK/counts.$s" ] && sed "s/^/  <!-- $ver $s: /; s/$/ -->/" "$WORK/counts.$s" >&2
  done
done

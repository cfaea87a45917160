#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Starts the demo platform (agent_message_bus, sizing_agent_worker, crm_agent_worker,
# orchestrator: C++ from build/tests/workers, or with --python the Python platform of
# tests/workers/python, whose orchestrator is orchestrator_agent_optimized.py),
# supervises it, and stops it. No metrics code anywhere: insa-exporter measures these
# processes from outside (probes.yaml, probes-python.yaml; see PROBES.md).
#
#   run_platform.sh test [options]   fixed workload (--requests N), then stop; exit 0 if all
#                                    processes ended as expected. Truth files in RUN_DIR/truth.
#   run_platform.sh demo [options]   steady workload until SIGINT/SIGTERM. Within the first
#                                    minute: crm_agent_worker exits with code 3 after
#                                    --restart-after seconds and is restarted, database errors,
#                                    breaker trips, DLQ replays.
#   run_platform.sh stop --run-dir D stops a platform started in the background with that dir.
#
# Options: --run-dir DIR (default /tmp/insa-demo, Python /tmp/insa-demo-py), --bin-dir DIR
#   (default build/tests/workers or $INSA_WORKERS_BIN), --python PATH (run the Python
#   platform with this interpreter, e.g. /usr/bin/python3.11), --script-dir DIR (its scripts;
#   default tests/workers/python), --seed S (1), --rate R queries/s (test 50, demo 20),
#   --requests N (test 400), --restart-after S (test: off, demo 20), --start-delay-ms MS
#   before the first query (0; Python: every process, restarts too, waits that long before
#   its first work, giving an exporter's 1 s process scan time to hook it), --linger-ms MS
#   after the last (test 2000).
#
# Truth files: RUN_DIR/truth/<program>.<n>.truth (n = 1 for the first instance, 2 for the
# first restart, ...) and RUN_DIR/truth/launcher.truth (restarts seen by this supervisor).
set -euo pipefail

mode=${1:-}
[[ $mode == test || $mode == demo || $mode == stop ]] || {
  sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_dir=
bin_dir=${INSA_WORKERS_BIN:-$here/../../build/tests/workers}
python=
script_dir=$here/python
seed=1
rate=
requests=400
restart_after=
start_delay_ms=0
linger_ms=2000
while (($#)); do
  case $1 in
    --run-dir) run_dir=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --script-dir) script_dir=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --restart-after) restart_after=$2; shift 2 ;;
    --start-delay-ms) start_delay_ms=$2; shift 2 ;;
    --linger-ms) linger_ms=$2; shift 2 ;;
    *) echo "run_platform.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [[ -n $python ]]; then
  run_dir=${run_dir:-/tmp/insa-demo-py}; orchestrator=orchestrator_agent_optimized
else
  run_dir=${run_dir:-/tmp/insa-demo}; orchestrator=orchestrator
fi

if [[ $mode == stop ]]; then
  [[ -f $run_dir/launcher.pid ]] || { echo "no platform running in $run_dir" >&2; exit 1; }
  kill -TERM "$(cat "$run_dir/launcher.pid")"
  exit 0
fi

if [[ $mode == demo ]]; then
  rate=${rate:-20}; restart_after=${restart_after:-20}
else
  rate=${rate:-50}; restart_after=${restart_after:-0}
fi

if [[ -n $python ]]; then
  [[ -x $python ]] || { echo "run_platform.sh: $python not found (apt-get install python3.11, or --python PATH)" >&2; exit 1; }
  for b in agent_message_bus sizing_agent_worker crm_agent_worker $orchestrator; do
    [[ -f $script_dir/$b.py ]] || { echo "run_platform.sh: $script_dir/$b.py missing (--script-dir)" >&2; exit 1; }
  done
else
  for b in agent_message_bus sizing_agent_worker crm_agent_worker $orchestrator; do
    [[ -x $bin_dir/$b ]] || { echo "run_platform.sh: $bin_dir/$b not built (cmake --build build --target insa_demo_platform)" >&2; exit 1; }
  done
fi
mkdir -p "$run_dir/truth"
rm -f "$run_dir"/truth/*.truth "$run_dir/bus.sock"
echo $$ > "$run_dir/launcher.pid"

declare -A pid_of name_of instance
restarts=()
stopping=0
trap 'stopping=1' INT TERM

start() {  # start NAME ARGS...
  local name=$1; shift
  instance[$name]=$(( ${instance[$name]:-0} + 1 ))
  local cmd=("$bin_dir/$name")
  [[ -z $python ]] || cmd=("$python" "$script_dir/$name.py" --start-delay-ms "$start_delay_ms")
  "${cmd[@]}" --run-dir "$run_dir" --seed "$seed" \
    --truth "$run_dir/truth/$name.${instance[$name]}.truth" "$@" \
    >>"$run_dir/$name.log" 2>&1 &
  pid_of[$name]=$!
  name_of[$!]=$name
  echo "$!" > "$run_dir/$name.pid"
  echo "$(date +%T.%3N) started $name pid $! (instance ${instance[$name]})"
}

stop_one() {  # stop NAME: SIGTERM and wait
  local name=$1 pid=${pid_of[$1]:-}
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local rc=0
  wait "$pid" || rc=$?
  echo "stopped $name pid $pid (exit $rc)"
  unset "pid_of[$name]"
  rm -f "$run_dir/$name.pid"
}

write_launcher_truth() {
  {
    echo "# insa-demo truth v1 program=run_platform.sh mode=$mode seed=$seed"
    for r in "${restarts[@]}"; do echo "$r"; done | sort | uniq -c |
      awk '{ print $2, $1 }'
  } > "$run_dir/truth/launcher.truth"
}

start agent_message_bus
bus_wait=100; [[ -z $python ]] || bus_wait=$((100 + start_delay_ms / 50))
for _ in $(seq $bus_wait); do [[ -S $run_dir/bus.sock ]] && break; sleep 0.05; done
[[ -S $run_dir/bus.sock ]] || { echo "run_platform.sh: bus did not start (see $run_dir/agent_message_bus.log)" >&2; exit 1; }
start sizing_agent_worker
if [[ $restart_after != 0 ]]; then
  start crm_agent_worker --exit-after-s "$restart_after" --exit-code 3
else
  start crm_agent_worker
fi
orch_delay=(--start-delay-ms "$start_delay_ms"); [[ -z $python ]] || orch_delay=()  # Python: given to all
if [[ $mode == test ]]; then
  start $orchestrator --rate "$rate" --requests "$requests" "${orch_delay[@]}" --linger-ms "$linger_ms"
else
  start $orchestrator --rate "$rate" "${orch_delay[@]}"
fi
echo "platform running in $run_dir (mode $mode, seed $seed, rate $rate/s)"

failed=0
while ((!stopping)); do
  set +e
  wait -n -p done_pid
  rc=$?
  set -e
  ((stopping)) && break
  [[ -n ${done_pid:-} ]] || continue
  name=${name_of[$done_pid]:-}
  unset "pid_of[$name]"
  echo "$name pid $done_pid exited with $rc"
  if [[ $name == "$orchestrator" && $mode == test ]]; then
    ((rc == 0)) || failed=1
    break
  elif [[ $name == crm_agent_worker || $name == sizing_agent_worker ]]; then
    # A worker that exits is restarted (the scheduled restart exits with code 3).
    if ((rc > 128)); then reason=$(kill -l $((rc - 128))); reason=SIG$reason; else reason=exit_code_$rc; fi
    restarts+=("insa_worker_restarts_total{worker_name=\"$name\",reason=\"$reason\"}")
    ((rc == 3)) || echo "warning: $name exited unexpectedly with $rc (see $run_dir/$name.log)" >&2
    start "$name"
  else
    echo "run_platform.sh: $name exited with $rc; stopping" >&2
    failed=1
    break
  fi
done

stop_one $orchestrator
stop_one crm_agent_worker
stop_one sizing_agent_worker
stop_one agent_message_bus
write_launcher_truth
rm -f "$run_dir/launcher.pid"
echo "truth files: $run_dir/truth/"
exit $failed

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# End to end with a real container runtime: the exporter image built by
# deploy/container/build-image.sh runs under podman (runc) as the DaemonSet
# runs it — host PID namespace, its own mount namespace, read-only root, the
# host's /sys/kernel/btf, only the systemd unit's capabilities, no seccomp
# filter — and Debian's Prometheus scrapes it over the host network.
#
#   1. image: built from Debian packages + build/insa-exporter, no registry
#      pull; its entrypoint prints the same --version as the host build.
#   2. exporter container: healthy, effective and bounding capabilities are the
#      unit's (as far as the host grants them), its own mount namespace, the
#      host's PID namespace, the BPF programs loaded by its process;
#      Prometheus scrapes it: up == 1, insa_exporter_build_info{version} == 1.
#   3. a host worker (build/tests/workers/request_worker) probed through a
#      read-only bind mount of its folder: attached (/-/ready), and every request counted
#      exactly (counts by status and duration buckets against the worker's
#      own ground truth).
#   4. containerized workers: request_worker copied with its `ldd` closure
#      into a second image and run in another podman container (no shared
#      files with the exporter); the probe names the path inside that
#      container (/app/request_worker) and a second probe the host path of
#      the host worker without any bind mount. Both are resolved through
#      /proc/PID/root of the processes that run them; exact counts again.
#
# Podman settings are passed here, never configured on the machine: runtime
# runc and fixed ulimits (crun fails on hybrid cgroups without
# CAP_SYS_RESOURCE). Containers are named insa-e2e-*, images
# localhost/insa-e2e-*:test; all are removed on exit. Ports 19661 (exporter),
# 19662 (Prometheus). Run as root, one e2e run at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/e2e_lib.sh
port=${E2E_CTR_PORT:-19661}
prom_port=${E2E_CTR_PROM_PORT:-19662}
image=localhost/insa-e2e-exporter:test
worker_image=localhost/insa-e2e-worker:test
exporter=insa-e2e-exporter
ctr_worker=insa-e2e-ctr-worker
podman_run=(podman --runtime runc run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
workers=$PWD/build/tests/workers
dir=$(mktemp -d /tmp/insa-e2e-ctr.XXXXXX)
host_pids=()
cleanup() {
  podman rm -f -t 2 "$exporter" "$ctr_worker" >/dev/null 2>&1 || true
  podman rmi -f "$image" "$worker_image" >/dev/null 2>&1 || true
  for p in "${host_pids[@]}" ${prom_pid:-}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "e2e_container: FAIL $*"
  echo "--- exporter container log (tail)"; podman logs "$exporter" 2>&1 | tail -15 || true
  echo "--- prometheus log (tail)"; tail -5 "$dir/prometheus.log" 2>/dev/null || true
  exit 1
}
ok() { echo "e2e_container: ok   $*"; }
[ "$(id -u)" = 0 ] || { echo "e2e_container: run as root (podman system storage, BPF)"; exit 1; }
for t in podman runc mmdebstrap prometheus promtool bpftool capsh curl python3; do
  command -v "$t" >/dev/null || fail "$t not found (tests/install-deps.sh installs it)"
done
[ -x "$workers/request_worker" ] || fail "$workers/request_worker missing: build first"
podman rm -f -t 0 "$exporter" "$ctr_worker" >/dev/null 2>&1 || true

# ---- 1. images ------------------------------------------------------------------
deploy/container/build-image.sh --tag "$image" | tee "$dir/build-image.log" || fail "deploy/container/build-image.sh"
[ "$(podman image inspect --format '{{json .Config.Entrypoint}} {{.Config.User}}' "$image")" = \
  '["/usr/local/bin/insa-exporter"] 0:0' ] || fail "image entrypoint/user: $(podman image inspect --format '{{json .Config}}' "$image")"
want_version=$(build/insa-exporter --version)
got_version=$("${podman_run[@]}" --rm --network none "$image" --version 2>&1) || fail "podman run $image --version: $got_version"
[ "$got_version" = "$want_version" ] || fail "image --version '$got_version', host build '$want_version'"
ok "image $image: entrypoint insa-exporter, user 0, '$got_version' ($(grep -o '[0-9.]* MB uncompressed.*' "$dir/build-image.log"))"

# The worker image: the demo worker and its ldd closure, nothing else.
wroot=$dir/worker-rootfs
install -D -m 0755 "$workers/request_worker" "$wroot/app/request_worker"
for lib in $(ldd "$workers/request_worker" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$wroot$lib"
done
mkdir -p "$wroot/out"
tar -C "$wroot" -c . | podman import --quiet --change 'ENTRYPOINT ["/app/request_worker"]' - "$worker_image" >/dev/null \
  || fail "podman import of the worker image"
ok "worker image $worker_image: /app/request_worker + $(find "$wroot" -name '*.so*' | wc -l) libraries"

# ---- 2. the exporter in its container, scraped by Prometheus --------------------
unit=deploy/systemd/insa-exporter.service
unit_caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit")
[ -n "$unit_caps" ] || fail "no AmbientCapabilities= in $unit"
# Podman silently leaves out capabilities the host itself lacks (this VM has no
# CAP_SYS_RESOURCE): expect the unit's set within the host's bounding set.
host_caps=$(capsh --decode="$(awk '/^CapBnd/ {print $2}' /proc/self/status)" | sed 's/.*=//' | tr ',' '\n' | tr a-z A-Z)
want_caps=$(for c in $unit_caps; do if grep -qx "$c" <<<"$host_caps"; then echo "$c"; fi; done | sort | xargs)

# config_for NAME PROBE...: probes.yaml in $dir/NAME/ with one request probe per
# "probe_name=binary" argument; every probe counts requests and their durations.
config_for() {
  local d=$dir/$1
  shift
  mkdir -p "$d"
  cat >"$d/probes.yaml" <<'YAML'
metrics:
  - name: insa_agent_requests_total
    type: counter
    help: Requests handled, by agent and outcome.
    labels: [agent_type, status]
  - name: insa_agent_request_duration_seconds
    type: histogram
    help: Request handling time.
    labels: [agent_type]
    # Bounds far from the worker's planned 2, 10, 40 and 150 ms (as tests/root/configs/request.yaml).
    buckets: [0.008, 0.03, 0.1, 0.5]
probes:
YAML
  local spec
  for spec in "$@"; do
    cat >>"$d/probes.yaml" <<YAML
  - name: ${spec%%=*}
    binary: ${spec#*=}
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {if: duration > 100ms, then: timeout}
      - {else: success}
    metrics:
      - metric: insa_agent_requests_total
        labels: {agent_type: \$arg2:str32, status: \$status}
      - metric: insa_agent_request_duration_seconds
        observe: \$duration
        labels: {agent_type: \$arg2:str32}
YAML
  done
}

# start_exporter CONFIG_NAME [podman options...]: the exporter container as
# the DaemonSet runs it; waits for /-/healthy (/-/ready also waits for the
# probes: checked with them).
start_exporter() {
  local cfg=$dir/$1
  shift
  podman rm -f -t 2 "$exporter" >/dev/null 2>&1 || true
  "${podman_run[@]}" -d --name "$exporter" --pid=host --network host --read-only \
    --cap-drop=all --cap-add="$(tr ' ' ',' <<<"$unit_caps")" \
    --security-opt seccomp=unconfined --security-opt no-new-privileges \
    -v /sys/kernel/btf:/sys/kernel/btf:ro -v "$cfg:/etc/insa-exporter:ro" "$@" \
    "$image" --config.file /etc/insa-exporter/probes.yaml --web.listen-address "127.0.0.1:$port" \
    >/dev/null || fail "podman run $image"
  local end=$((SECONDS + 60))
  until curl -sf -o /dev/null "http://127.0.0.1:$port/-/healthy"; do
    [ "$(podman inspect --format '{{.State.Running}}' "$exporter" 2>/dev/null)" = true ] || fail "the exporter container exited${exit_hint:-}"
    [ "$SECONDS" -lt "$end" ] || fail "the exporter container is not healthy after 60 s"
    sleep 0.2
  done
  exp_pid=$(podman inspect --format '{{.State.Pid}}' "$exporter")
}

# host_worker ARGS...: a request_worker on the host, in the background.
host_worker() {
  "$workers/request_worker" "$@" >>"$dir/host-workers.log" 2>&1 &
  host_pids+=($!)
}

config_for bind "host_request=$workers/request_worker"
start_exporter bind -v "$workers:$workers:ro"
caps_of() { capsh --decode="$(awk -v k="$1:" '$1 == k {print $2}' "/proc/$exp_pid/status")" | sed 's/.*=//' | tr ',' '\n' | grep . | tr a-z A-Z | sort | xargs; }
[ "$(caps_of CapEff)" = "$want_caps" ] || fail "effective capabilities '$(caps_of CapEff)', want the unit's '$want_caps'"
[ "$(caps_of CapBnd)" = "$want_caps" ] || fail "bounding capabilities '$(caps_of CapBnd)', want '$want_caps'"
[ "$(readlink "/proc/$exp_pid/ns/pid")" = "$(readlink /proc/self/ns/pid)" ] || fail "the exporter is not in the host PID namespace"
[ "$(readlink "/proc/$exp_pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || fail "the exporter shares the host's mount namespace"
# The programs behind the exporter process's bpf-prog file descriptors (the
# HTTP listener comes up first: poll until the load is done).
held_progs() {
  bpftool prog show --json | python3 -c '
import json, os, re, sys
pid = sys.argv[1]
names = {p["id"]: p["name"] for p in json.load(sys.stdin)}
ids = set()
for fd in os.listdir("/proc/%s/fd" % pid):
    try:
        if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == "anon_inode:bpf-prog":
            ids.add(int(re.search(r"^prog_id:\s*(\d+)", open("/proc/%s/fdinfo/%s" % (pid, fd)).read(), re.M).group(1)))
    except OSError:
        pass
print(" ".join(sorted({names.get(i, "?") for i in ids})))' "$exp_pid"
}
end=$((SECONDS + 20))
until progs=$(held_progs 2>/dev/null) && grep -qw insa_entry <<<"$progs" && grep -qw insa_exit <<<"$progs"; do
  [ "$SECONDS" -lt "$end" ] || fail "BPF programs insa_entry and insa_exit not held by the exporter's process $exp_pid (it holds: ${progs:-none})"
  sleep 0.5
done
ok "exporter container: pid $exp_pid, host PID namespace, own mount namespace, capabilities '$want_caps', BPF programs: $progs"

cat >"$dir/prometheus.yml" <<YAML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: insa-exporter
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
promtool check config "$dir/prometheus.yml" >/dev/null || fail "prometheus config"
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom" \
  --web.listen-address="127.0.0.1:$prom_port" >"$dir/prometheus.log" 2>&1 &
prom_pid=$!
prom=http://127.0.0.1:$prom_port
wait_http "$prom/-/ready" 30 || fail "Prometheus not ready"
inst="instance=\"127.0.0.1:$port\",job=\"insa-exporter\""
export E2E_JOB_LABELS=$inst
await_query "$prom" up "{$inst} 1" 30 || fail "Prometheus does not scrape the exporter container"
version=${want_version##* }
await_query "$prom" insa_exporter_build_info "{$inst,version=\"$version\"} 1" 30 || fail "insa_exporter_build_info"
ok "Prometheus scrapes the container: up 1, insa_exporter_build_info{version=\"$version\"} 1"

# ---- 3. a host worker through a bind mount of its folder ----------------------
# Needs the capabilities of deploy/systemd/insa-exporter.service to create
# uprobes on this kernel (see the message below).
if ! await_query "$prom" 'insa_exporter_probe_attached{probe="host_request"}' "{$inst,probe=\"host_request\"} 1" 15; then
  if podman logs "$exporter" 2>&1 | grep -q 'cannot attach.*Permission denied'; then
    fail "probe host_request not attached: the kernel refused the uprobe to the unit's capabilities ($unit_caps);" \
         "kernels with the CVE-2025-38466 fix (6.16, 6.15.7, 6.12.39, 6.6.99, 6.1.146, 5.15.189, 5.10.240 and later)" \
         "create perf uprobes only with CAP_SYS_ADMIN: $unit must grant it"
  fi
  fail "probe host_request not attached"
fi
wait_http "http://127.0.0.1:$port/-/ready" 10 || fail "/-/ready does not answer 200 with every probe attached"
host_worker --requests 40 --agent host_bind --truth "$dir/host_bind.truth"
wait "${host_pids[-1]}" || fail "the host worker failed: $(tail -3 "$dir/host-workers.log")"
await_query "$prom" 'insa_agent_requests_total{agent_type="host_bind"}' \
  "$(truth_counts "$dir/host_bind.truth" insa_agent_requests_total)" 20 || fail "host worker: request counts"
await_query "$prom" 'insa_agent_request_duration_seconds_bucket{agent_type="host_bind"}' \
  "$(truth_buckets "$dir/host_bind.truth" insa_agent_request_duration_seconds "agent_type=\"host_bind\",$inst" 0.008 0.03 0.1 0.5)" 20 \
  || fail "host worker: duration buckets"
ok "host worker through a bind mount: $(grep -c '^insa_agent_requests_total' "$dir/host_bind.truth") status series and every duration bucket exact"

# ---- 4. workers in containers, resolved through /proc/PID/root ------------------
# The exporter sees neither /app/request_worker nor the host's build folder:
# the probes' files are found through the processes that run them.
mkdir -p "$dir/out"
"${podman_run[@]}" -d --name "$ctr_worker" --network none -v "$dir/out:/out" "$worker_image" \
  --requests 0 --linger-ms 86400000 >/dev/null || fail "podman run $worker_image"
host_worker --requests 0 --linger-ms 86400000
config_for ctr "ctr_request=/app/request_worker" "host_request=$workers/request_worker"
exit_hint=" (/app/request_worker and $workers exist only in the workers' mount namespaces: the exporter must resolve probe paths through /proc/PID/root)"
start_exporter ctr
for p in ctr_request host_request; do
  await_query "$prom" "insa_exporter_probe_attached{probe=\"$p\"}" "{$inst,probe=\"$p\"} 1" 15 \
    || fail "probe $p not attached (probe paths inside containers are resolved through /proc/PID/root)"
done
wait_http "http://127.0.0.1:$port/-/ready" 10 || fail "/-/ready does not answer 200 with every probe attached"
# New processes in the worker container and on the host; the delay leaves the
# exporter time to see them before their first request.
podman exec "$ctr_worker" /app/request_worker --requests 40 --agent ctr --start-delay-ms 2000 \
  --truth /out/ctr.truth >"$dir/ctr-worker.log" 2>&1 || fail "the containerized worker failed: $(tail -3 "$dir/ctr-worker.log")"
host_worker --requests 30 --agent host_proc --start-delay-ms 2000 --seed 7 --truth "$dir/host_proc.truth"
wait "${host_pids[-1]}" || fail "the host worker failed: $(tail -3 "$dir/host-workers.log")"
for a in ctr host_proc; do
  truth=$dir/$a.truth
  [ "$a" = ctr ] && truth=$dir/out/ctr.truth
  await_query "$prom" "insa_agent_requests_total{agent_type=\"$a\"}" \
    "$(truth_counts "$truth" insa_agent_requests_total)" 20 || fail "$a: request counts"
  await_query "$prom" "insa_agent_request_duration_seconds_bucket{agent_type=\"$a\"}" \
    "$(truth_buckets "$truth" insa_agent_request_duration_seconds "agent_type=\"$a\",$inst" 0.008 0.03 0.1 0.5)" 20 \
    || fail "$a: duration buckets"
done
ok "worker in another container (/app/request_worker) and host worker without a bind mount: every request counted exactly"
echo "e2e_container: all checks passed"

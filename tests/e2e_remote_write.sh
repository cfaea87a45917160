#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Beyond one cluster, with real Debian Prometheus servers and the shipped
# configurations of deploy/prometheus/ (only addresses, intervals and the
# cluster names changed for the test):
#
#   exporter (host, demo platform, top-level probes.yaml)
#     <- "west" agent: prometheus-agent.yml, --enable-feature=agent,
#        external labels cluster="e2e-west", remote_write to the store
#     <- "east" cluster Prometheus: prometheus.yml with the recording rules,
#        external labels cluster="e2e-east"
#   store: --web.enable-remote-write-receiver, the rules of rules/ (as a
#     long-term store's ruler), and federation.yml's job pulling the east
#     cluster's recording rules through /federate.
#
# Checks: the agent answers no queries (agent mode); every dashboard query
# and every rule returns data on the store for cluster="e2e-west"
# (tests/deploy/prom_e2e_queries.mjs --matcher); once the platform stopped,
# every catalogue series (insa_*, not the exporter's own) reached the store
# with the exporter's exact value and the west external labels, and nothing
# else; the store holds each recording rule federated from the east cluster
# with cluster/environment and the original job/instance, each sample equal
# to the east Prometheus' own sample at the same timestamp; the agent failed
# to send no sample. Ports 19671-19674. Run as root (the exporter loads BPF).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/e2e_lib.sh
port=${E2E_RW_PORT:-19671}
agent_port=$((port + 1))
store_port=$((port + 2))
east_port=$((port + 3))
dir=$(mktemp -d /tmp/insa-e2e-rw.XXXXXX)
pids=()
cleanup() {
  tests/workers/run_platform.sh stop --run-dir "$dir/platform" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "e2e_remote_write: FAIL $*"
  for l in exporter agent store east; do echo "--- $l log (tail)"; tail -5 "$dir/$l.log" 2>/dev/null || true; done
  exit 1
}
ok() { echo "e2e_remote_write: ok   $*"; }
for t in prometheus promtool node curl python3; do
  command -v "$t" >/dev/null || fail "$t not found (tests/install-deps.sh installs it)"
done
[ -d tests/deploy/node_modules/yaml ] || (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in tests/deploy"
exporter_url=http://127.0.0.1:$port
agent=http://127.0.0.1:$agent_port
store=http://127.0.0.1:$store_port
east=http://127.0.0.1:$east_port

# ---- the exporter on the demo platform, as tests/e2e.sh runs it -----------------
build/insa-exporter --config.file probes.yaml --web.listen-address "127.0.0.1:$port" >"$dir/exporter.log" 2>&1 &
pids+=($!)
wait_http "$exporter_url/-/ready" 30 || fail "the exporter is not ready"
tests/workers/run_platform.sh demo --run-dir "$dir/platform" --restart-after 5 >"$dir/platform.log" 2>&1 &

# ---- the shipped configurations, with test addresses ----------------------------
# edit_config SRC DST JS: DST is SRC (YAML) after the JavaScript statements JS
# ran on it as `c`; rule_files become absolute paths.
edit_config() {
  node --input-type=module -e '
    import YAML from "'"$PWD"'/tests/deploy/node_modules/yaml/dist/index.js";
    import fs from "node:fs";
    import path from "node:path";
    const [src, dst, code] = process.argv.slice(1);
    const c = YAML.parse(fs.readFileSync(src, "utf8"));
    new Function("c", code)(c);
    c.rule_files = (c.rule_files || []).map((r) => path.resolve(path.dirname(src), r));
    fs.writeFileSync(dst, YAML.stringify(c));
  ' "$1" "$2" "$3"
}
fast='c.global.scrape_interval = "1s"; c.global.scrape_timeout = "1s";
      for (const s of c.scrape_configs) { s.scrape_interval = "1s"; s.scrape_timeout = "1s"; }'
edit_config deploy/prometheus/prometheus-agent.yml "$dir/agent.yml" "$fast
  c.global.external_labels = { cluster: \"e2e-west\", environment: \"e2e\" };
  c.scrape_configs[0].static_configs = [{ targets: [\"127.0.0.1:$port\"] }];
  c.remote_write[0].url = \"$store/api/v1/write\";
  c.remote_write[0].queue_config.batch_send_deadline = \"1s\";"
edit_config deploy/prometheus/prometheus.yml "$dir/east.yml" "$fast
  c.global.evaluation_interval = \"1s\";
  c.global.external_labels = { cluster: \"e2e-east\", environment: \"e2e\" };
  c.scrape_configs = c.scrape_configs.filter((s) => s.job_name === \"insa-exporter\");
  c.scrape_configs[0].static_configs = [{ targets: [\"127.0.0.1:$port\"] }];"
edit_config deploy/prometheus/federation.yml "$dir/store.yml" "$fast
  c.global.evaluation_interval = \"1s\";
  c.rule_files = [\"rules/insa-recording.rules.yml\", \"rules/insa-alerts.rules.yml\"];
  c.scrape_configs[0].static_configs = [{ targets: [\"127.0.0.1:$east_port\"] }];"
promtool check config --agent "$dir/agent.yml" >"$dir/check.log" 2>&1 || { cat "$dir/check.log"; fail "agent config"; }
for f in east store; do promtool check config "$dir/$f.yml" >"$dir/check.log" 2>&1 || { cat "$dir/check.log"; fail "$f config"; }; done

prometheus --config.file="$dir/store.yml" --storage.tsdb.path="$dir/store-data" --web.enable-remote-write-receiver \
  --web.listen-address="127.0.0.1:$store_port" >"$dir/store.log" 2>&1 &
pids+=($!)
prometheus --config.file="$dir/east.yml" --storage.tsdb.path="$dir/east-data" \
  --web.listen-address="127.0.0.1:$east_port" >"$dir/east.log" 2>&1 &
pids+=($!)
prometheus --enable-feature=agent --config.file="$dir/agent.yml" --storage.agent.path="$dir/agent-wal" \
  --web.listen-address="127.0.0.1:$agent_port" >"$dir/agent.log" 2>&1 &
pids+=($!)
for u in "$store" "$east" "$agent"; do wait_http "$u/-/ready" 30 || fail "$u not ready"; done

# ---- agent mode: scrapes and forwards, answers no query -------------------------
code=$(curl -s -o "$dir/agent-query.json" -w '%{http_code}' "$agent/api/v1/query?query=up")
grep -q 'unavailable with Prometheus Agent' "$dir/agent-query.json" \
  || fail "the agent answered a query (HTTP $code: $(head -c 200 "$dir/agent-query.json")): not in agent mode"
ok "the west Prometheus runs in agent mode (HTTP $code to a query: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$dir/agent-query.json"))"

# ---- the dashboards and rules on the store, for the west cluster ----------------
node tests/deploy/prom_e2e_queries.mjs --prometheus "$store" --job insa-exporter --instance "127.0.0.1:$port" \
  --matcher 'cluster="e2e-west"' || fail "dashboard and rule queries on the store"

# ---- exact values through remote_write ------------------------------------------
tests/workers/run_platform.sh stop --run-dir "$dir/platform" >/dev/null 2>&1 || fail "stopping the demo platform"
# The exporter's own catalogue series (counters stay, gauges settle once the
# platform is down) against the store's, with the agent's external labels.
compare_store() {
  curl -sf "$exporter_url/metrics" >"$dir/exposition.txt" || return 1
  curl -sf --data-urlencode 'query={__name__=~"insa_.+",__name__!~"insa_exporter_.+",cluster="e2e-west"}' \
    "$store/api/v1/query" >"$dir/store.json" || return 1
  python3 - "$dir/exposition.txt" "$dir/store.json" "127.0.0.1:$port" <<'PY'
import json, math, re, sys
expo, stored, instance = sys.argv[1:4]
unesc = lambda v: re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)
want = {}
for line in open(expo):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line.rstrip("\n"))
    if not m or not m.group(1).startswith("insa_") or m.group(1).startswith("insa_exporter_"):
        continue
    labels = {k: unesc(v) for k, v in re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(2) or "")}
    labels.update(__name__=m.group(1), job="insa-exporter", instance=instance)
    # External labels never replace a series' own label (insa_system_info has an environment).
    labels.setdefault("cluster", "e2e-west")
    labels.setdefault("environment", "e2e")
    want[tuple(sorted(labels.items()))] = float(m.group(3))
got = {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in json.load(open(stored))["data"]["result"]}
same = lambda a, b: a == b or (math.isnan(a) and math.isnan(b))
missing = [k for k in want if k not in got]
extra = [k for k in got if k not in want]
diff = [(k, want[k], got[k]) for k in want if k in got and not same(want[k], got[k])]
if missing or extra or diff:
    for k in missing[:5]: print("missing in the store:", dict(k))
    for k in extra[:5]: print("not exported:", dict(k))
    for k, w, g in diff[:5]: print("exporter %r, store %r: %s" % (w, g, dict(k)))
    print("%d series: %d missing, %d extra, %d differ" % (len(want), len(missing), len(extra), len(diff)))
    sys.exit(1)
print("%d series, %d families" % (len(want), len({dict(k)["__name__"] for k in want})))
PY
}
end=$((SECONDS + 40))
until result=$(compare_store 2>&1); do
  [ "$SECONDS" -lt "$end" ] || fail "the store does not hold the exporter's exact values: $result"
  sleep 2
done
ok "remote_write: every catalogue series in the store with the exporter's exact value, cluster=\"e2e-west\" environment=\"e2e\" ($result)"

# ---- federation: the east cluster's recording rules in the store ----------------
records=$(sed -n 's/^ *- record: *//p' deploy/prometheus/rules/insa-recording.rules.yml | sort)
want=$(for r in $records; do
  echo "{cluster=\"e2e-east\",environment=\"e2e\",instance=\"127.0.0.1:$port\",job=\"insa-exporter\",name=\"$r\"} 1"
done | sort)
sel='{__name__=~"instance:insa_.+|instance_agent_type:insa_.+",cluster="e2e-east"}'
await_query "$store" "group by (name, cluster, environment, job, instance) (label_replace($sel, \"name\", \"\$1\", \"__name__\", \"(.+)\"))" \
  "$want" 30 || fail "federated recording rules"
# Each federated series' latest sample is the east Prometheus' own sample at that timestamp.
curl -sf --data-urlencode "query=$sel[20s]" "$store/api/v1/query" >"$dir/federated.json" || fail "query the store"
python3 - "$dir/federated.json" "$east" <<'PY' || fail "federated samples differ from the east Prometheus' samples"
import json, sys, urllib.parse, urllib.request
series = json.load(open(sys.argv[1]))["data"]["result"]
east = sys.argv[2]
checked = 0
for s in series:
    t, v = s["values"][-1]
    labels = {k: x for k, x in s["metric"].items() if k not in ("cluster", "environment", "__name__")}
    sel = s["metric"]["__name__"] + "{" + ",".join('%s="%s"' % (k, x.replace("\\", "\\\\").replace('"', '\\"')) for k, x in sorted(labels.items())) + "}"
    body = urllib.request.urlopen(east + "/api/v1/query?" + urllib.parse.urlencode({"query": sel, "time": repr(t)})).read()
    res = json.loads(body)["data"]["result"]
    if len(res) != 1 or res[0]["value"] != [t, v]:
        sys.exit("%s at %r: store %s, east %s" % (sel, t, v, [r["value"] for r in res]))
    checked += 1
if not checked:
    sys.exit("no federated series")
print("federation: %d series, each equal to the east Prometheus' sample at the same timestamp" % checked)
PY
ok "federation: the $(wc -w <<<"$records") recording rules from the east cluster, honor_labels kept job/instance, values exact"

failed=$(curl -sf "$agent/metrics" | awk '/^prometheus_remote_storage_samples_failed_total/ {s += $2} END {print s + 0}')
sent=$(curl -sf "$agent/metrics" | awk '/^prometheus_remote_storage_samples_total/ {s += $2} END {print s + 0}')
[ "$failed" = 0 ] || fail "the agent failed to send $failed samples"
ok "the agent sent $sent samples, failed 0"
echo "e2e_remote_write: all checks passed"

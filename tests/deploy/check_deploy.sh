#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Offline checks of everything in dashboards/ and deploy/: one line per check,
# PASS or FAIL (with the tool's output indented below a FAIL). Exit status 1
# if any check failed. A missing tool is a FAIL, never a skip.
#
# Needs: promtool and prometheus (Debian package prometheus), systemd-analyze,
# node >= 20 and npm (installs tests/deploy/node_modules from package-lock.json
# when absent), python3 and curl (fake exporter for the end-to-end script).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failed=0
passed=0

# check NAME COMMAND...: runs the command, PASS/FAIL line, last output line as detail on PASS.
check() {
  local name=$1 out rc
  shift
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "PASS $name${out:+  ($(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 1 | sed 's/^ *//'))}"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

need() { command -v "$1" >/dev/null 2>&1 || { echo "$1 not found: $2"; return 1; }; }

# ---- Prometheus -------------------------------------------------------------
check "promtool check config deploy/prometheus/prometheus.yml" \
  sh -c 'command -v promtool >/dev/null || { echo "promtool not found: apt-get install prometheus"; exit 1; }
         promtool check config deploy/prometheus/prometheus.yml'
check "promtool check config --agent deploy/prometheus/prometheus-agent.yml" promtool check config --agent deploy/prometheus/prometheus-agent.yml
check "promtool check config deploy/prometheus/federation.yml" promtool check config deploy/prometheus/federation.yml
check "promtool check rules deploy/prometheus/rules/*.yml" promtool check rules deploy/prometheus/rules/*.yml
check "promtool test rules tests/deploy/*.test.yml" promtool test rules tests/deploy/*.test.yml

# Every alert needs summary, description, severity and at least one unit test.
alert_contract() {
  local alerts tested missing=0 a
  alerts=$(grep -hE '^\s*- alert:' deploy/prometheus/rules/*.yml | awk '{print $3}' | sort -u)
  tested=$(grep -hE '^\s*alertname:' tests/deploy/*.test.yml | awk '{print $2}' | sort -u)
  for a in $alerts; do
    grep -qx "$a" <<<"$tested" || { echo "alert $a has no promtool unit test"; missing=1; }
  done
  node -e '
    const YAML = require(process.argv[1]); const fs = require("fs"); let bad = 0, n = 0;
    for (const f of process.argv.slice(2)) for (const g of YAML.parse(fs.readFileSync(f, "utf8")).groups)
      for (const r of g.rules) if (r.alert) { n++;
        for (const k of ["summary", "description"]) if (!(r.annotations || {})[k]) { console.log(`${f}: ${r.alert}: no ${k}`); bad = 1; }
        if (!["critical", "warning", "info"].includes((r.labels || {}).severity)) { console.log(`${f}: ${r.alert}: severity must be critical, warning or info`); bad = 1; } }
    if (!bad) console.log(`${n} alert rules with summary, description and severity`); process.exit(bad);
  ' "$HERE/node_modules/yaml" deploy/prometheus/rules/*.yml || missing=1
  [ "$missing" -eq 0 ] && echo "$(wc -w <<<"$alerts") alerts, each with a unit test"
  return "$missing"
}

# ---- Kubernetes: plain-Prometheus scrape example --------------------------
# Debian builds Prometheus without Kubernetes service discovery, so its
# promtool rejects kubernetes_sd_configs. Then the example is checked with
# that block swapped for static_configs (everything else: globals, rule
# files, relabel_configs, is still checked by promtool) and the SD block is
# checked by structure.
k8s_scrape() {
  local f=deploy/k8s/prometheus-scrape.yml out
  if out=$(promtool check config "$f" 2>&1); then echo "$out"; return 0; fi
  if ! grep -q "field kubernetes_sd_configs not found" <<<"$out"; then echo "$out"; return 1; fi
  node --input-type=module -e '
    import YAML from "'"$HERE"'/node_modules/yaml/dist/index.js";
    import fs from "node:fs";
    const [src, dst] = process.argv.slice(1);
    const c = YAML.parse(fs.readFileSync(src, "utf8")); let bad = 0;
    for (const s of c.scrape_configs) for (const sd of s.kubernetes_sd_configs || []) {
      for (const k of Object.keys(sd)) if (!["role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"].includes(k)) { console.log(`unknown kubernetes_sd_configs field ${k}`); bad = 1; }
      if (!["pod", "node", "service", "endpoints", "endpointslice", "ingress"].includes(sd.role)) { console.log(`bad role ${sd.role}`); bad = 1; }
      if (sd.namespaces && !Array.isArray(sd.namespaces.names)) { console.log("namespaces.names must be a list"); bad = 1; }
      if (sd.role === "pod") for (const r of s.relabel_configs || []) for (const l of r.source_labels || [])
        if (l.startsWith("__meta_") && !l.startsWith("__meta_kubernetes_pod_") && l !== "__meta_kubernetes_namespace") { console.log(`${l} is not a pod-role meta label`); bad = 1; }
    }
    for (const s of c.scrape_configs) if (s.kubernetes_sd_configs) { delete s.kubernetes_sd_configs; s.static_configs = [{ targets: ["localhost:9091"] }]; }
    c.rule_files = (c.rule_files || []).map((r) => new URL(r, "file://" + fs.realpathSync(src)).pathname);
    fs.writeFileSync(dst, YAML.stringify(c)); process.exit(bad);
  ' "$f" "$TMP/k8s-scrape.yml" || return 1
  promtool check config "$TMP/k8s-scrape.yml" || return 1
  echo "promtool has no kubernetes_sd (Debian build): checked the rest with promtool, the SD block by structure"
}

# ---- systemd ------------------------------------------------------------------
# systemd-analyze verify fails when ExecStart's binary does not exist, so the
# unit is verified as a copy whose ExecStart points at /bin/true (same
# arguments). Any message about the unit (unknown key, bad value) fails.
systemd_verify() {
  need systemd-analyze "apt-get install systemd" || return 1
  local unit="$TMP/insa-exporter.service" out rc
  sed 's#^ExecStart=/usr/local/bin/insa-exporter #ExecStart=/bin/true #' deploy/systemd/insa-exporter.service >"$unit"
  grep -q '^ExecStart=/bin/true ' "$unit" || { echo "ExecStart=/usr/local/bin/insa-exporter ... not found in the unit"; return 1; }
  out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$unit" 2>&1)
  rc=$?
  out=$(grep -v -e '^$' <<<"$out")
  [ -n "$out" ] && echo "$out"
  [ "$rc" -eq 0 ] && [ -z "$out" ] || return 1
  echo "systemd-analyze verify: no errors, no warnings"
}

# The unit's contract: exactly the BPF capabilities (CAP_SYS_ADMIN: uprobe perf events, tests/root/privileges_test.cpp), no ProtectKernelTunables,
# unlimited memlock, reload by SIGHUP, restart on failure, EnvironmentFile.
systemd_policy() {
  local u=deploy/systemd/insa-exporter.service bad=0 want="CAP_BPF CAP_DAC_READ_SEARCH CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_SYS_RESOURCE" k v
  for k in AmbientCapabilities CapabilityBoundingSet; do
    v=$(sed -n "s/^$k=//p" "$u" | tr ' ' '\n' | sort | xargs)
    [ "$v" = "$want" ] || { echo "$k=$v, want $want"; bad=1; }
  done
  grep -q '^ProtectKernelTunables=' "$u" && { echo "ProtectKernelTunables breaks BPF"; bad=1; }
  grep -q '^ProtectProc=invisible' "$u" && { echo "ProtectProc=invisible hides the workers"; bad=1; }
  grep -q '^PrivateUsers=yes' "$u" && { echo "PrivateUsers=yes confines the capabilities"; bad=1; }
  grep -qx 'LimitMEMLOCK=infinity' "$u" || { echo "LimitMEMLOCK=infinity missing"; bad=1; }
  grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$u" || { echo "ExecReload=/bin/kill -HUP \$MAINPID missing"; bad=1; }
  grep -qx 'Restart=on-failure' "$u" || { echo "Restart=on-failure missing"; bad=1; }
  grep -qx 'EnvironmentFile=-/etc/default/insa-exporter' "$u" || { echo "EnvironmentFile=-/etc/default/insa-exporter missing"; bad=1; }
  grep -q '^INSA_EXPORTER_ARGS=".*--config.file /etc/insa-exporter/probes.yaml' deploy/systemd/insa-exporter.default \
    || { echo "insa-exporter.default does not set INSA_EXPORTER_ARGS with --config.file"; bad=1; }
  [ "$bad" -eq 0 ] && echo "capabilities, hardening, memlock, reload, restart, EnvironmentFile as required"
  return "$bad"
}

# ---- node-based checks ------------------------------------------------------
node_modules() {
  need node "install nodejs >= 20" || return 1
  need npm "install npm" || return 1
  if [ ! -d "$HERE/node_modules/kubernetes-models" ] || [ ! -d "$HERE/node_modules/yaml" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  fi
  echo "tests/deploy/node_modules from package-lock.json"
}

check "npm ci (tests/deploy)" node_modules
check "every alert: summary, description, severity, unit test" alert_contract
check "promtool check config deploy/k8s/prometheus-scrape.yml" k8s_scrape
check "systemd-analyze verify deploy/systemd/insa-exporter.service" systemd_verify
check "systemd unit policy" systemd_policy
check "dashboard lint" node tests/deploy/lint_dashboards.js
check "dashboards match dashboards/src/generate.mjs" node dashboards/src/generate.mjs --check
check "grafana provisioning" node tests/deploy/validate_grafana.mjs
check "kubernetes manifests against schemas" node tests/deploy/validate_k8s.mjs
# The end-to-end script itself, proven against a fake exporter (static
# exposition of every family); against the real exporter run
# tests/deploy/prom_e2e.sh http://127.0.0.1:9091 yourself.
check "prom_e2e.sh against the fake exporter (fixtures/metrics.prom)" tests/deploy/prom_e2e_fake.sh
check "shell syntax of tests/deploy/*.sh" bash -n tests/deploy/check_deploy.sh tests/deploy/prom_e2e.sh tests/deploy/prom_e2e_fake.sh
for f in deploy/container/build-image.sh tests/e2e_container.sh tests/e2e_remote_write.sh tests/e2e_lib.sh; do
  check "shell syntax of $f" bash -n "$f"
done

echo "check_deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

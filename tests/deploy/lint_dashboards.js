#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Lints the Grafana dashboards in dashboards/*.json (no dependencies).
// Usage: node tests/deploy/lint_dashboards.js [dashboards-dir]
// Prints one line per problem and exits 1 if there is any.
//
// Rules (the dashboard-linter rules that matter for insa-exporter):
//  - valid JSON; no "__inputs" (the datasource is a template variable instead)
//  - templating has a "datasource" variable of type datasource/prometheus and
//    query variables "job" and "instance"
//  - every panel and target uses the datasource variable
//  - uid present, unique across files; title present
//  - every panel (except rows) has a title, a unit and >= 1 target with an expr
//  - every insa_*/up selector filters on job=~"$job" and instance=~"$instance"
//  - rate()/irate() use $__rate_interval, or an explicit window >= 1h (trends)
//  - increase() uses $__rate_interval, $__range or an explicit window
//  - every family of the seed catalogue and every exporter self-metric appears
//    in some expr; the seed dashboards keep their panel counts
"use strict";
const fs = require("node:fs");
const path = require("node:path");

// The seed's 30 families (names, not series: histograms also match _bucket/_sum/_count).
const CATALOGUE = [
  "insa_agent_requests_total", "insa_agent_request_duration_seconds", "insa_agent_request_size_bytes",
  "insa_agent_response_size_bytes",
  "insa_cache_hits_total", "insa_cache_misses_total", "insa_cache_size_entries", "insa_cache_evictions_total",
  "insa_message_bus_messages_total", "insa_message_bus_queue_depth", "insa_message_bus_processing_duration_seconds",
  "insa_worker_health_status", "insa_worker_active_requests", "insa_worker_queue_size", "insa_worker_restarts_total",
  "insa_retry_attempts_total", "insa_retry_success_total", "insa_circuit_breaker_state",
  "insa_circuit_breaker_transitions_total", "insa_dead_letter_queue_size", "insa_dead_letter_replay_total",
  "insa_database_operations_total", "insa_database_operation_duration_seconds",
  "insa_database_connection_pool_size", "insa_database_errors_total",
  "insa_active_sessions_total", "insa_session_duration_seconds", "insa_session_messages_total",
  "insa_session_cleanup_total",
  "insa_system_info",
];
// The exporter's own families, shown on the workers dashboard.
const SELF = [
  "insa_exporter_build_info", "insa_exporter_probe_attached", "insa_exporter_abandoned_calls_total",
  "insa_exporter_scrape_duration_seconds", "insa_exporter_label_overflow_total",
  "insa_exporter_probe_events_total", "insa_exporter_exception_exits_total", "insa_exporter_unmatched_exits_total",
  "insa_exporter_untracked_calls_total", "insa_exporter_map_entries", "insa_exporter_scrape_errors_total",
  "insa_exporter_kernel_map_bytes", "insa_exporter_kernel_map_limit_bytes", "insa_exporter_series_quota",
  "insa_exporter_series_folded_total", "insa_exporter_series_expired_total", "insa_exporter_lost_events_total",
  "insa_exporter_dropped_updates_total",
];
const SELF_UID = "insa-workers";
// Panel counts of the seed's dashboards.
const SEED_PANELS = { "insa-overview": 9, "insa-requests": 10, "insa-latency": 12 };
const EXPECTED_UIDS = ["insa-overview", "insa-requests", "insa-latency", "insa-cache", "insa-workers", "insa-errors"];
const DS_VAR = /^\$\{?datasource\}?$/;
const RATE_OK = /^\$__rate_interval$/;
const INCREASE_OK = /^(\$__rate_interval|\$__range|\d+[smhdwy])$/;

const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);

function seconds(d) {
  const m = /^(\d+)([smhdwy])$/.exec(d);
  if (!m) return NaN;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 }[m[2]];
}

/** Arguments text of every call to fn in expr (balanced parentheses). */
function calls(expr, fn) {
  const out = [];
  const re = new RegExp(`\\b${fn}\\s*\\(`, "g");
  let m;
  while ((m = re.exec(expr))) {
    let depth = 1, i = re.lastIndex;
    for (; i < expr.length && depth; i++) {
      if (expr[i] === "(") depth++;
      else if (expr[i] === ")") depth--;
    }
    out.push(expr.slice(re.lastIndex, i - 1));
  }
  return out;
}

function lintExpr(where, expr) {
  // Selectors of exporter metrics (and up) must filter on both variables.
  const sel = /(?<![\w:"])(insa_[a-z0-9_]+|up)(?![\w(])\s*(\{[^}]*\})?/g;
  let m;
  while ((m = sel.exec(expr))) {
    const braces = m[2] || "";
    if (!/job\s*=~\s*"\$job"/.test(braces) || !/instance\s*=~\s*"\$instance"/.test(braces))
      problem(where, `selector ${m[1]} lacks job=~"$job" and instance=~"$instance"`);
  }
  for (const fn of ["rate", "irate"]) {
    for (const args of calls(expr, fn)) {
      const r = /\[([^\]]+)\]\s*$/.exec(args.trim());
      if (!r) { problem(where, `${fn}() without a range selector`); continue; }
      const w = r[1].trim();
      if (!RATE_OK.test(w) && !(seconds(w) >= 3600))
        problem(where, `${fn}() window [${w}]: use [$__rate_interval] (explicit windows only for trends >= 1h)`);
    }
  }
  for (const args of calls(expr, "increase")) {
    const r = /\[([^\]]+)\]\s*$/.exec(args.trim());
    if (!r || !INCREASE_OK.test(r[1].trim())) problem(where, `increase() needs [$__rate_interval], [$__range] or an explicit window`);
  }
  if (/\$__interval\b/.test(expr)) problem(where, "uses $__interval; use $__rate_interval");
}

function lintDashboard(file, d, seen, used) {
  const f = path.basename(file);
  if ("__inputs" in d) problem(f, "has __inputs (use the ${datasource} template variable, export without \"share externally\")");
  if (!d.uid) problem(f, "no uid");
  else if (seen.has(d.uid)) problem(f, `uid ${d.uid} also used by ${seen.get(d.uid)}`);
  else seen.set(d.uid, f);
  if (d.uid && d.uid.length > 40) problem(f, `uid ${d.uid} longer than 40 characters`);
  if (!d.title) problem(f, "no title");
  const vars = (d.templating && d.templating.list) || [];
  const byName = Object.fromEntries(vars.map((v) => [v.name, v]));
  const ds = byName.datasource;
  if (!ds || ds.type !== "datasource" || ds.query !== "prometheus")
    problem(f, 'no template variable "datasource" of type datasource with query "prometheus"');
  for (const v of ["job", "instance"]) {
    if (!byName[v] || byName[v].type !== "query") problem(f, `no query template variable "${v}"`);
    else if (!DS_VAR.test(byName[v].datasource && byName[v].datasource.uid)) problem(f, `variable ${v} does not use the datasource variable`);
  }

  const panels = [];
  for (const p of d.panels || []) {
    panels.push(p);
    if (p.type === "row") for (const q of p.panels || []) panels.push(q);
  }
  const ids = new Set();
  let count = 0;
  for (const p of panels) {
    if (p.type === "row") { if (!p.title) problem(f, `row id ${p.id} has no title`); continue; }
    count++;
    const where = `${f}: panel "${p.title || "#" + p.id}"`;
    if (!p.title) problem(where, "no title");
    if (p.id === undefined || ids.has(p.id)) problem(where, `missing or duplicate panel id ${p.id}`);
    ids.add(p.id);
    if (!p.gridPos) problem(where, "no gridPos");
    if (!p.datasource || !DS_VAR.test(p.datasource.uid)) problem(where, "datasource is not ${datasource}");
    const unit = p.fieldConfig && p.fieldConfig.defaults && p.fieldConfig.defaults.unit;
    if (!unit) problem(where, `no unit (fieldConfig.defaults.unit) on ${p.type} panel`);
    if (p.type === "heatmap" && !(p.options && p.options.yAxis && p.options.yAxis.unit)) problem(where, "heatmap without options.yAxis.unit");
    const targets = p.targets || [];
    if (!targets.length) problem(where, "no targets");
    for (const t of targets) {
      const tw = `${where} ref ${t.refId}`;
      if (!t.expr || !t.expr.trim()) { problem(tw, "target without expr"); continue; }
      if (t.datasource && !DS_VAR.test(t.datasource.uid)) problem(tw, "target datasource is not ${datasource}");
      lintExpr(tw, t.expr);
      for (const fam of [...CATALOGUE, ...SELF]) {
        if (new RegExp(`\\b${fam}(_bucket|_sum|_count)?\\b`).test(t.expr)) {
          (used[fam] = used[fam] || new Set()).add(d.uid);
        }
      }
    }
  }
  if (SEED_PANELS[d.uid] !== undefined && SEED_PANELS[d.uid] !== count)
    problem(f, `${count} panels, the seed's ${d.uid} has ${SEED_PANELS[d.uid]}`);
  return count;
}

function main() {
  const dir = process.argv[2] || path.join(__dirname, "..", "..", "dashboards");
  const files = fs.readdirSync(dir).filter((n) => n.endsWith(".json")).sort().map((n) => path.join(dir, n));
  if (!files.length) problem(dir, "no dashboards");
  const seen = new Map();
  const used = {};
  let panels = 0, targets = 0;
  for (const file of files) {
    let d;
    try { d = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { problem(path.basename(file), `invalid JSON: ${e.message}`); continue; }
    panels += lintDashboard(file, d, seen, used);
    const all = (d.panels || []).flatMap((p) => [p, ...(p.panels || [])]);
    targets += all.reduce((n, p) => n + (p.targets || []).length, 0);
  }
  for (const uid of EXPECTED_UIDS) if (!seen.has(uid)) problem(dir, `no dashboard with uid ${uid}`);
  for (const fam of CATALOGUE) if (!used[fam]) problem(dir, `catalogue family ${fam} is on no panel`);
  for (const fam of SELF) if (!used[fam] || !used[fam].has(SELF_UID)) problem(dir, `exporter family ${fam} is not on the ${SELF_UID} dashboard`);
  for (const p of problems) console.log(p);
  if (problems.length) {
    console.error(`lint_dashboards: ${problems.length} problem(s)`);
    process.exit(1);
  }
  console.log(`lint_dashboards: ${files.length} dashboards, ${panels} panels, ${targets} queries, ` +
    `${CATALOGUE.length}/${CATALOGUE.length} catalogue families, ${SELF.length} exporter families: OK`);
}
main();

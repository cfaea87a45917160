#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Second half of prom_e2e.sh: given a Prometheus that scrapes insa-exporter
// every second and evaluates deploy/prometheus/rules every second, waits for
// enough samples, then sends every PromQL expression of every dashboard
// panel and every rule to /api/v1/query and fails on any empty result.
//
//   dashboards   every target expr, with $job, $instance, $__rate_interval,
//                $__range, $__interval substituted
//   recording    the rule's expr and the recorded series itself
//   alerts       alert conditions are normally empty (error rate > 5 % ...),
//                so the check is on what the alert compares: a trailing
//                top-level comparison with a number is removed and the rest
//                must return data; in addition every metric selector in the
//                expression (e.g. up{job="insa-exporter"} inside absent())
//                must return data.
//
// Options: --prometheus URL --job NAME --instance HOST:PORT
//          --matcher 'cluster="x"'  added to every dashboard selector and to the
//          up{} waits: the dashboards' queries as a multi-cluster store answers
//          them for one cluster (every dashboard selector starts with {job=~"$job").
// Env: E2E_MIN_SAMPLES (20), E2E_RATE_INTERVAL (15s), E2E_TIMEOUT (120 s),
//      E2E_VERBOSE=1 (print every passing query too).
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const arg = (name) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : undefined; };
const PROM = arg("prometheus");
const JOB = arg("job") || "insa-exporter";
const INSTANCE = arg("instance");
const MATCHER = arg("matcher");
const UP = `up{${MATCHER ? MATCHER + "," : ""}job="${JOB}"}`;
const MIN_SAMPLES = Number(process.env.E2E_MIN_SAMPLES || 20);
const RATE_INTERVAL = process.env.E2E_RATE_INTERVAL || "15s";
const TIMEOUT = Number(process.env.E2E_TIMEOUT || 120) * 1000;
if (!PROM || !INSTANCE) { console.error("usage: prom_e2e_queries.mjs --prometheus URL --instance HOST:PORT [--job NAME]"); process.exit(2); }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function query(expr) {
  const res = await fetch(`${PROM}/api/v1/query`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ query: expr }),
  });
  const body = await res.json();
  if (body.status !== "success") return { error: `${body.errorType}: ${body.error}` };
  const { resultType, result } = body.data;
  if (resultType === "scalar" || resultType === "string") return { samples: [result[1]] };
  if (resultType === "matrix") return { samples: result.flatMap((s) => s.values.map((v) => v[1])) };
  return { samples: result.map((s) => s.value[1]) };
}

async function waitFor(what, fn) {
  const end = Date.now() + TIMEOUT;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last === true) return; } catch (e) { last = e.message; }
    await sleep(1000);
  }
  console.log(`FAIL waiting for ${what}: ${last ?? "timeout"}`);
  process.exit(1);
}

// ---------------------------------------------------------------- PromQL helpers
// Regex-escaped for =~, then escaped again for the PromQL string literal.
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\\/g, "\\\\");
function substitute(expr) {
  if (MATCHER) {
    const n = (expr.match(/job=~"\$job"/g) || []).length;
    expr = expr.replaceAll('{job=~"$job"', `{${MATCHER}, job=~"$job"`);
    if (expr.split(`{${MATCHER}, job=~"$job"`).length - 1 !== n)
      throw new Error(`--matcher: a selector does not start with {job=~"$job": ${expr}`);
  }
  return expr
    .replaceAll("$__rate_interval", RATE_INTERVAL).replaceAll("${__rate_interval}", RATE_INTERVAL)
    .replaceAll("$__range", "1m").replaceAll("$__interval", "1s")
    .replace(/\$\{?job\}?/g, escapeRe(JOB)).replace(/\$\{?instance\}?/g, escapeRe(INSTANCE));
}

/** Index of the matching close bracket for expr[i] (one of ( { [). */
function close(expr, i) {
  const open = expr[i], shut = { "(": ")", "{": "}", "[": "]" }[open];
  let depth = 0;
  for (let j = i; j < expr.length; j++) {
    const c = expr[j];
    if (c === '"' || c === "'") { j = skipString(expr, j); continue; }
    if (c === open) depth++;
    else if (c === shut && --depth === 0) return j;
  }
  return expr.length;
}
function skipString(expr, i) {
  const q = expr[i];
  for (let j = i + 1; j < expr.length; j++) { if (expr[j] === "\\") j++; else if (expr[j] === q) return j; }
  return expr.length;
}

/** Removes a trailing top-level "<op> [bool] <number>"; null when there is none. */
function stripComparison(expr) {
  const e = expr.trim();
  const m = /(==|!=|>=|<=|>|<)\s*(bool\s+)?([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$/.exec(e);
  if (!m) return null;
  const left = e.slice(0, m.index);
  let depth = 0;  // the operator must be outside any parentheses
  for (let j = 0; j < left.length; j++) {
    const c = left[j];
    if (c === '"' || c === "'") j = skipString(left, j);
    else if ("({[".includes(c)) depth++;
    else if (")}]".includes(c)) depth--;
  }
  if (depth !== 0) return null;
  // "a > 0 or b": the comparison is not the last operation
  if (/\b(or|and|unless)\b/.test(left.replace(/\([^()]*\)/g, ""))) return null;
  return left.trim();
}

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
  "offset", "bool", "inf", "nan", "atan2",
  // aggregation operators, which may be followed by "by (...)" instead of "("
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"]);
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
/** Metric selectors (name plus {matchers}) of a PromQL expression. */
function selectors(expr) {
  const out = new Set();
  const ident = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'") { i = skipString(expr, i); continue; }
    if (c === "[" || c === "{") { i = close(expr, i); continue; }
    if (/[0-9.]/.test(c)) { while (i + 1 < expr.length && /[0-9a-zA-Z.]/.test(expr[i + 1])) i++; continue; }
    ident.lastIndex = i;
    const m = ident.exec(expr);
    if (!m) continue;
    const name = m[0];
    let j = i + name.length;
    while (j < expr.length && /\s/.test(expr[j])) j++;
    if (LABEL_LIST_KEYWORDS.has(name)) { i = expr[j] === "(" ? close(expr, j) : j - 1; continue; }
    if (KEYWORDS.has(name) || expr[j] === "(") { i += name.length - 1; continue; }
    let sel = name;
    if (expr[j] === "{") { const k = close(expr, j); sel += expr.slice(j, k + 1); j = k + 1; } else j = i + name.length;
    out.add(sel);
    i = j - 1;
  }
  return [...out];
}

// ---------------------------------------------------------------- collect
function collect() {
  const checks = [];
  const dashDir = join(root, "dashboards");
  for (const f of readdirSync(dashDir).filter((n) => n.endsWith(".json")).sort()) {
    const d = JSON.parse(readFileSync(join(dashDir, f), "utf8"));
    for (const p of (d.panels || []).flatMap((p) => [p, ...(p.panels || [])])) {
      for (const t of p.targets || []) {
        if (t.expr) checks.push({ kind: "dashboard", where: `${f} "${p.title}" ${t.refId}`, expr: substitute(t.expr) });
      }
    }
  }
  const ruleDir = join(root, "deploy", "prometheus", "rules");
  for (const f of readdirSync(ruleDir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    for (const g of YAML.parse(readFileSync(join(ruleDir, f), "utf8")).groups) {
      for (const r of g.rules) {
        const where = `${f} ${r.record || r.alert}`;
        if (r.record) {
          checks.push({ kind: "recording", where, expr: r.expr.trim() });
          checks.push({ kind: "recorded", where, expr: `${r.record}{job="${JOB}"}` });
        } else {
          const stripped = stripComparison(r.expr);
          if (stripped) checks.push({ kind: "alert", where: `${where} (without its comparison)`, expr: stripped });
          for (const s of selectors(r.expr)) checks.push({ kind: "alert-selector", where: `${where} selector`, expr: s });
        }
      }
    }
  }
  return checks;
}

// ---------------------------------------------------------------- main
await waitFor("Prometheus to be ready", async () => (await fetch(`${PROM}/-/ready`)).ok || "not ready");
await waitFor(`target ${INSTANCE} (job ${JOB}) to be up`, async () => {
  const r = await query(UP);
  if (r.samples && r.samples[0] === "1") return true;
  const t = await (await fetch(`${PROM}/api/v1/targets`)).json();
  const at = (t.data.activeTargets || []).find((x) => x.labels.job === JOB);
  return at ? `health ${at.health}: ${at.lastError}` : "no target yet";
});
await waitFor(`${MIN_SAMPLES} scrapes`, async () => {
  const r = await query(`count_over_time(${UP}[10m])`);
  const n = Number((r.samples || [])[0] || 0);
  return n >= MIN_SAMPLES || `${n} scrapes so far`;
});

const checks = collect();
const failures = [], nan = [];
const counts = {};
for (const c of checks) {
  counts[c.kind] = (counts[c.kind] || 0) + 1;
  const r = await query(c.expr);
  if (r.error) failures.push(`FAIL ${c.kind} ${c.where}: ${r.error}: ${c.expr}`);
  else if (!r.samples.length) failures.push(`FAIL ${c.kind} ${c.where}: empty result: ${c.expr}`);
  else if (r.samples.every((v) => v === "NaN")) nan.push(`note ${c.kind} ${c.where}: only NaN (no events in the window?): ${c.expr}`);
  else if (process.env.E2E_VERBOSE) console.log(`ok   ${c.kind} ${c.where}: ${r.samples.length} sample(s): ${c.expr}`);
}
for (const l of nan) console.log(l);
for (const l of failures) console.log(l);
const summary = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
if (failures.length) {
  console.log(`prom_e2e: ${failures.length} of ${checks.length} queries failed (${summary})`);
  process.exit(1);
}
console.log(`prom_e2e: all ${checks.length} queries returned data (${summary}; ${nan.length} only NaN)${MATCHER ? `, dashboards with ${MATCHER}` : ""}`);

// SPDX-License-Identifier: Apache-2.0
//
// Generates the six insa-exporter Grafana dashboards (dashboards/*.json).
// The JSON files are committed and are what users import; this script only
// keeps them consistent (same variables, selectors, layout, links).
// Run: node dashboards/src/generate.mjs        (writes dashboards/*.json)
//      node dashboards/src/generate.mjs --check (exit 1 if a file is stale)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const OUT_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const DS = { type: "prometheus", uid: "${datasource}" };
// Every selector carries the two dashboard variables, so one Grafana serves
// many exporters (one per host or one per DaemonSet pod).
const SEL = 'job=~"$job", instance=~"$instance"';
const RI = "$__rate_interval";

/** m("insa_x", 'status="error"') -> insa_x{job=~"$job", instance=~"$instance", status="error"} */
function m(name, extra) {
  return `${name}{${SEL}${extra ? ", " + extra : ""}}`;
}
/** rate(m(...)[$__rate_interval]) */
function rate(name, extra, window = RI) {
  return `rate(${m(name, extra)}[${window}])`;
}
/** histogram_quantile over a classic histogram, optionally grouped. */
function quantile(q, base, by = []) {
  const labels = [...by, "le"].join(", ");
  return `histogram_quantile(${q}, sum by (${labels}) (${rate(base + "_bucket")}))`;
}
/**
 * Per-group rate of a status-filtered counter that shows 0 (not "No data")
 * for groups without that status yet: (filtered) or (all * 0).
 */
function rateOrZero(name, extra, by) {
  const b = by.join(", ");
  return `sum by (${b}) (${rate(name, extra)}) or sum by (${b}) (${rate(name)}) * 0`;
}

const REQ = "insa_agent_requests_total";
const DUR = "insa_agent_request_duration_seconds";

function steps(base, ...pairs) {
  const s = [{ color: base, value: null }];
  for (let i = 0; i < pairs.length; i += 2) s.push({ color: pairs[i + 1], value: pairs[i] });
  return { mode: "absolute", steps: s };
}
const GREEN_YELLOW_RED = (y, r) => steps("green", y, "yellow", r, "red");
const RED_YELLOW_GREEN = (y, g) => steps("red", y, "yellow", g, "green");
const HEALTH_MAPPINGS = [
  { type: "value", options: { 0: { text: "DOWN", color: "red", index: 0 }, 1: { text: "UP", color: "green", index: 1 } } },
];

function target(expr, opts = {}) {
  const t = { datasource: DS, expr, legendFormat: opts.legend ?? "__auto", range: !opts.instant, instant: !!opts.instant };
  if (opts.format) t.format = opts.format;
  return t;
}

/**
 * Panel builder. spec: {type, title, description, unit, targets: [target...],
 * thresholds, mappings, min, max, decimals, w, h, options, custom, overrides}
 */
function panel(spec) {
  const p = {
    type: spec.type,
    title: spec.title,
    description: spec.description,
    datasource: DS,
    gridPos: { h: spec.h, w: spec.w, x: 0, y: 0 },
    fieldConfig: {
      defaults: {
        unit: spec.unit,
        color: spec.color ?? { mode: spec.type === "timeseries" ? "palette-classic" : "thresholds" },
        thresholds: spec.thresholds ?? steps("green"),
        mappings: spec.mappings ?? [],
      },
      overrides: spec.overrides ?? [],
    },
    options: spec.options ?? {},
    targets: spec.targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), ...t })),
  };
  const d = p.fieldConfig.defaults;
  if (spec.min !== undefined) d.min = spec.min;
  if (spec.max !== undefined) d.max = spec.max;
  if (spec.decimals !== undefined) d.decimals = spec.decimals;
  if (spec.custom) d.custom = spec.custom;
  if (spec.transformations) p.transformations = spec.transformations;
  return p;
}

function stat(title, description, unit, expr, extra = {}) {
  return panel({
    type: "stat", title, description, unit, w: extra.w ?? 6, h: 4,
    targets: [target(expr, { instant: false, legend: extra.legend ?? title })],
    thresholds: extra.thresholds, mappings: extra.mappings, decimals: extra.decimals,
    options: {
      reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
      colorMode: extra.colorMode ?? "background", graphMode: extra.graphMode ?? "area",
      justifyMode: "auto", textMode: "auto", orientation: "auto",
    },
  });
}

function timeseries(title, description, unit, targets, extra = {}) {
  return panel({
    type: "timeseries", title, description, unit, w: extra.w ?? 12, h: extra.h ?? 8, targets,
    thresholds: extra.thresholds, mappings: extra.mappings, min: extra.min, max: extra.max,
    overrides: extra.overrides,
    custom: {
      drawStyle: "line", lineWidth: 1, fillOpacity: extra.fill ?? 10, showPoints: "never",
      lineInterpolation: extra.interpolation ?? "smooth", spanNulls: false,
      thresholdsStyle: { mode: extra.thresholdLines ? "line" : "off" },
      ...(extra.custom ?? {}),
    },
    options: {
      legend: extra.legend ?? { displayMode: "list", placement: "bottom", showLegend: true, calcs: [] },
      tooltip: { mode: "multi", sort: "desc" },
    },
  });
}

function bargauge(title, description, unit, targets, extra = {}) {
  return panel({
    type: "bargauge", title, description, unit, w: extra.w ?? 12, h: extra.h ?? 8, targets,
    thresholds: extra.thresholds, mappings: extra.mappings, min: extra.min ?? 0, max: extra.max,
    options: {
      reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
      orientation: "horizontal", displayMode: extra.displayMode ?? "gradient",
      showUnfilled: true, valueMode: "color", namePlacement: "auto", sizing: "auto",
    },
  });
}

function table(title, description, unit, targets, extra = {}) {
  return panel({
    type: "table", title, description, unit, w: extra.w ?? 12, h: extra.h ?? 8, targets,
    thresholds: extra.thresholds, mappings: extra.mappings, overrides: extra.overrides,
    transformations: extra.transformations,
    custom: { align: "auto", cellOptions: { type: extra.cellType ?? "auto" }, inspect: false },
    options: { showHeader: true, cellHeight: "sm", sortBy: extra.sortBy ?? [], footer: { show: false, reducer: ["sum"], fields: "" } },
  });
}

function heatmap(title, description, unit, targets, scheme, extra = {}) {
  const p = panel({
    type: "heatmap", title, description, unit, w: extra.w ?? 12, h: extra.h ?? 8, targets,
    color: { mode: "thresholds" },
    options: {
      calculate: false,
      cellGap: 1,
      color: { mode: "scheme", scheme, steps: 64, exponent: 0.5, scale: extra.scale ?? "linear", fill: "dark-orange", reverse: false },
      yAxis: { axisPlacement: "left", unit: extra.yUnit ?? "short", reverse: false },
      rowsFrame: { layout: "auto" },
      cellValues: { unit },
      legend: { show: true },
      tooltip: { mode: "single", yHistogram: false, showColorScale: false },
      filterValues: { le: 1e-9 },
      showValue: "never",
      exemplars: { color: "rgba(255,0,255,0.7)" },
    },
  });
  p.fieldConfig.defaults.custom = { scaleDistribution: { type: "linear" }, hideFrom: { legend: false, tooltip: false, viz: false } };
  return p;
}

function row(title) {
  return { type: "row", title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: 0 }, panels: [] };
}

/** Left-to-right, top-to-bottom layout in Grafana's 24-column grid. */
function layout(panels) {
  let x = 0, y = 0, rowH = 0, id = 1;
  for (const p of panels) {
    const { w, h } = p.gridPos;
    if (p.type === "row" || x + w > 24) { y += rowH; x = 0; rowH = 0; }
    p.gridPos.x = x; p.gridPos.y = y;
    p.id = id++;
    x += w; rowH = Math.max(rowH, h);
    if (p.type === "row") { y += h; x = 0; rowH = 0; }
  }
  return panels;
}

function variables() {
  const q = (name, label, query) => ({
    name, label, type: "query", datasource: DS,
    definition: query, query: { query, refId: `PrometheusVariableQueryEditor-${name}`, qryType: 1 },
    refresh: 2, includeAll: true, multi: true, allValue: ".+", sort: 1, hide: 0, regex: "",
    current: { selected: true, text: ["All"], value: ["$__all"] }, options: [],
  });
  return {
    list: [
      { name: "datasource", label: "Data source", type: "datasource", query: "prometheus", regex: "", hide: 0, refresh: 1,
        includeAll: false, multi: false, current: {}, options: [] },
      q("job", "Job", "label_values(insa_exporter_build_info, job)"),
      q("instance", "Instance", 'label_values(insa_exporter_build_info{job=~"$job"}, instance)'),
    ],
  };
}

function dashboard(uid, title, description, panels, extra = {}) {
  return {
    uid, title, description,
    tags: ["insa", "insa-exporter", "ebpf"],
    editable: true, graphTooltip: 1, liveNow: false, fiscalYearStartMonth: 0,
    schemaVersion: 39, version: 1, weekStart: "",
    refresh: extra.refresh ?? "30s",
    time: { from: extra.from ?? "now-1h", to: "now" },
    timepicker: {}, timezone: "browser",
    annotations: { list: [{ builtIn: 1, datasource: { type: "grafana", uid: "-- Grafana --" }, enable: true, hide: true,
      iconColor: "rgba(0, 211, 255, 1)", name: "Annotations & Alerts", type: "dashboard" }] },
    links: [{ title: "INSA dashboards", type: "dashboards", tags: ["insa"], asDropdown: true, includeVars: true, keepTime: true,
      icon: "external link", targetBlank: false, tooltip: "", url: "" }],
    templating: variables(),
    panels: layout(panels),
  };
}

// ---------------------------------------------------------------- overview
const errorRatePct = `((sum(${rate(REQ, 'status="error"')}) or vector(0)) / sum(${rate(REQ)})) * 100`;
const cacheHitPct = `(sum(${rate("insa_cache_hits_total")}) / (sum(${rate("insa_cache_hits_total")}) + sum(${rate("insa_cache_misses_total")}))) * 100`;

const overview = dashboard("insa-overview", "INSA Overview", "At-a-glance health of the INSA agent platform, measured by insa-exporter (eBPF).", [
  stat("System Health", "Minimum of insa_worker_health_status over all workers: 0 means at least one worker is down.", "none",
    `min(${m("insa_worker_health_status")})`, {
      thresholds: steps("red", 1, "green"), graphMode: "none",
      mappings: [{ type: "value", options: { 0: { text: "DEGRADED", color: "red", index: 0 }, 1: { text: "HEALTHY", color: "green", index: 1 } } }],
    }),
  stat("Total Requests (5m)", "Requests handled by all agents in the last 5 minutes.", "short",
    `sum(increase(${m(REQ)}[5m]))`, { thresholds: GREEN_YELLOW_RED(100, 1000), decimals: 0 }),
  stat("Error Rate", "Share of requests with status=\"error\".", "percent", errorRatePct,
    { thresholds: GREEN_YELLOW_RED(1, 5), decimals: 2 }),
  stat("Cache Hit Rate", "Orchestrator cache hits / (hits + misses).", "percent", cacheHitPct,
    { thresholds: RED_YELLOW_GREEN(70, 90), decimals: 1 }),
  timeseries("Request Rate by Agent", "Requests per second by agent and status.", "reqps",
    [target(`sum by (agent_type, status) (${rate(REQ)})`, { legend: "{{agent_type}} {{status}}" })]),
  timeseries("Worker Health Status", "1 while the worker process runs, 0 after it exited or crashed.", "none",
    [target(m("insa_worker_health_status"), { legend: "{{worker_name}} ({{worker_type}})" })],
    { min: 0, max: 1, interpolation: "stepAfter", fill: 0, mappings: HEALTH_MAPPINGS }),
  bargauge("Active Requests by Worker", "Requests in flight per worker right now.", "short",
    [target(m("insa_worker_active_requests"), { legend: "{{worker_name}}" })], { thresholds: GREEN_YELLOW_RED(5, 10) }),
  bargauge("Queue Depth by Agent", "Messages waiting in each agent's message-bus queue.", "short",
    [target(m("insa_message_bus_queue_depth"), { legend: "{{agent_type}}" })], { thresholds: GREEN_YELLOW_RED(10, 50) }),
  stat("Message Bus Throughput", "Messages per second through the agent message bus.", "suffix: msg/s",
    `sum(${rate("insa_message_bus_messages_total")})`, { w: 24, colorMode: "value", decimals: 2 }),
]);

// ---------------------------------------------------------------- requests
const pctOfTotal = (status) =>
  `((sum(${m(REQ, `status="${status}"`)}) or vector(0)) / sum(${m(REQ)})) * 100`;

const requests = dashboard("insa-requests", "INSA Requests", "Request patterns and agent performance.", [
  stat("Total Requests", "Requests counted since the exporter started.", "short", `sum(${m(REQ)})`,
    { w: 4, colorMode: "value", decimals: 0 }),
  stat("Success Rate", "Share of requests with status=\"success\" since the exporter started.", "percent", pctOfTotal("success"),
    { w: 5, thresholds: RED_YELLOW_GREEN(95, 99), decimals: 2 }),
  stat("Error Rate", "Share of requests with status=\"error\" since the exporter started.", "percent", pctOfTotal("error"),
    { w: 5, thresholds: GREEN_YELLOW_RED(1, 5), decimals: 2 }),
  stat("Timeout Rate", "Share of requests with status=\"timeout\" since the exporter started.", "percent", pctOfTotal("timeout"),
    { w: 5, thresholds: GREEN_YELLOW_RED(0.5, 2), decimals: 2 }),
  stat("Requests/sec", "Current request rate over all agents.", "reqps", `sum(${rate(REQ)})`,
    { w: 5, colorMode: "value", decimals: 2 }),
  timeseries("Request Rate by Agent (Success vs Error)", "Per-agent request rate split by status.", "reqps", [
    target(`sum by (agent_type) (${rate(REQ, 'status="success"')})`, { legend: "{{agent_type}} success" }),
    target(rateOrZero(REQ, 'status="error"', ["agent_type"]), { legend: "{{agent_type}} error" }),
    target(rateOrZero(REQ, 'status="timeout"', ["agent_type"]), { legend: "{{agent_type}} timeout" }),
  ], {
    w: 24,
    overrides: [
      { matcher: { id: "byRegexp", options: ".* error$" }, properties: [{ id: "color", value: { mode: "fixed", fixedColor: "red" } }] },
      { matcher: { id: "byRegexp", options: ".* timeout$" }, properties: [{ id: "color", value: { mode: "fixed", fixedColor: "orange" } }] },
    ],
  }),
  panel({
    type: "piechart", title: "Requests by Agent (Total)", description: "Distribution of all requests over agents.", unit: "short",
    w: 8, h: 8, targets: [target(`sum by (agent_type) (${m(REQ)})`, { legend: "{{agent_type}}", instant: true })],
    color: { mode: "palette-classic" },
    options: { reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false }, pieType: "pie",
      legend: { displayMode: "table", placement: "right", showLegend: true, values: ["percent"] }, displayLabels: ["percent"],
      tooltip: { mode: "single", sort: "none" } },
  }),
  table("Top Agents by Volume", "Ten busiest agents by current request rate.", "reqps",
    [target(`topk(10, sum by (agent_type) (${rate(REQ)}))`, { instant: true, format: "table", legend: "{{agent_type}}" })], {
      w: 8, sortBy: [{ displayName: "Requests/sec", desc: true }],
      transformations: [{ id: "organize", options: { excludeByName: { Time: true }, renameByName: { agent_type: "Agent", Value: "Requests/sec" } } }],
    }),
  timeseries("Request Rate Trends", "Request rate averaged over 1 h, 6 h and 24 h windows.", "reqps", [
    target(`sum(${rate(REQ, undefined, "1h")})`, { legend: "1h average" }),
    target(`sum(${rate(REQ, undefined, "6h")})`, { legend: "6h average" }),
    target(`sum(${rate(REQ, undefined, "24h")})`, { legend: "24h average" }),
  ], { w: 8 }),
  heatmap("Request Volume Heatmap", "Request rate per agent over time (one row per agent).", "reqps",
    [target(`sum by (agent_type) (${rate(REQ)})`, { legend: "{{agent_type}}" })], "Spectral", { w: 24 }),
]);

// ---------------------------------------------------------------- latency
const avgLatency = (by) => by
  ? `sum by (${by}) (${rate(DUR + "_sum")}) / sum by (${by}) (${rate(DUR + "_count")})`
  : `sum(${rate(DUR + "_sum")}) / sum(${rate(DUR + "_count")})`;
const sizeQuantiles = (base) => [0.5, 0.95, 0.99].map((q) =>
  target(quantile(q, base), { legend: `P${Math.round(q * 100)}` }));

const latency = dashboard("insa-latency", "INSA Latency", "Request latency analysis and performance tuning.", [
  stat("P50 Latency (Median)", "Typical request duration.", "s", quantile(0.5, DUR), { thresholds: GREEN_YELLOW_RED(1, 5), decimals: 3 }),
  stat("P95 Latency", "95th percentile of request duration.", "s", quantile(0.95, DUR), { thresholds: GREEN_YELLOW_RED(2, 10), decimals: 3 }),
  stat("P99 Latency", "99th percentile of request duration (worst case).", "s", quantile(0.99, DUR), { thresholds: GREEN_YELLOW_RED(5, 30), decimals: 3 }),
  stat("Average Latency", "Mean request duration.", "s", avgLatency(), { thresholds: GREEN_YELLOW_RED(1, 3), decimals: 3 }),
  timeseries("Latency Percentiles (P50, P95, P99) - All Agents", "Request duration percentiles over all agents.", "s",
    [0.5, 0.95, 0.99].map((q) => target(quantile(q, DUR), { legend: `P${Math.round(q * 100)}` })),
    { legend: { displayMode: "table", placement: "bottom", showLegend: true, calcs: ["mean", "lastNotNull", "max"] } }),
  timeseries("P95 Latency by Agent", "Which agents are slowest.", "s",
    [target(quantile(0.95, DUR, ["agent_type"]), { legend: "{{agent_type}}" })],
    { thresholds: GREEN_YELLOW_RED(2, 10), thresholdLines: true }),
  timeseries("Average Latency by Agent", "Mean request duration per agent.", "s",
    [target(avgLatency("agent_type"), { legend: "{{agent_type}}" })]),
  table("Latency Summary by Agent", "P50, P95, P99 and average request duration per agent.", "s", [
    target(quantile(0.5, DUR, ["agent_type"]), { instant: true, format: "table" }),
    target(quantile(0.95, DUR, ["agent_type"]), { instant: true, format: "table" }),
    target(quantile(0.99, DUR, ["agent_type"]), { instant: true, format: "table" }),
    target(avgLatency("agent_type"), { instant: true, format: "table" }),
  ], {
    transformations: [
      { id: "merge", options: {} },
      { id: "organize", options: { excludeByName: { Time: true },
        renameByName: { agent_type: "Agent", "Value #A": "P50", "Value #B": "P95", "Value #C": "P99", "Value #D": "Average" } } },
    ],
    sortBy: [{ displayName: "P95", desc: true }],
  }),
  heatmap("Latency Distribution Heatmap", "Requests per second in each duration bucket.", "reqps",
    [{ ...target(`sum by (le) (${rate(DUR + "_bucket")})`, { legend: "{{le}}", format: "heatmap" }) }], "Blues",
    { scale: "exponential", yUnit: "s" }),
  bargauge("Slowest Operations (P99 by Agent)", "Ten agents with the highest P99 request duration.", "s",
    [target(`topk(10, ${quantile(0.99, DUR, ["agent_type"])})`, { legend: "{{agent_type}}" })],
    { thresholds: GREEN_YELLOW_RED(5, 30) }),
  timeseries("Request Size Distribution", "P50, P95 and P99 of request payload size.", "bytes",
    sizeQuantiles("insa_agent_request_size_bytes")),
  timeseries("Response Size Distribution", "P50, P95 and P99 of response payload size.", "bytes",
    sizeQuantiles("insa_agent_response_size_bytes")),
]);

// ---------------------------------------------------------------- cache & database
const DBDUR = "insa_database_operation_duration_seconds";
const cache = dashboard("insa-cache", "INSA Cache & Database", "Orchestrator cache effectiveness and database activity.", [
  stat("Cache Hit Rate", "Cache hits / (hits + misses).", "percent", cacheHitPct, { thresholds: RED_YELLOW_GREEN(70, 90), decimals: 1 }),
  stat("Cache Entries", "Entries currently held by all caches.", "short", `sum(${m("insa_cache_size_entries")})`,
    { colorMode: "value", decimals: 0 }),
  stat("Cache Lookups/sec", "Hits plus misses per second.", "ops",
    `sum(${rate("insa_cache_hits_total")}) + sum(${rate("insa_cache_misses_total")})`, { colorMode: "value", decimals: 2 }),
  stat("Evictions/sec", "Entries evicted per second, all reasons.", "ops", `sum(${rate("insa_cache_evictions_total")})`,
    { thresholds: GREEN_YELLOW_RED(1, 10), decimals: 2 }),
  timeseries("Hit Rate by Cache", "Hit rate per cache.", "percent", [target(
    `sum by (cache_type) (${rate("insa_cache_hits_total")}) / (sum by (cache_type) (${rate("insa_cache_hits_total")}) + sum by (cache_type) (${rate("insa_cache_misses_total")})) * 100`,
    { legend: "{{cache_type}}" })], { min: 0, max: 100, thresholds: RED_YELLOW_GREEN(70, 90), thresholdLines: true }),
  timeseries("Hits vs Misses", "Cache hits and misses per second.", "ops", [
    target(`sum by (cache_type) (${rate("insa_cache_hits_total")})`, { legend: "{{cache_type}} hits" }),
    target(`sum by (cache_type) (${rate("insa_cache_misses_total")})`, { legend: "{{cache_type}} misses" }),
  ], { overrides: [{ matcher: { id: "byRegexp", options: ".* misses$" }, properties: [{ id: "color", value: { mode: "fixed", fixedColor: "orange" } }] }] }),
  timeseries("Cache Size", "Entries per cache.", "short", [target(m("insa_cache_size_entries"), { legend: "{{cache_type}}" })]),
  timeseries("Evictions by Reason", "Evictions per second by cache and reason.", "ops",
    [target(`sum by (cache_type, reason) (${rate("insa_cache_evictions_total")})`, { legend: "{{cache_type}} {{reason}}" })]),
  timeseries("Database Operations/sec", "Database operations per second by operation and table.", "ops",
    [target(`sum by (operation, table) (${rate("insa_database_operations_total")})`, { legend: "{{operation}} {{table}}" })]),
  timeseries("Database Operation Latency (P50, P95)", "Duration of database operations per operation.", "s", [
    target(quantile(0.5, DBDUR, ["operation"]), { legend: "{{operation}} P50" }),
    target(quantile(0.95, DBDUR, ["operation"]), { legend: "{{operation}} P95" }),
  ]),
  bargauge("Database Connection Pool", "Connections in each database pool.", "short",
    [target(m("insa_database_connection_pool_size"), { legend: "{{database_name}}" })], { thresholds: steps("green") }),
  timeseries("Database Errors by Type", "Failed database operations per second.", "ops",
    [target(`sum by (operation, error_type) (${rate("insa_database_errors_total")})`, { legend: "{{operation}} {{error_type}}" })]),
]);

// ---------------------------------------------------------------- workers, bus, sessions, exporter
const MSGDUR = "insa_message_bus_processing_duration_seconds";
const workers = dashboard("insa-workers", "INSA Workers", "Worker processes, message bus, sessions, platform and the exporter itself.", [
  row("Workers"),
  stat("Workers Up", "Worker processes currently running.", "short", `sum(${m("insa_worker_health_status")})`,
    { colorMode: "value", graphMode: "none", decimals: 0 }),
  stat("Workers Down", "Known workers that are not running.", "short", `count(${m("insa_worker_health_status")} == 0) or vector(0)`,
    { thresholds: steps("green", 1, "red"), graphMode: "none", decimals: 0 }),
  stat("Restarts (1h)", "Worker restarts in the last hour.", "short", `sum(increase(${m("insa_worker_restarts_total")}[1h]))`,
    { thresholds: GREEN_YELLOW_RED(1, 5), decimals: 0 }),
  stat("Total Queued", "Items queued inside all workers.", "short", `sum(${m("insa_worker_queue_size")})`,
    { thresholds: GREEN_YELLOW_RED(10, 50), decimals: 0 }),
  table("Worker Health", "Current state of every known worker.", "none",
    [target(m("insa_worker_health_status"), { instant: true, format: "table" })], {
      mappings: HEALTH_MAPPINGS, cellType: "color-background",
      transformations: [{ id: "organize", options: { excludeByName: { Time: true, __name__: true },
        renameByName: { worker_name: "Worker", worker_type: "Type", Value: "State" } } }],
    }),
  timeseries("Active Requests by Worker", "Requests in flight per worker.", "short",
    [target(m("insa_worker_active_requests"), { legend: "{{worker_name}}" })], { thresholds: GREEN_YELLOW_RED(5, 10), thresholdLines: true }),
  timeseries("Worker Queue Size", "Items queued inside each worker.", "short",
    [target(m("insa_worker_queue_size"), { legend: "{{worker_name}}" })]),
  bargauge("Restarts by Worker and Reason (24h)", "Restarts in the last 24 hours with the exit reason (exit code or signal).", "short",
    [target(`sum by (worker_name, reason) (increase(${m("insa_worker_restarts_total")}[24h]))`, { legend: "{{worker_name}} {{reason}}" })],
    { thresholds: GREEN_YELLOW_RED(1, 5) }),
  row("Message bus"),
  timeseries("Messages by Route", "Messages per second by sender, receiver and type.", "suffix: msg/s",
    [target(`sum by (from_agent, to_agent, message_type) (${rate("insa_message_bus_messages_total")})`,
      { legend: "{{from_agent}} → {{to_agent}} ({{message_type}})" })], { w: 8 }),
  timeseries("Queue Depth by Agent", "Messages waiting in each agent's queue.", "short",
    [target(m("insa_message_bus_queue_depth"), { legend: "{{agent_type}}" })], { w: 8, thresholds: GREEN_YELLOW_RED(10, 50), thresholdLines: true }),
  timeseries("Message Processing Latency (P50, P95)", "Time to dispatch a message, per receiving agent.", "s", [
    target(quantile(0.5, MSGDUR, ["agent_type"]), { legend: "{{agent_type}} P50" }),
    target(quantile(0.95, MSGDUR, ["agent_type"]), { legend: "{{agent_type}} P95" }),
  ], { w: 8 }),
  row("Sessions"),
  stat("Active Sessions", "Sessions currently open.", "short", `sum(${m("insa_active_sessions_total")})`,
    { colorMode: "value", decimals: 0 }),
  timeseries("Session Duration (P50, P95)", "How long sessions stay open.", "s", [
    target(quantile(0.5, "insa_session_duration_seconds"), { legend: "P50" }),
    target(quantile(0.95, "insa_session_duration_seconds"), { legend: "P95" }),
  ], { w: 6 }),
  timeseries("Session Messages by Type", "Session messages per second by session type.", "suffix: msg/s",
    [target(`sum by (session_type) (${rate("insa_session_messages_total")})`, { legend: "{{session_type}}" })], { w: 6 }),
  timeseries("Session Cleanups by Reason", "Sessions cleaned up per second by reason.", "ops",
    [target(`sum by (reason) (${rate("insa_session_cleanup_total")})`, { legend: "{{reason}}" })], { w: 6 }),
  row("Platform and exporter"),
  table("Platform", "insa_system_info: version, environment and platform of each monitored host.", "none",
    [target(m("insa_system_info"), { instant: true, format: "table" })], {
      w: 8, h: 6,
      transformations: [{ id: "organize", options: { excludeByName: { Time: true, Value: true, __name__: true } } }],
    }),
  table("Exporter Build", "insa_exporter_build_info of each exporter.", "none",
    [target(m("insa_exporter_build_info"), { instant: true, format: "table" })], {
      w: 8, h: 6,
      transformations: [{ id: "organize", options: { excludeByName: { Time: true, Value: true, __name__: true } } }],
    }),
  stat("Exporter Scrape Duration", "Time the exporter needed to read its BPF maps and render the last scrape.", "s",
    `max(${m("insa_exporter_scrape_duration_seconds")})`, { w: 8, thresholds: GREEN_YELLOW_RED(0.1, 1), decimals: 4 }),
  bargauge("Probe Attach State", "1 = probe attached, 0 = detached (binary or symbol missing, or attach failed).", "none",
    [target(m("insa_exporter_probe_attached"), { legend: "{{probe}}" })], {
      w: 8, min: 0, max: 1, thresholds: steps("red", 1, "green"), displayMode: "basic",
      mappings: [{ type: "value", options: { 0: { text: "DETACHED", color: "red", index: 0 }, 1: { text: "ATTACHED", color: "green", index: 1 } } }],
    }),
  timeseries("Abandoned Calls by Probe", "Entry events whose matching exit never came (thread died, map full), per second.", "ops",
    [target(`sum by (probe) (${rate("insa_exporter_abandoned_calls_total")})`, { legend: "{{probe}}" })], { w: 8 }),
  timeseries("Label Overflow by Metric", "Label values folded into \"other\" because a metric hit its bound on distinct values.", "ops",
    [target(`sum by (metric) (${rate("insa_exporter_label_overflow_total")})`, { legend: "{{metric}}" })], { w: 8 }),
  timeseries("Probe Events by Probe", "Times each probe's entry or USDT point fired, per second.", "ops",
    [target(`sum by (probe) (${rate("insa_exporter_probe_events_total")})`, { legend: "{{probe}}" })], { w: 8 }),
  timeseries("Probe Anomalies", "Calls left by a C++ exception, exits without an open call, calls not tracked (frame stack full), per second.", "ops", [
    target(`sum by (probe) (${rate("insa_exporter_exception_exits_total")})`, { legend: "{{probe}} exception exits" }),
    target(`sum by (probe) (${rate("insa_exporter_unmatched_exits_total")})`, { legend: "{{probe}} unmatched exits" }),
    target(`sum by (probe) (${rate("insa_exporter_untracked_calls_total")})`, { legend: "{{probe}} untracked calls" }),
  ], { w: 8 }),
  timeseries("Kernel Map Entries", "Entries in the exporter's BPF aggregation maps.", "short",
    [target(`sum by (map) (${m("insa_exporter_map_entries")})`, { legend: "{{map}}" })], { w: 8 }),
  stat("Scrape Errors (1h)", "Scrapes in the last hour that failed to read the kernel maps.", "short",
    `sum(increase(${m("insa_exporter_scrape_errors_total")}[1h]))`, { w: 8, thresholds: steps("green", 1, "red"), decimals: 0 }),
  timeseries("Kernel Map Memory", "Bytes the kernel charges for each BPF map, against the most the budget lets the aggregation maps take.", "bytes", [
    target(`sum by (map) (${m("insa_exporter_kernel_map_bytes")})`, { legend: "{{map}}" }),
    target(`sum by (map) (${m("insa_exporter_kernel_map_limit_bytes")})`, { legend: "{{map}} limit" }),
  ], { w: 8 }),
  timeseries("Series Quota, Folded and Expired", "Per metric: its kernel series quota; updates folded into its `other` series (quota full) and idle series removed, per second.", "short", [
    target(`sum by (metric) (${m("insa_exporter_series_quota")})`, { legend: "{{metric}} quota" }),
    target(`sum by (metric) (${rate("insa_exporter_series_folded_total")})`, { legend: "{{metric}} folded/s" }),
    target(`sum by (metric) (${rate("insa_exporter_series_expired_total")})`, { legend: "{{metric}} expired/s" }),
  ], { w: 8 }),
  timeseries("Lost Events and Dropped Updates", "Silent losses made visible: unreadable label strings, a full ring buffer or span map, spans that never ended, expiry races; updates with no room even for `other`.", "ops", [
    target(`sum by (reason) (${rate("insa_exporter_lost_events_total")})`, { legend: "{{reason}}" }),
    target(`sum by (probe) (${rate("insa_exporter_dropped_updates_total")})`, { legend: "{{probe}} dropped" }),
  ], { w: 8 }),
]);

// ---------------------------------------------------------------- errors
const BREAKER_MAPPINGS = [{ type: "value", options: {
  0: { text: "closed", color: "green", index: 0 }, 1: { text: "open", color: "red", index: 1 }, 2: { text: "half_open", color: "yellow", index: 2 } } }];
const errors = dashboard("insa-errors", "INSA Errors & Resilience", "Errors, retries, circuit breakers and the dead-letter queue.", [
  stat("Error Rate", "Share of requests with status=\"error\".", "percent", errorRatePct, { thresholds: GREEN_YELLOW_RED(1, 5), decimals: 2 }),
  stat("Open Circuit Breakers", "Agents whose circuit breaker is open.", "short",
    `count(${m("insa_circuit_breaker_state")} == 1) or vector(0)`, { thresholds: steps("green", 1, "red"), graphMode: "none", decimals: 0 }),
  stat("Dead Letter Queue", "Messages waiting in all dead-letter queues.", "short", `sum(${m("insa_dead_letter_queue_size")})`,
    { thresholds: GREEN_YELLOW_RED(10, 100), decimals: 0 }),
  stat("Retry Success Rate", "Retries that succeeded / retry attempts.", "percent",
    `(sum(${rate("insa_retry_success_total")}) / sum(${rate("insa_retry_attempts_total")})) * 100`,
    { thresholds: RED_YELLOW_GREEN(50, 80), decimals: 1 }),
  timeseries("Errors and Timeouts by Agent", "Failed requests per second by agent.", "reqps", [
    target(rateOrZero(REQ, 'status="error"', ["agent_type"]), { legend: "{{agent_type}} error" }),
    target(rateOrZero(REQ, 'status="timeout"', ["agent_type"]), { legend: "{{agent_type}} timeout" }),
  ], { w: 24 }),
  timeseries("Retry Attempts", "Retry attempts per second by agent and attempt number.", "ops",
    [target(`sum by (agent_type, retry_number) (${rate("insa_retry_attempts_total")})`, { legend: "{{agent_type}} #{{retry_number}}" })]),
  timeseries("Retry Successes", "Successful retries per second by agent and attempt number.", "ops",
    [target(`sum by (agent_type, retry_number) (${rate("insa_retry_success_total")})`, { legend: "{{agent_type}} #{{retry_number}}" })]),
  panel({
    type: "state-timeline", title: "Circuit Breaker State", description: "0 = closed, 1 = open, 2 = half_open.", unit: "none",
    w: 12, h: 8, targets: [target(m("insa_circuit_breaker_state"), { legend: "{{agent_type}}" })],
    mappings: BREAKER_MAPPINGS, thresholds: steps("green"), color: { mode: "thresholds" },
    custom: { lineWidth: 0, fillOpacity: 80 },
    options: { showValue: "auto", mergeValues: true, rowHeight: 0.9, alignValue: "left",
      legend: { displayMode: "list", placement: "bottom", showLegend: true }, tooltip: { mode: "single", sort: "none" } },
  }),
  timeseries("Circuit Breaker Transitions", "State changes per second.", "ops",
    [target(`sum by (agent_type, from_state, to_state) (${rate("insa_circuit_breaker_transitions_total")})`,
      { legend: "{{agent_type}} {{from_state}} → {{to_state}}" })]),
  timeseries("Dead Letter Queue Size", "Messages waiting per agent.", "short",
    [target(m("insa_dead_letter_queue_size"), { legend: "{{agent_type}}" })], { thresholds: GREEN_YELLOW_RED(10, 100), thresholdLines: true }),
  timeseries("Dead Letter Replays", "Replays per second by agent and outcome.", "ops",
    [target(`sum by (agent_type, status) (${rate("insa_dead_letter_replay_total")})`, { legend: "{{agent_type}} {{status}}" })]),
  timeseries("Database Errors", "Failed database operations per second by operation and error type.", "ops",
    [target(`sum by (operation, error_type) (${rate("insa_database_errors_total")})`, { legend: "{{operation}} {{error_type}}" })], { w: 24 }),
]);

const FILES = {
  "01-overview.json": overview,
  "02-requests.json": requests,
  "03-latency.json": latency,
  "04-cache.json": cache,
  "05-workers.json": workers,
  "06-errors.json": errors,
};

const check = process.argv.includes("--check");
let stale = 0;
for (const [file, dash] of Object.entries(FILES)) {
  const path = join(OUT_DIR, file);
  const text = JSON.stringify(dash, null, 2) + "\n";
  if (check) {
    let cur = "";
    try { cur = readFileSync(path, "utf8"); } catch { /* missing counts as stale */ }
    if (cur !== text) { console.log(`dashboards/${file}: differs from dashboards/src/generate.mjs output (run: node dashboards/src/generate.mjs)`); stale++; }
  } else {
    writeFileSync(path, text);
  }
}
process.exit(stale ? 1 : 0);

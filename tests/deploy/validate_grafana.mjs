#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Checks deploy/grafana/provisioning/{datasources,dashboards}/*.yaml against
// the structure Grafana's provisioning expects. One line per problem.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "deploy", "grafana", "provisioning");
const problems = [];
const load = (sub) => readdirSync(join(root, sub)).filter((f) => /\.ya?ml$/.test(f)).map((f) => {
  const where = `deploy/grafana/provisioning/${sub}/${f}`;
  const doc = YAML.parseDocument(readFileSync(join(root, sub, f), "utf8"));
  for (const e of doc.errors) problems.push(`${where}: YAML: ${e.message.split("\n")[0]}`);
  return [where, doc.toJS() || {}];
});
const only = (where, obj, keys) => { for (const k of Object.keys(obj)) if (!keys.includes(k)) problems.push(`${where}: unknown field "${k}"`); };

const ds = load("datasources"), dash = load("dashboards");
if (!ds.length) problems.push("deploy/grafana/provisioning/datasources: no file");
if (!dash.length) problems.push("deploy/grafana/provisioning/dashboards: no file");
for (const [w, d] of ds) {
  only(w, d, ["apiVersion", "datasources", "deleteDatasources", "prune"]);
  if (d.apiVersion !== 1) problems.push(`${w}: apiVersion must be 1`);
  if (!Array.isArray(d.datasources) || !d.datasources.some((x) => x.type === "prometheus")) problems.push(`${w}: no datasource of type prometheus`);
  for (const x of d.datasources || []) {
    only(`${w} ${x.name}`, x, ["name", "type", "uid", "access", "url", "isDefault", "editable", "orgId", "jsonData", "secureJsonData", "basicAuth", "basicAuthUser", "version", "withCredentials", "database", "user"]);
    if (!x.name || !x.url) problems.push(`${w}: datasource needs name and url`);
    if (!["proxy", "direct", undefined].includes(x.access)) problems.push(`${w}: access must be proxy or direct`);
    if (x.type === "prometheus" && !(x.jsonData && /^\d+[smh]$/.test(x.jsonData.timeInterval || ""))) problems.push(`${w}: set jsonData.timeInterval to the scrape interval ($__rate_interval depends on it)`);
  }
}
for (const [w, d] of dash) {
  only(w, d, ["apiVersion", "providers"]);
  if (d.apiVersion !== 1) problems.push(`${w}: apiVersion must be 1`);
  if (!Array.isArray(d.providers) || !d.providers.length) problems.push(`${w}: no providers`);
  for (const p of d.providers || []) {
    only(`${w} ${p.name}`, p, ["name", "orgId", "folder", "folderUid", "type", "disableDeletion", "allowUiUpdates", "updateIntervalSeconds", "options"]);
    if (p.type !== "file") problems.push(`${w}: provider type must be file`);
    if (!p.options || !p.options.path) problems.push(`${w}: provider needs options.path`);
  }
}
for (const p of problems) console.log(p);
if (problems.length) process.exit(1);
console.log(`validate_grafana: ${ds.length} datasource file(s), ${dash.length} dashboard provider file(s) OK`);

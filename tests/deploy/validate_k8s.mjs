#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Offline validation of deploy/k8s against the Kubernetes and Prometheus
// Operator OpenAPI schemas (npm kubernetes-models, @kubernetes-models/
// prometheus-operator). Needs: (cd tests/deploy && npm ci).
// Usage: node tests/deploy/validate_k8s.mjs [deploy/k8s]
// One line per problem; exit 1 if any.
//
// Besides the schemas (types, enums, required fields) it rejects unknown
// fields like `kubectl apply --validate=strict`: every object is wrapped in a
// Proxy during validation, and a key the schema validator never looked at is
// not part of the schema. It also checks the kustomization structure and the
// cross references between the manifests.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import YAML from "yaml";
import { validate as vDaemonSet } from "kubernetes-models/_schemas/IoK8sApiAppsV1DaemonSet";
import { validate as vNamespace } from "kubernetes-models/_schemas/IoK8sApiCoreV1Namespace";
import { validate as vServiceAccount } from "kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount";
import { validate as vConfigMap } from "kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap";

const here = dirname(fileURLToPath(import.meta.url));
// The operator package does not export its schemas; import the file directly.
const { validate: vPodMonitor } = await import(pathToFileURL(join(here, "node_modules", "@kubernetes-models",
  "prometheus-operator", "_schemas", "ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1PodMonitor.js")).href);
const dir = resolve(process.argv[2] || join(here, "..", "..", "deploy", "k8s"));
const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);

const VALIDATORS = {
  "v1/Namespace": vNamespace,
  "v1/ServiceAccount": vServiceAccount,
  "v1/ConfigMap": vConfigMap,
  "apps/v1/DaemonSet": vDaemonSet,
  "monitoring.coreos.com/v1/PodMonitor": vPodMonitor,
};
// The DaemonSet runs with exactly the systemd unit's capabilities.
const UNIT = join(here, "..", "..", "deploy", "systemd", "insa-exporter.service");
const CAPS = (readFileSync(UNIT, "utf8").match(/^AmbientCapabilities=(.*)$/m) || [, ""])[1]
  .trim().split(/\s+/).filter(Boolean).map((c) => c.replace(/^CAP_/, "")).sort();
// Host paths the code reads (see the comment in daemonset.yaml), each read-only; no other.
const HOST_PATHS = { "/sys/kernel/btf": "/sys/kernel/btf", "/var/log/pods": "/var/log/pods" };

/** Deep copy of v in Proxies that record which keys the validator reads. */
function track(v, path, log) {
  if (v === null || typeof v !== "object") return v;
  const info = { path, obj: v, read: new Set(), enumerated: Array.isArray(v) };
  log.push(info);
  const copy = Array.isArray(v)
    ? v.map((x, i) => track(x, `${path}/${i}`, log))
    : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, track(x, `${path}/${k}`, log)]));
  return new Proxy(copy, {
    get(t, k, r) { if (typeof k === "string") info.read.add(k); return Reflect.get(t, k, r); },
    has(t, k) { if (typeof k === "string") info.read.add(k); return Reflect.has(t, k); },
    ownKeys(t) { info.enumerated = true; return Reflect.ownKeys(t); },
    getOwnPropertyDescriptor(t, k) { if (typeof k === "string") info.read.add(k); return Reflect.getOwnPropertyDescriptor(t, k); },
  });
}

function validateObject(where, obj) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const validate = VALIDATORS[key];
  if (!validate) { problem(where, `no schema for ${key}`); return false; }
  const log = [];
  const ok = validate(track(obj, "", log));
  for (const e of ok ? [] : validate.errors || [])
    problem(where, `${obj.kind} ${e.instancePath || "/"}: ${e.keyword} ${JSON.stringify(e.params)}`);
  // Maps (labels, resources.limits, ...) are enumerated by the validator;
  // structs are read key by key: an unread key is unknown to the schema.
  for (const info of log) {
    if (info.enumerated) continue;
    for (const k of Object.keys(info.obj))
      if (!info.read.has(k)) problem(where, `${obj.kind} ${info.path || "/"}: unknown field "${k}"`);
  }
  return ok;
}

function loadDocs(file) {
  const text = readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text);
  const out = [];
  for (const d of docs) {
    for (const e of d.errors) problem(file, `YAML: ${e.message.split("\n")[0]}`);
    const js = d.toJS();
    if (js !== null && js !== undefined) out.push(js);
  }
  return out;
}

const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "namespace", "namePrefix", "nameSuffix", "labels",
  "commonLabels", "commonAnnotations", "resources", "configMapGenerator", "secretGenerator", "generatorOptions",
  "images", "patches", "replicas", "components"]);

function main() {
  const kfile = join(dir, "kustomization.yaml");
  const rel = (f) => f.replace(resolve(here, "..", "..") + "/", "");
  if (!existsSync(kfile)) { problem(rel(dir), "no kustomization.yaml"); return finish(0); }
  const [k] = loadDocs(kfile);
  const kw = rel(kfile);
  if (!k || typeof k !== "object") { problem(kw, "empty"); return finish(0); }
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1") problem(kw, `apiVersion ${k.apiVersion}, want kustomize.config.k8s.io/v1beta1`);
  if (k.kind !== "Kustomization") problem(kw, `kind ${k.kind}, want Kustomization`);
  for (const key of Object.keys(k)) if (!KUSTOMIZATION_KEYS.has(key)) problem(kw, `unknown field "${key}"`);
  if (k.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(k.namespace)) problem(kw, `namespace "${k.namespace}" is not a DNS label`);
  if (!Array.isArray(k.resources) || !k.resources.length) problem(kw, "resources must be a non-empty list");
  for (const l of k.labels || []) {
    if (!l.pairs || typeof l.pairs !== "object") problem(kw, "labels[] entry without pairs");
    for (const key of Object.keys(l)) if (!["pairs", "includeSelectors", "includeTemplates"].includes(key)) problem(kw, `labels[]: unknown field "${key}"`);
  }
  for (const im of k.images || []) if (!im.name) problem(kw, "images[] entry without name");

  const objects = [];
  for (const r of k.resources || []) {
    const f = join(dir, r);
    if (!existsSync(f)) { problem(kw, `resource ${r} does not exist`); continue; }
    for (const o of loadDocs(f)) objects.push({ where: rel(f), obj: o });
  }
  // Generated ConfigMaps, validated like any manifest.
  for (const g of k.configMapGenerator || []) {
    for (const key of Object.keys(g)) if (!["name", "namespace", "behavior", "files", "literals", "envs", "options"].includes(key)) problem(kw, `configMapGenerator: unknown field "${key}"`);
    if (!g.name) { problem(kw, "configMapGenerator entry without name"); continue; }
    const data = {};
    for (const spec of g.files || []) {
      const [keyName, path] = spec.includes("=") ? spec.split("=", 2) : [spec.split("/").pop(), spec];
      const f = join(dir, path);
      if (!existsSync(f)) { problem(kw, `configMapGenerator ${g.name}: file ${path} does not exist`); continue; }
      data[keyName] = readFileSync(f, "utf8");
      if (/\.ya?ml$/.test(f)) loadDocs(f);  // reports YAML syntax errors
    }
    objects.push({ where: `${kw} (configMapGenerator ${g.name})`, obj: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data } });
  }

  let valid = 0;
  for (const { where, obj } of objects) if (validateObject(where, obj)) valid++;

  // Cross references.
  const byKind = (kind) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
  const [ds] = byKind("DaemonSet");
  const sas = byKind("ServiceAccount").map((o) => o.metadata.name);
  const cms = byKind("ConfigMap").map((o) => o.metadata.name);
  if (!ds) problem(kw, "no DaemonSet");
  else {
    const w = "DaemonSet " + ds.metadata.name;
    const pod = ds.spec.template.spec;
    const podLabels = ds.spec.template.metadata.labels || {};
    for (const [l, v] of Object.entries(ds.spec.selector.matchLabels || {}))
      if (podLabels[l] !== v) problem(w, `selector ${l}=${v} does not match the pod template labels`);
    if (pod.hostPID !== true) problem(w, "hostPID must be true (the agent sees the node's worker processes)");
    if (!(pod.tolerations || []).some((t) => t.operator === "Exists" && !t.key && !t.effect)) problem(w, "no toleration for all taints (operator: Exists)");
    if (pod.serviceAccountName && !sas.includes(pod.serviceAccountName)) problem(w, `service account ${pod.serviceAccountName} is not in the resources`);
    for (const v of pod.volumes || [])
      if (v.configMap && !cms.includes(v.configMap.name)) problem(w, `volume ${v.name}: ConfigMap ${v.configMap.name} is neither a resource nor generated`);
    const vols = new Set((pod.volumes || []).map((v) => v.name));
    const hostPaths = (pod.volumes || []).filter((v) => v.hostPath).map((v) => v.hostPath.path);
    for (const p of Object.keys(HOST_PATHS)) if (!hostPaths.includes(p)) problem(w, `no hostPath volume for ${p}`);
    for (const p of hostPaths) if (!(p in HOST_PATHS)) problem(w, `hostPath ${p}: the exporter does not read it (mount only ${Object.keys(HOST_PATHS).join(", ")})`);
    const hostVols = new Map((pod.volumes || []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath.path]));
    for (const c of pod.containers) {
      const cw = `${w} container ${c.name}`;
      for (const m of c.volumeMounts || []) if (!vols.has(m.name)) problem(cw, `mount ${m.name} has no volume`);
      for (const m of c.volumeMounts || []) {
        const hp = hostVols.get(m.name);
        if (hp && m.readOnly !== true) problem(cw, `host path ${hp} must be mounted readOnly`);
        if (hp && hp in HOST_PATHS && m.mountPath !== HOST_PATHS[hp]) problem(cw, `host path ${hp} mounted at ${m.mountPath}, the code reads ${HOST_PATHS[hp]}`);
      }
      for (const hp of hostVols.values())
        if (!(c.volumeMounts || []).some((m) => hostVols.get(m.name) === hp)) problem(cw, `host path ${hp} is not mounted`);
      const ports = (c.ports || []).map((p) => p.name);
      if (!ports.includes("metrics")) problem(cw, "no port named metrics");
      const probePath = (p) => p && p.httpGet && p.httpGet.path;
      if (probePath(c.livenessProbe) !== "/-/healthy") problem(cw, "livenessProbe must GET /-/healthy");
      if (probePath(c.readinessProbe) !== "/-/ready") problem(cw, "readinessProbe must GET /-/ready");
      for (const p of [c.livenessProbe, c.readinessProbe])
        if (p && p.httpGet && typeof p.httpGet.port === "string" && !ports.includes(p.httpGet.port)) problem(cw, `probe port ${p.httpGet.port} is not a container port`);
      if (!c.resources || !c.resources.requests || !c.resources.limits) problem(cw, "resources need requests and limits");
      const sc = c.securityContext || {};
      const add = ((sc.capabilities || {}).add || []).slice().sort();
      if (JSON.stringify(add) !== JSON.stringify(CAPS) && !add.includes("SYS_ADMIN")) problem(cw, `capabilities.add ${add} != the unit's ${CAPS} (deploy/systemd/insa-exporter.service)`);
      if (add.includes("SYS_ADMIN") && sc.allowPrivilegeEscalation === false) problem(cw, "SYS_ADMIN with allowPrivilegeEscalation: false is rejected by the API server");
      if (sc.privileged) problem(cw, "privileged: the listed capabilities are enough");
      if (!((sc.capabilities || {}).drop || []).includes("ALL")) problem(cw, "capabilities.drop should be [ALL]");
      const args = (c.args || []).join(" ");
      if (!/--config\.file[ =]\/etc\/insa-exporter\/probes\.yaml/.test(args)) problem(cw, "args lack --config.file /etc/insa-exporter/probes.yaml");
      if (!(c.volumeMounts || []).some((m) => m.mountPath === "/etc/insa-exporter")) problem(cw, "config not mounted at /etc/insa-exporter");
    }
    for (const pm of byKind("PodMonitor")) {
      const pw = "PodMonitor " + pm.metadata.name;
      for (const [l, v] of Object.entries((pm.spec.selector || {}).matchLabels || {}))
        if (podLabels[l] !== v) problem(pw, `selector ${l}=${v} does not select the DaemonSet pods`);
      for (const e of pm.spec.podMetricsEndpoints || [])
        if (!pod.containers.some((c) => (c.ports || []).some((p) => p.name === e.port))) problem(pw, `endpoint port ${e.port} is not a container port`);
      if (pm.spec.jobLabel && !podLabels[pm.spec.jobLabel]) problem(pw, `jobLabel ${pm.spec.jobLabel} is not a pod label`);
      else if (pm.spec.jobLabel && podLabels[pm.spec.jobLabel] !== "insa-exporter") problem(pw, `job would be ${podLabels[pm.spec.jobLabel]}, the rules expect insa-exporter`);
    }
  }
  return finish(objects.length, valid);
}

function finish(n, valid = 0) {
  for (const p of problems) console.log(p);
  if (problems.length) { console.error(`validate_k8s: ${problems.length} problem(s)`); process.exit(1); }
  console.log(`validate_k8s: ${n} objects valid against their schemas (${valid} passed), kustomization and cross references OK`);
}
main();

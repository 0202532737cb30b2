#!/usr/bin/env node
// validate.mjs — validate Kubernetes objects against the API schemas (npm kubernetes-models).
//
//   node tests/packaging/validate.mjs FILE...      (multi-document YAML or JSON; "-" = stdin)
//
// Each document must have an apiVersion/kind that kubernetes-models (or the prometheus-operator
// models, for ServiceMonitor) knows; it is checked with the model's validate(), which applies the
// OpenAPI schema (types, required fields, enums, formats). The models' compiled validators do
// not refuse unknown fields, so a misspelt optional field is not caught here. Prints one line per
// object and exits 1 if any is invalid (or if there are no objects at all).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const yaml = require("js-yaml");

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const candidates = [];
  if (group === "") candidates.push(`kubernetes-models/${version}/${kind}`);
  else {
    candidates.push(`kubernetes-models/${group}/${version}/${kind}`);
    candidates.push(`@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`);
  }
  for (const c of candidates) {
    try {
      const mod = require(c);
      const cls = mod[kind] || mod.default;
      if (cls) return { cls, id: c };
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  return null;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: validate.mjs FILE...");
  process.exit(2);
}
let bad = 0, n = 0;
for (const f of files) {
  const text = fs.readFileSync(f === "-" ? 0 : f, "utf8");
  const docs = yaml.loadAll(text).filter((d) => d !== null && d !== undefined);
  for (const [i, doc] of docs.entries()) {
    const label = `${path.basename(f)}#${i} ${doc.kind || "?"}/${doc.metadata?.name || "?"}`;
    n++;
    if (!doc.apiVersion || !doc.kind) {
      console.log(`INVALID ${label}: no apiVersion/kind`);
      bad++;
      continue;
    }
    const m = await modelFor(doc.apiVersion, doc.kind);
    if (!m) {
      console.log(`INVALID ${label}: unknown type ${doc.apiVersion} ${doc.kind}`);
      bad++;
      continue;
    }
    const errs = [];
    try {
      const obj = new m.cls(doc);
      obj.validate();
      if (obj.apiVersion !== doc.apiVersion || obj.kind !== doc.kind)
        errs.push(`model is ${obj.apiVersion} ${obj.kind}`);
    } catch (e) {
      errs.push(e.message || String(e));
    }
    if (errs.length) {
      console.log(`INVALID ${label}: ${errs.join("; ")}`);
      bad++;
    } else {
      console.log(`ok ${label} (${doc.apiVersion})`);
    }
  }
}
console.log(`${n} object(s), ${bad} invalid`);
process.exit(bad || n === 0 ? 1 : 0);

// Summarises a V8 .cpuprofile (node --cpu-prof): time by category (whose code
// ran: grpc-js, pg, ioredis, agentstate, node internals, GC, idle), and the top
// functions by self and by inclusive time.
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

function category(frame) {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === "(idle)") return "idle";
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(program)") return "V8/native (program)";
    if (functionName === "(root)") return "root";
    return `native: ${functionName || "(anonymous)"}`;
  }
  if (url.includes("/node_modules/@grpc/grpc-js/")) return "grpc-js";
  if (/\/node_modules\/pg(-protocol|-pool|-types)?\//.test(url)) return "pg (node-postgres)";
  if (url.includes("/node_modules/ioredis/") || url.includes("/node_modules/@ioredis/")) return "ioredis";
  if (url.includes("/node_modules/redlock/")) return "redlock";
  if (url.includes("/node_modules/@bufbuild/") || url.includes("/node_modules/protobufjs/")) return "protobuf runtime";
  if (url.includes("/dist/src/gen/")) return "agentstate generated protobuf code";
  if (url.includes("/dist/src/")) {
    const rel = url.slice(url.indexOf("/dist/src/") + "/dist/src/".length);
    return `agentstate ${rel.split("/").slice(0, -1).join("/") || rel}`;
  }
  if (url.includes("/node_modules/")) {
    const rest = url.slice(url.lastIndexOf("/node_modules/") + 14).split("/");
    return `node_modules/${rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith("node:")) {
    const m = /^node:(internal\/)?([a-z_0-9]+)/.exec(url);
    return `node ${m ? m[2] : url}`;
  }
  return "other";
}

function fnKey(frame) {
  const file = frame.url ? frame.url.replace(/^.*\/(node_modules|dist)\//, "$1/") : "";
  return `${frame.functionName || "(anonymous)"} ${file}${file ? `:${frame.lineNumber + 1}` : ""}`;
}

export function summarize(profile, { top = 25 } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const incl = new Map();
  const cats = new Map();
  let total = 0;
  let busy = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const dt = Math.max(0, deltas[i] ?? 0) / 1000; // ms
    const node = byId.get(samples[i]);
    if (!node) continue;
    total += dt;
    const cat = category(node.callFrame);
    cats.set(cat, (cats.get(cat) ?? 0) + dt);
    if (cat === "idle") continue;
    busy += dt;
    const k = fnKey(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id).callFrame;
      if (!f.url && f.functionName.startsWith("(")) continue;
      const key = fnKey(f);
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + dt);
    }
  }
  const pct = (v, of) => `${((100 * v) / of).toFixed(1)}%`;
  const lines = [];
  lines.push(
    `profile: ${(total / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy (${pct(busy, total)} of the main thread)`,
  );
  lines.push("", "self time by category (share of busy time):");
  for (const [c, v] of [...cats]
    .filter(([c]) => c !== "idle")
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20)) {
    lines.push(`  ${pct(v, busy).padStart(6)}  ${c}`);
  }
  lines.push("", `top ${top} functions by self time:`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(v, busy).padStart(6)}  ${k}`);
  }
  lines.push("", `top ${top} functions by inclusive time:`);
  for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(v, busy).padStart(6)}  ${k}`);
  }
  return lines.join("\n");
}

export function summarizeFile(file, opts) {
  return summarize(JSON.parse(fs.readFileSync(file, "utf8")), opts);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node bench/lib/cpuprofile.mjs FILE.cpuprofile\n");
    process.exit(2);
  }
  process.stdout.write(summarizeFile(file) + "\n");
}

#!/usr/bin/env node
// Follows each client README's "Use it from your project" section literally:
// in a new `mktemp -d` directory outside the repository it runs the README's
// commands, writes its example program, runs it against a live server and
// compares what it prints with the output the README shows. The steps are the
// README's own fenced code blocks, each marked by the HTML comment above it
// (invisible on GitHub), so the README and this test cannot drift apart:
//
//   <!-- scratch:sh -->           run the block with bash -euo pipefail in the project directory
//   <!-- scratch:file main.go --> write the block to that file in the project directory
//   <!-- scratch:stdout -->       the exact stdout of the previous sh block
//
// In sh blocks `/path/to/agentstate` (the README's name for the user's
// checkout) becomes this checkout; nothing else is rewritten. The examples read
// AGENTSTATE_ADDRESS (default 127.0.0.1:50051), which the caller sets to a
// fresh server: the outputs shown are a first run's.
//
//   AGENTSTATE_ADDRESS=127.0.0.1:50051 node .ci/clients-from-scratch.mjs [typescript] [typescript-langgraph] [python] [go] [python-langgraph]
//
// Prints one line per client and a closing "scratch: N passed, M failed, 0
// skipped" that .ci/run adds to the totals; exits non-zero if any failed.
import { spawnSync } from "node:child_process";
import console from "node:console";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CHECKOUT_PLACEHOLDER = "/path/to/agentstate";
const STEP_TIMEOUT_MS = 300_000;

/** The marked blocks of a README, in order: { kind, arg, body, line }. */
export function scratchSteps(markdown) {
  const lines = markdown.split("\n");
  const steps = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- scratch:(sh|file|stdout)(?: (\S+))? -->$/.exec(lines[i].trim());
    if (!m) continue;
    let start = i + 1;
    while (start < lines.length && lines[start].trim() === "") start++;
    const open = start < lines.length ? /^(`{3,})\w*$/.exec(lines[start].trim()) : null;
    if (!open) throw new Error(`line ${i + 1}: a scratch marker must be followed by a fenced code block`);
    const end = lines.findIndex((l, j) => j > start && l.trim() === open[1]);
    if (end < 0) throw new Error(`line ${start + 1}: unclosed code block`);
    if (m[1] === "file" && !m[2]) throw new Error(`line ${i + 1}: scratch:file needs a file name`);
    steps.push({ kind: m[1], arg: m[2], body: lines.slice(start + 1, end).join("\n") + "\n", line: i + 1 });
    i = end;
  }
  return steps;
}

function indent(text) {
  return text.replace(/\n$/, "").replace(/^/gm, "    ");
}

/** Runs one client's README section; returns an error message or "". */
function runClient(client) {
  const readme = join(root, "clients", client, "README.md");
  const steps = scratchSteps(readFileSync(readme, "utf8"));
  for (const kind of ["sh", "file", "stdout"]) {
    if (!steps.some((s) => s.kind === kind)) return `${relative(root, readme)} has no scratch:${kind} block`;
  }
  const dir = realpathSync(mkdtempSync(join(tmpdir(), `agentstate-scratch-${client}-`)));
  if (!relative(root, dir).startsWith("..")) return `the scratch directory ${dir} is inside the repository`;
  console.log(`scratch: ${client}: ${dir} (steps from ${relative(root, readme)})`);
  try {
    let last = null;
    for (const step of steps) {
      const where = `${relative(root, readme)}:${step.line}`;
      if (step.kind === "file") {
        writeFileSync(join(dir, step.arg), step.body);
        console.log(`  wrote ${step.arg} (${where})`);
      } else if (step.kind === "sh") {
        const script = step.body.replaceAll(CHECKOUT_PLACEHOLDER, root);
        console.log(`  $ ${script.trimEnd().replace(/\n/g, "\n  $ ")}`);
        const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
          cwd: dir,
          encoding: "utf8",
          timeout: STEP_TIMEOUT_MS,
          maxBuffer: 64 << 20,
        });
        if (r.stderr) console.log(indent(r.stderr));
        if (r.stdout) console.log(indent(r.stdout));
        if (r.error) return `${where}: ${r.error.message}`;
        if (r.status !== 0) return `${where}: exited with ${r.status ?? r.signal}`;
        last = { stdout: r.stdout, where };
      } else {
        if (!last) return `${where}: scratch:stdout before any scratch:sh block`;
        if (last.stdout !== step.body) {
          return `${last.where} printed other output than ${where} shows:\n--- README\n${step.body}--- printed\n${last.stdout}`;
        }
        console.log(`  output matches (${where})`);
      }
    }
    return "";
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.env.AGENTSTATE_ADDRESS) {
    console.error(
      "clients-from-scratch: set AGENTSTATE_ADDRESS to a live server (a fresh one: outputs are a first run's)",
    );
    process.exit(2);
  }
  const clients =
    process.argv.length > 2
      ? process.argv.slice(2)
      : ["typescript", "typescript-langgraph", "python", "go", "python-langgraph"];
  let passed = 0;
  let failed = 0;
  for (const client of clients) {
    const started = Date.now();
    let error;
    try {
      error = runClient(client);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    if (error) {
      failed++;
      console.log(`scratch: ${client}: FAIL (${took}): ${error}`);
    } else {
      passed++;
      console.log(`scratch: ${client}: ok (${took})`);
    }
  }
  console.log(`scratch: ${passed} passed, ${failed} failed, 0 skipped`);
  process.exit(failed ? 1 : 0);
}

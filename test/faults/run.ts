/**
 * Command line for fault runs (build first: `npm run build`).
 *
 *   node dist/test/faults/run.js            quick run (about 2 minutes)
 *   node dist/test/faults/run.js --long     long run (>= 100k KV operations)
 *
 * Options: --seed N, --ops N (target KV operations), --seconds N (minimum
 * workload time), --max-seconds N, --faults kind,kind,... (see Nemesis.ts),
 * --out DIR (default a new directory under the temp dir), --record (write the
 * result to test/faults/RESULTS.md), --strict (fail on replica crashes and
 * INTERNAL replies of known, already reported bugs too; see knownBugs.ts). Exit code 0 when every check passed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { runFaults } from "./FaultRun";
import { buildChecker, findToxiproxy, REPO_ROOT } from "./goTools";
import { KNOWN_CRASHES, KNOWN_INTERNAL_ERRORS } from "./knownBugs";
import { FAULT_KINDS, type FaultKind } from "./Nemesis";
import { defaultOutDir, PRESETS } from "./presets";
import { resultsMarkdown } from "./resultsMarkdown";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function num(name: string): number | undefined {
  const v = arg(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} needs a number, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const long = process.argv.includes("--long");
  const preset = { ...PRESETS[long ? "long" : "quick"] };
  const ops = num("--ops");
  if (ops !== undefined) preset.targetOps = ops;
  const seconds = num("--seconds");
  if (seconds !== undefined) {
    preset.minDurationMs = seconds * 1000;
    preset.maxDurationMs = Math.max(preset.maxDurationMs, preset.minDurationMs);
  }
  const maxSeconds = num("--max-seconds");
  if (maxSeconds !== undefined) preset.maxDurationMs = maxSeconds * 1000;
  const faults = arg("--faults");
  if (faults !== undefined) {
    const kinds = faults.split(",").filter(Boolean);
    for (const k of kinds) {
      if (!(FAULT_KINDS as readonly string[]).includes(k))
        throw new Error(`unknown fault ${k}; known: ${FAULT_KINDS.join(", ")}`);
    }
    preset.faults = kinds as FaultKind[];
  }
  const seed = num("--seed") ?? Math.floor(Math.random() * 2 ** 31);
  const outDir = arg("--out") ?? defaultOutDir(long ? "long" : "quick");
  const [checkerBin, toxiproxyBin] = await Promise.all([buildChecker(), findToxiproxy()]);
  const report = await runFaults({
    ...preset,
    seed,
    checkerBin,
    toxiproxyBin,
    outDir,
    log: (l) => console.log(l),
    knownCrashes: process.argv.includes("--strict") ? [] : KNOWN_CRASHES,
    knownInternalErrors: process.argv.includes("--strict") ? [] : KNOWN_INTERNAL_ERRORS,
  });
  const command = `node dist/test/faults/run.js ${process.argv.slice(2).join(" ")}`.trim();
  const md = resultsMarkdown(report, command);
  fs.writeFileSync(path.join(outDir, "RESULTS.md"), md);
  if (process.argv.includes("--record")) fs.writeFileSync(path.join(REPO_ROOT, "test", "faults", "RESULTS.md"), md);
  console.log(md);
  console.log(`artifacts: ${outDir}`);
  process.exitCode = report.ok ? 0 : 1;
}

if (require.main === module) {
  // The harness's child processes are unref'd: never let an emptied event loop end a run silently.
  const keepAlive = setInterval(() => undefined, 60_000);
  main()
    .catch((e: unknown) => {
      console.error(e);
      process.exitCode = 2;
    })
    .finally(() => clearInterval(keepAlive));
}

/**
 * The two standard fault runs: quick (CI, about a minute of workload, every
 * fault kind the issue names at least once) and long (at least 100k KV
 * operations, every fault kind many times).
 */
import * as os from "node:os";
import * as path from "node:path";
import type { FaultRunOptions } from "./FaultRun";
import { FAULT_KINDS, type FaultKind } from "./Nemesis";

export type Preset = Omit<
  FaultRunOptions,
  "seed" | "checkerBin" | "toxiproxyBin" | "outDir" | "log" | "knownCrashes" | "knownInternalErrors"
>;

/** The fault kinds the issue names; the quick run injects each of them first, then the others. */
export const REQUIRED_FAULTS: readonly FaultKind[] = [
  "replica-kill",
  "cache-restart",
  "cache-flushall",
  "pg-restart",
  "pg-crash",
  "master-kill",
  "pg-latency",
  "pg-reset",
  "pg-timeout",
  "cache-latency",
  "cache-reset",
  "cache-timeout",
];

export const PRESETS: Record<"quick" | "long", Preset> = {
  quick: {
    minDurationMs: 70_000,
    targetOps: 0,
    maxDurationMs: 70_000,
    kvWorkers: 6,
    kvKeys: 4,
    lockWorkers: 4,
    lockNames: 2,
    appenders: 2,
    streams: 3,
    redlock: true,
    faults: FAULT_KINDS,
    firstFaults: REQUIRED_FAULTS,
    holdMs: [800, 2000],
    gapMs: [500, 1500],
    checkerTimeoutMs: 120_000,
  },
  long: {
    minDurationMs: 5 * 60_000,
    // KV calls; a few percent fail in flight and some of those are dropped, so the checked history stays >= 100k.
    targetOps: 105_000,
    maxDurationMs: 60 * 60_000,
    kvWorkers: 8,
    kvKeys: 6,
    lockWorkers: 4,
    lockNames: 2,
    appenders: 3,
    streams: 3,
    redlock: true,
    faults: FAULT_KINDS,
    holdMs: [500, 3000],
    gapMs: [500, 3000],
    checkerTimeoutMs: 30 * 60_000,
  },
};

export function defaultOutDir(name: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return path.join(os.tmpdir(), `agentstate-faults-${name}-${stamp}`);
}

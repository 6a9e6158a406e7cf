/**
 * One fault run: start the cluster (test/faults/FaultCluster), run the KV,
 * lock and event workloads concurrently while the nemesis injects faults,
 * heal everything, let subscribers catch up, then check:
 *  - the KV history is linearizable (Porcupine, test/faults/checker);
 *  - fencing safety (checkFencing);
 *  - event completeness and order for every subscriber (checkEvents);
 *  - every namespace's revisions dense and given once (checkRevisions);
 *  - no replica exited by itself, and no call got a status a healthy
 *    service never answers under faults (INTERNAL, UNKNOWN, ...).
 * Everything (histories, fault log, report, server output on failure) is
 * written to `outDir`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Consistency } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import { checkEvents, matchesTarget, storedEvents, type EventsReport } from "./checkEvents";
import { checkFencing, type FencingReport } from "./checkFencing";
import { checkRevisions, type RevisionsReport } from "./checkRevisions";
import { checkLinearizable, type PorcupineResult } from "./checkLinearizable";
import { nowNs } from "./clock";
import { EventWorkload, type SubscriptionTargetSpec } from "./EventWorkload";
import { FaultCluster } from "./FaultCluster";
import { KvWorkload, type StoredOutcome } from "./KvWorkload";
import { LockWorkload } from "./LockWorkload";
import { Nemesis, type FaultKind, type FaultRecord } from "./Nemesis";
import type { KnownCrash, KnownInternalError } from "./knownBugs";
import { Rng } from "./Rng";

export interface FaultRunOptions {
  seed: number;
  /** Run at least this long, and until `targetOps` KV operations completed... */
  minDurationMs: number;
  targetOps: number;
  /** ...but never longer than this. */
  maxDurationMs: number;
  kvWorkers: number;
  kvKeys: number;
  /** 0 disables the lock workload. */
  lockWorkers: number;
  lockNames: number;
  /** 0 disables the event workload. */
  appenders: number;
  streams: number;
  /** Redlock over three masters (else one: the cache Redis). */
  redlock: boolean;
  faults: readonly FaultKind[];
  /** Injected first, so a short run surely covers them. */
  firstFaults?: readonly FaultKind[];
  holdMs: [number, number];
  gapMs: [number, number];
  checkerBin: string;
  toxiproxyBin: string;
  checkerTimeoutMs: number;
  outDir: string;
  log: (line: string) => void;
  /** Replica crashes to list as known bugs rather than fail on (see knownBugs.ts). */
  knownCrashes: readonly KnownCrash[];
  /** Causes of INTERNAL replies to list as known bugs rather than fail on (see knownBugs.ts). */
  knownInternalErrors: readonly KnownInternalError[];
}

export interface FaultRunReport {
  ok: boolean;
  failures: string[];
  seed: number;
  startedAt: string;
  workloadMs: number;
  totalMs: number;
  outDir: string;
  kv: {
    completed: number;
    recorded: number;
    failedGets: number;
    /** Failed writes that never left the client (dropped). */
    notSent: number;
    /** Indeterminate CompareAndSets settled from kv_history: committed (kept, output known) or not (dropped). */
    resolved: { committed: number; dropped: number; unresolved: number };
    codes: Record<string, number>;
    porcupine: PorcupineResult | undefined;
    /** Cache read outcomes (agentstate_cache_reads_total) of every replica incarnation. */
    cacheStats: Record<string, number>;
  };
  locks: (FencingReport & { codes: Record<string, number> }) | undefined;
  events: (EventsReport & { codes: Record<string, number> }) | undefined;
  revisions: RevisionsReport;
  faults: { total: number; byKind: Record<string, number>; errors: string[]; list: FaultRecord[] };
  /** Replica crashes not caused by the harness (the supervisor restarted them). */
  unexpectedExits: string[];
  /** Those of them that match a known bug, by bug. */
  knownCrashes: Record<string, number>;
  /** Replies with a status never expected under faults (INTERNAL, UNKNOWN, ...), a sample. */
  unexpectedCodes: string[];
  /** What the replicas logged as "internal error" ("<rpc>: <error>"). */
  internalErrors: string[];
  /** INTERNAL replies explained by known bugs, by bug (their log lines all match one). */
  knownInternal: Record<string, number>;
}

const KV_NS = "faults-kv";
const LOCK_NS = "faults-locks";
const EVENT_NS = "faults-events";

export async function runFaults(o: FaultRunOptions): Promise<FaultRunReport> {
  const t0 = Date.now();
  fs.mkdirSync(o.outDir, { recursive: true });
  const log = (line: string) => {
    const l = `[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`;
    o.log(l);
    fs.appendFileSync(path.join(o.outDir, "progress.log"), l + "\n");
  };
  const rng = new Rng(o.seed);
  log(`seed ${o.seed}; starting Postgres, Redis (cache + ${o.redlock ? 3 : 0} masters), toxiproxy, 2 replicas`);
  const cluster = await FaultCluster.start({ replicas: 2, redlock: o.redlock, toxiproxyBin: o.toxiproxyBin });
  const keys = Array.from({ length: o.kvKeys }, (_, i) => `k${i}`);
  const kv = new KvWorkload(cluster, { namespace: KV_NS, keys, workers: o.kvWorkers, deadlineMs: 4000 });
  const locks =
    o.lockWorkers > 0
      ? new LockWorkload(cluster, {
          namespace: LOCK_NS,
          names: Array.from({ length: o.lockNames }, (_, i) => `L${i}`),
          workers: o.lockWorkers,
          ttlMs: [300, 1200],
          deadlineMs: 4000,
        })
      : undefined;
  const streams = Array.from({ length: o.streams }, (_, i) => `s${i}`);
  const events =
    o.appenders > 0
      ? new EventWorkload(cluster, {
          namespace: EVENT_NS,
          streams,
          appenders: o.appenders,
          deadlineMs: 4000,
          maxAttempts: 20,
        })
      : undefined;
  const nemesis = new Nemesis(cluster, {
    kinds: o.faults,
    firstKinds: o.firstFaults,
    holdMs: o.holdMs,
    gapMs: o.gapMs,
  });
  let workloadMs = 0;
  try {
    await waitHealthy(cluster, 60_000);
    log(`cluster up: replicas at ${cluster.replicas.map((r) => r.address).join(", ")}`);

    let stopping = false;
    const stop = () => stopping;
    const targets: SubscriptionTargetSpec[] = [{ streamPrefix: "s" }, { streamPrefix: "" }];
    for (const s of streams.slice(0, 2)) targets.push({ stream: s });
    events?.startSubscribers(rng.fork(), targets);
    const started = Date.now();
    const running = Promise.all([
      kv.run(rng.fork(), stop),
      locks?.run(rng.fork(), stop),
      events?.run(rng.fork(), stop),
      nemesis.run(rng.fork(), stop),
    ]);
    let lastLog = 0;
    for (;;) {
      const elapsed = Date.now() - started;
      const done = (elapsed >= o.minDurationMs && kv.completed >= o.targetOps) || elapsed >= o.maxDurationMs;
      if (done) break;
      if (Date.now() - lastLog >= 10_000) {
        lastLog = Date.now();
        log(
          `kv ops ${kv.completed} (${Math.round(kv.completed / Math.max(1, elapsed / 1000))}/s), lock attempts ${locks?.attempts.length ?? 0}, fenced writes ${locks?.writes.length ?? 0}, appends ${events?.appends.length ?? 0}, faults ${nemesis.faults.length}`,
        );
      }
      await sleep(200);
    }
    stopping = true;
    log("stopping workloads (the fault in progress is healed first)");
    await running;
    workloadMs = Date.now() - started;
    await cluster.healAll();
    await waitHealthy(cluster, 120_000);
    log(`healed; ${kv.completed} kv ops, ${nemesis.faults.length} faults`);

    // Final reads of every key through every replica, cached and uncached: the end state joins the history.
    for (const key of keys) {
      for (const r of cluster.replicas) {
        for (const consistency of [Consistency.CONSISTENCY_UNSPECIFIED, Consistency.CONSISTENCY_DATABASE]) {
          const call = nowNs();
          const res = await r.client.get({ namespace: KV_NS, key, consistency }, { deadlineMs: 10_000 });
          kv.ops.push({
            client: o.kvWorkers + r.index,
            key,
            kind: "get",
            call,
            return: nowNs(),
            outcome: "ok",
            found: res.found,
            version: res.found ? res.item?.version : 0,
            outValue: res.found ? Buffer.from(res.item?.value ?? new Uint8Array()).toString("utf8") : "",
            replica: r.index,
          });
        }
      }
    }

    if (events) {
      // Caught up with Postgres, read afresh each time; twice, a second apart, in case an
      // append whose caller gave up still committed late.
      const caughtUp = async () => {
        const rows = await storedEvents(cluster.directDbUrl, EVENT_NS);
        return events.subscribers.every((s) => {
          const mine = rows.filter((r) => matchesTarget(s, r.stream));
          return s.lastPosition >= (mine[mine.length - 1]?.position ?? 0);
        });
      };
      for (let round = 0; round < 2; round++) {
        await eventually("every subscriber to catch up with the events in Postgres", caughtUp, {
          timeoutMs: 90_000,
          intervalMs: 200,
        }).catch((e: Error) => log(`warning: ${e.message}`));
        if (round === 0) await sleep(1000);
      }
      await events.stopSubscribers();
    }

    const cacheStats = await cluster.stopReplicas();
    log(`replicas stopped; cache read outcomes: ${JSON.stringify(cacheStats)}`);
    const indeterminateBefore = kv.ops.filter((op) => op.outcome === "indeterminate").length;
    const resolved = kv.resolveIndeterminate(
      await writtenValues(cluster.directDbUrl, KV_NS),
      await storedOutcomes(cluster.directDbUrl, KV_NS),
    );
    log(
      `${indeterminateBefore} indeterminate writes: ${resolved.committed} committed, ${resolved.dropped} not (dropped), ${resolved.unresolved} unresolved; ${kv.notSent} never sent`,
    );

    // Checks, against Postgres directly.
    const failures: string[] = [];
    const historyPath = path.join(o.outDir, "kv-history.json");
    fs.writeFileSync(historyPath, kv.historyJson());
    log(`checking ${kv.ops.length} kv operations with Porcupine`);
    const porcupine = await checkLinearizable(o.checkerBin, historyPath, {
      timeoutMs: o.checkerTimeoutMs,
      visPath: path.join(o.outDir, "kv-linearizability.html"),
    });
    log(`porcupine: ${porcupine.result} in ${porcupine.durationMs} ms`);
    if (porcupine.result !== "Ok") failures.push(`kv history: Porcupine says ${porcupine.result}`);

    let locksReport: FaultRunReport["locks"];
    if (locks) {
      fs.writeFileSync(
        path.join(o.outDir, "lock-history.json"),
        JSON.stringify({ attempts: locks.attempts, writes: locks.writes }),
      );
      const f = await checkFencing(cluster.directDbUrl, LOCK_NS, locks.attempts, locks.writes);
      locksReport = { ...f, codes: locks.codes.counts };
      for (const v of f.violations) failures.push(`fencing: ${v}`);
      log(
        `fencing: ${f.acquisitions} acquisitions, ${f.landedWrites} landed writes, ${f.violations.length} violations`,
      );
    }

    let eventsReport: FaultRunReport["events"];
    if (events) {
      fs.writeFileSync(
        path.join(o.outDir, "event-history.json"),
        JSON.stringify({
          appends: events.appends,
          subscribers: events.subscribers.map((s) => ({ target: s.describe(), received: s.received })),
        }),
      );
      const e = await checkEvents(cluster.directDbUrl, EVENT_NS, events.appends, events.subscribers);
      eventsReport = { ...e, codes: events.codes.counts };
      for (const v of e.violations) failures.push(`events: ${v}`);
      log(`events: ${e.eventsInStore} stored, ${e.acknowledgedEvents} acknowledged, ${e.violations.length} violations`);
    }

    const revisions = await checkRevisions(cluster.directDbUrl);
    for (const v of revisions.violations) failures.push(`revisions: ${v}`);
    log(
      `revisions: ${revisions.changes} changes in ${revisions.namespaces} namespaces, ${revisions.violations.length} violations`,
    );

    const unexpectedExits = cluster.replicas.flatMap((r) => r.unexpectedExits);
    const knownCrashes: Record<string, number> = {};
    for (const x of unexpectedExits) {
      const known = o.knownCrashes.find((k) => k.signature.test(x));
      if (known) knownCrashes[known.bug] = (knownCrashes[known.bug] ?? 0) + 1;
      else failures.push(x.split("\n").slice(0, 12).join("\n"));
    }
    const unexpectedCodes = [
      ...kv.codes.unexpected,
      ...(locks?.codes.unexpected ?? []),
      ...(events?.codes.unexpected ?? []),
    ];
    const internalErrors = cluster.replicas.flatMap((r) => r.internalErrors);
    // INTERNAL replies are excused only when every internal error the replicas logged is a known bug's.
    const knownInternal: Record<string, number> = {};
    const unexplained = internalErrors.filter((l) => {
      const k = o.knownInternalErrors.find((x) => x.signature.test(l));
      if (k) knownInternal[k.bug] = (knownInternal[k.bug] ?? 0) + 1;
      return !k;
    });
    const onlyKnownInternal =
      unexplained.length === 0 && internalErrors.length > 0 && unexpectedCodes.every((c) => c.startsWith("INTERNAL:"));
    if (!onlyKnownInternal) {
      for (const c of unexpectedCodes.slice(0, 10)) failures.push(`unexpected status: ${c}`);
      for (const l of unexplained.slice(0, 10)) failures.push(`internal error logged: ${l}`);
    }
    const faultErrors = nemesis.faults.filter((f) => f.error).map((f) => `${f.kind} (${f.target}): ${f.error}`);

    const byKind: Record<string, number> = {};
    for (const f of nemesis.faults) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    const report: FaultRunReport = {
      ok: failures.length === 0,
      failures,
      seed: o.seed,
      startedAt: new Date(t0).toISOString(),
      workloadMs,
      totalMs: Date.now() - t0,
      outDir: o.outDir,
      kv: {
        completed: kv.completed,
        recorded: kv.ops.length,
        failedGets: kv.failedGets,
        notSent: kv.notSent,
        resolved,
        codes: kv.codes.counts,
        porcupine,
        cacheStats,
      },
      locks: locksReport,
      events: eventsReport,
      revisions,
      faults: { total: nemesis.faults.length, byKind, errors: faultErrors, list: nemesis.faults },
      unexpectedExits,
      knownCrashes,
      unexpectedCodes,
      internalErrors,
      knownInternal: onlyKnownInternal ? knownInternal : {},
    };
    fs.writeFileSync(path.join(o.outDir, "report.json"), JSON.stringify(report, null, 2));
    if (!report.ok) dumpServerOutput(cluster, o.outDir);
    return report;
  } catch (e) {
    dumpServerOutput(cluster, o.outDir);
    throw e;
  } finally {
    await events?.stopSubscribers().catch(() => undefined);
    await cluster.stop();
    log("cluster stopped");
  }
}

/** Every value put in `namespace` (kv_history op 1), with its key and version. */
async function writtenValues(dbUrl: string, namespace: string): Promise<Map<string, { key: string; version: number }>> {
  const rows = await pgQuery<{ key: Buffer; version: number; value: Buffer }>(
    dbUrl,
    "SELECT key, version::float8 AS version, value FROM kv_history WHERE namespace = $1 AND op = 1",
    [namespace],
  );
  return new Map(rows.map((r) => [r.value.toString("utf8"), { key: r.key.toString("utf8"), version: r.version }]));
}

/**
 * The outcome recorded for every idempotency key in `namespace`. The jsonb is
 * the service's internal record (src/store/postgres: {applied, revision,
 * item: {v: base64 value, ver}}); a change of that format fails loudly here.
 */
async function storedOutcomes(dbUrl: string, namespace: string): Promise<Map<string, StoredOutcome>> {
  const rows = await pgQuery<{ k: string; outcome: unknown }>(
    dbUrl,
    "SELECT idempotency_key AS k, outcome FROM idempotency_keys WHERE namespace = $1",
    [namespace],
  );
  const out = new Map<string, StoredOutcome>();
  for (const r of rows) {
    const o = r.outcome as { applied?: unknown; item?: { v?: unknown; ver?: unknown } | null };
    const item = o.item ?? undefined;
    if (typeof o.applied !== "boolean" || (item && (typeof item.v !== "string" || typeof item.ver !== "number"))) {
      throw new Error(`idempotency outcome of ${r.k} has an unknown format: ${JSON.stringify(r.outcome)}`);
    }
    out.set(r.k, {
      applied: o.applied,
      found: item !== undefined,
      version: item ? (item.ver as number) : 0,
      outValue: item ? Buffer.from(item.v as string, "base64").toString("utf8") : "",
    });
  }
  return out;
}

/** Every replica answers a Get (cached and uncached). */
async function waitHealthy(cluster: FaultCluster, timeoutMs: number): Promise<void> {
  for (const r of cluster.replicas) {
    await eventually(
      `replica ${r.index} to answer`,
      async () => {
        await r.client.get({ namespace: KV_NS, key: "health" }, { deadlineMs: 2000 });
        await r.client.get(
          { namespace: KV_NS, key: "health", consistency: Consistency.CONSISTENCY_DATABASE },
          { deadlineMs: 2000 },
        );
        return true;
      },
      { timeoutMs, intervalMs: 200 },
    );
  }
}

function dumpServerOutput(cluster: FaultCluster, outDir: string): void {
  for (const r of cluster.replicas) {
    const parts = r.pastOutput.map((lines, i) => `=== incarnation ${i + 1}\n${lines.join("\n")}`);
    if (r.server?.running) parts.push(`=== current\n${r.server.lines.join("\n")}`);
    fs.writeFileSync(path.join(outDir, `replica-${r.index}.log`), parts.join("\n"));
  }
}

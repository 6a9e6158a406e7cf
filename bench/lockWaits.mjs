#!/usr/bin/env node
// Lock waits under load (issue 17), with the test harness compiled into
// dist/test/support (run `npm run build` first): its own Postgres (and three
// Redis masters for --backend redlock), agentstate replicas on loopback.
//
//   node bench/lockWaits.mjs [--backend postgres|redlock] [--entry DIST_MAIN_JS] [--rounds N]
//
// Measures, each as a ratio against a baseline taken in the same run:
//  1. CompareAndSet p99 on other keys (16 concurrent writers, closed loop)
//     while 2000 Lock calls wait on 100 held names, against its p99 with no
//     waiters; alternated `rounds` times, medians reported.
//  2. Lock handoff under 100 waiters on one name, spread over two replicas:
//     the time from a holder's Unlock being sent to the next holder's Lock
//     reply, against an uncontended Lock (try-once on a free name) on the same
//     replicas.
// --entry runs another build of the server (e.g. main's, built in a temp
// directory) for a before/after comparison.
import { Buffer } from "node:buffer";
import console from "node:console";
import process from "node:process";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { startCluster } = require("../dist/test/support/startCluster.js");
const { ServerProcess } = require("../dist/test/support/ServerProcess.js");
const { LockClient, duration } = require("../dist/test/support/lockClients.js");
const { RedisProcess } = require("../dist/test/support/RedisProcess.js");
const { closeTestEnv } = require("../dist/test/support/TestEnv.js");

const { values: o } = parseArgs({
  options: {
    backend: { type: "string", default: "postgres" },
    entry: { type: "string" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
  },
});
if (o.entry) ServerProcess.entry = o.entry;
const ROUNDS = Number(o.rounds);
const SECONDS = Number(o.seconds);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};
const median = (xs) => pct(xs, 0.5);
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function casP99(kv, tag) {
  const lat = [];
  let failed = 0;
  const end = now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; now() < end; i++) {
        const t = now();
        try {
          await kv.compareAndSet({
            namespace: "bench-kv",
            key: `k-${w}`,
            expected: { any: true },
            value: Buffer.from(`${tag}-${i}`),
          });
        } catch {
          failed++; // counted at the time it took to fail (the client's deadline)
        }
        lat.push(now() - t);
      }
    }),
  );
  if (failed > 0) console.log(`  (${tag}: ${failed} of ${lat.length} CompareAndSet calls failed)`);
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), n: lat.length };
}

async function flood(clients, round) {
  const namespace = `flood-${round}`;
  const names = Array.from({ length: 100 }, (_, i) => `name-${i}`);
  const holders = await Promise.all(
    names.map((name) => clients[0].lock({ namespace, name, ttl: duration(120_000), owner: "holder" })),
  );
  const outcomes = {};
  const waiters = Array.from({ length: 2000 }, async (_, i) => {
    const name = names[i % names.length];
    const c = clients[i % clients.length];
    try {
      const r = await c.lock(
        { namespace, name, ttl: duration(10_000), wait: duration(100_000) },
        { deadlineMs: 110_000 },
      );
      outcomes[r.acquired ? "acquired" : "not_acquired"] =
        (outcomes[r.acquired ? "acquired" : "not_acquired"] ?? 0) + 1;
      if (r.acquired) await c.unlock({ namespace, name, lockId: r.lockId });
    } catch (e) {
      outcomes[`code ${e.code}`] = (outcomes[`code ${e.code}`] ?? 0) + 1;
    }
  });
  await sleep(3000);
  const release = async () => {
    await Promise.all(holders.map((h, i) => clients[0].unlock({ namespace, name: names[i], lockId: h.lockId })));
    const t = now();
    await Promise.all(waiters);
    return { drainMs: now() - t, outcomes };
  };
  return release;
}

async function handoff(locks, round) {
  const namespace = `handoff-${round}`;
  // Uncontended: try-once Lock of a free name, then Unlock (not timed), alternating replicas.
  const solo = [];
  for (let i = 0; i < 200; i++) {
    const c = locks[i % locks.length];
    const t = now();
    const r = await c.lock({ namespace, name: `solo-${i}`, ttl: duration(10_000) });
    solo.push(now() - t);
    await c.unlock({ namespace, name: `solo-${i}`, lockId: r.lockId });
  }
  const first = await locks[0].lock({ namespace, name: "one", ttl: duration(60_000), owner: "first" });
  const gaps = [];
  let unlockSent = 0;
  const waiters = Array.from({ length: 100 }, async (_, i) => {
    const c = locks[i % locks.length];
    const r = await c.lock(
      { namespace, name: "one", ttl: duration(60_000), wait: duration(100_000) },
      { deadlineMs: 110_000 },
    );
    gaps.push(now() - unlockSent);
    await sleep(2); // the critical section
    unlockSent = now();
    await c.unlock({ namespace, name: "one", lockId: r.lockId });
  });
  await sleep(2000);
  unlockSent = now();
  await locks[0].unlock({ namespace, name: "one", lockId: first.lockId });
  await Promise.all(waiters);
  return { soloP99: pct(solo, 0.99), soloP50: pct(solo, 0.5), handoffP99: pct(gaps, 0.99), handoffP50: pct(gaps, 0.5) };
}

async function main() {
  const masters = [];
  let cluster;
  const clients = [];
  try {
    const env = { AGENTSTATE_METRICS_PORT: "0", AGENTSTATE_MAX_CONCURRENT_STREAMS: "5000", LOG_LEVEL: "warn" };
    if (o.backend === "redlock") {
      for (let i = 0; i < 3; i++) masters.push(await RedisProcess.start());
      env.REDLOCK_URLS = masters.map((m) => m.url).join(",");
    } else env.REDLOCK_URLS = "";
    cluster = await startCluster({ replicas: 2, name: "bench_locks", env });
    const kv = cluster.clients[0];
    const locks = cluster.servers.map((s) => new LockClient(s.address));
    for (let i = 0; i < 4; i++) clients.push(new LockClient(cluster.servers[0].address));
    await casP99(kv, "warm");

    const quiet = [];
    const flooded = [];
    const drains = [];
    for (let r = 0; r < ROUNDS; r++) {
      quiet.push((await casP99(kv, `q${r}`)).p99);
      const release = await flood(clients, r);
      flooded.push((await casP99(kv, `f${r}`)).p99);
      drains.push(await release());
      await sleep(1000);
    }
    const hand = [];
    for (let r = 0; r < ROUNDS; r++) hand.push(await handoff(locks, r));

    const q = median(quiet);
    const f = median(flooded);
    const soloP99 = median(hand.map((h) => h.soloP99));
    const handP99 = median(hand.map((h) => h.handoffP99));
    console.log(`backend ${o.backend}, server ${ServerProcess.entry}`);
    console.log(
      `CAS p99 (16 writers), ms: quiet ${quiet.map((x) => x.toFixed(1)).join(" ")}; 2000 waiters ${flooded.map((x) => x.toFixed(1)).join(" ")}`,
    );
    console.log(
      `  median quiet ${q.toFixed(1)} ms, flooded ${f.toFixed(1)} ms: ratio ${(f / q).toFixed(2)} (goal <= 1.5)`,
    );
    console.log(
      `  waiter drains: ${drains.map((d) => `${(d.drainMs / 1000).toFixed(1)} s ${JSON.stringify(d.outcomes)}`).join("; ")}`,
    );
    console.log(
      `Lock, ms: uncontended p50/p99 ${hand.map((h) => `${h.soloP50.toFixed(1)}/${h.soloP99.toFixed(1)}`).join(" ")}; handoff under 100 waiters p50/p99 ${hand.map((h) => `${h.handoffP50.toFixed(1)}/${h.handoffP99.toFixed(1)}`).join(" ")}`,
    );
    console.log(
      `  median uncontended p99 ${soloP99.toFixed(1)} ms, handoff p99 ${handP99.toFixed(1)} ms: ratio ${(handP99 / soloP99).toFixed(2)} (goal <= 2)`,
    );
    for (const l of [...locks, ...clients]) l.close();
  } finally {
    await cluster?.stop();
    await Promise.allSettled(masters.map((m) => m.destroy()));
    await closeTestEnv();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

/**
 * Issue 19, locks: replicas of one database with different lock backends
 * (here one keeping locks as Postgres rows, one over Redlock) never grant one
 * name to two holders at once. Both start at the same moment; workers on both
 * race Lock on the same name and increment a counter under it with an
 * unconditional, unfenced write (only mutual exclusion keeps increments from
 * being lost or seen twice). One backend serves; the other replica refuses
 * clearly (FAILED_PRECONDITION LOCK_BACKEND_MIX naming both backends), logs the
 * mix once at warn, sets the metric and reports LockService NOT_SERVING. A
 * replica started with AGENTSTATE_LOCK_BACKEND_MIX_FATAL=1 fails to start.
 * Once the serving replica stops, the other takes over after its locks drain.
 */
import * as assert from "node:assert/strict";
import { status, type ServiceError } from "@grpc/grpc-js";
import { eventually } from "../support/eventually";
import { HealthClient } from "../support/HealthClient";
import { duration, LockClient } from "../support/lockClients";
import { at, text, utf8 } from "../support/lockScenarios";
import { RedisProcess } from "../support/RedisProcess";
import { runToExit, SERVER_MAIN } from "../support/runToExit";
import { serverMetrics } from "../support/serverMetrics";
import type { ServerProcess } from "../support/ServerProcess";
import { startCluster, type Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";

describe("a mix of lock backends on one database (Postgres rows and Redlock): never two holders (issue 19)", function () {
  this.timeout(120_000);
  let master: RedisProcess | undefined;
  let cluster: Cluster | undefined;
  let pgReplica: ServerProcess;
  let redlockReplica: ServerProcess;
  const clients: LockClient[] = [];
  let redlockEnv: Record<string, string> = {};
  let prefix = "";

  before(async function () {
    this.timeout(120_000);
    master = await RedisProcess.start();
    prefix = (await getTestEnv()).redisPrefix();
    const common = {
      AGENTSTATE_METRICS_PORT: "0",
      AGENTSTATE_LOCK_BACKEND_LEASE_MS: "2000",
      AGENTSTATE_MAX_LOCK_TTL_SECONDS: "3",
      AGENTSTATE_HEALTH_PROBE_MS: "100",
      AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS: "300",
    };
    cluster = await startCluster({ replicas: 0, name: "locks_mix", env: common });
    redlockEnv = { REDLOCK_URLS: master.url, AGENTSTATE_REDIS_PREFIX: prefix };
    // Both at the same moment: registrations are serialized, so one of them sees the other.
    const [p, r] = await Promise.all([cluster.addReplica({ REDLOCK_URLS: "" }), cluster.addReplica(redlockEnv)]);
    pgReplica = p.server;
    redlockReplica = r.server;
    for (const s of [pgReplica, redlockReplica]) clients.push(new LockClient(s.address));
  });

  after(async function () {
    this.timeout(60_000);
    for (const c of clients) c.close();
    await cluster?.stop();
    await master?.destroy();
  });

  it("workers on both replicas race Lock on one name: the counter under the lock is exact; the replica whose backend does not serve refuses with LOCK_BACKEND_MIX", async () => {
    const namespace = "mix-race";
    const name = "counter-lock";
    const key = "counter";
    const kv = at(cluster!.clients, 0);
    const seen: number[] = [];
    const refusedBy = new Set<number>();
    const grantedBy = new Set<number>();
    let lostLocks = 0;
    const worker = async (w: number) => {
      const replica = w % 2;
      const locks = at(clients, replica);
      for (let i = 0; i < 15; i++) {
        let l;
        try {
          l = await locks.lock({ namespace, name, ttl: duration(2_000), wait: duration(20_000), owner: `w${w}` });
        } catch (e) {
          const err = e as ServiceError;
          assert.equal(err.code, status.FAILED_PRECONDITION, `worker ${w}: ${err.details}`);
          assert.deepEqual(err.metadata.get("agentstate-reason"), ["LOCK_BACKEND_MIX"]);
          assert.match(err.details, /postgres/);
          assert.match(err.details, /redlock 127\.0\.0\.1:\d+\/0 prefix/);
          refusedBy.add(replica);
          continue;
        }
        assert.equal(l.acquired, true, `worker ${w} acquires within its wait`);
        grantedBy.add(replica);
        const g = await kv.get({ namespace, key });
        const n = g.found ? Number(text(g.item)) : 0;
        seen.push(n);
        // Unconditional and unfenced: only the lock keeps this from losing an increment.
        await kv.compareAndSet({ namespace, key, expected: { any: true }, value: utf8(String(n + 1)) });
        // Refused only if another holder took the name meanwhile (its newer token): a second holder.
        await locks.unlock({ namespace, name, lockId: l.lockId }).catch(() => lostLocks++);
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));

    const final = await kv.get({ namespace, key });
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: seen.length }, (_, i) => i),
      "each critical section saw a distinct value: never two holders at once",
    );
    assert.equal(Number(text(final.item)), seen.length, "every increment under the lock counted, none lost");
    assert.equal(lostLocks, 0, "no holder found its lock taken by another before it released it");
    assert.equal(grantedBy.size, 1, "one backend serves");
    assert.equal(refusedBy.size, 1, "the other refuses");
    assert.notEqual([...grantedBy][0], [...refusedBy][0]);
  });

  it("both replicas log the mix once at warn (no secrets) and set agentstate_lock_backend_mix; the refusing one reports LockService NOT_SERVING", async () => {
    const servingIdx = await whichServes();
    const [serving, refusing] = servingIdx === 0 ? [pgReplica, redlockReplica] : [redlockReplica, pgReplica];
    for (const s of [serving, refusing]) {
      await s.waitForLog((l) => String(l.msg).startsWith("lock backend mix"));
      const lines = s.logs().filter((l) => String(l.msg).startsWith("lock backend mix"));
      assert.equal(lines.length, 1, "logged once");
      assert.equal(lines[0]!.level, "warn");
      assert.ok(!JSON.stringify(lines[0]).includes("redis://"), "masters as host:port, never a URL");
      assert.match(await serverMetrics(s), /^agentstate_lock_backend_mix 1$/m);
    }
    const health = new HealthClient(refusing.address);
    const okHealth = new HealthClient(serving.address);
    try {
      await eventually("LockService NOT_SERVING on the refusing replica", async () =>
        (await health.check("agentstate.v1.LockService")) === "NOT_SERVING" ? true : undefined,
      );
      assert.equal(await health.check("agentstate.v1.KeyValueService"), "SERVING", "KV still serves");
      assert.equal(await okHealth.check("agentstate.v1.LockService"), "SERVING");
    } finally {
      health.close();
      okHealth.close();
    }
  });

  it("with AGENTSTATE_LOCK_BACKEND_MIX_FATAL=1 a replica that finds the mix at start fails to start, naming both backends", async () => {
    const servingIdx = await whichServes();
    const other = servingIdx === 0 ? redlockEnv : { REDLOCK_URLS: "", AGENTSTATE_REDIS_PREFIX: prefix };
    const r = await runToExit(SERVER_MAIN, {
      ...cluster!.env,
      ...other,
      LOG_FORMAT: "json",
      AGENTSTATE_LOCK_BACKEND_MIX_FATAL: "1",
    });
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /AGENTSTATE_LOCK_BACKEND_MIX_FATAL/);
    assert.match(r.output, /postgres/);
    assert.match(r.output, /redlock/);
  });

  it("once the serving replica stops, the other one takes over after the locks it granted have drained", async () => {
    const servingIdx = await whichServes();
    const [serving, other] = servingIdx === 0 ? [pgReplica, redlockReplica] : [redlockReplica, pgReplica];
    const otherClient = at(clients, 1 - servingIdx);
    await serving.stop();
    const l = await eventually(
      "the other backend serves",
      async () => {
        try {
          const r = await otherClient.lock({ namespace: "mix-switch", name: "n", ttl: duration(2_000) });
          return r.acquired ? r : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    await otherClient.unlock({ namespace: "mix-switch", name: "n", lockId: l.lockId });
    await other.waitForLog((line) => String(line.msg).startsWith("lock backends agree again"));
  });

  /** 0 when the Postgres-lock replica serves, 1 when the Redlock one does (a try-once Lock on each). */
  async function whichServes(): Promise<number> {
    const results = await Promise.allSettled(
      clients.map((c) => c.lock({ namespace: "mix-probe", name: `p-${Math.random()}`, ttl: duration(1_000) })),
    );
    const ok = results.flatMap((r, i) => (r.status === "fulfilled" && r.value.acquired ? [i] : []));
    assert.equal(ok.length, 1, `exactly one replica grants locks: ${JSON.stringify(results.map((r) => r.status))}`);
    return ok[0]!;
  }
});

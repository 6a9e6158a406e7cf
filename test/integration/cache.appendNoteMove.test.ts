/**
 * Guarantee 3 for an append whose namespace's cache epoch moves between the
 * append's commit and the note of its revision (CacheEpoch.noteRevision,
 * sql/cache_change_wait.sql). The append's statement counts the wait for the
 * leases on epochs moves replaced before it committed (migrations/0020), not
 * for a move committed after it; if its replica reads that move before it
 * notes the revision, the note lands in the new epoch while a replica whose
 * lease predates the move still serves the old one, where the namespace's
 * known revision is below the append: a Get there, after the append was
 * acknowledged, reported a revision older than the append.
 *
 * The race needs the append's reply to be overtaken by a lease read on
 * another connection; here the replica Y is built in this process (its real
 * cache, on the run's Redis and the cluster's database) and the steps are
 * taken in the race's order: Y reads its namespace's key base, the append
 * commits, the epoch moves (right after a lease read of Z, a server process
 * leasing for 6 s), Y reads the new epoch, and only then is the revision
 * noted, as the service does before acknowledging the append. A Get through
 * Z must then report at least the append's revision. With the key base
 * ignored (the note taken as is), Z reported the revision from before the
 * append.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Pool } from "pg";
import { buildKvStore, type BuiltKvStore } from "../../src/compose/buildKvStore";
import { loadConfig } from "../../src/config/config";
import { Logger } from "../../src/log/Logger";
import { createPool } from "../../src/store/postgres/createPool";
import { PostgresCacheEpochStore } from "../../src/store/postgres/PostgresCacheEpochStore";
import { PostgresEventStore } from "../../src/store/postgres/PostgresEventStore";
import { PostgresKvStore } from "../../src/store/postgres/PostgresKvStore";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { ownerLeaseUntil as ownerLeaseUntilIn } from "../support/ownerLeaseUntil";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster, type Replica } from "../support/startCluster";

const NS = "notemove";

describe("cache: an epoch move between an append's commit and its note (issue 15)", function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;
  let z: Replica; // a server process with a long lease: serves the replaced epoch for a while
  let pool: Pool | undefined;
  let y: BuiltKvStore | undefined; // this process's cache, leasing for 0.6 s
  let events: PostgresEventStore;

  before(async function () {
    this.timeout(120_000);
    const env = { AGENTSTATE_CACHE_MARKER_TTL_MS: "3000", AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000" };
    cluster = await startCluster({ name: "notemove", redis: true, replicas: 0, env });
    z = await cluster.addReplica({ AGENTSTATE_CACHE_LEASE_MS: "6000" });
    const config = loadConfig({ ...cluster.env, AGENTSTATE_CACHE_LEASE_MS: "600", LOG_LEVEL: "warn" });
    pool = createPool({ connectionString: cluster.databaseUrl, max: 4, statementTimeoutMs: 1000 });
    const log = new Logger("warn");
    y = await buildKvStore(
      config,
      { kv: new PostgresKvStore(pool), cacheEpochs: new PostgresCacheEpochStore(pool) },
      log,
    );
    events = new PostgresEventStore(pool);
  });

  after(async () => {
    await y?.close();
    await pool?.end();
    await cluster?.stop();
  });

  const ownerLeaseUntil = () => ownerLeaseUntilIn(cluster!.databaseUrl);

  it("the note waits out the leases on the replaced epoch: a Get through the other replica reports the append", async () => {
    await z.client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("v") });
    await eventually(
      "a cache hit on Z",
      async () => {
        const before = await cacheReads(z.server);
        await z.client.get({ namespace: NS, key: "k" });
        return (await cacheReads(z.server)).hit > before.hit;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const cached = (await z.client.get({ namespace: NS, key: "k" })).header!.revision;
    // Right after one of Z's lease reads (every 2 s), so Z serves the replaced epoch for 2 s more at least.
    const first = await ownerLeaseUntil();
    await eventually("a lease read by Z", async () => (await ownerLeaseUntil()) !== first, {
      timeoutMs: 30_000,
      intervalMs: 20,
    });
    const keyBase = y!.keyBase(NS);
    assert.ok(keyBase !== undefined, "the in-process replica has a cache");
    const appended = await events.append({
      namespace: NS,
      stream: "s",
      expected: { kind: "any" },
      events: [{ id: randomUUID(), type: "t", data: Buffer.from("e"), metadata: {} }],
      fence: undefined,
    });
    assert.ok(appended.applied && appended.revision > cached);
    await pgQuery(cluster!.databaseUrl, "SELECT * FROM agentstate_cache_move($1, false)", [NS]);
    await eventually("Y has read the move", async () => y!.keyBase(NS) !== keyBase, {
      timeoutMs: 5000,
      intervalMs: 20,
    });
    const t0 = performance.now();
    await y!.noteRevision(NS, appended.revision, appended.cacheWaitMs, keyBase);
    const heldMs = performance.now() - t0;
    const got = (await z.client.get({ namespace: NS, key: "k" })).header!.revision;
    assert.ok(
      got >= appended.revision,
      `Get on Z reported revision ${got} after an append at ${appended.revision} was acknowledged (note held ${Math.round(heldMs)} ms)`,
    );
  });
});

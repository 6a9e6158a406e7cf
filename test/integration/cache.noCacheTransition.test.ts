/**
 * The epoch's owner changing while a replica without a cache writes
 * (issue 19; compose/NoCacheRegistration.ts). A replica without a cache
 * keeps its "none" registration live, so no cache may own the epoch; when it
 * lapses (the replica paused, partitioned, slow), a cached replica takes the
 * epoch and serves hits, and when it is live again its renewal revokes the
 * owner. A write of the cacheless replica must never be visible on Postgres
 * (its own Gets) while the owner's replicas still serve the value it
 * replaced from their cache: so it moves the epoch and waits out the owner's
 * leases (or, when the owner was revoked already, its quiet time) before it
 * is made (fenceChange first), not after its commit.
 *
 * Both transitions are forced at a chosen moment, with one reader going
 * round the two replicas: after any Get has returned the new value, no Get
 * may return the old one.
 * - The cached replica takes the epoch while the cacheless replica is
 *   stopped (SIGSTOP) with a write queued: the write is taken up the moment
 *   it resumes, its registration lapsed (the truth is asked).
 * - The reverse: the cacheless replica resumes with no write, its renewal
 *   revokes the owner, and a write comes at once, on the fast path (its
 *   registration live, the epoch ownerless): it waits out the replaced
 *   owner's quiet time.
 */
import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import { checkReads, readAcrossWrite } from "../support/readsAcrossWrite";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

const NS = "transition";
const LEASE_MS = 1000;

describe("cache: the epoch's owner changes while a replica without a cache writes (issue 19)", function () {
  this.timeout(240_000);
  let databaseUrl: string;
  let cached: ServerProcess | undefined;
  let bare: ServerProcess | undefined;
  let c: AgentstateClient; // through the cached replica
  let n: AgentstateClient; // through the replica without a cache

  before(async () => {
    const env = await getTestEnv();
    databaseUrl = await env.freshDatabase("transition");
    const common = {
      DATABASE_URL: databaseUrl,
      REDLOCK_URLS: "",
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "3000",
      AGENTSTATE_CACHE_LEASE_MS: String(LEASE_MS),
      AGENTSTATE_REDIS_TIMEOUT_MS: "200",
    };
    [cached, bare] = await Promise.all([
      ServerProcess.start({ ...common, REDIS_URL: env.redis.url, AGENTSTATE_REDIS_PREFIX: env.redisPrefix() }),
      ServerProcess.start({ ...common, REDIS_URL: "" }),
    ]);
    c = new AgentstateClient(cached.address);
    n = new AgentstateClient(bare.address);
  });

  after(async () => {
    c?.close();
    n?.close();
    if (bare?.pid !== undefined) process.kill(bare.pid, "SIGCONT");
    await Promise.all([cached?.stop(), bare?.stop()].map((p) => p?.catch(() => undefined)));
  });

  const owner = async () =>
    (await pgQuery<{ cache_owner: string | null }>(databaseUrl, "SELECT cache_owner FROM agentstate_state"))[0]!
      .cache_owner;

  /**
   * Stops the cacheless replica until the cached one owns the epoch and
   * serves `key` ("old") from the cache; `whileStopped` runs just before it
   * resumes.
   */
  async function cachedReplicaTakesOver(key: string, whileStopped: () => Promise<void>): Promise<void> {
    await n.compareAndSet({ namespace: NS, key, expected: { any: true }, value: Buffer.from("old") });
    assert.equal(await owner(), null, "no owner while the cacheless replica's registration is live");
    const pid = bare!.pid!;
    process.kill(pid, "SIGSTOP");
    try {
      await eventually(
        "the cached replica serving hits",
        async () => {
          const before = await cacheReads(cached!);
          const g = await c.get({ namespace: NS, key });
          assert.equal(g.item?.value.toString(), "old");
          return (await cacheReads(cached!)).hit > before.hit;
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      assert.notEqual(await owner(), null, "the cached replica owns the epoch");
      await whileStopped();
    } finally {
      process.kill(pid, "SIGCONT");
    }
  }

  it("the cached replica takes the epoch while the cacheless one is stopped with a write queued", async () => {
    let write: Promise<unknown> | undefined;
    await cachedReplicaTakesOver("queued", async () => {
      // Sent while it is stopped: taken up the moment it resumes, its registration lapsed.
      write = n.compareAndSet({ namespace: NS, key: "queued", expected: { any: true }, value: Buffer.from("new") });
      await sleep(100);
    });
    checkReads(await readAcrossWrite(write!, { bare: n, cached: c }, NS, "queued"));
  });

  it("the reverse: the cacheless replica's renewal revokes the owner, and its write comes at once (fast path)", async () => {
    await cachedReplicaTakesOver("revoked", async () => undefined);
    // Its first renewal after resuming revokes the owner; the write follows at once.
    await eventually("the owner revoked", async () => (await owner()) === null, { timeoutMs: 10_000, intervalMs: 5 });
    await sleep(20); // the renewal's reply read by the replica: its registration live, the epoch ownerless
    const write = n.compareAndSet({
      namespace: NS,
      key: "revoked",
      expected: { any: true },
      value: Buffer.from("new"),
    });
    checkReads(await readAcrossWrite(write, { bare: n, cached: c }, NS, "revoked"));
  });
});

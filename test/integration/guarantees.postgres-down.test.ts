/**
 * Guarantee 7, deterministically: with Postgres down, every write answers
 * UNAVAILABLE within its deadline (never INTERNAL, never a hang, and the
 * server keeps running); a Get answers the latest acknowledged value or
 * UNAVAILABLE. Once Postgres is back on the same port and data directory,
 * writes succeed again without restarting the server, and nothing that was
 * acknowledged before the outage is lost (guarantee 1).
 *
 * A Postgres of this file's own serves two deployments, each on its own
 * database: a server with the Redis cache and Redlock locks (fencing tokens
 * still come from Postgres), and one without Redis (locks kept in Postgres:
 * the embedded default's shape). Postgres goes down twice: killed with
 * SIGKILL (crash recovery on restart), then stopped cleanly (fast shutdown).
 */
import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { Consistency } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import type { Fence } from "../../clients/typescript/src/gen/agentstate/v1/common";
import { eventually } from "../support/eventually";
import { duration } from "../support/lockClients";
import { PostgresProcess, type PgStopSignal } from "../support/PostgresProcess";
import { settle } from "../support/settle";
import { startCluster, type Cluster, type Replica } from "../support/startCluster";

const NS = "g7pgdown";
const CALL_DEADLINE_MS = 15_000;
const LOCK_TTL_MS = 60_000;

/** One deployment shape: its server, and everything acknowledged through it so far. */
interface Shape {
  label: string;
  replica: Replica;
  kv: Map<string, Acked>;
  /** Acknowledged event ids per stream, in order. */
  streams: Map<string, string[]>;
  /** Highest fencing token returned per lock name. */
  tokens: Map<string, number>;
}

interface HeldLock {
  name: string;
  lockId: string;
  fence: Fence;
}

/** What a key was last acknowledged as (version 0: absent). */
interface Acked {
  version: number;
  value: string | undefined;
}

describe("guarantee 7: with Postgres down, writes answer UNAVAILABLE; once it is back, they succeed", function () {
  this.timeout(180_000);
  let pg: PostgresProcess | undefined;
  const clusters: Cluster[] = [];
  let shapes: Shape[] = [];

  before(async () => {
    pg = await PostgresProcess.start();
    // A separate database each: a server without the cache must not write
    // under cached servers (it would not invalidate their cache).
    await Promise.all([pg.createDatabase("g7_cached"), pg.createDatabase("g7_pglocks")]);
    const env = {
      // Short timings so cache epochs mature and markers expire quickly; the protocol is the same.
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
    };
    clusters.push(await startCluster({ databaseUrl: pg.url("g7_cached"), redis: true, env }));
    clusters.push(await startCluster({ databaseUrl: pg.url("g7_pglocks"), redis: false, env }));
    const shape = (label: string, c: Cluster): Shape => ({
      label,
      replica: { server: c.servers[0]!, client: c.clients[0]! },
      kv: new Map(),
      streams: new Map(),
      tokens: new Map(),
    });
    shapes = [shape("cache+redlock", clusters[0]!), shape("postgres-locks", clusters[1]!)];
    const listening = (s: Shape) => s.replica.server.logs().find((l) => l["msg"] === "listening") ?? {};
    assert.deepEqual(
      shapes.map((s) => [listening(s)["cache"], listening(s)["locks"]]),
      [
        ["redis", "redlock(1)"],
        ["off", "postgres"],
      ],
      "the replicas run the two deployment shapes",
    );
  });

  after(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
    await pg?.destroy();
  });

  const deadline = { deadlineMs: CALL_DEADLINE_MS };

  async function put(s: Shape, key: string, value: string): Promise<void> {
    const r = await s.replica.client.compareAndSet(
      { namespace: NS, key, expected: { any: true }, value: Buffer.from(value) },
      deadline,
    );
    assert.equal(r.applied, true);
    s.kv.set(key, { version: r.item!.version, value });
  }

  async function append(s: Shape, stream: string, type: string, fence?: Fence): Promise<void> {
    const r = await s.replica.client.appendEvent(NS, stream, [{ type }], "any", { ...deadline, retries: 0, fence });
    assert.equal(r.applied, true);
    s.streams.set(stream, [...(s.streams.get(stream) ?? []), ...r.eventIds]);
  }

  async function lock(s: Shape, name: string): Promise<HeldLock> {
    const r = await s.replica.client.lock({ namespace: NS, name, ttl: duration(LOCK_TTL_MS), owner: "g7" }, deadline);
    assert.equal(r.acquired, true, `lock ${name} acquired`);
    const before = s.tokens.get(name) ?? 0;
    assert.ok(r.fencingToken > before, `lock ${name}: token ${r.fencingToken} > every earlier token (${before})`);
    s.tokens.set(name, r.fencingToken);
    return { name, lockId: r.lockId, fence: { lockName: name, token: r.fencingToken } };
  }

  /** Acknowledged writes of every kind through `s`, before an outage; returns a lock it holds. */
  async function writeBefore(s: Shape, tag: string): Promise<HeldLock> {
    await put(s, `k-${s.label}`, `${tag}-before`);
    await put(s, `d-${s.label}-${tag}`, "to delete");
    await append(s, `s-${s.label}`, `${tag}-before`);
    const held = await lock(s, `l-${s.label}`);
    const fenced = await s.replica.client.compareAndSet(
      { namespace: NS, key: `f-${s.label}`, expected: { any: true }, value: Buffer.from(tag), fence: held.fence },
      deadline,
    );
    assert.equal(fenced.applied, true);
    s.kv.set(`f-${s.label}`, { version: fenced.item!.version, value: tag });
    return held;
  }

  /** Every write RPC through `s`; returns the outcomes that were not UNAVAILABLE. */
  async function writesDuringOutage(s: Shape, held: HeldLock, tag: string): Promise<string[]> {
    const c = s.replica.client;
    const k = `k-${s.label}`;
    const d = `d-${s.label}-${tag}`;
    const value = Buffer.from(`${tag}-during`);
    const calls: [string, () => Promise<unknown>][] = [
      ["CompareAndSet any", () => c.compareAndSet({ namespace: NS, key: k, expected: { any: true }, value }, deadline)],
      [
        "CompareAndSet version",
        () => c.compareAndSet({ namespace: NS, key: k, expected: { version: s.kv.get(k)!.version }, value }, deadline),
      ],
      [
        "CompareAndSet absent",
        () => c.compareAndSet({ namespace: NS, key: `new-${tag}`, expected: { absent: true }, value }, deadline),
      ],
      [
        "CompareAndSet idempotent",
        () =>
          c.compareAndSet(
            { namespace: NS, key: k, expected: { any: true }, value, idempotencyKey: `idem-${s.label}-${tag}` },
            deadline,
          ),
      ],
      ["Delete", () => c.delete({ namespace: NS, key: d, expected: { version: s.kv.get(d)!.version } }, deadline)],
      [
        "AppendEvent",
        () => c.appendEvent(NS, `s-${s.label}`, [{ type: `${tag}-during` }], "any", { ...deadline, retries: 0 }),
      ],
      ["Lock", () => c.lock({ namespace: NS, name: `new-${s.label}-${tag}`, ttl: duration(LOCK_TTL_MS) }, deadline)],
      [
        "Lock with a wait",
        () =>
          c.lock(
            { namespace: NS, name: `new-${s.label}-${tag}`, ttl: duration(LOCK_TTL_MS), wait: duration(3_000) },
            deadline,
          ),
      ],
      [
        "RenewLock",
        () =>
          c.renewLock({ namespace: NS, name: held.name, lockId: held.lockId, ttl: duration(LOCK_TTL_MS) }, deadline),
      ],
      [
        "fenced CompareAndSet",
        () =>
          c.compareAndSet(
            { namespace: NS, key: `f-${s.label}`, expected: { any: true }, value, fence: held.fence },
            deadline,
          ),
      ],
      [
        "fenced Delete",
        () => c.delete({ namespace: NS, key: `f-${s.label}`, expected: { any: true }, fence: held.fence }, deadline),
      ],
      [
        "fenced AppendEvent",
        () =>
          c.appendEvent(NS, `s-${s.label}`, [{ type: `${tag}-during` }], "any", {
            ...deadline,
            retries: 0,
            fence: held.fence,
          }),
      ],
      ["Unlock", () => c.unlock({ namespace: NS, name: held.name, lockId: held.lockId }, deadline)],
    ];
    const wrong: string[] = [];
    for (const [name, call] of calls) {
      const r = await settle(call());
      if ("ok" in r) wrong.push(`${s.label} ${name}: answered OK ${JSON.stringify(r.ok)}`);
      else if (r.err.code !== status.UNAVAILABLE)
        wrong.push(`${s.label} ${name}: ${status[r.err.code] ?? r.err.code}: ${r.err.details}`);
    }
    return wrong;
  }

  /** Gets through `s` (cached and from the database) of every key: the acknowledged state, or UNAVAILABLE if `down`. */
  async function readsMatch(s: Shape, down: boolean): Promise<string[]> {
    const wrong: string[] = [];
    for (const [key, want] of s.kv) {
      for (const consistency of [Consistency.CONSISTENCY_LINEARIZABLE, Consistency.CONSISTENCY_DATABASE]) {
        const r = await settle(s.replica.client.get({ namespace: NS, key, consistency }, deadline));
        const what = `${s.label} Get ${key} (${Consistency[consistency]})`;
        if ("err" in r) {
          if (!down || r.err.code !== status.UNAVAILABLE)
            wrong.push(`${what}: ${status[r.err.code] ?? r.err.code}: ${r.err.details}`);
          continue;
        }
        const got: Acked = r.ok.found
          ? { version: r.ok.item!.version, value: Buffer.from(r.ok.item!.value).toString() }
          : { version: 0, value: undefined };
        if (got.version !== want.version || got.value !== want.value)
          wrong.push(`${what}: ${JSON.stringify(got)}, acknowledged ${JSON.stringify(want)}`);
      }
    }
    return wrong;
  }

  async function streamsMatch(s: Shape): Promise<string[]> {
    const wrong: string[] = [];
    for (const [stream, ids] of s.streams) {
      const got: string[] = [];
      for await (const e of s.replica.client.readStream(NS, stream, deadline)) got.push(e.id);
      if (JSON.stringify(got) !== JSON.stringify(ids))
        wrong.push(`${s.label} ReadStream ${stream}: ${got.length} events, acknowledged ${ids.length} (or other ids)`);
    }
    return wrong;
  }

  function assertRunning(): void {
    for (const s of shapes) {
      assert.equal(s.replica.server.running, true, `${s.label} replica crashed:\n${s.replica.server.tail(30)}`);
    }
  }

  async function outage(signal: PgStopSignal, tag: string): Promise<void> {
    assert.ok(pg);
    const held = new Map<string, HeldLock>();
    for (const s of shapes) held.set(s.label, await writeBefore(s, tag));

    await pg.stop(signal);
    for (const s of shapes) {
      assert.deepEqual(await writesDuringOutage(s, held.get(s.label)!, tag), [], "every write answers UNAVAILABLE");
      assert.deepEqual(await readsMatch(s, true), [], "a Get answers the acknowledged state or UNAVAILABLE");
    }
    assertRunning();

    const port = pg.port;
    await pg.restart();
    assert.equal(pg.port, port);
    // Nothing acknowledged was lost (reads may fail until the pools reconnect).
    for (const s of shapes) {
      await eventually(
        `${s.label}: reads after the restart`,
        async () => {
          const wrong = [...(await readsMatch(s, false)), ...(await streamsMatch(s))];
          assert.deepEqual(wrong, [], "after the restart, every acknowledged write is there");
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    }

    // Writes succeed again, through the same server processes.
    for (const s of shapes) {
      const c = s.replica.client;
      const k = `k-${s.label}`;
      const before = s.kv.get(k)!.version;
      await eventually(
        `${s.label}: a CompareAndSet after the restart`,
        async () => {
          await put(s, k, `${tag}-after`);
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      // No write of the outage landed: the next version is the one after the last acknowledged.
      assert.equal(s.kv.get(k)!.version, before + 1);

      const d = `d-${s.label}-${tag}`;
      const del = await c.delete({ namespace: NS, key: d, expected: { version: s.kv.get(d)!.version } }, deadline);
      assert.equal(del.applied, true);
      s.kv.set(d, { version: 0, value: undefined });
      await append(s, `s-${s.label}`, `${tag}-after`);

      const old = held.get(s.label)!;
      const renewed = await c.renewLock(
        { namespace: NS, name: old.name, lockId: old.lockId, ttl: duration(LOCK_TTL_MS) },
        deadline,
      );
      assert.equal(renewed.fencingToken, old.fence.token);
      const unlocked = await c.unlock({ namespace: NS, name: old.name, lockId: old.lockId }, deadline);
      assert.equal(unlocked.released, true);
      const next = await lock(s, old.name); // a token above every earlier one: tokens survived the outage
      const fenced = await c.compareAndSet(
        {
          namespace: NS,
          key: `f-${s.label}`,
          expected: { any: true },
          value: Buffer.from(`${tag}-after`),
          fence: next.fence,
        },
        deadline,
      );
      assert.equal(fenced.applied, true);
      s.kv.set(`f-${s.label}`, { version: fenced.item!.version, value: `${tag}-after` });
      await append(s, `s-${s.label}`, `${tag}-after-fenced`, next.fence);
      await settle(
        c.compareAndSet({ namespace: NS, key: `f-${s.label}`, expected: { any: true }, fence: old.fence }, deadline),
      ).then((r) => assert.ok("err" in r && r.err.code === status.FAILED_PRECONDITION, "the old token is refused"));
      assert.equal((await c.unlock({ namespace: NS, name: next.name, lockId: next.lockId }, deadline)).released, true);
    }
    for (const s of shapes) {
      assert.deepEqual([...(await readsMatch(s, false)), ...(await streamsMatch(s))], [], "reads after the new writes");
    }
    assertRunning();
  }

  it("Postgres killed (SIGKILL): writes answer UNAVAILABLE; after crash recovery they succeed and nothing acknowledged is lost", async () => {
    await outage("SIGKILL", "kill");
  });

  it("Postgres stopped cleanly (fast shutdown): writes answer UNAVAILABLE; after the restart they succeed and nothing acknowledged is lost", async () => {
    await outage("SIGINT", "stop");
  });
});

/**
 * The lock conformance suite (lockConformanceSuite) and its scenarios, run
 * against the Redlock and the Postgres lock backends by
 * test/integration/locks.*.test.ts. Both backends promise the same
 * semantics, so the same scenarios run against both: each takes a context of
 * two (or more) live server replicas with one lock client and one KV client
 * per replica, and asserts outcomes only (never timings).
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import type { Item } from "../../clients/typescript/src/gen/agentstate/v1/common";
import type { Expected } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import type { LockResponse } from "../../clients/typescript/src/gen/agentstate/v1/lock";
import { expectGrpcError } from "./expectGrpcError";
import { duration, LockClient } from "./lockClients";
import { Client } from "pg";
import { pgQuery } from "./pgQuery";
import type { ServerProcess } from "./ServerProcess";
import { startCluster, type Cluster } from "./startCluster";

export interface LockTestContext {
  databaseUrl: string;
  /** At least two replicas; locks[i] and kvs[i] talk to servers[i]. */
  servers: ServerProcess[];
  locks: LockClient[];
  kvs: AgentstateClient[];
}

export const utf8 = (s: string) => Buffer.from(s, "utf8");
export const text = (item: Item | undefined) => Buffer.from(item?.value ?? new Uint8Array()).toString("utf8");

/** A lock id in the server's format that was never issued. */
export function madeUpLockId(token = 1): string {
  return `${randomBytes(16).toString("hex")}.${token}`;
}

export function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  assert.ok(x !== undefined, `index ${i} out of range (length ${xs.length})`);
  return x;
}

export function assertAcquired(r: LockResponse, what: string): LockResponse & { expireTime: Date } {
  assert.equal(r.acquired, true, `${what}: expected to acquire, got ${JSON.stringify(r)}`);
  assert.ok(r.lockId !== "", `${what}: lock_id is set`);
  assert.ok(Number.isSafeInteger(r.fencingToken) && r.fencingToken >= 1, `${what}: fencing token >= 1`);
  assert.ok(r.expireTime instanceof Date, `${what}: expire_time is set`);
  assert.ok(r.header && r.header.revision >= 0, `${what}: header is set`);
  return r as LockResponse & { expireTime: Date };
}

export function expectNotHeld(call: Promise<unknown>): Promise<ServiceError> {
  return expectGrpcError(call, status.FAILED_PRECONDITION, { reason: "LOCK_NOT_HELD" });
}

export function expectFenceStale(call: Promise<unknown>): Promise<ServiceError> {
  return expectGrpcError(call, status.FAILED_PRECONDITION, { reason: "FENCE_STALE" });
}

/** Asserts the lock is held by someone else right now (a try-once Lock fails) and returns the holder's owner. */
export async function assertHeld(probe: LockClient, namespace: string, name: string): Promise<string> {
  const r = await probe.lock({ namespace, name, ttl: duration(10_000), owner: "probe" });
  if (r.acquired) {
    await probe.unlock({ namespace, name, lockId: r.lockId }).catch(() => undefined);
    assert.fail(`lock ${namespace}/${name} should be held, but a try-once Lock acquired it (token ${r.fencingToken})`);
  }
  return r.holderOwner;
}

/** Asserts the lock is free right now: a try-once Lock acquires it. Releases it again; returns its token. */
export async function assertFree(probe: LockClient, namespace: string, name: string): Promise<number> {
  const r = await probe.lock({ namespace, name, ttl: duration(10_000), owner: "probe" });
  assertAcquired(r, `try-once Lock of ${namespace}/${name} (should be free)`);
  const u = await probe.unlock({ namespace, name, lockId: r.lockId });
  assert.equal(u.released, true);
  return r.fencingToken;
}

export interface HistoryRow {
  revision: number;
  op: number;
  version: number;
  value: string | null;
}

/** The key's rows in kv_history (the truth in Postgres), oldest first. */
export async function history(databaseUrl: string, namespace: string, key: string): Promise<HistoryRow[]> {
  const rows = await pgQuery<{ revision: string; op: number; version: string; value: Buffer | null }>(
    databaseUrl,
    "SELECT revision, op, version, value FROM kv_history WHERE namespace = $1 AND key = $2 ORDER BY revision",
    [namespace, utf8(key)],
  );
  return rows.map((r) => ({
    revision: Number(r.revision),
    op: r.op,
    version: Number(r.version),
    value: r.value === null ? null : r.value.toString("utf8"),
  }));
}

/** The last fencing token Postgres issued for a lock name (0 when none). */
export async function lastToken(databaseUrl: string, namespace: string, name: string): Promise<number> {
  const rows = await pgQuery<{ last_token: string }>(
    databaseUrl,
    "SELECT last_token FROM fencing_tokens WHERE namespace = $1 AND name = $2",
    [namespace, name],
  );
  return rows[0] ? Number(rows[0].last_token) : 0;
}

/**
 * Starts the two replicas a lock suite runs against (startCluster with
 * `env`: AGENTSTATE_METRICS_PORT=0, for two replicas on one host), checks
 * from each one's "listening" line that it keeps its locks in `locks` with
 * the cache off, and fills `ctx`.
 */
export async function startLockReplicas(
  ctx: LockTestContext,
  opts: { name: string; env: Record<string, string>; locks: string },
): Promise<Cluster> {
  const cluster = await startCluster({
    replicas: 2,
    name: opts.name,
    env: { ...opts.env, AGENTSTATE_METRICS_PORT: "0" },
  });
  for (const s of cluster.servers) {
    const line = await s.waitForLog((l) => l.msg === "listening");
    assert.equal(line.locks, opts.locks, `the replica keeps its locks in ${opts.locks}`);
    assert.equal(line.cache, "off");
  }
  ctx.databaseUrl = cluster.databaseUrl;
  ctx.servers = cluster.servers;
  ctx.kvs = cluster.clients;
  ctx.locks = cluster.servers.map((s) => new LockClient(s.address));
  return cluster;
}

// ------------------------------------------------------------------ scenarios

/**
 * `workers` clients each increment a counter `increments` times under the
 * lock: Lock (waiting), Get, CompareAndSet(expected=any, fence), Unlock. The
 * write is unconditional, so only the lock keeps increments from being lost.
 * Worker w takes locks through replica w % n and reads/writes through replica
 * floor(w / n) % n, so every combination of replicas is used.
 */
export async function counterUnderLock(
  ctx: LockTestContext,
  opts: { namespace: string; workers: number; increments: number; ttlMs: number },
): Promise<void> {
  const { namespace, workers, increments, ttlMs } = opts;
  const name = "counter-lock";
  const key = "counter";
  const n = ctx.servers.length;
  const records: { seen: number; token: number; worker: number }[] = [];

  const worker = async (w: number) => {
    const locks = at(ctx.locks, w % n);
    const kv = at(ctx.kvs, Math.floor(w / n) % n);
    for (let i = 0; i < increments; i++) {
      const l = await locks.lock(
        { namespace, name, ttl: duration(ttlMs), wait: duration(120_000), owner: `worker-${w}` },
        { deadlineMs: 150_000 },
      );
      assertAcquired(l, `worker ${w} increment ${i}`);
      const g = await kv.get({ namespace, key });
      const seen = g.found ? Number(text(g.item)) : 0;
      assert.ok(Number.isInteger(seen), `counter holds an integer, got ${text(g.item)}`);
      const w1 = await kv.compareAndSet({
        namespace,
        key,
        expected: { any: true },
        value: utf8(String(seen + 1)),
        fence: { lockName: name, token: l.fencingToken },
      });
      assert.equal(w1.applied, true, "a fenced write by the current holder applies");
      records.push({ seen, token: l.fencingToken, worker: w });
      const u = await locks.unlock({ namespace, name, lockId: l.lockId });
      assert.equal(u.released, true, `worker ${w} releases its lock`);
    }
  };

  // allSettled: never leave workers running into the next test.
  const results = await Promise.allSettled(Array.from({ length: workers }, (_, w) => worker(w)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;

  const total = workers * increments;
  const final = await at(ctx.kvs, 0).get({ namespace, key });
  assert.equal(final.found, true);
  assert.equal(text(final.item), String(total), "no increment lost or doubled");
  assert.equal(final.item?.version, total, "one version per increment");

  // Each critical section saw a distinct counter value: together exactly 0..total-1.
  // That value is the acquisition's position in the order of holders.
  records.sort((a, b) => a.seen - b.seen);
  assert.equal(records.length, total);
  records.forEach((r, i) => assert.equal(r.seen, i, `critical section #${i} saw counter ${r.seen}`));

  // Fencing tokens: unique, and each holder's greater than the previous holder's.
  assert.equal(new Set(records.map((r) => r.token)).size, total, "fencing tokens are unique");
  for (let i = 1; i < records.length; i++) {
    const prev = at(records, i - 1);
    const cur = at(records, i);
    assert.ok(
      cur.token > prev.token,
      `holder #${i} (worker ${cur.worker}) got token ${cur.token}, not greater than holder #${i - 1}'s ${prev.token}`,
    );
  }
  assert.ok((await lastToken(ctx.databaseUrl, namespace, name)) >= at(records, total - 1).token);

  const hist = await history(ctx.databaseUrl, namespace, key);
  assert.equal(hist.length, total, "one history row per increment");
  hist.forEach((h, i) => assert.deepEqual([h.op, h.version, h.value], [1, i + 1, String(i + 1)]));
}

/**
 * A holder pauses past its TTL; another replica's waiter takes the lock with a
 * newer token and writes; the paused holder's late writes (CompareAndSet and
 * Delete with its old fence) are refused FENCE_STALE and nothing of them lands.
 */
export async function pausedHolder(ctx: LockTestContext, namespace: string): Promise<void> {
  const name = "paused-lock";
  const key = "paused-key";
  const [lockA, lockB] = [at(ctx.locks, 0), at(ctx.locks, 1)];
  const [kvA, kvB] = [at(ctx.kvs, 0), at(ctx.kvs, 1)];

  // A fenced CompareAndSet of the key by `holder`, through `kv`.
  const write = (kv: AgentstateClient, holder: LockResponse, expected: Expected, value: string) =>
    kv.compareAndSet({
      namespace,
      key,
      expected,
      value: utf8(value),
      fence: { lockName: name, token: holder.fencingToken },
    });

  const a = assertAcquired(await lockA.lock({ namespace, name, ttl: duration(500), owner: "A" }), "A");
  const early = await write(kvA, a, { absent: true }, "A-early");
  assert.equal(early.applied, true, "A writes while it holds the lock");

  // A now "pauses" (never renews). B waits on the other replica and gets the lock once A's expires.
  const b = assertAcquired(
    await lockB.lock({ namespace, name, ttl: duration(10_000), wait: duration(20_000), owner: "B" }),
    "B after A expired",
  );
  assert.ok(b.fencingToken > a.fencingToken, `B's token ${b.fencingToken} > A's ${a.fencingToken}`);
  const wb = await write(kvB, b, { any: true }, "B");
  assert.equal(wb.applied, true, "B's fenced write applies");

  // A wakes up and writes late with its old token, through either replica.
  await expectFenceStale(write(kvA, a, { any: true }, "A-late"));
  await expectFenceStale(write(kvB, a, { version: 2 }, "A-late-2"));
  await expectFenceStale(
    kvA.delete({ namespace, key, expected: { any: true }, fence: { lockName: name, token: a.fencingToken } }),
  );
  // A's lock id is dead too.
  await expectNotHeld(lockA.renewLock({ namespace, name, lockId: a.lockId, ttl: duration(10_000) }));
  await expectNotHeld(lockA.unlock({ namespace, name, lockId: a.lockId }));
  assert.equal(await assertHeld(lockA, namespace, name), "B", "B still holds the lock");

  const got = await kvA.get({ namespace, key });
  assert.equal(got.found, true);
  assert.equal(text(got.item), "B", "the key holds B's value");
  assert.equal(got.item?.version, 2);
  const hist = await history(ctx.databaseUrl, namespace, key);
  assert.deepEqual(
    hist.map((h) => [h.op, h.version, h.value]),
    [
      [1, 1, "A-early"],
      [1, 2, "B"],
    ],
    "kv_history: A's early write and B's write, nothing of A's late writes",
  );

  // B's fence still works after the refused writes, and B releases.
  const wb2 = await kvB.delete({
    namespace,
    key,
    expected: { version: 2 },
    fence: { lockName: name, token: b.fencingToken },
  });
  assert.equal(wb2.applied, true);
  assert.equal((await lockB.unlock({ namespace, name, lockId: b.lockId })).released, true);
}

/** Unlock by a non-holder is refused and the lock stays held; the holder can renew and unlock. */
export async function nonHolderUnlock(ctx: LockTestContext, namespace: string): Promise<void> {
  const name = "nonholder-lock";
  const other = "nonholder-other";
  const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];

  const h = assertAcquired(await l0.lock({ namespace, name, ttl: duration(20_000), owner: "holder" }), "holder");
  const o = assertAcquired(
    await l1.lock({ namespace, name: other, ttl: duration(20_000), owner: "other" }),
    "other lock",
  );

  // A made-up id (right format, never issued), with the holder's token or another.
  await expectNotHeld(l1.unlock({ namespace, name, lockId: madeUpLockId(h.fencingToken) }));
  await expectNotHeld(l0.unlock({ namespace, name, lockId: madeUpLockId(h.fencingToken + 1) }));
  // Another lock's holder presenting its own lock id for this name.
  await expectNotHeld(l1.unlock({ namespace, name, lockId: o.lockId }));
  // The holder's id under another namespace or name does not release it either.
  await expectNotHeld(l1.unlock({ namespace: `${namespace}-x`, name, lockId: h.lockId }));
  // Renew by a non-holder is refused as well.
  await expectNotHeld(l1.renewLock({ namespace, name, lockId: madeUpLockId(), ttl: duration(20_000) }));

  assert.equal(await assertHeld(l1, namespace, name), "holder", "still held by the holder");
  assert.equal(await assertHeld(l0, namespace, other), "other", "the other lock is untouched");

  // The real holder releases; a second release is refused (no longer held).
  assert.equal(
    (await l1.unlock({ namespace, name, lockId: h.lockId })).released,
    true,
    "holder id works on any replica",
  );
  await expectNotHeld(l0.unlock({ namespace, name, lockId: h.lockId }));
  const next = await assertFree(l0, namespace, name);
  assert.ok(next > h.fencingToken);
  assert.equal((await l0.unlock({ namespace, name: other, lockId: o.lockId })).released, true);
}

/** RenewLock keeps a lock beyond its first TTL and keeps its token; renewing an expired lock fails. */
export async function renewAndExpiry(ctx: LockTestContext, namespace: string): Promise<void> {
  const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];

  // Renewed past its first TTL (1 s), the lock stays held.
  const name = "renew-lock";
  const h = assertAcquired(await l0.lock({ namespace, name, ttl: duration(1_000), owner: "renewer" }), "renewer");
  let lastExpiry = h.expireTime.getTime();
  for (let i = 0; i < 4; i++) {
    await sleep(400);
    const r = await (i % 2 === 0 ? l1 : l0).renewLock({ namespace, name, lockId: h.lockId, ttl: duration(1_000) });
    assert.equal(r.fencingToken, h.fencingToken, "renewal keeps the token");
    assert.ok(r.expireTime instanceof Date);
    assert.ok(r.expireTime.getTime() > lastExpiry, "renewal moves the expiry later");
    lastExpiry = r.expireTime.getTime();
  }
  assert.equal(await assertHeld(l1, namespace, name), "renewer", "held past its first TTL thanks to renewals");
  const long = await l0.renewLock({ namespace, name, lockId: h.lockId, ttl: duration(30_000) });
  assert.ok(long.expireTime && long.expireTime.getTime() > Date.now() + 20_000, "renewed for 30 s");
  assert.equal((await l0.unlock({ namespace, name, lockId: h.lockId })).released, true);

  // Expired: renew and unlock are refused, and another client can take it at once.
  const ename = "expire-lock";
  const e = assertAcquired(await l0.lock({ namespace, name: ename, ttl: duration(300), owner: "short" }), "short");
  await sleep(800);
  await expectNotHeld(l0.renewLock({ namespace, name: ename, lockId: e.lockId, ttl: duration(10_000) }));
  const taken = assertAcquired(
    await l1.lock({ namespace, name: ename, ttl: duration(10_000), owner: "taker" }),
    "another client, try-once, after expiry",
  );
  assert.ok(taken.fencingToken > e.fencingToken);
  await expectNotHeld(l0.renewLock({ namespace, name: ename, lockId: e.lockId, ttl: duration(10_000) }));
  await expectNotHeld(l0.unlock({ namespace, name: ename, lockId: e.lockId }));
  assert.equal(
    await assertHeld(l0, namespace, ename),
    "taker",
    "the old holder's calls did not disturb the new holder",
  );
  assert.equal((await l1.unlock({ namespace, name: ename, lockId: taken.lockId })).released, true);
}

/** Waits for the server's "rpc" log line of the call with `requestId` and returns its status code name. */
async function serverOutcome(server: ServerProcess, requestId: string): Promise<string> {
  const line = await server.waitForLog((l) => l.msg === "rpc" && l.request_id === requestId, 15_000);
  return String(line.code);
}

/**
 * A waiter cancelled client-side holds nothing: once the holder releases, a
 * third client gets the lock with a try-once Lock.
 */
export async function cancelledWaiter(ctx: LockTestContext, namespace: string): Promise<void> {
  const name = "cancel-lock";
  const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
  const h = assertAcquired(await l0.lock({ namespace, name, ttl: duration(30_000), owner: "holder" }), "holder");

  const requestId = `cancelled-waiter-${randomBytes(4).toString("hex")}`;
  const waiter = l1.lockCall(
    { namespace, name, ttl: duration(30_000), wait: duration(60_000), owner: "cancelled-waiter" },
    { requestId, deadlineMs: 90_000 },
  );
  // Let the call reach the server and start waiting (the server log below proves it did).
  await sleep(500);
  waiter.call.cancel();
  await expectGrpcError(waiter.result, status.CANCELLED);
  assert.equal(await serverOutcome(at(ctx.servers, 1), requestId), "CANCELLED", "the server ended the waiting call");

  assert.equal((await l0.unlock({ namespace, name, lockId: h.lockId })).released, true);
  // Give a waiter that wrongly kept polling every chance to take the lock.
  await sleep(1_000);
  const third = assertAcquired(
    await at(ctx.locks, 0).lock({ namespace, name, ttl: duration(10_000), owner: "third" }),
    "third client, try-once, after the holder released (the cancelled waiter must hold nothing)",
  );
  assert.ok(third.fencingToken > h.fencingToken);
  assert.equal((await l0.unlock({ namespace, name, lockId: third.lockId })).released, true);
}

/**
 * A waiter whose call deadline passes before the lock frees holds nothing.
 * Its answer is DEADLINE_EXCEEDED, or (DESIGN: "not acquired within wait or
 * the call's deadline -> acquired=false") acquired=false sent just before the
 * deadline; never an acquisition.
 */
export async function deadlineWaiter(ctx: LockTestContext, namespace: string): Promise<string> {
  const name = "deadline-lock";
  const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
  const h = assertAcquired(await l0.lock({ namespace, name, ttl: duration(30_000), owner: "holder" }), "holder");

  const requestId = `deadline-waiter-${randomBytes(4).toString("hex")}`;
  let outcome: string;
  try {
    const r = await l1.lock(
      { namespace, name, ttl: duration(30_000), wait: duration(60_000), owner: "deadline-waiter" },
      { requestId, deadlineMs: 1_500 },
    );
    assert.equal(r.acquired, false, "the waiter must not get a lock that was held throughout");
    assert.equal(r.lockId, "");
    assert.equal(r.holderOwner, "holder", "acquired=false names the holder's owner");
    outcome = "acquired=false";
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    const err = e as ServiceError;
    assert.equal(err.code, status.DEADLINE_EXCEEDED, `expected DEADLINE_EXCEEDED, got ${err.code}: ${err.details}`);
    outcome = "DEADLINE_EXCEEDED";
  }
  const serverCode = await serverOutcome(at(ctx.servers, 1), requestId);
  assert.ok(["OK", "DEADLINE_EXCEEDED", "CANCELLED"].includes(serverCode), `server ended the call: ${serverCode}`);

  assert.equal((await l0.unlock({ namespace, name, lockId: h.lockId })).released, true);
  await sleep(1_000);
  const third = assertAcquired(
    await l0.lock({ namespace, name, ttl: duration(10_000), owner: "third" }),
    "third client, try-once, after the holder released (the timed-out waiter must hold nothing)",
  );
  assert.equal((await l0.unlock({ namespace, name, lockId: third.lockId })).released, true);
  return outcome;
}

/** Bad input answers INVALID_ARGUMENT naming the field, and takes/burns nothing. */
export async function badInput(ctx: LockTestContext, namespace: string): Promise<void> {
  const l = at(ctx.locks, 0);
  const kv = at(ctx.kvs, 1);
  const IA = status.INVALID_ARGUMENT;
  const name = "bad-input-lock";
  const ttl = duration(10_000);

  await expectGrpcError(l.lock({ namespace, name: "", ttl, owner: "x" }), IA, { field: "name" });
  await expectGrpcError(l.lock({ namespace, name: "a\u0000b", ttl, owner: "x" }), IA, { field: "name" });
  await expectGrpcError(l.lock({ namespace: "", name, ttl, owner: "x" }), IA, { field: "namespace" });
  await expectGrpcError(l.lock({ namespace: "Bad NS", name, ttl, owner: "x" }), IA, { field: "namespace" });
  await expectGrpcError(l.lock({ namespace, name, owner: "x" }), IA, { field: "ttl" });
  await expectGrpcError(l.lock({ namespace, name, ttl: { seconds: -1, nanos: 0 }, owner: "x" }), IA, { field: "ttl" });
  await expectGrpcError(l.lock({ namespace, name, ttl: { seconds: 0, nanos: -5 }, owner: "x" }), IA, {
    field: "ttl",
  });
  await expectGrpcError(l.lock({ namespace, name, ttl: { seconds: 0, nanos: 0 }, owner: "x" }), IA, { field: "ttl" });
  await expectGrpcError(l.lock({ namespace, name, ttl, wait: { seconds: -1, nanos: 0 }, owner: "x" }), IA, {
    field: "wait",
  });
  await expectGrpcError(l.lock({ namespace, name, ttl: { seconds: 1e9, nanos: 0 }, owner: "x" }), IA, { field: "ttl" });
  await expectGrpcError(l.lock({ namespace, name, ttl: { seconds: 1, nanos: 1_000_000_000 }, owner: "x" }), IA, {
    field: "ttl",
  });
  await expectGrpcError(l.lock({ namespace, name, ttl, wait: { seconds: 1e9, nanos: 0 }, owner: "x" }), IA, {
    field: "wait",
  });
  await expectGrpcError(l.lock({ namespace, name, ttl, owner: "o".repeat(256) }), IA, { field: "owner" });

  for (const lockId of ["garbage", "", "not.a.lock.id", `${"0".repeat(32)}.0`, `${"g".repeat(32)}.1`]) {
    await expectGrpcError(l.unlock({ namespace, name, lockId }), IA, { field: "lock_id" });
    await expectGrpcError(l.renewLock({ namespace, name, lockId, ttl }), IA, { field: "lock_id" });
  }
  await expectGrpcError(l.unlock({ namespace, name: "", lockId: madeUpLockId() }), IA, { field: "name" });
  await expectGrpcError(l.renewLock({ namespace, name, lockId: madeUpLockId() }), IA, { field: "ttl" });
  await expectGrpcError(l.renewLock({ namespace, name, lockId: madeUpLockId(), ttl: { seconds: -3, nanos: 0 } }), IA, {
    field: "ttl",
  });

  // A fence must name a lock and carry a positive token.
  for (const [fence, field] of [
    [{ lockName: "", token: 1 }, "fence.lock_name"],
    [{ lockName: name, token: 0 }, "fence.token"],
  ] as const) {
    const write = kv.compareAndSet({ namespace, key: "k", expected: { any: true }, value: utf8("v"), fence });
    await expectGrpcError(write, IA, { field });
  }

  // Nothing was taken and no token was burned: the first real acquisition gets token 1.
  const first = assertAcquired(await l.lock({ namespace, name, ttl, owner: "ok" }), "valid Lock after bad ones");
  assert.equal(first.fencingToken, 1, "rejected requests issued no fencing token");
  assert.equal((await l.unlock({ namespace, name, lockId: first.lockId })).released, true);
  assert.equal((await kv.get({ namespace, key: "k" })).found, false, "rejected writes wrote nothing");
}

/** Every lock reply carries a header with its namespace's revision (proto: "Revision this reply reflects."). */
export async function repliesCarryHeaders(ctx: LockTestContext, namespace: string): Promise<void> {
  const l = at(ctx.locks, 0);
  const name = "header-lock";
  const revisionNow = async () => {
    const rows = await pgQuery<{ revision: string }>(
      ctx.databaseUrl,
      "SELECT revision FROM namespace_revisions WHERE namespace = $1",
      [namespace],
    );
    return Number(at(rows, 0).revision);
  };
  // Make the namespace's revision non-zero so an unset header is distinguishable.
  await at(ctx.kvs, 0).compareAndSet({ namespace, key: "rev", expected: { any: true }, value: utf8("x") });
  const rev = await revisionNow();
  assert.ok(rev > 0);

  const a = assertAcquired(await l.lock({ namespace, name, ttl: duration(10_000), owner: "h" }), "header-lock");
  assert.equal(a.header?.revision, rev, "Lock (acquired) reply header");
  const na = await at(ctx.locks, 1).lock({ namespace, name, ttl: duration(10_000), owner: "x" });
  assert.equal(na.acquired, false);
  assert.equal(na.header?.revision, rev, "Lock (not acquired) reply header");
  assert.equal(na.holderOwner, "h", "Lock (not acquired) names the holder's owner");
  // A waiter whose wait runs out (after several attempts) gets the same reply.
  const waited = await at(ctx.locks, 1).lock({
    namespace,
    name,
    ttl: duration(10_000),
    wait: duration(300),
    owner: "x",
  });
  assert.equal(waited.acquired, false);
  assert.equal(waited.header?.revision, rev, "Lock (not acquired after waiting) reply header");
  assert.equal(waited.holderOwner, "h", "Lock (not acquired after waiting) names the holder's owner");
  const r = await l.renewLock({ namespace, name, lockId: a.lockId, ttl: duration(10_000) });
  assert.equal(r.header?.revision, rev, "RenewLock reply header");
  const u = await l.unlock({ namespace, name, lockId: a.lockId });
  assert.equal(u.released, true);
  assert.ok(u.header !== undefined, "Unlock reply has a header");
  assert.equal(u.header.revision, rev, "Unlock reply header");
}

/**
 * A lock id altered in its token part was never returned by Lock: RenewLock
 * and Unlock must refuse it (or at least never report a token that this
 * acquisition does not have).
 */
export async function tamperedLockId(ctx: LockTestContext, namespace: string): Promise<void> {
  const l = at(ctx.locks, 0);
  const name = "tamper-lock";
  const a = assertAcquired(await l.lock({ namespace, name, ttl: duration(10_000), owner: "h" }), "tamper-lock");
  const secret = a.lockId.slice(0, a.lockId.indexOf("."));
  const forged = `${secret}.${a.fencingToken + 41}`;
  let renewedToken: number | undefined;
  try {
    const r = await l.renewLock({ namespace, name, lockId: forged, ttl: duration(10_000) });
    renewedToken = r.fencingToken;
  } catch (e) {
    const err = e as ServiceError;
    assert.ok(
      [status.FAILED_PRECONDITION, status.INVALID_ARGUMENT].includes(err.code),
      `RenewLock with a forged lock id: unexpected ${err.code} ${err.details}`,
    );
  }
  if (renewedToken !== undefined) {
    assert.equal(renewedToken, a.fencingToken, "RenewLock must not report a token this acquisition never had");
  }
  try {
    await l.unlock({ namespace, name, lockId: forged });
  } catch (e) {
    const err = e as ServiceError;
    assert.ok([status.FAILED_PRECONDITION, status.INVALID_ARGUMENT].includes(err.code));
  }
  // Clean up whichever way it went.
  await l.unlock({ namespace, name, lockId: a.lockId }).catch(() => undefined);
}

/**
 * An acquisition that took longer than its TTL (here: issuing its fencing
 * token waited on a row lock held by the test in Postgres) must not be
 * reported as acquired once its lock has expired: a caller told
 * `acquired=true` must actually hold the lock at that moment.
 */
export async function slowGrantNotReportedAsHeld(ctx: LockTestContext, namespace: string): Promise<void> {
  const name = "slow-grant-lock";
  const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
  await assertFree(l0, namespace, name); // the fencing_tokens row now exists
  const blocker = new Client({ connectionString: ctx.databaseUrl });
  blocker.on("error", () => undefined);
  await blocker.connect();
  let reply: LockResponse;
  try {
    await blocker.query("BEGIN");
    await blocker.query("SELECT 1 FROM fencing_tokens WHERE namespace = $1 AND name = $2 FOR UPDATE", [
      namespace,
      name,
    ]);
    const pending = l0.lock({ namespace, name, ttl: duration(500), owner: "slow" });
    // Hold the token row well past the requested TTL (but under the statement timeout).
    await sleep(1_500);
    await blocker.query("COMMIT");
    reply = await pending;
  } finally {
    await blocker.end().catch(() => undefined);
  }
  if (!reply.acquired) return; // refusing a grant that came too late is correct
  // Told "acquired": the lock must be held right now, by this caller.
  const probe = await l1.lock({ namespace, name, ttl: duration(10_000), owner: "probe" });
  if (probe.acquired) await l1.unlock({ namespace, name, lockId: probe.lockId }).catch(() => undefined);
  await l0.unlock({ namespace, name, lockId: reply.lockId }).catch(() => undefined);
  assert.equal(
    probe.acquired,
    false,
    `Lock answered acquired=true (token ${reply.fencingToken}, expire_time ${reply.expireTime?.toISOString()}) for a lock that had already expired: another client took it at once`,
  );
}

/**
 * A lock granted to a caller that has already gone (deadline passed, or call
 * cancelled, while the grant was in progress) is released: the caller's
 * deadline passes while issuing the fencing token waits on a row lock the
 * test holds in Postgres; once the row is free the grant completes for
 * nobody, and a third client must get the lock at once (its TTL is 30 s).
 */
export async function grantForGoneCallerReleased(ctx: LockTestContext, namespace: string): Promise<void> {
  const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
  for (const how of ["deadline", "cancel"] as const) {
    const name = `gone-${how}-lock`;
    await assertFree(l0, namespace, name); // the fencing_tokens row now exists
    const blocker = new Client({ connectionString: ctx.databaseUrl });
    blocker.on("error", () => undefined);
    await blocker.connect();
    const requestId = `gone-${how}-${randomBytes(4).toString("hex")}`;
    try {
      await blocker.query("BEGIN");
      await blocker.query("SELECT 1 FROM fencing_tokens WHERE namespace = $1 AND name = $2 FOR UPDATE", [
        namespace,
        name,
      ]);
      const pending = l1.lockCall(
        { namespace, name, ttl: duration(30_000), owner: `gone-${how}` },
        { requestId, deadlineMs: how === "deadline" ? 1_000 : 60_000 },
      );
      if (how === "deadline") {
        await expectGrpcError(pending.result, status.DEADLINE_EXCEEDED);
      } else {
        await sleep(500);
        pending.call.cancel();
        await expectGrpcError(pending.result, status.CANCELLED);
      }
      // Let the server see the deadline / cancellation too before the grant can complete.
      await sleep(500);
      await blocker.query("COMMIT");
    } finally {
      await blocker.end().catch(() => undefined);
    }
    const code = await serverOutcome(at(ctx.servers, 1), requestId);
    // (grpc-js reports a passed deadline to the handler as a cancellation, so the server may log CANCELLED.)
    const expected = how === "deadline" ? ["DEADLINE_EXCEEDED", "CANCELLED"] : ["CANCELLED"];
    assert.ok(
      expected.includes(code),
      `the server ended the call with ${code}, expected one of ${expected.join(", ")}`,
    );
    const third = assertAcquired(
      await l0.lock({ namespace, name, ttl: duration(10_000), owner: "third" }),
      `third client, try-once, after the grant for the ${how === "deadline" ? "timed-out" : "cancelled"} caller`,
    );
    assert.equal((await l0.unlock({ namespace, name, lockId: third.lockId })).released, true);
  }
}

// ------------------------------------------------------------------ the suite

export interface LockSuiteOptions {
  /** Prefix of each scenario's namespace. */
  namespace: string;
  /** Size of the mutual-exclusion run (counterUnderLock). */
  mutex: { workers: number; increments: number };
}

/**
 * The lock conformance suite: every scenario above as one test, against the
 * backend whose replicas `ctx` holds (the caller's `before` fills it). Call it
 * inside the backend's describe, after its hooks; the backend's own tests
 * follow it there.
 */
export function lockConformanceSuite(ctx: LockTestContext, opts: LockSuiteOptions): void {
  const { workers, increments } = opts.mutex;
  // [title, scenario, suffix of its namespace]
  const scenarios: [string, (ctx: LockTestContext, namespace: string) => Promise<unknown>, string][] = [
    [
      `mutual exclusion: ${workers} clients x ${increments} unconditional increments under the lock end at exactly ${workers * increments}; tokens increase with each holder`,
      (c, namespace) => counterUnderLock(c, { namespace, workers, increments, ttlMs: 10_000 }),
      "mutex",
    ],
    [
      "a paused holder's late writes (CompareAndSet, Delete) are refused FENCE_STALE after another replica took the expired lock",
      pausedHolder,
      "paused",
    ],
    [
      "Unlock by a non-holder (made-up id, another lock's id) is refused LOCK_NOT_HELD and the lock stays held",
      nonHolderUnlock,
      "nonholder",
    ],
    [
      "RenewLock keeps a lock past its TTL; an expired lock cannot be renewed and is taken by another",
      renewAndExpiry,
      "renew",
    ],
    ["a waiter cancelled client-side holds nothing afterwards", cancelledWaiter, "cancel"],
    [
      "a waiter whose deadline passes holds nothing afterwards",
      async (c, namespace) => {
        const outcome = await deadlineWaiter(c, namespace);
        if (process.env.AGENTSTATE_TEST_VERBOSE === "1")
          console.log(`      (the timed-out waiter was answered ${outcome})`);
      },
      "deadline",
    ],
    [
      "a lock granted to a caller whose deadline passed (DEADLINE_EXCEEDED) or who cancelled meanwhile is released",
      grantForGoneCallerReleased,
      "gone",
    ],
    ["every lock reply carries a header with its namespace's revision", repliesCarryHeaders, "header"],
    ["a lock id altered in its token part is refused, never echoed back as a token", tamperedLockId, "tamper"],
    ["an acquisition that outlasted its TTL is not reported as acquired", slowGrantNotReportedAsHeld, "slow"],
    ["bad input answers INVALID_ARGUMENT naming the field and takes nothing", badInput, "bad"],
  ];
  for (const [title, scenario, suffix] of scenarios) {
    it(title, async () => {
      await scenario(ctx, `${opts.namespace}-${suffix}`);
    });
  }
}

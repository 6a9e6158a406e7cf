import * as assert from "node:assert/strict";
import { InterceptingCall, Metadata, status, type Interceptor } from "@grpc/grpc-js";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { durationFromMs } from "../../clients/typescript/src/duration";
import { LockLostError, LockNotAcquiredError } from "../../clients/typescript/src/errors";
import type { Item } from "../../clients/typescript/src/gen/agentstate/v1/common";
import type { CompareAndSetRequest } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { expectGrpcError } from "../support/expectGrpcError";
import { startCluster, type Cluster } from "../support/startCluster";

const text = (item: Item | undefined) => Buffer.from(item?.value ?? new Uint8Array()).toString("utf8");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// The TypeScript client's helpers (update, withLock, put) against two server
// replicas sharing Postgres and Redis (cache and Redlock).
describe("TypeScript client helpers: update, withLock, put against two replicas", function () {
  this.timeout(120_000);
  const NS = "tsclient";
  let cluster: Cluster;
  const client = (i: number) => cluster.clients[i % cluster.clients.length]!;

  before(async () => {
    cluster = await startCluster({ name: "tsclient", replicas: 2, redis: true });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("update(): 10 concurrent updaters x 20 increments through 2 replicas end at exactly 200", async () => {
    const increment = (cur: Item | undefined) => String(cur ? Number(text(cur)) + 1 : 1);
    await Promise.all(
      Array.from({ length: 10 }, async (_, w) => {
        for (let i = 0; i < 20; i++) {
          const r = await client(w).update(NS, "counter", increment);
          assert.equal(r.applied, true);
        }
      }),
    );
    for (const c of cluster.clients) {
      const got = await c.get({ namespace: NS, key: "counter" });
      assert.equal(text(got.item), "200");
      assert.equal(got.item?.version, 200);
    }
  });

  it("update(): fn returning undefined aborts without writing; the content type is kept", async () => {
    const c = client(0);
    await c.put(NS, "abort", "keep", { contentType: "text/plain" });
    const r = await c.update(NS, "abort", (cur) => (text(cur) === "keep" ? undefined : "changed"));
    assert.equal(r.applied, false);
    assert.equal(text(r.item), "keep");
    assert.equal((await c.get({ namespace: NS, key: "abort" })).item?.version, 1);
    const w = await c.update(NS, "abort", () => "changed");
    assert.equal(w.item?.contentType, "text/plain");
    assert.equal(w.item?.version, 2);
  });

  it("withLock(): holders across replicas never overlap; fenced read-modify-writes add up", async () => {
    let active = 0;
    let maxActive = 0;
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const c = client(w);
        for (let r = 0; r < 5; r++) {
          await c.withLock(
            NS,
            "mutex",
            async (held) => {
              maxActive = Math.max(maxActive, ++active);
              try {
                const got = await c.get({ namespace: NS, key: "mutex/count" }, { signal: held.signal });
                await sleep(5);
                await c.put(NS, "mutex/count", String(got.found ? Number(text(got.item)) + 1 : 1), {
                  fence: held.fence,
                  signal: held.signal,
                });
              } finally {
                active--;
              }
            },
            { ttlMs: 5000, owner: `worker-${w}` },
          );
        }
      }),
    );
    assert.equal(maxActive, 1);
    assert.equal(text((await client(1).get({ namespace: NS, key: "mutex/count" })).item), "20");
  });

  it("withLock(): renews past its TTL while fn runs, then releases", async () => {
    await client(0).withLock(
      NS,
      "renewed",
      async (held) => {
        await sleep(2500); // 2.5 x TTL
        const probe = await client(1).lock({ namespace: NS, name: "renewed", ttl: durationFromMs(5000), owner: "p" });
        assert.equal(probe.acquired, false, "the lock expired although it was being renewed");
        assert.equal(probe.holderOwner, "long-job");
        assert.equal(held.signal.aborted, false);
      },
      { ttlMs: 1000, owner: "long-job" },
    );
    const after = await client(1).lock({ namespace: NS, name: "renewed", ttl: durationFromMs(5000) });
    assert.equal(after.acquired, true, "withLock did not release the lock");
    await client(1).unlock({ namespace: NS, name: "renewed", lockId: after.lockId });
  });

  it("withLock(): a failed renewal aborts fn's signal and withLock rejects with LockLostError", async () => {
    const c = client(0);
    await assert.rejects(
      c.withLock(
        NS,
        "lost",
        async (held) => {
          await c.unlock({ namespace: NS, name: "lost", lockId: held.lockId }); // behind our back
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error("fn's signal was not aborted")), 10_000);
            held.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
          });
          assert.ok(held.signal.reason instanceof LockLostError);
        },
        { ttlMs: 900 },
      ),
      LockLostError,
    );
  });

  it("withLock(): not acquired within the wait rejects with the holder's owner; fn never runs", async () => {
    const c = client(0);
    const first = await c.lock({ namespace: NS, name: "busy", ttl: durationFromMs(10_000), owner: "first" });
    assert.equal(first.acquired, true);
    try {
      const err = await c
        .withLock(NS, "busy", () => assert.fail("fn ran without the lock"), { waitMs: 200 })
        .then(
          () => assert.fail("acquired a held lock"),
          (e: unknown) => e,
        );
      assert.ok(err instanceof LockNotAcquiredError);
      assert.equal(err.holderOwner, "first");
    } finally {
      await c.unlock({ namespace: NS, name: "busy", lockId: first.lockId });
    }
  });

  it("withLock(): a write fenced with a superseded token is refused", async () => {
    const c = client(0);
    const old = await c.withLock(NS, "fenced", (held) => held.fence);
    await c.withLock(NS, "fenced", async (held) => {
      assert.ok(held.token > old.token);
      await c.put(NS, "fenced/v", "new", { fence: held.fence });
    });
    await expectGrpcError(c.put(NS, "fenced/v", "old", { fence: old }), status.FAILED_PRECONDITION, {
      reason: "FENCE_STALE",
    });
  });

  it("put(): a retry after a lost reply reuses the idempotency key, so the write happens once", async () => {
    const keys: string[] = [];
    // Lets the first CompareAndSet reach the server and commit, then replaces
    // its reply with UNAVAILABLE, as a dropped connection would.
    const dropFirstReply: Interceptor = (options, nextCall) => {
      if (!options.method_definition.path.endsWith("/CompareAndSet")) return new InterceptingCall(nextCall(options));
      let drop = false;
      return new InterceptingCall(nextCall(options), {
        sendMessage(message: CompareAndSetRequest, next) {
          keys.push(message.idempotencyKey);
          drop = keys.length === 1;
          next(message);
        },
        start(metadata, listener, next) {
          next(metadata, {
            // A non-OK status fails the call even though the reply message came.
            onReceiveStatus(st, nextStatus) {
              if (drop && st.code === status.OK) {
                nextStatus({ code: status.UNAVAILABLE, details: "reply lost (test)", metadata: new Metadata() });
              } else nextStatus(st);
            },
          });
        },
      });
    };
    const c = new AgentstateClient(cluster.servers[0]!.address, { interceptors: [dropFirstReply] });
    try {
      const r = await c.put(NS, "once", "paid", { expected: { absent: true }, backoff: { initialMs: 1, maxMs: 10 } });
      assert.equal(keys.length, 2);
      assert.ok(keys[0] !== "" && keys[0] === keys[1], `attempts carried keys ${JSON.stringify(keys)}`);
      assert.equal(r.applied, true);
      assert.equal(r.replayed, true, "the retry was applied again instead of replayed");
      assert.equal(r.item?.version, 1);
      assert.equal((await client(1).get({ namespace: NS, key: "once" })).item?.version, 1);
      // A new put is a new logical write, with a new key.
      const again = await c.put(NS, "once", "again");
      assert.equal(again.replayed, false);
      assert.equal(again.item?.version, 2);
      assert.notEqual(keys[2], keys[0]);
    } finally {
      c.close();
    }
  });

  it("every call carries a deadline, and the lock wait extends the Lock call's", async () => {
    const deadlines: { path: string; ms: number }[] = [];
    const record: Interceptor = (options, nextCall) => {
      const d = options.deadline;
      deadlines.push({ path: options.method_definition.path, ms: d instanceof Date ? d.getTime() - Date.now() : NaN });
      return new InterceptingCall(nextCall(options));
    };
    const c = new AgentstateClient(cluster.servers[0]!.address, { interceptors: [record], deadlineMs: 5000 });
    try {
      await c.put(NS, "dl", "1");
      await c.update(NS, "dl", () => "2");
      await c.withLock(NS, "dl", () => undefined, { ttlMs: 1000, waitMs: 3000 });
      assert.ok(deadlines.length >= 5);
      for (const d of deadlines) assert.ok(d.ms > 0 && d.ms <= 8000, `${d.path}: deadline in ${d.ms} ms`);
      const lock = deadlines.find((d) => d.path.endsWith("/Lock"));
      assert.ok(lock && lock.ms > 5000, "the Lock call's deadline covers its wait");
    } finally {
      c.close();
    }
  });
});

import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import type { Item, ResponseHeader } from "../../clients/typescript/src/gen/agentstate/v1/common";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { RedisClusterProcess } from "../support/RedisClusterProcess";
import { getTestEnv } from "../support/TestEnv";
import { startCluster, type Cluster } from "../support/startCluster";

const utf8 = (s: string) => Buffer.from(s, "utf8");
const text = (item: Item | undefined) => Buffer.from(item?.value ?? new Uint8Array()).toString("utf8");

function revisionOf(res: { header?: ResponseHeader | undefined }): number {
  assert.ok(res.header, "reply has a header");
  assert.ok(res.header.revision > 0, "header.revision is set");
  return res.header.revision;
}

function itemOf(res: { item?: Item | undefined }): Item {
  assert.ok(res.item, "reply carries an item");
  return res.item;
}

interface HistoryRow {
  revision: number;
  op: number;
  version: number;
}

async function history(cluster: Cluster, namespace: string, key: string): Promise<HistoryRow[]> {
  const rows = await pgQuery<{ revision: string; op: number; version: string }>(
    cluster.databaseUrl,
    "SELECT revision, op, version FROM kv_history WHERE namespace = $1 AND key = $2 ORDER BY revision",
    [namespace, utf8(key)],
  );
  return rows.map((r) => ({ revision: Number(r.revision), op: r.op, version: Number(r.version) }));
}

/**
 * The conformance suite runs against every key-value store: Postgres alone,
 * Postgres behind the Redis cache (short cache timings so the cache epoch is
 * in use while the suite runs), the same on a Redis Cluster (3 masters + 3
 * replicas started for it; Redlock on the run's Redis), and the embedded default (no DATABASE_URL:
 * the server runs its own Postgres, one server for the whole run).
 */
const BACKENDS: {
  name: string;
  redis: boolean;
  embedded?: boolean;
  /** The cache on a Redis Cluster of its own. */
  redisCluster?: boolean;
  env: Record<string, string>;
  warmMs: number;
}[] = [
  { name: "postgres", redis: false, env: {}, warmMs: 0 },
  {
    name: "postgres+redis",
    redis: true,
    env: {
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
    },
    warmMs: 2500,
  },
  {
    name: "postgres+redis-cluster",
    redis: true,
    redisCluster: true,
    env: {
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
    },
    warmMs: 3500,
  },
  { name: "embedded", redis: false, embedded: true, env: { AGENTSTATE_JANITOR_INTERVAL_MS: "200" }, warmMs: 0 },
];

for (const backend of BACKENDS)
  describe(`KeyValueService conformance [${backend.name}]: compare-and-set semantics (real server, real Postgres)`, function () {
    this.timeout(60_000);
    const NS = "cas";
    let cluster: Cluster;
    let c: AgentstateClient;
    let redisCluster: RedisClusterProcess | undefined;
    /** The backend's environment, with the Redis Cluster's URL once it runs. */
    let env = backend.env;

    before(async function () {
      this.timeout(120_000); // the embedded backend initialises its own Postgres
      if (backend.redisCluster) {
        redisCluster = await RedisClusterProcess.start();
        env = { ...env, REDIS_URL: redisCluster.url, REDLOCK_URLS: (await getTestEnv()).redis.url };
      }
      cluster = await startCluster({
        name: "kv_cas",
        redis: backend.redis,
        embedded: backend.embedded,
        env,
      });
      c = cluster.clients[0]!;
      // Let a fresh cache epoch mature so reads really go through the cache.
      if (backend.warmMs > 0) await sleep(backend.warmMs);
    });
    after(async () => {
      await cluster?.stop();
      await redisCluster?.destroy();
    });

    describe("CompareAndSet", () => {
      it("expected=absent creates once, then answers applied=false with the current item", async () => {
        const first = await c.compareAndSet({
          namespace: NS,
          key: "create-once",
          expected: { absent: true },
          value: utf8("one"),
        });
        assert.equal(first.applied, true);
        assert.equal(first.replayed, false);
        const created = itemOf(first);
        assert.equal(created.version, 1);
        assert.equal(text(created), "one");
        assert.equal(created.createRevision, revisionOf(first));
        assert.equal(created.modRevision, revisionOf(first));

        const second = await c.compareAndSet({
          namespace: NS,
          key: "create-once",
          expected: { absent: true },
          value: utf8("two"),
        });
        assert.equal(second.applied, false);
        assert.equal(second.found, true);
        const current = itemOf(second);
        assert.equal(current.version, 1);
        assert.equal(text(current), "one");
        assert.equal(current.modRevision, created.modRevision);
        assert.ok(revisionOf(second) >= current.modRevision);

        const got = await c.get({ namespace: NS, key: "create-once" });
        assert.equal(got.found, true);
        assert.equal(text(got.item), "one");
        assert.deepEqual(await history(cluster, NS, "create-once"), [
          { revision: created.modRevision, op: 1, version: 1 },
        ]);
      });

      it("expected=version applies only on an exact match; a mismatch returns the current item and changes nothing", async () => {
        const key = "exact";
        const v1 = itemOf(await c.compareAndSet({ namespace: NS, key, expected: { absent: true }, value: utf8("v1") }));
        const ok = await c.compareAndSet({ namespace: NS, key, expected: { version: 1 }, value: utf8("v2") });
        assert.equal(ok.applied, true);
        const v2 = itemOf(ok);
        assert.equal(v2.version, 2);
        assert.equal(v2.createRevision, v1.createRevision, "same incarnation keeps its create_revision");
        assert.ok(v2.modRevision > v1.modRevision);

        for (const stale of [1, 3, 99]) {
          const miss = await c.compareAndSet({ namespace: NS, key, expected: { version: stale }, value: utf8("lost") });
          assert.equal(miss.applied, false, `expected version ${stale}`);
          assert.equal(miss.found, true);
          assert.deepEqual(itemOf(miss), v2);
          assert.ok(revisionOf(miss) >= v2.modRevision);
        }
        const got = await c.get({ namespace: NS, key });
        assert.deepEqual(got.item, v2);
        assert.deepEqual(
          (await history(cluster, NS, key)).map((h) => h.version),
          [1, 2],
          "mismatches wrote no history",
        );
      });

      it("expected=version on an absent key answers applied=false, found=false, without an item", async () => {
        const miss = await c.compareAndSet({
          namespace: NS,
          key: "never-written",
          expected: { version: 1 },
          value: utf8("x"),
        });
        assert.equal(miss.applied, false);
        assert.equal(miss.found, false);
        assert.equal(miss.item, undefined);
        assert.equal((await c.get({ namespace: NS, key: "never-written" })).found, false);
        assert.deepEqual(await history(cluster, NS, "never-written"), []);
      });

      it("expected=any writes unconditionally: creates at version 1, then increments", async () => {
        const key = "any";
        const a = await c.compareAndSet({
          namespace: NS,
          key,
          expected: { any: true },
          value: utf8("a"),
          contentType: "text/plain",
        });
        assert.equal(a.applied, true);
        assert.equal(itemOf(a).version, 1);
        assert.equal(itemOf(a).contentType, "text/plain");
        const b = await c.compareAndSet({ namespace: NS, key, expected: { any: true }, value: utf8("b") });
        assert.equal(b.applied, true);
        assert.equal(itemOf(b).version, 2);
        assert.equal(text(b.item), "b");
        assert.equal(itemOf(b).contentType, "", "content type is replaced with the write's");
      });
    });

    describe("Delete", () => {
      it("expected=version: a mismatch keeps the key, a match removes it and returns the removed item", async () => {
        const key = "del-version";
        await c.compareAndSet({ namespace: NS, key, expected: { absent: true }, value: utf8("1") });
        const v2 = itemOf(await c.compareAndSet({ namespace: NS, key, expected: { version: 1 }, value: utf8("2") }));

        const miss = await c.delete({ namespace: NS, key, expected: { version: 1 } });
        assert.equal(miss.applied, false);
        assert.equal(miss.found, true);
        assert.deepEqual(miss.item, v2);
        assert.equal((await c.get({ namespace: NS, key })).found, true);

        const hit = await c.delete({ namespace: NS, key, expected: { version: 2 } });
        assert.equal(hit.applied, true);
        assert.equal(hit.found, true);
        assert.equal(itemOf(hit).version, 2);
        assert.equal(text(hit.item), "2");
        assert.ok(revisionOf(hit) > v2.modRevision, "a delete is a change with its own revision");
        assert.equal((await c.get({ namespace: NS, key })).found, false);
        const h = await history(cluster, NS, key);
        assert.deepEqual(
          h.map((r) => [r.op, r.version]),
          [
            [1, 1],
            [1, 2],
            [2, 2],
          ],
        );
        assert.equal(h[2]?.revision, revisionOf(hit));

        const again = await c.delete({ namespace: NS, key, expected: { version: 2 } });
        assert.equal(again.applied, false, "expected version on an absent key does not hold");
        assert.equal(again.found, false);
      });

      it("expected=any removes an existing key and is an applied no-op on an absent one", async () => {
        const key = "del-any";
        await c.compareAndSet({ namespace: NS, key, expected: { any: true }, value: utf8("x") });
        const hit = await c.delete({ namespace: NS, key, expected: { any: true } });
        assert.equal(hit.applied, true);
        assert.equal(hit.found, true);
        assert.equal(itemOf(hit).version, 1);
        const before = (await c.get({ namespace: NS, key })).header?.revision;

        const noop = await c.delete({ namespace: NS, key, expected: { any: true } });
        assert.equal(noop.applied, true);
        assert.equal(noop.found, false);
        assert.equal(noop.item, undefined);
        assert.ok(revisionOf(noop) >= (before ?? 0));
        assert.equal((await history(cluster, NS, key)).length, 2, "the no-op wrote no history");
      });

      it("expected=absent holds only on an absent key (an applied no-op) and never removes a live one", async () => {
        const key = "del-absent";
        const noop = await c.delete({ namespace: NS, key, expected: { absent: true } });
        assert.equal(noop.applied, true);
        assert.equal(noop.found, false);

        const live = itemOf(
          await c.compareAndSet({ namespace: NS, key, expected: { absent: true }, value: utf8("x") }),
        );
        const miss = await c.delete({ namespace: NS, key, expected: { absent: true } });
        assert.equal(miss.applied, false);
        assert.equal(miss.found, true);
        assert.deepEqual(miss.item, live);
        assert.equal((await c.get({ namespace: NS, key })).found, true);
        assert.equal((await history(cluster, NS, key)).length, 1);
      });

      it("delete then re-create starts a new incarnation at version 1 with a new create_revision", async () => {
        const key = "reincarnate";
        await c.compareAndSet({ namespace: NS, key, expected: { absent: true }, value: utf8("a") });
        const old = itemOf(await c.compareAndSet({ namespace: NS, key, expected: { version: 1 }, value: utf8("b") }));
        const del = await c.delete({ namespace: NS, key, expected: { version: 2 } });
        assert.equal(del.applied, true);

        const again = await c.compareAndSet({ namespace: NS, key, expected: { absent: true }, value: utf8("c") });
        assert.equal(again.applied, true);
        const fresh = itemOf(again);
        assert.equal(fresh.version, 1);
        assert.ok(fresh.createRevision > old.createRevision);
        assert.ok(fresh.createRevision > revisionOf(del));
        assert.equal(fresh.createRevision, fresh.modRevision);
        assert.ok(fresh.createTime!.getTime() >= old.createTime!.getTime());
        assert.deepEqual(
          (await history(cluster, NS, key)).map((h) => [h.op, h.version]),
          [
            [1, 1],
            [1, 2],
            [2, 2],
            [1, 1],
          ],
        );
      });
    });

    describe("revisions", () => {
      it("strictly increase across writes, and Get reports header.revision >= item.mod_revision", async () => {
        const revisions: number[] = [];
        for (let i = 0; i < 12; i++) {
          const key = `rev-${i % 3}`;
          const res =
            i % 4 === 3
              ? await c.delete({ namespace: NS, key, expected: { any: true } })
              : await c.compareAndSet({ namespace: NS, key, expected: { any: true }, value: utf8(String(i)) });
          assert.equal(res.applied, true);
          if (res.found) {
            revisions.push(revisionOf(res));
            if (i % 4 !== 3)
              assert.equal(itemOf(res).modRevision, revisionOf(res), "a write's item carries its revision");
          }
          for (let k = 0; k < 3; k++) {
            const got = await c.get({ namespace: NS, key: `rev-${k}` });
            const last = revisions[revisions.length - 1] ?? 0;
            assert.ok(revisionOf(got) >= last, "a read reflects every acknowledged write");
            if (got.found) assert.ok(revisionOf(got) >= itemOf(got).modRevision);
          }
        }
        for (let i = 1; i < revisions.length; i++) {
          assert.ok(revisions[i]! > revisions[i - 1]!, `revisions strictly increase: ${revisions.join(",")}`);
        }
      });
    });

    describe("TTL", () => {
      it("a key with a TTL reads as absent once it passes; then expected=absent creates it again at version 1", async () => {
        const key = "ttl";
        const put = await c.compareAndSet({
          namespace: NS,
          key,
          expected: { absent: true },
          value: utf8("short-lived"),
          ttl: { seconds: 0, nanos: 300_000_000 },
        });
        assert.equal(put.applied, true);
        const first = itemOf(put);
        assert.ok(first.expireTime, "an item with a TTL reports its expire_time");
        assert.ok(first.expireTime.getTime() > first.updateTime!.getTime());

        await eventually("the TTL key to read as absent", async () => !(await c.get({ namespace: NS, key })).found);

        const byVersion = await c.compareAndSet({
          namespace: NS,
          key,
          expected: { version: 1 },
          value: utf8("zombie"),
        });
        assert.equal(byVersion.applied, false, "an expired key does not match its old version");
        assert.equal(byVersion.found, false);
        const del = await c.delete({ namespace: NS, key, expected: { version: 1 } });
        assert.equal(del.applied, false);

        const again = await c.compareAndSet({ namespace: NS, key, expected: { absent: true }, value: utf8("again") });
        assert.equal(again.applied, true);
        const fresh = itemOf(again);
        assert.equal(fresh.version, 1);
        assert.ok(fresh.createRevision > first.createRevision);
        assert.equal(fresh.expireTime, undefined, "no TTL on the new write: no expiry");
        const got = await c.get({ namespace: NS, key });
        assert.equal(got.found, true);
        assert.equal(text(got.item), "again");
      });

      it("the janitor removes expired keys and logs each removal as op=3 in kv_history", async () => {
        // The embedded backend's one server runs the fast janitor already (a
        // second embedded Postgres would double its start-up).
        const janitorCluster = backend.embedded
          ? cluster
          : await startCluster({
              name: "kv_janitor",
              redis: backend.redis,
              env: { ...env, AGENTSTATE_JANITOR_INTERVAL_MS: "200" },
            });
        try {
          const jc = janitorCluster.clients[0]!;
          const put = await jc.compareAndSet({
            namespace: NS,
            key: "swept",
            expected: { any: true },
            value: utf8("x"),
            ttl: { seconds: 0, nanos: 300_000_000 },
          });
          const kept = await jc.compareAndSet({
            namespace: NS,
            key: "kept",
            expected: { any: true },
            value: utf8("y"),
          });
          assert.equal(put.applied && kept.applied, true);

          await eventually("the janitor to delete the expired row", async () => {
            const rows = await pgQuery(
              janitorCluster.databaseUrl,
              "SELECT 1 FROM kv WHERE namespace = $1 AND key = $2",
              [NS, utf8("swept")],
            );
            return rows.length === 0;
          });
          const h = await history(janitorCluster, NS, "swept");
          assert.equal(h.length, 2);
          assert.deepEqual(h[0], { revision: revisionOf(put), op: 1, version: 1 });
          assert.equal(h[1]?.op, 3, "the removal is logged as an expiry");
          assert.equal(h[1]?.version, 1);
          assert.ok(h[1]!.revision > revisionOf(put));

          const got = await jc.get({ namespace: NS, key: "swept" });
          assert.equal(got.found, false);
          assert.ok(revisionOf(got) >= h[1]!.revision, "reads reflect the expiry's revision");
          assert.equal((await jc.get({ namespace: NS, key: "kept" })).found, true, "keys without TTL stay");
        } finally {
          if (janitorCluster !== cluster) await janitorCluster.stop();
        }
      });
    });

    describe("List", () => {
      const put = (namespace: string, key: string, value = key, ttlMs?: number) =>
        c.compareAndSet({
          namespace,
          key,
          expected: { any: true },
          value: utf8(value),
          ...(ttlMs === undefined ? {} : { ttl: { seconds: 0, nanos: ttlMs * 1_000_000 } }),
        });

      async function listAll(namespace: string, prefix: string, limit: number) {
        const pages: string[][] = [];
        let pageToken = "";
        do {
          const res = await c.list({ namespace, prefix, limit, pageToken });
          revisionOf(res);
          pages.push(res.items.map((i) => i.key));
          pageToken = res.nextPageToken;
          assert.ok(pages.length < 100, "pagination terminates");
        } while (pageToken !== "");
        return pages;
      }

      it("returns exactly the keys under the prefix, in byte order", async () => {
        const ns = "list-order";
        const inside = ["p/", "p/B", "p/a", "p/a/b", "p/z", "p/~", "p/é", "p/日本", "p/\u{10FFFF}", "p/a b"];
        const outside = ["p", "o/z", "q/", "p0", "P/a"];
        await Promise.all([...inside, ...outside].map((k) => put(ns, k)));

        const res = await c.list({ namespace: ns, prefix: "p/" });
        const expected = [...inside].sort((a, b) => Buffer.compare(utf8(a), utf8(b)));
        assert.deepEqual(
          res.items.map((i) => i.key),
          expected,
        );
        assert.equal(res.nextPageToken, "");
        assert.deepEqual(
          res.items.map((i) => i.version),
          expected.map(() => 1),
        );

        const sub = await c.list({ namespace: ns, prefix: "p/é" });
        assert.deepEqual(
          sub.items.map((i) => i.key),
          ["p/é"],
        );
        const everything = await c.list({ namespace: ns, prefix: "" });
        assert.deepEqual(
          everything.items.map((i) => i.key),
          [...inside, ...outside].sort((a, b) => Buffer.compare(utf8(a), utf8(b))),
        );
        const none = await c.list({ namespace: ns, prefix: "zzz" });
        assert.deepEqual(none.items, []);
        assert.equal(none.nextPageToken, "");
        revisionOf(none);
        const otherNs = await c.list({ namespace: "list-order-other", prefix: "" });
        assert.deepEqual(otherNs.items, [], "namespaces are isolated");
      });

      it("pages through 250 keys with limit 100: no duplicates, none missing, in order", async () => {
        const ns = "list-pages";
        const keys = Array.from({ length: 250 }, (_, i) => `k/${String(i).padStart(4, "0")}`);
        for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => put(ns, k)));
        await put(ns, "j/outside");
        await put(ns, "l/outside");

        const pages = await listAll(ns, "k/", 100);
        assert.deepEqual(
          pages.map((p) => p.length),
          [100, 100, 50],
        );
        const seen = pages.flat();
        assert.equal(new Set(seen).size, seen.length, "no duplicates");
        assert.deepEqual(seen, keys, "all keys, in order");

        const byDefault = await c.list({ namespace: ns, prefix: "k/" });
        assert.equal(byDefault.items.length, 100, "limit 0 means the default page size (100)");
        assert.notEqual(byDefault.nextPageToken, "");
      });

      it("include_values returns the values; without it values are left out", async () => {
        const ns = "list-values";
        await c.compareAndSet({
          namespace: ns,
          key: "a",
          expected: { any: true },
          value: utf8("alpha"),
          contentType: "text/plain",
        });
        await put(ns, "b", "beta");
        const bare = await c.list({ namespace: ns });
        assert.deepEqual(
          bare.items.map((i) => [i.key, i.value.length, i.version]),
          [
            ["a", 0, 1],
            ["b", 0, 1],
          ],
        );
        const full = await c.list({ namespace: ns, includeValues: true });
        assert.deepEqual(
          full.items.map((i) => [i.key, text(i), i.contentType]),
          [
            ["a", "alpha", "text/plain"],
            ["b", "beta", ""],
          ],
        );
      });

      it("leaves out expired keys", async () => {
        const ns = "list-ttl";
        await put(ns, "a");
        await put(ns, "b", "b", 300);
        await put(ns, "c");
        await eventually(
          "the TTL key to read as absent",
          async () => !(await c.get({ namespace: ns, key: "b" })).found,
        );
        const res = await c.list({ namespace: ns });
        assert.deepEqual(
          res.items.map((i) => i.key),
          ["a", "c"],
        );
      });

      it("refuses a page token from another prefix or namespace with INVALID_ARGUMENT", async () => {
        const ns = "list-token";
        await Promise.all(["x/1", "x/2", "y/1", "y/2"].map((k) => put(ns, k)));
        const first = await c.list({ namespace: ns, prefix: "x/", limit: 1 });
        assert.notEqual(first.nextPageToken, "");
        const next = await c.list({ namespace: ns, prefix: "x/", limit: 1, pageToken: first.nextPageToken });
        assert.deepEqual(
          next.items.map((i) => i.key),
          ["x/2"],
        );

        await expectGrpcError(
          c.list({ namespace: ns, prefix: "y/", limit: 1, pageToken: first.nextPageToken }),
          status.INVALID_ARGUMENT,
          {
            field: "page_token",
          },
        );
        await expectGrpcError(
          c.list({ namespace: "list-token-2", prefix: "x/", limit: 1, pageToken: first.nextPageToken }),
          status.INVALID_ARGUMENT,
          { field: "page_token" },
        );
      });

      it("a page of large values fits the client's default message limit", async () => {
        // The server fills a page up to its message limit (4 MiB + 64 KiB by
        // default); a client with a smaller receive limit could not read it.
        const ns = "list-big";
        const big = Buffer.alloc(1024 * 1024, 0x61);
        for (let i = 0; i < 5; i++) {
          const res = await c.compareAndSet({ namespace: ns, key: `big/${i}`, expected: { any: true }, value: big });
          assert.equal(res.applied, true);
        }
        const seen: string[] = [];
        const pageSizes: number[] = [];
        let pageToken = "";
        do {
          const res = await c.list({ namespace: ns, prefix: "big/", includeValues: true, pageToken });
          pageSizes.push(res.items.length);
          for (const i of res.items) {
            assert.equal(i.value.length, big.length);
            seen.push(i.key);
          }
          pageToken = res.nextPageToken;
        } while (pageToken !== "");
        assert.deepEqual(seen, ["big/0", "big/1", "big/2", "big/3", "big/4"]);
        assert.ok(pageSizes[0]! >= 2, `the first page holds several MiB (${pageSizes.join(",")} items per page)`);
      });
    });
  });

import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import { Client } from "pg";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import type { StoreItem } from "../../clients/typescript/src/gen/agentstate/v1/store";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const MiB = 1024 * 1024;

describe("StoreService: JSON items under paths, search, paths, TTL (LangGraph's BaseStore)", function () {
  this.timeout(120_000);
  const NS = "store";
  let cluster: Cluster;
  let c: AgentstateClient;

  before(async () => {
    // A fast janitor, so the TTL sweep is seen within the test.
    cluster = await startCluster({ name: "store", env: { AGENTSTATE_JANITOR_INTERVAL_MS: "200" } });
    c = cluster.clients[0]!;
  });
  after(async () => {
    await cluster?.stop();
  });

  const put = (namespace: string, path: string[], key: string, value: object, ttlMs?: number) =>
    c.putItem({
      namespace,
      path,
      key,
      valueJson: JSON.stringify(value),
      ttl: ttlMs === undefined ? undefined : { seconds: Math.floor(ttlMs / 1000), nanos: (ttlMs % 1000) * 1e6 },
    });
  const keys = (items: StoreItem[]) => items.map((i) => `${i.path.join("/")}:${i.key}`);

  it("puts, gets, replaces and deletes an item; the value is the JSON object sent", async () => {
    const value = { text: "likes tea", n: 3, nested: { a: [1, 2, { b: null }] } };
    const p = await put(NS, ["users", "u1", "memories"], "m1", value);
    assert.deepEqual(p.item?.path, ["users", "u1", "memories"]);
    assert.equal(p.item?.expireTime, undefined);
    const g = await c.getItem({ namespace: NS, path: ["users", "u1", "memories"], key: "m1" });
    assert.equal(g.found, true);
    assert.deepEqual(JSON.parse(g.item!.valueJson), value);
    assert.equal(g.item!.createTime!.getTime(), p.item!.createTime!.getTime());

    await put(NS, ["users", "u1", "memories"], "m1", { text: "likes coffee" });
    const g2 = await c.getItem({ namespace: NS, path: ["users", "u1", "memories"], key: "m1" });
    assert.deepEqual(JSON.parse(g2.item!.valueJson), { text: "likes coffee" });
    assert.equal(g2.item!.createTime!.getTime(), p.item!.createTime!.getTime(), "a replace keeps create_time");
    assert.ok(g2.item!.updateTime!.getTime() >= p.item!.updateTime!.getTime());

    // Another path, another namespace: other items.
    assert.equal((await c.getItem({ namespace: NS, path: ["users", "u1"], key: "m1" })).found, false);
    assert.equal(
      (await c.getItem({ namespace: "store-other", path: ["users", "u1", "memories"], key: "m1" })).found,
      false,
    );

    assert.equal((await c.deleteItem({ namespace: NS, path: ["users", "u1", "memories"], key: "m1" })).deleted, true);
    assert.equal((await c.deleteItem({ namespace: NS, path: ["users", "u1", "memories"], key: "m1" })).deleted, false);
    assert.equal((await c.getItem({ namespace: NS, path: ["users", "u1", "memories"], key: "m1" })).found, false);
  });

  it("searches under a path prefix (whole labels only), newest first, with limit and offset", async () => {
    const ns = "store-search";
    await put(ns, ["docs"], "d0", { i: 0 });
    await put(ns, ["docs", "a"], "d1", { i: 1 });
    await put(ns, ["docs", "a", "x"], "d2", { i: 2 });
    await put(ns, ["docs", "b"], "d3", { i: 3 });
    await put(ns, ["docsx"], "d4", { i: 4 });
    const all = await c.searchItems({ namespace: ns });
    assert.deepEqual(keys(all.items), ["docsx:d4", "docs/b:d3", "docs/a/x:d2", "docs/a:d1", "docs:d0"]);
    assert.deepEqual(keys((await c.searchItems({ namespace: ns, pathPrefix: ["docs"] })).items), [
      "docs/b:d3",
      "docs/a/x:d2",
      "docs/a:d1",
      "docs:d0",
    ]);
    assert.deepEqual(keys((await c.searchItems({ namespace: ns, pathPrefix: ["docs", "a"] })).items), [
      "docs/a/x:d2",
      "docs/a:d1",
    ]);
    assert.deepEqual(keys((await c.searchItems({ namespace: ns, pathPrefix: ["doc"] })).items), []);
    assert.deepEqual(keys((await c.searchItems({ namespace: ns, limit: 2, offset: 1 })).items), [
      "docs/b:d3",
      "docs/a/x:d2",
    ]);
    assert.deepEqual(keys((await c.searchItems({ namespace: ns, offset: 5 })).items), []);
  });

  it("filters on top-level fields: equality (through the index), $eq $ne $gt $gte $lt $lte", async () => {
    const ns = "store-filter";
    await put(ns, ["f"], "a", { kind: "note", score: 1, tags: ["x", "y"], meta: { lang: "en", v: 1 } });
    await put(ns, ["f"], "b", { kind: "note", score: 5, tags: ["x"], meta: { lang: "fr", v: 1 } });
    await put(ns, ["f"], "c", { kind: "task", score: 9, label: "zeta" });
    await put(ns, ["f"], "d", { kind: "task", score: "9", label: "alpha" });
    const search = async (filter: object) =>
      keys((await c.searchItems({ namespace: ns, filterJson: JSON.stringify(filter) })).items)
        .map((k) => k.split(":")[1])
        .sort();
    assert.deepEqual(await search({ kind: "note" }), ["a", "b"]);
    assert.deepEqual(await search({ kind: "note", score: 5 }), ["b"]);
    assert.deepEqual(await search({ tags: ["x"] }), ["b"], "arrays compare whole, not by containment");
    assert.deepEqual(await search({ meta: { lang: "en" } }), ["a"], "objects match key by key");
    assert.deepEqual(await search({ score: { $gt: 1 } }), ["b", "c"], "numbers compare with numbers only");
    assert.deepEqual(await search({ score: { $gte: 1, $lt: 9 } }), ["a", "b"]);
    assert.deepEqual(await search({ score: { $lte: 5 } }), ["a", "b"]);
    assert.deepEqual(await search({ score: { $eq: "9" } }), ["d"]);
    assert.deepEqual(await search({ kind: { $ne: "note" } }), ["c", "d"]);
    assert.deepEqual(await search({ label: { $ne: "zeta" } }), ["a", "b", "d"], "a missing field is not equal");
    assert.deepEqual(await search({ label: { $gt: "b" } }), ["c"]);
    assert.deepEqual(await search({ missing: 1 }), []);
  });

  it("a filter's equalities are served by the GIN index on the value, in a namespace of many items", async () => {
    const db = new Client({ connectionString: cluster.databaseUrl });
    await db.connect();
    try {
      await db.query(
        `INSERT INTO store_items (namespace, path, key, value, created_at, updated_at)
         SELECT 'store-index', 'p', 'k' || i, jsonb_build_object('kind', 'bulk', 'i', i), now(), now()
         FROM generate_series(1, 5000) i`,
      );
      await db.query("ANALYZE store_items");
      const plan = await db.query<{ "QUERY PLAN": string }>(
        `EXPLAIN SELECT key FROM store_items WHERE namespace = 'store-index' AND value @> '{"i": 42}'`,
      );
      assert.match(plan.rows.map((r) => r["QUERY PLAN"]).join("\n"), /Bitmap Index Scan on store_items_value/);
    } finally {
      await db.end();
    }
    const hit = await c.searchItems({ namespace: "store-index", filterJson: '{"i": 42}' });
    assert.deepEqual(keys(hit.items), ["p:k42"]);
  });

  it("lists paths with prefix, suffix, '*' wildcards, max depth, limit and offset", async () => {
    const ns = "store-paths";
    for (const p of [
      ["a", "b", "c"],
      ["a", "b", "d"],
      ["a", "x"],
      ["b", "c"],
      ["a", "b", "c", "e"],
    ]) {
      await put(ns, p, "k", { p });
    }
    const list = async (req: object) =>
      (await c.listPaths({ namespace: ns, ...req })).paths.map((p) => p.labels.join("/"));
    assert.deepEqual(await list({}), ["a/b/c", "a/b/c/e", "a/b/d", "a/x", "b/c"]);
    assert.deepEqual(await list({ prefix: ["a", "b"] }), ["a/b/c", "a/b/c/e", "a/b/d"]);
    assert.deepEqual(await list({ prefix: ["a", "*", "c"] }), ["a/b/c", "a/b/c/e"]);
    assert.deepEqual(await list({ suffix: ["c"] }), ["a/b/c", "b/c"]);
    assert.deepEqual(await list({ suffix: ["*", "c"] }), ["a/b/c", "b/c"]);
    assert.deepEqual(await list({ prefix: ["a"], suffix: ["d"] }), ["a/b/d"]);
    assert.deepEqual(await list({ maxDepth: 2 }), ["a/b", "a/x", "b/c"]);
    assert.deepEqual(await list({ maxDepth: 1 }), ["a", "b"]);
    assert.deepEqual(await list({ limit: 2, offset: 1 }), ["a/b/c/e", "a/b/d"]);
  });

  it("TTL: an item expires, a refreshing read restarts its expiry, the janitor removes it", async () => {
    const ns = "store-ttl";
    const p = await put(ns, ["t"], "short", { v: 1 }, 1500);
    const expires = p.item!.expireTime!.getTime();
    assert.ok(expires > p.item!.updateTime!.getTime());
    await sleep(300);
    // A plain read keeps the expiry; a refreshing read moves it (from the read).
    const plain = await c.getItem({ namespace: ns, path: ["t"], key: "short" });
    assert.equal(plain.item!.expireTime!.getTime(), expires);
    const refreshed = await c.getItem({ namespace: ns, path: ["t"], key: "short", refreshTtl: true });
    assert.ok(refreshed.item!.expireTime!.getTime() > expires, "refresh moved the expiry");
    const stored = await pgQuery<{ expires_at: Date }>(
      cluster.databaseUrl,
      `SELECT expires_at FROM store_items WHERE namespace = $1`,
      [ns],
    );
    assert.equal(stored[0]!.expires_at.getTime(), refreshed.item!.expireTime!.getTime(), "the refresh is stored");
    // A search with refresh_ttl refreshes too.
    const s = await c.searchItems({ namespace: ns, refreshTtl: true });
    assert.ok(s.items[0]!.expireTime!.getTime() >= refreshed.item!.expireTime!.getTime());

    await put(ns, ["t"], "forever", { v: 2 });
    // Once expired: absent to every read, then swept by the janitor; the item without a TTL stays.
    await eventually(
      "the item reads as absent",
      async () => !(await c.getItem({ namespace: ns, path: ["t"], key: "short" })).found,
    );
    assert.deepEqual(keys((await c.searchItems({ namespace: ns })).items), ["t:forever"]);
    await eventually("the janitor removes the expired row", async () => {
      const rows = await pgQuery<{ key: string }>(
        cluster.databaseUrl,
        `SELECT key FROM store_items WHERE namespace = $1`,
        [ns],
      );
      return rows.length === 1 && rows[0]!.key === "forever";
    });
    // A put without a TTL clears one.
    await put(ns, ["t"], "cleared", { v: 3 }, 60_000);
    const cleared = await put(ns, ["t"], "cleared", { v: 3 });
    assert.equal(cleared.item!.expireTime, undefined);
  });

  it("a search page stops before the message limit and says so (truncated)", async () => {
    const ns = "store-big";
    const big = "x".repeat(MiB - 64);
    for (let i = 0; i < 6; i++) await put(ns, ["big"], `k${i}`, { big });
    const first = await c.searchItems({ namespace: ns, limit: 10 });
    assert.equal(first.truncated, true);
    assert.ok(first.items.length >= 1 && first.items.length < 6, `${first.items.length} items`);
    const rest = await c.searchItems({ namespace: ns, limit: 10, offset: first.items.length });
    assert.equal(first.items.length + rest.items.length + (rest.truncated ? 1 : 0) >= 6, true);
  });

  describe("bad input is INVALID_ARGUMENT naming the field, and writes nothing", () => {
    const ok = { namespace: NS, path: ["p"], key: "k", valueJson: "{}" };
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    const cases: { name: string; field: string; call: () => Promise<unknown> }[] = [
      { name: "PutItem: bad namespace", field: "namespace", call: () => c.putItem({ ...ok, namespace: "Bad" }) },
      { name: "PutItem: empty key", field: "key", call: () => c.putItem({ ...ok, key: "" }) },
      { name: "PutItem: key over 1024 bytes", field: "key", call: () => c.putItem({ ...ok, key: "k".repeat(1025) }) },
      { name: "PutItem: no path", field: "path", call: () => c.putItem({ ...ok, path: [] }) },
      { name: "PutItem: 33 labels", field: "path", call: () => c.putItem({ ...ok, path: Array(33).fill("a") }) },
      { name: "PutItem: empty label", field: "path[1]", call: () => c.putItem({ ...ok, path: ["a", ""] }) },
      { name: "PutItem: label with '.'", field: "path[0]", call: () => c.putItem({ ...ok, path: ["a.b"] }) },
      {
        name: "PutItem: label over 255 bytes",
        field: "path[0]",
        call: () => c.putItem({ ...ok, path: ["é".repeat(128)] }),
      },
      { name: "PutItem: value not JSON", field: "value_json", call: () => c.putItem({ ...ok, valueJson: "{" }) },
      { name: "PutItem: value empty", field: "value_json", call: () => c.putItem({ ...ok, valueJson: "" }) },
      { name: "PutItem: value an array", field: "value_json", call: () => c.putItem({ ...ok, valueJson: "[1]" }) },
      { name: "PutItem: value a string", field: "value_json", call: () => c.putItem({ ...ok, valueJson: '"s"' }) },
      {
        name: "PutItem: value with \\u0000",
        field: "value_json",
        call: () => c.putItem({ ...ok, valueJson: '{"a":"\\u0000"}' }),
      },
      {
        name: "PutItem: value with a lone surrogate",
        field: "value_json",
        call: () => c.putItem({ ...ok, valueJson: '{"\\ud800":1}' }),
      },
      {
        name: "PutItem: number out of range",
        field: "value_json",
        call: () => c.putItem({ ...ok, valueJson: '{"a":1e999}' }),
      },
      {
        name: "PutItem: nested 65 deep",
        field: "value_json",
        call: () => c.putItem({ ...ok, valueJson: `{"a":${deep(64)}}` }),
      },
      {
        name: "PutItem: value over the 1 MiB limit",
        field: "value_json",
        call: () => c.putItem({ ...ok, valueJson: JSON.stringify({ a: "x".repeat(MiB) }) }),
      },
      { name: "PutItem: negative TTL", field: "ttl", call: () => c.putItem({ ...ok, ttl: { seconds: -1, nanos: 0 } }) },
      { name: "PutItem: zero TTL", field: "ttl", call: () => c.putItem({ ...ok, ttl: { seconds: 0, nanos: 0 } }) },
      { name: "GetItem: no path", field: "path", call: () => c.getItem({ namespace: NS, key: "k" }) },
      {
        name: "DeleteItem: key with NUL",
        field: "key",
        call: () => c.deleteItem({ namespace: NS, path: ["p"], key: "\u0000" }),
      },
      { name: "SearchItems: bad namespace", field: "namespace", call: () => c.searchItems({ namespace: "" }) },
      {
        name: "SearchItems: limit over the max",
        field: "limit",
        call: () => c.searchItems({ namespace: NS, limit: 1001 }),
      },
      { name: "SearchItems: negative limit", field: "limit", call: () => c.searchItems({ namespace: NS, limit: -1 }) },
      {
        name: "SearchItems: offset over 100000",
        field: "offset",
        call: () => c.searchItems({ namespace: NS, offset: 100_001 }),
      },
      {
        name: "SearchItems: negative offset",
        field: "offset",
        call: () => c.searchItems({ namespace: NS, offset: -1 }),
      },
      {
        name: "SearchItems: label with '.'",
        field: "path_prefix[0]",
        call: () => c.searchItems({ namespace: NS, pathPrefix: ["a.b"] }),
      },
      {
        name: "SearchItems: filter not an object",
        field: "filter_json",
        call: () => c.searchItems({ namespace: NS, filterJson: "[]" }),
      },
      {
        name: "SearchItems: unknown operator",
        field: "filter_json.a.$in",
        call: () => c.searchItems({ namespace: NS, filterJson: '{"a":{"$in":[1]}}' }),
      },
      {
        name: "SearchItems: ordering on an object",
        field: "filter_json.a.$gt",
        call: () => c.searchItems({ namespace: NS, filterJson: '{"a":{"$gt":{}}}' }),
      },
      {
        name: "SearchItems: operators mixed with fields",
        field: "filter_json.a",
        call: () => c.searchItems({ namespace: NS, filterJson: '{"a":{"$gt":1,"b":2}}' }),
      },
      {
        name: "SearchItems: 65 conditions",
        field: "filter_json",
        call: () =>
          c.searchItems({
            namespace: NS,
            filterJson: JSON.stringify(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i]))),
          }),
      },
      {
        name: "ListPaths: negative max_depth",
        field: "max_depth",
        call: () => c.listPaths({ namespace: NS, maxDepth: -1 }),
      },
      {
        name: "ListPaths: empty prefix label",
        field: "prefix[0]",
        call: () => c.listPaths({ namespace: NS, prefix: [""] }),
      },
      {
        name: "ListPaths: 33 suffix labels",
        field: "suffix",
        call: () => c.listPaths({ namespace: NS, suffix: Array(33).fill("*") }),
      },
      {
        name: "ListPaths: limit over the max",
        field: "limit",
        call: () => c.listPaths({ namespace: NS, limit: 5000 }),
      },
    ];

    for (const tc of cases) {
      it(tc.name, async () => {
        // Nothing written: no row changed since the call began, and no row
        // without a TTL removed (the janitor may remove expired ones meanwhile).
        const state = async () =>
          (
            await pgQuery<{ kept: number; now: Date }>(
              cluster.databaseUrl,
              "SELECT count(*) FILTER (WHERE expires_at IS NULL)::int AS kept, now() AS now FROM store_items",
            )
          )[0]!;
        const before = await state();
        await expectGrpcError(tc.call(), status.INVALID_ARGUMENT, { field: tc.field });
        const changed = await pgQuery<{ n: number }>(
          cluster.databaseUrl,
          "SELECT count(*)::int AS n FROM store_items WHERE updated_at >= $1",
          [before.now],
        );
        assert.equal(changed[0]!.n, 0, "no row written");
        assert.equal((await state()).kept, before.kept, "no row removed");
      });
    }

    it("the limits at their edges are accepted: 32 labels of 255 bytes, 64 levels, 64 conditions, offset 100000", async () => {
      const path = Array.from({ length: 32 }, (_, i) => String(i % 10).repeat(255));
      await c.putItem({ ...ok, namespace: "store-edges", path, valueJson: `{"a":${deep(63)}}` });
      assert.equal((await c.getItem({ namespace: "store-edges", path, key: "k" })).found, true);
      const filter = JSON.stringify(Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`f${i}`, i])));
      assert.deepEqual((await c.searchItems({ namespace: "store-edges", filterJson: filter })).items, []);
      assert.deepEqual((await c.searchItems({ namespace: "store-edges", offset: 100_000 })).items, []);
    });
  });
});

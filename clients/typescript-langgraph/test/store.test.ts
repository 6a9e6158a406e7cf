// AgentstateStore against the live server (AGENTSTATE_ADDRESS, as .ci/clients
// sets it): LangGraph's BaseStore contract (get, put, delete, search with
// filter/limit/offset, listNamespaces with prefix/suffix/maxDepth), batches,
// TTL (default, refresh on read, explicit, none) and errors. The namespace
// cases follow LangGraph's own InMemoryStore tests.
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidNamespaceError } from "@langchain/langgraph-checkpoint";
import { AgentstateStore, type StoreTtlConfig } from "../src";
import { client, freshNamespace } from "./live";

const store = (ttl?: StoreTtlConfig) => new AgentstateStore({ client, namespace: freshNamespace("lgs"), ttl });
const keys = (items: { key: string }[]) => items.map((i) => i.key);

describe("AgentstateStore", () => {
  it("puts, gets, replaces and deletes items", async () => {
    const s = store();
    const ns = ["users", "u1", "memories"];
    const value = { text: "likes tea", n: 3, ratio: 0.5, nested: { a: [1, null, true] }, uni: "日本 ⛰️" };
    await s.put(ns, "m1", value);
    const item = await s.get(ns, "m1");
    expect(item).not.toBeNull();
    expect(item!.value).toEqual(value);
    expect(item!.namespace).toEqual(ns);
    expect(item!.createdAt).toBeInstanceOf(Date);
    await s.put(ns, "m1", { text: "likes coffee" });
    const again = await s.get(ns, "m1");
    expect(again!.value).toEqual({ text: "likes coffee" });
    expect(again!.createdAt.getTime()).toBe(item!.createdAt.getTime());
    expect(await s.get(["users", "u1"], "m1")).toBeNull();
    await s.delete(ns, "m1");
    expect(await s.get(ns, "m1")).toBeNull();
    await s.delete(ns, "m1");
  });

  it("keeps tenants apart: another agentstate namespace sees nothing", async () => {
    const a = store();
    const b = store();
    await a.put(["x"], "k", { v: 1 });
    expect(await b.get(["x"], "k")).toBeNull();
    expect(await b.search([])).toEqual([]);
  });

  it("searches under a prefix, newest first, with limit, offset and filters", async () => {
    const s = store();
    const paths = [["docs"], ["docs", "a"], ["docs", "a", "x"], ["docs", "b"], ["docsx"]];
    for (const [i, p] of paths.entries()) await s.put(p, `d${i}`, { i, kind: i % 2 ? "odd" : "even", tags: [i] });
    expect(keys(await s.search(["docs"]))).toEqual(["d3", "d2", "d1", "d0"]);
    expect(keys(await s.search(["docs", "a"]))).toEqual(["d2", "d1"]);
    expect(keys(await s.search([], { limit: 2, offset: 1 }))).toEqual(["d3", "d2"]);
    expect(keys(await s.search([], { filter: { kind: "odd" } }))).toEqual(["d3", "d1"]);
    expect(keys(await s.search([], { filter: { i: { $gte: 2, $lt: 4 } } }))).toEqual(["d3", "d2"]);
    expect(keys(await s.search([], { filter: { kind: { $ne: "odd" } } }))).toEqual(["d4", "d2", "d0"]);
    expect(keys(await s.search([], { filter: { tags: [4] } }))).toEqual(["d4"]);
    expect(keys(await s.search(["docs"], { query: "ignored without an index", limit: 1 }))).toEqual(["d3"]);
  });

  it("reads searches and listings past the server's page limit", async () => {
    const s = store();
    const puts = Array.from({ length: 1203 }, (_, i) => () => s.put(["many", `p${i % 1100}`], `k${i}`, { i }));
    for (let i = 0; i < puts.length; i += 50) await Promise.all(puts.slice(i, i + 50).map((put) => put()));
    expect((await s.search(["many"], { limit: 1500 })).length).toBe(1203);
    expect((await s.listNamespaces({ prefix: ["many"], limit: 2000 })).length).toBe(1100);
  });

  it("lists namespaces with prefix, suffix, wildcards, maxDepth, limit and offset", async () => {
    const s = store();
    const namespaces = [
      ["a", "b", "c"],
      ["a", "b", "d", "e"],
      ["a", "b", "d", "i"],
      ["a", "b", "f"],
      ["a", "c", "f"],
      ["b", "a", "f"],
      ["users", "123"],
      ["users", "456", "settings"],
      ["admin", "users", "789"],
    ];
    for (const [i, ns] of namespaces.entries()) await s.put(ns, `k${i}`, { i });
    const sorted = [...namespaces].sort((x, y) => x.join("\u0001").localeCompare(y.join("\u0001")));
    expect(await s.listNamespaces()).toEqual(sorted);
    expect(await s.listNamespaces({ prefix: ["a", "b"] })).toEqual([
      ["a", "b", "c"],
      ["a", "b", "d", "e"],
      ["a", "b", "d", "i"],
      ["a", "b", "f"],
    ]);
    expect(await s.listNamespaces({ suffix: ["f"] })).toEqual([
      ["a", "b", "f"],
      ["a", "c", "f"],
      ["b", "a", "f"],
    ]);
    expect(await s.listNamespaces({ prefix: ["a", "*", "f"] })).toEqual([
      ["a", "b", "f"],
      ["a", "c", "f"],
    ]);
    expect(await s.listNamespaces({ prefix: ["a"], suffix: ["f"] })).toEqual([
      ["a", "b", "f"],
      ["a", "c", "f"],
    ]);
    expect(await s.listNamespaces({ prefix: ["a", "b"], maxDepth: 3 })).toEqual([
      ["a", "b", "c"],
      ["a", "b", "d"],
      ["a", "b", "f"],
    ]);
    expect(await s.listNamespaces({ maxDepth: 1 })).toEqual([["a"], ["admin"], ["b"], ["users"]]);
    expect(await s.listNamespaces({ limit: 2, offset: 1 })).toEqual([
      ["a", "b", "d", "e"],
      ["a", "b", "d", "i"],
    ]);
    const both = await s.batch([
      {
        matchConditions: [
          { matchType: "prefix", path: ["a", "*", "f"] },
          { matchType: "prefix", path: ["*", "c"] },
        ],
        limit: 10,
        offset: 0,
      },
    ]);
    expect(both).toEqual([[["a", "c", "f"]]]);
  });

  it("runs a batch's operations in order", async () => {
    const s = store();
    const [put, got, del, gone, found] = await s.batch([
      { namespace: ["b"], key: "k", value: { v: 1 } },
      { namespace: ["b"], key: "k" },
      { namespace: ["b"], key: "k", value: null },
      { namespace: ["b"], key: "k" },
      { namespacePrefix: ["b"] },
    ]);
    expect(put).toBeUndefined();
    expect(got?.value).toEqual({ v: 1 });
    expect(del).toBeUndefined();
    expect(gone).toBeNull();
    expect(found).toEqual([]);
  });

  it("refuses bad namespaces (LangGraph's errors) and bad input (INVALID_ARGUMENT), writing nothing", async () => {
    const s = store();
    for (const bad of [[], ["a.b"], [""], ["langgraph", "x"]]) {
      await expect(s.put(bad, "k", { v: 1 })).rejects.toBeInstanceOf(InvalidNamespaceError);
    }
    await expect(s.batch([{ namespace: ["a.b"], key: "k" }])).rejects.toBeInstanceOf(InvalidNamespaceError);
    await expect(s.put(Array(33).fill("x"), "k", { v: 1 })).rejects.toMatchObject({ code: 3 });
    await expect(s.put(["x"], "", { v: 1 })).rejects.toMatchObject({
      code: 3,
      details: expect.stringContaining("key"),
    });
    await expect(s.put(["x"], "k", { v: 1 }, undefined, { ttl: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(new AgentstateStore({ client, namespace: "Not Valid" }).get(["x"], "k")).rejects.toMatchObject({
      code: 3,
      details: expect.stringContaining("namespace"),
    });
    expect(await s.listNamespaces()).toEqual([]);
  });

  it("TTL: the default applies, reads refresh it, an item without reads expires", async () => {
    const s = store({ defaultTtl: 0.02, refreshOnRead: true }); // 1.2 s
    await s.put(["t"], "default", { v: 1 });
    await s.put(["t"], "forever", { v: 2 }, undefined, { ttl: null });
    await s.put(["t"], "kept-alive", { v: 3 });
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      expect(await s.get(["t"], "kept-alive")).not.toBeNull(); // each read restarts its TTL
      await sleep(300);
    }
    const [def] = await s.batch([{ namespace: ["t"], key: "default", refreshTtl: false }]);
    expect(def).toBeNull();
    expect(await s.get(["t"], "forever")).not.toBeNull();
    await sleep(1600);
    expect(await s.get(["t"], "kept-alive")).toBeNull();
  });

  it("TTL: an explicit ttl, and refreshOnRead false keeps reads from extending it", async () => {
    const s = store({ refreshOnRead: false });
    await s.put(["t"], "short", { v: 1 }, undefined, { ttl: 0.015 }); // 0.9 s
    await s.put(["t"], "none", { v: 2 });
    const until = Date.now() + 600;
    while (Date.now() < until) {
      await s.get(["t"], "short");
      await sleep(100);
    }
    await sleep(600);
    expect(await s.get(["t"], "short")).toBeNull();
    expect(await s.get(["t"], "none")).not.toBeNull();
  });
});

import * as assert from "node:assert/strict";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const WORKERS = 20;
const INCREMENTS = 10;
const TOTAL = WORKERS * INCREMENTS;

const utf8 = (s: string) => Buffer.from(s, "utf8");
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");

interface Ack {
  worker: number;
  revision: number;
  version: number;
  counter: number;
}

/**
 * One read-modify-write incrementer: Get, then CompareAndSet expecting the
 * version it read, retrying on applied=false until it has INCREMENTS
 * acknowledged increments. Checks on the way that what it observes only moves
 * forward (linearizable reads and writes on one key).
 */
async function incrementer(worker: number, client: AgentstateClient, namespace: string, key: string): Promise<Ack[]> {
  const acks: Ack[] = [];
  let lastSeen = 0;
  while (acks.length < INCREMENTS) {
    const got = await client.get({ namespace, key });
    assert.ok(got.found && got.item, "the counter exists");
    const { version } = got.item;
    assert.ok(version >= lastSeen, `worker ${worker} read version ${version} after having seen ${lastSeen}`);
    lastSeen = version;
    const counter = Number(text(got.item.value));
    const res = await client.compareAndSet({ namespace, key, expected: { version }, value: utf8(String(counter + 1)) });
    assert.ok(res.item, "a CAS reply carries the item (written or current)");
    if (res.applied) {
      assert.equal(res.item.version, version + 1);
      assert.equal(text(res.item.value), String(counter + 1));
      assert.equal(res.item.modRevision, res.header?.revision);
      acks.push({ worker, revision: res.item.modRevision, version: res.item.version, counter: counter + 1 });
    } else {
      assert.equal(res.found, true);
      assert.ok(
        res.item.version > version,
        `a mismatch on version ${version} reports a newer one (${res.item.version})`,
      );
    }
    lastSeen = Math.max(lastSeen, res.item.version);
  }
  return acks;
}

for (const redis of [false, true]) {
  describe(`KeyValueService: ${WORKERS} clients racing CAS on one key through 2 replicas (${redis ? "Postgres + Redis cache" : "Postgres only"})`, function () {
    this.timeout(120_000);
    const NS = "race";
    const KEY = "counter";
    let cluster: Cluster;
    const clients: AgentstateClient[] = [];

    before(async () => {
      cluster = await startCluster({ replicas: 2, redis, name: "kv_race" });
      for (let i = 0; i < WORKERS; i++) clients.push(new AgentstateClient(cluster.servers[i % 2]!.address));
    });
    after(async () => {
      for (const c of clients) c.close();
      await cluster?.stop();
    });

    it(`applies exactly ${TOTAL} increments: dense versions, one history row per acknowledged write, no lost update`, async () => {
      const created = await cluster.clients[0]!.compareAndSet({
        namespace: NS,
        key: KEY,
        expected: { absent: true },
        value: utf8("0"),
      });
      assert.equal(created.applied, true);
      assert.equal(created.item?.version, 1);

      const acks = (await Promise.all(clients.map((c, i) => incrementer(i, c, NS, KEY)))).flat();
      assert.equal(acks.length, TOTAL);

      // Through either replica: the final state counts every increment.
      for (const c of cluster.clients) {
        const final = await c.get({ namespace: NS, key: KEY });
        assert.equal(text(final.item!.value), String(TOTAL), "final counter");
        assert.equal(final.item!.version, TOTAL + 1, "final version");
      }

      // Each acknowledged CAS produced its own version and its own revision.
      const versions = acks.map((a) => a.version).sort((a, b) => a - b);
      assert.deepEqual(
        versions,
        Array.from({ length: TOTAL }, (_, i) => i + 2),
        "versions 2..N+1, each acknowledged once",
      );
      assert.equal(new Set(acks.map((a) => a.revision)).size, TOTAL, "revisions are unique");
      for (const a of acks) assert.equal(a.counter, a.version - 1, "no lost update: version v holds counter v-1");

      // The truth in Postgres: the key's history is exactly versions 1..N+1 in
      // revision order, and every acknowledged revision is in it with its version.
      const rows = await pgQuery<{ revision: string; version: string; op: number; value: Buffer }>(
        cluster.databaseUrl,
        "SELECT revision, version, op, value FROM kv_history WHERE namespace = $1 AND key = $2 ORDER BY revision",
        [NS, utf8(KEY)],
      );
      assert.deepEqual(
        rows.map((r) => Number(r.version)),
        Array.from({ length: TOTAL + 1 }, (_, i) => i + 1),
        "history versions are 1..N+1 with no gaps, in revision order",
      );
      for (const r of rows) {
        assert.equal(r.op, 1);
        assert.equal(r.value.toString("utf8"), String(Number(r.version) - 1));
      }
      const byRevision = new Map(rows.map((r) => [Number(r.revision), Number(r.version)]));
      for (const a of acks) {
        assert.equal(
          byRevision.get(a.revision),
          a.version,
          `acknowledged revision ${a.revision} is logged with version ${a.version}`,
        );
      }
      assert.equal(byRevision.get(created.header!.revision), 1);
    });
  });
}

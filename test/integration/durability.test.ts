import * as assert from "node:assert/strict";
import type { ServiceError } from "@grpc/grpc-js";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const WRITERS = 8;
const ACKS_BEFORE_KILL = 300;
const NS = "durable";

interface Ack {
  key: string;
  value: string;
  version: number;
  revision: number;
}

describe("durability: kill -9 the server mid-write, nothing acknowledged is lost", function () {
  this.timeout(60_000);
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({ name: "durability" });
  });
  after(async () => {
    await cluster?.stop();
  });

  it(`every acknowledged write survives a SIGKILL taken with writes in flight (${WRITERS} writers)`, async () => {
    const server = cluster.servers[0]!;
    const client: AgentstateClient = cluster.clients[0]!;
    const acks: Ack[] = [];
    const failures: ServiceError[] = [];
    let inFlight = 0;
    let inFlightAtKill = -1;
    let killed: Promise<unknown> | undefined;

    const writer = async (w: number) => {
      const key = `w${w}`;
      for (let seq = 0; ; seq++) {
        const value = `${key}:${seq}`;
        inFlight++;
        try {
          const res = await client.compareAndSet(
            { namespace: NS, key, expected: { any: true }, value: Buffer.from(value) },
            { deadlineMs: 5_000 },
          );
          assert.equal(res.applied, true);
          acks.push({ key, value, version: res.item!.version, revision: res.header!.revision });
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          failures.push(e as ServiceError);
          return; // the server is gone: this writer stops
        } finally {
          inFlight--;
        }
        if (acks.length >= ACKS_BEFORE_KILL && killed === undefined) {
          inFlightAtKill = inFlight;
          killed = server.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    const exit = await killed;
    assert.deepEqual(exit, { code: null, signal: "SIGKILL" });
    assert.ok(inFlightAtKill > 0, "writes were in flight when the server was killed");
    assert.ok(acks.length >= ACKS_BEFORE_KILL);
    assert.equal(failures.length, WRITERS, "every writer saw its in-flight write fail");

    // A new server on the same database.
    const { client: after } = await cluster.addReplica();

    const history = await pgQuery<{ revision: string; key: Buffer; version: string; value: Buffer }>(
      cluster.databaseUrl,
      "SELECT revision, key, version, value FROM kv_history WHERE namespace = $1 ORDER BY revision",
      [NS],
    );
    const byRevision = new Map(history.map((h) => [Number(h.revision), h]));
    for (const a of acks) {
      const h = byRevision.get(a.revision);
      assert.ok(h, `acknowledged revision ${a.revision} (${a.value}) is in kv_history`);
      assert.equal(h.key.toString(), a.key);
      assert.equal(Number(h.version), a.version);
      assert.equal(h.value.toString(), a.value);
    }

    for (let w = 0; w < WRITERS; w++) {
      const key = `w${w}`;
      const mine = acks.filter((a) => a.key === key);
      const lastAck = mine[mine.length - 1];
      const got = await after.get({ namespace: NS, key });
      if (lastAck === undefined) continue;
      assert.ok(got.found && got.item, `${key} exists`);
      assert.ok(
        got.item.version >= lastAck.version,
        `${key}: version ${got.item.version} >= last acknowledged ${lastAck.version}`,
      );
      if (got.item.version === lastAck.version) assert.equal(Buffer.from(got.item.value).toString(), lastAck.value);
      // expected=any on one key: versions are dense, so none was skipped or duplicated.
      const versions = history.filter((h) => h.key.toString() === key).map((h) => Number(h.version));
      assert.deepEqual(
        versions,
        Array.from({ length: got.item.version }, (_, i) => i + 1),
        `${key}: history versions 1..${got.item.version}`,
      );
    }

    const maxAck = Math.max(...acks.map((a) => a.revision));
    const fresh = await after.compareAndSet({
      namespace: NS,
      key: "after-restart",
      expected: { absent: true },
      value: Buffer.from("x"),
    });
    assert.equal(fresh.applied, true);
    assert.ok(fresh.header!.revision > maxAck, "revisions continue after the crash");
  });
});

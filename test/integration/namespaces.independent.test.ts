/**
 * Revisions are per namespace, so writes to different namespaces share no
 * row lock: with one namespace's revision row locked by another transaction,
 * a write to a second namespace (through another replica) is applied at once
 * while the first namespace's write waits, then is applied once the lock
 * goes. With one store-wide revision row, the second write would wait too.
 *
 * The same holds through one replica: its group commit puts one namespace in
 * a batch and runs batches of different namespaces side by side, so the
 * batch waiting for a's row does not hold up b's (with one batch in flight
 * holding every namespace, b's write would wait behind a's).
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { EventClient } from "../support/eventClient";
import { holdRowLock } from "../support/holdRowLock";
import { startCluster, type Cluster } from "../support/startCluster";

describe("namespaces never wait for each other's revision", function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;

  after(async () => {
    await cluster?.stop();
  });

  it("a write in namespace b commits while namespace a's revision row is held; a's write waits, then commits", async () => {
    cluster = await startCluster({ name: "ns_independent", replicas: 2 });
    const put = (namespace: string, deadlineMs = 60_000) =>
      cluster!.clients[namespace === "ns-a" ? 0 : 1]!.compareAndSet(
        { namespace, key: "k", expected: { any: true }, value: Buffer.from(namespace) },
        { deadlineMs },
      );
    // Both namespaces exist (their revision rows are made on first write).
    await put("ns-a");
    await put("ns-b");
    const release = await holdRowLock(
      cluster.databaseUrl,
      "SELECT revision FROM namespace_revisions WHERE namespace = $1 FOR UPDATE",
      ["ns-a"],
    );
    let aDone = false;
    const aWrite = put("ns-a").then((r) => {
      aDone = true;
      return r;
    });
    try {
      // a's write is really held on the row lock...
      await backendWaitingOnLock(cluster.databaseUrl);
      // ... and b's commits meanwhile (a store-wide revision row would hold it until the release).
      const b = await put("ns-b", 10_000);
      assert.equal(b.applied, true);
      assert.equal(b.header!.revision, 2);
      assert.equal(aDone, false, "a's write was held by its namespace's row lock");
    } finally {
      await release();
    }
    const a = await aWrite;
    assert.equal(a.applied, true);
    assert.equal(a.header!.revision, 2);
  });

  it("through one replica: b's write and b's append commit while a's batches wait for a's revision row", async () => {
    await cluster?.stop();
    cluster = await startCluster({ name: "ns_independent_one" });
    const client = cluster.clients[0]!;
    const events = new EventClient(cluster.servers[0]!.address);
    try {
      const put = (namespace: string, deadlineMs = 60_000) =>
        client.compareAndSet(
          { namespace, key: "k", expected: { any: true }, value: Buffer.from(namespace) },
          { deadlineMs },
        );
      const append = (namespace: string, deadlineMs = 60_000) =>
        events.appendEvent(
          {
            namespace,
            stream: "s",
            expected: { any: true },
            events: [{ id: randomUUID(), type: "t", data: Buffer.from("d"), metadata: {} }],
          },
          { deadlineMs },
        );
      await put("ns-a");
      await put("ns-b");
      const release = await holdRowLock(
        cluster.databaseUrl,
        "SELECT revision FROM namespace_revisions WHERE namespace = $1 FOR UPDATE",
        ["ns-a"],
      );
      let aDone = 0;
      const aCalls = [put("ns-a"), append("ns-a")].map((p) =>
        p.then((r) => {
          aDone++;
          return r;
        }),
      );
      try {
        await backendWaitingOnLock(cluster.databaseUrl, 2);
        const b = await put("ns-b", 10_000);
        assert.equal(b.applied, true);
        assert.equal(b.header!.revision, 2);
        const bAppend = await append("ns-b", 10_000);
        assert.equal(bAppend.applied, true);
        assert.equal(bAppend.position, 3);
        assert.equal(aDone, 0, "a's write and append were held by a's revision row");
      } finally {
        await release();
      }
      const [a, aAppend] = await Promise.all(aCalls);
      assert.equal(a!.applied, true);
      assert.equal(aAppend!.applied, true);
      assert.deepEqual([a!.header!.revision, aAppend!.header!.revision].sort(), [2, 3]);
    } finally {
      events.close();
    }
  });
});

/**
 * Group commit of appends: concurrent AppendEvent calls on one replica are
 * committed together (one agentstate_event_append call per batch), yet each
 * behaves as if made alone: its own expected version, fence, replay check,
 * deadline and positions, and a stream held elsewhere stalls only the appends
 * to that stream.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import type { AppendEventResponse, EventData } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { EventClient } from "../support/eventClient";
import { holdRowLock } from "../support/holdRowLock";
import { pgQuery } from "../support/pgQuery";
import { settle } from "../support/settle";
import { histogramStats } from "../support/histogramStats";
import { startCluster, type Cluster } from "../support/startCluster";

const NS = "ev-batch";

function ev(type = "t", data = "d"): EventData {
  return { id: randomUUID(), type, data: Buffer.from(data), metadata: {} };
}

describe("EventService: group commit of concurrent appends (real server, Postgres)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let c: EventClient;

  before(async () => {
    cluster = await startCluster({ name: "events_batch" });
    c = new EventClient(cluster.servers[0]!.address);
  });
  after(async () => {
    c?.close();
    await cluster?.stop();
  });

  /** Batches sent and appends in them so far, from the server's metrics. */
  async function batchStats(): Promise<{ batches: number; appends: number }> {
    const h = await histogramStats(cluster.servers[0]!, "agentstate_event_append_batch_size");
    return { batches: h.count, appends: h.sum };
  }

  async function dbEvents(stream: string): Promise<{ position: number; version: number; id: string }[]> {
    const rows = await pgQuery<{ position: string; version: string; id: string }>(
      cluster.databaseUrl,
      `SELECT position::text, stream_version::text AS version, event_id::text AS id FROM events
        WHERE namespace = $1 AND stream = $2 ORDER BY position`,
      [NS, stream],
    );
    return rows.map((r) => ({ position: Number(r.position), version: Number(r.version), id: r.id }));
  }

  it("many concurrent appends share batches; each gets its own consecutive positions, all durable", async () => {
    const before = await batchStats();
    const n = 60;
    const batches = Array.from({ length: n }, (_, i) => [ev(`a${i}`), ev(`b${i}`), ev(`c${i}`)]);
    const replies = await Promise.all(
      batches.map((events, i) =>
        c.appendEvent({ namespace: NS, stream: `many/${i}`, expected: { noStream: true }, events }),
      ),
    );
    const after = await batchStats();
    assert.ok(
      replies.every((r) => r.applied && !r.replayed && r.firstVersion === 1 && r.currentVersion === 3),
      "every append applied as versions 1..3 of its new stream",
    );
    assert.equal(after.appends - before.appends, n, "every append went through a batch");
    assert.ok(after.batches - before.batches < n, `${n} appends took ${after.batches - before.batches} batches`);
    const positions = replies.flatMap((r) => [r.position, r.position + 1, r.position + 2]);
    assert.equal(new Set(positions).size, 3 * n, "no position is given twice");
    assert.ok(
      replies.every((r) => r.header!.revision === r.position + 2),
      "each reply's revision is its last event's position",
    );
    for (const [i, r] of replies.entries()) {
      assert.deepEqual(await dbEvents(`many/${i}`), [
        { position: r.position, version: 1, id: batches[i]![0]!.id },
        { position: r.position + 1, version: 2, id: batches[i]![1]!.id },
        { position: r.position + 2, version: 3, id: batches[i]![2]!.id },
      ]);
    }
  });

  it("appends to one stream in one burst behave one at a time: exactly one expected-version append per version wins", async () => {
    await c.appendEvent({ namespace: NS, stream: "hot", expected: { noStream: true }, events: [ev()] });
    const n = 30;
    // Half unconditional, half expecting version 1: every unconditional one applies; one of the others.
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        c.appendEvent({
          namespace: NS,
          stream: "hot",
          expected: i % 2 === 0 ? { any: true } : { version: 1 },
          events: [ev(`e${i}`)],
        }),
      ),
    );
    const applied = replies.filter((r) => r.applied);
    assert.ok(applied.length >= n / 2 && applied.length <= n / 2 + 1, `${applied.length} applied`);
    const versions = applied.map((r) => r.firstVersion).sort((x, y) => x - y);
    assert.deepEqual(
      versions,
      Array.from({ length: applied.length }, (_, i) => i + 2),
      "dense versions, each once",
    );
    const rows = await dbEvents("hot");
    assert.deepEqual(
      rows.map((r) => r.version),
      Array.from({ length: rows.length }, (_, i) => i + 1),
    );
    assert.equal(rows.length, applied.length + 1);
  });

  it("one append's refusal (expected version, stale fence, reused id) leaves the others of its batch alone", async () => {
    await c.appendEvent({ namespace: NS, stream: "mixed/exists", expected: { noStream: true }, events: [ev()] });
    const reused = ev("first");
    await c.appendEvent({ namespace: NS, stream: "mixed/reused", expected: { any: true }, events: [reused] });
    const l1 = await c.lock({ namespace: NS, name: "mixed-lock", ttl: { seconds: 30, nanos: 0 } });
    const l2 = await c.lock({ namespace: NS, name: "mixed-lock-2", ttl: { seconds: 30, nanos: 0 } });
    await c.unlock({ namespace: NS, name: "mixed-lock", lockId: l1.lockId });
    const l1b = await c.lock({ namespace: NS, name: "mixed-lock", ttl: { seconds: 30, nanos: 0 } });
    assert.ok(l1b.fencingToken > l1.fencingToken);
    const good = Array.from({ length: 10 }, (_, i) =>
      settle(c.appendEvent({ namespace: NS, stream: `mixed/good/${i}`, expected: { any: true }, events: [ev()] })),
    );
    const [mismatch, stale, fenced, reuse, ...goods] = await Promise.all([
      settle(c.appendEvent({ namespace: NS, stream: "mixed/exists", expected: { noStream: true }, events: [ev()] })),
      settle(
        c.appendEvent({
          namespace: NS,
          stream: "mixed/stale",
          expected: { any: true },
          events: [ev()],
          fence: { lockName: "mixed-lock", token: l1.fencingToken },
        }),
      ),
      settle(
        c.appendEvent({
          namespace: NS,
          stream: "mixed/fenced",
          expected: { any: true },
          events: [ev()],
          fence: { lockName: "mixed-lock-2", token: l2.fencingToken },
        }),
      ),
      settle(
        c.appendEvent({
          namespace: NS,
          stream: "mixed/reused",
          expected: { any: true },
          events: [{ ...reused, data: Buffer.from("other") }],
        }),
      ),
      ...good,
    ]);
    const answer = (r: Awaited<typeof mismatch>) =>
      "ok" in r ? (r.ok.applied ? "applied" : "not applied") : status[r.err.code];
    assert.deepEqual([mismatch, stale, fenced, reuse].map(answer), [
      "not applied",
      "FAILED_PRECONDITION",
      "applied",
      "FAILED_PRECONDITION",
    ]);
    assert.ok(goods.every((g) => answer(g) === "applied"));
    assert.equal((await dbEvents("mixed/exists")).length, 1);
    assert.equal((await dbEvents("mixed/stale")).length, 0);
    assert.equal((await dbEvents("mixed/reused")).length, 1);
    const claims = await pgQuery(cluster.databaseUrl, "SELECT 1 FROM streams WHERE namespace = $1 AND version = 0", [
      NS,
    ]);
    assert.equal(claims.length, 0, "a refused append to a new stream leaves no stream row behind");
  });

  it("two appends in one burst carrying one event id to different streams: exactly one applies", async () => {
    for (let round = 0; round < 5; round++) {
      const shared = ev("shared");
      const answer = (p: Promise<AppendEventResponse>) =>
        settle(p).then((r) => ("ok" in r ? (r.ok.applied ? "applied" : "not applied") : status[r.err.code]));
      const others = Array.from({ length: 5 }, (_, i) =>
        answer(c.appendEvent({ namespace: NS, stream: `dup/${round}/o${i}`, expected: { any: true }, events: [ev()] })),
      );
      const answers = await Promise.all([
        answer(c.appendEvent({ namespace: NS, stream: `dup/${round}/x`, expected: { any: true }, events: [shared] })),
        answer(c.appendEvent({ namespace: NS, stream: `dup/${round}/y`, expected: { any: true }, events: [shared] })),
        ...others,
      ]);
      assert.deepEqual([...answers.slice(0, 2)].sort(), ["FAILED_PRECONDITION", "applied"], `round ${round}`);
      assert.ok(
        answers.slice(2).every((a) => a === "applied"),
        `round ${round}: the others`,
      );
      const rows = await pgQuery(cluster.databaseUrl, "SELECT 1 FROM events WHERE namespace = $1 AND event_id = $2", [
        NS,
        shared.id,
      ]);
      assert.equal(rows.length, 1);
    }
  });

  it("a stream held by another transaction stalls only its own appends", async () => {
    await c.appendEvent({ namespace: NS, stream: "held", expected: { noStream: true }, events: [ev()] });
    const release = await holdRowLock(
      cluster.databaseUrl,
      "SELECT 1 FROM streams WHERE namespace = $1 AND stream = $2 FOR UPDATE",
      [NS, "held"],
    );
    let heldDone = false;
    const held = c
      .appendEvent({ namespace: NS, stream: "held", expected: { version: 1 }, events: [ev("held")] })
      .finally(() => (heldDone = true));
    try {
      await backendWaitingOnLock(cluster.databaseUrl);
      const others = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          c.appendEvent({ namespace: NS, stream: `free/${i}`, expected: { any: true }, events: [ev()] }),
        ),
      );
      assert.ok(others.every((r) => r.applied));
      assert.equal(heldDone, false, "the held append is still waiting");
    } finally {
      await release();
    }
    const h = await held;
    assert.equal(h.applied, true);
    assert.equal(h.firstVersion, 2);
  });
});

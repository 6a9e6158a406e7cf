/**
 * How appends reach subscribers: the replica that committed an append wakes
 * its own subscribers and NOTIFYs the other replicas after the commit
 * (PgChangeNotifier.publish), not from inside the append's transaction.
 * Polling is set to a minute here, so delivery within the test's waits
 * comes from those wake-ups, not from the poll.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { EventData } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { EventClient, type Subscription } from "../support/eventClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

function ev(data = ""): EventData {
  return { id: randomUUID(), type: "e", data: Buffer.from(data), metadata: {} };
}

describe("EventService: wake-ups after commit (2 replicas, polling at 60 s)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let a: EventClient;
  let b: EventClient;
  const subs: Subscription[] = [];

  before(async () => {
    cluster = await startCluster({
      name: "events_fanout",
      replicas: 2,
      env: { AGENTSTATE_SUBSCRIBE_POLL_MS: "60000" },
    });
    a = new EventClient(cluster.servers[0]!.address);
    b = new EventClient(cluster.servers[1]!.address);
  });
  afterEach(() => {
    for (const s of subs.splice(0)) if (!s.end) s.cancel();
  });
  after(async () => {
    a?.close();
    b?.close();
    await cluster?.stop();
  });

  it("an append through replica A reaches subscribers on A (woken in process) and on B (NOTIFY after commit), well before a poll", async () => {
    const NS = "fan-wake";
    const onA = a.subscribe({ namespace: NS, stream: "s", afterPosition: 0 });
    const onB = b.subscribe({ namespace: NS, streamPrefix: "", afterPosition: 0 });
    subs.push(onA, onB);
    await Promise.all([onA.caughtUp, onB.caughtUp]);
    for (let i = 0; i < 5; i++) {
      const r = await a.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events: [ev(String(i))] });
      await Promise.all([onA.untilPosition(r.position, 20_000), onB.untilPosition(r.position, 20_000)]);
    }
    assert.deepEqual(
      onA.events.map((e) => e.data.toString()),
      ["0", "1", "2", "3", "4"],
    );
    assert.deepEqual(
      onB.events.map((e) => e.data.toString()),
      ["0", "1", "2", "3", "4"],
    );
  });

  it("the append statement itself sends no NOTIFY (Postgres would serialise every commit on its notify lock)", async () => {
    const rows = await pgQuery<{ src: string }>(
      cluster.databaseUrl,
      "SELECT prosrc AS src FROM pg_proc WHERE proname = 'agentstate_event_append'",
    );
    assert.equal(rows.length, 1);
    assert.doesNotMatch(rows[0]!.src, /pg_notify|NOTIFY/i);
  });
});

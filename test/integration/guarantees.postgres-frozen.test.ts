/**
 * A frozen Postgres cannot hang a call (issue 17): with every Postgres process
 * SIGSTOPped, each kind of call that needs the database ends with UNAVAILABLE
 * or DEADLINE_EXCEEDED by the client-side query timeout
 * (AGENTSTATE_QUERY_TIMEOUT_MS) or the pool's connect timeout (5 s), times a
 * generous factor for a loaded machine, far below the caller's own 60 s
 * deadline: AppendEvent, ReadStream, List, Get, CompareAndSet, Lock (the
 * Postgres lock backend; with and without a wait), Unlock, PutItem,
 * PutCheckpoint, and a Subscribe opened while frozen. A subscriber already
 * open stays open, and after SIGCONT it gets what is appended next; every
 * kind of call succeeds again. (health.dependencies.test.ts has Health's side
 * of the same freeze, with CompareAndSet and Get.)
 *
 * The case runs its own Postgres so freezing it disturbs no other test; it is
 * always continued in `after`.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Consistency } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { EventClient } from "../support/eventClient";
import { pgTree, signalTree } from "../support/pgFreeze";
import { PostgresProcess } from "../support/PostgresProcess";
import { startCluster, type Cluster } from "../support/startCluster";

const STATEMENT_TIMEOUT_MS = 1000;
const QUERY_TIMEOUT_MS = 2000;
/** The pool's connect timeout (createPool.ts: max(statement timeout, 5 s)), for a call that needs a new connection. */
const CONNECT_TIMEOUT_MS = 5000;
/** The later of the two timeouts, twice over (a retried statement), plus room for a loaded 2-core machine. */
const CALL_ENDS_WITHIN_MS = 2 * Math.max(QUERY_TIMEOUT_MS, CONNECT_TIMEOUT_MS) + 5000;
const CLIENT_DEADLINE_MS = 60_000;
const NS = "frozen";

interface Ended {
  rpc: string;
  ms: number;
  code: string;
  details: string;
}

describe("guarantee: a frozen Postgres (SIGSTOP) ends every kind of call by the configured timeouts; SIGCONT -> recovery", function () {
  this.timeout(120_000);
  let pg: PostgresProcess | undefined;
  let cluster: Cluster | undefined;
  let events: EventClient | undefined;
  let frozen: number[] = [];

  before(async () => {
    pg = await PostgresProcess.start();
    await pg.createDatabase("frozenpg");
    cluster = await startCluster({
      databaseUrl: pg.url("frozenpg"),
      env: {
        AGENTSTATE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        AGENTSTATE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      },
    });
    events = new EventClient(cluster.servers[0]!.address, { ownChannel: true });
  });
  after(async () => {
    signalTree(frozen, "SIGCONT");
    events?.close();
    await cluster?.stop();
    await pg?.destroy();
  });

  it("AppendEvent, ReadStream, List, Get, CompareAndSet, Lock, Unlock, PutItem, PutCheckpoint, Subscribe: UNAVAILABLE or DEADLINE_EXCEEDED within the bound; an open subscriber resumes", async () => {
    const client = cluster!.clients[0]!;
    const ev = events!;
    const deadlineMs = CLIENT_DEADLINE_MS;
    const ttl = { seconds: 30 };
    // What the calls below find: an item, a stream, a lock held by someone else, a store item.
    await client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("v") });
    const first = await ev.appendEvent({
      namespace: NS,
      stream: "s",
      expected: { any: true },
      events: [{ id: randomUUID(), type: "t" }],
    });
    const held = await client.lock({ namespace: NS, name: "held", ttl, wait: { seconds: 0 }, owner: "other" });
    const mine = await client.lock({ namespace: NS, name: "mine", ttl, wait: { seconds: 0 }, owner: "me" });
    const open = ev.subscribe({ namespace: NS, stream: "s" });
    await open.caughtUp;
    // Warm the pool, so most calls meet a connection already open (the query timeout rather than the connect one).
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        client.get({ namespace: NS, key: `warm${i}`, consistency: Consistency.CONSISTENCY_DATABASE }),
      ),
    );

    frozen = pgTree(pg!);
    assert.ok(frozen.length > 1, "the postmaster and its backends");
    signalTree(frozen, "SIGSTOP");
    const t0 = Date.now();
    const ended = async (rpc: string, call: () => Promise<unknown>): Promise<Ended> => {
      const start = Date.now();
      try {
        await call();
      } catch (err) {
        const e = err as ServiceError;
        return { rpc, ms: Date.now() - start, code: status[e.code] ?? String(e.code), details: e.details };
      }
      return { rpc, ms: Date.now() - start, code: "OK", details: "" };
    };
    const calls = await Promise.all([
      ended("AppendEvent", () =>
        ev.appendEvent(
          { namespace: NS, stream: "s", expected: { any: true }, events: [{ id: randomUUID(), type: "t" }] },
          { deadlineMs },
        ),
      ),
      ended("ReadStream", () => ev.readStream({ namespace: NS, stream: "s" }, { deadlineMs })),
      ended("List", () => client.list({ namespace: NS, prefix: "" }, { deadlineMs })),
      ended("Get", () =>
        client.get({ namespace: NS, key: "k", consistency: Consistency.CONSISTENCY_DATABASE }, { deadlineMs }),
      ),
      ended("CompareAndSet", () =>
        client.compareAndSet(
          { namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("w") },
          { deadlineMs },
        ),
      ),
      ended("Lock (no wait)", () =>
        client.lock({ namespace: NS, name: "free", ttl, wait: { seconds: 0 }, owner: "me" }, { deadlineMs }),
      ),
      ended("Lock (waiting 50 s on a held lock)", () =>
        client.lock({ namespace: NS, name: "held", ttl, wait: { seconds: 50 }, owner: "me" }, { deadlineMs }),
      ),
      ended("Unlock", () => client.unlock({ namespace: NS, name: "mine", lockId: mine.lockId }, { deadlineMs })),
      ended("PutItem", () =>
        client.putItem({ namespace: NS, path: ["p"], key: "i", valueJson: '{"a":1}' }, { deadlineMs }),
      ),
      ended("PutCheckpoint", () =>
        client.putCheckpoint(
          {
            namespace: NS,
            threadId: randomUUID(),
            checkpointNs: "",
            checkpointId: "ckpt-00000001",
            parentCheckpointId: "",
            document: { type: "json", data: Buffer.from("{}") },
            metadataJson: Buffer.from("{}"),
          },
          { deadlineMs },
        ),
      ),
      ended("Subscribe (opened while frozen)", async () => {
        const s = ev.subscribe({ namespace: NS, stream: "s" }, { deadlineMs });
        const end = await Promise.race([
          s.ended,
          s.caughtUp.then(() => ({ code: status.OK, details: "caught up while frozen" })),
        ]);
        s.cancel();
        if (end.code !== status.OK) throw Object.assign(new Error(end.details), end);
      }),
    ]);
    const frozenFor = Date.now() - t0;
    for (const c of calls) console.log(`      frozen: ${c.rpc}: ${c.code} after ${c.ms} ms (${c.details})`);
    const stillOpen = open.end === undefined;

    signalTree(frozen, "SIGCONT");
    frozen = [];
    // Recovery: every kind of call succeeds again (retried while the pool replaces connections it gave up on).
    const retry = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          return await call();
        } catch (err) {
          if (Date.now() > until) throw new Error(`${what} still failing 30 s after SIGCONT: ${String(err)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    const after = await retry("AppendEvent", () =>
      ev.appendEvent({
        namespace: NS,
        stream: "s",
        expected: { any: true },
        events: [{ id: randomUUID(), type: "after" }],
      }),
    );
    await open.untilPosition(after.position, 30_000);
    await retry("ReadStream", () => ev.readStream({ namespace: NS, stream: "s" }));
    await retry("List", () => client.list({ namespace: NS, prefix: "" }));
    await retry("CompareAndSet", () =>
      client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("x") }),
    );
    await retry("Lock", () => client.lock({ namespace: NS, name: "free2", ttl, wait: { seconds: 0 }, owner: "me" }));
    await retry("PutItem", () => client.putItem({ namespace: NS, path: ["p"], key: "j", valueJson: '{"a":2}' }));
    const resumed = ev.subscribe({ namespace: NS, stream: "s" });
    await resumed.caughtUp;
    resumed.cancel();
    console.log(
      `      all frozen calls ended within ${frozenFor} ms (bound per call ${CALL_ENDS_WITHIN_MS} ms, client deadline ${CLIENT_DEADLINE_MS} ms); ` +
        `the open subscriber ${stillOpen ? "stayed open" : `ended ${open.end?.details}`} and got the append after SIGCONT (position ${after.position}; first ${first.position})`,
    );

    for (const c of calls) {
      assert.ok(
        c.code === "UNAVAILABLE" || c.code === "DEADLINE_EXCEEDED",
        `${c.rpc} on a frozen Postgres: ${c.code} ${c.details}`,
      );
      assert.ok(c.ms < CALL_ENDS_WITHIN_MS, `${c.rpc} took ${c.ms} ms on a frozen Postgres (${c.details})`);
    }
    assert.ok(stillOpen, `the subscriber open before the freeze ended: ${open.end?.details}`);
    assert.ok(held.lockId.length > 0);
  });
});

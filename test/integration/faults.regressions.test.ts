/**
 * Regressions for failures the fault harness (test/faults) found, each made
 * deterministic here. Tests of bugs not yet fixed in src/ are `it.skip` with
 * a `// BUG:` comment saying what fails and where; remove the `.skip` with
 * the fix.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { status, type ServiceError } from "@grpc/grpc-js";
import {
  AgentstateClient as AgentstateClientImpl,
  type AgentstateClient,
} from "../../clients/typescript/src/AgentstateClient";
import { findToxiproxy } from "../faults/goTools";
import { ToxiproxyServer } from "../faults/ToxiproxyServer";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { EventClient } from "../support/eventClient";
import { holdRowLock } from "../support/holdRowLock";
import { duration, LockClient } from "../support/lockClients";
import { pgQuery } from "../support/pgQuery";
import { ServerProcess } from "../support/ServerProcess";
import { settle } from "../support/settle";
import { startCluster, type Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";

const NS = "faultreg";

function idleEvent(i: number) {
  return { id: randomUUID(), type: "idle", data: Buffer.from(String(i)), metadata: {} };
}

async function assertStillServing(server: ServerProcess, client: AgentstateClient): Promise<void> {
  assert.equal(server.running, true, `the replica crashed:\n${server.tail(30)}`);
  const g = await client.get({ namespace: NS, key: "alive" });
  assert.equal(g.found, false);
}

describe("fault regressions: a Postgres connection lost mid-transaction", function () {
  this.timeout(60_000);
  let cluster: Cluster | undefined;

  beforeEach(async () => {
    // Locks in Postgres too (no Redis), so every store's transaction path is reachable.
    // (The default 5 s statement timeout leaves ample time to terminate the waiting backend.)
    cluster = await startCluster({ name: "faultreg" });
  });

  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  function replica(): { server: ServerProcess; client: AgentstateClient; dbUrl: string } {
    assert.ok(cluster);
    return { server: cluster.servers[0]!, client: cluster.clients[0]!, dbUrl: cluster.databaseUrl };
  }

  it("CompareAndSet whose backend is terminated while it waits answers UNAVAILABLE; the replica survives", async () => {
    const { server, client, dbUrl } = replica();
    await client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("v1") });
    const release = await holdRowLock(dbUrl, "SELECT 1 FROM kv WHERE namespace = $1 FOR UPDATE", [NS]);
    try {
      const pending = settle(
        client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("v2") }),
      );
      const pid = await backendWaitingOnLock(dbUrl);
      await pgQuery(dbUrl, "SELECT pg_terminate_backend($1)", [pid]);
      const outcome = await pending;
      assert.ok("err" in outcome, "the write cannot have succeeded: its backend was terminated");
      assert.equal(outcome.err.code, status.UNAVAILABLE, outcome.err.details);
    } finally {
      await release();
    }
    await assertStillServing(server, client);
  });

  it("AppendEvent whose backend is terminated while it waits answers UNAVAILABLE; the replica survives", async () => {
    const { server, client, dbUrl } = replica();
    const events = new EventClient(server.address);
    try {
      await events.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events: [{ type: "t" }] });
      const release = await holdRowLock(dbUrl, "SELECT 1 FROM streams WHERE namespace = $1 FOR UPDATE", [NS]);
      try {
        const pending = settle(
          events.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events: [{ type: "t" }] }),
        );
        const pid = await backendWaitingOnLock(dbUrl);
        await pgQuery(dbUrl, "SELECT pg_terminate_backend($1)", [pid]);
        const outcome = await pending;
        assert.ok("err" in outcome, "the append cannot have succeeded: its backend was terminated");
        assert.equal(outcome.err.code, status.UNAVAILABLE, outcome.err.details);
      } finally {
        await release();
      }
    } finally {
      events.close();
    }
    await assertStillServing(server, client);
  });
});

describe("fault regressions: a write transaction left idle by a slow link to Postgres", function () {
  this.timeout(120_000);
  let toxi: ToxiproxyServer | undefined;
  let server: ServerProcess | undefined;
  let client: AgentstateClient | undefined;

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    const env = await getTestEnv();
    const db = new URL(await env.freshDatabase("idletx"));
    toxi = await ToxiproxyServer.start(await findToxiproxy());
    const proxy = await toxi.createProxy("pg", `127.0.0.1:${env.pg.port}`);
    db.port = String(proxy.listenPort);
    server = await ServerProcess.start({
      DATABASE_URL: db.toString(),
      REDIS_URL: "",
      // idle_in_transaction_session_timeout is the statement timeout: 300 ms.
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "300",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "1000",
    });
    client = new AgentstateClientImpl(server.address);
  });

  after(async () => {
    client?.close();
    await server?.stop();
    await toxi?.stop();
  });

  // Postgres ends a transaction whose next statement is late (25P03): nothing was written, UNAVAILABLE.
  // A Lock in Postgres (the embedded default's locks) is a multi-statement
  // transaction; a KV write and an append are each one statement in
  // autocommit, so a slow link makes them slow but never leaves them idle.
  it("a write whose transaction Postgres ends for idling answers UNAVAILABLE, never INTERNAL", async () => {
    assert.ok(client && toxi && server);
    const events = new EventClient(server.address);
    const locks = new LockClient(server.address);
    await client.compareAndSet({ namespace: NS, key: "idle", expected: { any: true }, value: Buffer.from("v0") });
    await events.appendEvent({ namespace: NS, stream: "idle", expected: { any: true }, events: [idleEvent(0)] });
    await toxi.addToxic("pg", { name: "slow", type: "latency", attributes: { latency: 800, jitter: 0 } });
    const kvAnswers: string[] = [];
    const appendAnswers: string[] = [];
    const lockAnswers: string[] = [];
    const answer = (r: { ok: unknown } | { err: ServiceError }) =>
      "ok" in r ? "OK" : `${status[r.err.code]}: ${r.err.details}`;
    try {
      for (let i = 1; i <= 2; i++) {
        kvAnswers.push(
          answer(
            await settle(
              client.compareAndSet(
                { namespace: NS, key: "idle", expected: { any: true }, value: Buffer.from(`v${i}`) },
                { deadlineMs: 30_000 },
              ),
            ),
          ),
        );
        appendAnswers.push(
          answer(
            await settle(
              events.appendEvent(
                { namespace: NS, stream: "idle", expected: { any: true }, events: [idleEvent(i)] },
                { deadlineMs: 30_000 },
              ),
            ),
          ),
        );
      }
      for (let i = 1; i <= 3; i++) {
        lockAnswers.push(
          answer(
            await settle(
              locks.lock(
                { namespace: NS, name: `idle-${i}`, ttl: duration(10_000), wait: duration(0) },
                { deadlineMs: 30_000 },
              ),
            ),
          ),
        );
      }
    } finally {
      await toxi.removeToxic("pg", "slow");
      events.close();
      locks.close();
    }
    assert.equal(server.running, true, `the replica crashed:\n${server.tail(30)}`);
    assert.deepEqual(kvAnswers, ["OK", "OK"], `KV writes: ${kvAnswers.join("; ")}`);
    assert.deepEqual(appendAnswers, ["OK", "OK"], `appends: ${appendAnswers.join("; ")}`);
    assert.deepEqual(
      lockAnswers.filter((a) => a.startsWith("INTERNAL")),
      [],
      `answers: ${lockAnswers.join("; ")}`,
    );
    assert.ok(
      lockAnswers.some((a) => a.startsWith("UNAVAILABLE")),
      `the idle timeout was hit: ${lockAnswers.join("; ")}`,
    );
  });
});

import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { Client } from "pg";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { HealthClient } from "../support/HealthClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const NS = "shutdown";

describe("graceful shutdown: SIGTERM", function () {
  this.timeout(60_000);
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({
      name: "shutdown",
      env: {
        // Room for the held write below; the test itself never waits for these.
        AGENTSTATE_SHUTDOWN_GRACE_MS: "30000",
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "30000",
        AGENTSTATE_CACHE_MARKER_TTL_MS: "60000",
      },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("reports NOT_SERVING, refuses new calls, completes the call in flight, and exits 0", async () => {
    const server = cluster.servers[0]!;
    const client = cluster.clients[0]!;
    const created = await client.compareAndSet({
      namespace: NS,
      key: "held",
      expected: { absent: true },
      value: Buffer.from("1"),
    });
    assert.equal(created.applied, true);

    const health = new HealthClient(server.address);
    const watch = health.watch("");
    const locker = new Client({ connectionString: cluster.databaseUrl });
    locker.on("error", () => undefined);
    await locker.connect();
    try {
      await watch.until("SERVING");

      // Hold the key's row lock in Postgres so the next write is really in flight.
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [NS, Buffer.from("held")]);
      const inFlight = client.compareAndSet(
        { namespace: NS, key: "held", expected: { version: 1 }, value: Buffer.from("2") },
        { deadlineMs: 50_000 },
      );
      inFlight.catch(() => undefined); // awaited below
      await eventually("the write to wait on the row lock", async () => {
        const rows = await pgQuery<{ n: number }>(
          cluster.databaseUrl,
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'agentstate' AND wait_event_type = 'Lock'`,
        );
        return rows[0]!.n === 1;
      });

      const exited = server.kill("SIGTERM");
      await watch.until("NOT_SERVING");
      watch.cancel(); // an open watch is itself a call the server would wait for

      const late = new AgentstateClient(server.address, { deadlineMs: 5_000 });
      try {
        await expectGrpcError(late.get({ namespace: NS, key: "held" }), status.UNAVAILABLE);
      } finally {
        late.close();
      }
      assert.equal(server.running, true, "the server waits for the call in flight");

      await locker.query("COMMIT");
      const res = await inFlight;
      assert.equal(res.applied, true, "the call in flight completed");
      assert.equal(res.item?.version, 2);

      assert.deepEqual(await exited, { code: 0, signal: null });
      const msgs = server.logs().map((l) => l.msg);
      assert.ok(
        msgs.includes("shutting down") && msgs.includes("stopped"),
        `shutdown logged: ${msgs.slice(-5).join(", ")}`,
      );
    } finally {
      health.close();
      await locker.end().catch(() => undefined);
    }

    const rows = await pgQuery<{ version: string; value: Buffer }>(
      cluster.databaseUrl,
      "SELECT version, value FROM kv WHERE namespace = $1 AND key = $2",
      [NS, Buffer.from("held")],
    );
    assert.deepEqual(
      rows.map((r) => [Number(r.version), r.value.toString()]),
      [[2, "2"]],
      "the completed write is durable",
    );
  });

  it("an idle server exits 0 on SIGTERM", async () => {
    const { server, client } = await cluster.addReplica({ AGENTSTATE_SHUTDOWN_GRACE_MS: "30000" });
    assert.equal((await client.get({ namespace: NS, key: "held" })).found, true);
    assert.deepEqual(await server.kill("SIGTERM"), { code: 0, signal: null });
  });
});

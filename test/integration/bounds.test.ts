/**
 * Bounds under abuse, against a real server over real gRPC on loopback: the
 * metadata entries per event (a huge map is refused cheaply, nothing written).
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { EventClient } from "../support/eventClient";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { cpuSeconds } from "../support/procfs";
import { startCluster, type Cluster } from "../support/startCluster";

const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));

describe("bounds", function () {
  this.timeout(60_000);

  describe("metadata entries per event", () => {
    let cluster: Cluster;
    let c: EventClient;
    before(async () => {
      cluster = await startCluster({ env: { AGENTSTATE_MAX_EVENT_METADATA_ENTRIES: "8" } });
      c = new EventClient(cluster.servers[0]!.address);
    });
    after(async () => {
      c?.close();
      await cluster?.stop();
    });

    it("INVALID_ARGUMENT naming the field and the limit, nothing written; 8 entries accepted", async () => {
      const NS = "bounds-md";
      const ok = await c.appendEvent({
        namespace: NS,
        stream: "s",
        expected: { noStream: true },
        events: [{ id: randomUUID(), type: "t", metadata: entries(8) }],
      });
      assert.equal(ok.applied, true);
      const err = await expectGrpcError(
        c.appendEvent({
          namespace: NS,
          stream: "s",
          expected: { any: true },
          events: [
            { id: randomUUID(), type: "t" },
            { id: randomUUID(), type: "t", metadata: entries(9) },
          ],
        }),
        status.INVALID_ARGUMENT,
        { field: "events[1].metadata" },
      );
      assert.match(err.details, /the limit is 8 \(AGENTSTATE_MAX_EVENT_METADATA_ENTRIES\)/);
      const rows = await pgQuery<{ n: string }>(
        cluster.databaseUrl,
        "SELECT count(*)::text AS n FROM events WHERE namespace = $1",
        [NS],
      );
      assert.equal(rows[0]?.n, "1", "only the accepted append was written");
    });

    it("a 250k-entry map is refused cheaply (server CPU measured)", async () => {
      const pid = cluster.servers[0]!.pid!;
      const md = entries(250_000);
      const before = cpuSeconds(pid);
      const t0 = performance.now();
      await expectGrpcError(
        c.appendEvent({
          namespace: "bounds-md",
          stream: "big",
          expected: { any: true },
          events: [{ id: randomUUID(), type: "t", metadata: md }],
        }),
        status.INVALID_ARGUMENT,
        { field: "events[0].metadata" },
      );
      const cpu = cpuSeconds(pid) - before;
      console.log(
        `      250k-entry append refused: server CPU ${cpu.toFixed(2)} s, wall ${(performance.now() - t0).toFixed(0)} ms`,
      );
      assert.ok(cpu < 0.15, `server CPU for a refused 250k-entry append: ${cpu} s`);
    });
  });
});

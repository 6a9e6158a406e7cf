import * as assert from "node:assert/strict";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { freePort } from "../support/freePort";
import { HEALTHCHECK, runToExit } from "../support/runToExit";
import { startCluster, type Cluster } from "../support/startCluster";

/** Runs the health-check script (what the Dockerfile's HEALTHCHECK runs) against `port`. */
function runHealthcheck(port: number, timeoutMs = 2000) {
  return runToExit(
    HEALTHCHECK,
    { AGENTSTATE_PORT: String(port), AGENTSTATE_HEALTHCHECK_TIMEOUT_MS: String(timeoutMs) },
    30_000,
  );
}

describe("operations: the container health-check script", function () {
  let cluster: Cluster | undefined;

  after(async () => {
    await cluster?.stop();
  });

  it("exits 0 while the server answers SERVING", async () => {
    cluster = await startCluster({ name: "healthcheck" });
    const r = await runHealthcheck(cluster.servers[0]!.port);
    assert.equal(r.code, 0, r.stderr);
  });

  it("exits non-zero when the server answers NOT_SERVING", async () => {
    const server = new Server();
    const health = new HealthImplementation({ "": "NOT_SERVING" });
    health.addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    try {
      const r = await runHealthcheck(port);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /NOT_SERVING/);
    } finally {
      server.forceShutdown();
    }
  });

  it("exits non-zero, within its timeout, when nothing listens", async () => {
    const port = await freePort();
    const r = await runHealthcheck(port, 1000);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /health check failed/);
    // The timeout plus process start-up, with room for a loaded machine.
    assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
  });
});

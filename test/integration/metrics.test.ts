/**
 * Prometheus metrics over HTTP: per-RPC counters and latency histograms with
 * status codes, cache read outcomes, lock waits and Postgres pool use.
 */
import { strict as assert } from "node:assert";
import { get as httpGet } from "node:http";
import { credentials } from "@grpc/grpc-js";
import { LockRequest, LockServiceClient, type LockResponse } from "../../clients/typescript/src/gen/agentstate/v1/lock";
import { startCluster, type Cluster } from "../support/startCluster";

function fetchText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

describe("metrics", function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let metricsUrl: string;

  before(async () => {
    cluster = await startCluster({ name: "metrics", redis: true });
    const listening = cluster.servers[0]!.logs().find((l) => l["msg"] === "listening");
    assert.ok(listening && typeof listening["metrics"] === "string", "listening log names the metrics address");
    metricsUrl = `http://${String(listening["metrics"])}/metrics`;
  });
  after(async () => {
    await cluster?.stop();
  });

  it("exposes RPC counts and latencies by status, cache outcomes, lock waits and pool use", async () => {
    const c = cluster.clients[0]!;
    await c.compareAndSet({ namespace: "m", key: "k", expected: { any: true }, value: Buffer.from("v") });
    await c.get({ namespace: "m", key: "k" });
    await c.get({ namespace: "BAD", key: "k" }).catch(() => undefined);
    const locks = new LockServiceClient(cluster.servers[0]!.address, credentials.createInsecure());
    const lock = await new Promise<LockResponse>((resolve, reject) =>
      locks.lock(LockRequest.fromPartial({ namespace: "m", name: "l", ttl: { seconds: 5 }, owner: "t" }), (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
    locks.close();
    assert.equal(lock.acquired, true);
    const { status, body } = await fetchText(metricsUrl);
    assert.equal(status, 200);
    assert.match(body, /agentstate_rpc_total\{rpc="CompareAndSet",code="OK"\} 1/);
    assert.match(body, /agentstate_rpc_total\{rpc="Get",code="INVALID_ARGUMENT"\} 1/);
    assert.match(body, /agentstate_rpc_duration_seconds_bucket\{le="[^"]+",rpc="Get",code="OK"\}/);
    assert.match(body, /agentstate_cache_reads_total\{outcome="[a-z]+"\}/);
    assert.match(body, /agentstate_lock_wait_seconds_count\{outcome="acquired"\} 1/);
    assert.match(body, /agentstate_pg_pool_connections\{state="total"\} [1-9]/);
    assert.match(body, /process_resident_memory_bytes/);
    assert.equal((await fetchText(metricsUrl.replace("/metrics", "/other"))).status, 404);
  });
});

/**
 * Prometheus metrics over HTTP: per-RPC counters and latency histograms with
 * status codes, cache read outcomes, lock waits and Postgres pool use.
 */
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { join } from "node:path";
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

  it("exports exactly the metrics and label values the README's table lists", async () => {
    const c = cluster.clients[0]!;
    await c.compareAndSet({ namespace: "m", key: "readme", expected: { any: true }, value: Buffer.from("v") });
    await c.get({ namespace: "m", key: "readme" });
    const { body } = await fetchText(metricsUrl);
    const exported = new Set([...body.matchAll(/^# TYPE (agentstate_\w+) /gm)].map((m) => m[1]!));
    const table = readmeMetrics();
    assert.deepEqual([...exported].sort(), [...table.keys()].sort(), "README metric names vs /metrics");
    for (const [name, labels] of table) {
      for (const [label, values] of labels) {
        const seen = new Set(
          [...body.matchAll(new RegExp(`^${name}(?:_bucket|_sum|_count)?\\{[^}]*\\b${label}="([^"]*)"`, "gm"))].map(
            (m) => m[1]!,
          ),
        );
        if (values.length === 0) continue; // a label whose values are open (rpc, code)
        for (const v of seen) assert.ok(values.includes(v), `${name}{${label}="${v}"} is not in the README`);
        // The cache outcomes are exported from the start: every README value is there.
        if (name.startsWith("agentstate_cache_")) assert.deepEqual([...seen].sort(), [...values].sort(), name);
      }
    }
  });
});

/** The README's metrics table: metric name -> label -> the values it lists (empty: open-ended). */
function readmeMetrics(): Map<string, Map<string, string[]>> {
  const md = readFileSync(join(__dirname, "../../../README.md"), "utf8");
  const block = /<!-- metrics:begin -->([\s\S]*?)<!-- metrics:end -->/.exec(md);
  assert.ok(block, "README has no metrics table");
  const table = new Map<string, Map<string, string[]>>();
  for (const row of block[1]!.split("\n")) {
    const cells = row.split("|").map((c) => c.trim());
    const name = /^`(agentstate_\w+)`$/.exec(cells[1] ?? "")?.[1];
    if (name === undefined) continue;
    const labels = new Map<string, string[]>();
    // "`outcome`: `hit`, `miss`" or "`rpc`, `code`"
    const spec = cells[2] ?? "";
    const m = /^`(\w+)`: (.*)$/.exec(spec);
    if (m)
      labels.set(
        m[1]!,
        [...m[2]!.matchAll(/`([^`]+)`/g)].map((v) => v[1]!),
      );
    else for (const l of spec.matchAll(/`(\w+)`/g)) labels.set(l[1]!, []);
    table.set(name, labels);
  }
  return table;
}

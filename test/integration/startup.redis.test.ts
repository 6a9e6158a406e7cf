/**
 * A cache Redis that refuses the server's credentials (WRONGPASS) is named at
 * start at error level, with the cause and never the password; the server
 * still serves from Postgres. With AGENTSTATE_CACHE_REQUIRED=1 an
 * unreachable or refusing cache Redis is fatal: exit 1, "failed to start",
 * naming the cause.
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { freePort } from "../support/freePort";
import { startCluster, type Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";

const MAIN = resolve(__dirname, "../../src/main.js");
const SECRET = "s3cret-never-logged";

/** The run's Redis, as a user that does not exist: it answers WRONGPASS. */
async function wrongPasswordUrl(): Promise<string> {
  const u = new URL((await getTestEnv()).redis.url);
  u.username = "nosuchuser";
  u.password = SECRET;
  return u.toString();
}

function run(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [MAIN],
      {
        env: {
          PATH: process.env.PATH ?? "",
          AGENTSTATE_PORT: "0",
          AGENTSTATE_METRICS_PORT: "-1",
          LOG_FORMAT: "json",
          ...env,
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) =>
        done({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, output: stdout + stderr }),
    );
  });
}

function lines(output: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("startup: a cache Redis with the wrong password", function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;

  after(async () => {
    await cluster?.stop();
  });

  it("is logged at error level with the cause (no secret), and the server serves from Postgres", async () => {
    cluster = await startCluster({ env: { REDIS_URL: await wrongPasswordUrl(), REDLOCK_URLS: "" } });
    const server = cluster.servers[0]!;
    const line = server.logs().find((l) => String(l["msg"]).startsWith("redis refused the credentials"));
    assert.ok(line, server.tail(30));
    assert.equal(line["level"], "error");
    assert.equal(line["dependency"], "redis (cache)");
    assert.match(String(line["reason"]), /^authentication failed \(wrong user name or password\)/);
    assert.ok(!server.tail(200).includes(SECRET), "the password is never logged");
    const g = await cluster.clients[0]!.get({ namespace: "redisauth", key: "k" });
    assert.equal(g.found, false);
  });

  it("with AGENTSTATE_CACHE_REQUIRED=1: exit 1, naming the cause", async () => {
    const databaseUrl = await (await getTestEnv()).freshDatabase("redisreq");
    const r = await run({
      DATABASE_URL: databaseUrl,
      REDIS_URL: await wrongPasswordUrl(),
      AGENTSTATE_CACHE_REQUIRED: "1",
    });
    assert.equal(r.code, 1, r.output);
    const failed = lines(r.output).find((l) => l["msg"] === "failed to start");
    assert.ok(failed, r.output);
    assert.equal(failed["level"], "error");
    assert.equal(failed["dependency"], "redis (cache)");
    assert.match(String(failed["reason"]), /^authentication failed/);
    assert.ok(!r.output.includes(SECRET), "the password is never logged");
  });

  it("with AGENTSTATE_CACHE_REQUIRED=1, an unreachable Redis: exit 1, connection refused", async () => {
    const databaseUrl = await (await getTestEnv()).freshDatabase("redisreq");
    const port = await freePort();
    const r = await run({
      DATABASE_URL: databaseUrl,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      AGENTSTATE_CACHE_REQUIRED: "1",
    });
    assert.equal(r.code, 1, r.output);
    const failed = lines(r.output).find((l) => l["msg"] === "failed to start");
    assert.ok(failed, r.output);
    assert.equal(failed["dependency"], "redis (cache)");
    assert.match(String(failed["reason"]), /connection refused/);
  });
});

/**
 * A cache Redis that refuses the server's credentials (WRONGPASS) is named at
 * start at error level, with the cause and never the password; the server
 * still serves from Postgres. With AGENTSTATE_CACHE_REQUIRED=1 an
 * unreachable or refusing cache Redis is fatal: exit 1, "failed to start",
 * naming the cause.
 */
import * as assert from "node:assert/strict";
import { freePort } from "../support/freePort";
import { startCluster, type Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";
import { runToExit, SERVER_MAIN } from "../support/runToExit";

const SECRET = "s3cret-never-logged";

/** The run's Redis, as a user that does not exist: it answers WRONGPASS. */
async function wrongPasswordUrl(): Promise<string> {
  const u = new URL((await getTestEnv()).redis.url);
  u.username = "nosuchuser";
  u.password = SECRET;
  return u.toString();
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
    const r = await runToExit(SERVER_MAIN, {
      LOG_FORMAT: "json",
      DATABASE_URL: databaseUrl,
      REDIS_URL: await wrongPasswordUrl(),
      AGENTSTATE_CACHE_REQUIRED: "1",
    });
    assert.equal(r.code, 1, r.output);
    const failed = r.lines.find((l) => l["msg"] === "failed to start");
    assert.ok(failed, r.output);
    assert.equal(failed["level"], "error");
    assert.equal(failed["dependency"], "redis (cache)");
    assert.match(String(failed["reason"]), /^authentication failed/);
    assert.ok(!r.output.includes(SECRET), "the password is never logged");
  });

  it("with AGENTSTATE_CACHE_REQUIRED=1, an unreachable Redis: exit 1, connection refused", async () => {
    const databaseUrl = await (await getTestEnv()).freshDatabase("redisreq");
    const port = await freePort();
    const r = await runToExit(SERVER_MAIN, {
      LOG_FORMAT: "json",
      DATABASE_URL: databaseUrl,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      AGENTSTATE_CACHE_REQUIRED: "1",
    });
    assert.equal(r.code, 1, r.output);
    const failed = r.lines.find((l) => l["msg"] === "failed to start");
    assert.ok(failed, r.output);
    assert.equal(failed["dependency"], "redis (cache)");
    assert.match(String(failed["reason"]), /connection refused/);
  });
});

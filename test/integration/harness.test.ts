import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { Client } from "pg";
import { pgQuery } from "../support/pgQuery";
import { Redis } from "ioredis";
import { freePort } from "../support/freePort";
import { PostgresProcess } from "../support/PostgresProcess";
import { RedisProcess } from "../support/RedisProcess";
import { getTestEnv } from "../support/TestEnv";

async function withRedis<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

describe("test harness (real processes)", function () {
  this.timeout(120_000);

  describe("freePort", () => {
    it("returns distinct usable ports", async () => {
      const a = await freePort();
      const b = await freePort();
      assert.ok(a > 0 && a < 65536);
      assert.ok(b > 0 && b < 65536);
    });
  });

  describe("PostgresProcess", () => {
    let pg: PostgresProcess;
    before(async () => {
      pg = await PostgresProcess.start();
    });
    after(async () => {
      await pg?.destroy();
      if (pg) assert.equal(fs.existsSync(pg.dataDir), false, "destroy() removes the data dir");
    });

    it("answers select 1", async () => {
      const rows = await pgQuery<{ one: number }>(pg.adminUrl, "select 1 as one");
      assert.deepEqual(rows, [{ one: 1 }]);
    });

    it("creates, uses, templates and drops databases", async () => {
      await pg.createDatabase("h_base");
      await pgQuery(pg.url("h_base"), "create table kv (k text primary key, v text)");
      await pgQuery(pg.url("h_base"), "insert into kv values ('a', '1')");
      await pg.createDatabase("h_copy", "h_base");
      assert.deepEqual(await pgQuery(pg.url("h_copy"), "select k, v from kv"), [{ k: "a", v: "1" }]);
      await pg.dropDatabase("h_copy");
      const dbs = await pgQuery<{ datname: string }>(
        pg.adminUrl,
        "select datname from pg_database where datname like 'h_%'",
      );
      assert.deepEqual(
        dbs.map((r) => r.datname),
        ["h_base"],
      );
    });

    it("keeps data and port across a fast-shutdown restart", async () => {
      const port = pg.port;
      const pid = pg.pid;
      await pg.restart();
      assert.equal(pg.port, port);
      assert.notEqual(pg.pid, pid);
      assert.deepEqual(await pgQuery(pg.url("h_base"), "select 1 as one"), [{ one: 1 }]);
      assert.deepEqual(await pgQuery(pg.url("h_base"), "select k, v from kv"), [{ k: "a", v: "1" }]);
    });

    it("recovers committed data after a SIGKILL crash restart, even with open connections", async () => {
      await pgQuery(pg.url("h_base"), "insert into kv values ('b', '2')");
      const idle = new Client({ connectionString: pg.url("h_base") });
      idle.on("error", () => undefined);
      await idle.connect();
      await pg.restart("SIGKILL");
      const rows = await pgQuery(pg.url("h_base"), "select k, v from kv order by k");
      assert.deepEqual(rows, [
        { k: "a", v: "1" },
        { k: "b", v: "2" },
      ]);
      await idle.end().catch(() => undefined);
    });

    it("stop() really stops it, restart() brings it back", async () => {
      await pg.stop();
      assert.equal(pg.running, false);
      await assert.rejects(pgQuery(pg.adminUrl, "select 1"));
      await pg.restart();
      assert.deepEqual(await pgQuery(pg.adminUrl, "select 1 as one"), [{ one: 1 }]);
    });
  });

  describe("RedisProcess", () => {
    let redis: RedisProcess;
    before(async () => {
      redis = await RedisProcess.start();
    });
    after(async () => {
      await redis?.destroy();
    });

    it("answers PING at its url", async () => {
      assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
      assert.equal(await withRedis(redis.url, (r) => r.ping()), "PONG");
    });

    it("flushAll empties it", async () => {
      await withRedis(redis.url, async (r) => {
        await r.set("k1", "v1");
        await r.set("k2", "v2");
        assert.equal(await r.dbsize(), 2);
      });
      await redis.flushAll();
      assert.equal(await withRedis(redis.url, (r) => r.dbsize()), 0);
    });

    it("is empty after restart(), on the same port", async () => {
      const port = redis.port;
      await withRedis(redis.url, (r) => r.set("survives?", "no"));
      await redis.restart();
      assert.equal(redis.port, port);
      assert.equal(await withRedis(redis.url, (r) => r.dbsize()), 0);
    });

    it("restarts after SIGKILL with a client still connected", async () => {
      const held = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      held.on("error", () => undefined);
      await held.set("x", "1");
      await redis.restart("SIGKILL");
      assert.equal(await withRedis(redis.url, (r) => r.exists("x")), 0);
      held.disconnect();
    });

    it("honours a fixed port", async () => {
      const port = await freePort();
      const fixed = await RedisProcess.start({ port });
      try {
        assert.equal(fixed.port, port);
        assert.equal(await withRedis(fixed.url, (r) => r.ping()), "PONG");
      } finally {
        await fixed.destroy();
      }
    });
  });

  describe("TestEnv", () => {
    it("shares one Postgres/Redis and hands out fresh databases and prefixes", async () => {
      const env = await getTestEnv();
      assert.equal(await getTestEnv(), env, "memoised");
      const a = await env.freshDatabase("harness");
      const b = await env.freshDatabase();
      assert.notEqual(a, b);
      assert.match(a, /\/harness_\d+_\d+_[0-9a-f]{6}$/);
      assert.deepEqual(await pgQuery(a, "select current_database() ~ '^harness_' as ok"), [{ ok: true }]);
      assert.match(env.redisPrefix(), /^t_[0-9a-f]{6}$/);
      assert.notEqual(env.redisPrefix(), env.redisPrefix());
      assert.equal(await withRedis(env.redis.url, (r) => r.ping()), "PONG");
    });
  });
});

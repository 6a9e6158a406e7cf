import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { Cluster, Redis } from "ioredis";
import { EtcdProcess } from "../support/EtcdProcess";
import { freePort } from "../support/freePort";
import { LoggedServerProcess } from "../support/LoggedServerProcess";
import { pgQuery } from "../support/pgQuery";
import { PostgresProcess } from "../support/PostgresProcess";
import { RedisClusterProcess } from "../support/RedisClusterProcess";
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

  describe("RedisClusterProcess", () => {
    let cluster: RedisClusterProcess;
    before(async () => {
      cluster = await RedisClusterProcess.start();
    });
    after(async () => {
      await cluster?.destroy();
    });

    it("runs 3 masters with a replica each, all slots served; keys of every slot are readable", async () => {
      const shards = await cluster.shards();
      assert.equal(shards.length, 3);
      for (const s of shards) assert.equal(s.replicas.length, 1);
      assert.match(cluster.url, /^redis\+cluster:\/\/(127\.0\.0\.1:\d+,){5}127\.0\.0\.1:\d+$/);
      const c = new Cluster(shards.map((s) => ({ host: "127.0.0.1", port: s.master.port })));
      try {
        for (let i = 0; i < 20; i++) await c.set(`k${i}`, String(i));
        assert.equal(await c.get("k7"), "7");
      } finally {
        c.disconnect();
      }
    });

    it("fails a master over to its replica, by hand and by SIGKILL, keeping every slot served", async () => {
      const manual = await cluster.failover(0);
      assert.ok((await cluster.shards()).some((s) => s.master === manual.to && s.replicas.includes(manual.from)));
      const killed = await cluster.killMaster(1);
      assert.ok((await cluster.shards()).some((s) => s.master === killed.to && s.replicas.includes(killed.from)));
      assert.equal((await cluster.shards()).length, 3);
    });
  });

  // The way the benchmarks use the harness: dirs and logs in a run directory of theirs.
  describe("in a caller's directory (bench/lib/procs.mjs)", () => {
    let runDir: string;
    before(() => {
      runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-harness-"));
      fs.chmodSync(runDir, 0o755); // Postgres runs as user postgres when we are root
    });
    after(() => {
      fs.rmSync(runDir, { recursive: true, force: true });
    });

    it("PostgresProcess takes settings, a data dir and a log path, and leaves them to the caller", async () => {
      const dataDir = path.join(runDir, "pg");
      const pg = await PostgresProcess.start({
        dataDir,
        logPath: path.join(runDir, "postgres.log"),
        settings: { shared_buffers: "16MB", synchronous_commit: "off" },
      });
      try {
        assert.deepEqual(await pg.query("postgres", "SHOW shared_buffers"), [{ shared_buffers: "16MB" }]);
        assert.deepEqual(await pg.query("postgres", "SHOW synchronous_commit"), [{ synchronous_commit: "off" }]);
        assert.deepEqual(await pg.query("postgres", "SHOW fsync"), [{ fsync: "off" }], "defaults stay");
      } finally {
        await pg.destroy();
      }
      assert.ok(fs.existsSync(path.join(dataDir, "PG_VERSION")), "a caller's data dir is kept");
      assert.match(fs.readFileSync(path.join(runDir, "postgres.log"), "utf8"), /starting postgres/);
    });

    it("LoggedServerProcess runs the server with its output in a log file", async () => {
      const env = await getTestEnv();
      const logPath = path.join(runDir, "server.log");
      const server = await LoggedServerProcess.start({
        cwd: runDir,
        env: { DATABASE_URL: await env.freshDatabase("harness_server"), REDIS_URL: "", LOG_LEVEL: "info" },
        logPath,
      });
      assert.equal(server.address, `127.0.0.1:${server.port}`);
      await server.stop();
      assert.equal(server.running, false);
      assert.match(fs.readFileSync(logPath, "utf8"), /"msg":"listening"/);
    });

    // etcd is the bench's peer; .ci/run installs it, so a missing etcd fails here
    // instead of skipping quietly.
    it("EtcdProcess answers on its endpoint", async () => {
      const etcd = await EtcdProcess.start({ dataDir: path.join(runDir, "etcd") });
      try {
        const res = await fetch(`http://${etcd.endpoint}/health`);
        assert.match(await res.text(), /"health":\s*"true"/);
      } finally {
        await etcd.stop();
      }
      assert.equal(etcd.running, false);
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

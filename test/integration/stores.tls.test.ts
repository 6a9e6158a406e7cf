import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { PostgresProcess } from "../support/PostgresProcess";
import { RedisProcess } from "../support/RedisProcess";
import { ServerProcess } from "../support/ServerProcess";
import { startCluster, type Cluster } from "../support/startCluster";
import { TestCerts, type CertFiles } from "../support/testCerts";

/** Postgres refuses a key file that others can read, or not owned by its user. */
function keyForPostgres(key: string): void {
  fs.chmodSync(key, 0o600);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    fs.chownSync(key, uid, gid);
  }
}

describe("security: TLS to Postgres (sslmode=verify-full) and Redis (rediss://, cache and Redlock)", function () {
  this.timeout(120_000);
  let certs: TestCerts;
  let ca: CertFiles;
  let otherCa: CertFiles;
  let pg: PostgresProcess;
  let redis: RedisProcess;
  let cluster: Cluster | undefined;

  before(async () => {
    certs = new TestCerts();
    ca = certs.ca("store-ca");
    otherCa = certs.ca("store-other-ca");
    const server = certs.leaf("store-server", ca, "localhost");
    // The postgres user must reach the files.
    fs.chmodSync(certs.dir, 0o755);
    fs.chmodSync(server.cert, 0o644);
    const redisKey = path.join(certs.dir, "redis.key");
    fs.copyFileSync(server.key, redisKey);
    keyForPostgres(server.key);
    [pg, redis] = await Promise.all([
      PostgresProcess.start({ settings: { ssl: "on", ssl_cert_file: server.cert, ssl_key_file: server.key } }),
      RedisProcess.start({ tls: { cert: server.cert, key: redisKey, ca: ca.cert } }),
    ]);
  });

  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  after(async () => {
    await Promise.allSettled([pg?.destroy(), redis?.destroy()]);
    certs?.remove();
  });

  async function tlsDatabaseUrl(name: string, caFile: string): Promise<string> {
    await pg.createDatabase(name);
    return `${pg.url(name)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}`;
  }

  it("serves over both: every Postgres session of the server is TLS, the cache and locks work over rediss://", async () => {
    assert.match(redis.url, /^rediss:/);
    cluster = await startCluster({
      databaseUrl: await tlsDatabaseUrl("tls_ok", ca.cert),
      env: { REDIS_URL: redis.url, AGENTSTATE_REDIS_TLS_CA_FILE: ca.cert, AGENTSTATE_REDIS_PREFIX: "tls" },
    });
    const server = cluster.servers[0]!;
    assert.equal(server.logs().find((l) => l.msg === "listening")?.locks, "redlock(1)");
    const client = cluster.clients[0]!;
    await client.put("tls", "k", "v1");
    const got = await client.get({ namespace: "tls", key: "k" });
    assert.equal(Buffer.from(got.item!.value).toString(), "v1");
    const lock = await client.lock({ namespace: "tls", name: "l", owner: "me", ttl: { seconds: 10 } });
    assert.ok(lock.fencingToken > 0);
    // Served from the cache after a fill: the cache answered over TLS.
    await client.get({ namespace: "tls", key: "k" });
    const cacheErrors = server.logs().filter((l) => l.level === "warn" && /redis/.test(String(l.msg)));
    assert.deepEqual(cacheErrors, []);
    const ssl = await pg.query<{ ssl: boolean }>(
      "postgres",
      "select s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid) where a.datname = 'tls_ok'",
    );
    assert.ok(ssl.length > 0, "the server has sessions");
    assert.ok(
      ssl.every((r) => r.ssl),
      "every session is TLS",
    );
  });

  it("refuses a Postgres certificate from another CA with a start-up error naming TLS", async () => {
    await assert.rejects(
      ServerProcess.start({ DATABASE_URL: await tlsDatabaseUrl("tls_wrong_ca", otherCa.cert), REDIS_URL: "" }),
      (e: Error) => /exited \(code=1/.test(e.message) && /"reason":"TLS: [^"]*certificate/.test(e.message),
    );
  });

  it("a Redis certificate from another CA: the cache and Redlock say TLS and degrade", async () => {
    cluster = await startCluster({
      databaseUrl: await tlsDatabaseUrl("tls_redis_wrong_ca", ca.cert),
      env: { REDIS_URL: redis.url, AGENTSTATE_REDIS_TLS_CA_FILE: otherCa.cert, AGENTSTATE_REDIS_PREFIX: "tls2" },
    });
    const warnings = cluster.servers[0]!.logs().filter((l) => l.level === "warn");
    assert.ok(
      warnings.some((l) => /TLS/.test(JSON.stringify(l))),
      JSON.stringify(warnings),
    );
  });
});

import * as assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../src/config/config";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../clients/typescript/src/AgentstateClient";

/** Asserts loadConfig(env) throws a ConfigError whose message names `variable`. */
function refuses(env: Record<string, string>, variable: string, message?: RegExp): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `ConfigError for ${JSON.stringify(env)}, got ${String(caught)}`);
  assert.equal(caught.name, "ConfigError");
  assert.ok(caught.message.includes(variable), `message names ${variable}: ${caught.message}`);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe("config/loadConfig", () => {
  describe("defaults (empty environment)", () => {
    const c = loadConfig({});

    it("listens on loopback:50051 with an embedded database and no cache", () => {
      assert.equal(c.host, "127.0.0.1");
      assert.equal(c.port, 50051);
      assert.equal(c.databaseUrl, undefined);
      assert.equal(c.dataDir, ".agentstate");
      assert.equal(c.redisUrl, undefined);
      assert.deepEqual(c.redlockUrls, []);
      assert.equal(c.redisPrefix, "agentstate");
      assert.equal(c.logLevel, "info");
      assert.equal(c.cacheMix, "warn", "a mixed cache configuration is logged, not fatal");
      assert.equal(loadConfig({ AGENTSTATE_CACHE_MIX: "fatal" }).cacheMix, "fatal");
    });

    it("has the documented limits", () => {
      // Compared field by field so that adding a limit does not break this test.
      const documented = {
        maxKeyBytes: 1024,
        maxValueBytes: 1024 * 1024,
        maxContentTypeBytes: 255,
        maxIdempotencyKeyBytes: 255,
        maxOwnerBytes: 255,
        listDefaultLimit: 100,
        listMaxLimit: 1000,
        maxTtlSeconds: 10 * 365 * 24 * 3600,
        maxEventsPerAppend: 1000,
        maxEventMetadataEntries: 64,
        maxEventBytes: 1024 * 1024,
        maxAppendBytes: 4 * 1024 * 1024,
        maxMessageBytes: 4 * 1024 * 1024 + 64 * 1024,
        maxSubscribers: 2000,
        maxSubscribersPerNamespace: 500,
        maxReadStreams: 1000,
        maxSessions: 1000,
        maxSessionCalls: 256,
      };
      for (const [name, value] of Object.entries(documented)) {
        assert.equal(c.limits[name as keyof typeof documented], value, `limits.${name}`);
      }
    });

    it("has the documented timings and sizes", () => {
      assert.deepEqual(c.connection, {
        maxConcurrentStreams: 1000,
        maxHeaderListBytes: 16384,
        idleMs: 60000,
        maxAgeMs: 0,
        maxAgeGraceMs: 30000,
        keepaliveTimeMs: 60000,
        keepaliveTimeoutMs: 20000,
        maxHeaderCount: 64,
        maxSessionMemoryMiB: 64,
        minPingIntervalMs: 5000,
        maxPingStrikes: 2,
      });
      assert.equal(c.pgPoolMax, 20);
      assert.equal(c.statementTimeoutMs, 5000);
      assert.equal(c.cacheMarkerTtlMs, 15000);
      assert.equal(c.janitorIntervalMs, 60000);
      assert.equal(c.historyRetentionSeconds, 7 * 24 * 3600);
      assert.equal(c.idempotencyTtlSeconds, 24 * 3600);
      assert.equal(c.cacheTtlSeconds, 3600);
      assert.equal(c.cacheLeaseMs, 2000);
      assert.equal(c.redisCommandTimeoutMs, 500);
      assert.equal(c.shutdownGraceMs, 10000);
    });

    it("is frozen, limits and Redlock list included", () => {
      assert.ok(Object.isFrozen(c));
      assert.ok(Object.isFrozen(c.limits));
      assert.ok(Object.isFrozen(c.redlockUrls));
    });

    it("the TypeScript client's default message limit matches the server's", () => {
      assert.equal(DEFAULT_MAX_MESSAGE_BYTES, c.limits.maxMessageBytes);
    });
  });

  describe("values", () => {
    it("reads and trims every setting", () => {
      const c = loadConfig({
        AGENTSTATE_HOST: " 0.0.0.0 ",
        AGENTSTATE_INSECURE: "1",
        AGENTSTATE_PORT: " 0 ",
        DATABASE_URL: "postgres://u:p@db:5432/x",
        REDIS_URL: "redis://cache:6379",
        AGENTSTATE_REDIS_PREFIX: "t_1:a.b-c",
        AGENTSTATE_MAX_VALUE_BYTES: "1024",
        AGENTSTATE_LIST_MAX_LIMIT: "50",
        AGENTSTATE_JANITOR_INTERVAL_MS: "200",
        LOG_LEVEL: "debug",
      });
      assert.equal(c.host, "0.0.0.0");
      assert.equal(c.port, 0);
      assert.equal(c.databaseUrl, "postgres://u:p@db:5432/x");
      assert.equal(c.redisUrl, "redis://cache:6379");
      assert.deepEqual(c.redlockUrls, ["redis://cache:6379"], "Redlock defaults to the cache Redis");
      assert.equal(c.redisPrefix, "t_1:a.b-c");
      assert.equal(c.limits.maxValueBytes, 1024);
      assert.equal(c.limits.listMaxLimit, 50);
      assert.equal(c.limits.listDefaultLimit, 50, "the default page never exceeds the maximum");
      assert.equal(c.janitorIntervalMs, 200);
      assert.equal(c.logLevel, "debug");
    });

    it("treats empty or blank variables as unset", () => {
      const c = loadConfig({ DATABASE_URL: "", REDIS_URL: "  ", AGENTSTATE_PORT: "" });
      assert.equal(c.databaseUrl, undefined);
      assert.equal(c.redisUrl, undefined);
      assert.equal(c.port, 50051);
    });

    it("REDIS_URL naming a Redis Cluster: redis+cluster://host:port,... or a list of seed URLs", () => {
      const c = loadConfig({
        REDIS_URL: "redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002",
        REDLOCK_URLS: "redis://lock",
      });
      assert.deepEqual(c.redisCluster, {
        nodes: [
          { host: "10.0.0.1", port: 7000 },
          { host: "10.0.0.2", port: 7001 },
          { host: "::1", port: 7002 },
        ],
        username: "u",
        password: "p@ss",
        tls: false,
      });
      assert.deepEqual(c.redlockUrls, ["redis://lock"]);
      const seeds = loadConfig({ REDIS_URL: "rediss://a:7000, rediss://b:7000", REDLOCK_URLS: "redis://lock" });
      assert.equal(seeds.redisCluster?.tls, true);
      assert.equal(seeds.redisCluster?.nodes.length, 2);
      assert.equal(loadConfig({ REDIS_URL: "redis://a:6379" }).redisCluster, undefined, "one URL: a single Redis");
    });

    it("accepts 1, 3 or 5 Redlock masters", () => {
      assert.equal(loadConfig({ REDLOCK_URLS: "redis://a" }).redlockUrls.length, 1);
      assert.deepEqual(loadConfig({ REDLOCK_URLS: "redis://a, redis://b ,rediss://c" }).redlockUrls, [
        "redis://a",
        "redis://b",
        "rediss://c",
      ]);
      assert.equal(
        loadConfig({ REDLOCK_URLS: "redis://a,redis://b,redis://c,redis://d,redis://e" }).redlockUrls.length,
        5,
      );
    });

    it("the message limit leaves room for the largest value or append", () => {
      const c = loadConfig({ AGENTSTATE_MAX_VALUE_BYTES: String(8 * 1024 * 1024) });
      assert.equal(c.limits.maxMessageBytes, 8 * 1024 * 1024 + 64 * 1024);
    });
  });

  describe("each bad variable is a ConfigError naming it", () => {
    const ints: [string, string, RegExp][] = [
      ["AGENTSTATE_PORT", "http", /must be an integer/],
      ["AGENTSTATE_PORT", "65536", /between 0 and 65535/],
      ["AGENTSTATE_PORT", "-1", /between 0 and 65535/],
      ["AGENTSTATE_PORT", "1.5", /must be an integer/],
      ["AGENTSTATE_MAX_VALUE_BYTES", "0", /between 1 and/],
      ["AGENTSTATE_MAX_EVENT_BYTES", "1e6", /must be an integer/],
      ["AGENTSTATE_MAX_APPEND_BYTES", "x", /must be an integer/],
      ["AGENTSTATE_LIST_MAX_LIMIT", "100001", /between 1 and 100000/],
      ["AGENTSTATE_STATEMENT_TIMEOUT_MS", "99", /between 100 and/],
      ["AGENTSTATE_MAX_TTL_SECONDS", "0", /between 1 and/],
      ["AGENTSTATE_MAX_EVENTS_PER_APPEND", "0", /between 1 and/],
      ["AGENTSTATE_MAX_EVENT_METADATA_ENTRIES", "-1", /AGENTSTATE_MAX_EVENT_METADATA_ENTRIES.*between 0 and/],
      ["AGENTSTATE_MAX_SUBSCRIBERS", "0", /AGENTSTATE_MAX_SUBSCRIBERS.*between 1 and/],
      [
        "AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE",
        "2001",
        /AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE \(2001\) must not exceed AGENTSTATE_MAX_SUBSCRIBERS \(2000\)/,
      ],
      ["AGENTSTATE_MAX_READ_STREAMS", "x", /AGENTSTATE_MAX_READ_STREAMS.*must be an integer/],
      ["AGENTSTATE_MAX_CONCURRENT_STREAMS", "0", /AGENTSTATE_MAX_CONCURRENT_STREAMS.*between 1 and/],
      ["AGENTSTATE_MAX_HEADER_LIST_BYTES", "100", /AGENTSTATE_MAX_HEADER_LIST_BYTES.*between 1024 and/],
      ["AGENTSTATE_CONNECTION_IDLE_MS", "50", /AGENTSTATE_CONNECTION_IDLE_MS.*between 100 and/],
      ["AGENTSTATE_CONNECTION_MAX_AGE_MS", "-1", /AGENTSTATE_CONNECTION_MAX_AGE_MS.*between 0 and/],
      ["AGENTSTATE_KEEPALIVE_TIME_MS", "10", /AGENTSTATE_KEEPALIVE_TIME_MS.*between 1000 and/],
      ["AGENTSTATE_MAX_HEADER_COUNT", "8", /AGENTSTATE_MAX_HEADER_COUNT.*between 16 and/],
      ["AGENTSTATE_MAX_SESSION_MEMORY_MB", "0", /AGENTSTATE_MAX_SESSION_MEMORY_MB.*between 1 and/],
      ["AGENTSTATE_KEEPALIVE_MIN_PING_INTERVAL_MS", "-1", /AGENTSTATE_KEEPALIVE_MIN_PING_INTERVAL_MS.*between 0 and/],
      ["AGENTSTATE_KEEPALIVE_MAX_PING_STRIKES", "x", /AGENTSTATE_KEEPALIVE_MAX_PING_STRIKES.*must be an integer/],
      ["AGENTSTATE_CACHE_MARKER_TTL_MS", "999", /between 1000 and/],
      ["PG_POOL_MAX", "0", /between 1 and 1000/],
      ["AGENTSTATE_HISTORY_RETENTION_SECONDS", "-5", /between 0 and/],
      ["AGENTSTATE_IDEMPOTENCY_TTL_SECONDS", "59", /between 60 and/],
      ["AGENTSTATE_JANITOR_INTERVAL_MS", "99", /between 100 and/],
      ["AGENTSTATE_CACHE_TTL_SECONDS", "0", /between 1 and/],
      ["AGENTSTATE_CACHE_LEASE_MS", "199", /between 200 and/],
      ["AGENTSTATE_REDIS_TIMEOUT_MS", "9", /between 10 and/],
      ["AGENTSTATE_SHUTDOWN_GRACE_MS", "600001", /between 0 and 600000/],
      ["AGENTSTATE_PORT", "99999999999999999999", /between 0 and 65535/],
    ];
    for (const [name, value, message] of ints) {
      it(`${name}=${JSON.stringify(value)}`, () => refuses({ [name]: value }, name, message));
    }

    it("AGENTSTATE_CACHE_MIX outside warn|fatal", () =>
      refuses({ AGENTSTATE_CACHE_MIX: "ignore" }, "AGENTSTATE_CACHE_MIX", /warn, fatal/));
    it("LOG_LEVEL outside debug|info|warn|error", () =>
      refuses({ LOG_LEVEL: "verbose" }, "LOG_LEVEL", /debug, info, warn, error/));
    it("AGENTSTATE_REDIS_PREFIX with a space or over 64 characters", () => {
      refuses({ AGENTSTATE_REDIS_PREFIX: "a b" }, "AGENTSTATE_REDIS_PREFIX");
      refuses({ AGENTSTATE_REDIS_PREFIX: "p".repeat(65) }, "AGENTSTATE_REDIS_PREFIX");
    });
    it("DATABASE_URL that is not a URL, or not postgres", () => {
      refuses({ DATABASE_URL: "not a url" }, "DATABASE_URL", /not a valid URL/);
      refuses({ DATABASE_URL: "mysql://db/x" }, "DATABASE_URL", /postgres:, postgresql:/);
    });
    it("REDIS_URL that is not a URL, or not redis", () => {
      refuses({ REDIS_URL: "::" }, "REDIS_URL", /not a valid URL/);
      refuses({ REDIS_URL: "http://cache" }, "REDIS_URL", /redis:, rediss:/);
    });
    it("REDIS_URL naming a cluster: bad seeds, mixed credentials, and no REDLOCK_URLS", () => {
      const lock = { REDLOCK_URLS: "redis://lock" };
      refuses({ REDIS_URL: "redis+cluster://a:7000,b", ...lock }, "REDIS_URL", /seed node 1 must be host:port/);
      refuses({ REDIS_URL: "redis://a:1,rediss://b:2", ...lock }, "REDIS_URL", /same scheme and credentials/);
      refuses({ REDIS_URL: "redis://a:1,http://b:2", ...lock }, "REDIS_URL", /seed node 1 must use redis/);
      refuses({ REDIS_URL: "redis+cluster://a:7000" }, "REDLOCK_URLS", /Redis Cluster, which Redlock cannot run on/);
    });
    it("REDLOCK_URLS with a bad entry names its position", () =>
      refuses({ REDLOCK_URLS: "redis://a,http://b,redis://c" }, "REDLOCK_URLS[1]"));
    it("REDLOCK_URLS with an empty entry", () => refuses({ REDLOCK_URLS: "redis://a,,redis://c" }, "REDLOCK_URLS"));
    it("REDLOCK_URLS with 2 or 4 masters (no majority)", () => {
      refuses({ REDLOCK_URLS: "redis://a,redis://b" }, "REDLOCK_URLS", /1, 3 or 5/);
      refuses({ REDLOCK_URLS: "redis://a,redis://b,redis://c,redis://d" }, "REDLOCK_URLS", /1, 3 or 5/);
    });
    it("lock attempts in flight above the pool, or a per-name waiter cap above the server's, name both", () => {
      const a = refuses(
        { PG_POOL_MAX: "4", AGENTSTATE_LOCK_ATTEMPTS_IN_FLIGHT: "5" },
        "AGENTSTATE_LOCK_ATTEMPTS_IN_FLIGHT",
      );
      assert.ok(a.message.includes("PG_POOL_MAX"));
      const w = refuses(
        { AGENTSTATE_MAX_LOCK_WAITERS: "10", AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME: "11" },
        "AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME",
      );
      assert.ok(w.message.includes("AGENTSTATE_MAX_LOCK_WAITERS "));
      assert.equal(loadConfig({ PG_POOL_MAX: "20" }).lockWaits.attemptsInFlight, 4, "a fifth of the pool by default");
    });
    it("Subscribe reads in flight above the pool name both; a quarter of the pool by default", () => {
      const e = refuses(
        { PG_POOL_MAX: "4", AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT: "5" },
        "AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT",
      );
      assert.ok(e.message.includes("PG_POOL_MAX"));
      refuses({ AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT: "0" }, "AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT");
      assert.equal(loadConfig({ PG_POOL_MAX: "20" }).subscribeReadsInFlight, 5);
      assert.equal(loadConfig({ PG_POOL_MAX: "2" }).subscribeReadsInFlight, 1, "at least 1");
    });
    it("a cache marker TTL under twice the statement timeout names both", () => {
      const e = refuses(
        { AGENTSTATE_STATEMENT_TIMEOUT_MS: "10000", AGENTSTATE_CACHE_MARKER_TTL_MS: "15000" },
        "AGENTSTATE_CACHE_MARKER_TTL_MS",
      );
      assert.ok(e.message.includes("AGENTSTATE_STATEMENT_TIMEOUT_MS"));
    });
  });

  describe("URL values are never echoed (they carry passwords)", () => {
    const secret = "s3cr3t-pa55";
    const cases: [string, Record<string, string>][] = [
      ["DATABASE_URL", { DATABASE_URL: `mysql://admin:${secret}@db/x` }],
      ["DATABASE_URL", { DATABASE_URL: `postgres://admin:${secret}@db:notaport/x` }],
      ["DATABASE_URL", { DATABASE_URL: `admin:${secret} not a url` }],
      ["REDIS_URL", { REDIS_URL: `http://:${secret}@cache` }],
      ["REDIS_URL", { REDIS_URL: `${secret}` }],
      ["REDLOCK_URLS[2]", { REDLOCK_URLS: `redis://a,redis://b,tcp://:${secret}@c` }],
    ];
    for (const [variable, env] of cases) {
      it(`${variable}: ${Object.values(env)[0]!.replace(secret, "<secret>")}`, () => {
        const e = refuses(env, variable);
        assert.ok(!e.message.includes(secret), `the message leaks the URL: ${e.message}`);
      });
    }
  });

  describe("transport security", () => {
    // Files that exist and are readable; the config checks only that.
    const file = __filename;

    it("defaults: plaintext on loopback, reflection on, metrics on loopback", () => {
      const c = loadConfig({ AGENTSTATE_HOST: "0.0.0.0", AGENTSTATE_INSECURE: "1" });
      assert.equal(c.tls, undefined);
      assert.equal(c.insecure, true);
      assert.equal(c.reflection, true);
      assert.equal(c.metricsHost, "127.0.0.1", "metrics do not follow AGENTSTATE_HOST");
    });

    it("refuses a non-loopback address without TLS, or without auth, naming the settings, unless AGENTSTATE_INSECURE=1", () => {
      for (const host of ["0.0.0.0", "::", "10.0.0.5", "agentstate.example"]) {
        const e = refuses({ AGENTSTATE_HOST: host }, "AGENTSTATE_HOST");
        assert.match(e.message, /AGENTSTATE_TLS_CERT_FILE/);
        assert.match(e.message, /AGENTSTATE_INSECURE=1/);
      }
      for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) {
        assert.equal(loadConfig({ AGENTSTATE_HOST: host }).host, host);
      }
      const tlsOnly = { AGENTSTATE_HOST: "0.0.0.0", AGENTSTATE_TLS_CERT_FILE: file, AGENTSTATE_TLS_KEY_FILE: file };
      // TLS without authentication beyond loopback: refused too, naming AGENTSTATE_AUTH and the opt-out.
      const noAuth = refuses(tlsOnly, "AGENTSTATE_HOST");
      assert.match(noAuth.message, /AGENTSTATE_AUTH=required/);
      assert.match(noAuth.message, /AGENTSTATE_INSECURE=1/);
      assert.equal(loadConfig({ ...tlsOnly, AGENTSTATE_INSECURE: "1" }).auth, undefined);
      const c = loadConfig({ ...tlsOnly, AGENTSTATE_AUTH: "required" });
      assert.deepEqual(c.tls, { certFile: file, keyFile: file, clientCaFile: undefined });
      assert.equal(
        c.tlsCaFile,
        file,
        "clients trust the certificate file unless AGENTSTATE_TLS_CA_FILE says otherwise",
      );
    });

    it("needs the certificate and the key together, and readable files", () => {
      refuses({ AGENTSTATE_TLS_CERT_FILE: file }, "AGENTSTATE_TLS_KEY_FILE", /set together/);
      refuses({ AGENTSTATE_TLS_KEY_FILE: file }, "AGENTSTATE_TLS_CERT_FILE", /set together/);
      refuses({ AGENTSTATE_TLS_CLIENT_CA_FILE: file }, "AGENTSTATE_TLS_CLIENT_CA_FILE");
      refuses(
        { AGENTSTATE_TLS_CERT_FILE: "/nonexistent/cert.pem", AGENTSTATE_TLS_KEY_FILE: file },
        "AGENTSTATE_TLS_CERT_FILE",
        /cannot be read.*ENOENT/,
      );
      const c = loadConfig({
        AGENTSTATE_TLS_CERT_FILE: file,
        AGENTSTATE_TLS_KEY_FILE: file,
        AGENTSTATE_TLS_CLIENT_CA_FILE: file,
      });
      assert.equal(c.tls?.clientCaFile, file);
    });

    it("reads AGENTSTATE_REFLECTION, AGENTSTATE_INSECURE and AGENTSTATE_METRICS_HOST", () => {
      assert.equal(loadConfig({ AGENTSTATE_REFLECTION: "off" }).reflection, false);
      assert.equal(loadConfig({ AGENTSTATE_METRICS_HOST: "0.0.0.0" }).metricsHost, "0.0.0.0");
      refuses({ AGENTSTATE_REFLECTION: "maybe" }, "AGENTSTATE_REFLECTION");
      refuses({ AGENTSTATE_INSECURE: "yes please" }, "AGENTSTATE_INSECURE");
    });
  });
});

import { randomBytes } from "node:crypto";
import { PostgresProcess } from "./PostgresProcess";
import { RedisProcess } from "./RedisProcess";

/**
 * One Postgres and one Redis shared by every integration test file of a run.
 * Tests isolate themselves with freshDatabase() and redisPrefix() instead of
 * restarting these processes; a test that needs to crash/restart a dependency
 * should start its own PostgresProcess/RedisProcess.
 */
export class TestEnv {
  private dbCounter = 0;

  constructor(
    readonly pg: PostgresProcess,
    readonly redis: RedisProcess,
  ) {}

  /** Create an empty, uniquely named database; returns its URL. */
  async freshDatabase(prefix = "t"): Promise<string> {
    const clean =
      prefix
        .toLowerCase()
        .replace(/[^a-z0-9_]/g, "_")
        .slice(0, 30) || "t";
    const name = `${clean}_${process.pid}_${++this.dbCounter}_${randomBytes(3).toString("hex")}`;
    await this.pg.createDatabase(name);
    return this.pg.url(name);
  }

  /** A random key prefix such as "t_ab12cd", for AGENTSTATE_REDIS_PREFIX. */
  redisPrefix(): string {
    return `t_${randomBytes(3).toString("hex")}`;
  }

  /** Stop both processes and delete their temp dirs. */
  async close(): Promise<void> {
    await Promise.allSettled([this.pg.destroy(), this.redis.destroy()]);
  }
}

let current: Promise<TestEnv> | undefined;

/** The run-wide TestEnv, started on first call (Postgres and Redis in parallel). */
export function getTestEnv(): Promise<TestEnv> {
  current ??= (async () => {
    const [pg, redis] = await Promise.allSettled([PostgresProcess.start(), RedisProcess.start()]);
    if (pg.status === "fulfilled" && redis.status === "fulfilled") return new TestEnv(pg.value, redis.value);
    if (pg.status === "fulfilled") await pg.value.destroy();
    if (redis.status === "fulfilled") await redis.value.destroy();
    throw pg.status === "rejected" ? pg.reason : (redis as PromiseRejectedResult).reason;
  })().catch((e: unknown) => {
    current = undefined; // let a later call retry
    throw e;
  });
  return current;
}

/** Tear down the run-wide TestEnv if it was started (used by the mocha root hook). */
export async function closeTestEnv(): Promise<void> {
  const env = current;
  current = undefined;
  if (!env) return;
  const started = await env.catch(() => undefined);
  await started?.close();
}

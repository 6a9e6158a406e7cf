/**
 * The Postgres connection pool. int8 columns are parsed to numbers (revisions,
 * versions and tokens stay far below 2^53), and every session gets a
 * statement timeout and an idle-in-transaction timeout so that no write
 * transaction can outlive the cache's write-in-flight marker. A client-side
 * query timeout (a little above the statement timeout) and TCP keepalive end
 * the wait on a Postgres that cannot answer at all (frozen, partitioned).
 * JIT compilation is off in every session (unless the connection string sets
 * `options` itself): every statement here is a short OLTP one, and a recursive
 * read's row estimates (checkpoint_list.sql) put its cost past jit_above_cost,
 * so Postgres spent 50 ms compiling a read that runs in 1.
 */
import { Pool, types } from "pg";

const parseInt8 = (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`int8 value out of the safe integer range`);
  return n;
};

/** Idle time before the first TCP keepalive probe, on every Postgres connection (pool and LISTEN). */
export const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

export interface PoolOptions {
  connectionString: string;
  max: number;
  statementTimeoutMs: number;
  /**
   * Client-side: how long the driver waits for a query's answer before giving
   * up on it (pg's query_timeout), for a Postgres that cannot cancel the
   * statement itself (frozen, partitioned). Unset: no client-side limit (the
   * migrations, which run without a statement timeout).
   */
  queryTimeoutMs?: number;
  applicationName?: string;
}

export function createPool(opts: PoolOptions): Pool {
  const pool = new Pool({
    connectionString: opts.connectionString,
    max: opts.max,
    statement_timeout: opts.statementTimeoutMs,
    ...(/[?&]options=/.test(opts.connectionString) ? {} : { options: "-c jit=off" }),
    idle_in_transaction_session_timeout: opts.statementTimeoutMs,
    connectionTimeoutMillis: Math.max(opts.statementTimeoutMs, 5000),
    ...(opts.queryTimeoutMs === undefined ? {} : { query_timeout: opts.queryTimeoutMs }),
    // A connection whose peer vanished (host down, partition) is noticed by the kernel, not only at the next query.
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    application_name: opts.applicationName ?? "agentstate",
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === 20 ? parseInt8 : types.getTypeParser(oid, format as "text")) as typeof types.getTypeParser,
    },
  });
  // An idle client losing its connection (Postgres restart) must not crash the process.
  pool.on("error", () => undefined);
  return pool;
}

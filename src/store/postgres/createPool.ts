/**
 * The Postgres connection pool. int8 columns are parsed to numbers (revisions,
 * versions and tokens stay far below 2^53), and every session gets a
 * statement timeout and an idle-in-transaction timeout so that no write
 * transaction can outlive the cache's write-in-flight marker.
 */
import { Pool, types } from "pg";

const parseInt8 = (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`int8 value out of the safe integer range`);
  return n;
};

export interface PoolOptions {
  connectionString: string;
  max: number;
  statementTimeoutMs: number;
  applicationName?: string;
}

export function createPool(opts: PoolOptions): Pool {
  const pool = new Pool({
    connectionString: opts.connectionString,
    max: opts.max,
    statement_timeout: opts.statementTimeoutMs,
    idle_in_transaction_session_timeout: opts.statementTimeoutMs,
    connectionTimeoutMillis: Math.max(opts.statementTimeoutMs, 5000),
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

import * as assert from "node:assert/strict";
import { Client } from "pg";

/**
 * Holds row locks from a connection of its own (BEGIN; `sql`, a SELECT ...
 * FOR UPDATE), so that a server write on those rows waits inside its
 * transaction, holding a pooled client checked out, until the returned
 * function rolls back and closes the connection.
 */
export async function holdRowLock(dbUrl: string, sql: string, params: unknown[]): Promise<() => Promise<void>> {
  const holder = new Client({ connectionString: dbUrl });
  holder.on("error", () => undefined);
  await holder.connect();
  await holder.query("BEGIN");
  const r = await holder.query(sql, params);
  assert.ok((r.rowCount ?? 0) > 0, "the row to lock exists");
  return async () => {
    await holder.query("ROLLBACK").catch(() => undefined);
    await holder.end().catch(() => undefined);
  };
}

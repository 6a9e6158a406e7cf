/**
 * Checking a client out of the pool for a transaction. While a client is
 * checked out, pg-pool no longer listens for its 'error' events, so a
 * connection lost mid-transaction (Postgres restarted, backend terminated,
 * network reset) would be an unhandled 'error' that kills the process. The
 * checkout listens for the whole time, and a client that errored is destroyed
 * on release instead of going back to the pool (so is one whose query the
 * client stopped waiting for: the connection is still busy with it).
 */
import type { Pool, PoolClient } from "pg";
import { isQueryReadTimeout, translatePgError } from "./pgErrors";

export interface CheckedOut {
  client: PoolClient;
  /**
   * Returns the client to the pool (or destroys it if its connection broke,
   * or `failure` is a client-side query timeout: its statement may still be
   * running). Call exactly once.
   */
  release(failure?: unknown): void;
}

export async function checkout(pool: Pool): Promise<CheckedOut> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw translatePgError(err);
  }
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
  };
  client.on("error", onError);
  return {
    client,
    release(failure?: unknown) {
      client.removeListener("error", onError);
      client.release(broken ?? (isQueryReadTimeout(failure) ? (failure as Error) : undefined));
    },
  };
}
